//! GPX 1.0 and 1.1 tracks: every `trkpt` of every track and segment, with time, elevation,
//! fix/sat/hdop where present, and speed/course from GPX 1.0 fields or extensions (Garmin
//! TrackPointExtension or plain `speed`/`course`). Missing speed/heading is derived from positions.

use super::derive_motion;
use chrono::{DateTime, NaiveDateTime, Utc};
use roadhex_schemas::{FixType, GnssSample};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpxError {
    #[error("GPX is not valid XML: {0}")]
    Xml(String),
    #[error("file is not GPX (root element is <{0}>, expected <gpx>)")]
    NotGpx(String),
    #[error("GPX has no track points (routes and waypoints carry no drive)")]
    NoPoints,
    #[error("{missing} of {total} track points have no <time>; roadhex needs a time on every point")]
    MissingTime { missing: usize, total: usize },
    #[error("track point {index}: {what}")]
    BadPoint { index: usize, what: String },
}

impl GpxError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Xml(_) => "gpx_malformed",
            Self::NotGpx(_) => "gpx_not_gpx",
            Self::NoPoints => "gpx_no_points",
            Self::MissingTime { .. } => "gpx_missing_time",
            Self::BadPoint { .. } => "gpx_invalid_point",
        }
    }
}

/// Parses a GPX file into samples sorted by time (points sharing a time keep the first).
pub fn parse(bytes: &[u8]) -> Result<Vec<GnssSample>, GpxError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| GpxError::Xml(e.to_string()))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| GpxError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "gpx" {
        return Err(GpxError::NotGpx(root.tag_name().name().to_owned()));
    }
    let points: Vec<_> =
        root.descendants().filter(|n| n.is_element() && n.tag_name().name() == "trkpt").collect();
    if points.is_empty() {
        return Err(GpxError::NoPoints);
    }
    let missing = points.iter().filter(|p| child_text(p, "time").is_none()).count();
    if missing > 0 {
        return Err(GpxError::MissingTime { missing, total: points.len() });
    }
    let mut samples = Vec::with_capacity(points.len());
    for (index, p) in points.iter().enumerate() {
        samples.push(point(index, p)?);
    }
    samples.sort_by_key(|s| s.t_ms);
    samples.dedup_by_key(|s| s.t_ms);
    derive_motion(&mut samples);
    Ok(samples)
}

fn child_text<'a>(node: &roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .and_then(|c| c.text())
        .map(str::trim)
}

/// A value from the point itself (GPX 1.0) or anywhere in its extensions.
fn field(node: &roxmltree::Node<'_, '_>, names: &[&str]) -> Option<f64> {
    let direct = names.iter().find_map(|n| child_text(node, n));
    let ext = || {
        node.children()
            .find(|c| c.tag_name().name() == "extensions")
            .and_then(|e| e.descendants().find(|d| d.is_element() && names.contains(&d.tag_name().name())))
            .and_then(|d| d.text())
            .map(str::trim)
    };
    direct.or_else(ext)?.parse().ok().filter(|v: &f64| v.is_finite())
}

fn point(index: usize, p: &roxmltree::Node<'_, '_>) -> Result<GnssSample, GpxError> {
    let bad = |what: String| GpxError::BadPoint { index, what };
    let coord = |name: &str| -> Result<f64, GpxError> {
        p.attribute(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("missing or invalid {name} attribute")))
    };
    let (lat, lon) = (coord("lat")?, coord("lon")?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(bad(format!("position {lat},{lon} is outside the globe")));
    }
    let time = child_text(p, "time").unwrap_or_default();
    let t_ms = parse_time(time).ok_or_else(|| bad(format!("time {time:?} is not ISO 8601")))?;
    let fix = child_text(p, "fix").and_then(|f| match f {
        "none" => Some(FixType::NoFix),
        "2d" => Some(FixType::Fix2d),
        "3d" | "dgps" | "pps" => Some(FixType::Fix3d),
        _ => None,
    });
    Ok(GnssSample {
        t_ms,
        lat,
        lon,
        alt: field(p, &["ele"]).unwrap_or(0.0),
        speed: field(p, &["speed"]).filter(|s| *s >= 0.0).unwrap_or(f64::NAN),
        heading: field(p, &["course"]).map(|c| c.rem_euclid(360.0)).unwrap_or(f64::NAN),
        hdop: field(p, &["hdop"]).filter(|h| *h >= 0.0),
        satellites: child_text(p, "sat").and_then(|s| s.parse().ok()),
        fix,
    })
}

/// ISO 8601 with or without a zone; GPX times without one are UTC by the spec.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(DateTime::<Utc>::from_naive_utc_and_offset(naive, Utc).timestamp_millis())
}

/// Writes samples as a GPX 1.1 track (the client uses it to save tracks it generated).
pub fn write(samples: &[GnssSample]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"roadhex\" \
         xmlns=\"http://www.topografix.com/GPX/1/1\">\n<trk><trkseg>\n",
    );
    for s in samples {
        let t = DateTime::<Utc>::from_timestamp_millis(s.t_ms).unwrap_or_default();
        out.push_str(&format!(
            "<trkpt lat=\"{:.8}\" lon=\"{:.8}\"><ele>{:.2}</ele><time>{}</time></trkpt>\n",
            s.lat,
            s.lon,
            s.alt,
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    out.push_str("</trkseg></trk>\n</gpx>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(roadhex_schemas::testdata::shared_data().join("gpx_tracks/gpxpy").join(name))
            .unwrap_or_default()
    }

    #[test]
    fn real_car_drive() {
        let s = parse(&data("around-visnjan-with-car.gpx")).expect("parse");
        assert!(s.len() > 50);
        assert!(s.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert!(s.iter().all(|p| (45.0..45.5).contains(&p.lat) && (13.5..14.0).contains(&p.lon)));
        // A car: derived speeds are plausible road speeds.
        let max = s.iter().map(|p| p.speed).fold(0.0, f64::max);
        assert!(max > 3.0 && max < 60.0, "max speed {max}");
    }

    #[test]
    fn gpx10_fields_and_extensions() {
        let s = parse(&data("gpx1.0_with_all_fields.gpx")).expect("parse");
        assert!(s.iter().any(|p| p.hdop.is_some() && p.satellites.is_some() && p.fix.is_some()));
        let s = parse(&data("track_with_speed.gpx")).expect("parse");
        assert!(s.iter().all(|p| p.speed.is_finite()));
        // Waypoints only: parsed past the BOM and namespaces, then refused for having no track.
        assert_eq!(parse(&data("gpx_with_garmin_extension.gpx")).unwrap_err().code(), "gpx_no_points");
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(&data("cerknicko-without-times.gpx")).unwrap_err().code(), "gpx_missing_time");
        assert_eq!(parse(b"<kml/>").unwrap_err().code(), "gpx_not_gpx");
        assert_eq!(parse(b"<gpx").unwrap_err().code(), "gpx_malformed");
        assert_eq!(parse(&data("route.gpx")).unwrap_err().code(), "gpx_no_points");
        assert_eq!(parse(&data("unicode_with_bom.gpx")).unwrap_err().code(), "gpx_no_points");
    }

    #[test]
    fn write_round_trips() {
        let s = parse(&data("around-visnjan-with-car.gpx")).expect("parse");
        let again = parse(write(&s).as_bytes()).expect("reparse");
        assert_eq!(again.len(), s.len());
        assert!((again[10].lat - s[10].lat).abs() < 1e-7);
    }
}
