//! Ingest settings. The binary fills this from its config file, flags and environment.

use roadhex_schemas::gates::GateConfig;
use roadhex_schemas::limits::MAX_MANIFEST_BYTES;
use roadhex_schemas::privacy::PrivacyPolicy;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest signed manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Sustained requests per second allowed per device.
    pub device_rate_per_s: f64,
    /// Burst of requests allowed per device (a whole capture's frames fit in it).
    pub device_burst: f64,
    /// Registration requests (challenge, register) per second allowed per client address.
    pub address_rate_per_s: f64,
    /// Burst of registration requests allowed per client address.
    pub address_burst: f64,
    /// Bearer token for operator routes (revocation). None disables them.
    pub operator_token: Option<String>,
    /// Seconds a registration challenge stays valid.
    pub challenge_ttl_s: u64,
    /// Name of the queue committed captures go to.
    pub queue: String,
    pub gates: GateConfig,
    /// Trim range contributors choose in, and raw retention.
    pub privacy: PrivacyPolicy,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            device_rate_per_s: 50.0,
            device_burst: 300.0,
            address_rate_per_s: 2.0,
            address_burst: 60.0,
            operator_token: None,
            challenge_ttl_s: 300,
            queue: "vision".to_owned(),
            gates: GateConfig::default(),
            privacy: PrivacyPolicy::default(),
        }
    }
}
