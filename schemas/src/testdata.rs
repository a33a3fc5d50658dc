//! Where the development data lives, for tests and benches; the service never reads it.

use std::path::PathBuf;

/// `../shared/data` beside the checkout: `ROADHEX_SHARED_DATA`, else found from the manifest
/// directory cargo sets when it runs a test (every crate sits one level below the checkout). Both
/// are read at run time: cargo reuses a test binary built from another checkout of the same
/// sources, and a path compiled into it can name a directory that is gone.
pub fn shared_data() -> PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA").map(Into::into).unwrap_or_else(|| {
        let manifest =
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        PathBuf::from(manifest).join("../../shared/data")
    })
}
