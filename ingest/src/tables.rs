//! Rows ingest writes on commit: one `captures` row and the capture's `telemetry` rows.

use crate::captures::Loaded;
use crate::error::{IngestError, Result};
use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use chrono::{DateTime, Utc};
use roadhex_lake::Lake;
use roadhex_lake::writer::{append, partition_date};
use roadhex_schemas::gates::{GateConfig, sample_gate};
use roadhex_schemas::geo::haversine_m;
use roadhex_schemas::tables::Table;
use roadhex_schemas::wkb;
use std::collections::BTreeMap;
use std::sync::Arc;

fn ts(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn text<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// Writes the capture's rows. Files are keyed by capture id, so a retry replaces them.
pub(crate) async fn write_capture(
    lake: &Lake,
    l: &Loaded,
    gates: &GateConfig,
    committed_at: DateTime<Utc>,
) -> Result<()> {
    let m = &l.manifest;
    let first_t = m.frames.first().map_or(0, |f| f.t_ms);
    let date = partition_date(first_t);
    let key = format!("capture-{}", l.id);
    append(lake, Table::Captures, &date, &key, &[captures_batch(l, committed_at)?]).await?;
    append(lake, Table::Telemetry, &date, &key, &[telemetry_batch(l, gates)?]).await?;
    Ok(())
}

fn captures_batch(l: &Loaded, committed_at: DateTime<Utc>) -> Result<RecordBatch> {
    let m = &l.manifest;
    let first = m.frames.first().map_or(0, |f| f.t_ms);
    let last = m.frames.last().map_or(0, |f| f.t_ms);
    let track: Vec<(f64, f64)> = m.telemetry.iter().map(|s| (s.lon, s.lat)).collect();
    let length: f64 =
        m.telemetry.windows(2).map(|w| haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon)).sum();
    let valid = l.gates.iter().filter(|g| g.verdict.is_ok()).count();
    let mut dropped: BTreeMap<&str, u32> = BTreeMap::new();
    for g in &l.gates {
        if let Err(r) = &g.verdict {
            *dropped.entry(r.code()).or_default() += 1;
        }
    }
    let dropped = (!dropped.is_empty()).then(|| serde_json::json!(dropped).to_string());
    let start = l.gates.iter().find_map(|g| g.position).map_or((0.0, 0.0), |p| (p.lat, p.lon));
    let bytes: u64 =
        m.frames.iter().zip(&l.gates).filter(|(_, g)| g.verdict.is_ok()).map(|(f, _)| f.size).sum();
    let cols: Vec<ArrayRef> = vec![
        text([l.id.as_str()]),
        text([m.device_id.as_str()]),
        text([l.contributor_id.as_str()]),
        Arc::new(UInt64Array::from(vec![m.sequence])),
        ts(vec![m.created_at.timestamp_millis()]),
        ts(vec![committed_at.timestamp_millis()]),
        ts(vec![first]),
        ts(vec![last]),
        Arc::new(UInt32Array::from(vec![u32::try_from(m.frames.len()).unwrap_or(u32::MAX)])),
        Arc::new(UInt32Array::from(vec![u32::try_from(valid).unwrap_or(u32::MAX)])),
        Arc::new(UInt64Array::from(vec![bytes])),
        Arc::new(Float64Array::from(vec![length])),
        text([m.camera.mount.as_str()]),
        Arc::new(UInt32Array::from(vec![m.camera.width])),
        Arc::new(UInt32Array::from(vec![m.camera.height])),
        Arc::new(Float64Array::from(vec![m.camera.focal_px()])),
        Arc::new(Float64Array::from(vec![m.camera.mount_height_m])),
        Arc::new(StringArray::from(vec![dropped])),
        Arc::new(Float64Array::from(vec![start.0])),
        Arc::new(Float64Array::from(vec![start.1])),
        Arc::new(BinaryArray::from(vec![wkb::line_string(&track).as_slice()])),
    ];
    RecordBatch::try_new(Table::Captures.schema(), cols).map_err(|e| IngestError::Storage(e.into()))
}

fn telemetry_batch(l: &Loaded, gates: &GateConfig) -> Result<RecordBatch> {
    let m = &l.manifest;
    let t = &m.telemetry;
    let n = t.len();
    let points: Vec<Vec<u8>> = t.iter().map(|s| wkb::point(s.lon, s.lat)).collect();
    let cols: Vec<ArrayRef> = vec![
        text(std::iter::repeat_n(l.id.as_str(), n)),
        text(std::iter::repeat_n(m.device_id.as_str(), n)),
        Arc::new(UInt32Array::from_iter_values((0..n).map(|i| u32::try_from(i).unwrap_or(u32::MAX)))),
        ts(t.iter().map(|s| s.t_ms).collect()),
        Arc::new(Float64Array::from_iter_values(t.iter().map(|s| s.lat))),
        Arc::new(Float64Array::from_iter_values(t.iter().map(|s| s.lon))),
        Arc::new(Float64Array::from_iter_values(t.iter().map(|s| s.alt))),
        Arc::new(Float64Array::from_iter_values(t.iter().map(|s| s.speed))),
        Arc::new(Float64Array::from_iter_values(t.iter().map(|s| s.heading))),
        Arc::new(Float64Array::from(t.iter().map(|s| s.hdop).collect::<Vec<_>>())),
        Arc::new(UInt8Array::from(t.iter().map(|s| s.satellites).collect::<Vec<_>>())),
        Arc::new(StringArray::from(t.iter().map(|s| s.fix.map(|f| f.as_str())).collect::<Vec<_>>())),
        Arc::new(StringArray::from(
            t.iter().map(|s| sample_gate(gates, s).err().map(|r| r.code())).collect::<Vec<_>>(),
        )),
        Arc::new(BinaryArray::from_iter_values(points.iter())),
    ];
    RecordBatch::try_new(Table::Telemetry.schema(), cols).map_err(|e| IngestError::Storage(e.into()))
}
