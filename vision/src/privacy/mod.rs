//! Privacy operations around the pipeline: the zone and trip-trimming gate every capture passes
//! before it is anonymized, withdrawing frames that are already public, redaction requests, the
//! raw-retention purge and the audit that checks all of it.

pub mod api;
pub mod audit;
pub mod enforce;
pub mod redact;
pub mod retention;
mod scan;
pub mod withdraw;

use crate::error::Result;
use chrono::Utc;
use roadhex_lake::{Lake, privacy as registry};
use roadhex_schemas::gates::position_at;
use roadhex_schemas::privacy::{PrivacyPolicy, drive_context, summarize, trimmed, zone_at};
use roadhex_schemas::state::{CaptureStatus, Reason};
use roadhex_schemas::{CaptureId, CaptureManifest, DeviceId};
use std::time::Duration;

/// How far before and after a capture its drive's relevant captures can start.
const TRACK_WINDOW_MS: i64 = 6 * 3_600_000;

/// How often a capture waiting for its drive's next capture looks again.
const RECHECK_S: u64 = 15;

/// Reason codes of frames privacy keeps from being published.
pub const ZONE_CODE: &str = "privacy_zone";
pub const TRIM_CODE: &str = "trip_trimmed";

fn zone_reason(i: usize) -> Reason {
    Reason { code: ZONE_CODE.into(), message: format!("frame {i}: inside a privacy zone"), frame: Some(i) }
}

fn trim_reason(i: usize, trim_m: f64) -> Reason {
    Reason {
        code: TRIM_CODE.into(),
        message: format!("frame {i}: within {trim_m:.0} m of the start or end of a drive (trip trimming)"),
        frame: Some(i),
    }
}

/// Per manifest frame, why privacy keeps it unpublished (None: it may go on). `Err(wait)` while
/// the capture ends its known drive and the next capture may still be on its way.
pub(crate) async fn check(
    lake: &Lake,
    policy: &PrivacyPolicy,
    id: &CaptureId,
    manifest: &CaptureManifest,
    status: &CaptureStatus,
) -> Result<std::result::Result<Vec<Option<Reason>>, Duration>> {
    let contributor = status.contributor_id.as_str();
    let zones = registry::zones(lake).await?;
    let mut out: Vec<Option<Reason>> = manifest
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (pos, _, _) = position_at(&manifest.telemetry, f.t_ms)?;
            zone_at(&zones, contributor, pos.lat, pos.lon).map(|_| zone_reason(i))
        })
        .collect();
    let trim_m = policy.trim_for(registry::settings(lake, contributor).await?.map(|s| s.trim_m));
    let (Some(summary), Some(device)) =
        (summarize(id.as_str(), manifest), DeviceId::parse(&manifest.device_id))
    else {
        return Ok(Ok(out));
    };
    if trim_m <= 0.0 {
        return Ok(Ok(out));
    }
    // Trimming never reaches further than the largest trim distance, which no drive covers in
    // less than hours; captures starting further away cannot matter.
    let window = (summary.start_ms - TRACK_WINDOW_MS, summary.end_ms + TRACK_WINDOW_MS);
    let mut tracks = registry::tracks(lake, &device, Some(window)).await?;
    if !tracks.iter().any(|t| t.capture_id == summary.capture_id) {
        // Committed before ingest recorded tracks.
        registry::put_track(lake, &device, id, &summary).await?;
        tracks.push(summary.clone());
    }
    let ctx = drive_context(&summary, &tracks);
    if !ctx.has_next {
        let since = status.committed_at.unwrap_or(status.updated_at);
        let waited = (Utc::now() - since).num_seconds();
        let settle = i64::try_from(policy.settle_s).unwrap_or(i64::MAX);
        if waited < settle {
            // Look again soon: the next capture usually commits within seconds of this one.
            let left = u64::try_from((settle - waited).max(1)).unwrap_or(1);
            return Ok(Err(Duration::from_secs(left.min(RECHECK_S))));
        }
    }
    for (i, t) in trimmed(&summary, &ctx, trim_m).into_iter().enumerate() {
        if t && out[i].is_none() {
            out[i] = Some(trim_reason(i, trim_m));
        }
    }
    Ok(Ok(out))
}
