//! Rows vision writes per capture: `frames`, `detections` and `coverage`, each one file keyed by
//! the capture, so a redo replaces them.

use crate::anonymize::Kind;
use crate::error::Result;
use crate::pipeline::Processed;
use crate::place::{cell_center, cell_columns};
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use chrono::Utc;
use roadhex_lake::writer::{append, partition_date};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::tables::Table;
use roadhex_schemas::wkb;
use std::sync::Arc;

fn text<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
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

/// The partition a capture's rows go to.
pub(crate) fn date_of(m: &roadhex_schemas::CaptureManifest) -> String {
    partition_date(m.frames.first().map_or(0, |f| f.t_ms))
}

pub(crate) async fn write(lake: &Lake, p: &Processed) -> Result<()> {
    let date = date_of(&p.manifest);
    let key = format!("capture-{}", p.id);
    append(lake, Table::Frames, &date, &key, &[frames(p)?]).await?;
    append(lake, Table::Detections, &date, &key, &[detections(p)?]).await?;
    append(lake, Table::Coverage, &date, &key, &[coverage(p)?]).await?;
    Ok(())
}

fn frames(p: &Processed) -> Result<RecordBatch> {
    let rows: Vec<_> = p.outcomes.iter().filter(|o| o.published_bytes.is_some()).collect();
    let n = rows.len();
    let now = Utc::now().timestamp_millis();
    let cells: Vec<[u64; 4]> = rows.iter().map(|o| cell_columns(o.placed.cell)).collect();
    let m = &p.manifest;
    let cols: Vec<ArrayRef> = vec![
        text(rows.iter().map(|o| paths::frame_id(&p.id, o.placed.index))),
        text(std::iter::repeat_n(p.id.as_str(), n)),
        u32s(rows.iter().map(|o| u32::try_from(o.placed.index).unwrap_or(u32::MAX))),
        text(std::iter::repeat_n(m.device_id.as_str(), n)),
        text(std::iter::repeat_n(p.status.contributor_id.as_str(), n)),
        ts(rows.iter().map(|o| o.placed.t_ms).collect()),
        ts(vec![now; n]),
        f64s(rows.iter().map(|o| o.placed.lat)),
        f64s(rows.iter().map(|o| o.placed.lon)),
        f64s(rows.iter().map(|o| o.placed.heading)),
        f64s(rows.iter().map(|o| o.placed.speed)),
        u64s(cells.iter().map(|c| c[0])),
        u64s(cells.iter().map(|c| c[1])),
        u64s(cells.iter().map(|c| c[2])),
        u64s(cells.iter().map(|c| c[3])),
        text(std::iter::repeat_n(m.camera.mount.as_str(), n)),
        text(rows.iter().map(|o| paths::published_frame(&p.id, o.placed.index).to_string())),
        u32s(rows.iter().map(|o| o.width)),
        u32s(rows.iter().map(|o| o.height)),
        u64s(rows.iter().map(|o| o.published_bytes.unwrap_or(0))),
        text(rows.iter().map(|o| o.quality.verdict())),
        text(std::iter::repeat_n(p.anonymizer.as_str(), n)),
        u64s(rows.iter().map(|o| o.quality.phash)),
        Arc::new(BinaryArray::from_iter_values(rows.iter().map(|o| wkb::point(o.placed.lon, o.placed.lat)))),
    ];
    Ok(RecordBatch::try_new(Table::Frames.schema(), cols)?)
}

/// One detections row before it becomes columns.
struct DetectionRow<'a> {
    index: usize,
    kind: &'static str,
    class: Option<&'static str>,
    score: f32,
    rect: opencv::core::Rect,
    detector: &'a str,
    blurred: bool,
    at: Option<(f64, f64)>,
}

fn detections(p: &Processed) -> Result<RecordBatch> {
    let published = p.outcomes.iter().filter(|o| o.published_bytes.is_some());
    let mut rows: Vec<DetectionRow<'_>> = Vec::new();
    for o in published {
        rows.extend(o.detections.iter().map(|d| DetectionRow {
            index: o.placed.index,
            kind: match d.kind {
                Kind::Face => "face",
                Kind::Plate => "plate",
                Kind::Region => "region",
            },
            class: None,
            score: d.score,
            rect: d.rect,
            detector: d.detector.as_str(),
            blurred: true,
            at: None,
        }));
        let detector = p.sign_model.as_deref().unwrap_or_default();
        rows.extend(o.signs.iter().map(|s| DetectionRow {
            index: o.placed.index,
            kind: "sign",
            class: Some(s.class),
            score: s.score,
            rect: s.rect,
            detector,
            blurred: false,
            at: crate::signs::table::sign_position(&p.manifest.camera, o, s),
        }));
    }
    let n = rows.len();
    let dim = |v: i32| u32::try_from(v.max(0)).unwrap_or(0);
    let cols: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| paths::frame_id(&p.id, r.index))),
        text(std::iter::repeat_n(p.id.as_str(), n)),
        text(rows.iter().map(|r| r.kind)),
        Arc::new(StringArray::from(rows.iter().map(|r| r.class).collect::<Vec<_>>())),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.score))),
        u32s(rows.iter().map(|r| dim(r.rect.x))),
        u32s(rows.iter().map(|r| dim(r.rect.y))),
        u32s(rows.iter().map(|r| dim(r.rect.width))),
        u32s(rows.iter().map(|r| dim(r.rect.height))),
        text(rows.iter().map(|r| r.detector)),
        Arc::new(BooleanArray::from(rows.iter().map(|r| r.blurred).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.at.map(|a| a.0)).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.at.map(|a| a.1)).collect::<Vec<_>>())),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
    ];
    Ok(RecordBatch::try_new(Table::Detections.schema(), cols)?)
}

fn coverage(p: &Processed) -> Result<RecordBatch> {
    let owner = Owner {
        capture: &p.id,
        mount: p.manifest.camera.mount.as_str(),
        device: &p.manifest.device_id,
        contributor: &p.status.contributor_id,
    };
    coverage_batch(&p.coverage, &owner)
}

/// Whose coverage rows these are.
pub(crate) struct Owner<'a> {
    pub(crate) capture: &'a roadhex_schemas::CaptureId,
    pub(crate) mount: &'a str,
    pub(crate) device: &'a str,
    pub(crate) contributor: &'a str,
}

/// Coverage rows of one capture's cells.
pub(crate) fn coverage_batch(cells: &[crate::place::CoveredCell], o: &Owner<'_>) -> Result<RecordBatch> {
    let n = cells.len();
    let cols4: Vec<[u64; 4]> = cells.iter().map(|c| cell_columns(c.cell)).collect();
    let centers: Vec<(f64, f64)> = cells.iter().map(|c| cell_center(c.cell)).collect();
    let cols: Vec<ArrayRef> = vec![
        u64s(cols4.iter().map(|c| c[0])),
        u64s(cols4.iter().map(|c| c[1])),
        u64s(cols4.iter().map(|c| c[2])),
        u64s(cols4.iter().map(|c| c[3])),
        text(std::iter::repeat_n(o.mount, n)),
        Arc::new(StringArray::from(
            cells.iter().map(|c| c.first_frame.map(|i| paths::frame_id(o.capture, i))).collect::<Vec<_>>(),
        )),
        u32s(cells.iter().map(|c| c.frame_count)),
        text(std::iter::repeat_n(o.capture.as_str(), n)),
        text(std::iter::repeat_n(o.device, n)),
        text(std::iter::repeat_n(o.contributor, n)),
        ts(cells.iter().map(|c| c.first_t_ms).collect()),
        f64s(centers.iter().map(|c| c.0)),
        f64s(centers.iter().map(|c| c.1)),
        Arc::new(BinaryArray::from_iter_values(centers.iter().map(|(lat, lon)| wkb::point(*lon, *lat)))),
    ];
    Ok(RecordBatch::try_new(Table::Coverage.schema(), cols)?)
}
