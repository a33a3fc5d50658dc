//! The companion-app HTTP API: a thin axum adapter over [`Ingest`].

mod error;
mod routes;

pub use error::ErrorBody;

use crate::Ingest;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use std::sync::Arc;
use utoipa::OpenApi as _;

/// Header carrying the device id of a signed manifest.
pub const DEVICE_HEADER: &str = "x-roadhex-device";
/// Header carrying the base64 ed25519 signature over the manifest bytes.
pub const SIGNATURE_HEADER: &str = "x-roadhex-signature";

/// JSON request bodies (registration) are small; manifests and frames stream with their own limits.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// All ingest routes, plus `/healthz` and `/readyz` (the node serves `/openapi.json` for every role).
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/v1/devices/challenge", post(routes::challenge))
        .route("/v1/devices", post(routes::register))
        .route("/v1/devices/{id}", get(routes::device))
        .route("/v1/devices/{id}/revoke", post(routes::revoke))
        .route("/v1/captures", post(routes::open_capture))
        .route("/v1/captures/{id}", get(routes::status))
        .route("/v1/captures/{id}/frames/{sha256}", put(routes::put_frame))
        .route("/v1/captures/{id}/commit", post(routes::commit))
        .route("/v1/zones", post(routes::add_zone).get(routes::list_zones))
        .route("/v1/zones/{id}", delete(routes::delete_zone))
        .route("/v1/contributors/{id}/privacy", get(routes::get_privacy).put(routes::put_privacy))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(ingest)
}

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::ApiDoc::openapi()
}
