//! The work queue between stages: enqueue an id; a worker claims it with a lease, acks it when
//! done; a lease that expires makes the item claimable again (redelivery after a crashed worker).

use crate::error::{LakeError, Result};
use crate::paths;
use crate::store::Lake;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// A claimed item. Only the holder of the current lease can ack or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub token: String,
    /// 1 on first delivery, incremented on each redelivery.
    pub attempt: u32,
    pub until: DateTime<Utc>,
}

#[async_trait]
pub trait WorkQueue: Send + Sync + Debug {
    /// Adds an item; enqueuing an id that is already queued is a no-op. Durable on return.
    async fn enqueue(&self, id: &str) -> Result<()>;
    /// Claims the oldest available item for `lease`, or `None` if nothing is available now.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>>;
    /// Waits up to `timeout` for an item to claim.
    async fn claim_wait(&self, worker: &str, lease: Duration, timeout: Duration) -> Result<Option<Lease>>;
    /// The holder is still at work: keeps the item from going to another worker for `by` more
    /// (NATS: an in-progress ack, which restarts the consumer's ack wait instead).
    async fn extend(&self, lease: &Lease, by: Duration) -> Result<()>;
    /// Removes a finished item.
    async fn ack(&self, lease: &Lease) -> Result<()>;
    /// Gives an item back for immediate redelivery.
    async fn release(&self, lease: &Lease) -> Result<()>;
    /// Gives an item back to be claimed again after `delay`, without counting it as an attempt
    /// (the worker is waiting for something, not failing).
    async fn defer(&self, lease: &Lease, delay: Duration) -> Result<()>;
    /// Ids currently queued or leased, oldest first.
    async fn items(&self) -> Result<Vec<String>>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    id: String,
    enqueued_at: DateTime<Utc>,
    attempts: u32,
    lease: Option<ItemLease>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemLease {
    token: String,
    worker: String,
    until: DateTime<Utc>,
}

/// Queue state kept as one JSON object per item in the lake, indexed in memory, with in-process
/// wake-ups. It survives restarts of the process; several processes need the NATS backend.
#[derive(Debug)]
pub struct EmbeddedQueue {
    lake: Lake,
    name: String,
    items: Mutex<BTreeMap<String, Item>>,
    notify: Notify,
}

impl EmbeddedQueue {
    /// Opens the queue `name`, reloading its items from the store.
    pub async fn open(lake: Lake, name: &str) -> Result<Self> {
        let mut items = BTreeMap::new();
        for path in lake.list(&paths::queue_prefix(name)).await? {
            if let Some(mut item) = lake.get_json::<Item>(&path).await? {
                // One process owns an embedded queue, so a lease found at open belonged to a
                // previous run of this process that died: the item is claimable again now.
                item.lease = None;
                items.insert(item.id.clone(), item);
            }
        }
        Ok(Self { lake, name: name.to_owned(), items: Mutex::new(items), notify: Notify::new() })
    }

    fn lease_of(item: &Item) -> Option<Lease> {
        item.lease.as_ref().map(|l| Lease {
            id: item.id.clone(),
            token: l.token.clone(),
            attempt: item.attempts,
            until: l.until,
        })
    }
}

/// Item ids become object names; keep them to a safe alphabet.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(LakeError::BadUrl {
            url: id.to_owned(),
            reason: "queue item ids are [A-Za-z0-9_-]{1,128}".into(),
        })
    }
}

/// The item `lease` still holds, or `LeaseLost`.
fn held<'a>(items: &'a mut BTreeMap<String, Item>, lease: &Lease) -> Result<&'a mut Item> {
    items
        .get_mut(&lease.id)
        .filter(|i| i.lease.as_ref().is_some_and(|l| l.token == lease.token))
        .ok_or_else(|| LakeError::LeaseLost(lease.id.clone()))
}

#[async_trait]
impl WorkQueue for EmbeddedQueue {
    async fn enqueue(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let mut items = self.items.lock().await;
        if items.contains_key(id) {
            return Ok(());
        }
        let item = Item { id: id.to_owned(), enqueued_at: Utc::now(), attempts: 0, lease: None };
        self.lake.put_json(&paths::queue_item(&self.name, id), &item).await?;
        items.insert(id.to_owned(), item);
        drop(items);
        self.notify.notify_waiters();
        self.notify.notify_one();
        Ok(())
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>> {
        let now = Utc::now();
        let mut items = self.items.lock().await;
        let next = items
            .values()
            .filter(|i| i.lease.as_ref().is_none_or(|l| l.until <= now))
            .min_by_key(|i| (i.enqueued_at, i.id.clone()))
            .map(|i| i.id.clone());
        let Some(id) = next else { return Ok(None) };
        let Some(item) = items.get(&id) else {
            return Ok(None);
        };
        let mut updated = item.clone();
        updated.attempts += 1;
        updated.lease = Some(ItemLease {
            token: uuid::Uuid::new_v4().simple().to_string(),
            worker: worker.to_owned(),
            until: now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX),
        });
        self.lake.put_json(&paths::queue_item(&self.name, &id), &updated).await?;
        let out = Self::lease_of(&updated);
        items.insert(id, updated);
        Ok(out)
    }

    async fn claim_wait(&self, worker: &str, lease: Duration, timeout: Duration) -> Result<Option<Lease>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(l) = self.claim(worker, lease).await? {
                return Ok(Some(l));
            }
            // Wake on enqueue/release, or poll now and then for expired leases.
            let poll = tokio::time::Instant::now() + Duration::from_millis(500);
            if tokio::time::timeout_at(poll.min(deadline), notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Ok(None);
            }
        }
    }

    async fn extend(&self, lease: &Lease, by: Duration) -> Result<()> {
        let mut items = self.items.lock().await;
        let item = held(&mut items, lease)?;
        let mut updated = item.clone();
        if let Some(l) = updated.lease.as_mut() {
            l.until = Utc::now() + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        }
        self.lake.put_json(&paths::queue_item(&self.name, &lease.id), &updated).await?;
        *item = updated;
        Ok(())
    }

    async fn ack(&self, lease: &Lease) -> Result<()> {
        let mut items = self.items.lock().await;
        let held =
            items.get(&lease.id).and_then(|i| i.lease.as_ref()).is_some_and(|l| l.token == lease.token);
        if !held {
            return Err(LakeError::LeaseLost(lease.id.clone()));
        }
        self.lake.delete(&paths::queue_item(&self.name, &lease.id)).await?;
        items.remove(&lease.id);
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mut items = self.items.lock().await;
        let item = held(&mut items, lease)?;
        let mut updated = item.clone();
        updated.lease = None;
        self.lake.put_json(&paths::queue_item(&self.name, &lease.id), &updated).await?;
        *item = updated;
        drop(items);
        self.notify.notify_one();
        Ok(())
    }

    async fn defer(&self, lease: &Lease, delay: Duration) -> Result<()> {
        let mut items = self.items.lock().await;
        let item = held(&mut items, lease)?;
        let mut updated = item.clone();
        updated.attempts = updated.attempts.saturating_sub(1);
        // A lease nobody holds: the item becomes claimable when it runs out.
        updated.lease = Some(ItemLease {
            token: uuid::Uuid::new_v4().simple().to_string(),
            worker: String::new(),
            until: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        });
        self.lake.put_json(&paths::queue_item(&self.name, &lease.id), &updated).await?;
        *item = updated;
        Ok(())
    }

    async fn items(&self) -> Result<Vec<String>> {
        let items = self.items.lock().await;
        let mut v: Vec<_> = items.values().collect();
        v.sort_by_key(|i| (i.enqueued_at, i.id.clone()));
        Ok(v.into_iter().map(|i| i.id.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lease_ack_redeliver_and_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&dir.path().display().to_string()).expect("open");
        let q = EmbeddedQueue::open(lake.clone(), "vision").await.expect("queue");
        q.enqueue("a").await.expect("enqueue");
        q.enqueue("a").await.expect("idempotent");
        q.enqueue("b").await.expect("enqueue");
        assert!(q.enqueue("../x").await.is_err());
        let l = q.claim("w1", Duration::from_millis(50)).await.expect("claim").expect("item");
        assert_eq!((l.id.as_str(), l.attempt), ("a", 1));
        // The lease expires: "a" is redelivered, and the stale lease can no longer ack.
        tokio::time::sleep(Duration::from_millis(80)).await;
        let l2 = q.claim("w2", Duration::from_secs(60)).await.expect("claim").expect("item");
        assert_eq!((l2.id.as_str(), l2.attempt), ("a", 2));
        assert!(matches!(q.ack(&l).await, Err(LakeError::LeaseLost(_))));
        q.ack(&l2).await.expect("ack");
        // A restart sees what is left.
        let q = EmbeddedQueue::open(lake, "vision").await.expect("reopen");
        assert_eq!(q.items().await.expect("items"), vec!["b".to_owned()]);
        let l = q.claim_wait("w", Duration::from_secs(5), Duration::from_secs(1)).await.expect("wait");
        let l = l.expect("b");
        assert_eq!(l.id, "b");
        // Deferred: invisible until the delay passes, and not counted as an attempt.
        // Wide margins: a busy CI machine can pause for tens of milliseconds between two calls.
        q.defer(&l, Duration::from_millis(1500)).await.expect("defer");
        assert!(q.claim("w", Duration::from_secs(5)).await.expect("claim").is_none());
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let again = q.claim("w", Duration::from_secs(5)).await.expect("claim").expect("b again");
        assert_eq!((again.id.as_str(), again.attempt), ("b", 1));
        q.ack(&again).await.expect("ack");
        assert!(
            q.claim_wait("w", Duration::from_secs(5), Duration::from_millis(50))
                .await
                .expect("wait")
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_extended_lease_is_not_redelivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&dir.path().display().to_string()).expect("open");
        let q = EmbeddedQueue::open(lake, "vision").await.expect("queue");
        q.enqueue("a").await.expect("enqueue");
        let l = q.claim("w1", Duration::from_millis(200)).await.expect("claim").expect("a");
        // The holder is still at work: its lease outlives the one it claimed.
        q.extend(&l, Duration::from_secs(60)).await.expect("extend");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(q.claim("w2", Duration::from_secs(60)).await.expect("claim").is_none());
        q.ack(&l).await.expect("ack");
        assert!(matches!(q.extend(&l, Duration::from_secs(1)).await, Err(LakeError::LeaseLost(_))));
    }
}
