//! The web map: our page and script (compiled in) and MapLibre GL JS (from the npm install that
//! `make setup` made in the configured web directory).

use crate::Tiles;
use crate::error::{Result, TilesError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

const INDEX: &str = include_str!("../../web/index.html");
const APP: &str = include_str!("../../web/app.js");

/// Files served from the npm package, by the name the page asks for.
fn npm_file(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "maplibre-gl.js" => Some(("node_modules/maplibre-gl/dist/maplibre-gl.js", "text/javascript")),
        "maplibre-gl.css" => Some(("node_modules/maplibre-gl/dist/maplibre-gl.css", "text/css")),
        _ => None,
    }
}

pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub(crate) async fn asset(State(tiles): State<Arc<Tiles>>, Path(file): Path<String>) -> Result<Response> {
    if file == "app.js" {
        return Ok(([(header::CONTENT_TYPE, "text/javascript")], APP).into_response());
    }
    let Some((rel, mime)) = npm_file(&file) else {
        return Ok((StatusCode::NOT_FOUND, "no such asset").into_response());
    };
    let path = tiles.config().web_dir.join(rel);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((
            [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=3600")],
            Body::from(bytes),
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(TilesError::AssetsMissing(tiles.config().web_dir.display().to_string()))
        }
        Err(e) => Err(e.into()),
    }
}
