//! Taking published frames back: a privacy zone set later or an approved redaction. The bytes go
//! first (every version of the frame), then the rows: frames and detections lose the frame, and
//! coverage of each affected capture is recomputed from the frames that stay. Running it again
//! with the same frames finishes an interrupted run and changes nothing after a complete one.

use super::scan::{FrameRow, frames, rows_of};
use crate::error::Result;
use crate::place::{COVERAGE_RES, Placed, coverage};
use crate::tables::{Owner, coverage_batch};
use arrow::array::{BooleanArray, RecordBatch};
use chrono::Utc;
use h3o::LatLng;
use roadhex_lake::columns::text;
use roadhex_lake::rewrite::{TableLock, filter_rows, partitions, rewrite};
use roadhex_lake::writer::append;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::CaptureId;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::state::{CaptureStatus, FrameStage, Reason};
use roadhex_schemas::tables::Table;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// What a withdrawal did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawal {
    pub frames: usize,
    pub captures: usize,
    pub objects_deleted: usize,
    pub rows_removed: usize,
}

/// Deletes every stored version of a published frame; returns how many objects went.
pub(crate) async fn delete_versions(lake: &Lake, capture: &CaptureId, index: usize) -> Result<usize> {
    let stem = format!("{index:04}");
    let mut n = 0;
    for path in lake.list(&paths::published_frames_prefix().join(capture.as_str())).await? {
        let name = path.filename().unwrap_or_default();
        if name.strip_prefix(stem.as_str()).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
        {
            lake.delete(&path).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// The partitions a capture's rows can be in.
async fn dates_of(lake: &Lake, status: Option<&CaptureStatus>) -> Result<Vec<String>> {
    Ok(match status.and_then(|s| s.table_date.clone()) {
        Some(d) => vec![d],
        None => partitions(lake, Table::Frames).await?,
    })
}

/// Withdraws the frames (public ids) for the given reasons.
pub async fn withdraw(lake: &Lake, requested: &[(String, Reason)]) -> Result<Withdrawal> {
    let mut by_capture: BTreeMap<CaptureId, Vec<(usize, Reason)>> = BTreeMap::new();
    for (frame_id, reason) in requested {
        if let Some((capture, index)) = paths::parse_frame_id(frame_id) {
            by_capture.entry(capture).or_default().push((index, reason.clone()));
        }
    }
    let mut report = Withdrawal::default();
    let ids: HashSet<String> = requested.iter().map(|(id, _)| id.clone()).collect();
    let mut dates: Vec<String> = Vec::new();
    let mut states: BTreeMap<CaptureId, CaptureStatus> = BTreeMap::new();
    for (capture, frames) in &by_capture {
        let status = lake.get_json::<CaptureStatus>(&paths::capture_state(capture)).await?;
        dates.extend(dates_of(lake, status.as_ref()).await?);
        for (index, _) in frames {
            report.objects_deleted += delete_versions(lake, capture, *index).await?;
        }
        if let Some(s) = status {
            states.insert(capture.clone(), s);
        }
    }
    dates.sort();
    dates.dedup();
    let captures: HashSet<String> = by_capture.keys().map(|c| c.to_string()).collect();
    let lock = TableLock::acquire(lake).await?;
    let result = rewrite_rows(lake, &lock, &dates, &ids, &captures).await;
    lock.release().await?;
    report.rows_removed = result?;
    for (capture, frames) in &by_capture {
        let Some(mut status) = states.remove(capture) else { continue };
        for (index, reason) in frames {
            if let Some(f) = status.frames.get_mut(*index)
                && f.state != FrameStage::Withdrawn
            {
                f.state = FrameStage::Withdrawn;
                f.reason = Some(reason.clone());
                status.reasons.push(reason.clone());
                report.frames += 1;
            }
        }
        status.updated_at = Utc::now();
        lake.put_json(&paths::capture_state(capture), &status).await?;
    }
    report.captures = by_capture.len();
    Ok(report)
}

fn keep_where(
    batch: &RecordBatch,
    column: &str,
    drop: &HashSet<String>,
) -> roadhex_lake::Result<Option<RecordBatch>> {
    let values = text(batch, column)?;
    let keep: BooleanArray = (0..batch.num_rows()).map(|i| Some(!drop.contains(values.value(i)))).collect();
    filter_rows(batch, &keep)
}

/// Removes the frames' rows and rebuilds the coverage of their captures; returns rows removed.
async fn rewrite_rows(
    lake: &Lake,
    lock: &TableLock,
    dates: &[String],
    ids: &HashSet<String>,
    captures: &HashSet<String>,
) -> Result<usize> {
    let mut removed = 0;
    // The frames that stay, per affected capture, for their coverage.
    let mut staying: BTreeMap<String, Vec<FrameRow>> = BTreeMap::new();
    removed += rewrite(lake, lock, Table::Frames, dates, |date, batch| {
        let rows = rows_of(date, batch)?;
        for r in rows.into_iter().filter(|r| captures.contains(&r.capture_id) && !ids.contains(&r.frame_id)) {
            staying.entry(r.capture_id.clone()).or_default().push(r);
        }
        keep_where(batch, "frame_id", ids)
    })
    .await?
    .rows_removed;
    removed += rewrite(lake, lock, Table::Detections, dates, |_, b| keep_where(b, "frame_id", ids))
        .await?
        .rows_removed;
    removed += rewrite(lake, lock, Table::Coverage, dates, |_, b| keep_where(b, "capture_id", captures))
        .await?
        .rows_removed;
    for (capture, mut rows) in staying {
        let Some(id) = CaptureId::parse(&capture) else { continue };
        rows.sort_by_key(|r| r.index);
        let placed: Vec<Placed> = rows
            .iter()
            .filter_map(|r| {
                let cell = LatLng::new(r.lat, r.lon).ok()?.to_cell(COVERAGE_RES);
                Some(Placed {
                    index: r.index,
                    t_ms: r.t_ms,
                    lat: r.lat,
                    lon: r.lon,
                    heading: r.heading,
                    speed: r.speed,
                    cell,
                })
            })
            .collect();
        let Some(first) = rows.first() else { continue };
        let owner = Owner {
            capture: &id,
            mount: &first.mount,
            device: &first.device_id,
            contributor: &first.contributor_id,
        };
        let batch = coverage_batch(&coverage(&placed), &owner)?;
        let kept: Vec<&str> = rows.iter().map(|r| r.frame_id.as_str()).collect();
        let key = format!("capture-{id}-rev-{}", &sha256_hex(kept.join(",").as_bytes())[..16]);
        append(lake, Table::Coverage, &first.date, &key, &[batch]).await?;
    }
    Ok(removed)
}

/// Points a frame's row at a new version of its bytes (a redaction re-blurred it).
pub(crate) async fn revise(
    lake: &Lake,
    frame_id: &str,
    object_key: &str,
    bytes: u64,
    anonymizer: &str,
    dates: &[String],
) -> Result<usize> {
    use arrow::array::{Datum, Scalar, StringArray, TimestampMillisecondArray, UInt64Array};
    let now = Utc::now().timestamp_millis();
    let lock = TableLock::acquire(lake).await?;
    let mut changed = 0;
    let result = rewrite(lake, &lock, Table::Frames, dates, |_, batch| {
        let ids = text(batch, "frame_id")?;
        let hit: BooleanArray = (0..batch.num_rows()).map(|i| Some(ids.value(i) == frame_id)).collect();
        if hit.true_count() == 0 {
            return Ok(None);
        }
        changed += hit.true_count();
        let schema = batch.schema();
        let mut cols = batch.columns().to_vec();
        let set = |cols: &mut Vec<arrow::array::ArrayRef>,
                   name: &str,
                   value: &dyn Datum|
         -> roadhex_lake::Result<()> {
            let i = schema.index_of(name)?;
            cols[i] = arrow::compute::kernels::zip::zip(&hit, value, &cols[i])?;
            Ok(())
        };
        set(&mut cols, "object_key", &Scalar::new(StringArray::from(vec![object_key])))?;
        set(&mut cols, "bytes", &Scalar::new(UInt64Array::from(vec![bytes])))?;
        set(&mut cols, "anonymizer", &Scalar::new(StringArray::from(vec![anonymizer])))?;
        set(
            &mut cols,
            "published_at",
            &Scalar::new(TimestampMillisecondArray::from(vec![now]).with_timezone("UTC")),
        )?;
        Ok(Some(RecordBatch::try_new(schema.clone(), cols)?))
    })
    .await;
    lock.release().await?;
    result?;
    Ok(changed)
}

/// The published row of one frame, if it is public.
pub(crate) async fn find(lake: &Lake, frame_id: &str) -> Result<Option<FrameRow>> {
    let Some((capture, _)) = paths::parse_frame_id(frame_id) else { return Ok(None) };
    let status = lake.get_json::<CaptureStatus>(&paths::capture_state(&capture)).await?;
    let dates = dates_of(lake, status.as_ref()).await?;
    Ok(frames(lake, Some(&dates)).await?.into_iter().find(|r| r.frame_id == frame_id))
}
