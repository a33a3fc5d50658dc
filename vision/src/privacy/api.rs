//! HTTP adapter of the redaction workflow: anyone files and follows a request; the operator lists,
//! approves and rejects (bearer token).

use super::redact::{self, Redaction, RedactionRequest, Step};
use crate::error::VisionError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roadhex_lake::Lake;
use roadhex_schemas::openapi::OPERATOR_TOKEN;
use roadhex_schemas::signing::token_matches;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(Debug)]
struct AppState {
    lake: Lake,
    operator_token: Option<String>,
}

type S = State<Arc<AppState>>;

/// Error body: `{code, message}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedactionError {
    pub code: String,
    pub message: String,
}

/// `POST /v1/redactions/{id}/approve|reject` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub note: Option<String>,
}

fn status_of(e: &VisionError) -> StatusCode {
    use VisionError as E;
    match e {
        E::FrameNotFound(_) | E::RedactionNotFound(_) => StatusCode::NOT_FOUND,
        E::RedactionInvalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::RedactionDecided { .. } => StatusCode::CONFLICT,
        E::Unauthorized => StatusCode::UNAUTHORIZED,
        E::OperatorDisabled => StatusCode::FORBIDDEN,
        E::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::OpenCv(_)
        | E::Anonymize(_)
        | E::RawMissing(_)
        | E::Manifest { .. }
        | E::Arrow(_)
        | E::Join(_)
        | E::SignData { .. }
        | E::SignModel(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

struct ApiError(VisionError);

impl From<VisionError> for ApiError {
    fn from(e: VisionError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "redaction request failed");
        }
        (status, Json(RedactionError { code: self.0.code().to_owned(), message: self.0.to_string() }))
            .into_response()
    }
}

type Result<T> = std::result::Result<T, ApiError>;

fn operator(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let expected = state.operator_token.as_deref().ok_or(VisionError::OperatorDisabled)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token_matches(given, expected) { Ok(()) } else { Err(VisionError::Unauthorized.into()) }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| VisionError::RedactionInvalid(e.to_string()).into())
}

/// The operator's note of an approve/reject call (an empty body is no note).
fn decision(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Option<String>> {
    operator(state, headers)?;
    let d: Decision = if body.is_empty() { Decision::default() } else { parse(body)? };
    Ok(d.note)
}

#[derive(OpenApi)]
#[openapi(
    paths(file_request, show, list, approve, reject),
    components(schemas(RedactionRequest, Redaction, Step, Decision, RedactionError)),
    modifiers(&OPERATOR_TOKEN)
)]
struct ApiDoc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router(lake: Lake, operator_token: Option<String>) -> Router {
    Router::new()
        .route("/v1/redactions", post(file_request).get(list))
        .route("/v1/redactions/{id}", get(show))
        .route("/v1/redactions/{id}/approve", post(approve))
        .route("/v1/redactions/{id}/reject", post(reject))
        .with_state(Arc::new(AppState { lake, operator_token }))
}

/// Asks for boxes of a published frame to be blurred, or the whole frame withdrawn. Open to anyone;
/// an operator reviews every request.
#[utoipa::path(post, path = "/v1/redactions", request_body = RedactionRequest, responses(
    (status = 201, body = Redaction, links(
        ("show" = (operation_id = "show", parameters(("id" = "$response.body#/redaction_id")))),
        ("approve" = (operation_id = "approve", parameters(("id" = "$response.body#/redaction_id")))),
        ("reject" = (operation_id = "reject", parameters(("id" = "$response.body#/redaction_id")))))), (status = 404, body = RedactionError), (status = 422, body = RedactionError)))]
async fn file_request(State(s): S, body: axum::body::Bytes) -> Result<impl IntoResponse> {
    let r = redact::request(&s.lake, parse(&body)?).await?;
    Ok((StatusCode::CREATED, Json(r.public())))
}

/// A request's current step (the contact is not shown).
#[utoipa::path(get, path = "/v1/redactions/{id}", params(("id" = String, Path, description = "redaction id")),
    responses((status = 200, body = Redaction), (status = 404, body = RedactionError)))]
async fn show(State(s): S, Path(id): Path<String>) -> Result<Json<Redaction>> {
    Ok(Json(redact::get(&s.lake, &id).await?.public()))
}

/// Undecided requests, oldest first (operator token).
#[utoipa::path(get, path = "/v1/redactions", security(("operator_token" = [])),
    responses((status = 200, body = Vec<Redaction>), (status = 401, body = RedactionError), (status = 403, body = RedactionError)))]
async fn list(State(s): S, headers: HeaderMap) -> Result<Json<Vec<Redaction>>> {
    operator(&s, &headers)?;
    Ok(Json(redact::list(&s.lake, false).await?))
}

/// Approves a request and applies it: re-blurs the boxes into a new version of the frame, or
/// withdraws it (operator token).
#[utoipa::path(post, path = "/v1/redactions/{id}/approve", request_body = Decision, security(("operator_token" = [])),
    params(("id" = String, Path, description = "redaction id")),
    responses((status = 200, body = Redaction), (status = 401, body = RedactionError), (status = 404, body = RedactionError),
        (status = 409, body = RedactionError), (status = 422, body = RedactionError)))]
async fn approve(
    State(s): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Redaction>> {
    let note = decision(&s, &headers, &body)?;
    Ok(Json(redact::approve(&s.lake, &id, "operator", note).await?))
}

/// Rejects a request (operator token).
#[utoipa::path(post, path = "/v1/redactions/{id}/reject", request_body = Decision, security(("operator_token" = [])),
    params(("id" = String, Path, description = "redaction id")),
    responses((status = 200, body = Redaction), (status = 401, body = RedactionError), (status = 404, body = RedactionError),
        (status = 409, body = RedactionError), (status = 422, body = RedactionError)))]
async fn reject(
    State(s): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Redaction>> {
    let note = decision(&s, &headers, &body)?;
    Ok(Json(redact::reject(&s.lake, &id, "operator", note).await?))
}
