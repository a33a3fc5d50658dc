use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AnonymizeError {
    #[error("model file {path} is missing; run deploy/models.sh (ROADHEX_MODELS selects the directory)")]
    ModelMissing { path: PathBuf },
    #[error("model {path} could not be loaded: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error("model {model} produced unexpected output: {reason}")]
    ModelOutput { model: &'static str, reason: String },
    #[error("input frame is not an 8-bit 3-channel image")]
    BadFrame,
    #[error("evaluation data {path}: {reason}")]
    EvalData { path: PathBuf, reason: String },
    #[error("io {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("unknown detector `{0}` in the ensemble configuration")]
    UnknownDetector(String),
}

impl AnonymizeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::ModelMissing { .. } => "model_missing",
            Self::ModelLoad { .. } => "model_load_failed",
            Self::OpenCv(_) => "opencv_error",
            Self::ModelOutput { .. } => "model_output_invalid",
            Self::BadFrame => "bad_frame",
            Self::EvalData { .. } => "eval_data_invalid",
            Self::Io { .. } => "io_error",
            Self::UnknownDetector(_) => "unknown_detector",
        }
    }
}
