//! Background compaction: frequent flushes leave many small Parquet files per partition; this
//! merges them into one file per round without readers ever seeing rows twice or not at all (see
//! [`crate::visible`] for the commit protocol), and deletes replaced files after a grace period.

use crate::error::Result;
use crate::paths::{self, COMPACT_PREFIX, MARKER_DIR};
use crate::store::Lake;
use crate::visible::{Marker, list_visible};
use arrow::array::RecordBatch;
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt as _};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::tables::{PARTITION_COLUMN, Table};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// When and how compaction runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// A partition is compacted once it has this many small files.
    pub min_files: usize,
    /// Files at least this large are left alone.
    pub small_bytes: u64,
    /// Replaced files are deleted this long after the compaction commits (longer than a query).
    pub grace_s: u64,
    /// Seconds between rounds in `serve`; 0 turns background compaction off.
    pub interval_s: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self { min_files: 8, small_bytes: 64 << 20, grace_s: 900, interval_s: 300 }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Partitions merged into a new file.
    pub partitions: usize,
    /// Files those merges replaced.
    pub files_replaced: usize,
    /// Replaced files deleted after their grace period.
    pub files_deleted: usize,
    /// Partitions skipped because their files disagree with the table schema.
    pub skipped: usize,
}

/// One round over every table: merge, then collect garbage. Holds the compaction lock; returns an
/// empty report when another compactor holds it.
pub async fn run(lake: &Lake, config: &CompactionConfig) -> Result<CompactionReport> {
    if !try_lock(lake, Duration::from_secs(config.grace_s.max(600))).await? {
        return Ok(CompactionReport::default());
    }
    let lock = paths::compaction_lock();
    let mut report = CompactionReport::default();
    let result = async {
        for table in Table::ALL.into_iter().filter(|t| compactable(*t)) {
            round(lake, table, config, &mut report).await?;
        }
        Ok::<_, crate::LakeError>(())
    }
    .await;
    lake.delete(&lock).await?;
    result.map(|()| report)
}

/// Takes the store-wide lock that compaction and row rewrites hold; false when someone else holds
/// it (a lock older than `stale_after` is taken over: its holder died).
pub(crate) async fn try_lock(lake: &Lake, stale_after: Duration) -> Result<bool> {
    let lock = paths::compaction_lock();
    if lake.put_new(&lock, bytes::Bytes::from(std::process::id().to_string())).await? {
        return Ok(true);
    }
    if !stale(lake, &lock, stale_after).await? {
        return Ok(false);
    }
    lake.delete(&lock).await?;
    lake.put_new(&lock, bytes::Bytes::from(std::process::id().to_string())).await
}

/// Tables their owner rewrites whole under fixed keys (the rewards ledger, the features layer) are
/// left alone: merging them would hide a rewrite behind an older compaction marker.
fn compactable(table: Table) -> bool {
    !matches!(table, Table::Rewards | Table::Epochs | Table::Features)
}

async fn stale(lake: &Lake, path: &Path, age: Duration) -> Result<bool> {
    let meta = match lake.store().head(path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    Ok(chrono::Utc::now() - meta.last_modified > chrono::Duration::from_std(age).unwrap_or_default())
}

async fn round(
    lake: &Lake,
    table: Table,
    config: &CompactionConfig,
    report: &mut CompactionReport,
) -> Result<()> {
    let prefix = paths::table_prefix(table);
    let visible = list_visible(lake.store(), Some(&prefix)).await?;
    let mut partitions: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for meta in visible {
        if let Some(date) = date_of(&meta.location) {
            partitions.entry(date).or_default().push(meta);
        }
    }
    for (date, files) in &partitions {
        let small: Vec<&ObjectMeta> = files.iter().filter(|m| m.size < config.small_bytes).collect();
        if small.len() < config.min_files {
            continue;
        }
        if merge(lake, table, date, &small).await? {
            report.partitions += 1;
            report.files_replaced += small.len();
        } else {
            report.skipped += 1;
        }
    }
    report.files_deleted += collect_garbage(lake, table, Duration::from_secs(config.grace_s)).await?;
    Ok(())
}

/// Merges `inputs` (sorted by name, so the output is the same on a rerun) into one file and
/// commits it with a marker. Returns false when an input's schema is not the table's.
async fn merge(lake: &Lake, table: Table, date: &str, inputs: &[&ObjectMeta]) -> Result<bool> {
    let mut inputs: Vec<&ObjectMeta> = inputs.to_vec();
    inputs.sort_by(|a, b| a.location.cmp(&b.location));
    let schema = table.schema();
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut replaces: Vec<String> = Vec::new();
    for meta in &inputs {
        let Some(bytes) = lake.get(&meta.location).await? else { return Ok(false) };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        for batch in reader {
            let batch = batch?;
            if batch.schema().fields() != schema.fields() {
                tracing::warn!(file = %meta.location, "not compacted: columns differ from the table schema");
                return Ok(false);
            }
            batches.push(batch);
        }
        let name = meta.location.filename().unwrap_or_default().to_owned();
        if name.starts_with(COMPACT_PREFIX) {
            replaces.extend(replaced_by(lake, table, date, &name).await?);
        }
        replaces.push(name);
    }
    replaces.sort();
    replaces.dedup();
    let id = sha256_hex(replaces.join("\n").as_bytes())[..32].to_owned();
    let output = paths::compacted_file(table, date, &id);
    let merged = arrow::compute::concat_batches(&schema, &batches)?;
    lake.put(&output, crate::writer::encode(table, &[sort_by_area(merged)?])?.into()).await?;
    let marker = Marker { output: output.filename().unwrap_or_default().to_owned(), replaces };
    lake.put_json(&paths::compaction_marker(table, date, &id), &marker).await?;
    Ok(true)
}

/// Orders rows by H3 cell (coarse to fine parents, so nearby rows share row groups) when the table
/// has cell columns: row-group statistics then prune queries that filter on an area, the way a
/// partition by cell would, without a directory per cell.
fn sort_by_area(batch: RecordBatch) -> Result<RecordBatch> {
    let keys: Vec<arrow::compute::SortColumn> = ["h3_r6", "h3_r8", "h3_r10", "h3_r12"]
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|values| arrow::compute::SortColumn { values: std::sync::Arc::clone(values), options: None })
        .collect();
    if keys.is_empty() {
        return Ok(batch);
    }
    let order = arrow::compute::lexsort_to_indices(&keys, None)?;
    Ok(arrow::compute::take_record_batch(&batch, &order)?)
}

/// Names an earlier compaction output replaced (from its marker).
async fn replaced_by(lake: &Lake, table: Table, date: &str, output: &str) -> Result<Vec<String>> {
    let id = output.trim_start_matches(COMPACT_PREFIX).trim_end_matches(".parquet");
    let marker: Option<Marker> = lake.get_json(&paths::compaction_marker(table, date, id)).await?;
    Ok(marker.map(|m| m.replaces).unwrap_or_default())
}

/// Deletes files replaced by markers older than `grace`, outputs no marker names (a compactor
/// died before committing), then markers whose output is gone (their names live on in the marker
/// that replaced the output).
async fn collect_garbage(lake: &Lake, table: Table, grace: Duration) -> Result<usize> {
    let prefix = paths::table_prefix(table);
    let all: Vec<ObjectMeta> = lake.store().list(Some(&prefix)).try_collect().await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let mut markers = Vec::new();
    for meta in all.iter().filter(|m| m.location.parts().any(|p| p.as_ref() == MARKER_DIR)) {
        if let (Some(marker), Some(dir)) =
            (lake.get_json::<Marker>(&meta.location).await?, partition_dir(&meta.location))
        {
            markers.push((meta, dir, marker));
        }
    }
    let mut doomed: HashSet<Path> = HashSet::new();
    for (meta, dir, marker) in &markers {
        if meta.last_modified <= cutoff {
            doomed.extend(marker.replaces.iter().map(|n| dir.clone().join(n.as_str())));
        }
    }
    let outputs: HashSet<Path> =
        markers.iter().map(|(_, dir, m)| dir.clone().join(m.output.as_str())).collect();
    let orphan = |m: &ObjectMeta| {
        m.location.filename().is_some_and(|n| n.starts_with(COMPACT_PREFIX))
            && !outputs.contains(&m.location)
            && m.last_modified <= cutoff
    };
    let mut deleted = 0;
    let mut present: HashSet<&Path> = HashSet::new();
    for meta in &all {
        if doomed.contains(&meta.location) || orphan(meta) {
            lake.delete(&meta.location).await?;
            deleted += 1;
        } else {
            present.insert(&meta.location);
        }
    }
    for (meta, dir, marker) in &markers {
        if !present.contains(&dir.clone().join(marker.output.as_str())) {
            lake.delete(&meta.location).await?;
        }
    }
    Ok(deleted)
}

fn partition_dir(marker: &Path) -> Option<Path> {
    let parts: Vec<_> = marker.parts().collect();
    (parts.len() >= 2).then(|| Path::from_iter(parts[..parts.len() - 2].iter().cloned()))
}

pub(crate) fn date_of(path: &Path) -> Option<String> {
    let tag = format!("{PARTITION_COLUMN}=");
    path.parts().find_map(|p| p.as_ref().strip_prefix(tag.as_str()).map(str::to_owned))
}

#[cfg(all(test, feature = "sql"))]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
    use std::sync::Arc;

    fn redactions(key: &str, n: usize) -> RecordBatch {
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let ts = || Arc::new(TimestampMillisecondArray::from(vec![0i64; n]).with_timezone("UTC")) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            text(key),
            text("frame"),
            text("requested"),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            text("reason"),
            text("actor"),
            ts(),
        ];
        RecordBatch::try_new(Table::Redactions.schema(), cols).expect("batch")
    }

    async fn count(lake: &Lake) -> (i64, i64) {
        let ctx = crate::catalog::session(lake).expect("session");
        let sql = "SELECT count(*) AS n, count(DISTINCT redaction_id) AS k FROM redactions";
        let rows = crate::sql::query(&ctx, sql).await.expect("query");
        let col = |i: usize| {
            rows[0].column(i).as_any().downcast_ref::<arrow::array::Int64Array>().expect("i64").value(0)
        };
        (col(0), col(1))
    }

    #[test]
    fn rows_are_ordered_by_area() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("h3_r8", arrow::datatypes::DataType::UInt64, false),
            arrow::datatypes::Field::new("h3_r12", arrow::datatypes::DataType::UInt64, false),
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![2, 1, 2, 1])),
            Arc::new(UInt64Array::from(vec![20, 11, 21, 10])),
            Arc::new(StringArray::from(vec!["c", "b", "d", "a"])),
        ];
        let sorted = sort_by_area(RecordBatch::try_new(schema, cols).expect("batch")).expect("sort");
        let ids = sorted.column(2).as_any().downcast_ref::<StringArray>().expect("utf8");
        assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    async fn files(lake: &Lake) -> usize {
        lake.list(&paths::table_prefix(Table::Redactions)).await.expect("list").len()
    }

    #[tokio::test]
    async fn merges_without_gaps_or_duplicates_and_collects_garbage() {
        merge_and_collect(Lake::open("memory://").expect("memory")).await;
        let dir = tempfile::tempdir().expect("tmp");
        merge_and_collect(Lake::open(dir.path().to_str().expect("utf8")).expect("file")).await;
    }

    async fn merge_and_collect(lake: Lake) {
        for i in 0..10 {
            let key = format!("k{i}");
            crate::writer::append(&lake, Table::Redactions, "2026-05-01", &key, &[redactions(&key, i + 1)])
                .await
                .expect("append");
        }
        assert_eq!(count(&lake).await, (55, 10));
        // An output nobody committed (a compactor killed before its marker) is invisible.
        let orphan = paths::compacted_file(Table::Redactions, "2026-05-01", "dead");
        lake.put(
            &orphan,
            crate::writer::encode(Table::Redactions, &[redactions("x", 3)]).expect("enc").into(),
        )
        .await
        .expect("put");
        assert_eq!(count(&lake).await, (55, 10));

        let keep = CompactionConfig { grace_s: 3600, ..CompactionConfig::default() };
        let r = run(&lake, &keep).await.expect("compact");
        assert_eq!((r.partitions, r.files_replaced, r.files_deleted), (1, 10, 0));
        // Inputs are still there for queries that listed them, but nobody sees them twice.
        assert_eq!(count(&lake).await, (55, 10));
        assert_eq!(files(&lake).await, 10 + 1 + 1 + 1);

        // More flushes, a retried old flush, and a second round that folds in the first output.
        for i in 10..18 {
            let key = format!("k{i}");
            crate::writer::append(&lake, Table::Redactions, "2026-05-01", &key, &[redactions(&key, 1)])
                .await
                .expect("append");
        }
        crate::writer::append(&lake, Table::Redactions, "2026-05-01", "k3", &[redactions("k3", 4)])
            .await
            .expect("retry");
        assert_eq!(count(&lake).await, (63, 18));
        let now = CompactionConfig { grace_s: 0, ..CompactionConfig::default() };
        let r = run(&lake, &now).await.expect("compact");
        assert_eq!(r.partitions, 1);
        assert_eq!(count(&lake).await, (63, 18));
        // Only the newest output and its marker remain (the uncommitted orphan is gone too).
        assert_eq!(files(&lake).await, 2, "{:?}", lake.list(&paths::table_prefix(Table::Redactions)).await);
        assert!(!lake.exists(&paths::compaction_lock()).await.expect("lock"));
    }
}
