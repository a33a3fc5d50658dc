//! Ledger files: the epoch's `rewards` rows (`part-epoch-{id}-{k:04}`, [`PART_ROWS`] rows each,
//! encoded in parallel), then its `epochs` row (`part-epoch-{id}`) as the commit marker. Keys and
//! bytes depend on the inputs only, so a rerun overwrites instead of adding; parts left over from an
//! earlier run with more rows are deleted before the marker is written.

use crate::compute::{Credit, Ledger};
use crate::error::Result;
use crate::flags::codes;
use crate::input::Inputs;
use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use object_store::path::Path;
use roadhex_lake::writer::encode;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::tables::Table;
use std::sync::Arc;

/// File key of an epoch's ledger in both tables.
pub fn key(epoch_id: &str) -> String {
    format!("epoch-{epoch_id}")
}

/// Rows per rewards file (one Parquet row group); files are encoded in parallel.
pub const PART_ROWS: usize = roadhex_lake::writer::ROW_GROUP_ROWS;

/// Key of rewards part `k` of an epoch.
pub fn part_key(epoch_id: &str, k: usize) -> String {
    format!("epoch-{epoch_id}-{k:04}")
}

/// Whether `path` is a rewards part of `epoch_id` (any part number).
fn is_part_of(path: &Path, epoch_id: &str) -> bool {
    let prefix = format!("part-epoch-{epoch_id}-");
    path.filename()
        .and_then(|f| f.strip_prefix(&prefix))
        .and_then(|f| f.strip_suffix(".parquet"))
        .is_some_and(|k| k.len() == 4 && k.bytes().all(|b| b.is_ascii_digit()))
}

pub fn epochs_path(l: &Ledger) -> Path {
    paths::table_file(Table::Epochs, &l.epoch.partition(), &key(&l.epoch.id))
}

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
}

fn text<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn u64s(v: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(v))
}

pub fn rewards_batch(inputs: &Inputs, l: &Ledger, credits: &[Credit]) -> Result<RecordBatch> {
    let n = credits.len();
    let cap = |i: u32| &inputs.captures[i as usize];
    let cols: Vec<ArrayRef> = vec![
        text(std::iter::repeat_n(l.epoch.id.as_str(), n)),
        text(credits.iter().map(|c| &inputs.contributors[cap(c.capture).contributor as usize])),
        text(credits.iter().map(|c| &inputs.devices[cap(c.capture).device as usize])),
        text(credits.iter().map(|c| &cap(c.capture).id)),
        u64s(credits.iter().map(|c| c.cell)),
        text(credits.iter().map(|c| &inputs.mounts[c.mount as usize])),
        ts(credits.iter().map(|c| c.t_ms).collect()),
        Arc::new(Float64Array::from_iter_values(credits.iter().map(|c| c.multiplier))),
        u64s(credits.iter().map(|c| c.points)),
        u64s(credits.iter().map(|c| c.amount)),
        Arc::new(StringArray::from(credits.iter().map(|c| codes(c.flags)).collect::<Vec<_>>())),
    ];
    Ok(RecordBatch::try_new(Table::Rewards.schema(), cols)?)
}

pub fn epochs_batch(l: &Ledger) -> Result<RecordBatch> {
    let e = &l.epoch;
    let cols: Vec<ArrayRef> = vec![
        text([e.id.as_str()]),
        ts(vec![e.start_ms]),
        ts(vec![e.end_ms]),
        ts(vec![e.cutoff_ms]),
        text([l.config_version.as_str()]),
        u64s([l.budget]),
        Arc::new(Float64Array::from(vec![l.total_points as f64 / 1e6])),
        text([l.merkle_root.as_str()]),
        ts(vec![e.cutoff_ms]),
    ];
    Ok(RecordBatch::try_new(Table::Epochs.schema(), cols)?)
}

/// What writing found: whether the epoch had been run before and whether its ledger changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub existed: bool,
    pub unchanged: bool,
}

/// Writes the rewards parts first and the epochs row last: a run killed in between leaves no
/// epochs row, so the epoch counts as not run and the rerun overwrites the parts.
pub async fn write(lake: &Lake, inputs: &Inputs, l: &Ledger) -> Result<Written> {
    let chunks: Vec<&[Credit]> =
        if l.credits.is_empty() { vec![&[]] } else { l.credits.chunks(PART_ROWS).collect() };
    let parts = encode_parts(inputs, l, &chunks)?;
    let epochs = encode(Table::Epochs, &[epochs_batch(l)?])?;
    let partition = l.epoch.partition();
    let ep = epochs_path(l);
    let dir = Path::from(format!("{}/date={partition}", paths::table_prefix(Table::Rewards)));
    let old: Vec<Path> = lake.list(&dir).await?.into_iter().filter(|p| is_part_of(p, &l.epoch.id)).collect();
    let new_paths: Vec<Path> = (0..parts.len())
        .map(|k| paths::table_file(Table::Rewards, &partition, &part_key(&l.epoch.id, k)))
        .collect();
    let before_epochs = lake.get(&ep).await?;
    let existed = before_epochs.is_some();
    let mut unchanged = before_epochs.as_deref() == Some(&epochs[..]) && old.len() == parts.len();
    for (p, bytes) in new_paths.iter().zip(&parts) {
        if !unchanged {
            break;
        }
        unchanged = lake.get(p).await?.as_deref() == Some(&bytes[..]);
    }
    if !unchanged {
        for (p, bytes) in new_paths.iter().zip(parts) {
            lake.put(p, bytes.into()).await?;
        }
        for stale in old.iter().filter(|p| !new_paths.contains(p)) {
            lake.delete(stale).await?;
        }
        lake.put(&ep, epochs.into()).await?;
    }
    Ok(Written { existed, unchanged })
}

/// Encodes each chunk as one Parquet file, one worker per core taking the next chunk as it
/// finishes one (a fixed split of five parts over two threads left one idle for a third of the write).
fn encode_parts(inputs: &Inputs, l: &Ledger, chunks: &[&[Credit]]) -> Result<Vec<Vec<u8>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let encode_one =
        |c: &[Credit]| -> Result<Vec<u8>> { Ok(encode(Table::Rewards, &[rewards_batch(inputs, l, c)?])?) };
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(k) else { return done };
            done.push((k, encode_one(chunk)));
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(chunks.len()).max(1);
    let mut done: Vec<(usize, Result<Vec<u8>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        all
    });
    done.sort_by_key(|(k, _)| *k);
    done.into_iter().map(|(_, part)| part).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_recognised_by_epoch_and_number() {
        let p = |k: &str| paths::table_file(Table::Rewards, "2026-03-02", k);
        assert!(is_part_of(&p(&part_key("2026-W10", 3)), "2026-W10"));
        assert!(!is_part_of(&p(&part_key("2026-W10", 3)), "2026-W1"));
        assert!(!is_part_of(&p(&key("2026-W10")), "2026-W10"));
        assert!(!is_part_of(&p("epoch-2026-W10-00x1"), "2026-W10"));
    }
}
