//! Route handlers: extract, call [`Ingest`], shape the response. No logic lives here.

use super::error::ErrorBody;
use super::{DEVICE_HEADER, SIGNATURE_HEADER};
use crate::error::{IngestError, Result};
use crate::privacy::{PrivacyRequest, PrivacyView, RequestAuth, ZoneRequest};
use crate::registry::{Challenge, DeviceRecord, Registration};
use crate::{FrameStored, Ingest, Opened};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::http::{Method, Uri};
use axum::response::IntoResponse;
use futures::StreamExt as _;
use roadhex_schemas::openapi::OPERATOR_TOKEN;
use roadhex_schemas::privacy::{Zone, ZoneShape};
use roadhex_schemas::signing::TIME_HEADER;
use roadhex_schemas::state::{CaptureStage, CaptureStatus, FrameStage, FrameStatus, Reason};
use roadhex_schemas::{Camera, CaptureManifest, FixType, FrameEntry, GnssSample, ImuSample, Mount};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use utoipa::OpenApi;

type S = State<Arc<Ingest>>;
/// The caller's address, where the server was started with connection info.
type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: Peer) -> Option<IpAddr> {
    peer.map(|axum::Extension(ConnectInfo(addr))| addr.ip())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roadhex ingest API",
        description = "Device registration and signed, resumable capture uploads."
    ),
    paths(
        healthz,
        readyz,
        challenge,
        register,
        device,
        revoke,
        open_capture,
        put_frame,
        commit,
        status,
        add_zone,
        list_zones,
        delete_zone,
        get_privacy,
        put_privacy
    ),
    components(schemas(
        Zone,
        ZoneShape,
        ZoneRequest,
        PrivacyRequest,
        PrivacyView,
        ErrorBody,
        Challenge,
        Registration,
        DeviceRecord,
        Opened,
        FrameStored,
        CaptureStatus,
        CaptureStage,
        FrameStatus,
        FrameStage,
        Reason,
        CaptureManifest,
        Camera,
        Mount,
        GnssSample,
        FixType,
        ImuSample,
        FrameEntry
    )),
    modifiers(&OPERATOR_TOKEN)
)]
pub(crate) struct ApiDoc;

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).ok_or(IngestError::MissingHeader(name))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the object store answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "store unreachable", body = ErrorBody)))]
pub(crate) async fn readyz(State(ingest): S) -> Result<&'static str> {
    ingest.ready().await?;
    Ok("ready")
}

/// A single-use nonce a device signs to prove it holds its key.
#[utoipa::path(post, path = "/v1/devices/challenge", responses((status = 200, body = Challenge, links(
    ("register" = (operation_id = "register", request_body = json!({"nonce": "$response.body#/nonce"}))))),
    (status = 429, body = ErrorBody, description = "too many registration requests from this address")))]
pub(crate) async fn challenge(State(ingest): S, peer: Peer) -> Result<Json<Challenge>> {
    Ok(Json(ingest.challenge(peer_ip(peer)).await?))
}

/// Registers a device key to a contributor (201 new, 200 already registered).
#[utoipa::path(post, path = "/v1/devices", request_body = Registration, responses(
    (status = 201, body = DeviceRecord, links(
        ("upload" = (operation_id = "open_capture", parameters(("header.x-roadhex-device" = "$response.body#/device_id")))),
        ("record" = (operation_id = "device", parameters(("id" = "$response.body#/device_id")))),
        ("revoke" = (operation_id = "revoke", parameters(("id" = "$response.body#/device_id")))))),
    (status = 200, body = DeviceRecord),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 410, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn register(State(ingest): S, peer: Peer, body: Bytes) -> Result<impl IntoResponse> {
    let req: Registration =
        serde_json::from_slice(&body).map_err(|e| IngestError::BadRequest(e.to_string()))?;
    let (record, created) = ingest.register(&req, peer_ip(peer)).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(record)))
}

/// A device's public record.
#[utoipa::path(get, path = "/v1/devices/{id}", params(("id" = String, Path, description = "device id", pattern = "^[0-9a-f]{32}$")),
    responses((status = 200, body = DeviceRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(crate) async fn device(State(ingest): S, Path(id): Path<String>) -> Result<Json<DeviceRecord>> {
    Ok(Json(ingest.device(&id).await?))
}

/// Revokes a device key (operator token required).
#[utoipa::path(post, path = "/v1/devices/{id}/revoke", params(("id" = String, Path, description = "device id", pattern = "^[0-9a-f]{32}$")),
    security(("operator_token" = [])),
    responses((status = 200, body = DeviceRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn revoke(
    State(ingest): S,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<DeviceRecord>> {
    Ok(Json(ingest.revoke(&id, bearer(&headers)).await?))
}

/// Phase 1: post the signed manifest bytes; the answer lists the frames still needed.
/// Posting the same manifest again resumes the same capture.
#[utoipa::path(post, path = "/v1/captures",
    request_body(content = CaptureManifest, content_type = "application/json", description = "the manifest; the signature covers its bytes exactly as sent"),
    params(
        ("x-roadhex-device" = String, Header, description = "device id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = String, Header, description = "base64 ed25519 signature over the body")),
    responses((status = 201, body = Opened, links(
            ("upload_frame" = (operation_id = "put_frame", parameters(
                ("id" = "$response.body#/capture_id"), ("sha256" = "$response.body#/missing/0")))),
            ("commit" = (operation_id = "commit", parameters(("id" = "$response.body#/capture_id")))),
            ("status" = (operation_id = "status", parameters(("id" = "$response.body#/capture_id")))))),
        (status = 200, body = Opened),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub(crate) async fn open_capture(
    State(ingest): S,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse> {
    let device = header(&headers, DEVICE_HEADER)?;
    let signature = header(&headers, SIGNATURE_HEADER)?;
    let limit = ingest.config().max_manifest_bytes;
    // A client waiting on `100-continue` with a declared length over the limit is refused before
    // it sends the body. Others are read up to the limit: answering first would close the
    // connection under a client still sending, which then never sees the refusal.
    let expects =
        headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(size) = declared.filter(|&n| expects && n > limit) {
        return Err(IngestError::ManifestTooLarge { size, limit });
    }
    let bytes = read_limited(body, limit).await?;
    let opened = ingest.open_capture(device, signature, bytes).await?;
    Ok((if opened.created { StatusCode::CREATED } else { StatusCode::OK }, Json(opened)))
}

/// Phase 2: upload one frame by its SHA-256 (idempotent; 2xx once durable).
#[utoipa::path(put, path = "/v1/captures/{id}/frames/{sha256}",
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    params(("id" = String, Path, description = "capture id", pattern = "^[0-9a-f]{32}$"), ("sha256" = String, Path, description = "frame hash", pattern = "^[0-9a-f]{64}$")),
    responses((status = 201, body = FrameStored, links(
            ("commit" = (operation_id = "commit", parameters(("id" = "$request.path.id")))),
            ("status" = (operation_id = "status", parameters(("id" = "$request.path.id")))))),
        (status = 200, body = FrameStored),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn put_frame(
    State(ingest): S,
    Path((id, sha256)): Path<(String, String)>,
    body: Body,
) -> Result<impl IntoResponse> {
    let stored = ingest.put_frame(&id, &sha256, body.into_data_stream()).await?;
    if stored.created {
        roadhex_lake::metrics::count(
            "roadhex_frames_uploaded_total",
            "Frames stored (first upload).",
            &[],
            1.0,
        );
    }
    Ok((if stored.created { StatusCode::CREATED } else { StatusCode::OK }, Json(stored)))
}

/// Phase 3: every needed frame is uploaded; queue the capture for processing.
#[utoipa::path(post, path = "/v1/captures/{id}/commit", params(("id" = String, Path, description = "capture id", pattern = "^[0-9a-f]{32}$")),
    responses((status = 202, body = CaptureStatus, links(
            ("status" = (operation_id = "status", parameters(("id" = "$response.body#/capture_id")))))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn commit(State(ingest): S, Path(id): Path<String>) -> Result<impl IntoResponse> {
    Ok((StatusCode::ACCEPTED, Json(ingest.commit(&id).await?)))
}

/// A capture's state, reasons and per-frame states in manifest order.
#[utoipa::path(get, path = "/v1/captures/{id}", params(("id" = String, Path, description = "capture id", pattern = "^[0-9a-f]{32}$")),
    responses((status = 200, body = CaptureStatus), (status = 404, body = ErrorBody)))]
pub(crate) async fn status(State(ingest): S, Path(id): Path<String>) -> Result<Json<CaptureStatus>> {
    Ok(Json(ingest.status(&id).await?))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// The credentials of a privacy request, from its headers.
fn auth<'a>(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8]) -> RequestAuth<'a> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RequestAuth {
        method: method.as_str(),
        path: uri.path(),
        body,
        device: h(DEVICE_HEADER),
        signature: h(SIGNATURE_HEADER),
        time: h(TIME_HEADER),
        bearer: bearer(headers),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| IngestError::BadRequest(e.to_string()))
}

/// Registers a privacy zone (circle or polygon). Signed by a device: the contributor's own zone.
/// With the operator token: a network-wide zone. Frames inside are never published.
#[utoipa::path(post, path = "/v1/zones", request_body = ZoneRequest,
    params(
        ("x-roadhex-device" = Option<String>, Header, description = "device id (contributor zone)", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = Option<String>, Header, description = "base64 signature over the request message"),
        ("x-roadhex-time" = Option<String>, Header, description = "unix seconds", pattern = "^[0-9]{1,12}$")),
    security((), ("operator_token" = [])),
    responses((status = 201, body = Zone, links(
            ("delete" = (operation_id = "delete_zone", parameters(("id" = "$response.body#/zone_id")))))),
        (status = 200, body = Zone), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn add_zone(
    State(ingest): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse> {
    let caller = ingest.caller(&auth(&method, &uri, &headers, &body)).await?;
    let (zone, created) = ingest.add_zone(&caller, &json_body(&body)?).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(zone)))
}

/// The zones that apply to the signing device's contributor (network-wide ones included), or
/// every zone for the operator.
#[utoipa::path(get, path = "/v1/zones",
    params(
        ("x-roadhex-device" = Option<String>, Header, description = "device id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = Option<String>, Header, description = "base64 signature over the request message"),
        ("x-roadhex-time" = Option<String>, Header, description = "unix seconds", pattern = "^[0-9]{1,12}$")),
    security((), ("operator_token" = [])),
    responses((status = 200, body = Vec<Zone>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn list_zones(
    State(ingest): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Vec<Zone>>> {
    let caller = ingest.caller(&auth(&method, &uri, &headers, &[])).await?;
    Ok(Json(ingest.zones(&caller).await?))
}

/// Deletes a zone its owner registered (the operator may delete any).
#[utoipa::path(delete, path = "/v1/zones/{id}", params(("id" = String, Path, description = "zone id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-device" = Option<String>, Header, description = "device id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = Option<String>, Header, description = "base64 signature over the request message"),
        ("x-roadhex-time" = Option<String>, Header, description = "unix seconds", pattern = "^[0-9]{1,12}$")),
    security((), ("operator_token" = [])),
    responses((status = 200, body = Zone), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_zone(
    State(ingest): S,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Zone>> {
    let caller = ingest.caller(&auth(&method, &uri, &headers, &[])).await?;
    Ok(Json(ingest.delete_zone(&caller, &id).await?))
}

/// A contributor's trip-trimming distance and the range they may choose in.
#[utoipa::path(get, path = "/v1/contributors/{id}/privacy", params(("id" = String, Path, description = "contributor id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("x-roadhex-device" = Option<String>, Header, description = "device id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = Option<String>, Header, description = "base64 signature over the request message"),
        ("x-roadhex-time" = Option<String>, Header, description = "unix seconds", pattern = "^[0-9]{1,12}$")),
    security((), ("operator_token" = [])),
    responses((status = 200, body = PrivacyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn get_privacy(
    State(ingest): S,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<PrivacyView>> {
    let caller = ingest.caller(&auth(&method, &uri, &headers, &[])).await?;
    Ok(Json(ingest.privacy(&caller, &id).await?))
}

/// Sets how many metres are trimmed from the start and end of each of the contributor's drives.
#[utoipa::path(put, path = "/v1/contributors/{id}/privacy", request_body = PrivacyRequest,
    params(("id" = String, Path, description = "contributor id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("x-roadhex-device" = Option<String>, Header, description = "device id", pattern = "^[0-9a-f]{32}$"),
        ("x-roadhex-signature" = Option<String>, Header, description = "base64 signature over the request message"),
        ("x-roadhex-time" = Option<String>, Header, description = "unix seconds", pattern = "^[0-9]{1,12}$")),
    security((), ("operator_token" = [])),
    responses((status = 200, body = PrivacyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn put_privacy(
    State(ingest): S,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PrivacyView>> {
    let caller = ingest.caller(&auth(&method, &uri, &headers, &body)).await?;
    Ok(Json(ingest.set_privacy(&caller, &id, &json_body(&body)?).await?))
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| IngestError::BadRequest(format!("reading the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(IngestError::ManifestTooLarge { size: buf.len() + chunk.len(), limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}
