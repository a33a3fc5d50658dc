//! Vision: the privacy boundary between raw uploads and everything public. It claims committed
//! captures from the work queue, anonymizes every frame, gates quality, places frames on the H3
//! grid and publishes frames, detections and coverage; raw data is deleted once a capture ends.

pub mod anonymize;
pub mod error;
pub mod pipeline;
pub mod place;
pub mod privacy;
pub mod quality;
pub mod signs;
mod tables;
pub mod worker;

pub use error::{Result, VisionError};
pub use pipeline::{Pipeline, Progress};

/// `../shared/data` beside the checkout, for unit tests: `ROADHEX_SHARED_DATA`, else found from the
/// manifest directory cargo sets when it runs the test. Both are read at run time: cargo reuses a
/// test binary built from another checkout of the same sources, and a path compiled into it can
/// name a directory that is gone.
#[cfg(test)]
pub(crate) fn shared_data() -> std::path::PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA").map(Into::into).unwrap_or_else(|| {
        let manifest =
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        std::path::Path::new(&manifest).join("../../shared/data")
    })
}
