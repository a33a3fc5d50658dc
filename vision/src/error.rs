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
    #[error("frame {0} is not published")]
    FrameNotFound(String),
    #[error("redaction {0} does not exist")]
    RedactionNotFound(String),
    #[error("redaction request is invalid: {0}")]
    RedactionInvalid(String),
    #[error("redaction {id} was already {step}; it cannot change now")]
    RedactionDecided { id: String, step: String },
    #[error("this operation needs the operator token (Authorization: Bearer …)")]
    Unauthorized,
    #[error("operator operations are disabled: the server has no operator token configured")]
    OperatorDisabled,
    #[error("sign data in {dir}: {reason}")]
    SignData { dir: String, reason: String },
    #[error("sign model: {0}")]
    SignModel(String),
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
            Self::FrameNotFound(_) => "frame_not_found",
            Self::RedactionNotFound(_) => "redaction_not_found",
            Self::RedactionInvalid(_) => "redaction_invalid",
            Self::RedactionDecided { .. } => "redaction_decided",
            Self::Unauthorized => "unauthorized",
            Self::OperatorDisabled => "operator_disabled",
            Self::SignData { .. } => "sign_data_invalid",
            Self::SignModel(_) => "sign_model_invalid",
        }
    }
}
