//! Processing one committed capture: gate, anonymize, publish, record, then delete the raw data.
//!
//! Crash safety: every output has a deterministic key (frame objects by capture and index, table
//! files by capture), so a capture redelivered after a crash is simply redone. The state becomes
//! `published` or `rejected` before the raw data is deleted, and the queue item is acked last.

use crate::anonymize::{Detection, Ensemble, blur};
use crate::error::{Result, VisionError};
use crate::place::{CoveredCell, Placed, coverage, place_frames};
use crate::privacy;
use crate::quality::{Quality, QualityConfig, assess, capture_tilt};
use crate::signs::{SignDetection, SignModel};
use crate::tables;
use bytes::Bytes;
use chrono::Utc;
use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::gates::{GateConfig, evaluate_frames};
use roadhex_schemas::privacy::PrivacyPolicy;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, FrameStage, Reason};
use roadhex_schemas::{CaptureId, CaptureManifest};
use std::sync::Arc;
use std::time::Duration;

/// JPEG quality of published frames.
pub const PUBLISH_QUALITY: i32 = 90;

/// What happened to one placed frame.
#[derive(Debug, Clone)]
pub(crate) struct FrameOutcome {
    pub(crate) placed: Placed,
    pub(crate) quality: Quality,
    pub(crate) detections: Vec<Detection>,
    /// Traffic signs found in the published frame.
    pub(crate) signs: Vec<SignDetection>,
    /// Size of the published JPEG, if published.
    pub(crate) published_bytes: Option<u64>,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Everything the tables need about a processed capture.
#[derive(Debug)]
pub(crate) struct Processed {
    pub(crate) id: CaptureId,
    pub(crate) manifest: CaptureManifest,
    pub(crate) status: CaptureStatus,
    pub(crate) outcomes: Vec<FrameOutcome>,
    pub(crate) coverage: Vec<CoveredCell>,
    pub(crate) anonymizer: String,
    /// Name and version of the sign model, when signs were detected.
    pub(crate) sign_model: Option<String>,
}

#[derive(Debug)]
pub struct Pipeline {
    pub(crate) lake: Lake,
    pub(crate) ensemble: Arc<Ensemble>,
    pub(crate) gates: GateConfig,
    pub(crate) quality: QualityConfig,
    pub(crate) privacy: PrivacyPolicy,
    pub(crate) signs: Option<Arc<SignModel>>,
}

/// Where a capture stands after a call to [`Pipeline::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Finished(CaptureStage),
    /// Trip trimming needs to know whether the drive goes on; ask again after this long.
    WaitForDrive(Duration),
}

impl Pipeline {
    pub fn new(lake: Lake, ensemble: Arc<Ensemble>, gates: GateConfig, quality: QualityConfig) -> Self {
        Self { lake, ensemble, gates, quality, privacy: PrivacyPolicy::default(), signs: None }
    }

    /// Detects traffic signs in every published frame with `model`.
    pub fn with_signs(mut self, model: Arc<SignModel>) -> Self {
        self.signs = Some(model);
        self
    }

    pub fn with_privacy(mut self, privacy: PrivacyPolicy) -> Self {
        self.privacy = privacy;
        self
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Processes a capture to its end state. Safe to call again for the same capture.
    pub async fn process(&self, capture: &str) -> Result<Progress> {
        let id = CaptureId::parse(capture).ok_or_else(|| VisionError::RawMissing(capture.to_owned()))?;
        let mut status: CaptureStatus = self
            .lake
            .get_json(&paths::capture_state(&id))
            .await?
            .ok_or_else(|| VisionError::RawMissing(capture.to_owned()))?;
        if matches!(status.state, CaptureStage::Published | CaptureStage::Rejected) {
            // Finished before a crash: only the raw cleanup may be left.
            self.lake.delete_prefix(&paths::raw_capture_prefix(&id)).await?;
            return Ok(Progress::Finished(status.state));
        }
        let raw = self
            .lake
            .get(&paths::raw_manifest(&id))
            .await?
            .ok_or_else(|| VisionError::RawMissing(capture.to_owned()))?;
        let manifest = CaptureManifest::parse(&raw)
            .map_err(|e| VisionError::Manifest { capture: capture.to_owned(), reason: e.to_string() })?;
        let private = match privacy::check(&self.lake, &self.privacy, &id, &manifest, &status).await? {
            Ok(private) => private,
            Err(wait) => return Ok(Progress::WaitForDrive(wait)),
        };
        status.state = CaptureStage::Processing;
        status.updated_at = Utc::now();
        self.lake.put_json(&paths::capture_state(&id), &status).await?;

        let times: Vec<i64> = manifest.frames.iter().map(|f| f.t_ms).collect();
        let gates = evaluate_frames(&self.gates, &manifest.telemetry, &times);
        // Frames in a privacy zone or a trimmed stretch are dropped before anyone looks at them.
        for (i, reason) in private.iter().enumerate() {
            if let (Some(reason), Some(f)) = (reason, status.frames.get_mut(i))
                && f.state == FrameStage::Received
            {
                f.state = FrameStage::Dropped;
                f.reason = Some(reason.clone());
            }
        }
        let valid: Vec<usize> = gates
            .iter()
            .enumerate()
            .filter(|(i, g)| g.verdict.is_ok() && private.get(*i).is_none_or(Option::is_none))
            .map(|(i, _)| i)
            .collect();
        let placed = place_frames(&manifest, &valid);
        let outcomes = self.frames(&id, &manifest, placed).await?;
        let published: Vec<Placed> =
            outcomes.iter().filter(|o| o.published_bytes.is_some()).map(|o| o.placed).collect();
        status.table_date = Some(tables::date_of(&manifest));
        let processed = Processed {
            coverage: coverage(&published),
            id: id.clone(),
            status: finish_status(status, &manifest, &outcomes),
            manifest,
            outcomes,
            anonymizer: self.ensemble.version(),
            sign_model: self.signs.as_ref().map(|m| m.name()),
        };
        tables::write(&self.lake, &processed).await?;
        self.lake.put_json(&paths::capture_state(&id), &processed.status).await?;
        self.lake.delete_prefix(&paths::raw_capture_prefix(&id)).await?;
        Ok(Progress::Finished(processed.status.state))
    }

    /// Quality pass on every placed frame, then anonymize and publish the ones that passed.
    /// CPU work runs on blocking threads, one chunk per core.
    async fn frames(
        &self,
        id: &CaptureId,
        manifest: &CaptureManifest,
        placed: Vec<Placed>,
    ) -> Result<Vec<FrameOutcome>> {
        let mut raw = Vec::with_capacity(placed.len());
        for p in &placed {
            let sha = &manifest.frames[p.index].sha256;
            let bytes = self
                .lake
                .get(&paths::raw_frame(id, sha))
                .await?
                .ok_or_else(|| VisionError::RawMissing(id.to_string()))?;
            raw.push((*p, bytes));
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(1);
        let chunk = raw.len().div_ceil(threads).max(1);
        let mut tasks = Vec::new();
        for part in raw.chunks(chunk).map(<[_]>::to_vec) {
            let (ensemble, cfg, signs) =
                (Arc::clone(&self.ensemble), self.quality.clone(), self.signs.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                anonymize_chunk(&ensemble, signs.as_deref(), &cfg, part)
            }));
        }
        let mut outcomes: Vec<(FrameOutcome, Option<Vec<u8>>)> = Vec::new();
        for t in tasks {
            outcomes.extend(t.await.map_err(|e| VisionError::Join(e.to_string()))??);
        }
        outcomes.sort_by_key(|(o, _)| o.placed.index);
        // Near-duplicates and mounting tilt need the whole capture, in order.
        let tilt = capture_tilt(outcomes.iter().map(|(o, _)| o.quality.tilt_deg), &self.quality);
        let mut previous: Option<u64> = None;
        for (o, _) in &mut outcomes {
            if previous
                .is_some_and(|p| (p ^ o.quality.phash).count_ones() <= self.quality.max_duplicate_distance)
            {
                o.quality.reasons.push("duplicate".to_owned());
            }
            previous = Some(o.quality.phash);
            if tilt.is_some() {
                o.quality.reasons.push("tilted".to_owned());
            }
        }
        let mut out = Vec::with_capacity(outcomes.len());
        for (mut o, jpeg) in outcomes {
            let path = paths::published_frame(id, o.placed.index);
            match jpeg.filter(|_| o.quality.passed()) {
                Some(bytes) => {
                    o.published_bytes = Some(bytes.len() as u64);
                    self.lake.put(&path, Bytes::from(bytes)).await?;
                }
                // A redo after a crash may find an object from a run that judged differently.
                None => self.lake.delete(&path).await?,
            }
            out.push(o);
        }
        Ok(out)
    }
}

/// Decodes, measures, anonymizes and re-encodes frames. Frames that already fail quality are not
/// anonymized (they will not be published). Re-encoding from pixels drops every metadata segment.
fn anonymize_chunk(
    ensemble: &Ensemble,
    signs: Option<&SignModel>,
    cfg: &QualityConfig,
    frames: Vec<(Placed, Bytes)>,
) -> Result<Vec<(FrameOutcome, Option<Vec<u8>>)>> {
    let mut out = Vec::with_capacity(frames.len());
    for (placed, bytes) in frames {
        let mut bgr = imgcodecs::imdecode(&Vector::<u8>::from_slice(&bytes), imgcodecs::IMREAD_COLOR)?;
        let (width, height) =
            (u32::try_from(bgr.cols()).unwrap_or(0), u32::try_from(bgr.rows()).unwrap_or(0));
        let quality = assess(&bgr, None, cfg)?;
        let (detections, found, jpeg) = if quality.passed() {
            // Signs first: the plate detector blurs lettering such as STOP. Only boxes and classes
            // leave this function, never the unblurred pixels.
            let found = match signs {
                Some(model) => model.detect(&bgr)?,
                None => Vec::new(),
            };
            let detections = ensemble.detect(&bgr)?;
            blur(&mut bgr, &detections)?;
            (detections, found, Some(encode(&bgr)?))
        } else {
            (Vec::new(), Vec::new(), None)
        };
        let outcome =
            FrameOutcome { placed, quality, detections, signs: found, published_bytes: None, width, height };
        out.push((outcome, jpeg));
    }
    Ok(out)
}

pub(crate) fn encode(bgr: &Mat) -> Result<Vec<u8>> {
    let mut buf = Vector::<u8>::new();
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, PUBLISH_QUALITY]);
    imgcodecs::imencode(".jpg", bgr, &mut buf, &params)?;
    Ok(buf.to_vec())
}

/// The capture's final state: per-frame outcomes, and `rejected` when nothing was published.
fn finish_status(
    mut status: CaptureStatus,
    manifest: &CaptureManifest,
    outcomes: &[FrameOutcome],
) -> CaptureStatus {
    let id = CaptureId::parse(&status.capture_id);
    for o in outcomes {
        let Some(f) = status.frames.get_mut(o.placed.index) else { continue };
        if o.published_bytes.is_some() {
            f.state = FrameStage::Published;
            f.frame_id = id.as_ref().map(|id| paths::frame_id(id, o.placed.index));
            f.reason = None;
        } else {
            f.state = FrameStage::Rejected;
            let code = o.quality.verdict();
            let message = format!("frame {}: failed quality gates ({code})", o.placed.index);
            f.reason =
                Some(Reason { code: code.clone(), message: message.clone(), frame: Some(o.placed.index) });
            status.reasons.push(Reason { code, message, frame: Some(o.placed.index) });
        }
    }
    // Frames that passed the telemetry gates but could not be placed.
    let placed: std::collections::HashSet<usize> = outcomes.iter().map(|o| o.placed.index).collect();
    for (i, f) in status.frames.iter_mut().enumerate() {
        if f.state == FrameStage::Received && !placed.contains(&i) && i < manifest.frames.len() {
            f.state = FrameStage::Rejected;
            let reason = Reason {
                code: "frame_time_outside_telemetry".into(),
                message: format!("frame {i}: no position"),
                frame: Some(i),
            };
            f.reason = Some(reason.clone());
            status.reasons.push(reason);
        }
    }
    let any = outcomes.iter().any(|o| o.published_bytes.is_some());
    status.state = if any { CaptureStage::Published } else { CaptureStage::Rejected };
    if !any {
        status.reasons.push(Reason {
            code: "no_frame_published".into(),
            message: "no frame was published (see the frames' reasons)".into(),
            frame: None,
        });
    }
    status.updated_at = Utc::now();
    status
}
