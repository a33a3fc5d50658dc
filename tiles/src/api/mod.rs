//! The map consumers' HTTP API: a thin axum adapter over [`Tiles`].

mod error;
mod routes;
mod web;

pub use error::ErrorBody;

use crate::Tiles;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;
use utoipa::OpenApi as _;

/// Query bodies are a polygon and a few fields.
const QUERY_BODY_LIMIT: usize = 256 * 1024;

/// Tiles, TileJSON, imagery, area queries and the web map.
pub fn router(tiles: Arc<Tiles>) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/web/{file}", get(web::asset))
        .route("/tiles/{file}", get(routes::tilejson))
        .route("/tiles/{layer}/{z}/{x}/{y}", get(routes::tile))
        .route("/v1/frames/{file}", get(routes::frame_jpeg))
        .route("/v1/cells/{cell}/frames", get(routes::cell_frames))
        .route("/v1/query/frames", post(routes::query_frames))
        .route("/v1/query/features", post(routes::query_features))
        .layer(DefaultBodyLimit::max(QUERY_BODY_LIMIT))
        .with_state(tiles)
}

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::ApiDoc::openapi()
}
