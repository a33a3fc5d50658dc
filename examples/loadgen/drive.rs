//! One simulated driver: every `frames` seconds of driving closes a capture, which the dashcam
//! then uploads over its one link (signed manifest, each frame, commit) and checks on (status).

use super::common::fleet::{self, Capture};
use anyhow::{Result, anyhow};
use bytes::Bytes;
use roadhex_schemas::signing::DeviceKeyFile;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The routes a driver calls, in table order.
pub(crate) const ROUTES: [&str; 4] = [
    "POST /v1/captures",
    "PUT  /v1/captures/{id}/frames/{sha256}",
    "POST /v1/captures/{id}/commit",
    "GET  /v1/captures/{id}",
];
const MANIFEST: usize = 0;
const FRAME: usize = 1;
const COMMIT: usize = 2;
const STATUS: usize = 3;

/// Latencies and outcomes of one route.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// Every answered request, microseconds.
    pub(crate) micros: Vec<u32>,
    /// Answers by status code that were not 2xx, and `io` for requests that got no answer.
    pub(crate) errors: BTreeMap<String, usize>,
}

/// What one driver did.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) routes: [Route; 4],
    /// Capture id → sha256 of every frame the server acknowledged (2xx).
    pub(crate) acked: BTreeMap<String, Vec<String>>,
    /// Captures whose commit was acknowledged (202).
    pub(crate) committed: Vec<String>,
    pub(crate) bytes_acked: u64,
}

impl Log {
    pub(crate) fn merge(&mut self, other: Log) {
        for (mine, theirs) in self.routes.iter_mut().zip(other.routes) {
            mine.micros.extend(theirs.micros);
            for (code, n) in theirs.errors {
                *mine.errors.entry(code).or_default() += n;
            }
        }
        self.acked.extend(other.acked);
        self.committed.extend(other.committed);
        self.bytes_acked += other.bytes_acked;
    }
}

/// A driver's fixed part: its key, its server, where it drives, which frames its camera sees.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) index: usize,
    pub(crate) key: DeviceKeyFile,
    pub(crate) url: String,
    pub(crate) frames_per_capture: usize,
    /// Each driver starts its first capture at a different moment of its cycle.
    pub(crate) offset: Duration,
}

/// Attempts of one request before the driver gives up on it (a 429 waits its Retry-After).
const ATTEMPTS: u32 = 8;

impl Driver {
    /// Drives until `until`, then finishes the capture in hand.
    pub(crate) async fn run(self, http: reqwest::Client, bee: &[(String, Bytes)], until: Instant) -> Log {
        let mut log = Log::default();
        let cycle = Duration::from_secs(self.frames_per_capture as u64);
        let mut due = Instant::now() + self.offset;
        let mut pos = (37.70 + self.index as f64 * 0.001, -122.45);
        // Drives far apart in time, so no two captures of a device overlap.
        let mut t_ms = 1_777_630_800_000 + self.index as i64 * 1_000_000_000;
        let mut previous: Option<String> = None;
        for seq in 1.. {
            tokio::time::sleep_until(due.into()).await;
            if Instant::now() >= until {
                break;
            }
            due += cycle;
            let first = (self.index * 7 + seq * self.frames_per_capture) % bee.len();
            let frames: Vec<_> =
                (0..self.frames_per_capture).map(|i| bee[(first + i) % bee.len()].clone()).collect();
            let c = match fleet::capture(&self.key, seq as u64, t_ms, pos, frames) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("driver {}: {e:#}", self.index);
                    break;
                }
            };
            (pos, t_ms) = (c.end, c.end_ms + 10_000);
            // The app checks on the previous capture while it uploads the next one.
            if let Some(id) = previous.take() {
                let _ = self.call(&mut log, STATUS, || http.get(self.status_url(&id))).await;
            }
            self.upload(&http, &mut log, &c).await;
            previous = Some(c.id);
        }
        log
    }

    fn status_url(&self, id: &str) -> String {
        format!("{}/v1/captures/{id}", self.url)
    }

    async fn upload(&self, http: &reqwest::Client, log: &mut Log, c: &Capture) {
        let manifest = || {
            http.post(format!("{}/v1/captures", self.url))
                .header("x-roadhex-device", &c.device)
                .header("x-roadhex-signature", &c.signature)
                .body(c.manifest.clone())
        };
        if self.call(log, MANIFEST, manifest).await.is_err() {
            return;
        }
        for (sha, body) in &c.frames {
            let put =
                || http.put(format!("{}/v1/captures/{}/frames/{sha}", self.url, c.id)).body(body.clone());
            if self.call(log, FRAME, put).await.is_ok() {
                log.acked.entry(c.id.clone()).or_default().push(sha.clone());
                log.bytes_acked += body.len() as u64;
            }
        }
        let commit = || http.post(format!("{}/v1/captures/{}/commit", self.url, c.id));
        if self.call(log, COMMIT, commit).await.is_ok() {
            log.committed.push(c.id.clone());
        }
        let _ = self.call(log, STATUS, || http.get(self.status_url(&c.id))).await;
    }

    /// Sends until a 2xx, recording every answer; 429 and 5xx are retried after `Retry-After`
    /// (or a second), a lost connection after a second; any other refusal ends the request.
    async fn call(
        &self,
        log: &mut Log,
        route: usize,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let t = Instant::now();
            let wait = match build().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    // The request ends when the answer has been read.
                    let body = resp.bytes().await.unwrap_or_default();
                    let r = &mut log.routes[route];
                    r.micros.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if status.is_success() {
                        return Ok(());
                    }
                    // Keyed by status and the refusal's code, e.g. `503 overloaded`.
                    let code = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_owned));
                    let key = match code {
                        Some(code) => format!("{} {code}", status.as_u16()),
                        None => status.as_u16().to_string(),
                    };
                    *r.errors.entry(key).or_default() += 1;
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(anyhow!("HTTP {status}"));
                    }
                    Duration::from_secs(retry_after)
                }
                Err(_) => {
                    *log.routes[route].errors.entry("io".into()).or_default() += 1;
                    Duration::from_secs(1)
                }
            };
            tokio::time::sleep(wait).await;
        }
        Err(anyhow!("gave up after {ATTEMPTS} attempts"))
    }
}
