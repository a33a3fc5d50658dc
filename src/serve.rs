//! `roadhex serve`: wires the lake, the queue and the chosen roles into one process.

use crate::config::{Role, ServeArgs};
use anyhow::Context as _;
use roadhex_ingest::Ingest;
use roadhex_lake::{EmbeddedQueue, Lake, WorkQueue};
use roadhex_vision::Pipeline;
use roadhex_vision::anonymize::Ensemble;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

/// Closed epochs the node looks back over for ones it has not run.
const REWARDS_CATCH_UP_EPOCHS: i64 = 8;
const REWARDS_POLL: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let lake = Lake::open(&cfg.store_url).with_context(|| format!("opening store {}", cfg.store_url))?;
    let queue: Arc<dyn WorkQueue> = Arc::new(EmbeddedQueue::open(lake.clone(), &cfg.ingest.queue).await?);
    let pending = queue.items().await?.len();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if cfg.roles.contains(&Role::Vision) {
        // Loading every model now makes a missing file a startup error, not a failed capture.
        let ensemble = Ensemble::from_config(&cfg.models, &cfg.anonymizer)
            .with_context(|| format!("loading anonymization models from {}", cfg.models.dir.display()))?;
        let pipeline = Arc::new(Pipeline::new(
            lake.clone(),
            Arc::new(ensemble),
            cfg.ingest.gates.clone(),
            cfg.quality.clone(),
        ));
        let worker = format!("vision-{}", std::process::id());
        workers.push(tokio::spawn(roadhex_vision::worker::run(
            pipeline,
            Arc::clone(&queue),
            worker,
            stop_rx.clone(),
        )));
    }
    if cfg.roles.contains(&Role::Rewards) {
        // Runs every closed epoch (cutoff plus settle time passed) that has no ledger yet.
        workers.push(tokio::spawn(roadhex_rewards::run::serve(
            lake.clone(),
            cfg.rewards.clone(),
            REWARDS_CATCH_UP_EPOCHS,
            REWARDS_POLL,
            stop_rx.clone(),
        )));
    }
    let roles: Vec<String> = cfg.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
    if cfg.roles.contains(&Role::Ingest) {
        let ingest = Arc::new(Ingest::new(lake.clone(), Arc::clone(&queue), cfg.ingest));
        let mut app = roadhex_ingest::api::router(ingest);
        if cfg.roles.contains(&Role::Rewards) {
            app = app.merge(crate::rewards_api::router(lake));
        }
        let app = app.layer(TraceLayer::new_for_http());
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(store = %cfg.store_url, %addr, pending, roles = %roles.join(","), "roadhex node started");
        // Tests and scripts read the address from this first stdout line.
        crate::say(&format!("listening on http://{addr}"));
        axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    } else {
        tracing::info!(store = %cfg.store_url, pending, roles = %roles.join(","), "roadhex node started");
        crate::say("running (no HTTP roles)");
        shutdown().await;
    }
    // Let workers finish the capture in hand; an interrupted one is redone after its lease.
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
