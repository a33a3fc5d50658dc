//! `GET /metrics` (Prometheus text format) and the middleware that times every request by route.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roadhex_lake::metrics::{count, gauge, observe, render};
use roadhex_lake::{Lake, WorkQueue};
use std::sync::Arc;

/// What the scrape reads besides the registry: the queue's depth and the tile cache's counters.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) queue: Arc<dyn WorkQueue>,
    pub(crate) queue_name: String,
    pub(crate) tiles: Option<Arc<roadhex_tiles::Tiles>>,
}

pub(crate) fn router(sources: Sources) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state(sources)
}

/// `GET /healthz` (the process answers) and `GET /readyz` (the store answers) for processes whose
/// roles do not include ingest, which serves its own (documented in its OpenAPI): every process
/// with an HTTP listener answers the same probes (deploy/k8s, deploy/compose.yaml).
pub(crate) fn probes(lake: Lake) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(lake)
}

async fn readyz(State(lake): State<Lake>) -> Response {
    match roadhex_ingest::store_ready(&lake).await {
        Ok(()) => "ready".into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"code": "storage_error", "message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn scrape(State(s): State<Sources>) -> Response {
    match s.queue.items().await {
        Ok(items) => gauge(
            "roadhex_queue_depth",
            "Captures waiting in the work queue (claimed ones included).",
            &[("queue", &s.queue_name)],
            items.len() as f64,
        ),
        Err(e) => tracing::warn!(error = %e, "queue depth for /metrics"),
    }
    if let Some(t) = &s.tiles {
        let (hits, misses) = t.cache_stats();
        gauge(
            "roadhex_tile_cache_hits",
            "Tile requests answered from the cache since start.",
            &[],
            hits as f64,
        );
        gauge("roadhex_tile_cache_misses", "Tile requests rendered since start.", &[], misses as f64);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response()
}

/// Counts and times each request under its route template (never the raw path: ids would make
/// one series per capture).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let labels = [("route", route.as_str()), ("method", method.as_str())];
    observe(
        "roadhex_http_request_seconds",
        "HTTP request latency by route.",
        &labels,
        started.elapsed().as_secs_f64(),
    );
    let status = resp.status().as_u16().to_string();
    let labels = [("route", route.as_str()), ("method", method.as_str()), ("status", status.as_str())];
    count("roadhex_http_requests_total", "HTTP requests by route and status.", &labels, 1.0);
    resp
}
