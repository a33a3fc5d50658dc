//! Vision: the privacy boundary between raw uploads and everything public. It claims committed
//! captures from the work queue, anonymizes every frame, gates quality, places frames on the H3
//! grid and publishes frames, detections and coverage.
//!
//! Built so far: frame placement and coverage ([`place`]). Anonymization and publishing are not
//! built yet, so committed captures stay `queued` (issue 4).

pub mod place;
pub mod quality;
