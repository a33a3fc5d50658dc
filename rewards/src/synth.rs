//! Synthetic captures written as real `captures`, `frames` and `coverage` rows (the schemas vision
//! and ingest write) plus device records, for the simulator, tests and the bench.

use crate::error::Result;
use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array,
    UInt64Array,
};
use chrono::{DateTime, Utc};
use h3o::{CellIndex, LatLng, Resolution};
use roadhex_lake::writer::{append, partition_date};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::tables::Table;
use roadhex_schemas::{CaptureId, DeviceId, wkb};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct SynthFrame {
    pub t_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub phash: u64,
    /// `ok` or a quality reason code.
    pub quality: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthCapture {
    /// 32 lowercase hex digits.
    pub id: String,
    pub device_id: String,
    pub contributor_id: String,
    pub sequence: u64,
    pub mount: &'static str,
    pub created_ms: i64,
    pub committed_ms: i64,
    /// In time order.
    pub frames: Vec<SynthFrame>,
}

/// A 32-hex id from any label (sim ids are reproducible).
pub fn hex_id(label: &str) -> String {
    roadhex_schemas::ids::sha256_hex(label.as_bytes())[..32].to_owned()
}

/// Res-12 cell and parents `[r12, r10, r8, r6]` of a position (zeros if not a valid position).
pub fn cells(lat: f64, lon: f64) -> [u64; 4] {
    let Ok(ll) = LatLng::new(lat, lon) else { return [0; 4] };
    let c: CellIndex = ll.to_cell(Resolution::Twelve);
    let p = |r| c.parent(r).map_or(0, u64::from);
    [u64::from(c), p(Resolution::Ten), p(Resolution::Eight), p(Resolution::Six)]
}

#[derive(Debug, Serialize)]
struct DeviceRecord<'a> {
    device_id: &'a str,
    public_key: String,
    contributor_id: &'a str,
    registered_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Writes a device record as the registry does (a zero key: these devices never upload).
pub async fn register(
    lake: &Lake,
    device_id: &str,
    contributor_id: &str,
    revoked_ms: Option<i64>,
) -> Result<()> {
    let Some(id) = DeviceId::parse(device_id) else { return Ok(()) };
    let rec = DeviceRecord {
        device_id,
        public_key: "00".repeat(32),
        contributor_id,
        registered_at: DateTime::<Utc>::from_timestamp_millis(0).unwrap_or_default(),
        revoked_at: revoked_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
    };
    lake.put_json(&paths::device(&id), &rec).await?;
    Ok(())
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
fn u32s(v: impl IntoIterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(v))
}
fn f64s(v: impl IntoIterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(v))
}
fn points(v: impl IntoIterator<Item = (f64, f64)>) -> ArrayRef {
    Arc::new(BinaryArray::from_iter_values(v.into_iter().map(|(lat, lon)| wkb::point(lon, lat))))
}

fn frame_id(c: &SynthCapture, i: usize) -> String {
    CaptureId::parse(&c.id).map_or_else(|| format!("{}-{i:04}", c.id), |id| paths::frame_id(&id, i))
}

/// Writes the captures' rows, one file per table and day under `key` (rewriting replaces them).
pub async fn write(lake: &Lake, captures: &[SynthCapture], key: &str) -> Result<()> {
    let mut by_day: BTreeMap<String, Vec<&SynthCapture>> = BTreeMap::new();
    for c in captures.iter().filter(|c| !c.frames.is_empty()) {
        by_day.entry(partition_date(c.frames[0].t_ms)).or_default().push(c);
    }
    for (day, caps) in by_day {
        append(lake, Table::Captures, &day, key, &[captures_batch(&caps)?]).await?;
        append(lake, Table::Frames, &day, key, &[frames_batch(&caps)?]).await?;
        append(lake, Table::Coverage, &day, key, &[coverage_batch(&caps)?]).await?;
    }
    Ok(())
}

fn captures_batch(caps: &[&SynthCapture]) -> Result<RecordBatch> {
    let n = caps.len();
    let first = |c: &SynthCapture| c.frames.first().map_or((0, 0.0, 0.0), |f| (f.t_ms, f.lat, f.lon));
    let last = |c: &SynthCapture| c.frames.last().map_or(0, |f| f.t_ms);
    let count = |c: &SynthCapture| u32::try_from(c.frames.len()).unwrap_or(u32::MAX);
    let cols: Vec<ArrayRef> = vec![
        text(caps.iter().map(|c| &c.id)),
        text(caps.iter().map(|c| &c.device_id)),
        text(caps.iter().map(|c| &c.contributor_id)),
        u64s(caps.iter().map(|c| c.sequence)),
        ts(caps.iter().map(|c| c.created_ms).collect()),
        ts(caps.iter().map(|c| c.committed_ms).collect()),
        ts(caps.iter().map(|c| first(c).0).collect()),
        ts(caps.iter().map(|c| last(c)).collect()),
        u32s(caps.iter().map(|c| count(c))),
        u32s(caps.iter().map(|c| count(c))),
        u64s(caps.iter().map(|c| c.frames.len() as u64 * 200_000)),
        f64s(caps.iter().map(|c| c.frames.len() as f64 * 8.0)),
        text(caps.iter().map(|c| c.mount)),
        u32s(std::iter::repeat_n(2028, n)),
        u32s(std::iter::repeat_n(1024, n)),
        Arc::new(Float64Array::from(vec![Some(1000.0); n])),
        f64s(std::iter::repeat_n(1.4, n)),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
        f64s(caps.iter().map(|c| first(c).1)),
        f64s(caps.iter().map(|c| first(c).2)),
        Arc::new(BinaryArray::from_iter_values(
            caps.iter()
                .map(|c| wkb::line_string(&c.frames.iter().map(|f| (f.lon, f.lat)).collect::<Vec<_>>())),
        )),
    ];
    Ok(RecordBatch::try_new(Table::Captures.schema(), cols)?)
}

fn frames_batch(caps: &[&SynthCapture]) -> Result<RecordBatch> {
    let rows: Vec<(&SynthCapture, usize, &SynthFrame, [u64; 4])> = caps
        .iter()
        .flat_map(|c| c.frames.iter().enumerate().map(move |(i, f)| (*c, i, f, cells(f.lat, f.lon))))
        .collect();
    let n = rows.len();
    let cols: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| frame_id(r.0, r.1))),
        text(rows.iter().map(|r| &r.0.id)),
        u32s(rows.iter().map(|r| u32::try_from(r.1).unwrap_or(u32::MAX))),
        text(rows.iter().map(|r| &r.0.device_id)),
        text(rows.iter().map(|r| &r.0.contributor_id)),
        ts(rows.iter().map(|r| r.2.t_ms).collect()),
        ts(rows.iter().map(|r| r.0.committed_ms).collect()),
        f64s(rows.iter().map(|r| r.2.lat)),
        f64s(rows.iter().map(|r| r.2.lon)),
        f64s(std::iter::repeat_n(0.0, n)),
        f64s(std::iter::repeat_n(10.0, n)),
        u64s(rows.iter().map(|r| r.3[0])),
        u64s(rows.iter().map(|r| r.3[1])),
        u64s(rows.iter().map(|r| r.3[2])),
        u64s(rows.iter().map(|r| r.3[3])),
        text(rows.iter().map(|r| r.0.mount)),
        text(rows.iter().map(|r| format!("frames/{}/{:04}.jpg", r.0.id, r.1))),
        u32s(std::iter::repeat_n(2028, n)),
        u32s(std::iter::repeat_n(1024, n)),
        u64s(std::iter::repeat_n(200_000, n)),
        text(rows.iter().map(|r| r.2.quality)),
        text(std::iter::repeat_n("synthetic", n)),
        u64s(rows.iter().map(|r| r.2.phash)),
        points(rows.iter().map(|r| (r.2.lat, r.2.lon))),
    ];
    Ok(RecordBatch::try_new(Table::Frames.schema(), cols)?)
}

/// One row per (capture, res-12 cell), at the capture's first frame in the cell.
type CoverageRow<'a> = (&'a SynthCapture, usize, [u64; 4], u32);

fn frame<'a>(r: &CoverageRow<'a>) -> &'a SynthFrame {
    &r.0.frames[r.1]
}

fn coverage_batch(caps: &[&SynthCapture]) -> Result<RecordBatch> {
    let mut rows: Vec<CoverageRow<'_>> = Vec::new();
    for c in caps {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let start = rows.len();
        for (i, f) in c.frames.iter().enumerate() {
            let cs = cells(f.lat, f.lon);
            let k = *seen.entry(cs[0]).or_insert_with(|| {
                rows.push((*c, i, cs, 0));
                rows.len() - 1 - start
            });
            rows[start + k].3 += 1;
        }
    }
    let cols: Vec<ArrayRef> = vec![
        u64s(rows.iter().map(|r| r.2[0])),
        u64s(rows.iter().map(|r| r.2[1])),
        u64s(rows.iter().map(|r| r.2[2])),
        u64s(rows.iter().map(|r| r.2[3])),
        text(rows.iter().map(|r| r.0.mount)),
        text(rows.iter().map(|r| frame_id(r.0, r.1))),
        u32s(rows.iter().map(|r| r.3)),
        text(rows.iter().map(|r| &r.0.id)),
        text(rows.iter().map(|r| &r.0.device_id)),
        text(rows.iter().map(|r| &r.0.contributor_id)),
        ts(rows.iter().map(|r| frame(r).t_ms).collect()),
        f64s(rows.iter().map(|r| frame(r).lat)),
        f64s(rows.iter().map(|r| frame(r).lon)),
        points(rows.iter().map(|r| (frame(r).lat, frame(r).lon))),
    ];
    Ok(RecordBatch::try_new(Table::Coverage.schema(), cols)?)
}
