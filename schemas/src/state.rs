//! The persisted state of a capture (`state/captures/{id}.json`): ingest creates it and commits
//! it, vision moves it to published or rejected, and `GET /v1/captures/{id}` shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptureStage {
    /// Manifest accepted; frames are being uploaded.
    Receiving,
    /// Committed and waiting in the work queue.
    Queued,
    /// A vision worker holds it.
    Processing,
    /// Anonymized frames are public.
    Published,
    /// Refused after commit; see `reasons`.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FrameStage {
    /// Not uploaded yet.
    Missing,
    /// Uploaded and durable.
    Received,
    /// Dropped by a gate; see `reason`.
    Dropped,
    /// Anonymized and public under `frame_id`.
    Published,
    /// Refused after upload; see `reason`.
    Rejected,
    /// Was published, then withdrawn by a privacy zone or a redaction; see `reason`.
    Withdrawn,
}

/// A reason: stable code plus a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    pub code: String,
    pub message: String,
    /// Frame index the reason is about, if it is about one frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrameStatus {
    pub index: usize,
    pub sha256: String,
    pub state: FrameStage,
    /// Published frame id, once published.
    pub frame_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaptureStatus {
    pub capture_id: String,
    pub device_id: String,
    pub contributor_id: String,
    pub sequence: u64,
    pub state: CaptureStage,
    /// Why frames were dropped or the capture was rejected.
    pub reasons: Vec<Reason>,
    pub received_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// One entry per manifest frame, in manifest order.
    pub frames: Vec<FrameStatus>,
    /// Partition (`YYYY-MM-DD`) of the capture's table rows, once published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_date: Option<String>,
}
