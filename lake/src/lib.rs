//! The lake: one object store holding raw uploads, published frames, tables and queue state.
//!
//! - [`paths`] builds every object path (nowhere else formats one).
//! - [`store`] opens the store from a URL (`file://`, `memory://`, `s3://`).
//! - [`writer`] appends Parquet files to tables, partitioned by date, with GeoParquet metadata.
//! - [`queue`] is the work-queue trait and its embedded backend.
//! - [`compact`] merges small files; [`visible`] is the rule that keeps readers consistent meanwhile.
//! - `catalog` (feature `sql`) registers every table in a DataFusion `SessionContext`.

#[cfg(feature = "sql")]
pub mod catalog;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod columns;
pub mod compact;
pub mod error;
pub mod metrics;
pub mod paths;
pub mod privacy;
pub mod queue;
#[cfg(feature = "nats")]
pub mod queue_nats;
pub mod rewrite;
#[cfg(feature = "sql")]
pub mod sql;
pub mod store;
#[cfg(feature = "sql")]
pub mod udf;
pub mod visible;
pub mod writer;

pub use error::{LakeError, Result};
pub use queue::{EmbeddedQueue, Lease, WorkQueue};
pub use store::Lake;
