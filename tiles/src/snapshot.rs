//! What the tiles and imagery routes serve: one immutable, in-memory view of the `coverage`,
//! `frames` and `features` tables, loaded through the lake's DataFusion catalog and replaced as a
//! whole when the tables change. Every lookup is a binary search over Morton keys or H3 indexes.

use crate::error::Result;
use crate::grid::{KEY_ZOOM, World};
use arrow::datatypes::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use h3o::{CellIndex, LatLng, Resolution};
use roadhex_lake::Lake;
use roadhex_lake::columns::{prim, text};
use std::collections::HashMap;

/// Zoom of the buckets sequences are filed under (a z12 tile is about 10 km across).
pub(crate) const SEQUENCE_BUCKET_ZOOM: u8 = 12;

/// A coverage cell at some resolution, with its values aggregated over its res-12 children.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub cell: CellIndex,
    /// Morton key of the cell centre.
    pub key: u64,
    /// The centre in normalized Web Mercator.
    pub centre: World,
    /// Mean freshness multiplier of the covered res-12 children, in [0, 1].
    pub freshness: f64,
    pub last_captured_ms: i64,
    pub frames: u64,
    pub contributors: u32,
    /// Res-12 cells covered inside it.
    pub cells: u32,
}

/// A published frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: Box<str>,
    pub capture: u32,
    pub index: u32,
    pub t_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub heading: f64,
    pub h3_r12: u64,
    pub key: u64,
    pub object_key: Box<str>,
}

/// A capture's track through its published frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub capture: u32,
    pub start_ms: i64,
    pub points: Vec<World>,
    /// World bounds (x0, y0, x1, y1).
    pub bounds: (f64, f64, f64, f64),
}

/// A map feature (a located sign).
#[derive(Debug, Clone, PartialEq)]
pub struct MapFeature {
    pub id: Box<str>,
    pub class: Box<str>,
    pub lat: f64,
    pub lon: f64,
    pub key: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub observations: u32,
    pub contributors: u32,
    pub confidence: f64,
    pub error_m: f64,
}

/// One resolution of the coverage, sorted by Morton key of the cell centres.
#[derive(Debug, Default)]
pub struct Level {
    pub cells: Vec<Cell>,
    /// `rings[ring_start[i]..ring_start[i + 1]]` is cell i's boundary, clockwise on the map (what
    /// MVT wants of an exterior ring), as offsets from its centre in world units. Computed once
    /// per snapshot: H3's boundary math costs more than encoding the tile.
    pub ring_start: Vec<u32>,
    pub rings: Vec<[f32; 2]>,
    /// The largest vertex offset of any cell, world units: how far outside a tile a centre can
    /// lie while its hexagon still reaches in.
    pub max_radius: f64,
}

impl Level {
    fn new(cells: Vec<Cell>) -> Self {
        // Boundaries on every core: a million cells take a few seconds on one.
        let threads = std::thread::available_parallelism().map_or(1, usize::from).max(1);
        let chunk = cells.len().div_ceil(threads).max(1);
        let parts: Vec<Vec<Vec<[f32; 2]>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = cells
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(ring_offsets).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut ring_start = Vec::with_capacity(cells.len() + 1);
        let mut rings = Vec::with_capacity(cells.len() * 6);
        let mut max_radius = 0.0f64;
        for ring in parts.into_iter().flatten() {
            ring_start.push(u32::try_from(rings.len()).unwrap_or(u32::MAX));
            for v in &ring {
                max_radius = max_radius.max(f64::from(v[0].abs()).max(f64::from(v[1].abs())));
            }
            rings.extend(ring);
        }
        ring_start.push(u32::try_from(rings.len()).unwrap_or(u32::MAX));
        Self { cells, ring_start, rings, max_radius }
    }

    /// Cell i's boundary offsets.
    pub fn ring(&self, i: usize) -> &[[f32; 2]] {
        let (a, b) = (self.ring_start[i] as usize, self.ring_start[i + 1] as usize);
        &self.rings[a..b]
    }
}

/// A cell's boundary as offsets from its centre, reversed: H3 rings run counter-clockwise on the map.
fn ring_offsets(c: &Cell) -> Vec<[f32; 2]> {
    c.cell
        .boundary()
        .iter()
        .rev()
        .map(|ll| {
            let w = World::from_lat_lon(ll.lat(), ll.lng());
            [(w.x - c.centre.x) as f32, (w.y - c.centre.y) as f32]
        })
        .collect()
}

/// A coverage row reduced to what tiles need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoverageRow {
    pub(crate) cell: u64,
    pub(crate) contributor: u32,
    pub(crate) t_ms: i64,
    pub(crate) frames: u32,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

/// The whole view.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Changes whenever the served bytes may change (table files or the freshness clock).
    pub version: String,
    /// The time freshness is computed at.
    pub as_of_ms: i64,
    /// Index = resolution; only the resolutions some zoom draws are filled.
    pub levels: Vec<Level>,
    pub captures: Vec<Box<str>>,
    /// Sorted by (h3_r12, time): descendants of any cell are one contiguous run.
    pub frames: Vec<Frame>,
    /// (Morton key, index into `frames`), sorted.
    pub frames_by_key: Vec<(u64, u32)>,
    pub frames_by_id: HashMap<Box<str>, u32>,
    pub sequences: Vec<Sequence>,
    /// (z12 Morton key of a bucket the track touches, index into `sequences`), sorted.
    pub sequences_by_bucket: Vec<(u64, u32)>,
    /// Sorted by Morton key.
    pub features: Vec<MapFeature>,
    /// (lat0, lon0, lat1, lon1) of everything, if anything.
    pub bounds: Option<(f64, f64, f64, f64)>,
}

/// A `frames` row reduced to what tiles and imagery need.
#[derive(Debug, Clone)]
pub(crate) struct FrameRow {
    pub(crate) id: Box<str>,
    pub(crate) capture: Box<str>,
    pub(crate) index: u32,
    pub(crate) t_ms: i64,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    pub(crate) heading: f64,
    pub(crate) h3_r12: u64,
    pub(crate) object_key: Box<str>,
}

async fn query(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let df = ctx.sql(sql).await.map_err(roadhex_lake::LakeError::from)?;
    Ok(df.collect().await.map_err(roadhex_lake::LakeError::from)?)
}

/// Raw rows read from the tables.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) coverage: Vec<CoverageRow>,
    pub(crate) frames: Vec<FrameRow>,
    pub(crate) features: Vec<MapFeature>,
}

/// Reads the three tables.
pub(crate) async fn read(lake: &Lake) -> Result<Tables> {
    let ctx = roadhex_lake::catalog::session(lake)?;
    let mut out = Tables::default();
    let mut contributors: HashMap<String, u32> = HashMap::new();
    let sql = "SELECT h3_r12, contributor_id, captured_at, frame_count, lat, lon FROM coverage";
    for b in query(&ctx, sql).await? {
        let (cell, who) = (prim::<UInt64Type>(&b, "h3_r12")?, text(&b, "contributor_id")?);
        let t = prim::<TimestampMillisecondType>(&b, "captured_at")?;
        let n = prim::<UInt32Type>(&b, "frame_count")?;
        let (lat, lon) = (prim::<Float64Type>(&b, "lat")?, prim::<Float64Type>(&b, "lon")?);
        for i in 0..b.num_rows() {
            let next = u32::try_from(contributors.len()).unwrap_or(u32::MAX);
            let contributor = *contributors.entry(who.value(i).to_owned()).or_insert(next);
            out.coverage.push(CoverageRow {
                cell: cell.value(i),
                contributor,
                t_ms: t.value(i),
                frames: n.value(i),
                lat: lat.value(i),
                lon: lon.value(i),
            });
        }
    }
    let sql = "SELECT frame_id, capture_id, frame_index, captured_at, lat, lon, heading, h3_r12, object_key FROM frames";
    for b in query(&ctx, sql).await? {
        let (id, capture, key) = (text(&b, "frame_id")?, text(&b, "capture_id")?, text(&b, "object_key")?);
        let index = prim::<UInt32Type>(&b, "frame_index")?;
        let t = prim::<TimestampMillisecondType>(&b, "captured_at")?;
        let (lat, lon) = (prim::<Float64Type>(&b, "lat")?, prim::<Float64Type>(&b, "lon")?);
        let heading = prim::<Float64Type>(&b, "heading")?;
        let cell = prim::<UInt64Type>(&b, "h3_r12")?;
        for i in 0..b.num_rows() {
            out.frames.push(FrameRow {
                id: id.value(i).into(),
                capture: capture.value(i).into(),
                index: index.value(i),
                t_ms: t.value(i),
                lat: lat.value(i),
                lon: lon.value(i),
                heading: heading.value(i),
                h3_r12: cell.value(i),
                object_key: key.value(i).into(),
            });
        }
    }
    let sql = "SELECT feature_id, class, lat, lon, first_seen, last_seen, observations, contributors, \
               confidence, error_m FROM features";
    for b in query(&ctx, sql).await? {
        let (id, class) = (text(&b, "feature_id")?, text(&b, "class")?);
        let (lat, lon) = (prim::<Float64Type>(&b, "lat")?, prim::<Float64Type>(&b, "lon")?);
        let first = prim::<TimestampMillisecondType>(&b, "first_seen")?;
        let last = prim::<TimestampMillisecondType>(&b, "last_seen")?;
        let obs = prim::<UInt32Type>(&b, "observations")?;
        let who = prim::<UInt32Type>(&b, "contributors")?;
        let (conf, err) = (prim::<Float64Type>(&b, "confidence")?, prim::<Float64Type>(&b, "error_m")?);
        for i in 0..b.num_rows() {
            out.features.push(MapFeature {
                id: id.value(i).into(),
                class: class.value(i).into(),
                lat: lat.value(i),
                lon: lon.value(i),
                key: World::from_lat_lon(lat.value(i), lon.value(i)).key(),
                first_seen_ms: first.value(i),
                last_seen_ms: last.value(i),
                observations: obs.value(i),
                contributors: who.value(i),
                confidence: conf.value(i),
                error_m: err.value(i),
            });
        }
    }
    Ok(out)
}

impl Snapshot {
    /// Builds every index. `resolutions` are the coverage levels to aggregate; `refill_ms` is how
    /// long a cell takes to become fully fresh again.
    pub(crate) fn build(
        tables: Tables,
        version: String,
        as_of_ms: i64,
        refill_ms: f64,
        resolutions: &[Resolution],
    ) -> Self {
        let mut s = Snapshot { version, as_of_ms, ..Default::default() };
        let mut bounds = Bounds::default();
        s.levels = coverage_levels(tables.coverage, as_of_ms, refill_ms, resolutions, &mut bounds);
        s.index_frames(tables.frames, &mut bounds);
        let mut features = tables.features;
        for f in &features {
            bounds.add(f.lat, f.lon);
        }
        features.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.id.cmp(&b.id)));
        s.features = features;
        s.bounds = bounds.get();
        s
    }

    fn index_frames(&mut self, mut rows: Vec<FrameRow>, bounds: &mut Bounds) {
        // Captures in id order, so a capture's number is stable for a given set of captures.
        rows.sort_by(|a, b| a.capture.cmp(&b.capture).then(a.index.cmp(&b.index)));
        let mut captures: Vec<Box<str>> = Vec::new();
        let mut frames = Vec::with_capacity(rows.len());
        for FrameRow { id, capture, index, t_ms, lat, lon, heading, h3_r12, object_key } in rows {
            if captures.last() != Some(&capture) {
                captures.push(capture);
            }
            bounds.add(lat, lon);
            let capture = u32::try_from(captures.len() - 1).unwrap_or(u32::MAX);
            let key = World::from_lat_lon(lat, lon).key();
            frames.push(Frame { id, capture, index, t_ms, lat, lon, heading, h3_r12, key, object_key });
        }
        // Tracks, from frames still in (capture, index) order.
        let mut start = 0;
        while start < frames.len() {
            let c = frames[start].capture;
            let end = start + frames[start..].iter().take_while(|f| f.capture == c).count();
            let points: Vec<World> =
                frames[start..end].iter().map(|f| World::from_lat_lon(f.lat, f.lon)).collect();
            let mut b = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            for p in &points {
                b = (b.0.min(p.x), b.1.min(p.y), b.2.max(p.x), b.3.max(p.y));
            }
            let i = u32::try_from(self.sequences.len()).unwrap_or(u32::MAX);
            let mut buckets: Vec<u64> = points.iter().map(|p| bucket_key(*p)).collect();
            buckets.sort_unstable();
            buckets.dedup();
            self.sequences_by_bucket.extend(buckets.into_iter().map(|k| (k, i)));
            let start_ms = frames[start..end].iter().map(|f| f.t_ms).min().unwrap_or(0);
            self.sequences.push(Sequence { capture: c, start_ms, points, bounds: b });
            start = end;
        }
        self.sequences_by_bucket.sort_unstable();
        frames
            .sort_by(|a, b| a.h3_r12.cmp(&b.h3_r12).then(a.t_ms.cmp(&b.t_ms)).then_with(|| a.id.cmp(&b.id)));
        self.frames_by_key =
            frames.iter().enumerate().map(|(i, f)| (f.key, u32::try_from(i).unwrap_or(u32::MAX))).collect();
        self.frames_by_key.sort_unstable();
        self.frames_by_id = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        self.frames = frames;
        self.captures = captures;
    }

    /// The coverage at `res`, if that resolution was built.
    pub fn level(&self, res: Resolution) -> Option<&Level> {
        self.levels.get(usize::from(u8::from(res))).filter(|l| !l.cells.is_empty())
    }

    /// Frames inside `cell` (any resolution), as a slice of [`Snapshot::frames`] for cells of
    /// resolution 12 or coarser; finer cells are filtered from their res-12 parent's run.
    pub fn frames_in_cell(&self, cell: CellIndex) -> Vec<&Frame> {
        let res = cell.resolution();
        let coarse =
            if res > Resolution::Twelve { cell.parent(Resolution::Twelve).unwrap_or(cell) } else { cell };
        let (lo, hi) = descendant_range(coarse);
        let a = self.frames.partition_point(|f| f.h3_r12 < lo);
        let b = self.frames.partition_point(|f| f.h3_r12 <= hi);
        let run = &self.frames[a..b];
        if res <= Resolution::Twelve {
            return run.iter().collect();
        }
        run.iter().filter(|f| LatLng::new(f.lat, f.lon).is_ok_and(|ll| ll.to_cell(res) == cell)).collect()
    }
}

/// The z12 bucket a point is filed under.
pub(crate) fn bucket_key(p: World) -> u64 {
    p.key() >> (2 * u32::from(KEY_ZOOM - SEQUENCE_BUCKET_ZOOM))
}

/// The smallest and largest res-12 index under `cell` (res ≤ 12). H3 indexes order their digits
/// from coarse to fine, so every res-12 descendant lies between the two.
pub fn descendant_range(cell: CellIndex) -> (u64, u64) {
    let res = u32::from(u8::from(cell.resolution()));
    let raw = u64::from(cell);
    // Resolution field: bits 52..56; digit k (1-based): bits 3*(15-k)..+3.
    let mut lo = (raw & !(0xF << 52)) | (12u64 << 52);
    let mut hi = lo;
    for k in (res + 1)..=12 {
        let shift = 3 * (15 - k);
        lo &= !(0b111 << shift);
        hi = (hi & !(0b111 << shift)) | (0b110 << shift);
    }
    (lo, hi)
}

#[derive(Debug)]
struct Bounds(f64, f64, f64, f64, bool);

impl Default for Bounds {
    fn default() -> Self {
        Self(90.0, 180.0, -90.0, -180.0, false)
    }
}

impl Bounds {
    fn add(&mut self, lat: f64, lon: f64) {
        *self = Self(self.0.min(lat), self.1.min(lon), self.2.max(lat), self.3.max(lon), true);
    }
    fn get(&self) -> Option<(f64, f64, f64, f64)> {
        self.4.then_some((self.0, self.1, self.2, self.3))
    }
}

/// Aggregates coverage rows to every requested resolution.
fn coverage_levels(
    mut rows: Vec<CoverageRow>,
    as_of_ms: i64,
    refill_ms: f64,
    resolutions: &[Resolution],
    bounds: &mut Bounds,
) -> Vec<Level> {
    rows.sort_unstable_by_key(|r| (r.cell, r.contributor));
    // Res-12 cells first: one entry per cell, with the span of its rows.
    struct Fine {
        cell: u64,
        rows: (usize, usize),
        last: i64,
        frames: u64,
        freshness: f64,
        lat: f64,
        lon: f64,
    }
    let mut fine: Vec<Fine> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let c = rows[i].cell;
        let end = i + rows[i..].iter().take_while(|r| r.cell == c).count();
        let last = rows[i..end].iter().map(|r| r.t_ms).max().unwrap_or(0);
        let frames = rows[i..end].iter().map(|r| u64::from(r.frames)).sum();
        let age = (as_of_ms - last).max(0) as f64;
        let freshness = if refill_ms > 0.0 { (age / refill_ms).min(1.0) } else { 1.0 };
        bounds.add(rows[i].lat, rows[i].lon);
        fine.push(Fine {
            cell: c,
            rows: (i, end),
            last,
            frames,
            freshness,
            lat: rows[i].lat,
            lon: rows[i].lon,
        });
        i = end;
    }
    let mut levels: Vec<Level> = (0..=12).map(|_| Level::default()).collect();
    let mut who: Vec<u32> = Vec::new();
    for &res in resolutions {
        let mut cells = Vec::new();
        let mut j = 0;
        while j < fine.len() {
            let Ok(c) = CellIndex::try_from(fine[j].cell) else {
                j += 1;
                continue;
            };
            let parent = c.parent(res).unwrap_or(c);
            let (lo, hi) = descendant_range(parent);
            let end = j + fine[j..].iter().take_while(|f| f.cell >= lo && f.cell <= hi).count();
            let group = &fine[j..end];
            who.clear();
            for f in group {
                who.extend(rows[f.rows.0..f.rows.1].iter().map(|r| r.contributor));
            }
            who.sort_unstable();
            who.dedup();
            let centre = if res == Resolution::Twelve {
                World::from_lat_lon(group[0].lat, group[0].lon)
            } else {
                let ll = LatLng::from(parent);
                World::from_lat_lon(ll.lat(), ll.lng())
            };
            cells.push(Cell {
                cell: parent,
                key: centre.key(),
                centre,
                freshness: group.iter().map(|f| f.freshness).sum::<f64>() / group.len() as f64,
                last_captured_ms: group.iter().map(|f| f.last).max().unwrap_or(0),
                frames: group.iter().map(|f| f.frames).sum(),
                contributors: u32::try_from(who.len()).unwrap_or(u32::MAX),
                cells: u32::try_from(group.len()).unwrap_or(u32::MAX),
            });
            j = end.max(j + 1);
        }
        cells.sort_unstable_by_key(|c| (c.key, u64::from(c.cell)));
        levels[usize::from(u8::from(res))] = Level::new(cells);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cell: CellIndex, contributor: u32, t_ms: i64) -> CoverageRow {
        let ll = LatLng::from(cell);
        CoverageRow { cell: u64::from(cell), contributor, t_ms, frames: 2, lat: ll.lat(), lon: ll.lng() }
    }

    #[test]
    fn descendants_are_one_range() {
        let c = LatLng::new(37.77, -122.42).expect("ll").to_cell(Resolution::Twelve);
        for r in [Resolution::Six, Resolution::Nine, Resolution::Eleven, Resolution::Twelve] {
            let p = c.parent(r).expect("parent");
            let (lo, hi) = descendant_range(p);
            assert!((lo..=hi).contains(&u64::from(c)), "{r:?}");
            // Every res-12 child of the parent is in range and a neighbour outside is not.
            if r >= Resolution::Nine {
                for ch in p.children(Resolution::Twelve) {
                    assert!((lo..=hi).contains(&u64::from(ch)));
                }
            }
        }
        let other = LatLng::new(37.80, -122.30).expect("ll").to_cell(Resolution::Twelve);
        let (lo, hi) = descendant_range(c.parent(Resolution::Nine).expect("parent"));
        assert!(!(lo..=hi).contains(&u64::from(other)));
    }

    #[test]
    fn parents_aggregate_children() {
        let a = LatLng::new(37.77, -122.42).expect("ll").to_cell(Resolution::Twelve);
        let p = a.parent(Resolution::Eight).expect("parent");
        let kids: Vec<CellIndex> = p.children(Resolution::Twelve).take(3).collect();
        let day = 86_400_000;
        let rows =
            vec![row(kids[0], 0, 0), row(kids[0], 1, 0), row(kids[1], 1, 7 * day), row(kids[2], 2, 14 * day)];
        let mut b = Bounds::default();
        let levels = coverage_levels(
            rows,
            14 * day,
            7.0 * day as f64,
            &[Resolution::Eight, Resolution::Twelve],
            &mut b,
        );
        let l8 = &levels[8].cells;
        assert_eq!(l8.len(), 1);
        assert_eq!((l8[0].cell, l8[0].cells, l8[0].contributors, l8[0].frames), (p, 3, 3, 8));
        // Children fresh 1.0 (14 days old), 1.0 (7 days), 0.0 (just now): mean 2/3.
        assert!((l8[0].freshness - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(l8[0].last_captured_ms, 14 * day);
        assert_eq!(levels[12].cells.len(), 3);
        assert!(b.get().is_some());
    }
}
