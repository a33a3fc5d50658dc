//! Route handlers: extract, call [`Tiles`], shape the response. No logic lives here.

use super::error::ErrorBody;
use crate::error::{Result, TilesError};
use crate::query::AreaQuery;
use crate::{Layer, TileId, Tiles};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use h3o::CellIndex;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::str::FromStr as _;
use std::sync::Arc;
use utoipa::OpenApi;

type S = State<Arc<Tiles>>;

#[derive(OpenApi)]
#[openapi(
    info(title = "roadhex tiles API", description = "Vector tiles, TileJSON, imagery and area queries."),
    paths(tile, tilejson, frame_jpeg, cell_frames, query_frames, query_features),
    components(schemas(ErrorBody, AreaQuery))
)]
pub(crate) struct ApiDoc;

const MVT_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// Clients revalidate after this (cheap: a 304 on an unchanged ETag).
const MAX_AGE: &str = "public, max-age=30";

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q0 = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name == "gzip" || name == "*") && !q0
        })
    })
}

fn with_headers(mut resp: Response, pairs: &[(header::HeaderName, &str)]) -> Response {
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name.clone(), v);
        }
    }
    resp
}

/// One vector tile (Mapbox Vector Tile 2.1). 204 when the tile is empty.
#[utoipa::path(get, path = "/tiles/{layer}/{z}/{x}/{y}.mvt",
    params(("layer" = String, Path, description = "coverage, sequences, frames or features"),
           ("z" = u8, Path), ("x" = u32, Path), ("y" = u32, Path)),
    responses(
        (status = 200, description = "the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "no data in this tile"),
        (status = 304, description = "unchanged (If-None-Match)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn tile(
    State(tiles): S,
    Path((layer, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let layer = Layer::from_str(&layer)?;
    let num = |s: &str| s.parse::<u32>().ok();
    let (zn, xn, yn) = (num(&z), num(&x), y.strip_suffix(".mvt").and_then(num));
    let bad = || TilesError::BadTile {
        z: zn.unwrap_or(u32::MAX),
        x: xn.unwrap_or(u32::MAX),
        y: yn.unwrap_or(u32::MAX),
        max: crate::grid::MAX_ZOOM,
    };
    let (Some(zn), Some(xn), Some(yn)) = (zn, xn, yn) else { return Err(bad()) };
    let id = u8::try_from(zn).ok().and_then(|z| TileId::new(z, xn, yn)).ok_or_else(bad)?;
    let Some(t) = tiles.tile(layer, id).await? else {
        return Ok(with_headers(StatusCode::NO_CONTENT.into_response(), &[(header::CACHE_CONTROL, MAX_AGE)]));
    };
    let gzip = accepts_gzip(&headers);
    // Each encoding is its own representation, so each gets its own strong ETag.
    let etag = if gzip { format!("{}-gz\"", t.etag.trim_end_matches('"')) } else { t.etag.clone() };
    let common =
        [(header::ETAG, etag.as_str()), (header::CACHE_CONTROL, MAX_AGE), (header::VARY, "Accept-Encoding")];
    if not_modified(&headers, &etag) {
        return Ok(with_headers(StatusCode::NOT_MODIFIED.into_response(), &common));
    }
    let body = if gzip { t.gzip()? } else { t.raw.clone() };
    let mut resp = with_headers((StatusCode::OK, Body::from(body)).into_response(), &common);
    resp = with_headers(resp, &[(header::CONTENT_TYPE, MVT_TYPE)]);
    if gzip {
        resp = with_headers(resp, &[(header::CONTENT_ENCODING, "gzip")]);
    }
    Ok(resp)
}

/// TileJSON 3.0 of a layer (`/tiles/coverage.json`, …).
#[utoipa::path(get, path = "/tiles/{layer}.json",
    params(("layer" = String, Path, description = "coverage, sequences, frames or features")),
    responses((status = 200, description = "TileJSON 3.0.0", body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn tilejson(
    State(tiles): S,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let name = file.strip_suffix(".json").ok_or_else(|| TilesError::UnknownLayer(file.clone()))?;
    let layer = Layer::from_str(name)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    let (minzoom, maxzoom) = layer.zooms();
    let snap = tiles.snapshot();
    let (bounds, center) = match snap.bounds {
        Some((lat0, lon0, lat1, lon1)) => {
            (json!([lon0, lat0, lon1, lat1]), json!([(lon0 + lon1) / 2.0, (lat0 + lat1) / 2.0, 14]))
        }
        None => (json!([-180.0, -85.051_128_78, 180.0, 85.051_128_78]), json!([0.0, 0.0, 1])),
    };
    let fields: serde_json::Map<String, Value> =
        layer.fields().iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    Ok(Json(json!({
        "tilejson": "3.0.0",
        "name": format!("roadhex {}", layer.name()),
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [format!("{proto}://{host}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", layer.name())],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": center,
        "attribution": "roadhex contributors",
        "vector_layers": [{ "id": layer.name(), "fields": fields, "minzoom": minzoom, "maxzoom": maxzoom }],
    })))
}

/// A published (anonymized) frame. Raw uploads are never reachable here.
#[utoipa::path(get, path = "/v1/frames/{id}.jpg", params(("id" = String, Path)),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"),
              (status = 304, description = "unchanged"), (status = 404, body = ErrorBody)))]
pub(crate) async fn frame_jpeg(
    State(tiles): S,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = file.strip_suffix(".jpg").ok_or_else(|| TilesError::FrameNotFound(file.clone()))?;
    let bytes = tiles.frame_jpeg(id).await?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
    let common = [(header::ETAG, etag.as_str()), (header::CACHE_CONTROL, MAX_AGE)];
    if not_modified(&headers, &etag) {
        return Ok(with_headers(StatusCode::NOT_MODIFIED.into_response(), &common));
    }
    let resp = with_headers((StatusCode::OK, Body::from(bytes)).into_response(), &common);
    Ok(with_headers(resp, &[(header::CONTENT_TYPE, "image/jpeg")]))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct CellParams {
    /// Frames to return (default 20, at most 500).
    limit: Option<usize>,
}

/// Published frames in an H3 cell (any resolution), newest first.
#[utoipa::path(get, path = "/v1/cells/{cell}/frames", params(("cell" = String, Path), CellParams),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub(crate) async fn cell_frames(
    State(tiles): S,
    Path(cell): Path<String>,
    Query(p): Query<CellParams>,
) -> Result<Json<Value>> {
    let c = CellIndex::from_str(&cell).map_err(|_| TilesError::BadCell(cell.clone()))?;
    Ok(Json(tiles.cell_frames(c, p.limit.unwrap_or(20).clamp(1, 500))))
}

fn area_query(body: &Bytes) -> Result<AreaQuery> {
    serde_json::from_slice(body).map_err(|e| TilesError::BadQuery(e.to_string()))
}

/// Published frames in a GeoJSON polygon (newest first) or around a point (nearest first).
#[utoipa::path(post, path = "/v1/query/frames", request_body = AreaQuery,
    responses((status = 200, description = "GeoJSON FeatureCollection with next_cursor", body = Object),
              (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn query_frames(State(tiles): S, body: Bytes) -> Result<Json<Value>> {
    let q = area_query(&body)?;
    Ok(Json(crate::query::frames(&tiles.snapshot(), &q, tiles.config().max_query_km2)?))
}

/// Map features in a GeoJSON polygon (latest seen first) or around a point (nearest first).
#[utoipa::path(post, path = "/v1/query/features", request_body = AreaQuery,
    responses((status = 200, description = "GeoJSON FeatureCollection with next_cursor", body = Object),
              (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn query_features(State(tiles): S, body: Bytes) -> Result<Json<Value>> {
    let q = area_query(&body)?;
    Ok(Json(crate::query::features(&tiles.snapshot(), &q, tiles.config().max_query_km2)?))
}
