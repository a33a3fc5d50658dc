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
    #[error("queue: {0}")]
    Queue(String),
    #[error("the table lock is held by another process (a compaction or rewrite); try again")]
    LockBusy,
    #[cfg(feature = "sql")]
    #[error("sql: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The query does not parse or plan; line/column point into it when known.
    #[error("{message}")]
    SqlInvalid { message: String, line: Option<u64>, column: Option<u64> },
    /// The query is valid but not allowed here (DDL, DML, SET and other statements).
    #[error("{0} (the lake is read-only over SQL)")]
    SqlRefused(String),
    #[error("query ran longer than {0} s")]
    SqlTimeout(f64),
    #[error("query needs more memory or spill space than allowed: {0}")]
    SqlResources(String),
    /// The Ballista scheduler or an executor failed (unreachable, refused the job).
    #[error("cluster: {0}")]
    Cluster(String),
}

impl LakeError {
    /// Machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_) => "store_error",
            Self::NotFound(_) => "not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::BadUrl { .. } => "bad_store_url",
            Self::Json { .. } => "bad_json_object",
            Self::Parquet(_) => "parquet_error",
            Self::Arrow(_) => "arrow_error",
            Self::LeaseLost(_) => "lease_lost",
            Self::LockBusy => "lock_busy",
            Self::Queue(_) => "queue_error",
            #[cfg(feature = "sql")]
            Self::DataFusion(_) => "query_failed",
            Self::SqlInvalid { .. } => "sql_invalid",
            Self::SqlRefused(_) => "sql_refused",
            Self::SqlTimeout(_) => "sql_timeout",
            Self::SqlResources(_) => "sql_resources_exhausted",
            Self::Cluster(_) => "cluster_error",
        }
    }
}
