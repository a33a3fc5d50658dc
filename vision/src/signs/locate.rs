//! Locates a sign from one frame. A pinhole camera looking along the heading (yaw only, principal
//! point at the image centre) turns the box's horizontal position into a bearing and its size,
//! against the nominal plate size of its class, into a range.

use super::classes::shape;
use roadhex_schemas::geo::{bearing_deg, destination, haversine_m};

/// Camera pose and intrinsics of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraView {
    pub lat: f64,
    pub lon: f64,
    pub heading_deg: f64,
    pub width: u32,
    pub height: u32,
    pub focal_px: f64,
}

/// A sign's box in pixels (x,y = top-left).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelBox {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// What one frame says about a sign.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    pub bearing_deg: f64,
    pub range_m: f64,
    pub lat: f64,
    pub lon: f64,
}

/// Bearing, range and single-view position of a sign of `class` boxed by `b`; `None` for
/// degenerate input.
pub fn sight(cam: &CameraView, b: &PixelBox, class: &str) -> Option<Sighting> {
    let values = [cam.lat, cam.lon, cam.heading_deg, cam.focal_px, b.x, b.y, b.w, b.h];
    if values.iter().any(|v| !v.is_finite()) || cam.lat.abs() > 90.0 || cam.focal_px <= 0.0 {
        return None;
    }
    if b.w < 1.0 || b.h < 1.0 {
        return None;
    }
    let (width, height) = (f64::from(cam.width), f64::from(cam.height));
    let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    if !(0.0..=width).contains(&cx) || !(0.0..=height).contains(&cy) {
        return None;
    }
    let angle = ((cx - width / 2.0) / cam.focal_px).atan();
    // Depth from each side is f·S/s. A side's relative error is about (pixel noise / s), so the
    // inverse-variance weights go as s²: the larger side counts more, and so does the side a box
    // cut by the image edge or an occluder has kept. Σ s²·(f·S/s) / Σ s² simplifies to this.
    let (sw, sh) = shape(class).size_m();
    let depth = cam.focal_px * (sw * b.w + sh * b.h) / (b.w * b.w + b.h * b.h);
    let range_m = depth / angle.cos();
    let bearing = (cam.heading_deg + angle.to_degrees()).rem_euclid(360.0);
    let (lat, lon) = destination(cam.lat, cam.lon, bearing, range_m);
    Some(Sighting { bearing_deg: bearing, range_m, lat, lon })
}

/// East/north metres of a point from a reference point (azimuthal equidistant, so distances and
/// bearings from the reference are exact).
pub(crate) fn to_local(lat0: f64, lon0: f64, lat: f64, lon: f64) -> [f64; 2] {
    let d = haversine_m(lat0, lon0, lat, lon);
    let b = bearing_deg(lat0, lon0, lat, lon).to_radians();
    [d * b.sin(), d * b.cos()]
}

/// The inverse of [`to_local`].
pub(crate) fn from_local(lat0: f64, lon0: f64, p: [f64; 2]) -> (f64, f64) {
    destination(lat0, lon0, p[0].atan2(p[1]).to_degrees(), p[0].hypot(p[1]))
}

/// The exact box a sign of `class` at (`lat`, `lon`) makes in `cam`, for tests.
#[cfg(test)]
pub(crate) fn project(cam: &CameraView, lat: f64, lon: f64, class: &str) -> PixelBox {
    let d = to_local(cam.lat, cam.lon, lat, lon);
    let h = cam.heading_deg.to_radians();
    let depth = d[0] * h.sin() + d[1] * h.cos();
    let right = d[0] * h.cos() - d[1] * h.sin();
    let (sw, sh) = shape(class).size_m();
    let (w, hh) = (cam.focal_px * sw / depth, cam.focal_px * sh / depth);
    let cx = f64::from(cam.width) / 2.0 + cam.focal_px * right / depth;
    PixelBox { x: cx - w / 2.0, y: f64::from(cam.height) / 2.0 - hh / 2.0, w, h: hh }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(heading_deg: f64) -> CameraView {
        CameraView { lat: 48.137, lon: 11.575, heading_deg, width: 1280, height: 720, focal_px: 1000.0 }
    }

    #[test]
    fn recovers_a_projected_sign() {
        for (heading, bearing, dist, class) in
            [(0.0, 10.0, 25.0, "stop"), (90.0, 105.0, 12.0, "yield"), (350.0, 340.0, 38.0, "speed_limit_50")]
        {
            let cam = camera(heading);
            let (lat, lon) = destination(cam.lat, cam.lon, bearing, dist);
            let b = project(&cam, lat, lon, class);
            let s = sight(&cam, &b, class).unwrap();
            assert!(haversine_m(s.lat, s.lon, lat, lon) < 0.5, "{class}: {s:?}");
            assert!((s.range_m - dist).abs() < 0.01);
            assert!((s.bearing_deg - bearing).abs() < 1e-6);
        }
    }

    #[test]
    fn local_plane_round_trips() {
        let p = to_local(48.137, 11.575, 48.1372, 11.5753);
        let (lat, lon) = from_local(48.137, 11.575, p);
        assert!(haversine_m(lat, lon, 48.1372, 11.5753) < 1e-6);
    }

    #[test]
    fn rejects_degenerate_input() {
        let cam = camera(0.0);
        let ok = PixelBox { x: 600.0, y: 300.0, w: 40.0, h: 40.0 };
        assert!(sight(&cam, &ok, "stop").is_some());
        let tiny = PixelBox { w: 0.5, ..ok };
        let outside = PixelBox { x: 1300.0, ..ok };
        let nan = PixelBox { y: f64::NAN, ..ok };
        for b in [tiny, outside, nan] {
            assert!(sight(&cam, &b, "stop").is_none(), "{b:?}");
        }
        assert!(sight(&CameraView { focal_px: 0.0, ..cam }, &ok, "stop").is_none());
        assert!(sight(&CameraView { lat: f64::INFINITY, ..cam }, &ok, "stop").is_none());
    }
}
