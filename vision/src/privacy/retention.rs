//! Raw uploads never outlive their capture: vision deletes them once a capture is published or
//! rejected, and this purge removes whatever is left after the hard limit, in any state (an
//! abandoned upload, a capture stuck in the queue, a crash between state and cleanup).

use crate::error::Result;
use chrono::{DateTime, Utc};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::CaptureId;
use roadhex_schemas::privacy::PrivacyPolicy;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, Reason};
use serde::Serialize;
use std::collections::BTreeMap;

/// Raw objects of a finished capture that are older than this are leftovers of a crash.
pub const FINISHED_GRACE_S: i64 = 900;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub captures_purged: usize,
    pub captures_rejected: usize,
    pub objects_deleted: usize,
}

/// Per capture with raw objects: the oldest object's time and the object count.
pub(crate) async fn raw_captures(lake: &Lake) -> Result<BTreeMap<CaptureId, (DateTime<Utc>, usize)>> {
    let mut out: BTreeMap<CaptureId, (DateTime<Utc>, usize)> = BTreeMap::new();
    for (path, modified, _) in lake.list_meta(&paths::raw_captures_prefix()).await? {
        if let Some(id) = paths::capture_of_raw(&path) {
            let e = out.entry(id).or_insert((modified, 0));
            e.0 = e.0.min(modified);
            e.1 += 1;
        }
    }
    Ok(out)
}

/// Whether a capture's raw data must be gone by `now`.
pub(crate) fn overdue(
    policy: &PrivacyPolicy,
    oldest: DateTime<Utc>,
    status: Option<&CaptureStatus>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    let limit =
        chrono::Duration::hours(i64::try_from(policy.raw_retention_h).unwrap_or(i64::MAX / 3_600_000));
    if now - oldest > limit {
        return Some("raw_past_retention");
    }
    let finished = status.filter(|s| matches!(s.state, CaptureStage::Published | CaptureStage::Rejected));
    finished.filter(|s| (now - s.updated_at).num_seconds() > FINISHED_GRACE_S).map(|_| "raw_after_processing")
}

/// Deletes raw data past the limit (rejecting its capture if it never finished) and leftovers of
/// finished captures.
pub async fn purge(lake: &Lake, policy: &PrivacyPolicy) -> Result<PurgeReport> {
    let now = Utc::now();
    let mut report = PurgeReport::default();
    for (id, (oldest, count)) in raw_captures(lake).await? {
        let state_path = paths::capture_state(&id);
        let status: Option<CaptureStatus> = lake.get_json(&state_path).await?;
        let Some(why) = overdue(policy, oldest, status.as_ref(), now) else { continue };
        if let Some(mut s) =
            status.filter(|s| !matches!(s.state, CaptureStage::Published | CaptureStage::Rejected))
        {
            s.state = CaptureStage::Rejected;
            s.reasons.push(Reason {
                code: "raw_retention_expired".into(),
                message: format!(
                    "the raw upload was not processed within {} h and was deleted; upload the capture again",
                    policy.raw_retention_h
                ),
                frame: None,
            });
            s.updated_at = now;
            lake.put_json(&state_path, &s).await?;
            report.captures_rejected += 1;
        }
        lake.delete_prefix(&paths::raw_capture_prefix(&id)).await?;
        tracing::info!(capture = %id, reason = why, objects = count, "raw data purged");
        report.captures_purged += 1;
        report.objects_deleted += count;
    }
    Ok(report)
}
