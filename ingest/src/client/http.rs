//! HTTP plumbing of the client: one retry policy for every call.

use crate::api::{DEVICE_HEADER, SIGNATURE_HEADER};
use crate::error::{IngestError, Result};
use crate::registry::{Challenge, DeviceRecord, Registration};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use roadhex_schemas::signing::{DeviceKeyFile, registration_message};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A server and the retry policy used against it.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    /// Attempts per request (1 = no retry).
    pub(crate) attempts: u32,
}

/// What a request carries.
pub(crate) enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// Signed manifest bytes with the device id and signature headers.
    Manifest {
        bytes: Bytes,
        device: &'a str,
        signature: &'a str,
    },
    Jpeg(Bytes),
    /// A JSON body (possibly empty) signed as an API request by a device.
    Signed {
        bytes: Bytes,
        device: &'a str,
        signature: &'a str,
        unix_s: i64,
    },
    /// A JSON body (possibly empty) with the operator token.
    Operator {
        bytes: Bytes,
        token: &'a str,
    },
}

impl Api {
    pub(crate) fn new(server: &str, attempts: u32) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| IngestError::Http(e.to_string()))?;
        Ok(Self { http, base: server.trim_end_matches('/').to_owned(), attempts: attempts.max(1) })
    }

    /// Sends with retries on network errors, 5xx and 429 (honouring Retry-After), backing off
    /// exponentially. Other refusals return at once as [`IngestError::Server`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<(StatusCode, T)> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let mut req = self.http.request(method.clone(), &url);
            req = match &body {
                Body::Empty => req,
                Body::Json(v) => req.json(v),
                Body::Manifest { bytes, device, signature } => req
                    .header(DEVICE_HEADER, *device)
                    .header(SIGNATURE_HEADER, *signature)
                    .header("content-type", "application/json")
                    .body(bytes.clone()),
                Body::Jpeg(bytes) => req.header("content-type", "image/jpeg").body(bytes.clone()),
                Body::Signed { bytes, device, signature, unix_s } => req
                    .header(DEVICE_HEADER, *device)
                    .header(SIGNATURE_HEADER, *signature)
                    .header(roadhex_schemas::signing::TIME_HEADER, unix_s.to_string())
                    .header("content-type", "application/json")
                    .body(bytes.clone()),
                Body::Operator { bytes, token } => {
                    req.bearer_auth(token).header("content-type", "application/json").body(bytes.clone())
                }
            };
            let outcome = req.send().await;
            let retry_after = match &outcome {
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error() =>
                {
                    resp.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)))
                }
                Ok(_) => {
                    let resp = outcome.map_err(|e| IngestError::Http(e.to_string()))?;
                    return decode(resp).await;
                }
                Err(_) => None,
            };
            if attempt >= self.attempts {
                return match outcome {
                    Ok(resp) => decode(resp).await,
                    Err(e) => Err(IngestError::Http(format!("{url}: {e}"))),
                };
            }
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
            delay = (delay * 2).min(Duration::from_secs(8));
            attempt += 1;
        }
    }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<(StatusCode, T)> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| IngestError::Http(e.to_string()))?;
    if status.is_success() {
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| IngestError::Http(format!("unexpected response body ({status}): {e}")))?;
        return Ok((status, v));
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let text = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let message = if body.get("message").is_some() {
        text("message")
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Err(IngestError::Server { status: status.as_u16(), code: text("code"), message })
}

/// Registers the key with the server: fetch a challenge, sign it, post the registration.
pub async fn register(server: &str, key: &DeviceKeyFile, contributor_id: &str) -> Result<DeviceRecord> {
    let api = Api::new(server, 4)?;
    let (_, challenge): (_, Challenge) = api.call(Method::POST, "/v1/devices/challenge", Body::Empty).await?;
    let signature = key
        .sign(&registration_message(&challenge.nonce, contributor_id))
        .map_err(|e| IngestError::Build(e.to_string()))?;
    let req = Registration {
        public_key: key.public_key.clone(),
        contributor_id: contributor_id.to_owned(),
        nonce: challenge.nonce,
        signature,
    };
    let body = serde_json::to_value(&req).map_err(|e| IngestError::Build(e.to_string()))?;
    let (_, record) = api.call(Method::POST, "/v1/devices", Body::Json(&body)).await?;
    Ok(record)
}
