//! Read-only SQL over the catalog and the result formats analysts ask for.

use crate::error::{LakeError, Result};
use crate::store::Lake;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::prelude::SessionContext;
use futures::StreamExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text table.
    Table,
    Csv,
    /// One JSON object per row, one per line.
    Json,
    /// One JSON array of row objects.
    JsonArray,
    /// Arrow IPC stream.
    Arrow,
    Parquet,
}

impl Format {
    /// The media type of the rendered bytes.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Table => "text/plain; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/x-ndjson",
            Self::JsonArray => "application/json",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format an HTTP `Accept` header asks for (highest `q` first, then order; none or `*/*`
    /// gives JSON); `None` when nothing offered is acceptable.
    pub fn from_accept(accept: Option<&str>) -> Option<Self> {
        let Some(accept) = accept else { return Some(Self::JsonArray) };
        let mut entries: Vec<(f32, &str)> = accept
            .split(',')
            .map(|entry| {
                let mut parts = entry.split(';');
                let media = parts.next().unwrap_or_default().trim();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q, media)
            })
            .filter(|(q, _)| *q > 0.0)
            .collect();
        entries.sort_by(|a, b| b.0.total_cmp(&a.0));
        entries.into_iter().find_map(|(_, media)| match media.to_ascii_lowercase().as_str() {
            "application/json" | "*/*" | "application/*" | "" => Some(Self::JsonArray),
            "application/x-ndjson" | "application/jsonl" => Some(Self::Json),
            "text/csv" => Some(Self::Csv),
            "text/plain" | "text/*" => Some(Self::Table),
            "application/vnd.apache.arrow.stream" => Some(Self::Arrow),
            "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
            _ => None,
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "json-array" => Ok(Self::JsonArray),
            "arrow" => Ok(Self::Arrow),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!("unknown format {s:?} (table, csv, json, json-array, arrow, parquet)")),
        }
    }
}

/// Bounds on what one query may use.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlLimits {
    /// Memory shared by all running queries, in bytes; operators spill or fail beyond it.
    pub memory_bytes: usize,
    /// Spill space on disk, in bytes.
    pub spill_bytes: u64,
    /// Spill directory (default: the OS temp directory).
    pub spill_dir: Option<PathBuf>,
    /// Wall-clock limit per query (planning and execution), in seconds.
    pub timeout_s: f64,
    /// Rows returned at most; the rest is cut and the result marked truncated.
    pub max_rows: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 << 30,
            spill_bytes: 8 << 30,
            spill_dir: None,
            timeout_s: 120.0,
            max_rows: 1_000_000,
        }
    }
}

/// A query's result: the batches (at most `max_rows` rows) and whether rows were cut.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
}

/// Read-only SQL over the lake with the limits applied; one runtime (memory pool, spill space)
/// shared by every query it runs.
#[derive(Clone)]
pub struct SqlEngine {
    /// The store a cluster session registers (the local session has it already).
    #[cfg(feature = "ballista")]
    lake: Lake,
    /// One session for every local query: building one (functions, nine tables) cost about 9 ms a
    /// query. Tables list their files at each scan, so it still sees every new file.
    local: SessionContext,
    limits: SqlLimits,
    /// A Ballista scheduler (`df://host:port`) that runs the queries instead of this process.
    cluster: Option<String>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("limits", &self.limits)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl SqlEngine {
    pub fn new(lake: Lake, limits: SqlLimits) -> Result<Self> {
        let mut disk = DiskManagerBuilder::default().with_max_temp_directory_size(limits.spill_bytes);
        if let Some(dir) = &limits.spill_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LakeError::BadUrl { url: dir.display().to_string(), reason: e.to_string() })?;
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        let runtime = crate::catalog::runtime_builder()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(disk)
            .build_arc()?;
        let local = crate::catalog::session_with(&lake, runtime)?;
        Ok(Self {
            #[cfg(feature = "ballista")]
            lake,
            local,
            limits,
            cluster: None,
        })
    }

    /// Runs every query on the Ballista scheduler at `url` (`df://host:port`); planning stays here.
    #[cfg(feature = "ballista")]
    pub fn with_cluster(mut self, url: &str) -> Self {
        self.cluster = Some(url.to_owned());
        self
    }

    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// A session over the current files of every table.
    pub fn session(&self) -> Result<SessionContext> {
        match &self.cluster {
            #[cfg(feature = "ballista")]
            Some(url) => crate::cluster::remote_session(&self.lake, url),
            _ => Ok(self.local.clone()),
        }
    }

    /// Plans and runs `sql` within the limits.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let timeout = Duration::from_secs_f64(self.limits.timeout_s.max(0.001));
        let ctx = self.session()?;
        match tokio::time::timeout(timeout, run(&ctx, sql, self.limits.max_rows)).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(LakeError::SqlTimeout(self.limits.timeout_s)),
        }
    }
}

impl SqlEngine {
    /// [`classify`], with a scheduler that cannot be reached told apart from a failed query.
    fn classify(&self, e: DataFusionError) -> LakeError {
        #[cfg(feature = "ballista")]
        if let Some(err) = self.cluster.as_deref().and_then(|url| crate::cluster::unreachable(url, &e)) {
            return err;
        }
        classify(e)
    }

    /// The result schema of `sql`, from planning alone (Flight SQL announces it before fetching).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef> {
        let ctx = self.session()?;
        let df = plan(&ctx, sql).await.map_err(|e| self.classify(e))?;
        Ok(plain_strings(&Arc::new(df.schema().as_arrow().clone())))
    }
}

async fn plan(ctx: &SessionContext, sql: &str) -> DfResult<datafusion::dataframe::DataFrame> {
    let opts = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    ctx.sql_with_options(sql, opts).await
}

/// Runs one query with DDL, DML and other statements refused (the lake is read-only here).
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(run(ctx, sql, usize::MAX).await.map_err(classify)?.batches)
}

async fn run(ctx: &SessionContext, sql: &str, max_rows: usize) -> DfResult<QueryResult> {
    let df = plan(ctx, sql).await?;
    let mut stream = df.execute_stream().await?;
    let schema = plain_strings(&stream.schema());
    let (mut batches, mut rows, mut truncated) = (Vec::new(), 0usize, false);
    while let Some(batch) = stream.next().await {
        let batch = to_schema(batch?, &schema)?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok(QueryResult { schema, batches, truncated })
}

/// `schema` with string views as plain strings: tables are scanned as views (see
/// `catalog::read_schema`), but results keep the types the docs list, which every Arrow, Parquet
/// and Flight SQL client reads.
fn plain_strings(schema: &SchemaRef) -> SchemaRef {
    crate::catalog::retyped(schema, &DataType::Utf8View, &DataType::Utf8)
}

/// `batch` cast to `schema` (from [`plain_strings`] of its own).
fn to_schema(batch: RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Sorts a DataFusion error into what the caller did wrong (with the position in the query when
/// known), what the lake refuses, what ran out, and internal failures.
fn classify(e: DataFusionError) -> LakeError {
    let (line, column) = position(&e);
    let message = e.find_root().message().into_owned();
    // A full spill directory surfaces as an I/O error that names the setting.
    let spill_full = message.contains("max_temp_directory_size");
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => LakeError::SqlResources(message),
        _ if spill_full => LakeError::SqlResources(message),
        DataFusionError::Plan(m)
            if ["DDL not supported", "DML not supported", "Statement not supported"]
                .iter()
                .any(|p| m.starts_with(p)) =>
        {
            LakeError::SqlRefused(message)
        }
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        // DataFusion's "not implemented" means SQL it does not support: the query's fault, not ours.
        | DataFusionError::NotImplemented(_) => LakeError::SqlInvalid { message, line, column },
        _ => LakeError::DataFusion(e),
    }
}

/// Line and column of the error in the query: from DataFusion's diagnostic span, else from the
/// parser's "at Line: L, Column: C" suffix.
fn position(e: &DataFusionError) -> (Option<u64>, Option<u64>) {
    if let Some(span) = e.diagnostic().and_then(|d| d.span)
        && span.start.line > 0
    {
        return (Some(span.start.line), Some(span.start.column));
    }
    let text = e.to_string();
    let number_after = |tag: &str| -> Option<u64> {
        let rest = &text[text.rfind(tag)? + tag.len()..];
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    (number_after("Line:"), number_after("Column:"))
}

/// Writes batches in `format`; `schema` keeps the columns of an empty result in the binary formats.
pub fn render(schema: &SchemaRef, batches: &[RecordBatch], format: Format) -> Result<Vec<u8>> {
    // An empty result still shows its columns (CSV header, table frame).
    let empty = [RecordBatch::new_empty(Arc::clone(schema))];
    let batches = if batches.is_empty() { &empty[..] } else { batches };
    let mut out = Vec::new();
    match format {
        Format::Table => {
            out = datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string().into_bytes();
            out.push(b'\n');
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::JsonArray => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
        }
        Format::Arrow => {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, Arc::clone(schema), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_only_and_formats() {
        let lake = crate::Lake::open("memory://").expect("open");
        let ctx = crate::catalog::session(&lake).expect("session");
        for bad in
            ["CREATE TABLE t AS SELECT 1", "INSERT INTO epochs SELECT * FROM epochs", "SET datafusion.x = 1"]
        {
            assert!(query(&ctx, bad).await.is_err(), "{bad} must be refused");
        }
        let rows = query(&ctx, "SELECT 1 AS a, 'x' AS b").await.expect("query");
        let schema = rows[0].schema();
        assert_eq!(
            String::from_utf8(render(&schema, &rows, Format::Csv).expect("csv")).expect("utf8"),
            "a,b\n1,x\n"
        );
        assert_eq!(
            String::from_utf8(render(&schema, &rows, Format::Json).expect("json")).expect("utf8"),
            "{\"a\":1,\"b\":\"x\"}\n"
        );
        assert!(
            String::from_utf8(render(&schema, &rows, Format::Table).expect("table"))
                .expect("utf8")
                .contains("| 1 | x |")
        );
        assert!(render(&schema, &rows, Format::Parquet).expect("parquet").starts_with(b"PAR1"));
        assert_eq!(render(&schema, &rows, Format::JsonArray).expect("json"), br#"[{"a":1,"b":"x"}]"#);
        let ipc = render(&schema, &rows, Format::Arrow).expect("arrow");
        let back = arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).expect("ipc");
        assert_eq!(back.map(|b| b.expect("batch").num_rows()).sum::<usize>(), 1);
        assert_eq!(render(&schema, &[], Format::JsonArray).expect("empty"), b"[]");
        assert_eq!(render(&schema, &[], Format::Csv).expect("empty"), b"a,b\n");
    }

    #[test]
    fn accept_header() {
        let f = Format::from_accept;
        assert_eq!(f(None), Some(Format::JsonArray));
        assert_eq!(f(Some("text/csv;q=0.9, application/json")), Some(Format::JsonArray));
        assert_eq!(f(Some("text/csv, application/json")), Some(Format::Csv));
        assert_eq!(f(Some("application/vnd.apache.arrow.stream")), Some(Format::Arrow));
        assert_eq!(f(Some("image/png, application/x-parquet")), Some(Format::Parquet));
        assert_eq!(f(Some("image/png")), None);
    }

    fn engine(limits: SqlLimits) -> SqlEngine {
        SqlEngine::new(crate::Lake::open("memory://").expect("open"), limits).expect("engine")
    }

    #[tokio::test]
    async fn errors_say_what_and_where() {
        let e = engine(SqlLimits::default());
        let err = e.query("SELECT frame_id FROM frames WHERE").await.expect_err("syntax");
        assert_eq!(err.code(), "sql_invalid", "{err}");
        let err = e.query("SELECT 1,\n  nope FROM frames").await.expect_err("unknown column");
        match &err {
            LakeError::SqlInvalid { line, column, message } => {
                assert_eq!((*line, *column), (Some(2), Some(3)), "{message}");
                assert!(message.contains("nope"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        for bad in ["DROP TABLE frames", "COPY frames TO '/tmp/x.csv'", "SET datafusion.x = 1"] {
            assert_eq!(e.query(bad).await.expect_err(bad).code(), "sql_refused", "{bad}");
        }
        // URL tables stay off: a path is not a table name.
        assert_eq!(e.query("SELECT * FROM '/etc/passwd'").await.expect_err("url").code(), "sql_invalid");
    }

    #[tokio::test]
    async fn the_next_query_sees_new_files() {
        // One engine serves the node's lifetime, so nothing it caches may hide a file written
        // after its first query, nor show one that compaction replaced.
        let lake = crate::Lake::open("memory://").expect("open");
        let e = SqlEngine::new(lake.clone(), SqlLimits::default()).expect("engine");
        let count = |sql: &'static str| {
            let e = e.clone();
            async move {
                let r = e.query(sql).await.expect("query");
                r.batches[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("i64")
                    .value(0)
            }
        };
        let all = "SELECT count(*) FROM epochs";
        let day = "SELECT count(*) FROM epochs WHERE date = '2026-05-02'";
        assert_eq!((count(all).await, count(day).await), (0, 0));
        let t = roadhex_schemas::tables::Table::Epochs;
        crate::writer::append(&lake, t, "2026-05-01", "a", &[crate::catalog::tests::epoch_rows("a", 2)])
            .await
            .expect("append");
        assert_eq!((count(all).await, count(day).await), (2, 0));
        crate::writer::append(&lake, t, "2026-05-02", "b", &[crate::catalog::tests::epoch_rows("b", 3)])
            .await
            .expect("append");
        assert_eq!((count(all).await, count(day).await), (5, 3));
    }

    #[tokio::test]
    async fn row_cap_and_timeout() {
        let e = engine(SqlLimits { max_rows: 5, ..SqlLimits::default() });
        let r = e.query("SELECT * FROM generate_series(1, 100)").await.expect("query");
        assert!(r.truncated);
        assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
        let r = e.query("SELECT * FROM generate_series(1, 5)").await.expect("query");
        assert!(!r.truncated);

        let e = engine(SqlLimits { timeout_s: 0.05, ..SqlLimits::default() });
        let slow = "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 1000) b";
        assert_eq!(e.query(slow).await.expect_err("timeout").code(), "sql_timeout");
    }

    #[tokio::test]
    async fn memory_limit_is_an_error_not_a_crash() {
        let e = engine(SqlLimits { memory_bytes: 1 << 20, spill_bytes: 0, ..SqlLimits::default() });
        let big = "SELECT value % 1000003 AS k, array_agg(value) FROM generate_series(1, 3000000) GROUP BY 1";
        let err = e.query(big).await.expect_err("memory");
        assert_eq!(err.code(), "sql_resources_exhausted", "{err:?}");
    }
}
