//! After the load, with every roadhex process killed (-9): is every acknowledged frame in the store?

use super::drive::Log;
use anyhow::Result;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::CaptureId;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, FrameStage};
use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) frames_acked: usize,
    /// Acknowledged frames published (JPEG in `frames/`, row in the `frames` table).
    pub(crate) published: usize,
    /// Acknowledged frames still in `raw/`, waiting for vision.
    pub(crate) raw: usize,
    /// Acknowledged frames vision judged (failed a quality gate: rejected with a reason).
    pub(crate) judged: usize,
    pub(crate) committed: usize,
    /// Committed captures published or rejected.
    pub(crate) finished: usize,
    /// Committed captures still queued (their queue item is in the store).
    pub(crate) queued: usize,
    /// Every acknowledged frame or commit the store does not account for.
    pub(crate) lost: Vec<String>,
}

/// Checks `log` against the store. `table` holds the frame ids of the `frames` table and `queued`
/// the ids the work queue holds.
pub(crate) async fn verify(
    lake: &Lake,
    log: &Log,
    table: &BTreeSet<String>,
    queued: &BTreeSet<String>,
) -> Result<Verdict> {
    let mut v = Verdict { committed: log.committed.len(), ..Verdict::default() };
    let committed: BTreeSet<&String> = log.committed.iter().collect();
    let ids: BTreeSet<&String> = log.acked.keys().chain(log.committed.iter()).collect();
    for id in ids {
        let Some(cid) = CaptureId::parse(id) else {
            v.lost.push(format!("{id}: not a capture id"));
            continue;
        };
        let Some(status) = lake.get_json::<CaptureStatus>(&paths::capture_state(&cid)).await? else {
            v.lost.push(format!("{id}: no state in the store"));
            continue;
        };
        if committed.contains(id) {
            match status.state {
                CaptureStage::Published | CaptureStage::Rejected => v.finished += 1,
                CaptureStage::Queued | CaptureStage::Processing if queued.contains(id) => v.queued += 1,
                s => v.lost.push(format!("{id}: commit acknowledged, state {s:?}, not in the queue")),
            }
        }
        let raw: BTreeSet<String> = lake
            .list(&paths::raw_frames_prefix(&cid))
            .await?
            .iter()
            .filter_map(|p| paths::sha256_of_raw_frame(p).map(str::to_owned))
            .collect();
        for sha in log.acked.get(id).into_iter().flatten() {
            v.frames_acked += 1;
            let Some(f) = status.frames.iter().find(|f| &f.sha256 == sha) else {
                v.lost.push(format!("{id}: frame {sha} not in the capture's state"));
                continue;
            };
            match f.state {
                FrameStage::Published => {
                    let id_of = paths::frame_id(&cid, f.index);
                    if table.contains(&id_of) && lake.exists(&paths::published_frame(&cid, f.index)).await? {
                        v.published += 1;
                    } else {
                        v.lost.push(format!("{id_of}: published but missing from the table or store"));
                    }
                }
                FrameStage::Received | FrameStage::Missing if raw.contains(sha) => v.raw += 1,
                FrameStage::Received | FrameStage::Missing => {
                    v.lost.push(format!("{id}: acknowledged frame {sha} is not in raw/"))
                }
                _ => v.judged += 1,
            }
        }
    }
    Ok(v)
}
