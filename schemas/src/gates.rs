//! Telemetry gates, shared by the server (per frame, after upload) and the reference client (before
//! it builds a capture), so honest drivers rarely see a drop.
//!
//! Defaults follow Hivemapper's firmware (shared/docs/hivemapper-reference.md §1.2): 3D fix,
//! ≥ 4 satellites, HDOP ≤ 4, speed 0.15–40 m/s, and a jump over 2× the frame spacing (8 m, 12 m
//! above 24 m/s) cuts.

use crate::geo::{haversine_m, lerp_angle};
use crate::manifest::{FixType, GnssSample};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    pub require_3d_fix: bool,
    pub min_satellites: u8,
    pub max_hdop: f64,
    /// Below this (m/s) the vehicle is parked.
    pub min_speed: f64,
    /// Above this (m/s) the data is implausible for a road vehicle.
    pub max_speed: f64,
    /// Keyframe spacing in metres.
    pub spacing_m: f64,
    /// Keyframe spacing above `fast_speed`.
    pub fast_spacing_m: f64,
    pub fast_speed: f64,
    /// A frame further than this many spacings from the previous frame is a jump.
    pub jump_factor: f64,
    /// Frames between two GNSS samples further apart than this (ms) have no trustworthy position.
    pub max_sample_gap_ms: i64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            require_3d_fix: true,
            min_satellites: 4,
            max_hdop: 4.0,
            min_speed: 0.15,
            max_speed: 40.0,
            spacing_m: 8.0,
            fast_spacing_m: 12.0,
            fast_speed: 24.0,
            jump_factor: 2.0,
            max_sample_gap_ms: 5_000,
        }
    }
}

impl GateConfig {
    /// Keyframe spacing at a speed.
    pub fn spacing_at(&self, speed: f64) -> f64 {
        if speed > self.fast_speed { self.fast_spacing_m } else { self.spacing_m }
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum GateReason {
    #[error("GNSS had no 3D fix")]
    GnssNo3dFix,
    #[error("GNSS used {satellites} satellites (need ≥ {min})")]
    GnssFewSatellites { satellites: u8, min: u8 },
    #[error("GNSS HDOP {hdop:.1} is above {max:.1}")]
    GnssHdopHigh { hdop: f64, max: f64 },
    #[error("no GNSS sample within {gap_ms} ms of the frame")]
    GnssGap { gap_ms: i64 },
    #[error("speed {speed:.2} m/s is below {min} m/s (parked)")]
    SpeedTooLow { speed: f64, min: f64 },
    #[error("speed {speed:.1} m/s is above {max} m/s")]
    SpeedTooHigh { speed: f64, max: f64 },
    #[error("position jumped {distance_m:.1} m since the previous frame (limit {limit_m:.1} m)")]
    PositionJump { distance_m: f64, limit_m: f64 },
}

impl GateReason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::GnssNo3dFix => "gnss_no_3d_fix",
            Self::GnssFewSatellites { .. } => "gnss_few_satellites",
            Self::GnssHdopHigh { .. } => "gnss_hdop_high",
            Self::GnssGap { .. } => "gnss_gap",
            Self::SpeedTooLow { .. } => "speed_too_low",
            Self::SpeedTooHigh { .. } => "speed_too_high",
            Self::PositionJump { .. } => "position_jump",
        }
    }
}

/// Where a frame was taken, interpolated from telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FramePosition {
    pub lat: f64,
    pub lon: f64,
    pub alt: f64,
    pub heading: f64,
    /// Ground speed in m/s.
    pub speed: f64,
}

/// Gate verdict of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameGate {
    pub position: Option<FramePosition>,
    pub verdict: Result<(), GateReason>,
}

/// Checks one GNSS sample on its own.
pub fn sample_gate(cfg: &GateConfig, s: &GnssSample) -> Result<(), GateReason> {
    // A field the receiver did not report cannot fail its gate.
    if cfg.require_3d_fix && s.fix.is_some_and(|f| f != FixType::Fix3d) {
        return Err(GateReason::GnssNo3dFix);
    }
    if let Some(satellites) = s.satellites
        && satellites < cfg.min_satellites
    {
        return Err(GateReason::GnssFewSatellites { satellites, min: cfg.min_satellites });
    }
    if let Some(hdop) = s.hdop
        && hdop > cfg.max_hdop
    {
        return Err(GateReason::GnssHdopHigh { hdop, max: cfg.max_hdop });
    }
    Ok(())
}

/// Interpolates the position at `t_ms`; returns it with the two bracketing sample indices.
/// `telemetry` must be sorted by time (the manifest validation guarantees it).
pub fn position_at(telemetry: &[GnssSample], t_ms: i64) -> Option<(FramePosition, usize, usize)> {
    let first = telemetry.first()?;
    let last = telemetry.last()?;
    if t_ms < first.t_ms || t_ms > last.t_ms {
        return None;
    }
    let b = telemetry.partition_point(|s| s.t_ms < t_ms);
    let a = if telemetry[b].t_ms == t_ms { b } else { b - 1 };
    let (sa, sb) = (&telemetry[a], &telemetry[b]);
    let f = if sb.t_ms == sa.t_ms { 0.0 } else { (t_ms - sa.t_ms) as f64 / (sb.t_ms - sa.t_ms) as f64 };
    let lerp = |x: f64, y: f64| x + (y - x) * f;
    Some((
        FramePosition {
            lat: lerp(sa.lat, sb.lat),
            lon: lerp(sa.lon, sb.lon),
            alt: lerp(sa.alt, sb.alt),
            heading: lerp_angle(sa.heading, sb.heading, f),
            speed: lerp(sa.speed, sb.speed),
        },
        a,
        b,
    ))
}

/// Gates every frame of a capture. `frame_times` are in capture order.
pub fn evaluate_frames(cfg: &GateConfig, telemetry: &[GnssSample], frame_times: &[i64]) -> Vec<FrameGate> {
    let mut out = Vec::with_capacity(frame_times.len());
    let mut prev: Option<FramePosition> = None;
    for &t in frame_times {
        let Some((pos, a, b)) = position_at(telemetry, t) else {
            out.push(FrameGate { position: None, verdict: Err(GateReason::GnssGap { gap_ms: 0 }) });
            continue;
        };
        let verdict = frame_verdict(cfg, telemetry, a, b, &pos, prev.as_ref());
        prev = Some(pos);
        out.push(FrameGate { position: Some(pos), verdict });
    }
    out
}

fn frame_verdict(
    cfg: &GateConfig,
    telemetry: &[GnssSample],
    a: usize,
    b: usize,
    pos: &FramePosition,
    prev: Option<&FramePosition>,
) -> Result<(), GateReason> {
    let (sa, sb) = (&telemetry[a], &telemetry[b]);
    let gap_ms = sb.t_ms - sa.t_ms;
    if gap_ms > cfg.max_sample_gap_ms {
        return Err(GateReason::GnssGap { gap_ms });
    }
    sample_gate(cfg, sa)?;
    sample_gate(cfg, sb)?;
    // Like the firmware, trust the smaller of reported and travelled speed for "parked", and the
    // larger for "too fast", so neither a stuck speed field nor a position jump slips through.
    let travelled = if gap_ms > 0 {
        haversine_m(sa.lat, sa.lon, sb.lat, sb.lon) / (gap_ms as f64 / 1000.0)
    } else {
        pos.speed
    };
    let slow = pos.speed.min(travelled);
    if slow < cfg.min_speed {
        return Err(GateReason::SpeedTooLow { speed: slow, min: cfg.min_speed });
    }
    let fast = pos.speed.max(travelled);
    if fast > cfg.max_speed {
        return Err(GateReason::SpeedTooHigh { speed: fast, max: cfg.max_speed });
    }
    if let Some(p) = prev {
        let distance_m = haversine_m(p.lat, p.lon, pos.lat, pos.lon);
        let limit_m = cfg.jump_factor * cfg.spacing_at(pos.speed.max(p.speed));
        if distance_m > limit_m {
            return Err(GateReason::PositionJump { distance_m, limit_m });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::destination;
    use crate::manifest::tests::sample;

    /// 1 Hz samples heading north at 8 m/s.
    fn track(n: i64) -> Vec<GnssSample> {
        (0..n)
            .map(|i| {
                let (lat, lon) = destination(45.0, 13.0, 0.0, 8.0 * i as f64);
                GnssSample { speed: 8.0, ..sample(i * 1000, lat, lon) }
            })
            .collect()
    }

    #[test]
    fn good_track_passes_and_interpolates() {
        let t = track(10);
        let gates = evaluate_frames(&GateConfig::default(), &t, &[0, 1000, 1500, 2500]);
        assert!(gates.iter().all(|g| g.verdict.is_ok()), "{gates:?}");
        let p = gates[2].position.expect("position");
        let (lat, _) = destination(45.0, 13.0, 0.0, 12.0);
        assert!((p.lat - lat).abs() < 1e-7);
    }

    #[test]
    fn each_gate_drops_with_its_reason() {
        let cfg = GateConfig::default();
        let mut t = track(10);
        t[1].fix = Some(FixType::Fix2d);
        t[3].satellites = Some(3);
        t[5].hdop = Some(6.0);
        t[7].speed = 0.0;
        let g = evaluate_frames(&cfg, &t, &[1000, 3000, 5000, 7000]);
        let codes: Vec<_> = g.iter().map(|g| g.verdict.clone().err().map(|r| r.code())).collect();
        assert_eq!(
            codes,
            vec![
                Some("gnss_no_3d_fix"),
                Some("gnss_few_satellites"),
                Some("gnss_hdop_high"),
                Some("speed_too_low")
            ]
        );
        // Frames 3 s apart at 8 m/s are 24 m apart: over 2 × 8 m.
        let g = evaluate_frames(&cfg, &track(10), &[0, 1000, 4000]);
        assert_eq!(g[2].verdict.clone().err().map(|r| r.code()), Some("position_jump"));
        let mut t = track(10);
        t[9].t_ms = 20_000;
        let g = evaluate_frames(&cfg, &t, &[10_000]);
        assert_eq!(g[0].verdict.clone().err().map(|r| r.code()), Some("gnss_gap"));
    }
}
