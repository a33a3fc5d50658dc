//! Every table registered in one DataFusion `SessionContext`, as listing tables over the lake's
//! Parquet files with the `date` partition column, so filters on `date` prune files.

use crate::error::{LakeError, Result};
use crate::paths;
use crate::store::Lake;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use roadhex_schemas::tables::{PARTITION_COLUMN, Table};
use std::sync::Arc;
use url::Url;

/// The URL under which the lake's store is registered with DataFusion.
const LAKE_URL: &str = "roadhex://lake/";

/// A session with every table registered (empty tables included, with their full schema).
pub fn session(lake: &Lake) -> Result<SessionContext> {
    session_with(lake, runtime_builder().build_arc()?)
}

/// The runtime every roadhex session starts from. DataFusion caches directory listings forever
/// by default, and a runtime outlives its first query (the SQL engine keeps one for the node's
/// life), so that cache would hide every file written since: it is off. Footers and statistics
/// stay cached: lake files are immutable and their cache entries are checked against size and
/// modification time.
pub(crate) fn runtime_builder() -> RuntimeEnvBuilder {
    RuntimeEnvBuilder::new().with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
}

/// [`session`] on a given runtime (memory pool and spill limits shared by the sessions that use it).
pub fn session_with(lake: &Lake, runtime: Arc<RuntimeEnv>) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config_rt(config()?, runtime);
    register_store(lake, ctx.runtime_env().as_ref())?;
    crate::udf::register(&ctx);
    register_tables(&ctx)?;
    Ok(ctx)
}

/// The session settings every roadhex query runs with.
pub(crate) fn config() -> Result<SessionConfig> {
    // DATAFUSION_* environment variables tune the engine (e.g. DATAFUSION_EXECUTION_TARGET_PARTITIONS).
    let mut config = SessionConfig::from_env()?.with_information_schema(true);
    // Spans let planning errors point at the offending part of the query.
    config.options_mut().sql_parser.collect_spans = true;
    Ok(config)
}

/// Makes the lake's files readable through `runtime` under [`LAKE_URL`]. Listings go through
/// `VisibleStore`, which applies compaction markers: a query never sees a file twice.
pub(crate) fn register_store(lake: &Lake, runtime: &RuntimeEnv) -> Result<()> {
    let base = Url::parse(LAKE_URL)
        .map_err(|e| LakeError::BadUrl { url: LAKE_URL.into(), reason: e.to_string() })?;
    runtime
        .register_object_store(&base, Arc::new(crate::visible::VisibleStore::new(Arc::clone(lake.store()))));
    Ok(())
}

/// The schema queries read `table` with: its strings as string views, which DataFusion scans
/// without copying each value (a quarter faster on string filters over 10 M rows). Results leave
/// [`crate::sql`] as plain strings again.
fn read_schema(table: Table) -> SchemaRef {
    retyped(&table.schema(), &DataType::Utf8, &DataType::Utf8View)
}

/// `schema` with every field of type `from` changed to `to` (metadata kept).
pub(crate) fn retyped(schema: &SchemaRef, from: &DataType, to: &DataType) -> SchemaRef {
    if !schema.fields().iter().any(|f| f.data_type() == from) {
        return Arc::clone(schema);
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            t if t == from => Arc::new(f.as_ref().clone().with_data_type(to.clone())),
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Registers every table as a listing table under [`LAKE_URL`] (empty tables keep their schema).
pub(crate) fn register_tables(ctx: &SessionContext) -> Result<()> {
    for table in Table::ALL {
        let url = format!("{LAKE_URL}{}/", paths::table_prefix(table));
        let url = ListingTableUrl::parse(&url)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![(PARTITION_COLUMN.to_owned(), DataType::Utf8)]);
        let config =
            ListingTableConfig::new(url).with_listing_options(options).with_schema(read_schema(table));
        // Statistics per file come from the runtime's cache (checked against size and modification
        // time), as DataFusion's own `register_listing_table` does; without it every query
        // recomputed them for every file.
        let stats = ctx.runtime_env().cache_manager.get_file_statistic_cache();
        ctx.register_table(table.name(), Arc::new(ListingTable::try_new(config)?.with_cache(stats)))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[tokio::test]
    async fn every_table_is_queryable_when_empty() {
        let lake = Lake::open("memory://").expect("open");
        let ctx = session(&lake).expect("session");
        for t in Table::ALL {
            let df = ctx.sql(&format!("SELECT count(*) AS n FROM {}", t.name())).await.expect("plan");
            let batches = df.collect().await.expect("run");
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        }
    }

    /// `n` rows of `epochs` for epoch `key` (any table would do; this one is small).
    pub(crate) fn epoch_rows(key: &str, n: usize) -> datafusion::arrow::array::RecordBatch {
        use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let ts = || Arc::new(TimestampMillisecondArray::from(vec![0i64; n]).with_timezone("UTC")) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            text(key),
            ts(),
            ts(),
            ts(),
            text("v1"),
            Arc::new(datafusion::arrow::array::UInt64Array::from(vec![7u64; n])),
            Arc::new(Float64Array::from(vec![1.0; n])),
            text("00"),
            ts(),
        ];
        datafusion::arrow::array::RecordBatch::try_new(Table::Epochs.schema(), cols).expect("batch")
    }

    #[tokio::test]
    async fn reads_written_files_with_the_date_partition() {
        let lake = Lake::open("memory://").expect("open");
        for (date, key, n) in [("2026-05-01", "a", 2usize), ("2026-05-02", "b", 3)] {
            crate::writer::append(&lake, Table::Epochs, date, key, &[epoch_rows(key, n)])
                .await
                .expect("append");
        }
        let ctx = session(&lake).expect("session");
        let df = ctx
            .sql("SELECT date, count(*) AS n FROM epochs WHERE date = '2026-05-02' GROUP BY date")
            .await
            .expect("plan");
        let rows = df.collect().await.expect("run");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows).expect("fmt").to_string();
        assert!(text.contains("2026-05-02") && text.contains("| 3 "), "{text}");
        assert!(!text.contains("2026-05-01"), "{text}");
    }
}
