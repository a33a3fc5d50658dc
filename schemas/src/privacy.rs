//! Privacy rules shared by the client, ingest, vision and the audit: privacy zones (circles and
//! polygons a contributor or the operator registers) and trip trimming (the first and last N metres
//! of every drive are never published). One implementation, so the car, the node and the audit
//! agree on which frames fall inside.

use crate::CaptureManifest;
use crate::gates::position_at;
use crate::geo::haversine_m;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// Captures of one device with gaps under this belong to one drive.
pub const DRIVE_GAP_MS: i64 = 5 * 60 * 1000;
/// Largest circle radius a zone may have.
pub const MAX_RADIUS_M: f64 = 5_000.0;
/// Smallest circle radius: below GNSS noise a zone protects nothing.
pub const MIN_RADIUS_M: f64 = 10.0;
/// Vertices a polygon zone may have, over all rings.
pub const MAX_VERTICES: usize = 1_000;
/// Zones one contributor may register.
pub const MAX_ZONES_PER_CONTRIBUTOR: usize = 50;

/// The operator's trimming and retention policy. The contributor picks their trim distance inside
/// `[trim_min_m, trim_max_m]`; a network may set a stricter range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyPolicy {
    /// Trim distance of contributors who have not chosen one.
    pub trim_default_m: f64,
    pub trim_min_m: f64,
    pub trim_max_m: f64,
    /// How long vision waits, after a commit, for the next capture of the drive before it treats
    /// the capture's end as the drive's end.
    pub settle_s: u64,
    /// Raw uploads are purged after this many hours, whatever their state.
    pub raw_retention_h: u64,
}

impl Default for PrivacyPolicy {
    fn default() -> Self {
        Self {
            trim_default_m: 200.0,
            trim_min_m: 100.0,
            trim_max_m: 1_000.0,
            settle_s: 120,
            raw_retention_h: 24,
        }
    }
}

impl PrivacyPolicy {
    pub fn validate(&self) -> Result<(), ZoneError> {
        let ok = self.trim_min_m >= 0.0
            && self.trim_min_m <= self.trim_max_m
            && (self.trim_min_m..=self.trim_max_m).contains(&self.trim_default_m)
            && self.raw_retention_h > 0;
        if ok {
            Ok(())
        } else {
            Err(ZoneError::Invalid(format!(
                "privacy policy needs 0 <= trim_min_m <= trim_default_m <= trim_max_m and raw_retention_h > 0 \
                 (got {} <= {} <= {}, {} h)",
                self.trim_min_m, self.trim_default_m, self.trim_max_m, self.raw_retention_h
            )))
        }
    }

    /// The trim distance in effect for a contributor's stored choice (clamped to the policy).
    pub fn trim_for(&self, chosen: Option<f64>) -> f64 {
        chosen.unwrap_or(self.trim_default_m).clamp(self.trim_min_m, self.trim_max_m)
    }

    pub fn check_trim(&self, trim_m: f64) -> Result<(), ZoneError> {
        if trim_m.is_finite() && (self.trim_min_m..=self.trim_max_m).contains(&trim_m) {
            Ok(())
        } else {
            Err(ZoneError::TrimOutOfRange { trim_m, min: self.trim_min_m, max: self.trim_max_m })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ZoneError {
    #[error("zone is invalid: {0}")]
    Invalid(String),
    #[error("trim distance {trim_m} m is outside the allowed {min}..={max} m")]
    TrimOutOfRange { trim_m: f64, min: f64, max: f64 },
}

impl ZoneError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "zone_invalid",
            Self::TrimOutOfRange { .. } => "trim_out_of_range",
        }
    }
}

/// The area of a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ZoneShape {
    /// Everything within `radius_m` of a point.
    Circle { lat: f64, lon: f64, radius_m: f64 },
    /// GeoJSON-style rings of `[lon, lat]`: the first is the outline, the others are holes.
    Polygon { rings: Vec<Vec<[f64; 2]>> },
}

impl ZoneShape {
    pub fn validate(&self) -> Result<(), ZoneError> {
        let bad = |m: String| Err(ZoneError::Invalid(m));
        let valid_point =
            |lat: f64, lon: f64| (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        match self {
            Self::Circle { lat, lon, radius_m } => {
                if !valid_point(*lat, *lon) {
                    return bad(format!("centre ({lat}, {lon}) is not a WGS84 position"));
                }
                if !(MIN_RADIUS_M..=MAX_RADIUS_M).contains(radius_m) {
                    return bad(format!("radius {radius_m} m is outside {MIN_RADIUS_M}..={MAX_RADIUS_M} m"));
                }
            }
            Self::Polygon { rings } => {
                if rings.is_empty() {
                    return bad("a polygon needs an outline ring".into());
                }
                let vertices: usize = rings.iter().map(Vec::len).sum();
                if vertices > MAX_VERTICES {
                    return bad(format!("{vertices} vertices; the limit is {MAX_VERTICES}"));
                }
                for ring in rings {
                    if ring.iter().any(|[lon, lat]| !valid_point(*lat, *lon)) {
                        return bad("a ring has a vertex that is not a WGS84 [lon, lat]".into());
                    }
                    let mut distinct = ring.clone();
                    distinct.dedup();
                    if distinct.first() == distinct.last() && distinct.len() > 1 {
                        distinct.pop();
                    }
                    if distinct.len() < 3 {
                        return bad("every ring needs at least 3 distinct vertices".into());
                    }
                }
                let (w, e) =
                    rings[0].iter().fold((f64::MAX, f64::MIN), |(w, e), p| (w.min(p[0]), e.max(p[0])));
                let (s, n) =
                    rings[0].iter().fold((f64::MAX, f64::MIN), |(s, n), p| (s.min(p[1]), n.max(p[1])));
                let span = haversine_m(s, w, n, e);
                if span > 2.0 * MAX_RADIUS_M * std::f64::consts::SQRT_2 {
                    return bad(format!("the outline spans {span:.0} m; zones are at most 10 km across"));
                }
            }
        }
        Ok(())
    }

    /// Whether the point lies inside (edges count as inside).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match self {
            Self::Circle { lat: clat, lon: clon, radius_m } => {
                haversine_m(*clat, *clon, lat, lon) <= *radius_m
            }
            Self::Polygon { rings } => {
                let mut rings = rings.iter();
                rings.next().is_some_and(|outline| in_ring(outline, lat, lon))
                    && !rings.any(|hole| in_ring(hole, lat, lon) && !on_ring(hole, lat, lon))
            }
        }
    }
}

/// Even-odd ray casting on the plane of [lon, lat]; zones are small enough for that to hold.
fn in_ring(ring: &[[f64; 2]], lat: f64, lon: f64) -> bool {
    if on_ring(ring, lat, lon) {
        return true;
    }
    let mut inside = false;
    let n = ring.len();
    for i in 0..n {
        let ([x1, y1], [x2, y2]) = (ring[i], ring[(i + 1) % n]);
        if (y1 > lat) != (y2 > lat) && lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1) {
            inside = !inside;
        }
    }
    inside
}

fn on_ring(ring: &[[f64; 2]], lat: f64, lon: f64) -> bool {
    let n = ring.len();
    (0..n).any(|i| {
        let ([x1, y1], [x2, y2]) = (ring[i], ring[(i + 1) % n]);
        let cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1);
        cross.abs() < 1e-12
            && lon >= x1.min(x2) - 1e-12
            && lon <= x1.max(x2) + 1e-12
            && lat >= y1.min(y2) - 1e-12
            && lat <= y1.max(y2) + 1e-12
    })
}

/// A registered zone. `contributor_id` None means network-wide (set by the operator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Zone {
    pub zone_id: String,
    pub contributor_id: Option<String>,
    pub shape: ZoneShape,
    /// A name for people ("home"); never shown on the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Zone {
    /// Whether the zone covers the contributor's frames.
    pub fn applies_to(&self, contributor: &str) -> bool {
        self.contributor_id.as_deref().is_none_or(|c| c == contributor)
    }
}

/// The first zone (of those applying to `contributor`) that holds the point.
pub fn zone_at<'a>(zones: &'a [Zone], contributor: &str, lat: f64, lon: f64) -> Option<&'a Zone> {
    zones.iter().find(|z| z.applies_to(contributor) && z.shape.contains(lat, lon))
}

/// A contributor's privacy choices (`PUT /v1/contributors/{id}/privacy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrivacySettings {
    pub contributor_id: String,
    /// Metres trimmed from the start and the end of every drive.
    pub trim_m: f64,
    pub updated_at: DateTime<Utc>,
}

/// Where one capture runs, recorded at commit so vision and the audit can place it in its drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    pub capture_id: String,
    pub device_id: String,
    pub sequence: u64,
    /// Time of the first and last frame that has a position.
    pub start_ms: i64,
    pub end_ms: i64,
    /// `[lat, lon]` of those two frames.
    pub first: [f64; 2],
    pub last: [f64; 2],
    /// Path length along the telemetry from the first to the last positioned frame.
    pub length_m: f64,
    /// Per manifest frame: metres along the path from the first positioned frame (None: no position).
    pub along_m: Vec<Option<f64>>,
}

/// Summarises a capture's path. None when no frame has a position.
pub fn summarize(capture_id: &str, m: &CaptureManifest) -> Option<TrackSummary> {
    let t = &m.telemetry;
    let mut cum = Vec::with_capacity(t.len());
    let mut total = 0.0;
    for (i, s) in t.iter().enumerate() {
        if i > 0 {
            total += haversine_m(t[i - 1].lat, t[i - 1].lon, s.lat, s.lon);
        }
        cum.push(total);
    }
    let at = |t_ms: i64| {
        let (pos, a, _) = position_at(t, t_ms)?;
        Some((cum[a] + haversine_m(t[a].lat, t[a].lon, pos.lat, pos.lon), pos.lat, pos.lon))
    };
    let raw: Vec<Option<(f64, f64, f64)>> = m.frames.iter().map(|f| at(f.t_ms)).collect();
    let placed: Vec<(usize, (f64, f64, f64))> =
        raw.iter().enumerate().filter_map(|(i, p)| p.map(|p| (i, p))).collect();
    let (&(i0, (d0, lat0, lon0)), &(i1, (d1, lat1, lon1))) = (placed.first()?, placed.last()?);
    Some(TrackSummary {
        capture_id: capture_id.to_owned(),
        device_id: m.device_id.clone(),
        sequence: m.sequence,
        start_ms: m.frames[i0].t_ms,
        end_ms: m.frames[i1].t_ms,
        first: [lat0, lon0],
        last: [lat1, lon1],
        length_m: (d1 - d0).max(0.0),
        along_m: raw.iter().map(|p| p.map(|(d, _, _)| (d - d0).max(0.0))).collect(),
    })
}

/// How much of the drive lies before and after one capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriveContext {
    pub before_m: f64,
    pub after_m: f64,
    /// Whether a later capture of the same drive is known.
    pub has_next: bool,
}

/// Places `this` in its drive among `others` (the same device's captures; `this` may be among them).
pub fn drive_context(this: &TrackSummary, others: &[TrackSummary]) -> DriveContext {
    let mut list: Vec<&TrackSummary> = others.iter().filter(|o| o.capture_id != this.capture_id).collect();
    list.push(this);
    list.sort_by(|a, b| (a.start_ms, &a.capture_id).cmp(&(b.start_ms, &b.capture_id)));
    let Some(pos) = list.iter().position(|s| s.capture_id == this.capture_id) else {
        return DriveContext { before_m: 0.0, after_m: 0.0, has_next: false };
    };
    let link = |a: &TrackSummary, b: &TrackSummary| {
        (b.start_ms - a.end_ms < DRIVE_GAP_MS)
            .then(|| haversine_m(a.last[0], a.last[1], b.first[0], b.first[1]))
    };
    let mut before_m = 0.0;
    for k in (0..pos).rev() {
        match link(list[k], list[k + 1]) {
            Some(gap) => before_m += list[k].length_m + gap,
            None => break,
        }
    }
    let mut after_m = 0.0;
    let mut has_next = false;
    for k in pos + 1..list.len() {
        match link(list[k - 1], list[k]) {
            Some(gap) => {
                has_next = true;
                after_m += list[k].length_m + gap;
            }
            None => break,
        }
    }
    DriveContext { before_m, after_m, has_next }
}

/// Per manifest frame: whether it lies in the first or last `trim_m` metres of the drive.
pub fn trimmed(summary: &TrackSummary, ctx: &DriveContext, trim_m: f64) -> Vec<bool> {
    summary
        .along_m
        .iter()
        .map(|a| {
            a.is_some_and(|a| ctx.before_m + a < trim_m || ctx.after_m + (summary.length_m - a) < trim_m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::destination;
    use crate::{Camera, FixType, FrameEntry, GnssSample, Mount};

    fn manifest(start_ms: i64, lat: f64, lon: f64, metres: f64) -> CaptureManifest {
        // 10 m/s due north, a sample and a frame every second.
        let n = (metres / 10.0) as i64 + 1;
        let telemetry = (0..n)
            .map(|i| {
                let (la, lo) = destination(lat, lon, 0.0, i as f64 * 10.0);
                GnssSample {
                    t_ms: start_ms + i * 1000,
                    lat: la,
                    lon: lo,
                    alt: 0.0,
                    speed: 10.0,
                    heading: 0.0,
                    hdop: Some(1.0),
                    satellites: Some(9),
                    fix: Some(FixType::Fix3d),
                }
            })
            .collect();
        let frames = (0..n)
            .map(|i| FrameEntry { t_ms: start_ms + i * 1000, sha256: format!("{i:064}"), size: 1 })
            .collect();
        CaptureManifest {
            version: 1,
            device_id: "d".into(),
            sequence: 1,
            created_at: Utc::now(),
            camera: Camera {
                width: 1,
                height: 1,
                focal_length_px: None,
                hfov_deg: Some(90.0),
                mount: Mount::Front,
                mount_height_m: 1.4,
            },
            telemetry,
            imu: Vec::new(),
            frames,
        }
    }

    #[test]
    fn circles_and_polygons_with_holes() {
        let c = ZoneShape::Circle { lat: 37.0, lon: -122.0, radius_m: 100.0 };
        c.validate().expect("valid");
        let (lat, lon) = destination(37.0, -122.0, 45.0, 99.0);
        assert!(c.contains(lat, lon));
        let (lat, lon) = destination(37.0, -122.0, 45.0, 101.0);
        assert!(!c.contains(lat, lon));
        let square =
            |x0: f64, y0: f64, d: f64| vec![[x0, y0], [x0 + d, y0], [x0 + d, y0 + d], [x0, y0 + d], [x0, y0]];
        let p = ZoneShape::Polygon { rings: vec![square(0.0, 0.0, 0.01), square(0.004, 0.004, 0.002)] };
        p.validate().expect("valid");
        assert!(p.contains(0.001, 0.001));
        assert!(!p.contains(0.005, 0.005), "holes are outside");
        assert!(p.contains(0.004, 0.005), "a hole's edge still belongs to the zone");
        assert!(p.contains(0.0, 0.005), "edges are inside");
        assert!(!p.contains(0.011, 0.005));
        assert!(ZoneShape::Circle { lat: 0.0, lon: 0.0, radius_m: 1.0 }.validate().is_err());
        assert!(
            ZoneShape::Polygon { rings: vec![vec![[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]] }.validate().is_err()
        );
        assert!(ZoneShape::Polygon { rings: vec![square(0.0, 0.0, 1.0)] }.validate().is_err(), "too large");
    }

    #[test]
    fn zone_json_round_trips() {
        let json = r#"{"type":"circle","lat":1.0,"lon":2.0,"radius_m":50.0}"#;
        let z: ZoneShape = serde_json::from_str(json).expect("parse");
        assert_eq!(z, ZoneShape::Circle { lat: 1.0, lon: 2.0, radius_m: 50.0 });
        assert!(serde_json::from_str::<ZoneShape>(r#"{"type":"circle","lat":1,"lon":2}"#).is_err());
    }

    #[test]
    fn trimming_spans_the_captures_of_a_drive() {
        // Three 300 m captures, 10 s apart: one 900 m drive (plus the two 10 m links).
        let caps: Vec<TrackSummary> = (0..3)
            .map(|k| {
                let (lat, lon) = destination(37.0, -122.0, 0.0, k as f64 * 310.0);
                summarize(&format!("c{k}"), &manifest(k * 31_000, lat, lon, 300.0)).expect("summary")
            })
            .collect();
        assert!((caps[0].length_m - 300.0).abs() < 0.5, "{}", caps[0].length_m);
        let ctx: Vec<DriveContext> = caps.iter().map(|c| drive_context(c, &caps)).collect();
        assert!(ctx[0].before_m == 0.0 && (ctx[0].after_m - 620.0).abs() < 1.0 && ctx[0].has_next);
        assert!(!ctx[2].has_next);
        let t: Vec<Vec<bool>> = caps.iter().zip(&ctx).map(|(c, x)| trimmed(c, x, 345.0)).collect();
        // First capture: all 300 m trimmed; second: its first ~40 m and last ~40 m; third: all.
        assert!(t[0].iter().all(|b| *b));
        assert!(t[2].iter().all(|b| *b));
        let kept: Vec<f64> =
            caps[1].along_m.iter().zip(&t[1]).filter(|(_, t)| !**t).filter_map(|(a, _)| *a).collect();
        let near = |a: Option<&f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 0.5);
        assert!(near(kept.first(), 40.0) && near(kept.last(), 260.0), "{kept:?}");
        // A gap over five minutes starts a new drive.
        let (lat, lon) = destination(37.0, -122.0, 0.0, 5_000.0);
        let late = summarize("late", &manifest(10 * 60_000, lat, lon, 300.0)).expect("summary");
        let mut all = caps.clone();
        all.push(late.clone());
        assert_eq!(drive_context(&late, &all).before_m, 0.0);
        assert!(!drive_context(&caps[2], &all).has_next);
    }

    #[test]
    fn policy_bounds() {
        let p = PrivacyPolicy::default();
        p.validate().expect("default is valid");
        assert_eq!(p.trim_for(None), 200.0);
        assert_eq!(p.trim_for(Some(5_000.0)), 1_000.0);
        assert_eq!(p.check_trim(50.0).map_err(|e| e.code()), Err("trim_out_of_range"));
        assert!(p.check_trim(500.0).is_ok());
    }
}
