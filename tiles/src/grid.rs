//! Web Mercator tile math: tile ids, projection to tile pixels, Morton keys for range lookups,
//! and the H3 resolution drawn at each zoom.

use h3o::Resolution;

/// Tile extent in MVT units.
pub const EXTENT: u32 = 4096;
/// Extra MVT units drawn outside the tile on each side, so strokes and circles meet at edges.
pub const BUFFER: f64 = 64.0;
/// Deepest zoom served.
pub const MAX_ZOOM: u8 = 16;
/// Zoom of the Morton keys every point is stored under (about 2.4 m at the equator).
pub const KEY_ZOOM: u8 = 24;
/// Web Mercator's latitude limit.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// A tile address `z/x/y` (XYZ scheme, y down from the north).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// `None` when the zoom exceeds [`MAX_ZOOM`] or x/y fall outside the zoom's grid.
    pub fn new(z: u8, x: u32, y: u32) -> Option<Self> {
        let n = 1u64 << z.min(31);
        (z <= MAX_ZOOM && u64::from(x) < n && u64::from(y) < n).then_some(Self { z, x, y })
    }

    /// Tiles per side at this zoom.
    pub fn scale(self) -> f64 {
        f64::from(1u32 << self.z)
    }

    /// Tile-local MVT coordinates of a normalized world position.
    pub fn local(self, w: World) -> (f64, f64) {
        let s = self.scale();
        ((w.x * s - f64::from(self.x)) * f64::from(EXTENT), (w.y * s - f64::from(self.y)) * f64::from(EXTENT))
    }

    /// World bounds `(x0, y0, x1, y1)` grown by `margin` MVT units on every side.
    pub fn world_bounds(self, margin: f64) -> (f64, f64, f64, f64) {
        let s = self.scale();
        let m = margin / f64::from(EXTENT);
        (
            (f64::from(self.x) - m) / s,
            (f64::from(self.y) - m) / s,
            (f64::from(self.x) + 1.0 + m) / s,
            (f64::from(self.y) + 1.0 + m) / s,
        )
    }

    /// Morton key ranges (at [`KEY_ZOOM`], end exclusive) of this tile and its eight neighbours:
    /// every point that can land inside the tile's buffer lies in one of them.
    pub fn neighbourhood_ranges(self) -> Vec<(u64, u64)> {
        let n = 1i64 << self.z;
        let mut out = Vec::with_capacity(9);
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (x, y) = (i64::from(self.x) + dx, i64::from(self.y) + dy);
                if (0..n).contains(&x) && (0..n).contains(&y) {
                    out.push(key_range(self.z, x as u32, y as u32));
                }
            }
        }
        out
    }
}

/// A position in normalized Web Mercator: x east, y south, both in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct World {
    pub x: f64,
    pub y: f64,
}

impl World {
    pub fn from_lat_lon(lat: f64, lon: f64) -> Self {
        let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
        let x = (lon + 180.0) / 360.0;
        let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0;
        Self { x: x.clamp(0.0, 1.0 - f64::EPSILON), y: y.clamp(0.0, 1.0 - f64::EPSILON) }
    }

    /// Morton key at [`KEY_ZOOM`].
    pub fn key(self) -> u64 {
        let n = f64::from(1u32 << KEY_ZOOM);
        interleave((self.x * n) as u32, (self.y * n) as u32)
    }

    pub fn lat_lon(self) -> (f64, f64) {
        let lon = self.x * 360.0 - 180.0;
        let lat = (std::f64::consts::PI * (1.0 - 2.0 * self.y)).sinh().atan().to_degrees();
        (lat, lon)
    }
}

/// Keys of all [`KEY_ZOOM`] positions inside tile `z/x/y`: one contiguous range.
pub fn key_range(z: u8, x: u32, y: u32) -> (u64, u64) {
    let shift = 2 * u32::from(KEY_ZOOM - z.min(KEY_ZOOM));
    let m = interleave(x, y);
    (m << shift, (m + 1) << shift)
}

/// Bit-interleaves x (even bits) and y (odd bits).
fn interleave(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        v = (v | (v << 1)) & 0x5555_5555_5555_5555;
        v
    }
    spread(x) | (spread(y) << 1)
}

/// Metres per MVT unit at the equator for zoom `z`.
fn metres_per_unit(z: u8) -> f64 {
    40_075_016.686 / f64::from(1u32 << z) / f64::from(EXTENT)
}

/// The finest H3 resolution (at most 12) whose hexagons are still at least `min_edge_units` MVT
/// units across their edge at zoom `z`: fine enough to show the road, coarse enough that a busy
/// tile stays a few thousand features.
pub fn resolution_for_zoom(z: u8) -> Resolution {
    /// About 6 screen pixels per hexagon edge on a 512 px tile.
    const MIN_EDGE_UNITS: f64 = 48.0;
    let mut best = Resolution::Zero;
    for r in Resolution::range(Resolution::Zero, Resolution::Twelve) {
        if r.edge_length_m() / metres_per_unit(z) >= MIN_EDGE_UNITS {
            best = r;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_ranges_nest() {
        let w = World::from_lat_lon(37.7749, -122.4194);
        let key = w.key();
        // z16 tile of San Francisco city hall (from any slippy-map calculator).
        let t = TileId::new(16, 10482, 25331).expect("tile");
        let (a, b) = key_range(t.z, t.x, t.y);
        assert!((a..b).contains(&key));
        let (pa, pb) = key_range(15, t.x / 2, t.y / 2);
        assert!(pa <= a && b <= pb);
        let (lx, ly) = t.local(w);
        assert!((0.0..4096.0).contains(&lx) && (0.0..4096.0).contains(&ly));
        let (lat, lon) = w.lat_lon();
        assert!((lat - 37.7749).abs() < 1e-9 && (lon + 122.4194).abs() < 1e-9);
        assert!(TileId::new(17, 0, 0).is_none() && TileId::new(2, 4, 0).is_none());
    }

    #[test]
    fn resolution_grows_with_zoom() {
        let res: Vec<u8> = (0..=MAX_ZOOM).map(|z| u8::from(resolution_for_zoom(z))).collect();
        assert!(res.windows(2).all(|w| w[0] <= w[1]), "{res:?}");
        assert_eq!(res[usize::from(MAX_ZOOM)], 12);
        assert!(res[0] <= 1);
    }
}
