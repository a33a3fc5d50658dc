//! What an epoch reads: captures, published frames and coverage observations from the public
//! tables (through the DataFusion catalog), and revocations from the device registry.

use crate::error::{Result, RewardsError};
use arrow::array::RecordBatch;
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use futures::{StreamExt as _, TryStreamExt as _};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::DeviceId;
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style hasher for the per-row id lookups (tens of millions per epoch). Ids are hex of
/// SHA-256, so they are already well spread; SipHash's DoS resistance buys nothing offline.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap = HashMap<String, u32, BuildHasherDefault<IdHasher>>;

/// Capture index of each row of a string column. Rows come in runs of one capture (files are
/// written capture by capture, and a join keeps its probe side's order), so a row with the
/// previous row's id reuses its answer instead of hashing the id again.
fn capture_rows(ids: &roadhex_lake::columns::Text, rows: usize, cap_ix: &IdMap) -> Vec<Option<u32>> {
    let mut out: Vec<Option<u32>> = Vec::with_capacity(rows);
    for i in 0..rows {
        let id = ids.value(i);
        let same = i > 0 && ids.value(i - 1) == id;
        out.push(match out.last() {
            Some(&prev) if same => prev,
            _ => cap_ix.get(id).copied(),
        });
    }
    out
}

/// A committed capture. Captures are sorted by id, so an index is also a stable tie-break rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub id: String,
    /// Index into [`Inputs::devices`].
    pub device: u32,
    /// Index into [`Inputs::contributors`].
    pub contributor: u32,
    pub committed_ms: i64,
    pub created_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// First and last published frame: (time, lat, lon).
    pub first: Option<(i64, f64, f64)>,
    pub last: Option<(i64, f64, f64)>,
}

/// A capture's first frame in a res-12 cell (`coverage.frame_id`), published with quality `ok`;
/// timed by that frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub cell: u64,
    pub r6: u64,
    pub t_ms: i64,
    pub capture: u32,
    /// Index into [`Inputs::mounts`].
    pub mount: u8,
}

/// A published frame's perceptual hash (any quality verdict: copies are copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHash {
    pub capture: u32,
    pub t_ms: i64,
    pub phash: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub captures: Vec<Capture>,
    /// Sorted ids; captures refer to them by index.
    pub devices: Vec<String>,
    pub contributors: Vec<String>,
    pub mounts: Vec<String>,
    /// Per device: when its key was revoked (Unix ms), if it was.
    pub revoked_at: Vec<Option<i64>>,
    pub observations: Vec<Observation>,
    pub frames: Vec<FrameHash>,
}

/// Time windows to read, Unix ms, end exclusive.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Frames and captures (fraud context) from here.
    pub context_from_ms: i64,
    /// Observations (freshness state) from here.
    pub observations_from_ms: i64,
    pub end_ms: i64,
}

const DAY_MS: i64 = 86_400_000;
/// Rows are partitioned by the day of their capture's first frame; a capture lasts far less than
/// this, so reading one extra day before the window finds every row inside it.
pub(crate) const PARTITION_SLACK_MS: i64 = DAY_MS;

pub(crate) fn day(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

fn date_filter(alias: &str, from_ms: i64, end_ms: i64) -> String {
    format!("{alias}date >= '{}' AND {alias}date <= '{}'", day(from_ms - PARTITION_SLACK_MS), day(end_ms))
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Column readers shared with the other stages (string views or plain, any width).
fn text(b: &RecordBatch, name: &'static str) -> Result<roadhex_lake::columns::Text> {
    Ok(roadhex_lake::columns::text(b, name)?)
}

fn prim<T: arrow::datatypes::ArrowPrimitiveType>(
    b: &RecordBatch,
    name: &'static str,
) -> Result<arrow::array::PrimitiveArray<T>> {
    Ok(roadhex_lake::columns::prim::<T>(b, name)?)
}

/// Sorted, deduplicated ids and a lookup from id to index.
fn intern(mut ids: Vec<String>) -> (Vec<String>, HashMap<String, u32>) {
    ids.sort_unstable();
    ids.dedup();
    let map =
        ids.iter().enumerate().map(|(i, s)| (s.clone(), u32::try_from(i).unwrap_or(u32::MAX))).collect();
    (ids, map)
}

#[derive(Debug, Deserialize)]
struct DeviceRecord {
    revoked_at: Option<DateTime<Utc>>,
}

/// Reads everything an epoch needs.
pub async fn load(lake: &Lake, w: Window) -> Result<Inputs> {
    let ctx = roadhex_lake::catalog::session(lake)?;
    let (from, end) = (w.context_from_ms, w.end_ms);
    let rows = query(
        &ctx,
        &format!(
            "SELECT capture_id, device_id, contributor_id, CAST(committed_at AS BIGINT) AS committed,
                    CAST(created_at AS BIGINT) AS created, CAST(start_time AS BIGINT) AS t0,
                    CAST(end_time AS BIGINT) AS t1
             FROM captures
             WHERE {} AND CAST(end_time AS BIGINT) >= {from} AND CAST(start_time AS BIGINT) < {end}",
            date_filter("", from, end)
        ),
    )
    .await?;
    let mut raw = Vec::new();
    for b in &rows {
        let (id, dev, con) = (text(b, "capture_id")?, text(b, "device_id")?, text(b, "contributor_id")?);
        let nums: Vec<_> = ["committed", "created", "t0", "t1"]
            .iter()
            .map(|n| prim::<Int64Type>(b, n))
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            let t = |k: usize| nums[k].value(i);
            raw.push((
                id.value(i).to_owned(),
                dev.value(i).to_owned(),
                con.value(i).to_owned(),
                [t(0), t(1), t(2), t(3)],
            ));
        }
    }
    // One row per capture (a rewritten capture file replaces, never adds, but be strict anyway).
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    raw.dedup_by(|a, b| a.0 == b.0);
    let (devices, dev_ix) = intern(raw.iter().map(|r| r.1.clone()).collect());
    let (contributors, con_ix) = intern(raw.iter().map(|r| r.2.clone()).collect());
    let mut captures = Vec::with_capacity(raw.len());
    let mut cap_ix = IdMap::with_capacity_and_hasher(raw.len(), Default::default());
    for (i, (id, dev, con, t)) in raw.into_iter().enumerate() {
        cap_ix.insert(id.clone(), u32::try_from(i).unwrap_or(u32::MAX));
        captures.push(Capture {
            id,
            device: dev_ix.get(&dev).copied().unwrap_or(0),
            contributor: con_ix.get(&con).copied().unwrap_or(0),
            committed_ms: t[0],
            created_ms: t[1],
            start_ms: t[2],
            end_ms: t[3],
            first: None,
            last: None,
        });
    }
    let (frames, (observations, mounts)) = futures::try_join!(
        load_frames(&ctx, &mut captures, &cap_ix, from, end),
        load_observations(&ctx, &cap_ix, w.observations_from_ms, end)
    )?;
    let revoked_at = load_revocations(lake, &devices).await?;
    Ok(Inputs { captures, devices, contributors, mounts, revoked_at, observations, frames })
}

async fn load_frames(
    ctx: &SessionContext,
    captures: &mut [Capture],
    cap_ix: &IdMap,
    from: i64,
    end: i64,
) -> Result<Vec<FrameHash>> {
    let rows = query(
        ctx,
        &format!(
            "SELECT capture_id, CAST(captured_at AS BIGINT) AS t, lat, lon, phash FROM frames
             WHERE {} AND CAST(captured_at AS BIGINT) >= {from} AND CAST(captured_at AS BIGINT) < {end}",
            date_filter("", from, end)
        ),
    )
    .await?;
    let mut out = Vec::new();
    for b in &rows {
        let id = text(b, "capture_id")?;
        let t = prim::<Int64Type>(b, "t")?;
        let (lat, lon) = (prim::<Float64Type>(b, "lat")?, prim::<Float64Type>(b, "lon")?);
        let phash = prim::<UInt64Type>(b, "phash")?;
        out.reserve(b.num_rows());
        for (i, c) in capture_rows(&id, b.num_rows(), cap_ix).into_iter().enumerate() {
            let Some(c) = c else { continue };
            let (ti, p) = (t.value(i), (t.value(i), lat.value(i), lon.value(i)));
            let cap = &mut captures[c as usize];
            if cap.first.is_none_or(|f| ti < f.0) {
                cap.first = Some(p);
            }
            if cap.last.is_none_or(|l| ti >= l.0) {
                cap.last = Some(p);
            }
            out.push(FrameHash { capture: c, t_ms: ti, phash: phash.value(i) });
        }
    }
    Ok(out)
}

async fn load_observations(
    ctx: &SessionContext,
    cap_ix: &IdMap,
    from: i64,
    end: i64,
) -> Result<(Vec<Observation>, Vec<String>)> {
    let rows = query(
        ctx,
        &format!(
            "SELECT c.h3_r12, c.h3_r6, c.mount, c.capture_id, CAST(f.captured_at AS BIGINT) AS t
             FROM coverage c JOIN frames f ON f.frame_id = c.frame_id
             WHERE f.quality = 'ok' AND {} AND {}
               AND CAST(f.captured_at AS BIGINT) >= {from} AND CAST(f.captured_at AS BIGINT) < {end}",
            date_filter("c.", from, end),
            date_filter("f.", from, end)
        ),
    )
    .await?;
    let mut mounts: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for b in &rows {
        let (cell, r6) = (prim::<UInt64Type>(b, "h3_r12")?, prim::<UInt64Type>(b, "h3_r6")?);
        let (mount, id, t) = (text(b, "mount")?, text(b, "capture_id")?, prim::<Int64Type>(b, "t")?);
        out.reserve(b.num_rows());
        // The mount of the previous row: (row, index into `mounts`).
        let mut last_mount: Option<(usize, u8)> = None;
        for (i, capture) in capture_rows(&id, b.num_rows(), cap_ix).into_iter().enumerate() {
            let Some(capture) = capture else { continue };
            let name = mount.value(i);
            let m = match last_mount {
                Some((row, m)) if mount.value(row) == name => m,
                _ => {
                    let m = match mounts.iter().position(|m| m == name) {
                        Some(p) => p,
                        None => {
                            mounts.push(name.to_owned());
                            mounts.len() - 1
                        }
                    };
                    u8::try_from(m)
                        .map_err(|_| RewardsError::Schema { table: "coverage", column: "mount".into() })?
                }
            };
            last_mount = Some((i, m));
            out.push(Observation {
                cell: cell.value(i),
                r6: r6.value(i),
                t_ms: t.value(i),
                capture,
                mount: m,
            });
        }
    }
    Ok((out, mounts))
}

async fn load_revocations(lake: &Lake, devices: &[String]) -> Result<Vec<Option<i64>>> {
    futures::stream::iter(devices.iter().cloned())
        .map(|d| async move {
            let Some(id) = DeviceId::parse(&d) else { return Ok(None) };
            let rec: Option<DeviceRecord> = lake.get_json(&paths::device(&id)).await?;
            Ok(rec.and_then(|r| r.revoked_at).map(|t| t.timestamp_millis()))
        })
        .buffered(16)
        .try_collect()
        .await
}
