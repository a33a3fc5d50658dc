use thiserror::Error;

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("object {0} already exists")]
    AlreadyExists(String),
    #[error("store URL {url:?} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("JSON object {path}: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("lease on {0} is no longer held (expired and claimed by another worker, or acked)")]
    LeaseLost(String),
    #[cfg(feature = "sql")]
    #[error("sql: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}
