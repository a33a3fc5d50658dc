//! Why a manifest is refused. Every variant has a stable machine-readable code.

use thiserror::Error;

/// A manifest the server (or the client building it) must refuse.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format version 1: {0}")]
    Malformed(String),
    #[error("manifest version {0} is not supported (this server reads version 1)")]
    UnsupportedVersion(u32),
    #[error("manifest lists no frames")]
    NoFrames,
    #[error("capture has {n} frames; at most {max} are allowed per capture")]
    TooManyFrames { n: usize, max: usize },
    #[error("manifest carries no telemetry samples")]
    NoTelemetry,
    #[error("manifest carries {n} telemetry samples; at most {max} are allowed")]
    TooManySamples { n: usize, max: usize },
    #[error("telemetry sample {index} has an invalid value: {what}")]
    InvalidSample { index: usize, what: String },
    #[error("telemetry time goes backwards or repeats at sample {index} ({t_ms} ms after {prev_ms} ms)")]
    TelemetryNotMonotonic { index: usize, t_ms: i64, prev_ms: i64 },
    #[error("frame times must increase: frame {index} is at {t_ms} ms, not after {prev_ms} ms")]
    FramesNotMonotonic { index: usize, t_ms: i64, prev_ms: i64 },
    #[error("frame {index} at {t_ms} ms lies outside the telemetry span {start_ms}..={end_ms} ms")]
    FrameOutsideTelemetry { index: usize, t_ms: i64, start_ms: i64, end_ms: i64 },
    #[error("frame {index} has an invalid sha256 (want 64 lowercase hex digits)")]
    InvalidFrameHash { index: usize },
    #[error("frame {index} repeats the image of frame {first}")]
    DuplicateFrame { index: usize, first: usize },
    #[error("frame {index} declares {size} bytes; frames must be {min}..={max} bytes")]
    FrameSizeOutOfRange { index: usize, size: u64, min: u64, max: u64 },
    #[error("camera is invalid: {0}")]
    InvalidCamera(String),
}

impl ManifestError {
    /// Stable code for API responses and client logic.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "manifest_malformed",
            Self::UnsupportedVersion(_) => "manifest_unsupported_version",
            Self::NoFrames => "capture_empty",
            Self::TooManyFrames { .. } => "capture_too_long",
            Self::NoTelemetry => "telemetry_missing",
            Self::TooManySamples { .. } => "telemetry_too_long",
            Self::InvalidSample { .. } => "telemetry_invalid",
            Self::TelemetryNotMonotonic { .. } => "telemetry_not_monotonic",
            Self::FramesNotMonotonic { .. } => "frame_times_not_monotonic",
            Self::FrameOutsideTelemetry { .. } => "frame_time_outside_telemetry",
            Self::InvalidFrameHash { .. } => "frame_hash_invalid",
            Self::DuplicateFrame { .. } => "frame_duplicate",
            Self::FrameSizeOutOfRange { .. } => "frame_size_out_of_range",
            Self::InvalidCamera(_) => "camera_invalid",
        }
    }
}
