//! The lake on a real S3 server: s3s-fs (crates.io, installed by deploy/s3.sh) started on loopback.
//! Conditional create, multipart uploads, the queue, table writes, compaction and row rewrites all
//! go through the same code as on the local filesystem.

use bytes::Bytes;
use object_store::path::Path;
use roadhex_lake::compact::{CompactionConfig, run};
use roadhex_lake::rewrite::{TableLock, rewrite, scan};
use roadhex_lake::{EmbeddedQueue, Lake, WorkQueue};
use roadhex_schemas::tables::Table;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct S3Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs() -> std::path::PathBuf {
    let root = std::env::var_os("ROADHEX_S3S_ROOT").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/roadhex/s3s")
    });
    let bin = root.join("bin/s3s-fs");
    assert!(bin.is_file(), "{} is missing: run deploy/s3.sh (make test does)", bin.display());
    bin
}

/// Starts s3s-fs with one bucket on a free loopback port.
fn start() -> S3Server {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("lake")).expect("bucket dir");
    let port = crate::ports::free_port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "testing"])
        .args(["--secret-key", "testing"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    S3Server { child, port, _dir: dir }
}

fn lake(s: &S3Server) -> Lake {
    let endpoint = format!("http://127.0.0.1:{}", s.port);
    let opts = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
        ("aws_virtual_hosted_style_request", "false"),
    ];
    Lake::open_with("s3://lake/roadhex", &opts).expect("open s3 lake")
}

fn redaction_rows(ids: &[&str]) -> arrow::array::RecordBatch {
    use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;
    let n = ids.len();
    let s = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids.to_vec())),
        s("f"),
        s("requested"),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
        s("r"),
        s("a"),
        Arc::new(TimestampMillisecondArray::from(vec![0; n]).with_timezone("UTC")),
    ];
    arrow::array::RecordBatch::try_new(Table::Redactions.schema(), cols).expect("batch")
}

#[tokio::test]
async fn the_lake_runs_unchanged_on_s3() {
    let server = start();
    let lake = lake(&server);

    // Conditional create: the second writer loses, as sequence claims and locks need.
    let claim = Path::from("registry/sequences/d/00000000000000000001");
    assert!(lake.put_new(&claim, Bytes::from_static(b"a")).await.expect("create"));
    assert!(!lake.put_new(&claim, Bytes::from_static(b"b")).await.expect("create again"));
    assert_eq!(lake.get(&claim).await.expect("get").as_deref(), Some(&b"a"[..]));

    // Multipart: an object over the threshold arrives whole.
    let big: Vec<u8> =
        (0..roadhex_lake::store::MULTIPART_BYTES + 5_000_000).map(|i| (i % 253) as u8).collect();
    let p = Path::from("tables/big.bin");
    lake.put(&p, Bytes::from(big.clone())).await.expect("multipart put");
    assert_eq!(lake.get(&p).await.expect("get").map(|b| b.len()), Some(big.len()));
    assert_eq!(lake.get(&p).await.expect("get").as_deref(), Some(big.as_slice()));
    lake.delete(&p).await.expect("delete");

    // The embedded queue keeps its items in the store.
    let q = EmbeddedQueue::open(lake.clone(), "vision").await.expect("queue");
    q.enqueue("c1").await.expect("enqueue");
    let l = q.claim("w", Duration::from_secs(30)).await.expect("claim").expect("item");
    q.ack(&l).await.expect("ack");
    assert!(q.items().await.expect("items").is_empty());

    // Tables: eight small files compact into one, and a rewrite removes one row, through S3.
    let date = "2026-11-30".to_owned();
    for i in 0..8 {
        let id = format!("r{i}");
        roadhex_lake::writer::append(&lake, Table::Redactions, &date, &id, &[redaction_rows(&[&id])])
            .await
            .expect("append");
    }
    let report =
        run(&lake, &CompactionConfig { grace_s: 0, ..CompactionConfig::default() }).await.expect("compact");
    assert_eq!((report.partitions, report.files_replaced), (1, 8), "{report:?}");
    let lock = TableLock::acquire(&lake).await.expect("lock");
    let changed = rewrite(&lake, &lock, Table::Redactions, std::slice::from_ref(&date), |_, b| {
        let ids = roadhex_lake::columns::text(b, "redaction_id")?;
        let keep: arrow::array::BooleanArray =
            (0..b.num_rows()).map(|i| Some(ids.value(i) != "r3")).collect();
        roadhex_lake::rewrite::filter_rows(b, &keep)
    })
    .await
    .expect("rewrite");
    lock.release().await.expect("unlock");
    assert_eq!(changed.rows_removed, 1);
    let mut ids = Vec::new();
    scan(&lake, Table::Redactions, None, |_, b| {
        let t = roadhex_lake::columns::text(b, "redaction_id")?;
        ids.extend((0..b.num_rows()).map(|i| t.value(i).to_owned()));
        Ok(())
    })
    .await
    .expect("scan");
    ids.sort();
    assert_eq!(ids, ["r0", "r1", "r2", "r4", "r5", "r6", "r7"]);
}
