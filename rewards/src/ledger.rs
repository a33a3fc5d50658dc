//! Ledger files: the epoch's `rewards` rows, then its `epochs` row as the commit marker. Both have
//! deterministic keys (`part-epoch-{id}`), so a rerun overwrites instead of adding, and the bytes
//! depend on the inputs only.

use crate::compute::Ledger;
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

pub fn rewards_path(l: &Ledger) -> Path {
    paths::table_file(Table::Rewards, &l.epoch.partition(), &key(&l.epoch.id))
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

pub fn rewards_batch(inputs: &Inputs, l: &Ledger) -> Result<RecordBatch> {
    let n = l.credits.len();
    let cap = |i: u32| &inputs.captures[i as usize];
    let cols: Vec<ArrayRef> = vec![
        text(std::iter::repeat_n(l.epoch.id.as_str(), n)),
        text(l.credits.iter().map(|c| &inputs.contributors[cap(c.capture).contributor as usize])),
        text(l.credits.iter().map(|c| &inputs.devices[cap(c.capture).device as usize])),
        text(l.credits.iter().map(|c| &cap(c.capture).id)),
        u64s(l.credits.iter().map(|c| c.cell)),
        text(l.credits.iter().map(|c| &inputs.mounts[c.mount as usize])),
        ts(l.credits.iter().map(|c| c.t_ms).collect()),
        Arc::new(Float64Array::from_iter_values(l.credits.iter().map(|c| c.multiplier))),
        u64s(l.credits.iter().map(|c| c.points)),
        u64s(l.credits.iter().map(|c| c.amount)),
        Arc::new(StringArray::from(l.credits.iter().map(|c| codes(c.flags)).collect::<Vec<_>>())),
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

/// Writes the rewards rows first and the epochs row last: a run killed in between leaves no
/// epochs row, so the epoch counts as not run and the rerun overwrites the rows.
pub async fn write(lake: &Lake, inputs: &Inputs, l: &Ledger) -> Result<Written> {
    let rewards = encode(Table::Rewards, &[rewards_batch(inputs, l)?])?;
    let epochs = encode(Table::Epochs, &[epochs_batch(l)?])?;
    let (rp, ep) = (rewards_path(l), epochs_path(l));
    let before_rewards = lake.get(&rp).await?;
    let before_epochs = lake.get(&ep).await?;
    let existed = before_epochs.is_some();
    let unchanged =
        before_epochs.as_deref() == Some(&epochs[..]) && before_rewards.as_deref() == Some(&rewards[..]);
    if !unchanged {
        lake.put(&rp, rewards.into()).await?;
        lake.put(&ep, epochs.into()).await?;
    }
    Ok(Written { existed, unchanged })
}
