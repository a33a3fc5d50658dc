//! Changing rows that are already published: a privacy zone or a redaction withdraws frames, and a
//! redaction points a frame at its re-blurred version. Every visible file holding an affected row
//! is rewritten in place (same name, one atomic put), so the compaction markers that name it still
//! hold. The compaction lock is held meanwhile, so no merge reads a version about to change.

use crate::compact::try_lock;
use crate::error::{LakeError, Result};
use crate::paths;
use crate::store::Lake;
use crate::visible::list_visible;
use arrow::array::{BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use roadhex_schemas::tables::{PARTITION_COLUMN, Table};
use std::time::Duration;

/// How long a rewrite waits for a running compaction round.
const LOCK_WAIT: Duration = Duration::from_secs(300);
/// A lock older than this belongs to a dead process.
const LOCK_STALE: Duration = Duration::from_secs(900);

/// What a rewrite changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub files: usize,
    pub rows_removed: usize,
}

/// Holds the table lock for the life of the guard's owner; [`Self::release`] gives it back.
#[derive(Debug)]
pub struct TableLock {
    lake: Lake,
}

impl TableLock {
    /// Waits (bounded) for the lock compaction also takes.
    pub async fn acquire(lake: &Lake) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        while !try_lock(lake, LOCK_STALE).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(LakeError::LockBusy);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(Self { lake: lake.clone() })
    }

    pub async fn release(self) -> Result<()> {
        self.lake.delete(&paths::compaction_lock()).await
    }
}

/// Applies `edit` (partition, batch) to every batch of `table`'s visible files in the partitions
/// `dates`. `edit` returns `None` to leave a batch alone. Only files with a changed batch are written. Call with
/// the [`TableLock`] held.
pub async fn rewrite(
    lake: &Lake,
    _lock: &TableLock,
    table: Table,
    dates: &[String],
    mut edit: impl FnMut(&str, &RecordBatch) -> Result<Option<RecordBatch>>,
) -> Result<Rewritten> {
    let mut out = Rewritten::default();
    let mut dates = dates.to_vec();
    dates.sort();
    dates.dedup();
    for date in &dates {
        let prefix = paths::table_prefix(table).join(format!("{PARTITION_COLUMN}={date}"));
        for meta in list_visible(lake.store(), Some(&prefix)).await? {
            let Some(bytes) = lake.get(&meta.location).await? else { continue };
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
            let (mut batches, mut changed, mut removed) = (Vec::new(), false, 0);
            for batch in reader {
                let batch = batch?;
                match edit(date, &batch)? {
                    Some(new) => {
                        changed = true;
                        removed += batch.num_rows().saturating_sub(new.num_rows());
                        batches.push(new);
                    }
                    None => batches.push(batch),
                }
            }
            if changed {
                lake.put(&meta.location, crate::writer::encode(table, &batches)?.into()).await?;
                out.files += 1;
                out.rows_removed += removed;
            }
        }
    }
    Ok(out)
}

/// The partitions (`YYYY-MM-DD`) a table has files in.
pub async fn partitions(lake: &Lake, table: Table) -> Result<Vec<String>> {
    let mut out: Vec<String> = list_visible(lake.store(), Some(&paths::table_prefix(table)))
        .await?
        .iter()
        .filter_map(|m| crate::compact::date_of(&m.location))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads every visible file of `table` in the partitions `dates` (all when `None`), calling `f`
/// with each file's partition and batches: for jobs that must see every row without a query
/// engine (privacy enforcement and audit).
pub async fn scan(
    lake: &Lake,
    table: Table,
    dates: Option<&[String]>,
    mut f: impl FnMut(&str, &RecordBatch) -> Result<()>,
) -> Result<()> {
    let dates = match dates {
        Some(d) => d.to_vec(),
        None => partitions(lake, table).await?,
    };
    for date in &dates {
        let prefix = paths::table_prefix(table).join(format!("{PARTITION_COLUMN}={date}"));
        for meta in list_visible(lake.store(), Some(&prefix)).await? {
            let Some(bytes) = lake.get(&meta.location).await? else { continue };
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                f(date, &batch?)?;
            }
        }
    }
    Ok(())
}

/// Keeps the rows where `keep` is true; `None` when every row stays.
pub fn filter_rows(batch: &RecordBatch, keep: &BooleanArray) -> Result<Option<RecordBatch>> {
    if keep.true_count() == batch.num_rows() {
        return Ok(None);
    }
    Ok(Some(arrow::compute::filter_record_batch(batch, keep)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::text;
    use crate::writer::append;
    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
    use object_store::ObjectStoreExt as _;
    use std::sync::Arc;

    fn redactions(ids: &[&str]) -> RecordBatch {
        let n = ids.len();
        let s = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids.to_vec())),
            s("f"),
            s("requested"),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            s("r"),
            s("a"),
            Arc::new(TimestampMillisecondArray::from(vec![0; n]).with_timezone("UTC")),
        ];
        RecordBatch::try_new(Table::Redactions.schema(), cols).expect("batch")
    }

    #[tokio::test]
    async fn rewrites_only_files_with_matching_rows() {
        let dir = tempfile::tempdir().expect("tmp");
        let lake = Lake::open(&dir.path().display().to_string()).expect("lake");
        let d = "2026-11-30".to_owned();
        append(&lake, Table::Redactions, &d, "a", &[redactions(&["x", "y"])]).await.expect("a");
        let b = append(&lake, Table::Redactions, &d, "b", &[redactions(&["z"])]).await.expect("b");
        let before = lake.store().head(&b).await.expect("head b");
        let lock = TableLock::acquire(&lake).await.expect("lock");
        // Compaction cannot start while a rewrite holds the lock.
        let report = crate::compact::run(&lake, &crate::compact::CompactionConfig::default()).await;
        assert_eq!(report.expect("compaction").partitions, 0);
        let r = rewrite(&lake, &lock, Table::Redactions, std::slice::from_ref(&d), |_, batch| {
            let ids = text(batch, "redaction_id")?;
            let keep: BooleanArray = (0..batch.num_rows()).map(|i| Some(ids.value(i) != "y")).collect();
            filter_rows(batch, &keep)
        })
        .await
        .expect("rewrite");
        lock.release().await.expect("release");
        assert_eq!(r, Rewritten { files: 1, rows_removed: 1 });
        let after = lake.store().head(&b).await.expect("head b");
        assert_eq!(before.last_modified, after.last_modified, "untouched file not rewritten");
        let a = lake.get(&paths::table_file(Table::Redactions, &d, "a")).await.expect("get").expect("a");
        let rows: usize = ParquetRecordBatchReaderBuilder::try_new(a)
            .expect("reader")
            .build()
            .expect("build")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows, 1);
    }
}
