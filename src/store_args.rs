//! `--data DIR`, `--store URL` and `--config FILE` as the offline commands (rewards, privacy) take
//! them: the store a node uses, and the node's config file for its rules.

use anyhow::Context as _;
use clap::Args;
use roadhex_lake::Lake;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Local data directory. Default: ./data
    #[arg(long, env = "ROADHEX_DATA", default_value = "./data")]
    data: PathBuf,
    /// Object store URL instead of --data (file:///dir, s3://bucket/prefix).
    #[arg(long, env = "ROADHEX_STORE")]
    store: Option<String>,
    /// The node's TOML config file: its `[rewards]` / `[privacy]` tables are the rules (defaults without it).
    #[arg(long, env = "ROADHEX_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

impl StoreArgs {
    pub(crate) fn open(&self) -> anyhow::Result<Lake> {
        let url = self.store.clone().unwrap_or_else(|| format!("file://{}", self.data.display()));
        if crate::store_missing(&url) {
            anyhow::bail!("{url} holds no roadhex data (pass --data or --store)");
        }
        Ok(Lake::open(&url)?)
    }
}

/// The table `name` of a node config file, if the file is given and has it.
pub(crate) fn config_table(path: Option<&Path>, name: &str) -> anyhow::Result<Option<toml::Value>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(table.get(name).cloned())
}
