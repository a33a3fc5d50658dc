//! The work queue on NATS JetStream (feature `nats`), for several processes sharing one queue: a
//! work-queue stream (an acked item is gone), one durable pull consumer shared by every worker,
//! explicit acks, and redelivery once a crashed worker's ack wait runs out.
//!
//! URL: `nats://host:port[?ack_wait_s=N]`. The ack wait plays the lease's part (default 600 s, the
//! vision lease); JetStream fixes it per consumer, so the `lease` a claim asks for is not used, and
//! a worker that is still at work sends in-progress acks (`extend`) to keep its item.

use crate::error::{LakeError, Result};
use crate::queue::{Lease, WorkQueue};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind, Message};
use async_trait::async_trait;
use chrono::Utc;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// Header naming when a deferred item becomes due (unix ms).
const NOT_BEFORE: &str = "Roadhex-Not-Before";
/// Items `items()` reads at most.
const LIST_LIMIT: u64 = 10_000;

fn nats_err(e: impl std::fmt::Display) -> LakeError {
    LakeError::Queue(e.to_string())
}

#[derive(Debug)]
pub struct NatsQueue {
    js: jetstream::Context,
    subject: String,
    stream: String,
    consumer: PullConsumer,
    ack_wait: Duration,
    /// Messages this process holds, by lease token (a token is only good in its process).
    held: Mutex<HashMap<String, Message>>,
}

impl NatsQueue {
    /// Connects and creates (or binds to) the stream and consumer of queue `name`.
    pub async fn connect(url: &str, name: &str) -> Result<Self> {
        let bad = |reason: String| LakeError::BadUrl { url: url.to_owned(), reason };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let ack_wait_s = parsed
            .query_pairs()
            .find(|(k, _)| k == "ack_wait_s")
            .map(|(_, v)| v.parse::<u64>().map_err(|e| bad(format!("ack_wait_s: {e}"))))
            .transpose()?
            .unwrap_or(600);
        let server =
            format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(4222));
        let client = async_nats::connect(server).await.map_err(nats_err)?;
        let js = jetstream::new(client);
        let stream_name = format!("roadhex-{name}");
        let subject = format!("roadhex.queue.{name}");
        let stream = js
            .get_or_create_stream(StreamConfig {
                name: stream_name.clone(),
                subjects: vec![subject.clone()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                // Enqueuing an id twice within this window adds it once.
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        let ack_wait = Duration::from_secs(ack_wait_s.max(1));
        let consumer = stream
            .get_or_create_consumer(
                "workers",
                pull::Config {
                    durable_name: Some("workers".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_err)?;
        Ok(Self { js, subject, stream: stream_name, consumer, ack_wait, held: Mutex::default() })
    }

    async fn publish(&self, id: &str, msg_id: &str, not_before_ms: Option<i64>) -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if let Some(t) = not_before_ms {
            headers.insert(NOT_BEFORE, t.to_string().as_str());
        }
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, id.to_owned().into())
            .await
            .map_err(nats_err)?;
        // Durable only once the stream acknowledged it.
        ack.await.map_err(nats_err)?;
        Ok(())
    }

    /// Turns a delivered message into a lease, or puts it back if it is deferred and not yet due.
    async fn take(&self, msg: Message) -> Result<Option<Lease>> {
        let not_before =
            msg.headers.as_ref().and_then(|h| h.get(NOT_BEFORE)).and_then(|v| v.as_str().parse::<i64>().ok());
        let now = Utc::now().timestamp_millis();
        if let Some(t) = not_before.filter(|t| *t > now) {
            let wait = Duration::from_millis(u64::try_from(t - now).unwrap_or(0));
            msg.ack_with(AckKind::Nak(Some(wait))).await.map_err(nats_err)?;
            return Ok(None);
        }
        let delivered = msg.info().map_err(nats_err)?.delivered;
        // A deferred copy is usually delivered once early and put back; that one is not an attempt.
        let attempt = (delivered - i64::from(not_before.is_some())).max(1);
        let id = String::from_utf8_lossy(&msg.payload).into_owned();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease = Lease {
            id,
            token: token.clone(),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            until: Utc::now() + chrono::Duration::from_std(self.ack_wait).unwrap_or(chrono::Duration::MAX),
        };
        self.held.lock().await.insert(token, msg);
        Ok(Some(lease))
    }

    async fn held(&self, lease: &Lease) -> Result<Message> {
        self.held.lock().await.remove(&lease.token).ok_or_else(|| LakeError::LeaseLost(lease.id.clone()))
    }
}

#[async_trait]
impl WorkQueue for NatsQueue {
    async fn enqueue(&self, id: &str) -> Result<()> {
        crate::queue::check_id(id)?;
        self.publish(id, id, None).await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>> {
        self.claim_wait(worker, lease, Duration::from_millis(100)).await
    }

    async fn claim_wait(&self, _worker: &str, _lease: Duration, timeout: Duration) -> Result<Option<Lease>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(left.max(Duration::from_millis(50)))
                .messages()
                .await
                .map_err(nats_err)?;
            match batch.next().await {
                Some(Ok(msg)) => {
                    if let Some(lease) = self.take(msg).await? {
                        return Ok(Some(lease));
                    }
                }
                Some(Err(e)) => return Err(nats_err(e)),
                None => {}
            }
        }
    }

    async fn extend(&self, lease: &Lease, _by: Duration) -> Result<()> {
        // JetStream fixes the ack wait per consumer: an in-progress ack restarts it.
        let held = self.held.lock().await;
        let msg = held.get(&lease.token).ok_or_else(|| LakeError::LeaseLost(lease.id.clone()))?;
        msg.ack_with(AckKind::Progress).await.map_err(nats_err)
    }

    async fn ack(&self, lease: &Lease) -> Result<()> {
        self.held(lease).await?.double_ack().await.map_err(nats_err)
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.held(lease).await?.ack_with(AckKind::Nak(None)).await.map_err(nats_err)
    }

    async fn defer(&self, lease: &Lease, delay: Duration) -> Result<()> {
        let msg = self.held(lease).await?;
        // A fresh copy that says when it is due, then the old one goes: the delay costs no attempt.
        let due = Utc::now().timestamp_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.publish(&lease.id, &format!("{}.d{due}", lease.id), Some(due)).await?;
        msg.double_ack().await.map_err(nats_err)
    }

    async fn items(&self) -> Result<Vec<String>> {
        let mut stream = self.js.get_stream(&self.stream).await.map_err(nats_err)?;
        let state = stream.info().await.map_err(nats_err)?.state.clone();
        let mut out = Vec::new();
        let last = state.last_sequence.min(state.first_sequence.saturating_add(LIST_LIMIT));
        for seq in state.first_sequence..=last {
            // Acked items are gone from a work-queue stream; their sequence numbers stay empty.
            if let Ok(m) = stream.get_raw_message(seq).await {
                let id = String::from_utf8_lossy(&m.payload).into_owned();
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}
