//! The HTTP edge of [`IngestError`]: an exhaustive status mapping and a JSON body
//! `{code, message[, details]}`.

use crate::error::IngestError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roadhex_schemas::ManifestError;
use serde::Serialize;
use utoipa::ToSchema;

/// Body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Extra data for some codes (`frames_missing`: `{"missing": [sha256…]}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

pub(crate) fn status_of(e: &IngestError) -> StatusCode {
    use IngestError as E;
    match e {
        E::MissingHeader(_) | E::BadRequest(_) | E::ContributorInvalid | E::DeviceIdInvalid(_) => {
            StatusCode::BAD_REQUEST
        }
        E::Manifest(ManifestError::Malformed(_)) => StatusCode::BAD_REQUEST,
        E::Manifest(_) | E::NoValidFrames { .. } | E::DeviceMismatch { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        E::UnknownDevice(_) | E::Signature(_) | E::Unauthorized | E::RequestExpired { .. } => {
            StatusCode::UNAUTHORIZED
        }
        E::DeviceRevoked(_) | E::OperatorDisabled | E::Forbidden(_) => StatusCode::FORBIDDEN,
        E::CaptureNotFound(_) | E::FrameNotInManifest(_) | E::ZoneNotFound(_) => StatusCode::NOT_FOUND,
        E::Zone(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::TooManyZones { .. } => StatusCode::CONFLICT,
        E::SequenceReplayed { .. }
        | E::SequenceNotIncreasing { .. }
        | E::FrameDropped { .. }
        | E::CaptureCommitted(_)
        | E::FramesMissing { .. }
        | E::DeviceAlreadyRegistered { .. } => StatusCode::CONFLICT,
        E::ChallengeUnknown | E::ChallengeExpired => StatusCode::GONE,
        E::ManifestTooLarge { .. } | E::FrameTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::FrameHashMismatch { .. }
        | E::FrameSizeMismatch { .. }
        | E::FrameSizeOutOfRange { .. }
        | E::Jpeg(_)
        | E::FrameDimensionsMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        // Client-side errors never come out of a handler; if one did, it is our bug.
        E::Io { .. } | E::Format(_) | E::Build(_) | E::Http(_) | E::Server { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        roadhex_lake::metrics::count(
            "roadhex_rejections_total",
            "Requests refused, by error code.",
            &[("code", self.code())],
            1.0,
        );
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let details = match &self {
            IngestError::FramesMissing { missing } => Some(serde_json::json!({ "missing": missing })),
            _ => None,
        };
        let retry = match &self {
            IngestError::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        let body = ErrorBody { code: self.code().to_owned(), message: self.to_string(), details };
        let mut resp = (status, Json(body)).into_response();
        if let Some(s) = retry
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
