//! Re-applying privacy to frames that are already public: zones registered after a capture was
//! published, and trim distances raised since. The audit reports the same violations; this
//! command removes them.

use super::scan::{FrameRow, frames};
use super::withdraw::{Withdrawal, withdraw};
use super::{TRIM_CODE, ZONE_CODE, trim_reason, zone_reason};
use crate::error::Result;
use roadhex_lake::{Lake, privacy as registry};
use roadhex_schemas::DeviceId;
use roadhex_schemas::privacy::{PrivacyPolicy, TrackSummary, drive_context, trimmed, zone_at};
use roadhex_schemas::state::Reason;
use serde::Serialize;
use std::collections::HashMap;

/// A published frame privacy says should not be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub frame_id: String,
    pub code: String,
    pub message: String,
}

/// Checks every row against the zones and the drive trimming in force now.
pub(crate) async fn violations(
    lake: &Lake,
    policy: &PrivacyPolicy,
    rows: &[FrameRow],
) -> Result<Vec<(String, Reason)>> {
    let zones = registry::zones(lake).await?;
    let mut trim_of: HashMap<String, f64> = HashMap::new();
    let mut tracks_of: HashMap<String, Vec<TrackSummary>> = HashMap::new();
    let mut trimmed_of: HashMap<String, Option<Vec<bool>>> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        if zone_at(&zones, &r.contributor_id, r.lat, r.lon).is_some() {
            out.push((r.frame_id.clone(), zone_reason(r.index)));
            continue;
        }
        let trim_m = match trim_of.get(&r.contributor_id) {
            Some(t) => *t,
            None => {
                let t = policy.trim_for(registry::settings(lake, &r.contributor_id).await?.map(|s| s.trim_m));
                trim_of.insert(r.contributor_id.clone(), t);
                t
            }
        };
        if trim_m <= 0.0 {
            continue;
        }
        if !tracks_of.contains_key(&r.device_id) {
            let tracks = match DeviceId::parse(&r.device_id) {
                Some(d) => registry::tracks(lake, &d, None).await?,
                None => Vec::new(),
            };
            tracks_of.insert(r.device_id.clone(), tracks);
        }
        let mask = trimmed_of.entry(r.capture_id.clone()).or_insert_with(|| {
            let tracks = tracks_of.get(&r.device_id)?;
            let this = tracks.iter().find(|t| t.capture_id == r.capture_id)?;
            Some(trimmed(this, &drive_context(this, tracks), trim_m))
        });
        if mask.as_ref().and_then(|m| m.get(r.index)).copied().unwrap_or(false) {
            out.push((r.frame_id.clone(), trim_reason(r.index, trim_m)));
        }
    }
    Ok(out)
}

/// What `roadhex privacy enforce` did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct EnforceReport {
    pub frames_checked: usize,
    pub in_zone: usize,
    pub trimmed: usize,
    pub withdrawal: Withdrawal,
}

/// Withdraws every published frame inside a zone or a trimmed stretch.
pub async fn enforce(lake: &Lake, policy: &PrivacyPolicy) -> Result<EnforceReport> {
    let rows = frames(lake, None).await?;
    let found = violations(lake, policy, &rows).await?;
    let count = |code: &str| found.iter().filter(|(_, r)| r.code == code).count();
    let report = EnforceReport {
        frames_checked: rows.len(),
        in_zone: count(ZONE_CODE),
        trimmed: count(TRIM_CODE),
        withdrawal: if found.is_empty() { Withdrawal::default() } else { withdraw(lake, &found).await? },
    };
    Ok(report)
}
