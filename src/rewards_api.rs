//! `GET /v1/contributors/{id}/rewards[?epoch=…]`: a thin axum adapter over `roadhex_rewards::statement`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use roadhex_lake::Lake;
use roadhex_rewards::RewardsError;
use serde::Deserialize;

pub(crate) fn router(lake: Lake) -> Router {
    Router::new().route("/v1/contributors/{id}/rewards", get(statement)).with_state(lake)
}

#[derive(Debug, Deserialize)]
struct Params {
    epoch: Option<String>,
}

fn status_of(e: &RewardsError) -> StatusCode {
    use RewardsError as E;
    match e {
        E::ContributorInvalid(_) | E::EpochInvalid(_) => StatusCode::BAD_REQUEST,
        E::EpochNotRun(_) => StatusCode::NOT_FOUND,
        E::EpochOpen { .. } | E::NotDrained { .. } => StatusCode::CONFLICT,
        E::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Sql(_) | E::Arrow(_) | E::Schema { .. } | E::Config(_) | E::LedgerCorrupt(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(statement))]
struct RewardsDoc;

/// The OpenAPI description of the rewards route.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    <RewardsDoc as utoipa::OpenApi>::openapi()
}

/// Per-epoch statements of a contributor with Merkle proofs against each epoch's root.
#[utoipa::path(get, path = "/v1/contributors/{id}/rewards", tag = "rewards",
    params(
        ("id" = String, Path, description = "Contributor id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("epoch" = Option<String>, Query, description = "One epoch (YYYY-Www, or YYYY-MM-DD+Nd for other epoch lengths); all run epochs when absent",
            pattern = r"^[0-9]{4}-(W[0-9]{2}|[0-9]{2}-[0-9]{2}\+[0-9]+d)$"),
    ),
    responses(
        (status = 200, description = "Statements: amount, points, credits, flags, Merkle proof"),
        (status = 400, description = "contributor or epoch invalid", body = roadhex_ingest::api::ErrorBody),
        (status = 404, description = "epoch not run yet", body = roadhex_ingest::api::ErrorBody),
        (status = 409, description = "epoch still open", body = roadhex_ingest::api::ErrorBody),
    ))]
async fn statement(State(lake): State<Lake>, Path(id): Path<String>, Query(p): Query<Params>) -> Response {
    match roadhex_rewards::statement(&lake, &id, p.epoch.as_deref()).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => {
            let status = status_of(&e);
            if status.is_server_error() {
                tracing::error!(error = %e, "rewards statement failed");
            }
            (status, Json(serde_json::json!({ "code": e.code(), "message": e.to_string() }))).into_response()
        }
    }
}
