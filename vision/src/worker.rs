//! The vision worker: claims captures from the work queue and runs the pipeline on each.

use crate::pipeline::{Pipeline, Progress};
use chrono::Utc;
use roadhex_lake::{Lake, Lease, WorkQueue, paths};
use roadhex_schemas::CaptureId;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, Reason};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a claim lasts; a worker that dies loses its capture to another after this.
pub const LEASE: Duration = Duration::from_secs(600);
/// Deliveries after which a capture that keeps failing is rejected instead of retried forever.
pub const MAX_ATTEMPTS: u32 = 5;

/// Runs until `stop` turns true. Each capture is acked only after it reached its end state.
pub async fn run(
    pipeline: Arc<Pipeline>,
    queue: Arc<dyn WorkQueue>,
    worker: String,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let lease = match queue.claim_wait(&worker, LEASE, Duration::from_secs(2)).await {
            Ok(Some(lease)) => lease,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "claiming from the queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let started = std::time::Instant::now();
        let result = holding(queue.as_ref(), &lease, pipeline.process(&lease.id)).await;
        let outcome = match &result {
            Ok(Progress::Finished(stage)) => format!("{stage:?}").to_lowercase(),
            Ok(Progress::WaitForDrive(_)) => "deferred".to_owned(),
            Err(e) => e.code().to_owned(),
        };
        roadhex_lake::metrics::observe(
            "roadhex_vision_capture_seconds",
            "Time vision spent on one claim of a capture, by outcome.",
            &[("outcome", &outcome)],
            started.elapsed().as_secs_f64(),
        );
        match result {
            Ok(Progress::WaitForDrive(wait)) => {
                tracing::info!(capture = %lease.id, wait_s = wait.as_secs(), "waiting to see whether the drive goes on");
                if let Err(e) = queue.defer(&lease, wait).await {
                    tracing::error!(capture = %lease.id, error = %e, "defer failed; the lease will expire");
                }
            }
            Ok(Progress::Finished(stage)) => {
                tracing::info!(capture = %lease.id, ?stage, "capture processed");
                if let Err(e) = queue.ack(&lease).await {
                    tracing::error!(capture = %lease.id, error = %e, "ack failed; the capture will be redone");
                }
            }
            Err(e) if lease.attempt >= MAX_ATTEMPTS => {
                tracing::error!(capture = %lease.id, error = %e, attempts = lease.attempt, "giving up on capture");
                if let Err(e) = reject(pipeline.lake(), &lease.id, &e.to_string(), e.code()).await {
                    tracing::error!(capture = %lease.id, error = %e, "could not record the rejection");
                    continue;
                }
                let _ = queue.ack(&lease).await;
            }
            Err(e) => {
                tracing::warn!(capture = %lease.id, error = %e, attempt = lease.attempt, "capture failed; will retry");
                let _ = queue.release(&lease).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs `work` while telling the queue that the lease's holder is still at it, for at most
/// [`LEASE`]: a worker slower than the queue's ack wait keeps its capture instead of racing a second
/// worker over it (whose stale state write could undo the first one's `published`); a worker that
/// hangs loses it once the lease is over.
async fn holding<T>(queue: &dyn WorkQueue, lease: &Lease, work: impl Future<Output = T>) -> T {
    let left = (lease.until - Utc::now()).to_std().unwrap_or_default();
    let period = (left / 3).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    let mut beat = tokio::time::interval_at(started + period, period);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = beat.tick(), if started.elapsed() < LEASE => {
                if let Err(e) = queue.extend(lease, LEASE.saturating_sub(started.elapsed())).await {
                    tracing::warn!(capture = %lease.id, error = %e, "extending the lease failed");
                }
            }
        }
    }
}

/// Marks a capture rejected and deletes its raw data (retention: raw never outlives its capture).
/// A capture another worker finished meanwhile keeps the state that worker gave it.
async fn reject(lake: &Lake, capture: &str, message: &str, code: &str) -> roadhex_lake::Result<()> {
    let Some(id) = CaptureId::parse(capture) else { return Ok(()) };
    if let Some(mut status) = lake.get_json::<CaptureStatus>(&paths::capture_state(&id)).await?
        && !matches!(status.state, CaptureStage::Published | CaptureStage::Rejected)
    {
        status.state = CaptureStage::Rejected;
        status.reasons.push(Reason { code: code.to_owned(), message: message.to_owned(), frame: None });
        status.updated_at = Utc::now();
        lake.put_json(&paths::capture_state(&id), &status).await?;
    }
    lake.delete_prefix(&paths::raw_capture_prefix(&id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use roadhex_lake::EmbeddedQueue;

    fn status(state: CaptureStage) -> CaptureStatus {
        let now = Utc::now();
        CaptureStatus {
            capture_id: "0123456789abcdef0123456789abcdef".into(),
            device_id: "fedcba9876543210fedcba9876543210".into(),
            contributor_id: "c".into(),
            sequence: 1,
            state,
            reasons: Vec::new(),
            received_at: now,
            committed_at: Some(now),
            updated_at: now,
            frames: Vec::new(),
            table_date: None,
        }
    }

    /// Found by `make chaos`: a worker giving up after its last attempt turned a capture another
    /// worker had published into `rejected`, with its frames still public.
    #[tokio::test]
    async fn giving_up_keeps_a_state_another_worker_finished() {
        let lake = Lake::open("memory://").expect("lake");
        let id = CaptureId::parse("0123456789abcdef0123456789abcdef").expect("id");
        let path = paths::capture_state(&id);
        lake.put_json(&path, &status(CaptureStage::Published)).await.expect("put");
        reject(&lake, id.as_str(), "raw data missing", "raw_missing").await.expect("reject");
        let kept: CaptureStatus = lake.get_json(&path).await.expect("get").expect("state");
        assert_eq!((kept.state, kept.reasons.len()), (CaptureStage::Published, 0));
        lake.put_json(&path, &status(CaptureStage::Processing)).await.expect("put");
        reject(&lake, id.as_str(), "raw data missing", "raw_missing").await.expect("reject");
        let rejected: CaptureStatus = lake.get_json(&path).await.expect("get").expect("state");
        assert_eq!((rejected.state, rejected.reasons.len()), (CaptureStage::Rejected, 1));
    }

    /// Work longer than the lease claimed keeps its item: nobody else can claim it meanwhile.
    #[tokio::test]
    async fn slow_work_keeps_its_lease() {
        let lake = Lake::open("memory://").expect("lake");
        let queue = EmbeddedQueue::open(lake, "vision").await.expect("queue");
        queue.enqueue("a").await.expect("enqueue");
        let lease = queue.claim("w1", Duration::from_millis(600)).await.expect("claim").expect("a");
        let stolen = holding(&queue, &lease, async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            queue.claim("w2", LEASE).await.expect("claim")
        })
        .await;
        assert_eq!(stolen, None, "claimed while its holder was at work");
        queue.ack(&lease).await.expect("ack");
    }
}
