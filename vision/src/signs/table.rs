//! The `features` table: every sign observation in `detections` is clustered into map features,
//! the table is rewritten whole (one file per first-seen day), and each sign row of `detections`
//! gets its `feature_id`. Deterministic: the same detections give byte-identical features.

use super::SignDetection;
use super::cluster::{ClusterConfig, Feature, Observation, cluster};
use super::locate::{CameraView, PixelBox, Sighting, sight};
use crate::error::Result;
use crate::pipeline::FrameOutcome;
use crate::place::cell_columns;
use arrow::array::{
    Array, ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Float32Type, Float64Type, TimestampMillisecondType, UInt32Type};
use roadhex_lake::columns::{prim, text};
use roadhex_lake::rewrite::{TableLock, partitions, rewrite, scan};
use roadhex_lake::writer::{append, partition_date};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::geo::{bearing_deg, haversine_m};
use roadhex_schemas::manifest::Camera;
use roadhex_schemas::tables::{PARTITION_COLUMN, Table};
use roadhex_schemas::wkb;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Where one frame puts a detected sign, when the camera's focal length is known.
pub(crate) fn sign_position(camera: &Camera, o: &FrameOutcome, s: &SignDetection) -> Option<(f64, f64)> {
    let cam = CameraView {
        lat: o.placed.lat,
        lon: o.placed.lon,
        heading_deg: o.placed.heading,
        width: o.width,
        height: o.height,
        focal_px: camera.focal_px()?,
    };
    let b = PixelBox {
        x: f64::from(s.rect.x),
        y: f64::from(s.rect.y),
        w: f64::from(s.rect.width),
        h: f64::from(s.rect.height),
    };
    sight(&cam, &b, s.class).map(|v| (v.lat, v.lon))
}

/// What a build did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BuildReport {
    pub observations: usize,
    pub features: usize,
    pub detection_files_linked: usize,
}

/// One located sign row of `detections`.
struct SignRow {
    key: String,
    frame_id: String,
    class: String,
    score: f32,
    lat: f64,
    lon: f64,
}

/// Per row, `frame_id/x,y,w,h`: unique per sighting and stable across re-runs.
fn row_keys(b: &RecordBatch) -> roadhex_lake::Result<Vec<String>> {
    let frame = text(b, "frame_id")?;
    let [x, y, w, h] = [
        prim::<UInt32Type>(b, "x")?,
        prim::<UInt32Type>(b, "y")?,
        prim::<UInt32Type>(b, "w")?,
        prim::<UInt32Type>(b, "h")?,
    ];
    Ok((0..b.num_rows())
        .map(|i| format!("{}/{},{},{},{}", frame.value(i), x.value(i), y.value(i), w.value(i), h.value(i)))
        .collect())
}

fn sign_rows(b: &RecordBatch, out: &mut Vec<SignRow>) -> roadhex_lake::Result<()> {
    let (frame, kind, class) = (text(b, "frame_id")?, text(b, "kind")?, text(b, "class")?);
    let score = prim::<Float32Type>(b, "score")?;
    let keys = row_keys(b)?;
    let (lat, lon) = (prim::<Float64Type>(b, "lat")?, prim::<Float64Type>(b, "lon")?);
    for (i, key) in keys.into_iter().enumerate() {
        if kind.value(i) != "sign" || lat.is_null(i) || lon.is_null(i) || class.is_null(i) {
            continue;
        }
        out.push(SignRow {
            key,
            frame_id: frame.value(i).to_owned(),
            class: class.value(i).to_owned(),
            score: score.value(i),
            lat: lat.value(i),
            lon: lon.value(i),
        });
    }
    Ok(())
}

/// Camera position, time and contributor of a frame.
struct FrameInfo {
    lat: f64,
    lon: f64,
    t_ms: i64,
    contributor: String,
}

/// Rebuilds `features` from `detections` and links the sign rows to their features.
pub async fn build(lake: &Lake, cfg: &ClusterConfig) -> Result<BuildReport> {
    let mut rows = Vec::new();
    let mut dates = BTreeSet::new();
    scan(lake, Table::Detections, None, |date, b| {
        let before = rows.len();
        sign_rows(b, &mut rows)?;
        if rows.len() > before {
            dates.insert(date.to_owned());
        }
        Ok(())
    })
    .await?;
    let dates: Vec<String> = dates.into_iter().collect();
    let wanted: BTreeSet<&str> = rows.iter().map(|r| r.frame_id.as_str()).collect();
    let mut frames: HashMap<String, FrameInfo> = HashMap::new();
    scan(lake, Table::Frames, Some(&dates), |_, b| {
        let (id, contributor) = (text(b, "frame_id")?, text(b, "contributor_id")?);
        let (lat, lon) = (prim::<Float64Type>(b, "lat")?, prim::<Float64Type>(b, "lon")?);
        let t = prim::<TimestampMillisecondType>(b, "captured_at")?;
        for i in 0..b.num_rows() {
            if wanted.contains(id.value(i)) {
                let info = FrameInfo {
                    lat: lat.value(i),
                    lon: lon.value(i),
                    t_ms: t.value(i),
                    contributor: contributor.value(i).to_owned(),
                };
                frames.insert(id.value(i).to_owned(), info);
            }
        }
        Ok(())
    })
    .await?;
    // A sign row whose frame was withdrawn is not an observation any more.
    let obs: Vec<Observation> = rows
        .iter()
        .filter_map(|r| {
            let f = frames.get(&r.frame_id)?;
            let sighting = Sighting {
                bearing_deg: bearing_deg(f.lat, f.lon, r.lat, r.lon),
                range_m: haversine_m(f.lat, f.lon, r.lat, r.lon),
                lat: r.lat,
                lon: r.lon,
            };
            Some(Observation {
                key: r.key.clone(),
                class: r.class.clone(),
                contributor: f.contributor.clone(),
                t_ms: f.t_ms,
                score: r.score,
                cam_lat: f.lat,
                cam_lon: f.lon,
                sighting,
            })
        })
        .collect();
    let features = cluster(&obs, cfg);
    let mut link: HashMap<&str, &str> = HashMap::new();
    for f in &features {
        for m in &f.members {
            link.insert(obs[*m].key.as_str(), f.feature_id.as_str());
        }
    }
    write_features(lake, &features).await?;
    let lock = TableLock::acquire(lake).await?;
    let linked = rewrite(lake, &lock, Table::Detections, &dates, |_, b| relink(b, &link)).await;
    lock.release().await?;
    Ok(BuildReport {
        observations: obs.len(),
        features: features.len(),
        detection_files_linked: linked?.files,
    })
}

/// The batch with `feature_id` set from `link` for its sign rows; `None` when nothing changes.
fn relink(b: &RecordBatch, link: &HashMap<&str, &str>) -> roadhex_lake::Result<Option<RecordBatch>> {
    let (kind, current) = (text(b, "kind")?, text(b, "feature_id")?);
    let keys = row_keys(b)?;
    let ids: Vec<Option<&str>> = (0..b.num_rows())
        .map(|i| if kind.value(i) == "sign" { link.get(keys[i].as_str()).copied() } else { None })
        .collect();
    let same = ids.iter().enumerate().all(|(i, id)| match id {
        Some(id) => !current.is_null(i) && current.value(i) == *id,
        None => current.is_null(i),
    });
    if same {
        return Ok(None);
    }
    let schema = b.schema();
    let at = schema.index_of("feature_id")?;
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols[at] = Arc::new(StringArray::from(ids));
    Ok(Some(RecordBatch::try_new(schema, cols)?))
}

/// Replaces the table: one file per first-seen day, then the days that no longer have features.
async fn write_features(lake: &Lake, features: &[Feature]) -> Result<()> {
    let mut by_day: BTreeMap<String, Vec<&Feature>> = BTreeMap::new();
    for f in features {
        by_day.entry(partition_date(f.first_seen_ms)).or_default().push(f);
    }
    for (day, fs) in &by_day {
        append(lake, Table::Features, day, "features", &[batch(fs)?]).await?;
    }
    for day in partitions(lake, Table::Features).await? {
        if !by_day.contains_key(&day) {
            let prefix = paths::table_prefix(Table::Features).join(format!("{PARTITION_COLUMN}={day}"));
            lake.delete_prefix(&prefix).await?;
        }
    }
    Ok(())
}

fn batch(fs: &[&Feature]) -> Result<RecordBatch> {
    let cells: Vec<[u64; 4]> = fs
        .iter()
        .map(|f| {
            h3o::LatLng::new(f.lat, f.lon)
                .map(|ll| cell_columns(ll.to_cell(h3o::Resolution::Twelve)))
                .unwrap_or([0; 4])
        })
        .collect();
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(arrow::array::TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let f64s = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let u64s = |k: usize| -> ArrayRef { Arc::new(UInt64Array::from_iter_values(cells.iter().map(|c| c[k]))) };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(fs.iter().map(|f| f.feature_id.as_str()))),
        Arc::new(StringArray::from_iter_values(fs.iter().map(|f| f.class.as_str()))),
        f64s(fs.iter().map(|f| f.lat).collect()),
        f64s(fs.iter().map(|f| f.lon).collect()),
        u64s(0),
        u64s(1),
        u64s(2),
        u64s(3),
        ts(fs.iter().map(|f| f.first_seen_ms).collect()),
        ts(fs.iter().map(|f| f.last_seen_ms).collect()),
        Arc::new(UInt32Array::from_iter_values(fs.iter().map(|f| f.observations))),
        Arc::new(UInt32Array::from_iter_values(fs.iter().map(|f| f.contributors))),
        f64s(fs.iter().map(|f| f.confidence).collect()),
        f64s(fs.iter().map(|f| f.error_m).collect()),
        Arc::new(BinaryArray::from_iter_values(fs.iter().map(|f| wkb::point(f.lon, f.lat)))),
    ];
    Ok(RecordBatch::try_new(Table::Features.schema(), cols)?)
}
