//! Anonymization: detect faces and licence plates on full-resolution frames and blur them
//! irreversibly. Several detectors run as an [`Ensemble`] whose result is the union of its
//! members, because a missed face or plate is a privacy leak while an extra blurred box is not.

mod blur;
mod cascade;
mod centerface;
mod ensemble;
mod error;
mod eval;
pub(crate) mod geometry;
mod models;
mod plates;
mod pool;
mod retinaface;

pub use blur::blur;
pub use cascade::CascadeDetector;
pub use centerface::CenterFace;
pub use ensemble::{Ensemble, EnsembleConfig, Member};
pub use error::AnonymizeError;
pub use eval::{DetectorReport, EvalReport, MATCH_IOU, SetReport, eval};
pub use models::Models;
pub use plates::{TextRowConfig, TextRowPlates};
pub use retinaface::RetinaFace;

use opencv::core::{Mat, Rect};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Face,
    Plate,
    /// A region a redaction request asked to blur.
    Region,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub kind: Kind,
    /// Full-frame pixels.
    pub rect: Rect,
    pub score: f32,
    /// Name of the detector that produced it.
    pub detector: String,
}

/// One face or plate detector. Implementations are shareable between worker threads.
pub trait Detector: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// Name, model package and the parameters that change results; recorded per frame.
    fn version(&self) -> String;
    /// `bgr` is an 8-bit, 3-channel frame at full resolution.
    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError>;
}
