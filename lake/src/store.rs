//! Opening the object store and the few typed operations every stage needs on it.

use crate::error::{LakeError, Result};
use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Objects larger than this are written with a multipart upload.
pub const MULTIPART_BYTES: usize = 16 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// The object store every stage shares, with the URL it was opened from.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Lake {
    /// Opens `file:///dir` (or a plain directory path), `memory://`, or `s3://bucket[/prefix]`.
    ///
    /// S3 reads the usual `AWS_*` environment (endpoint, region, keys, `AWS_ALLOW_HTTP`) and uses
    /// ETag-conditional puts so create-once objects stay create-once.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &[])
    }

    /// [`Self::open`] with S3 settings given here instead of the environment (keys as in
    /// `AWS_*`, lower case: `aws_endpoint`, `aws_access_key_id`, `aws_allow_http`…).
    pub fn open_with(url: &str, s3_options: &[(&str, &str)]) -> Result<Self> {
        let bad = |reason: String| LakeError::BadUrl { url: url.to_owned(), reason };
        let store: Arc<dyn ObjectStore> = if url == "memory://" || url == "memory:" {
            Arc::new(InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = AmazonS3Builder::from_env();
            for (key, value) in s3_options {
                let key: object_store::aws::AmazonS3ConfigKey =
                    key.parse().map_err(|e: object_store::Error| bad(e.to_string()))?;
                builder = builder.with_config(key, *value);
            }
            let s3 = builder
                .with_bucket_name(bucket)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) }
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            if dir.is_empty() || dir.contains("://") {
                return Err(bad("use file:///dir, a directory path, memory:// or s3://bucket".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
            // Without this, deleting the last object of a capture leaves empty directories behind.
            Arc::new(fs.with_automatic_cleanup(true))
        };
        Ok(Self { store, url: url.to_owned() })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes an object atomically (readers see the old or the new bytes, never a mix). Large
    /// objects go up in parts: S3 caps one PUT at 5 GiB, and a failed part is retried alone.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        if bytes.len() > MULTIPART_BYTES {
            let upload = self.store.put_multipart(path).await?;
            let mut parts = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            parts.put(bytes);
            parts.finish().await?;
            return Ok(());
        }
        self.store.put(path, PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Writes an object only if none exists. Returns false if one already did.
    pub async fn put_new(&self, path: &Path, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(path, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an object; `Ok(None)` if it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, path: &Path) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn put_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|source| LakeError::Json { path: path.to_string(), source })?;
        self.put(path, bytes.into()).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        let Some(bytes) = self.get(path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| LakeError::Json { path: path.to_string(), source })
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object path under a prefix.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<Path>> {
        let metas: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }

    /// Every object under a prefix with its last-modified time and size.
    pub async fn list_meta(&self, prefix: &Path) -> Result<Vec<(Path, chrono::DateTime<chrono::Utc>, u64)>> {
        let metas: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|m| (m.location, m.last_modified, m.size)).collect())
    }

    /// Deletes everything under a prefix.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        for p in self.list(prefix).await? {
            self.delete(&p).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_once_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&format!("file://{}", dir.path().display())).expect("open");
        let p = Path::from("a/b.json");
        assert!(lake.put_new(&p, Bytes::from_static(b"1")).await.expect("put"));
        assert!(!lake.put_new(&p, Bytes::from_static(b"2")).await.expect("put"));
        assert_eq!(lake.get(&p).await.expect("get").as_deref(), Some(&b"1"[..]));
        assert_eq!(lake.list(&Path::from("a")).await.expect("list"), vec![p.clone()]);
        lake.delete(&p).await.expect("delete");
        assert!(!lake.exists(&p).await.expect("head"));
        assert!(Lake::open("ftp://x").is_err());
    }

    #[tokio::test]
    async fn large_objects_go_up_in_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&format!("file://{}", dir.path().display())).expect("open");
        let big: Vec<u8> = (0..MULTIPART_BYTES + 3 * PART_BYTES / 2).map(|i| (i % 251) as u8).collect();
        let p = Path::from("big/object.bin");
        lake.put(&p, Bytes::from(big.clone())).await.expect("put");
        assert_eq!(lake.get(&p).await.expect("get").as_deref(), Some(big.as_slice()));
    }
}
