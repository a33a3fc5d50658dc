//! The two-phase resumable upload: open (signed manifest) → frames by hash → commit.
//!
//! Crash safety: every step writes whole objects, in an order where a retry of the same request
//! finishes what a crash interrupted. Nothing is written before every check passed.

use crate::Ingest;
use crate::error::{IngestError, Result};
use crate::registry;
use crate::tables;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::{Stream, StreamExt as _};
use roadhex_lake::paths;
use roadhex_schemas::gates::{FrameGate, evaluate_frames};
use roadhex_schemas::ids::is_sha256_hex;
use roadhex_schemas::limits::{MAX_FRAME_BYTES, MIN_FRAME_BYTES};
use roadhex_schemas::signing::{decode_signature, verify};
use roadhex_schemas::state::{CaptureStage, CaptureStatus, FrameStage, FrameStatus, Reason};
use roadhex_schemas::{CaptureId, CaptureManifest, jpeg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use utoipa::ToSchema;

/// Answer to opening (or resuming) a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Opened {
    pub capture_id: String,
    pub state: CaptureStage,
    /// Frame hashes the server still needs, in manifest order.
    pub missing: Vec<String>,
    /// Frames the telemetry gates dropped; they need not be uploaded.
    pub dropped: Vec<Reason>,
    /// False when this request resumed an existing capture.
    #[serde(default)]
    pub created: bool,
}

/// Answer to a frame upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FrameStored {
    pub sha256: String,
    pub index: usize,
    /// False when the frame was already stored (the upload was a retry).
    pub created: bool,
}

/// A capture's immutable facts, cached in memory.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) id: CaptureId,
    pub(crate) manifest: CaptureManifest,
    pub(crate) contributor_id: String,
    pub(crate) gates: Vec<FrameGate>,
    /// Still taking frames. Cached so a frame upload does not re-read the state object; only
    /// commit clears it, and commit runs in ingest. (With several ingest processes a stale
    /// `true` can admit a late frame; the raw-retention purge removes such strays.)
    receiving: AtomicBool,
}

impl Loaded {
    fn frame_index(&self, sha256: &str) -> Option<usize> {
        self.manifest.frames.iter().position(|f| f.sha256 == sha256)
    }

    fn dropped(&self) -> Vec<Reason> {
        self.gates
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.verdict.as_ref().err().map(|r| gate_reason(i, r)))
            .collect()
    }

    fn needed(&self) -> impl Iterator<Item = &str> {
        self.manifest
            .frames
            .iter()
            .zip(&self.gates)
            .filter(|(_, g)| g.verdict.is_ok())
            .map(|(f, _)| f.sha256.as_str())
    }
}

fn gate_reason(index: usize, r: &roadhex_schemas::gates::GateReason) -> Reason {
    Reason { code: r.code().to_owned(), message: format!("frame {index}: {r}"), frame: Some(index) }
}

pub(crate) fn parse_capture_id(id: &str) -> Result<CaptureId> {
    CaptureId::parse(id).ok_or_else(|| IngestError::CaptureNotFound(id.to_owned()))
}

impl Ingest {
    /// Phase 1: verify the signed manifest and open (or resume) its capture.
    pub async fn open_capture(&self, device: &str, signature: &str, bytes: Bytes) -> Result<Opened> {
        if bytes.len() > self.config.max_manifest_bytes {
            return Err(IngestError::ManifestTooLarge {
                size: bytes.len(),
                limit: self.config.max_manifest_bytes,
            });
        }
        let device_id = registry::parse_device_id(device)?;
        let sig = decode_signature(signature)?;
        let active = registry::active(&self.lake, &device_id).await?;
        // The signature covers the exact bytes: check it before parsing anything.
        verify(&active.key, &bytes, &sig)?;
        // Limit only requests the device really signed, so nobody can spend another device's budget.
        self.rate_limit(device_id.as_str())?;
        let manifest = CaptureManifest::parse(&bytes)?;
        if manifest.device_id != device_id.as_str() {
            return Err(IngestError::DeviceMismatch {
                in_manifest: manifest.device_id.clone(),
                in_header: device_id.to_string(),
            });
        }
        let id = CaptureId::from_manifest_bytes(&bytes);
        let claim = paths::sequence_claim(&device_id, manifest.sequence);
        let resumed = match self.lake.get(&claim).await? {
            Some(owner) if owner.as_ref() == id.as_str().as_bytes() => true,
            Some(_) => {
                return Err(IngestError::SequenceReplayed {
                    device: device_id.to_string(),
                    sequence: manifest.sequence,
                });
            }
            None => false,
        };
        let times: Vec<i64> = manifest.frames.iter().map(|f| f.t_ms).collect();
        let gates = evaluate_frames(&self.config.gates, &manifest.telemetry, &times);
        if !resumed {
            if let Some(last) = self.last_sequence(&device_id).await?
                && manifest.sequence <= last
            {
                return Err(IngestError::SequenceNotIncreasing {
                    device: device_id.to_string(),
                    sequence: manifest.sequence,
                    last,
                });
            }
            if gates.iter().all(|g| g.verdict.is_err()) {
                let (index, reason) = gates
                    .iter()
                    .enumerate()
                    .find_map(|(i, g)| g.verdict.clone().err().map(|r| (i, r)))
                    .ok_or(IngestError::Manifest(roadhex_schemas::ManifestError::NoFrames))?;
                return Err(IngestError::NoValidFrames { index, reason });
            }
            // Claim first: if two different manifests race for one sequence number, one loses here
            // before it wrote anything.
            if !self.lake.put_new(&claim, Bytes::copy_from_slice(id.as_str().as_bytes())).await? {
                let owner = self.lake.get(&claim).await?.unwrap_or_default();
                if owner.as_ref() != id.as_str().as_bytes() {
                    return Err(IngestError::SequenceReplayed {
                        device: device_id.to_string(),
                        sequence: manifest.sequence,
                    });
                }
            }
        }
        let loaded = Arc::new(Loaded {
            id: id.clone(),
            manifest,
            contributor_id: active.record.contributor_id,
            gates,
            receiving: AtomicBool::new(true),
        });
        // Idempotent writes: a resumed open repairs whatever a crash left unwritten.
        if !self.lake.exists(&paths::raw_manifest(&id)).await? {
            self.lake
                .put(&paths::raw_signature(&id), Bytes::copy_from_slice(signature.trim().as_bytes()))
                .await?;
            self.lake.put(&paths::raw_manifest(&id), bytes).await?;
        }
        let state = match self.lake.get_json::<CaptureStatus>(&paths::capture_state(&id)).await? {
            Some(s) => s,
            None => {
                let s = new_status(&loaded);
                self.lake.put_json(&paths::capture_state(&id), &s).await?;
                s
            }
        };
        loaded.receiving.store(state.state == CaptureStage::Receiving, Ordering::Release);
        self.cache_put(Arc::clone(&loaded));
        let missing = if state.state == CaptureStage::Receiving {
            let have = self.received(&id).await?;
            loaded.needed().filter(|s| !have.contains(*s)).map(str::to_owned).collect()
        } else {
            Vec::new()
        };
        Ok(Opened {
            capture_id: id.to_string(),
            state: state.state,
            missing,
            dropped: loaded.dropped(),
            created: !resumed,
        })
    }

    /// Phase 2: store one frame, streamed, after checking it is the frame the manifest promised.
    /// Returns only once the bytes are durable. Retrying a stored frame is a no-op.
    pub async fn put_frame<S, E>(&self, capture: &str, sha256: &str, body: S) -> Result<FrameStored>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let loaded = self.load(capture).await?;
        if !is_sha256_hex(sha256) {
            return Err(IngestError::FrameNotInManifest(sha256.to_owned()));
        }
        let index =
            loaded.frame_index(sha256).ok_or_else(|| IngestError::FrameNotInManifest(sha256.to_owned()))?;
        if let Err(reason) = &loaded.gates[index].verdict {
            return Err(IngestError::FrameDropped { index, reason: reason.clone() });
        }
        let path = paths::raw_frame(&loaded.id, sha256);
        let stored = |created| FrameStored { sha256: sha256.to_owned(), index, created };
        if !loaded.receiving.load(Ordering::Acquire) {
            // A retry of a frame that made it before the commit is still a success.
            return if self.lake.exists(&path).await? {
                Ok(stored(false))
            } else {
                Err(IngestError::CaptureCommitted(capture.to_owned()))
            };
        }
        self.rate_limit(&loaded.manifest.device_id)?;
        let (bytes, digest) = read_frame(body, loaded.manifest.frames[index].size).await?;
        check_frame(&loaded, index, &bytes, digest)?;
        // Create-only: a concurrent or repeated upload of the same frame finds it stored.
        let created = self.lake.put_new(&path, bytes).await?;
        Ok(stored(created))
    }

    /// Phase 3: all needed frames are there; record the capture and queue it. Idempotent.
    pub async fn commit(&self, capture: &str) -> Result<CaptureStatus> {
        let loaded = self.load(capture).await?;
        let mut status = self.status(capture).await?;
        if status.state == CaptureStage::Queued {
            // A retried commit: the first may have died between writing `queued` and enqueueing.
            // The queue ignores an id it holds, and vision skips a capture it has finished.
            self.queue.enqueue(loaded.id.as_str()).await?;
        }
        if status.state != CaptureStage::Receiving {
            return Ok(status);
        }
        let have = self.received(&loaded.id).await?;
        let missing: Vec<String> =
            loaded.needed().filter(|s| !have.contains(*s)).map(str::to_owned).collect();
        if !missing.is_empty() {
            return Err(IngestError::FramesMissing { missing });
        }
        let now = Utc::now();
        // Table files are keyed by capture id, so a commit retried after a crash rewrites them
        // instead of adding rows twice; the queue ignores an id it already holds.
        tables::write_capture(&self.lake, &loaded, &self.config.gates, now).await?;
        // Where the capture runs, so trip trimming can place it in its drive (before it is queued).
        if let (Some(track), Some(device)) = (
            roadhex_schemas::privacy::summarize(loaded.id.as_str(), &loaded.manifest),
            roadhex_schemas::DeviceId::parse(&loaded.manifest.device_id),
        ) {
            roadhex_lake::privacy::put_track(&self.lake, &device, &loaded.id, &track).await?;
        }
        status.state = CaptureStage::Queued;
        status.committed_at = Some(now);
        status.updated_at = now;
        for f in &mut status.frames {
            if f.state == FrameStage::Missing {
                f.state = FrameStage::Received;
            }
        }
        // `queued` is written before the item exists: the other way round, a vision worker could
        // finish the capture before this write and have its end state overwritten.
        self.lake.put_json(&paths::capture_state(&loaded.id), &status).await?;
        loaded.receiving.store(false, Ordering::Release);
        self.queue.enqueue(loaded.id.as_str()).await?;
        Ok(status)
    }

    /// The capture's state; while receiving, frame states reflect what is stored right now.
    pub async fn status(&self, capture: &str) -> Result<CaptureStatus> {
        let id = parse_capture_id(capture)?;
        let mut status: CaptureStatus = self
            .lake
            .get_json(&paths::capture_state(&id))
            .await?
            .ok_or_else(|| IngestError::CaptureNotFound(capture.to_owned()))?;
        if status.state == CaptureStage::Receiving {
            let have = self.received(&id).await?;
            for f in &mut status.frames {
                if f.state == FrameStage::Missing && have.contains(&f.sha256) {
                    f.state = FrameStage::Received;
                }
            }
        }
        Ok(status)
    }

    async fn received(&self, id: &CaptureId) -> Result<HashSet<String>> {
        let listed = self.lake.list(&paths::raw_frames_prefix(id)).await?;
        Ok(listed.iter().filter_map(|p| paths::sha256_of_raw_frame(p).map(str::to_owned)).collect())
    }

    async fn last_sequence(&self, device: &roadhex_schemas::DeviceId) -> Result<Option<u64>> {
        let claims = self.lake.list(&paths::sequences_prefix(device)).await?;
        Ok(claims.iter().filter_map(|p| p.filename()?.parse::<u64>().ok()).max())
    }

    pub(crate) async fn load(&self, capture: &str) -> Result<Arc<Loaded>> {
        let id = parse_capture_id(capture)?;
        if let Some(l) = self.cache_get(&id) {
            return Ok(l);
        }
        let not_found = || IngestError::CaptureNotFound(capture.to_owned());
        let bytes = self.lake.get(&paths::raw_manifest(&id)).await?.ok_or_else(not_found)?;
        let status = self.status(capture).await?;
        let manifest = CaptureManifest::parse(&bytes)?;
        let times: Vec<i64> = manifest.frames.iter().map(|f| f.t_ms).collect();
        let gates = evaluate_frames(&self.config.gates, &manifest.telemetry, &times);
        let receiving = AtomicBool::new(status.state == CaptureStage::Receiving);
        let loaded =
            Arc::new(Loaded { id, manifest, contributor_id: status.contributor_id, gates, receiving });
        self.cache_put(Arc::clone(&loaded));
        Ok(loaded)
    }
}

fn new_status(l: &Loaded) -> CaptureStatus {
    let now = Utc::now();
    CaptureStatus {
        capture_id: l.id.to_string(),
        device_id: l.manifest.device_id.clone(),
        contributor_id: l.contributor_id.clone(),
        sequence: l.manifest.sequence,
        state: CaptureStage::Receiving,
        reasons: l.dropped(),
        received_at: now,
        committed_at: None,
        updated_at: now,
        frames: l
            .manifest
            .frames
            .iter()
            .zip(&l.gates)
            .enumerate()
            .map(|(index, (f, g))| FrameStatus {
                index,
                sha256: f.sha256.clone(),
                state: if g.verdict.is_ok() { FrameStage::Missing } else { FrameStage::Dropped },
                frame_id: None,
                reason: g.verdict.as_ref().err().map(|r| gate_reason(index, r)),
            })
            .collect(),
        table_date: None,
    }
}

/// Collects and hashes a frame body as it streams in, refusing it once it passes the size limit.
async fn read_frame<S, E>(mut body: S, expected: u64) -> Result<(Bytes, String)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut buf = BytesMut::with_capacity(usize::try_from(expected.min(MAX_FRAME_BYTES)).unwrap_or(0));
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| IngestError::BadRequest(format!("reading the frame body: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > MAX_FRAME_BYTES {
            return Err(IngestError::FrameTooLarge { limit: MAX_FRAME_BYTES });
        }
        hasher.update(&chunk);
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), hex::encode(hasher.finalize())))
}

fn check_frame(l: &Loaded, index: usize, bytes: &[u8], actual: String) -> Result<()> {
    let entry = &l.manifest.frames[index];
    // Size first: an empty or cut-off body says so, rather than naming the empty body's hash.
    let size = bytes.len() as u64;
    if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&size) {
        return Err(IngestError::FrameSizeOutOfRange { size, min: MIN_FRAME_BYTES, max: MAX_FRAME_BYTES });
    }
    if actual != entry.sha256 {
        return Err(IngestError::FrameHashMismatch { expected: entry.sha256.clone(), actual });
    }
    if size != entry.size {
        return Err(IngestError::FrameSizeMismatch { declared: entry.size, actual: size });
    }
    let info = jpeg::inspect(bytes)?;
    let cam = &l.manifest.camera;
    if (info.width, info.height) != (cam.width, cam.height) {
        return Err(IngestError::FrameDimensionsMismatch {
            width: info.width,
            height: info.height,
            camera_width: cam.width,
            camera_height: cam.height,
        });
    }
    Ok(())
}
