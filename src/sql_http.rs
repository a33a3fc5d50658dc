//! `POST /v1/sql`: analysts' read-only SQL over HTTP, a thin adapter over [`SqlEngine`].
//!
//! The body is the query as text, or JSON `{"query": "..."}`. `Accept` picks the result format
//! (JSON array by default, NDJSON, CSV, Arrow IPC stream, Parquet). A result cut at the row cap
//! says so in `x-roadhex-truncated: true`. Errors are `{code, message}` with the query position.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use roadhex_lake::LakeError;
use roadhex_lake::sql::{Format, SqlEngine};
use roadhex_schemas::openapi::SQL_TOKEN;
use serde::Deserialize;
use std::sync::Arc;

/// Longest query text accepted.
const MAX_QUERY_BYTES: usize = 256 * 1024;

struct SqlState {
    engine: SqlEngine,
    /// Bearer token the route requires; `None` turns the route off.
    token: Option<String>,
}

pub(crate) fn router(engine: SqlEngine, token: Option<String>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql))
        .layer(DefaultBodyLimit::max(MAX_QUERY_BYTES))
        .with_state(Arc::new(SqlState { engine, token }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(sql), components(schemas(QueryBody)), modifiers(&SQL_TOKEN))]
struct SqlDoc;

/// The OpenAPI description of the SQL route.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    <SqlDoc as utoipa::OpenApi>::openapi()
}

/// Read-only SQL over every table; the body is the query (or `{"query": "..."}`).
#[utoipa::path(post, path = "/v1/sql", tag = "sql",
    request_body(description = "SQL text, or JSON {\"query\": \"...\"}", content(
        (String = "application/sql"), (String = "text/plain"), (QueryBody = "application/json"))),
    security(("sql_token" = [])),
    responses(
        (status = 200, description = "Rows in the format `Accept` asks for (JSON array by default); `x-roadhex-rows`, `x-roadhex-truncated`"),
        (status = 400, description = "sql_invalid (details.line/column) or bad_request", body = roadhex_ingest::api::ErrorBody),
        (status = 401, description = "unauthorized", body = roadhex_ingest::api::ErrorBody),
        (status = 403, description = "sql_refused or sql_disabled", body = roadhex_ingest::api::ErrorBody),
        (status = 406, description = "not_acceptable", body = roadhex_ingest::api::ErrorBody),
        (status = 408, description = "sql_timeout", body = roadhex_ingest::api::ErrorBody),
        (status = 422, description = "sql_resources_exhausted", body = roadhex_ingest::api::ErrorBody),
    ))]
async fn sql(State(state): State<Arc<SqlState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return error(
            StatusCode::FORBIDDEN,
            "sql_disabled",
            "SQL over HTTP is off: start the node with --sql-token (or --operator-token)".into(),
            None,
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !roadhex_schemas::signing::token_matches(given, expected) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <sql token>".into(),
            None,
        );
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(format) = Format::from_accept(accept) else {
        let msg = "Accept one of application/json, application/x-ndjson, text/csv, text/plain, \
                   application/vnd.apache.arrow.stream, application/vnd.apache.parquet";
        return error(StatusCode::NOT_ACCEPTABLE, "not_acceptable", msg.into(), None);
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let query = if is_json {
        match serde_json::from_slice::<QueryBody>(&body) {
            Ok(b) => b.query,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}"), None),
        }
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(q) => q,
            Err(_) => {
                return error(StatusCode::BAD_REQUEST, "bad_request", "query is not UTF-8".into(), None);
            }
        }
    };
    if query.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "bad_request", "empty query".into(), None);
    }
    let result = match state.engine.query(&query).await {
        Ok(r) => r,
        Err(e) => return lake_error(e),
    };
    // Encoding can be heavy (Parquet); keep it off the async workers.
    let truncated = result.truncated;
    let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
    let bytes = tokio::task::spawn_blocking(move || {
        roadhex_lake::sql::render(&result.schema, &result.batches, format)
    })
    .await;
    match bytes {
        Ok(Ok(bytes)) => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
            h.insert("x-roadhex-rows", HeaderValue::from(rows));
            h.insert(
                "x-roadhex-truncated",
                HeaderValue::from_static(if truncated { "true" } else { "false" }),
            );
            resp
        }
        Ok(Err(e)) => lake_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("encoding task: {e}"), None),
    }
}

/// Every lake error as a status and `{code, message}`; SQL errors carry `details.line/column`.
fn lake_error(e: LakeError) -> Response {
    use LakeError as E;
    let status = match &e {
        E::SqlInvalid { .. } => StatusCode::BAD_REQUEST,
        E::SqlRefused(_) => StatusCode::FORBIDDEN,
        E::SqlTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        E::SqlResources(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::AlreadyExists(_) => StatusCode::CONFLICT,
        E::Cluster(_) => StatusCode::BAD_GATEWAY,
        E::Store(_)
        | E::BadUrl { .. }
        | E::Json { .. }
        | E::Parquet(_)
        | E::Arrow(_)
        | E::LeaseLost(_)
        | E::LockBusy
        | E::Queue(_)
        | E::DataFusion(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let details = match &e {
        E::SqlInvalid { line: Some(line), column, .. } => {
            Some(serde_json::json!({ "line": line, "column": column }))
        }
        _ => None,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "sql request failed");
    }
    error(status, e.code(), e.to_string(), details)
}

fn error(status: StatusCode, code: &str, message: String, details: Option<serde_json::Value>) -> Response {
    let body = roadhex_ingest::api::ErrorBody { code: code.to_owned(), message, details };
    (status, axum::Json(body)).into_response()
}
