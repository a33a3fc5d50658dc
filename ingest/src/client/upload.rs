//! `roadhex upload`: resumable upload of built captures. Asks the server what it lacks, sends
//! those frames in parallel with retries, commits, and reports one result per capture.

use super::build::{frame_path, read_capture_dir};
use super::http::{Api, Body};
use crate::error::{IngestError, Result};
use crate::{FrameStored, Opened};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use roadhex_schemas::state::{CaptureStage, CaptureStatus};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub server: String,
    /// Frames in flight at once per capture.
    pub parallel: usize,
    /// Attempts per request.
    pub attempts: u32,
    pub progress: bool,
}

/// Outcome of one capture, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct UploadResult {
    pub dir: PathBuf,
    pub capture_id: Option<String>,
    pub state: Option<CaptureStage>,
    /// Frames sent in this run.
    pub uploaded: usize,
    /// Frames the server already had (a resumed upload).
    pub already_present: usize,
    /// Frames the server's telemetry gates dropped.
    pub dropped: usize,
    pub bytes: u64,
    pub error: Option<ResultError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultError {
    pub code: String,
    pub message: String,
}

/// Uploads each capture directory in turn; never stops at the first failure.
pub async fn upload(opts: &UploadOptions, dirs: &[PathBuf]) -> Vec<UploadResult> {
    let mut out = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let mut result = UploadResult {
            dir: dir.clone(),
            capture_id: None,
            state: None,
            uploaded: 0,
            already_present: 0,
            dropped: 0,
            bytes: 0,
            error: None,
        };
        if let Err(e) = upload_one(opts, dir, &mut result).await {
            let code = match &e {
                IngestError::Server { code, .. } if !code.is_empty() => code.clone(),
                other => other.code().to_owned(),
            };
            result.error = Some(ResultError { code, message: e.to_string() });
        }
        out.push(result);
    }
    out
}

async fn upload_one(opts: &UploadOptions, dir: &Path, result: &mut UploadResult) -> Result<()> {
    let api = Api::new(&opts.server, opts.attempts)?;
    let (bytes, signature, manifest) = read_capture_dir(dir)?;
    let (_, opened): (_, Opened) = api
        .call(
            Method::POST,
            "/v1/captures",
            Body::Manifest { bytes: bytes.into(), device: &manifest.device_id, signature: &signature },
        )
        .await?;
    let id = opened.capture_id.clone();
    result.capture_id = Some(id.clone());
    result.state = Some(opened.state);
    result.dropped = opened.dropped.len();
    let needed = manifest.frames.len() - opened.dropped.len();
    result.already_present = needed.saturating_sub(opened.missing.len());
    if opened.state == CaptureStage::Receiving {
        send_frames(opts, &api, dir, &id, &opened.missing, result).await?;
        let (_, status): (_, CaptureStatus) =
            api.call(Method::POST, &format!("/v1/captures/{id}/commit"), Body::Empty).await?;
        result.state = Some(status.state);
    }
    Ok(())
}

async fn send_frames(
    opts: &UploadOptions,
    api: &Api,
    dir: &Path,
    id: &str,
    missing: &[String],
    result: &mut UploadResult,
) -> Result<()> {
    let bar = if opts.progress { ProgressBar::new(missing.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} frames {binary_bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("capture {}", &id[..8.min(id.len())]));
    let sent: Vec<(bool, u64)> = futures::stream::iter(missing.iter().cloned())
        .map(|sha| {
            let bar = bar.clone();
            async move {
                let path = frame_path(dir, &sha);
                let body = Bytes::from(tokio::fs::read(&path).await.map_err(|e| IngestError::io(&path, e))?);
                let size = body.len() as u64;
                let (_, stored): (_, FrameStored) = api
                    .call(Method::PUT, &format!("/v1/captures/{id}/frames/{sha}"), Body::Jpeg(body))
                    .await?;
                bar.inc(1);
                Ok::<_, IngestError>((stored.created, size))
            }
        })
        .buffer_unordered(opts.parallel.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    for (created, size) in sent {
        if created {
            result.uploaded += 1;
            result.bytes += size;
        } else {
            result.already_present += 1;
        }
    }
    Ok(())
}
