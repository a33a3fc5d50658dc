//! Which table files readers see. A compaction writes its output (invisible until committed), then
//! one marker object that names the output and every file it replaces; from that put on, readers
//! see the output and none of the inputs. So a reader sees either the old files or the new one,
//! never both and never neither. Inputs are deleted only after a grace period, so queries that
//! listed them just before the commit can still read them.

use crate::paths::{COMPACT_PREFIX, MARKER_DIR};
use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The commit record of one compaction, stored at `{partition}/_compacted/{id}.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// File name (in the same partition) of the compacted output.
    pub output: String,
    /// Names of every file the output replaces, including those replaced by earlier compactions
    /// whose outputs are inputs here, so a late retry of an old flush stays hidden.
    pub replaces: Vec<String>,
}

/// Applies the markers of one partition to its file names: what readers see.
pub fn visible_names<'a>(names: impl IntoIterator<Item = &'a str>, markers: &[Marker]) -> Vec<&'a str> {
    let outputs: HashSet<&str> = markers.iter().map(|m| m.output.as_str()).collect();
    let replaced: HashSet<&str> =
        markers.iter().flat_map(|m| m.replaces.iter().map(String::as_str)).collect();
    names
        .into_iter()
        .filter(|n| !replaced.contains(n) && (!n.starts_with(COMPACT_PREFIX) || outputs.contains(n)))
        .collect()
}

/// Splits a path into (partition directory, file name), and says whether it is a marker.
fn split(path: &Path) -> Option<(String, String, bool)> {
    let parts: Vec<_> = path.parts().map(|p| p.as_ref().to_owned()).collect();
    let (name, dirs) = parts.split_last()?;
    if dirs.last().is_some_and(|d| d == MARKER_DIR) {
        let partition = dirs[..dirs.len() - 1].join("/");
        return Some((partition, name.clone(), true));
    }
    Some((dirs.join("/"), name.clone(), false))
}

/// An object store whose listings show only visible table files (markers applied, markers and
/// uncommitted outputs hidden). Reads, writes and deletes pass through. DataFusion reads the lake
/// through this, so every query sees a consistent set of files.
#[derive(Debug)]
pub struct VisibleStore {
    inner: Arc<dyn ObjectStore>,
    /// Markers never change once written (their name derives from their content); cache them.
    markers: Arc<Mutex<HashMap<Path, Marker>>>,
}

impl VisibleStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, markers: Arc::default() }
    }
}

impl std::fmt::Display for VisibleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VisibleStore({})", self.inner)
    }
}

/// Reads (with the cache) the markers at `paths`.
async fn load_markers(
    inner: &Arc<dyn ObjectStore>,
    cache: &Mutex<HashMap<Path, Marker>>,
    paths: &[Path],
) -> Result<Vec<Marker>> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path).cloned();
        let marker = match cached {
            Some(m) => m,
            None => {
                let bytes = match inner.get(path).await {
                    Ok(r) => r.bytes().await?,
                    // Deleted by garbage collection between the listing and now: its output is gone too.
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let m: Marker = serde_json::from_slice(&bytes).map_err(|e| object_store::Error::Generic {
                    store: "roadhex",
                    source: format!("compaction marker {path}: {e}").into(),
                })?;
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() > 100_000 {
                    cache.clear();
                }
                cache.insert(path.clone(), m.clone());
                m
            }
        };
        out.push(marker);
    }
    Ok(out)
}

/// Keeps the visible files of a listing; `markers` are the marker paths per partition.
async fn filter(
    inner: &Arc<dyn ObjectStore>,
    cache: &Mutex<HashMap<Path, Marker>>,
    files: Vec<ObjectMeta>,
    markers: HashMap<String, Vec<Path>>,
) -> Result<Vec<ObjectMeta>> {
    let mut by_partition: HashMap<String, Vec<ObjectMeta>> = HashMap::new();
    for meta in files {
        if let Some((partition, _, false)) = split(&meta.location) {
            by_partition.entry(partition).or_default().push(meta);
        }
    }
    let mut out = Vec::new();
    for (partition, metas) in by_partition {
        let marker_paths = markers.get(&partition).map(Vec::as_slice).unwrap_or_default();
        let loaded = load_markers(inner, cache, marker_paths).await?;
        let names: Vec<String> =
            metas.iter().map(|m| m.location.filename().unwrap_or_default().to_owned()).collect();
        let keep: HashSet<&str> =
            visible_names(names.iter().map(String::as_str), &loaded).into_iter().collect();
        out.extend(metas.into_iter().filter(|m| keep.contains(m.location.filename().unwrap_or_default())));
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// Lists `prefix` recursively and applies the markers found in the listing.
pub async fn list_visible(inner: &Arc<dyn ObjectStore>, prefix: Option<&Path>) -> Result<Vec<ObjectMeta>> {
    list_visible_cached(inner, &Mutex::default(), prefix).await
}

async fn list_visible_cached(
    inner: &Arc<dyn ObjectStore>,
    cache: &Mutex<HashMap<Path, Marker>>,
    prefix: Option<&Path>,
) -> Result<Vec<ObjectMeta>> {
    let all: Vec<ObjectMeta> = inner.list(prefix).try_collect().await?;
    let mut markers: HashMap<String, Vec<Path>> = HashMap::new();
    let mut files = Vec::with_capacity(all.len());
    for meta in all {
        match split(&meta.location) {
            Some((partition, _, true)) => markers.entry(partition).or_default().push(meta.location),
            Some(_) => files.push(meta),
            None => {}
        }
    }
    filter(inner, cache, files, markers).await
}

#[async_trait]
impl ObjectStore for VisibleStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    // The default would fetch each (coalesced) range on its own; the local store reads them all
    // through one open file, and a Parquet scan asks for several ranges per file.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, cache, prefix) = (Arc::clone(&self.inner), Arc::clone(&self.markers), prefix.cloned());
        futures::stream::once(async move { list_visible_cached(&inner, &cache, prefix.as_ref()).await })
            .map_ok(|metas| futures::stream::iter(metas.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        let marker_dir = result.common_prefixes.iter().find(|p| p.filename() == Some(MARKER_DIR)).cloned();
        result.common_prefixes.retain(|p| p.filename() != Some(MARKER_DIR));
        let mut markers = HashMap::new();
        if let Some(dir) = marker_dir {
            let listed: Vec<ObjectMeta> = self.inner.list(Some(&dir)).try_collect().await?;
            for meta in listed {
                if let Some((partition, _, true)) = split(&meta.location) {
                    markers.entry(partition).or_insert_with(Vec::new).push(meta.location);
                }
            }
        }
        let objects = std::mem::take(&mut result.objects);
        result.objects = filter(&self.inner, &self.markers, objects, markers).await?;
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_swap_inputs_for_outputs() {
        let names = ["part-a.parquet", "part-b.parquet", "part-compact-1.parquet", "part-compact-2.parquet"];
        // No marker: uncommitted outputs stay hidden.
        assert_eq!(visible_names(names, &[]), ["part-a.parquet", "part-b.parquet"]);
        let m1 = Marker {
            output: "part-compact-1.parquet".into(),
            replaces: vec!["part-a.parquet".into(), "part-b.parquet".into()],
        };
        assert_eq!(visible_names(names, std::slice::from_ref(&m1)), ["part-compact-1.parquet"]);
        // A second round replaces the first output; a retried old flush stays hidden.
        let m2 = Marker {
            output: "part-compact-2.parquet".into(),
            replaces: vec!["part-a.parquet".into(), "part-b.parquet".into(), "part-compact-1.parquet".into()],
        };
        assert_eq!(visible_names(names, std::slice::from_ref(&m2)), ["part-compact-2.parquet"]);
        assert_eq!(visible_names(names, &[m1, m2]), ["part-compact-2.parquet"]);
    }
}
