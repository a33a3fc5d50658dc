//! Privacy from the driver's side: zones and the trim distance, managed with a device key (or the
//! operator token), and the zone check `capture build` applies before anything leaves the car.

use super::http::{Api, Body};
use crate::error::{IngestError, Result};
use crate::privacy::{PrivacyRequest, PrivacyView, ZoneRequest};
use bytes::Bytes;
use reqwest::Method;
use roadhex_schemas::privacy::Zone;
use roadhex_schemas::signing::{DeviceKeyFile, request_message};
use std::path::Path;

/// Who signs a privacy request.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Device(&'a DeviceKeyFile),
    Operator(&'a str),
}

async fn call<T: serde::de::DeserializeOwned>(
    server: &str,
    cred: Credential<'_>,
    method: Method,
    path: &str,
    body: &[u8],
) -> Result<T> {
    let api = Api::new(server, 4)?;
    let bytes = Bytes::copy_from_slice(body);
    let (_, out) = match cred {
        Credential::Operator(token) => api.call(method, path, Body::Operator { bytes, token }).await?,
        Credential::Device(key) => {
            let unix_s = chrono::Utc::now().timestamp();
            let signature = key
                .sign(&request_message(method.as_str(), path, unix_s, body))
                .map_err(|e| IngestError::Build(e.to_string()))?;
            let device = key.device_id.to_string();
            api.call(method, path, Body::Signed { bytes, device: &device, signature: &signature, unix_s })
                .await?
        }
    };
    Ok(out)
}

fn json(v: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| IngestError::Build(e.to_string()))
}

pub async fn add_zone(server: &str, cred: Credential<'_>, req: &ZoneRequest) -> Result<Zone> {
    call(server, cred, Method::POST, "/v1/zones", &json(req)?).await
}

pub async fn list_zones(server: &str, cred: Credential<'_>) -> Result<Vec<Zone>> {
    call(server, cred, Method::GET, "/v1/zones", &[]).await
}

pub async fn delete_zone(server: &str, cred: Credential<'_>, zone_id: &str) -> Result<Zone> {
    if !zone_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IngestError::BadRequest(format!("zone id {zone_id:?} is not hex")));
    }
    call(server, cred, Method::DELETE, &format!("/v1/zones/{zone_id}"), &[]).await
}

/// The contributor path segment, checked so it cannot change the path.
fn contributor_path(contributor: &str) -> Result<String> {
    if contributor.is_empty()
        || !contributor.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err(IngestError::ContributorInvalid);
    }
    Ok(format!("/v1/contributors/{contributor}/privacy"))
}

pub async fn privacy(server: &str, cred: Credential<'_>, contributor: &str) -> Result<PrivacyView> {
    call(server, cred, Method::GET, &contributor_path(contributor)?, &[]).await
}

pub async fn set_trim(
    server: &str,
    cred: Credential<'_>,
    contributor: &str,
    trim_m: f64,
) -> Result<PrivacyView> {
    call(server, cred, Method::PUT, &contributor_path(contributor)?, &json(&PrivacyRequest { trim_m })?).await
}

/// Reads a zones file: the JSON array `GET /v1/zones` (or `roadhex zones list --json`) returns.
pub fn read_zones(path: &Path) -> Result<Vec<Zone>> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::io(path, e))?;
    let zones: Vec<Zone> = serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::Build(format!("{}: not a zones list: {e}", path.display())))?;
    for z in &zones {
        z.shape
            .validate()
            .map_err(|e| IngestError::Build(format!("{}: zone {}: {e}", path.display(), z.zone_id)))?;
    }
    Ok(zones)
}
