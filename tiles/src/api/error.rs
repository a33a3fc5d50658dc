//! Errors as HTTP: one status per variant, decided here and nowhere else.

use crate::error::TilesError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roadhex_lake::LakeError;
use serde::Serialize;
use utoipa::ToSchema;

/// Body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

pub(crate) fn status_of(e: &TilesError) -> StatusCode {
    use TilesError as E;
    match e {
        E::UnknownLayer(_) | E::FrameNotFound(_) => StatusCode::NOT_FOUND,
        E::BadTile { .. } | E::BadCell(_) | E::BadQuery(_) | E::BadCursor(_) => StatusCode::BAD_REQUEST,
        E::AreaTooLarge { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        E::AssetsMissing(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Lake(LakeError::NotFound(_)) => StatusCode::NOT_FOUND,
        E::Lake(_) | E::Encode(_) | E::Task(_) | E::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for TilesError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(ErrorBody { code: self.code().to_owned(), message: self.to_string() })).into_response()
    }
}
