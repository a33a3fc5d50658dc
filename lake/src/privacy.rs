//! The privacy registry in the store: zones, contributors' settings and capture tracks (the rules
//! themselves are in `roadhex_schemas::privacy`).

use crate::error::Result;
use crate::paths;
use crate::store::Lake;
use roadhex_schemas::privacy::{PrivacySettings, TrackSummary, Zone};
use roadhex_schemas::{CaptureId, DeviceId};

/// Every registered zone, network-wide and personal, oldest first.
pub async fn zones(lake: &Lake) -> Result<Vec<Zone>> {
    let mut out = Vec::new();
    for path in lake.list(&paths::zones_prefix()).await? {
        if let Some(z) = lake.get_json::<Zone>(&path).await? {
            out.push(z);
        }
    }
    out.sort_by(|a, b| (a.created_at, &a.zone_id).cmp(&(b.created_at, &b.zone_id)));
    Ok(out)
}

pub async fn settings(lake: &Lake, contributor: &str) -> Result<Option<PrivacySettings>> {
    lake.get_json(&paths::contributor_privacy(contributor)).await
}

/// Records where a capture runs (idempotent: the summary derives from the signed manifest).
pub async fn put_track(lake: &Lake, device: &DeviceId, capture: &CaptureId, t: &TrackSummary) -> Result<()> {
    lake.put_json(&paths::track(device, t.start_ms, capture), t).await
}

/// The recorded capture tracks of a device, all of them or those starting within `window` (unix
/// ms, inclusive). Names carry the start time, so only matching objects are read.
pub async fn tracks(lake: &Lake, device: &DeviceId, window: Option<(i64, i64)>) -> Result<Vec<TrackSummary>> {
    let mut out = Vec::new();
    for path in lake.list(&paths::tracks_prefix(device)).await? {
        let start = path.filename().and_then(|n| n.split('-').next()).and_then(|t| t.parse::<i64>().ok());
        if window.is_some_and(|(from, to)| start.is_some_and(|t| t < from || t > to)) {
            continue;
        }
        if let Some(t) = lake.get_json::<TrackSummary>(&path).await? {
            out.push(t);
        }
    }
    Ok(out)
}
