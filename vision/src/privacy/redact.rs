//! Redaction requests: anyone may ask for a region of a published frame (or the whole frame) to
//! be hidden; an operator approves or rejects. Approval re-blurs the region into a new version of
//! the frame (the old bytes are deleted) or withdraws the frame. The current state of a request
//! lives in `state/redactions/`; every step also lands in the `redactions` table, as the audit
//! trail. The requester's contact stays in the state object and is never put in a table.

use super::scan::FrameRow;
use super::withdraw::{find, revise, withdraw};
use crate::anonymize::{Detection, Kind, blur};
use crate::error::{Result, VisionError};
use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use opencv::core::{Rect, Vector};
use opencv::imgcodecs;
use roadhex_lake::writer::{append, partition_date};
use roadhex_lake::{Lake, paths};
use roadhex_schemas::state::Reason;
use roadhex_schemas::tables::Table;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Boxes one request may name.
pub const MAX_BOXES: usize = 50;

/// `POST /v1/redactions` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactionRequest {
    pub frame_id: String,
    /// `[x, y, w, h]` pixel boxes to blur; absent or empty asks for the whole frame to go.
    #[serde(default)]
    pub boxes: Option<Vec<[u32; 4]>>,
    pub reason: String,
    /// How to reach the requester (kept private).
    #[serde(default)]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Requested,
    Approved,
    Rejected,
    Applied,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Applied => "applied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redaction {
    pub redaction_id: String,
    pub frame_id: String,
    /// None: the whole frame.
    pub boxes: Option<Vec<[u32; 4]>>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub step: Step,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The operator's note on approval or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What approval did: `reblurred`, `withdrawn`, or `frame_gone` (withdrawn before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Redaction {
    /// What the public may see of a request.
    pub fn public(mut self) -> Self {
        self.contact = None;
        self
    }
}

fn invalid(m: impl Into<String>) -> VisionError {
    VisionError::RedactionInvalid(m.into())
}

fn check_id(id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(VisionError::RedactionNotFound(id.to_owned()))
    }
}

/// Appends one step to the audit table (one small file per step; compaction merges them).
async fn record(lake: &Lake, r: &Redaction, actor: &str) -> Result<()> {
    let boxes = r.boxes.as_ref().map(|b| serde_json::to_string(b).unwrap_or_default());
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![r.redaction_id.as_str()])),
        Arc::new(StringArray::from(vec![r.frame_id.as_str()])),
        Arc::new(StringArray::from(vec![r.step.as_str()])),
        Arc::new(StringArray::from(vec![boxes])),
        Arc::new(StringArray::from(vec![r.reason.as_str()])),
        Arc::new(StringArray::from(vec![actor])),
        Arc::new(TimestampMillisecondArray::from(vec![r.updated_at.timestamp_millis()]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(Table::Redactions.schema(), cols)?;
    let date = partition_date(r.updated_at.timestamp_millis());
    let key = format!("redaction-{}-{}", r.redaction_id, r.step.as_str());
    append(lake, Table::Redactions, &date, &key, &[batch]).await?;
    Ok(())
}

async fn save(lake: &Lake, r: &Redaction, actor: &str) -> Result<()> {
    // The table row first: a crash before the state update is redone by the next call.
    record(lake, r, actor).await?;
    lake.put_json(&paths::redaction_state(&r.redaction_id), r).await?;
    Ok(())
}

/// Files a request for a published frame.
pub async fn request(lake: &Lake, req: RedactionRequest) -> Result<Redaction> {
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(invalid("reason must be 1 to 2000 characters"));
    }
    if req.contact.as_ref().is_some_and(|c| c.chars().count() > 200) {
        return Err(invalid("contact is at most 200 characters"));
    }
    let row =
        find(lake, &req.frame_id).await?.ok_or_else(|| VisionError::FrameNotFound(req.frame_id.clone()))?;
    let boxes = req.boxes.filter(|b| !b.is_empty());
    if let Some(boxes) = &boxes {
        if boxes.len() > MAX_BOXES {
            return Err(invalid(format!("at most {MAX_BOXES} boxes")));
        }
        for &[x, y, w, h] in boxes {
            let inside = u64::from(x) + u64::from(w) <= u64::from(row.width)
                && u64::from(y) + u64::from(h) <= u64::from(row.height);
            if w == 0 || h == 0 || !inside {
                return Err(invalid(format!(
                    "box [{x}, {y}, {w}, {h}] is empty or leaves the {}x{} frame",
                    row.width, row.height
                )));
            }
        }
    }
    let now = Utc::now();
    let r = Redaction {
        redaction_id: uuid::Uuid::new_v4().simple().to_string(),
        frame_id: req.frame_id,
        boxes,
        reason: reason.to_owned(),
        contact: req.contact.filter(|c| !c.trim().is_empty()),
        step: Step::Requested,
        requested_at: now,
        updated_at: now,
        note: None,
        outcome: None,
    };
    save(lake, &r, "public").await?;
    Ok(r)
}

pub async fn get(lake: &Lake, id: &str) -> Result<Redaction> {
    check_id(id)?;
    lake.get_json(&paths::redaction_state(id))
        .await?
        .ok_or_else(|| VisionError::RedactionNotFound(id.to_owned()))
}

/// Requests oldest first; only the undecided ones unless `all`.
pub async fn list(lake: &Lake, all: bool) -> Result<Vec<Redaction>> {
    let mut out = Vec::new();
    for path in lake.list(&paths::redaction_states_prefix()).await? {
        if let Some(r) = lake.get_json::<Redaction>(&path).await?
            && (all || matches!(r.step, Step::Requested | Step::Approved))
        {
            out.push(r);
        }
    }
    out.sort_by(|a, b| (a.requested_at, &a.redaction_id).cmp(&(b.requested_at, &b.redaction_id)));
    Ok(out)
}

/// Approves and applies a request. Calling it again on an approved request (after a crash)
/// finishes the application.
pub async fn approve(lake: &Lake, id: &str, actor: &str, note: Option<String>) -> Result<Redaction> {
    let mut r = get(lake, id).await?;
    match r.step {
        Step::Requested => {
            r.step = Step::Approved;
            r.note = note;
            r.updated_at = Utc::now();
            save(lake, &r, actor).await?;
        }
        Step::Approved => {}
        Step::Rejected | Step::Applied => {
            return Err(VisionError::RedactionDecided {
                id: id.to_owned(),
                step: r.step.as_str().to_owned(),
            });
        }
    }
    let outcome = match find(lake, &r.frame_id).await? {
        None => "frame_gone",
        Some(row) => match &r.boxes {
            Some(boxes) => {
                reblur(lake, &row, boxes, &r.redaction_id).await?;
                "reblurred"
            }
            None => {
                let reason = Reason {
                    code: "redacted".into(),
                    message: format!("frame {}: withdrawn by redaction {}", row.index, r.redaction_id),
                    frame: Some(row.index),
                };
                withdraw(lake, &[(row.frame_id.clone(), reason)]).await?;
                "withdrawn"
            }
        },
    };
    r.step = Step::Applied;
    r.outcome = Some(outcome.to_owned());
    r.updated_at = Utc::now();
    save(lake, &r, actor).await?;
    Ok(r)
}

pub async fn reject(lake: &Lake, id: &str, actor: &str, note: Option<String>) -> Result<Redaction> {
    let mut r = get(lake, id).await?;
    if r.step != Step::Requested {
        return Err(VisionError::RedactionDecided { id: id.to_owned(), step: r.step.as_str().to_owned() });
    }
    r.step = Step::Rejected;
    r.note = note;
    r.updated_at = Utc::now();
    save(lake, &r, actor).await?;
    Ok(r)
}

/// Blurs the boxes into a new version of the frame, points its row there, deletes the old bytes.
async fn reblur(lake: &Lake, row: &FrameRow, boxes: &[[u32; 4]], version: &str) -> Result<()> {
    let (capture, index) = paths::parse_frame_id(&row.frame_id)
        .ok_or_else(|| VisionError::FrameNotFound(row.frame_id.clone()))?;
    let new_key = paths::redacted_frame(&capture, index, version);
    let old_key = object_store_path(&row.object_key);
    if old_key != new_key {
        let old =
            lake.get(&old_key).await?.ok_or_else(|| VisionError::FrameNotFound(row.frame_id.clone()))?;
        let regions: Vec<Detection> = boxes
            .iter()
            .map(|&[x, y, w, h]| Detection {
                kind: Kind::Region,
                rect: Rect::new(to_i32(x), to_i32(y), to_i32(w), to_i32(h)),
                score: 1.0,
                detector: "redaction".into(),
            })
            .collect();
        let jpeg = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut bgr = imgcodecs::imdecode(&Vector::<u8>::from_slice(&old), imgcodecs::IMREAD_COLOR)?;
            blur(&mut bgr, &regions)?;
            crate::pipeline::encode(&bgr)
        })
        .await
        .map_err(|e| VisionError::Join(e.to_string()))??;
        let size = jpeg.len() as u64;
        lake.put(&new_key, Bytes::from(jpeg)).await?;
        let anonymizer = format!("{}+redaction:{version}", row.anonymizer);
        revise(lake, &row.frame_id, new_key.as_ref(), size, &anonymizer, std::slice::from_ref(&row.date))
            .await?;
        lake.delete(&old_key).await?;
    }
    Ok(())
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn object_store_path(key: &str) -> roadhex_lake::paths::ObjectPath {
    roadhex_lake::paths::ObjectPath::from(key)
}
