//! `roadhex requeue`: puts every capture that is committed but not finished back on the work queue
//! (after a lost NATS stream, or a queue moved to another backend). Vision redoes a capture
//! idempotently, so requeueing one that is still queued changes nothing.

use crate::store_args::StoreArgs;
use roadhex_lake::paths;
use roadhex_schemas::state::{CaptureStage, CaptureStatus};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct RequeueArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The node's queue: `embedded` or `nats://host:port`.
    #[arg(long = "queue", env = "ROADHEX_QUEUE", default_value = "embedded")]
    queue: String,
    /// Queue name (the ingest config's `queue`).
    #[arg(long, default_value = "vision")]
    name: String,
}

pub(crate) async fn requeue(args: RequeueArgs) -> anyhow::Result<ExitCode> {
    let lake = args.store.open()?;
    let url = Some(args.queue.as_str()).filter(|q| *q != "embedded");
    let queue = crate::serve::open_queue(&lake, url, &args.name).await?;
    let mut n = 0;
    for path in lake.list(&paths::capture_states_prefix()).await? {
        let Some(status) = lake.get_json::<CaptureStatus>(&path).await? else { continue };
        if matches!(status.state, CaptureStage::Queued | CaptureStage::Processing) {
            queue.enqueue(&status.capture_id).await?;
            n += 1;
        }
    }
    crate::say(&format!("{n} captures put back on the queue"));
    Ok(ExitCode::SUCCESS)
}
