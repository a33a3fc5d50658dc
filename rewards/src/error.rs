use roadhex_lake::LakeError;
use thiserror::Error;

pub type Result<T, E = RewardsError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum RewardsError {
    #[error("storage: {0}")]
    Storage(#[from] LakeError),
    #[error("sql: {0}")]
    Sql(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("rewards config: {0}")]
    Config(String),
    #[error("epoch id {0:?} is not valid (YYYY-Www for weekly epochs, YYYY-MM-DD+Nd otherwise)")]
    EpochInvalid(String),
    #[error("epoch {epoch} is not closed until {cutoff} (its upload cutoff)")]
    EpochOpen { epoch: String, cutoff: String },
    #[error("contributor id {0:?} is not valid")]
    ContributorInvalid(String),
    #[error("epoch {0} has not been run")]
    EpochNotRun(String),
    #[error("table {table} holds an unexpected column {column}")]
    Schema { table: &'static str, column: String },
    #[error("ledger of epoch {0} does not match its Merkle root")]
    LedgerCorrupt(String),
    #[error(
        "epoch {epoch}: {count} captures committed before the cutoff are not processed yet (first: {first}); run again once vision has finished them, or pass --force"
    )]
    NotDrained { epoch: String, count: usize, first: String },
}

impl RewardsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Storage(_) => "storage_error",
            Self::Sql(_) => "sql_error",
            Self::Arrow(_) => "table_error",
            Self::Config(_) => "config_invalid",
            Self::EpochInvalid(_) => "epoch_invalid",
            Self::EpochOpen { .. } => "epoch_open",
            Self::ContributorInvalid(_) => "contributor_invalid",
            Self::EpochNotRun(_) => "epoch_not_run",
            Self::Schema { .. } => "table_error",
            Self::LedgerCorrupt(_) => "ledger_corrupt",
            Self::NotDrained { .. } => "epoch_not_drained",
        }
    }
}
