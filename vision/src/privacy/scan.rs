//! Published frame rows as privacy jobs need them, read straight from the table files.

use crate::error::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::{Float64Type, TimestampMillisecondType, UInt32Type};
use roadhex_lake::Lake;
use roadhex_lake::columns::{prim, text};
use roadhex_lake::rewrite::scan;
use roadhex_schemas::tables::Table;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FrameRow {
    pub(crate) frame_id: String,
    pub(crate) capture_id: String,
    pub(crate) index: usize,
    pub(crate) device_id: String,
    pub(crate) contributor_id: String,
    pub(crate) t_ms: i64,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    pub(crate) heading: f64,
    pub(crate) speed: f64,
    pub(crate) mount: String,
    pub(crate) object_key: String,
    pub(crate) anonymizer: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Partition the row lives in.
    pub(crate) date: String,
}

pub(crate) fn rows_of(date: &str, b: &RecordBatch) -> roadhex_lake::Result<Vec<FrameRow>> {
    let (id, capture, device, contributor, mount, key, anon) = (
        text(b, "frame_id")?,
        text(b, "capture_id")?,
        text(b, "device_id")?,
        text(b, "contributor_id")?,
        text(b, "mount")?,
        text(b, "object_key")?,
        text(b, "anonymizer")?,
    );
    let index = prim::<UInt32Type>(b, "frame_index")?;
    let (width, height) = (prim::<UInt32Type>(b, "width")?, prim::<UInt32Type>(b, "height")?);
    let t = prim::<TimestampMillisecondType>(b, "captured_at")?;
    let (lat, lon) = (prim::<Float64Type>(b, "lat")?, prim::<Float64Type>(b, "lon")?);
    let (heading, speed) = (prim::<Float64Type>(b, "heading")?, prim::<Float64Type>(b, "speed")?);
    Ok((0..b.num_rows())
        .map(|i| FrameRow {
            frame_id: id.value(i).to_owned(),
            capture_id: capture.value(i).to_owned(),
            index: index.value(i) as usize,
            device_id: device.value(i).to_owned(),
            contributor_id: contributor.value(i).to_owned(),
            t_ms: t.value(i),
            lat: lat.value(i),
            lon: lon.value(i),
            heading: heading.value(i),
            speed: speed.value(i),
            mount: mount.value(i).to_owned(),
            object_key: key.value(i).to_owned(),
            anonymizer: anon.value(i).to_owned(),
            width: width.value(i),
            height: height.value(i),
            date: date.to_owned(),
        })
        .collect())
}

/// Every published frame row in `dates` (all partitions when `None`).
pub(crate) async fn frames(lake: &Lake, dates: Option<&[String]>) -> Result<Vec<FrameRow>> {
    let mut out = Vec::new();
    scan(lake, Table::Frames, dates, |date, b| {
        out.extend(rows_of(date, b)?);
        Ok(())
    })
    .await?;
    Ok(out)
}
