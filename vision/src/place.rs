//! Where each frame was taken, which H3 cells a capture covered, and when it entered each.

use h3o::{CellIndex, LatLng, Resolution};
use roadhex_schemas::CaptureManifest;
use roadhex_schemas::gates::position_at;
use roadhex_schemas::geo::{bearing_deg, haversine_m};

/// The resolution rewards and coverage count in (≈ 50 cells per road-km).
pub const COVERAGE_RES: Resolution = Resolution::Twelve;
/// Coarser parents stored beside each cell, for tiles and aggregation.
pub const PARENT_RES: [Resolution; 3] = [Resolution::Ten, Resolution::Eight, Resolution::Six];

/// A frame with its interpolated camera position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub index: usize,
    pub t_ms: i64,
    pub lat: f64,
    pub lon: f64,
    /// Degrees clockwise from north.
    pub heading: f64,
    /// m/s.
    pub speed: f64,
    pub cell: CellIndex,
}

/// One covered cell of a capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CoveredCell {
    pub cell: CellIndex,
    /// When the capture entered the cell: a frame's time, or interpolated along the path.
    pub first_t_ms: i64,
    /// Index of the first frame taken in the cell, if any was.
    pub first_frame: Option<usize>,
    pub frame_count: u32,
}

/// Places the frames at `indices` (the ones that passed the gates). A frame outside the telemetry
/// span cannot be placed and is left out. When the receiver reports no heading (all zero while
/// moving), the heading comes from the track.
pub fn place_frames(manifest: &CaptureManifest, indices: &[usize]) -> Vec<Placed> {
    let t = &manifest.telemetry;
    let no_heading = t.iter().all(|s| s.heading == 0.0);
    indices
        .iter()
        .filter_map(|&index| {
            let frame = manifest.frames.get(index)?;
            let (pos, a, b) = position_at(t, frame.t_ms)?;
            let heading = if no_heading { track_heading(manifest, a, b) } else { pos.heading };
            let cell = LatLng::new(pos.lat, pos.lon).ok()?.to_cell(COVERAGE_RES);
            Some(Placed {
                index,
                t_ms: frame.t_ms,
                lat: pos.lat,
                lon: pos.lon,
                heading,
                speed: pos.speed,
                cell,
            })
        })
        .collect()
}

/// Bearing of the track around samples `a`..`b`, widening until the positions differ.
fn track_heading(m: &CaptureManifest, a: usize, b: usize) -> f64 {
    let t = &m.telemetry;
    let (mut lo, mut hi) = (a, b.max(a + 1).min(t.len().saturating_sub(1)));
    while haversine_m(t[lo].lat, t[lo].lon, t[hi].lat, t[hi].lon) < 1.0 {
        if lo > 0 {
            lo -= 1;
        } else if hi + 1 < t.len() {
            hi += 1;
        } else {
            return 0.0;
        }
    }
    bearing_deg(t[lo].lat, t[lo].lon, t[hi].lat, t[hi].lon)
}

/// The cell and its stored parents as raw H3 indexes: `[r12, r10, r8, r6]`.
pub fn cell_columns(cell: CellIndex) -> [u64; 4] {
    let p = |r| cell.parent(r).map_or(0, u64::from);
    [u64::from(cell), p(PARENT_RES[0]), p(PARENT_RES[1]), p(PARENT_RES[2])]
}

/// Cell centre as (lat, lon).
pub fn cell_center(cell: CellIndex) -> (f64, f64) {
    let ll = LatLng::from(cell);
    (ll.lat(), ll.lng())
}

/// Every res-12 cell the capture passed through, in order of entry: the frames' cells plus the
/// cells between consecutive frames (a grid path), so a fast drive leaves no holes.
pub fn coverage(placed: &[Placed]) -> Vec<CoveredCell> {
    let mut out: Vec<CoveredCell> = Vec::new();
    let mut seen = std::collections::HashMap::<CellIndex, usize>::new();
    let mut visit = |cell: CellIndex, t_ms: i64, frame: Option<usize>| {
        let i = *seen.entry(cell).or_insert_with(|| {
            out.push(CoveredCell { cell, first_t_ms: t_ms, first_frame: None, frame_count: 0 });
            out.len() - 1
        });
        if let Some(f) = frame {
            let c = &mut out[i];
            c.frame_count += 1;
            c.first_frame.get_or_insert(f);
        }
    };
    for (k, p) in placed.iter().enumerate() {
        if let Some(prev) = k.checked_sub(1).and_then(|j| placed.get(j)) {
            let path = path_cells(prev, p);
            let n = path.len().max(1) as i64;
            for (i, cell) in path.into_iter().enumerate() {
                visit(cell, prev.t_ms + (p.t_ms - prev.t_ms) * i as i64 / n, None);
            }
        }
        visit(p.cell, p.t_ms, Some(p.index));
    }
    out
}

/// Cells strictly between two frames' cells. H3's grid path can fail (pentagons, far cells);
/// then the segment is sampled every 2 m instead.
fn path_cells(a: &Placed, b: &Placed) -> Vec<CellIndex> {
    if a.cell == b.cell {
        return Vec::new();
    }
    if let Ok(iter) = a.cell.grid_path_cells(b.cell)
        && let Ok(cells) = iter.collect::<Result<Vec<_>, _>>()
    {
        return cells.into_iter().filter(|c| *c != a.cell && *c != b.cell).collect();
    }
    let d = haversine_m(a.lat, a.lon, b.lat, b.lon);
    let steps = (d / 2.0).ceil().clamp(1.0, 10_000.0) as usize;
    let mut cells = Vec::new();
    for i in 1..steps {
        let f = i as f64 / steps as f64;
        let ll = LatLng::new(a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f);
        if let Ok(ll) = ll {
            let c = ll.to_cell(COVERAGE_RES);
            if c != a.cell && c != b.cell && cells.last() != Some(&c) {
                cells.push(c);
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use roadhex_schemas::geo::destination;
    use roadhex_schemas::{Camera, FixType, FrameEntry, GnssSample, Mount};

    fn manifest(heading: f64) -> CaptureManifest {
        let telemetry = (0..=20)
            .map(|i| {
                let (lat, lon) = destination(37.7968, -122.3954, 90.0, 10.0 * f64::from(i));
                GnssSample {
                    t_ms: i64::from(i) * 1000,
                    lat,
                    lon,
                    alt: 0.0,
                    speed: 10.0,
                    heading,
                    hdop: None,
                    satellites: None,
                    fix: Some(FixType::Fix3d),
                }
            })
            .collect();
        CaptureManifest {
            version: 1,
            device_id: "0".repeat(32),
            sequence: 1,
            created_at: chrono::DateTime::default(),
            camera: Camera {
                width: 1280,
                height: 720,
                focal_length_px: None,
                hfov_deg: Some(90.0),
                mount: Mount::Front,
                mount_height_m: 1.4,
            },
            telemetry,
            imu: Vec::new(),
            frames: (0..10)
                .map(|i| FrameEntry { t_ms: i * 2000 + 500, sha256: format!("{i:064x}"), size: 60_000 })
                .collect(),
        }
    }

    #[test]
    fn frames_are_placed_and_headed() {
        let m = manifest(0.0);
        let placed = place_frames(&m, &[0, 3, 9]);
        assert_eq!(placed.len(), 3);
        // Heading comes from the track (due east) when the receiver reported none.
        assert!((placed[1].heading - 90.0).abs() < 0.5, "{}", placed[1].heading);
        let (lat, lon) = destination(37.7968, -122.3954, 90.0, 65.0);
        assert!(haversine_m(placed[1].lat, placed[1].lon, lat, lon) < 0.01);
        let cols = cell_columns(placed[0].cell);
        assert_eq!(CellIndex::try_from(cols[1]).map(|c| c.resolution()), Ok(Resolution::Ten));
    }

    #[test]
    fn coverage_has_no_holes_between_frames() {
        let m = manifest(90.0);
        let placed = place_frames(&m, &(0..10).collect::<Vec<_>>());
        let cells = coverage(&placed);
        // 180 m of road at res 12 (edge ≈ 9.4 m) crosses well over a dozen cells.
        assert!(cells.len() >= 12, "{}", cells.len());
        for w in cells.windows(2) {
            assert!(w[0].first_t_ms <= w[1].first_t_ms);
        }
        // Consecutive cells touch: the path is connected.
        for w in cells.windows(2) {
            assert_eq!(
                w[0].cell.grid_distance(w[1].cell),
                Ok(1),
                "gap between {} and {}",
                w[0].cell,
                w[1].cell
            );
        }
        assert_eq!(cells.iter().map(|c| c.frame_count).sum::<u32>(), 10);
    }
}
