//! Encoding one layer of one tile as Mapbox Vector Tile 2.1 (with the `mvt` crate), from a
//! [`Snapshot`]. Pure CPU work: callers run it off the async executor.

use crate::error::Result;
use crate::grid::{BUFFER, EXTENT, TileId, World, resolution_for_zoom};
use crate::snapshot::{SEQUENCE_BUCKET_ZOOM, Snapshot};
use mvt::{GeomEncoder, GeomType, Tile};
use std::str::FromStr;

/// The layers served, each its own tile set and TileJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Coverage,
    Sequences,
    Frames,
    Features,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Coverage, Layer::Sequences, Layer::Frames, Layer::Features];

    pub fn name(self) -> &'static str {
        match self {
            Self::Coverage => "coverage",
            Self::Sequences => "sequences",
            Self::Frames => "frames",
            Self::Features => "features",
        }
    }

    /// Zooms at which the layer has data (Mapillary's split: overview, sequences, points at z14).
    pub fn zooms(self) -> (u8, u8) {
        match self {
            Self::Coverage => (0, crate::grid::MAX_ZOOM),
            Self::Sequences => (6, crate::grid::MAX_ZOOM),
            Self::Frames | Self::Features => (14, crate::grid::MAX_ZOOM),
        }
    }

    /// Attribute names and types, as TileJSON `vector_layers[].fields` lists them.
    pub fn fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Coverage => &[
                ("h3", "String: H3 cell index (resolution chosen per zoom)"),
                ("res", "Number: H3 resolution of the cell"),
                ("freshness", "Number: mean freshness multiplier of its res-12 cells, 0 (just mapped) to 1"),
                ("last_captured", "Number: latest capture time, Unix seconds"),
                ("frames", "Number: published frames in the cell"),
                ("contributors", "Number: distinct contributors who covered it"),
                ("cells", "Number: res-12 cells covered inside it"),
            ],
            Self::Sequences => &[
                ("capture_id", "String: capture the track belongs to"),
                ("start", "Number: time of its first frame, Unix seconds"),
                ("frames", "Number: published frames along it"),
            ],
            Self::Frames => &[
                ("id", "String: frame id (GET /v1/frames/{id}.jpg)"),
                ("time", "Number: exposure time, Unix seconds"),
                ("heading", "Number: camera heading, degrees clockwise from north"),
                ("capture_id", "String: capture the frame came in"),
            ],
            Self::Features => &[
                ("id", "String: stable feature id"),
                ("class", "String: sign class (GTSRB name or other_sign)"),
                ("first_seen", "Number: first observation, Unix seconds"),
                ("last_seen", "Number: latest observation, Unix seconds"),
                ("observations", "Number: detections merged into it"),
                ("confidence", "Number: confidence in [0, 1]"),
            ],
        }
    }
}

impl FromStr for Layer {
    type Err = crate::error::TilesError;
    fn from_str(s: &str) -> Result<Self> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| crate::error::TilesError::UnknownLayer(s.to_owned()))
    }
}

/// The encoded tile, or `None` when it holds no feature.
pub fn render(s: &Snapshot, layer: Layer, t: TileId) -> Result<Option<Vec<u8>>> {
    let (min, max) = layer.zooms();
    if t.z < min || t.z > max {
        return Ok(None);
    }
    let tile = Tile::new(EXTENT);
    let out = tile.create_layer(layer.name());
    let out = match layer {
        Layer::Coverage => coverage(s, t, out)?,
        Layer::Sequences => sequences(s, t, out)?,
        Layer::Frames => frames(s, t, out)?,
        Layer::Features => features(s, t, out)?,
    };
    if out.num_features() == 0 {
        return Ok(None);
    }
    let mut tile = tile;
    tile.add_layer(out)?;
    Ok(Some(tile.to_bytes()?))
}

/// Indexes of the entries of a key-sorted list whose key falls in the tile's neighbourhood.
fn in_neighbourhood<T>(items: &[T], key: impl Fn(&T) -> u64, t: TileId) -> impl Iterator<Item = usize> {
    t.neighbourhood_ranges().into_iter().flat_map(move |(lo, hi)| {
        let a = items.partition_point(|i| key(i) < lo);
        let b = items.partition_point(|i| key(i) < hi);
        a..b
    })
}

/// Tile-local coordinates clamped to the buffer (hexagons and lines that leave the tile end
/// on the buffer's edge, outside what is drawn).
fn clamp(p: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = (-BUFFER, f64::from(EXTENT) + BUFFER);
    (p.0.clamp(lo, hi), p.1.clamp(lo, hi))
}

fn inside_buffer(p: (f64, f64)) -> bool {
    let (lo, hi) = (-BUFFER, f64::from(EXTENT) + BUFFER);
    (lo..=hi).contains(&p.0) && (lo..=hi).contains(&p.1)
}

fn seconds(ms: i64) -> u64 {
    u64::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

fn coverage(s: &Snapshot, t: TileId, mut out: mvt::Layer) -> Result<mvt::Layer> {
    let res = resolution_for_zoom(t.z);
    let Some(level) = s.level(res) else { return Ok(out) };
    let (scale, extent) = (t.scale(), f64::from(EXTENT));
    // A centre farther than this outside the buffer cannot reach into it.
    let reach = BUFFER + level.max_radius * scale * extent;
    let (lo, hi) = (-reach, extent + reach);
    let mut cell_id = String::with_capacity(16);
    let mut ring: Vec<(f64, f64)> = Vec::with_capacity(10);
    for i in in_neighbourhood(&level.cells, |c| c.key, t) {
        let c = &level.cells[i];
        let (cx, cy) = t.local(c.centre);
        if cx < lo || cx > hi || cy < lo || cy > hi {
            continue;
        }
        ring.clear();
        ring.extend(
            level
                .ring(i)
                .iter()
                .map(|v| (cx + f64::from(v[0]) * scale * extent, cy + f64::from(v[1]) * scale * extent)),
        );
        // A hexagon wholly outside the buffer would clamp to a flat ring on its edge.
        let (bx0, bx1, by0, by1) = ring.iter().fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |b, p| {
            (b.0.min(p.0), b.1.max(p.0), b.2.min(p.1), b.3.max(p.1))
        });
        if bx1 < -BUFFER || bx0 > extent + BUFFER || by1 < -BUFFER || by0 > extent + BUFFER {
            continue;
        }
        let mut g = GeomEncoder::new(GeomType::Polygon);
        for &p in &ring {
            let (x, y) = clamp(p);
            g.add_point(x, y)?;
        }
        let Ok(geom) = g.encode() else { continue };
        let mut f = out.into_feature(geom);
        f.set_id(u64::from(c.cell));
        cell_id.clear();
        std::fmt::Write::write_fmt(&mut cell_id, format_args!("{}", c.cell)).ok();
        // The id is the cell too, but a JavaScript number cannot hold a 64-bit H3 index.
        f.add_tag_string("h3", &cell_id);
        f.add_tag_uint("res", u64::from(u8::from(res)));
        f.add_tag_double("freshness", (c.freshness * 1000.0).round() / 1000.0);
        f.add_tag_uint("last_captured", seconds(c.last_captured_ms));
        f.add_tag_uint("frames", c.frames);
        f.add_tag_uint("contributors", u64::from(c.contributors));
        f.add_tag_uint("cells", u64::from(c.cells));
        out = f.into_layer();
    }
    Ok(out)
}

fn frames(s: &Snapshot, t: TileId, mut out: mvt::Layer) -> Result<mvt::Layer> {
    let mut idx: Vec<u32> =
        in_neighbourhood(&s.frames_by_key, |e| e.0, t).map(|i| s.frames_by_key[i].1).collect();
    idx.sort_unstable();
    for i in idx {
        let f = &s.frames[i as usize];
        let p = t.local(World::from_lat_lon(f.lat, f.lon));
        if !inside_buffer(p) {
            continue;
        }
        let geom = GeomEncoder::new(GeomType::Point).point(p.0, p.1)?.encode()?;
        let mut feat = out.into_feature(geom);
        feat.set_id(u64::from(i));
        feat.add_tag_string("id", &f.id);
        feat.add_tag_uint("time", seconds(f.t_ms));
        feat.add_tag_double("heading", (f.heading * 10.0).round() / 10.0);
        feat.add_tag_string("capture_id", &s.captures[f.capture as usize]);
        out = feat.into_layer();
    }
    Ok(out)
}

fn features(s: &Snapshot, t: TileId, mut out: mvt::Layer) -> Result<mvt::Layer> {
    for i in in_neighbourhood(&s.features, |f| f.key, t) {
        let f = &s.features[i];
        let p = t.local(World::from_lat_lon(f.lat, f.lon));
        if !inside_buffer(p) {
            continue;
        }
        let geom = GeomEncoder::new(GeomType::Point).point(p.0, p.1)?.encode()?;
        let mut feat = out.into_feature(geom);
        feat.set_id(i as u64);
        feat.add_tag_string("id", &f.id);
        feat.add_tag_string("class", &f.class);
        feat.add_tag_uint("first_seen", seconds(f.first_seen_ms));
        feat.add_tag_uint("last_seen", seconds(f.last_seen_ms));
        feat.add_tag_uint("observations", u64::from(f.observations));
        feat.add_tag_double("confidence", f.confidence);
        out = feat.into_layer();
    }
    Ok(out)
}

/// The sequences whose buckets meet the tile's neighbourhood, each once, in index order.
fn sequence_candidates(s: &Snapshot, t: TileId) -> Vec<u32> {
    let shift = 2 * u32::from(crate::grid::KEY_ZOOM - SEQUENCE_BUCKET_ZOOM);
    let ranges: Vec<(u64, u64)> = if t.z <= SEQUENCE_BUCKET_ZOOM {
        t.neighbourhood_ranges().into_iter().map(|(a, b)| (a >> shift, b >> shift)).collect()
    } else {
        // The z12 ancestor's neighbourhood.
        let d = t.z - SEQUENCE_BUCKET_ZOOM;
        let up = TileId { z: SEQUENCE_BUCKET_ZOOM, x: t.x >> d, y: t.y >> d };
        up.neighbourhood_ranges().into_iter().map(|(a, b)| (a >> shift, b >> shift)).collect()
    };
    let mut out: Vec<u32> = Vec::new();
    for (lo, hi) in ranges {
        let a = s.sequences_by_bucket.partition_point(|e| e.0 < lo);
        let b = s.sequences_by_bucket.partition_point(|e| e.0 < hi);
        out.extend(s.sequences_by_bucket[a..b].iter().map(|e| e.1));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn sequences(s: &Snapshot, t: TileId, mut out: mvt::Layer) -> Result<mvt::Layer> {
    let (bx0, by0, bx1, by1) = t.world_bounds(BUFFER);
    for i in sequence_candidates(s, t) {
        let q = &s.sequences[i as usize];
        let (x0, y0, x1, y1) = q.bounds;
        if x1 < bx0 || x0 > bx1 || y1 < by0 || y0 > by1 || q.points.len() < 2 {
            continue;
        }
        // Vertices closer than one MVT unit collapse (the encoder drops repeats), so a track at
        // low zoom costs a few points, not one per frame.
        let mut g = GeomEncoder::new(GeomType::Linestring);
        let mut last: Option<(i64, i64)> = None;
        let mut n = 0;
        for p in &q.points {
            let (x, y) = clamp(t.local(*p));
            let r = (x.round() as i64, y.round() as i64);
            if last != Some(r) {
                g.add_point(x, y)?;
                last = Some(r);
                n += 1;
            }
        }
        if n < 2 {
            continue;
        }
        let Ok(geom) = g.encode() else { continue };
        let mut feat = out.into_feature(geom);
        feat.set_id(u64::from(i));
        feat.add_tag_string("capture_id", &s.captures[q.capture as usize]);
        feat.add_tag_uint("start", seconds(q.start_ms));
        feat.add_tag_uint("frames", q.points.len() as u64);
        out = feat.into_layer();
    }
    Ok(out)
}
