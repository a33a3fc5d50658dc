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
use std::net::IpAddr;
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
    /// Registration is open to anyone, so it is limited per client address instead.
    address_limiter: RateLimiter,
    cache: Mutex<HashMap<CaptureId, Arc<Loaded>>>,
}

impl Ingest {
    pub fn new(lake: Lake, queue: Arc<dyn WorkQueue>, config: IngestConfig) -> Self {
        let limiter = RateLimiter::new(config.device_rate_per_s, config.device_burst);
        let address_limiter = RateLimiter::new(config.address_rate_per_s, config.address_burst);
        Self { lake, queue, config, limiter, address_limiter, cache: Mutex::new(HashMap::new()) }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// `client` is the caller's address where the transport knows it.
    pub async fn challenge(&self, client: Option<IpAddr>) -> Result<registry::Challenge> {
        self.limit_address(client)?;
        registry::new_challenge(&self.lake, self.config.challenge_ttl_s).await
    }

    pub async fn register(
        &self,
        req: &registry::Registration,
        client: Option<IpAddr>,
    ) -> Result<(registry::DeviceRecord, bool)> {
        self.limit_address(client)?;
        registry::register(&self.lake, req).await
    }

    /// Deletes registration challenges older than their lifetime, so unanswered ones do not pile
    /// up in the store. Returns how many went.
    pub async fn sweep_challenges(&self) -> Result<usize> {
        registry::sweep_challenges(&self.lake, self.config.challenge_ttl_s).await
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
        self.limiter.check(device).map_err(|retry_after_s| IngestError::RateLimited {
            client: format!("device {device}"),
            retry_after_s,
        })
    }

    fn limit_address(&self, client: Option<IpAddr>) -> Result<()> {
        let Some(key) = client.map(ratelimit::address_key) else { return Ok(()) };
        self.address_limiter.check(&key).map_err(|retry_after_s| IngestError::RateLimited {
            client: format!("address {key}"),
            retry_after_s,
        })
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
