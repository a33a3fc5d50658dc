//! Every way ingest refuses a request. Each variant has a stable code; the HTTP edge
//! (`api::error`) maps each one to a status exhaustively.

use roadhex_lake::LakeError;
use roadhex_schemas::ManifestError;
use roadhex_schemas::gates::GateReason;
use roadhex_schemas::jpeg::JpegError;
use roadhex_schemas::signing::SignatureError;
use thiserror::Error;

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("device {0} is not registered")]
    UnknownDevice(String),
    #[error("device {0} was revoked; register a new key")]
    DeviceRevoked(String),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("manifest names device {in_manifest} but was sent as device {in_header}")]
    DeviceMismatch { in_manifest: String, in_header: String },
    #[error("manifest is {size} bytes; the limit is {limit}")]
    ManifestTooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("sequence {sequence} of device {device} was already used by another capture")]
    SequenceReplayed { device: String, sequence: u64 },
    #[error("sequence {sequence} is not above {last}, the last sequence device {device} used")]
    SequenceNotIncreasing { device: String, sequence: u64, last: u64 },
    #[error("every frame failed the telemetry gates (first: frame {index}: {reason})")]
    NoValidFrames { index: usize, reason: GateReason },
    #[error("capture {0} does not exist")]
    CaptureNotFound(String),
    #[error("frame {0} is not listed in this capture's manifest")]
    FrameNotInManifest(String),
    #[error("frame {index} was dropped by the telemetry gates ({reason}); it is not needed")]
    FrameDropped { index: usize, reason: GateReason },
    #[error("capture {0} is already committed; it takes no more frames")]
    CaptureCommitted(String),
    #[error("frame body is larger than {limit} bytes")]
    FrameTooLarge { limit: u64 },
    #[error("frame body hashes to {actual}, not {expected}")]
    FrameHashMismatch { expected: String, actual: String },
    #[error("frame is {actual} bytes but the manifest says {declared}")]
    FrameSizeMismatch { declared: u64, actual: u64 },
    #[error("frame is {size} bytes; frames must be {min}..={max} bytes")]
    FrameSizeOutOfRange { size: u64, min: u64, max: u64 },
    #[error("{0}")]
    Jpeg(#[from] JpegError),
    #[error("frame is {width}x{height} but the manifest's camera is {camera_width}x{camera_height}")]
    FrameDimensionsMismatch { width: u32, height: u32, camera_width: u32, camera_height: u32 },
    #[error("{} frames are still missing; upload them, then commit", missing.len())]
    FramesMissing { missing: Vec<String> },
    #[error("registration challenge is unknown or already used; request a new one")]
    ChallengeUnknown,
    #[error("registration challenge expired; request a new one")]
    ChallengeExpired,
    #[error("contributor id must be 1-64 characters of [A-Za-z0-9_.:-]")]
    ContributorInvalid,
    #[error("device {device} is already registered to another contributor")]
    DeviceAlreadyRegistered { device: String },
    #[error("device id {0:?} is not 32 lowercase hex digits")]
    DeviceIdInvalid(String),
    #[error("this operation needs the operator token (Authorization: Bearer …)")]
    Unauthorized,
    #[error("operator operations are disabled: the server has no operator token configured")]
    OperatorDisabled,
    /// `client` is "device …" or "address …".
    #[error("too many requests from {client}; retry after {retry_after_s} s")]
    RateLimited { client: String, retry_after_s: u64 },
    #[error("request body is invalid: {0}")]
    BadRequest(String),
    #[error("{0}")]
    Zone(#[from] roadhex_schemas::privacy::ZoneError),
    #[error(
        "signed request time is {skew_s} s from the server clock; the limit is 300 s (check the device clock)"
    )]
    RequestExpired { skew_s: i64 },
    #[error("zone {0} does not exist")]
    ZoneNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("a contributor may register at most {limit} zones; delete one first")]
    TooManyZones { limit: usize },
    #[error("storage failed: {0}")]
    Storage(#[from] LakeError),
    // Client-side failures (the reference client shares this crate's error type).
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Format(#[from] crate::formats::FormatError),
    #[error("cannot build a capture: {0}")]
    Build(String),
    #[error("cannot reach the server: {0}")]
    Http(String),
    #[error("server refused ({status}): {code}: {message}")]
    Server { status: u16, code: String, message: String },
}

impl IngestError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }
}

impl IngestError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "header_missing",
            Self::UnknownDevice(_) => "device_unknown",
            Self::DeviceRevoked(_) => "device_revoked",
            Self::Signature(e) => e.code(),
            Self::DeviceMismatch { .. } => "device_mismatch",
            Self::ManifestTooLarge { .. } => "manifest_too_large",
            Self::Manifest(e) => e.code(),
            Self::SequenceReplayed { .. } => "sequence_replayed",
            Self::SequenceNotIncreasing { .. } => "sequence_not_increasing",
            Self::NoValidFrames { .. } => "no_valid_frames",
            Self::CaptureNotFound(_) => "capture_not_found",
            Self::FrameNotInManifest(_) => "frame_not_in_manifest",
            Self::FrameDropped { .. } => "frame_dropped",
            Self::CaptureCommitted(_) => "capture_committed",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::FrameHashMismatch { .. } => "frame_hash_mismatch",
            Self::FrameSizeMismatch { .. } => "frame_size_mismatch",
            Self::FrameSizeOutOfRange { .. } => "frame_size_out_of_range",
            Self::Jpeg(e) => e.code(),
            Self::FrameDimensionsMismatch { .. } => "frame_dimensions_mismatch",
            Self::FramesMissing { .. } => "frames_missing",
            Self::ChallengeUnknown => "challenge_unknown",
            Self::ChallengeExpired => "challenge_expired",
            Self::ContributorInvalid => "contributor_invalid",
            Self::DeviceAlreadyRegistered { .. } => "device_already_registered",
            Self::DeviceIdInvalid(_) => "device_id_invalid",
            Self::Unauthorized => "unauthorized",
            Self::OperatorDisabled => "operator_disabled",
            Self::RateLimited { .. } => "rate_limited",
            Self::BadRequest(_) => "bad_request",
            Self::Zone(e) => e.code(),
            Self::RequestExpired { .. } => "request_expired",
            Self::ZoneNotFound(_) => "zone_not_found",
            Self::Forbidden(_) => "forbidden",
            Self::TooManyZones { .. } => "too_many_zones",
            Self::Storage(_) => "storage_error",
            Self::Io { .. } => "io_error",
            Self::Format(e) => e.code(),
            Self::Build(_) => "build_failed",
            Self::Http(_) => "server_unreachable",
            Self::Server { .. } => "server_refused",
        }
    }
}
