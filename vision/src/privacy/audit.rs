//! `roadhex privacy audit`: scans the whole store for anything privacy forbids. Every finding is
//! a breach; the command exits non-zero when there is one.

use super::enforce::violations;
use super::retention::{overdue, raw_captures};
use super::scan::frames;
use super::{TRIM_CODE, ZONE_CODE};
use crate::error::Result;
use chrono::Utc;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::jpeg::metadata_markers;
use roadhex_schemas::privacy::PrivacyPolicy;
use roadhex_schemas::state::CaptureStatus;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    pub code: String,
    /// Object path or frame id.
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub raw_captures: usize,
    pub published_objects: usize,
    pub frame_rows: usize,
    /// Breaches per code.
    pub counts: BTreeMap<String, usize>,
    pub breaches: Vec<Breach>,
}

impl AuditReport {
    fn add(&mut self, code: &str, subject: String, message: String) {
        *self.counts.entry(code.to_owned()).or_default() += 1;
        self.breaches.push(Breach { code: code.to_owned(), subject, message });
    }

    pub fn clean(&self) -> bool {
        self.breaches.is_empty()
    }
}

pub async fn audit(lake: &Lake, policy: &PrivacyPolicy) -> Result<AuditReport> {
    let now = Utc::now();
    let mut report = AuditReport::default();
    let raw = raw_captures(lake).await?;
    report.raw_captures = raw.len();
    for (id, (oldest, count)) in raw {
        let status: Option<CaptureStatus> = lake.get_json(&paths::capture_state(&id)).await?;
        if let Some(code) = overdue(policy, oldest, status.as_ref(), now) {
            let age_h = (now - oldest).num_minutes() as f64 / 60.0;
            report.add(
                code,
                paths::raw_capture_prefix(&id).to_string(),
                format!(
                    "{count} raw objects, oldest {age_h:.1} h old (limit {} h, or until processed)",
                    policy.raw_retention_h
                ),
            );
        }
    }
    let rows = frames(lake, None).await?;
    report.frame_rows = rows.len();
    let keys: HashSet<&str> = rows.iter().map(|r| r.object_key.as_str()).collect();
    for r in rows.iter().filter(|r| r.anonymizer.trim().is_empty()) {
        report.add(
            "frame_without_anonymization",
            r.frame_id.clone(),
            "published row names no anonymizer".into(),
        );
    }
    for path in lake.list(&paths::published_frames_prefix()).await? {
        report.published_objects += 1;
        if !keys.contains(path.as_ref()) {
            report.add(
                "published_without_record",
                path.to_string(),
                "an object under frames/ that no published frame row (with its anonymization record) names"
                    .into(),
            );
        }
        let Some(bytes) = lake.get(&path).await? else { continue };
        let markers = metadata_markers(&bytes);
        if !markers.is_empty() {
            let names: Vec<String> = markers.iter().map(|m| format!("0xFF{m:02X}")).collect();
            report.add(
                "frame_has_metadata",
                path.to_string(),
                format!("metadata segments {}", names.join(", ")),
            );
        }
    }
    for (frame_id, reason) in violations(lake, policy, &rows).await? {
        let code = match reason.code.as_str() {
            ZONE_CODE => "frame_in_zone",
            TRIM_CODE => "frame_in_trimmed_stretch",
            other => other,
        }
        .to_owned();
        report.add(&code, frame_id, reason.message);
    }
    Ok(report)
}
