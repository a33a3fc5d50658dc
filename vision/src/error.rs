use roadhex_lake::LakeError;
use thiserror::Error;

pub type Result<T, E = VisionError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum VisionError {
    #[error("storage: {0}")]
    Storage(#[from] LakeError),
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error("anonymization: {0}")]
    Anonymize(#[from] crate::anonymize::AnonymizeError),
    #[error("capture {0}: the raw manifest is gone but the capture is not published")]
    RawMissing(String),
    #[error("capture {capture}: manifest no longer parses: {reason}")]
    Manifest { capture: String, reason: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("a worker thread failed: {0}")]
    Join(String),
}

impl VisionError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Storage(_) => "storage_error",
            Self::OpenCv(_) => "opencv_error",
            Self::Anonymize(e) => e.code(),
            Self::RawMissing(_) => "raw_missing",
            Self::Manifest { .. } => "manifest_invalid",
            Self::Arrow(_) => "table_error",
            Self::Join(_) => "worker_failed",
        }
    }
}
