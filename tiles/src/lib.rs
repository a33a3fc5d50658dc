//! Serving the map: Mapbox Vector Tiles and TileJSON for the `coverage`, `sequences`, `frames` and
//! `features` layers, published imagery, area queries over frames and features, and the web map.
//!
//! The stage meets the others only through the lake's tables: [`Tiles`] keeps one [`Snapshot`] of
//! them in memory, checks the table listings every few seconds, and swaps in a new snapshot when
//! they change. Tiles are rendered on demand off the async executor and kept in a bounded cache
//! keyed by layer, z/x/y and the snapshot's version, so a new snapshot never serves stale tiles.

pub mod api;
pub mod error;
pub mod grid;
pub mod query;
pub mod render;
pub mod snapshot;

pub use error::{Result, TilesError};
pub use grid::TileId;
pub use render::Layer;
pub use snapshot::Snapshot;

use bytes::Bytes;
use h3o::Resolution;
use roadhex_lake::Lake;
use roadhex_schemas::tables::Table;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Settings of the tiles role (`[tiles]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TilesConfig {
    /// Bytes of encoded tiles kept in memory (raw and gzip together).
    pub cache_bytes: u64,
    /// How often the table listings are checked for new data, seconds.
    pub refresh_s: u64,
    /// How often freshness is recomputed even when no data arrived, seconds.
    pub freshness_step_s: u64,
    /// Days a cell takes to refill to freshness 1 (the rewards rules' refill period).
    pub refill_days: f64,
    /// Largest area a frames/features query may cover, km².
    pub max_query_km2: f64,
    /// Where `make setup` installed the web map's npm packages (`node_modules` inside).
    pub web_dir: PathBuf,
}

impl Default for TilesConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            cache_bytes: 256 << 20,
            refresh_s: 5,
            freshness_step_s: 600,
            refill_days: 7.0,
            max_query_km2: 5.0,
            web_dir: std::env::var_os("ROADHEX_WEB_DIR")
                .map_or_else(|| home.join(".cache/roadhex/web"), PathBuf::from),
        }
    }
}

/// A rendered tile under one strong ETag (of the raw bytes); gzip is made on first demand.
#[derive(Debug)]
pub struct EncodedTile {
    pub raw: Bytes,
    gzip: std::sync::OnceLock<Bytes>,
    pub etag: String,
}

impl EncodedTile {
    fn new(raw: Vec<u8>) -> Self {
        // xxh3-128 of the content: a tile that did not change keeps its ETag across snapshots.
        let etag = format!("\"{:032x}\"", twox_hash::XxHash3_128::oneshot(&raw));
        Self { raw: raw.into(), gzip: std::sync::OnceLock::new(), etag }
    }

    /// The gzip encoding (computed once, then kept with the tile).
    pub fn gzip(&self) -> Result<Bytes> {
        if let Some(g) = self.gzip.get() {
            return Ok(g.clone());
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.raw.len() / 2),
            flate2::Compression::fast(),
        );
        gz.write_all(&self.raw)?;
        let bytes = Bytes::from(gz.finish()?);
        Ok(self.gzip.get_or_init(|| bytes).clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    layer: Layer,
    tile: TileId,
    version: u64,
}

#[derive(Debug, Clone)]
struct ByBytes;

impl quick_cache::Weighter<CacheKey, Option<Arc<EncodedTile>>> for ByBytes {
    fn weight(&self, _k: &CacheKey, v: &Option<Arc<EncodedTile>>) -> u64 {
        // Empty tiles are cached too (204 is the common answer at the edges of the data).
        // gzip, when made, is about half the raw size more.
        64 + v.as_ref().map_or(0, |t| (t.raw.len() + t.raw.len() / 2) as u64)
    }
}

/// The tiles stage: the current snapshot, the tile cache and the lake it reads.
#[derive(Debug)]
pub struct Tiles {
    lake: Lake,
    config: TilesConfig,
    current: RwLock<Arc<Snapshot>>,
    /// The listing fingerprint and freshness step the current snapshot was built from.
    basis: tokio::sync::Mutex<(String, i64)>,
    cache: quick_cache::sync::Cache<CacheKey, Option<Arc<EncodedTile>>, ByBytes>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

/// Every coverage resolution some zoom draws.
fn drawn_resolutions() -> Vec<Resolution> {
    let mut r: Vec<Resolution> = (0..=grid::MAX_ZOOM).map(grid::resolution_for_zoom).collect();
    r.dedup();
    r
}

impl Tiles {
    /// Loads the first snapshot.
    pub async fn open(lake: Lake, config: TilesConfig) -> Result<Arc<Self>> {
        let cache = quick_cache::sync::Cache::with_weighter(
            usize::try_from(config.cache_bytes / 16_384).unwrap_or(1024).max(64),
            config.cache_bytes,
            ByBytes,
        );
        let tiles = Arc::new(Self {
            lake,
            config,
            current: RwLock::new(Arc::new(Snapshot::default())),
            basis: tokio::sync::Mutex::new((String::new(), i64::MIN)),
            cache,
            hits: Default::default(),
            misses: Default::default(),
        });
        tiles.refresh().await?;
        Ok(tiles)
    }

    pub fn config(&self) -> &TilesConfig {
        &self.config
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The snapshot requests are answered from.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// (hits, misses) of the tile cache since start.
    pub fn cache_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// Rebuilds the snapshot if the tables changed or the freshness clock moved a step.
    /// Returns whether it did.
    pub async fn refresh(&self) -> Result<bool> {
        let mut basis = self.basis.lock().await;
        let fingerprint = self.fingerprint().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let step_ms = i64::try_from(self.config.freshness_step_s.max(1) * 1000).unwrap_or(i64::MAX);
        let step = now / step_ms;
        if basis.0 == fingerprint && basis.1 == step {
            return Ok(false);
        }
        let tables = snapshot::read(&self.lake).await?;
        let version = hex::encode(&Sha256::digest(format!("{fingerprint}/{step}"))[..8]);
        let refill_ms = self.config.refill_days * 86_400_000.0;
        let snap = tokio::task::spawn_blocking(move || {
            Snapshot::build(tables, version, step * step_ms, refill_ms, &drawn_resolutions())
        })
        .await?;
        tracing::debug!(version = %snap.version, frames = snap.frames.len(), "tiles snapshot");
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(snap),
            Err(p) => *p.into_inner() = Arc::new(snap),
        }
        *basis = (fingerprint, step);
        Ok(true)
    }

    /// Names, sizes and change tags of every visible file of the tables tiles read.
    async fn fingerprint(&self) -> Result<String> {
        let mut h = Sha256::new();
        for table in [Table::Coverage, Table::Frames, Table::Features] {
            let prefix = roadhex_lake::paths::table_prefix(table);
            for m in roadhex_lake::visible::list_visible(self.lake.store(), Some(&prefix))
                .await
                .map_err(roadhex_lake::LakeError::from)?
            {
                h.update(format!("{}|{}|{:?}|{}\n", m.location, m.size, m.e_tag, m.last_modified));
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The tile, rendered or from the cache; `None` when it holds nothing.
    pub async fn tile(&self, layer: Layer, tile: TileId) -> Result<Option<Arc<EncodedTile>>> {
        use std::sync::atomic::Ordering::Relaxed;
        let snap = self.snapshot();
        let version = u64::from_str_radix(&snap.version, 16).unwrap_or(0);
        let key = CacheKey { layer, tile, version };
        if let Some(v) = self.cache.get(&key) {
            self.hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        self.misses.fetch_add(1, Relaxed);
        let built = self
            .cache
            .get_or_insert_async(&key, async move {
                tokio::task::spawn_blocking(move || encode(&snap, layer, tile)).await?
            })
            .await?;
        Ok(built)
    }
}

impl Tiles {
    /// The bytes of a published frame, if the frames table lists it.
    pub async fn frame_jpeg(&self, id: &str) -> Result<Bytes> {
        let snap = self.snapshot();
        let i = *snap.frames_by_id.get(id).ok_or_else(|| TilesError::FrameNotFound(id.to_owned()))?;
        let key = object_store::path::Path::from(&*snap.frames[i as usize].object_key);
        // Only published frames are listed; a frame withdrawn since the snapshot is gone here too.
        self.lake.get(&key).await?.ok_or_else(|| TilesError::FrameNotFound(id.to_owned()))
    }

    /// Up to `limit` published frames in `cell`, newest first.
    pub fn cell_frames(&self, cell: h3o::CellIndex, limit: usize) -> serde_json::Value {
        let snap = self.snapshot();
        let mut frames = snap.frames_in_cell(cell);
        let total = frames.len();
        frames.sort_by(|a, b| b.t_ms.cmp(&a.t_ms).then_with(|| a.id.cmp(&b.id)));
        frames.truncate(limit);
        let list: Vec<serde_json::Value> = frames
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": &*f.id,
                    "capture_id": &*snap.captures[f.capture as usize],
                    "captured_at": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(f.t_ms)
                        .unwrap_or_default()
                        .to_rfc3339(),
                    "lat": f.lat,
                    "lon": f.lon,
                    "heading": f.heading,
                    "url": format!("/v1/frames/{}.jpg", f.id),
                })
            })
            .collect();
        serde_json::json!({
            "cell": cell.to_string(),
            "resolution": u8::from(cell.resolution()),
            "total": total,
            "frames": list,
        })
    }
}

/// Renders one tile.
fn encode(snap: &Snapshot, layer: Layer, tile: TileId) -> Result<Option<Arc<EncodedTile>>> {
    Ok(render::render(snap, layer, tile)?.map(|raw| Arc::new(EncodedTile::new(raw))))
}

/// Checks the tables every `refresh_s` and swaps in a new snapshot when they changed.
pub async fn refresh_loop(tiles: Arc<Tiles>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(tiles.config.refresh_s.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = tiles.refresh().await {
            tracing::warn!(error = %e, "tiles snapshot refresh failed; serving the previous one");
        }
    }
}
