//! Ingest: the companion-app HTTP API (device registry, signed resumable uploads), telemetry
//! importers, and the reference client that drivers' tools build on.
//!
//! The service logic ([`Ingest`]) knows nothing of HTTP; [`api`] adapts it to axum.

pub mod api;
mod captures;
pub mod client;
pub mod config;
pub mod error;
pub mod formats;
pub mod privacy;
mod ratelimit;
pub mod registry;
mod tables;

pub use captures::{FrameStored, Opened};
pub use config::IngestConfig;
pub use error::{IngestError, Result};
pub use roadhex_schemas::state;

use captures::Loaded;
use ratelimit::RateLimiter;
use roadhex_lake::{Lake, WorkQueue};
use roadhex_schemas::{CaptureId, DeviceId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Captures kept parsed in memory; beyond this the cache starts over (it is only a cache).
const CACHE_CAPACITY: usize = 4_096;

/// Readiness of any process (`GET /readyz`): the store answers a HEAD of a key nothing writes
/// (not found is an answer). Not a prefix such as `registry/devices`: some S3-compatible servers
/// (s3s-fs) fail a HEAD on a key that has objects under it.
pub async fn store_ready(lake: &Lake) -> Result<()> {
    lake.exists(&object_store::path::Path::from("readyz")).await?;
    Ok(())
}

/// The ingest service: one per process, shared by all requests.
#[derive(Debug)]
pub struct Ingest {
    lake: Lake,
    queue: Arc<dyn WorkQueue>,
    config: IngestConfig,
    limiter: RateLimiter,
    cache: Mutex<HashMap<CaptureId, Arc<Loaded>>>,
}

impl Ingest {
    pub fn new(lake: Lake, queue: Arc<dyn WorkQueue>, config: IngestConfig) -> Self {
        let limiter = RateLimiter::new(config.device_rate_per_s, config.device_burst);
        Self { lake, queue, config, limiter, cache: Mutex::new(HashMap::new()) }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub async fn challenge(&self) -> Result<registry::Challenge> {
        registry::new_challenge(&self.lake, self.config.challenge_ttl_s).await
    }

    pub async fn register(&self, req: &registry::Registration) -> Result<(registry::DeviceRecord, bool)> {
        registry::register(&self.lake, req).await
    }

    pub async fn device(&self, id: &str) -> Result<registry::DeviceRecord> {
        registry::get(&self.lake, &registry::parse_device_id(id)?).await
    }

    /// Revokes a device; `token` must equal the configured operator token.
    pub async fn revoke(&self, id: &str, token: Option<&str>) -> Result<registry::DeviceRecord> {
        let expected = self.config.operator_token.as_deref().ok_or(IngestError::OperatorDisabled)?;
        if !roadhex_schemas::signing::token_matches(token, expected) {
            return Err(IngestError::Unauthorized);
        }
        registry::revoke(&self.lake, &registry::parse_device_id(id)?).await
    }

    /// Readiness: the store answers.
    pub async fn ready(&self) -> Result<()> {
        store_ready(&self.lake).await
    }

    fn rate_limit(&self, device: &str) -> Result<()> {
        self.limiter
            .check(device)
            .map_err(|retry_after_s| IngestError::RateLimited { device: device.to_owned(), retry_after_s })
    }

    fn cache_get(&self, id: &CaptureId) -> Option<Arc<Loaded>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    fn cache_put(&self, loaded: Arc<Loaded>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(loaded.id.clone(), loaded);
    }
}

/// Device ids appear in a few public helpers; re-export the parser for the CLI.
pub fn parse_device_id(id: &str) -> Result<DeviceId> {
    registry::parse_device_id(id)
}
