//! Node configuration: one serde struct, readable from a TOML file, every field also a flag with an
//! environment variable. Flags and environment win over the file.

use anyhow::Context as _;
use clap::Args;
use roadhex_ingest::IngestConfig;
use roadhex_lake::compact::CompactionConfig;
use roadhex_lake::sql::SqlLimits;
use roadhex_rewards::RewardsConfig;
use roadhex_schemas::gates::GateConfig;
use roadhex_schemas::privacy::PrivacyPolicy;
use roadhex_tiles::TilesConfig;
use roadhex_vision::anonymize::{EnsembleConfig, Models};
use roadhex_vision::quality::QualityConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServeArgs {
    /// TOML file with any of these settings (keys as the long flags, with underscores).
    #[arg(long, env = "ROADHEX_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Local data directory (the embedded default store). Default: ./data
    #[arg(long, env = "ROADHEX_DATA")]
    pub(crate) data: Option<PathBuf>,
    /// Object store URL instead of --data: file:///dir, memory:// or s3://bucket/prefix.
    #[arg(long, env = "ROADHEX_STORE")]
    pub(crate) store: Option<String>,
    /// Address to listen on; port 0 picks a free port (printed on start). Default: 127.0.0.1:8080
    #[arg(long, env = "ROADHEX_LISTEN")]
    pub(crate) listen: Option<String>,
    /// Bearer token for operator routes; unset disables them.
    #[arg(long, env = "ROADHEX_OPERATOR_TOKEN", hide_env_values = true)]
    pub(crate) operator_token: Option<String>,
    /// Requests per second allowed per device.
    #[arg(long = "device-rate", env = "ROADHEX_DEVICE_RATE")]
    pub(crate) device_rate_per_s: Option<f64>,
    /// Request burst allowed per device.
    #[arg(long, env = "ROADHEX_DEVICE_BURST")]
    pub(crate) device_burst: Option<f64>,
    /// Largest signed manifest accepted, in bytes.
    #[arg(long, env = "ROADHEX_MAX_MANIFEST_BYTES")]
    pub(crate) max_manifest_bytes: Option<usize>,
    /// Seconds a client has to send a whole request, headers and body; a slower one is answered
    /// 408 `request_timeout` (slow headers: the connection is closed). Default: 60
    #[arg(long, env = "ROADHEX_REQUEST_TIMEOUT_S")]
    pub(crate) request_timeout_s: Option<u64>,
    /// Connections served at once; more wait in the accept backlog. Default: 1024
    #[arg(long, env = "ROADHEX_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Requests with a body (frames, manifests, SQL) read at once; with the body limits this
    /// bounds what uploads hold in memory. Default: 64
    #[arg(long, env = "ROADHEX_MAX_BODIES_IN_FLIGHT")]
    pub(crate) max_bodies_in_flight: Option<usize>,
    /// Seconds a request with a body waits for one of those slots before it is answered 503
    /// `overloaded` (with Retry-After). Default: 10
    #[arg(long, env = "ROADHEX_BODY_WAIT_S")]
    pub(crate) body_wait_s: Option<u64>,
    /// Registration requests (challenge, register) per second allowed per client address
    /// (IPv6: per /64). Default: 2
    #[arg(long = "address-rate", env = "ROADHEX_ADDRESS_RATE")]
    pub(crate) address_rate_per_s: Option<f64>,
    /// Registration burst allowed per client address. Default: 60
    #[arg(long, env = "ROADHEX_ADDRESS_BURST")]
    pub(crate) address_burst: Option<f64>,
    /// Bearer token for `POST /v1/sql`; unset falls back to the operator token, neither turns it off.
    #[arg(long, env = "ROADHEX_SQL_TOKEN", hide_env_values = true)]
    pub(crate) sql_token: Option<String>,
    /// Address for Arrow Flight SQL (sql role, feature `flight-sql`); port 0 picks one. Unset: off.
    #[arg(long, env = "ROADHEX_FLIGHT_LISTEN")]
    pub(crate) flight_listen: Option<String>,
    /// Work queue: `embedded` (in the store; one process) or `nats://host:port[?ack_wait_s=N]`
    /// (NATS JetStream, cargo feature `nats`; several processes share it). Default: embedded
    #[arg(long = "queue", env = "ROADHEX_QUEUE")]
    pub(crate) queue_url: Option<String>,
    /// Roles this process runs, comma-separated: ingest, vision, sql, rewards, tiles. Default: all.
    #[arg(long, env = "ROADHEX_ROLES", value_delimiter = ',')]
    pub(crate) roles: Option<Vec<Role>>,
    /// Directory with the anonymization models (filled by deploy/models.sh).
    #[arg(long, env = "ROADHEX_MODELS")]
    pub(crate) models: Option<PathBuf>,
    /// Seconds between rebuilds of the sign `features` table (vision role); 0 turns the
    /// rebuilds off (`roadhex features build` still works). Default: 300
    #[arg(long, env = "ROADHEX_FEATURES_EVERY_S")]
    pub(crate) features_every_s: Option<u64>,
    /// Telemetry gates (file only).
    #[arg(skip)]
    pub(crate) gates: Option<GateConfig>,
    /// Frame quality gates (file only).
    #[arg(skip)]
    pub(crate) quality: Option<QualityConfig>,
    /// Anonymization detectors (file only).
    #[arg(skip)]
    pub(crate) anonymizer: Option<EnsembleConfig>,
    /// Limits of the SQL route: memory, spill, timeout, row cap (file only).
    #[arg(skip)]
    pub(crate) sql: Option<SqlLimits>,
    /// Background compaction of small table files (file only).
    #[arg(skip)]
    pub(crate) compaction: Option<CompactionConfig>,
    /// Rewards rules (file only).
    #[arg(skip)]
    pub(crate) rewards: Option<Box<RewardsConfig>>,
    /// Where the web map's npm packages are installed (deploy/web.sh fills it).
    #[arg(long, env = "ROADHEX_WEB_DIR")]
    pub(crate) web_dir: Option<PathBuf>,
    /// Tiles role: cache size, refresh period, query area cap (file only).
    #[arg(skip)]
    pub(crate) tiles: Option<TilesConfig>,
    /// Trip trimming and raw retention (the flags override the file's `[privacy]` table).
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) policy: PolicyArgs,
    #[arg(skip)]
    pub(crate) privacy: Option<PrivacyPolicy>,
}

/// The operator's privacy policy as flags; serve and the privacy commands share them.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct PolicyArgs {
    /// Metres trimmed from each end of a drive for contributors who chose nothing. Default: 200
    #[arg(long, env = "ROADHEX_TRIM_DEFAULT_M")]
    pub(crate) trim_default_m: Option<f64>,
    /// Smallest trim distance a contributor may choose. Default: 100
    #[arg(long, env = "ROADHEX_TRIM_MIN_M")]
    pub(crate) trim_min_m: Option<f64>,
    /// Largest trim distance a contributor may choose. Default: 1000
    #[arg(long, env = "ROADHEX_TRIM_MAX_M")]
    pub(crate) trim_max_m: Option<f64>,
    /// Seconds vision waits after a commit for the drive's next capture. Default: 120
    #[arg(long, env = "ROADHEX_TRIM_SETTLE_S")]
    pub(crate) trim_settle_s: Option<u64>,
    /// Hours after which raw uploads are purged whatever their state. Default: 24
    #[arg(long, env = "ROADHEX_RAW_RETENTION_H")]
    pub(crate) raw_retention_h: Option<u64>,
}

impl PolicyArgs {
    /// The flags over `base` (the file's table or the defaults), validated.
    pub(crate) fn over(&self, base: PrivacyPolicy) -> anyhow::Result<PrivacyPolicy> {
        let p = PrivacyPolicy {
            trim_default_m: self.trim_default_m.unwrap_or(base.trim_default_m),
            trim_min_m: self.trim_min_m.unwrap_or(base.trim_min_m),
            trim_max_m: self.trim_max_m.unwrap_or(base.trim_max_m),
            settle_s: self.trim_settle_s.unwrap_or(base.settle_s),
            raw_retention_h: self.raw_retention_h.unwrap_or(base.raw_retention_h),
        };
        p.validate()?;
        Ok(p)
    }
}

/// A stage this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Ingest,
    Vision,
    Sql,
    Rewards,
    Tiles,
}

/// Settings after merging file, flags and defaults.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) store_url: String,
    pub(crate) queue_url: Option<String>,
    pub(crate) listen: String,
    pub(crate) roles: Vec<Role>,
    pub(crate) models: Models,
    pub(crate) ingest: IngestConfig,
    pub(crate) quality: QualityConfig,
    pub(crate) anonymizer: EnsembleConfig,
    pub(crate) sql: SqlLimits,
    pub(crate) sql_token: Option<String>,
    pub(crate) compaction: CompactionConfig,
    pub(crate) flight_listen: Option<String>,
    pub(crate) rewards: RewardsConfig,
    pub(crate) tiles: TilesConfig,
    pub(crate) privacy: PrivacyPolicy,
    pub(crate) features_every_s: u64,
    pub(crate) http: crate::http_serve::HttpLimits,
}

impl ServeArgs {
    pub(crate) fn resolve(self) -> anyhow::Result<Resolved> {
        let file = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<ServeArgs>(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let store_url = match self.store.or(file.store) {
            Some(url) => url,
            None => {
                let dir = self.data.or(file.data).unwrap_or_else(|| PathBuf::from("./data"));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
                format!("file://{}", dir.display())
            }
        };
        let privacy = self.policy.over(file.privacy.clone().unwrap_or_default())?;
        let defaults = IngestConfig::default();
        let ingest = IngestConfig {
            max_manifest_bytes: self
                .max_manifest_bytes
                .or(file.max_manifest_bytes)
                .unwrap_or(defaults.max_manifest_bytes),
            device_rate_per_s: self
                .device_rate_per_s
                .or(file.device_rate_per_s)
                .unwrap_or(defaults.device_rate_per_s),
            device_burst: self.device_burst.or(file.device_burst).unwrap_or(defaults.device_burst),
            address_rate_per_s: self
                .address_rate_per_s
                .or(file.address_rate_per_s)
                .unwrap_or(defaults.address_rate_per_s),
            address_burst: self.address_burst.or(file.address_burst).unwrap_or(defaults.address_burst),
            operator_token: self.operator_token.or(file.operator_token).filter(|t| !t.is_empty()),
            gates: file.gates.unwrap_or(defaults.gates.clone()),
            privacy: privacy.clone(),
            ..defaults
        };
        let sql_token = self.sql_token.or(file.sql_token).filter(|t| !t.is_empty());
        let sql_token = sql_token.or_else(|| ingest.operator_token.clone());
        let listen = self.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let roles = self
            .roles
            .or(file.roles)
            .unwrap_or_else(|| vec![Role::Ingest, Role::Vision, Role::Sql, Role::Rewards, Role::Tiles]);
        let rewards = file.rewards.map(|r| *r).unwrap_or_default();
        rewards.validate()?;
        let request_timeout_s = self.request_timeout_s.or(file.request_timeout_s).unwrap_or(60);
        anyhow::ensure!(request_timeout_s > 0, "request_timeout_s must be at least 1");
        let http = crate::http_serve::HttpLimits {
            read_timeout: std::time::Duration::from_secs(request_timeout_s),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(1024),
            max_bodies_in_flight: self.max_bodies_in_flight.or(file.max_bodies_in_flight).unwrap_or(64),
            body_wait: std::time::Duration::from_secs(self.body_wait_s.or(file.body_wait_s).unwrap_or(10)),
        };
        anyhow::ensure!(http.max_connections > 0, "max_connections must be at least 1");
        anyhow::ensure!(http.max_bodies_in_flight > 0, "max_bodies_in_flight must be at least 1");
        anyhow::ensure!(
            ingest.address_rate_per_s > 0.0 && ingest.address_burst >= 1.0,
            "address_rate must be above 0 and address_burst at least 1"
        );
        let models = self.models.or(file.models).map_or_else(Models::from_env, Models::new);
        // Coverage freshness in tiles follows the rewards rules unless the file says otherwise.
        let mut tiles = file.tiles.unwrap_or_else(|| TilesConfig {
            refill_days: f64::from(rewards.refill_days),
            ..TilesConfig::default()
        });
        if let Some(dir) = self.web_dir.or(file.web_dir) {
            tiles.web_dir = dir;
        }
        Ok(Resolved {
            store_url,
            queue_url: self.queue_url.or(file.queue_url).filter(|q| !q.is_empty() && q != "embedded"),
            listen,
            roles,
            models,
            ingest,
            quality: file.quality.unwrap_or_default(),
            anonymizer: file.anonymizer.unwrap_or_default(),
            sql: file.sql.unwrap_or_default(),
            compaction: file.compaction.unwrap_or_default(),
            flight_listen: self.flight_listen.or(file.flight_listen).filter(|a| !a.is_empty()),
            sql_token,
            rewards,
            tiles,
            privacy,
            features_every_s: self.features_every_s.or(file.features_every_s).unwrap_or(300),
            http,
        })
    }
}
