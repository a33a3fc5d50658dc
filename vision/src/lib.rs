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
