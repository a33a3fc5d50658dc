//! Telemetry importers: pure functions from a file's bytes to GNSS samples, one module per format,
//! each with its own error type.

pub mod framekm;
pub mod gpx;

use roadhex_schemas::GnssSample;
use roadhex_schemas::geo::{bearing_deg, haversine_m};

/// Fills speed and heading from consecutive positions where a source did not report them
/// (`NaN` marks "not reported"). The last sample repeats its predecessor's values.
pub fn derive_motion(samples: &mut [GnssSample]) {
    for i in 0..samples.len() {
        let (a, b) = match (samples.get(i), samples.get(i + 1)) {
            (Some(a), Some(b)) => (*a, *b),
            (Some(a), None) if i > 0 => (samples[i - 1], *a),
            _ => continue,
        };
        let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
        let s = &mut samples[i];
        if s.speed.is_nan() {
            s.speed = if dt > 0.0 { haversine_m(a.lat, a.lon, b.lat, b.lon) / dt } else { 0.0 };
        }
        if s.heading.is_nan() {
            s.heading = bearing_deg(a.lat, a.lon, b.lat, b.lon);
        }
    }
    for s in samples.iter_mut() {
        if s.speed.is_nan() {
            s.speed = 0.0;
        }
        if s.heading.is_nan() {
            s.heading = 0.0;
        }
    }
}
