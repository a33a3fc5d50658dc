//! The vision worker: claims captures from the work queue and runs the pipeline on each.

use crate::pipeline::{Pipeline, Progress};
use chrono::Utc;
use roadhex_lake::{Lake, WorkQueue, paths};
use roadhex_schemas::CaptureId;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, Reason};
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
        let result = pipeline.process(&lease.id).await;
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

/// Marks a capture rejected and deletes its raw data (retention: raw never outlives its capture).
async fn reject(lake: &Lake, capture: &str, message: &str, code: &str) -> roadhex_lake::Result<()> {
    let Some(id) = CaptureId::parse(capture) else { return Ok(()) };
    if let Some(mut status) = lake.get_json::<CaptureStatus>(&paths::capture_state(&id)).await? {
        status.state = CaptureStage::Rejected;
        status.reasons.push(Reason { code: code.to_owned(), message: message.to_owned(), frame: None });
        status.updated_at = Utc::now();
        lake.put_json(&paths::capture_state(&id), &status).await?;
    }
    lake.delete_prefix(&paths::raw_capture_prefix(&id)).await
}
