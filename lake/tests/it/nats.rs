//! The NATS JetStream queue against a real `nats-server -js` (Debian package nats-server).

use roadhex_lake::WorkQueue;
use roadhex_lake::queue_nats::NatsQueue;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> NatsServer {
    let dir = tempfile::tempdir().expect("tmp");
    let port = crate::ports::free_port();
    let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("nats-server is missing: apt-get install nats-server (deploy/setup.sh does)");
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nats-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    NatsServer { child, port, _dir: dir }
}

#[tokio::test]
async fn jetstream_queue_leases_redelivers_and_defers() {
    let server = start();
    let url = format!("nats://127.0.0.1:{}?ack_wait_s=2", server.port);
    let lease = Duration::from_secs(2);
    let q = NatsQueue::connect(&url, "vision").await.expect("connect");
    q.enqueue("a").await.expect("enqueue");
    q.enqueue("a").await.expect("a again is the same item");
    q.enqueue("b").await.expect("enqueue");
    assert!(q.enqueue("../x").await.is_err());
    assert_eq!(q.items().await.expect("items"), ["a", "b"]);

    // A worker claims "a" and dies: another process gets "b" now and "a" after the ack wait.
    let first = q.claim_wait("w1", lease, Duration::from_secs(5)).await.expect("claim").expect("a");
    assert_eq!((first.id.as_str(), first.attempt), ("a", 1));
    drop(q);
    let q = NatsQueue::connect(&url, "vision").await.expect("second process");
    let b = q.claim_wait("w2", lease, Duration::from_secs(5)).await.expect("claim").expect("b");
    assert_eq!(b.id, "b");
    q.ack(&b).await.expect("ack");
    assert!(q.ack(&b).await.is_err(), "a lease acks once");
    let again = q.claim_wait("w2", lease, Duration::from_secs(6)).await.expect("claim").expect("a again");
    assert_eq!((again.id.as_str(), again.attempt), ("a", 2));
    q.release(&again).await.expect("release");
    let third = q.claim_wait("w2", lease, Duration::from_secs(5)).await.expect("claim").expect("a released");
    assert_eq!((third.id.as_str(), third.attempt), ("a", 3));
    q.ack(&third).await.expect("ack");

    // Deferred: not claimable before the delay, and the delay costs no attempt.
    q.enqueue("c").await.expect("enqueue");
    let c = q.claim_wait("w2", lease, Duration::from_secs(5)).await.expect("claim").expect("c");
    q.defer(&c, Duration::from_millis(1500)).await.expect("defer");
    assert!(q.claim_wait("w2", lease, Duration::from_millis(500)).await.expect("claim").is_none());
    let c = q.claim_wait("w2", lease, Duration::from_secs(5)).await.expect("claim").expect("c due");
    assert_eq!((c.id.as_str(), c.attempt), ("c", 1));
    q.ack(&c).await.expect("ack");
    assert!(q.items().await.expect("items").is_empty());
}

/// A worker slower than the ack wait keeps its item while it says it is still at work; without
/// that, a second worker got the capture while the first was finishing it (found by `make chaos`).
#[tokio::test]
async fn an_item_in_progress_is_not_redelivered() {
    let server = start();
    let url = format!("nats://127.0.0.1:{}?ack_wait_s=1", server.port);
    let lease = Duration::from_secs(1);
    let slow = NatsQueue::connect(&url, "vision").await.expect("connect");
    let other = NatsQueue::connect(&url, "vision").await.expect("second process");
    slow.enqueue("a").await.expect("enqueue");
    let held = slow.claim_wait("w1", lease, Duration::from_secs(5)).await.expect("claim").expect("a");
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        slow.extend(&held, lease).await.expect("in progress");
    }
    let stolen = other.claim_wait("w2", lease, Duration::from_millis(300)).await.expect("claim");
    assert!(stolen.is_none(), "redelivered while in progress: {stolen:?}");
    // Once the worker goes quiet (it died), the item goes to another after the ack wait.
    let again = other.claim_wait("w2", lease, Duration::from_secs(5)).await.expect("claim").expect("a");
    assert_eq!((again.id.as_str(), again.attempt), ("a", 2));
    other.ack(&again).await.expect("ack");
}
