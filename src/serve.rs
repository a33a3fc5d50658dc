//! `roadhex serve`: wires the lake, the queue and every built role into one process.

use crate::config::ServeArgs;
use anyhow::Context as _;
use roadhex_ingest::Ingest;
use roadhex_lake::{EmbeddedQueue, Lake, WorkQueue};
use std::sync::Arc;
use tower_http::trace::TraceLayer;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let lake = Lake::open(&cfg.store_url).with_context(|| format!("opening store {}", cfg.store_url))?;
    let queue: Arc<dyn WorkQueue> = Arc::new(EmbeddedQueue::open(lake.clone(), &cfg.ingest.queue).await?);
    let pending = queue.items().await?.len();
    let ingest = Arc::new(Ingest::new(lake, queue, cfg.ingest));
    let app = roadhex_ingest::api::router(ingest).layer(TraceLayer::new_for_http());
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(store = %cfg.store_url, %addr, pending, "roadhex node started (roles: ingest)");
    // Tests and scripts read the address from this first stdout line.
    crate::say(&format!("listening on http://{addr}"));
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
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
