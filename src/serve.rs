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
    let queue = open_queue(&lake, cfg.queue_url.as_deref(), &cfg.ingest.queue).await?;
    let pending = queue.items().await?.len();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if cfg.roles.contains(&Role::Vision) {
        // Loading every model now makes a missing file a startup error, not a failed capture.
        let ensemble = Ensemble::from_config(&cfg.models, &cfg.anonymizer)
            .with_context(|| format!("loading anonymization models from {}", cfg.models.dir.display()))?;
        let signs =
            roadhex_vision::signs::SignModel::embedded().context("loading the embedded sign model")?;
        let pipeline = Arc::new(
            Pipeline::new(lake.clone(), Arc::new(ensemble), cfg.ingest.gates.clone(), cfg.quality.clone())
                .with_privacy(cfg.privacy.clone())
                .with_signs(Arc::new(signs)),
        );
        let worker = format!("vision-{}", std::process::id());
        workers.push(tokio::spawn(roadhex_vision::worker::run(
            pipeline,
            Arc::clone(&queue),
            worker,
            stop_rx.clone(),
        )));
        workers.push(tokio::spawn(purge_loop(lake.clone(), cfg.privacy.clone(), stop_rx.clone())));
        if cfg.features_every_s > 0 {
            let every = std::time::Duration::from_secs(cfg.features_every_s);
            workers.push(tokio::spawn(features_loop(lake.clone(), every, stop_rx.clone())));
        }
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
    if cfg.compaction.interval_s > 0 {
        workers.push(tokio::spawn(compact_loop(lake.clone(), cfg.compaction.clone(), stop_rx.clone())));
    }
    let roles: Vec<String> = cfg.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
    let mut app: Option<axum::Router> = None;
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("roadhex API")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .build();
    let mut flight_line = None;
    if cfg.roles.contains(&Role::Sql) {
        let engine = roadhex_lake::sql::SqlEngine::new(lake.clone(), cfg.sql.clone())?;
        if let Some(addr) = &cfg.flight_listen {
            flight_line =
                Some(start_flight(addr, engine.clone(), cfg.sql_token.clone(), &mut workers).await?);
        }
        mount(
            &mut app,
            &mut doc,
            crate::sql_http::router(engine, cfg.sql_token.clone()),
            crate::sql_http::openapi(),
        );
    }
    if cfg.roles.contains(&Role::Rewards) {
        mount(&mut app, &mut doc, crate::rewards_api::router(lake.clone()), crate::rewards_api::openapi());
    }
    let mut tiles_handle = None;
    if cfg.roles.contains(&Role::Tiles) {
        let tiles = roadhex_tiles::Tiles::open(lake.clone(), cfg.tiles.clone()).await?;
        workers.push(tokio::spawn(roadhex_tiles::refresh_loop(Arc::clone(&tiles), stop_rx.clone())));
        tiles_handle = Some(Arc::clone(&tiles));
        mount(&mut app, &mut doc, roadhex_tiles::api::router(tiles), roadhex_tiles::api::openapi());
    }
    let metrics = crate::metrics_http::Sources {
        queue: Arc::clone(&queue),
        queue_name: cfg.ingest.queue.clone(),
        tiles: tiles_handle,
    };
    if cfg.roles.contains(&Role::Ingest) {
        // Redaction requests are public writes, like uploads; the operator reviews them.
        mount(
            &mut app,
            &mut doc,
            roadhex_vision::privacy::api::router(lake.clone(), cfg.ingest.operator_token.clone()),
            roadhex_vision::privacy::api::openapi(),
        );
        let ingest = Arc::new(Ingest::new(lake.clone(), Arc::clone(&queue), cfg.ingest));
        workers.push(tokio::spawn(challenge_sweep_loop(Arc::clone(&ingest), stop_rx.clone())));
        mount(&mut app, &mut doc, roadhex_ingest::api::router(ingest), roadhex_ingest::api::openapi());
    }
    match app {
        Some(mut app) => {
            if !cfg.roles.contains(&Role::Ingest) {
                app = app.merge(crate::metrics_http::probes(lake.clone()));
            }
            // One description of every route this process serves.
            let doc = Arc::new(crate::openapi_doc::to_json(&doc));
            let app = app
                .route(
                    "/openapi.json",
                    axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }),
                )
                .merge(crate::metrics_http::router(metrics))
                .layer(axum::middleware::from_fn(crate::metrics_http::track))
                .layer(TraceLayer::new_for_http());
            let listener = tokio::net::TcpListener::bind(&cfg.listen)
                .await
                .with_context(|| format!("binding {}", cfg.listen))?;
            let addr = listener.local_addr()?;
            tracing::info!(store = %cfg.store_url, %addr, pending, roles = %roles.join(","), "roadhex node started");
            // Tests and scripts read the address from this first stdout line.
            crate::say(&format!("listening on http://{addr}"));
            if let Some(line) = &flight_line {
                crate::say(line);
            }
            crate::http_serve::serve(listener, app, cfg.http, shutdown()).await?;
        }
        None => {
            tracing::info!(store = %cfg.store_url, pending, roles = %roles.join(","), "roadhex node started");
            crate::say("running (no HTTP roles)");
            shutdown().await;
        }
    }
    // Let workers finish the capture in hand; an interrupted one is redone after its lease.
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

/// The embedded queue, or NATS JetStream when a `nats://` URL is given.
pub(crate) async fn open_queue(
    lake: &Lake,
    url: Option<&str>,
    name: &str,
) -> anyhow::Result<Arc<dyn WorkQueue>> {
    match url {
        None => Ok(Arc::new(EmbeddedQueue::open(lake.clone(), name).await?)),
        #[cfg(feature = "nats")]
        Some(url) if url.starts_with("nats://") => Ok(Arc::new(
            roadhex_lake::queue_nats::NatsQueue::connect(url, name)
                .await
                .with_context(|| format!("connecting to the queue at {url}"))?,
        )),
        #[cfg(not(feature = "nats"))]
        Some(url) if url.starts_with("nats://") => {
            anyhow::bail!("--queue {url}: this build has no NATS queue (cargo feature `nats`)")
        }
        Some(url) => anyhow::bail!("--queue {url}: use embedded or nats://host:port"),
    }
}

/// Adds a role's routes and their OpenAPI description to the process's app.
fn mount(
    app: &mut Option<axum::Router>,
    doc: &mut utoipa::openapi::OpenApi,
    routes: axum::Router,
    routes_doc: utoipa::openapi::OpenApi,
) {
    doc.merge(routes_doc);
    *app = Some(match app.take() {
        Some(a) => a.merge(routes),
        None => routes,
    });
}

/// Binds the Flight SQL listener now (so a bad address fails startup) and serves it in the background.
#[cfg(feature = "flight-sql")]
async fn start_flight(
    addr: &str,
    engine: roadhex_lake::sql::SqlEngine,
    token: Option<String>,
    workers: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<String> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding Flight SQL on {addr}"))?;
    let bound = listener.local_addr()?;
    workers.push(tokio::spawn(async move {
        if let Err(e) = crate::flight_sql::serve(engine, token, listener, shutdown()).await {
            tracing::error!(error = %e, "Flight SQL server stopped");
        }
    }));
    Ok(format!("flight sql on grpc://{bound}"))
}

#[cfg(not(feature = "flight-sql"))]
async fn start_flight(
    addr: &str,
    _engine: roadhex_lake::sql::SqlEngine,
    _token: Option<String>,
    _workers: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<String> {
    anyhow::bail!("--flight-listen {addr}: this build has no Flight SQL (cargo feature `flight-sql`)")
}

/// Runs `round` every `every` until `stop` changes; `first_now` runs one round at start.
async fn periodic<F, Fut>(
    every: std::time::Duration,
    first_now: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if first_now {
        round().await;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        round().await;
    }
}

/// Merges small table files every `interval_s`; the store-wide lock lets one process work at a time.
async fn compact_loop(
    lake: Lake,
    config: roadhex_lake::compact::CompactionConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_secs(config.interval_s);
    periodic(every, false, stop, || async {
        match roadhex_lake::compact::run(&lake, &config).await {
            Ok(r) if r.partitions + r.files_deleted > 0 => tracing::info!(?r, "compacted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "compaction round failed; retrying next round"),
        }
    })
    .await;
}

/// Rebuilds the sign features from the detections every `every`. Several vision processes may
/// each run it: builds are deterministic, so two over the same detections write the same bytes,
/// and one that read older detections is overwritten by the next round.
async fn features_loop(lake: Lake, every: std::time::Duration, stop: tokio::sync::watch::Receiver<bool>) {
    let cfg = roadhex_vision::signs::cluster::ClusterConfig::default();
    periodic(every, false, stop, || async {
        match roadhex_vision::signs::table::build(&lake, &cfg).await {
            Ok(r) if r.observations > 0 => tracing::info!(?r, "sign features rebuilt"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sign features build failed; retrying next round"),
        }
    })
    .await;
}

/// Purges raw uploads past the retention limit, every ten minutes (and once at start).
async fn purge_loop(
    lake: Lake,
    policy: roadhex_schemas::privacy::PrivacyPolicy,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    periodic(std::time::Duration::from_secs(600), true, stop, || async {
        match roadhex_vision::privacy::retention::purge(&lake, &policy).await {
            Ok(r) if r.captures_purged > 0 => tracing::info!(?r, "raw retention purge"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "raw retention purge failed; retrying next round"),
        }
    })
    .await;
}

/// Deletes unanswered registration challenges once they have expired, every lifetime.
async fn challenge_sweep_loop(ingest: Arc<Ingest>, stop: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(ingest.config().challenge_ttl_s.max(1));
    periodic(every, true, stop, || async {
        match ingest.sweep_challenges().await {
            Ok(n) if n > 0 => tracing::info!(swept = n, "expired registration challenges deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "challenge sweep failed; retrying next round"),
        }
    })
    .await;
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
