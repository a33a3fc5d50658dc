//! The node on a real S3 server (s3s-fs on loopback, installed by deploy/s3.sh): the same upload,
//! anonymization, publication and imagery as on the local store, with no code change, only config.
//! Also the NATS server the scale-out test shares between processes.

use crate::support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct S3Server {
    child: Child,
    pub(crate) endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The s3s-fs binary deploy/s3.sh installs.
pub(crate) fn s3s_fs_bin() -> std::path::PathBuf {
    let root = std::env::var_os("ROADHEX_S3S_ROOT").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/roadhex/s3s")
    });
    let bin = root.join("bin/s3s-fs");
    assert!(bin.is_file(), "{} is missing: run deploy/s3.sh (make test does)", bin.display());
    bin
}

/// Debian's nats-server (deploy/setup.sh installs it).
pub(crate) fn nats_server_bin() -> &'static str {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("nats-server is missing: apt-get install nats-server (deploy/setup.sh does)")
}

impl S3Server {
    /// s3s-fs with a bucket `lake`, on a free loopback port.
    pub(crate) fn start() -> Self {
        let bin = s3s_fs_bin();
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("lake")).expect("bucket");
        let port = crate::support::free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "testing", "--secret-key", "testing"])
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
        Self { child, endpoint: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    /// The `AWS_*` environment a roadhex process needs for this server.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// `nats-server -js` on a free loopback port, with its store in a temp dir.
pub(crate) struct NatsServer {
    child: Option<Child>,
    port: u16,
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl NatsServer {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = crate::support::free_port();
        let mut nats = Self { child: None, port, url: format!("nats://127.0.0.1:{port}"), dir };
        nats.restart();
        nats
    }

    /// Kills the server (an outage); `restart` brings it back on the same port and store.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.stop();
        let child = Command::new(nats_server_bin())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_capture_is_published_from_an_s3_store() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let store = "s3://lake/roadhex";
    let server =
        Server::start_env(&tmp.path().join("unused"), "ingest,vision,tiles", &["--store", store], &s3.env());
    let key = server.register_device("stella");
    let frames = frames();
    let m = manifest(&key, 1, &frames);
    let opened: serde_json::Value = server.post_manifest(&key, &m.to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("capture id").to_owned();
    for (b, s) in &frames {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    assert_eq!(server.commit(&id).status(), 202);
    // The sequence claim is a conditional create on S3 too: a replay is refused.
    assert_refused(
        server.post_manifest(&key, &manifest(&key, 1, &frames[..2]).to_bytes()),
        409,
        "sequence_replayed",
    );
    let status = crate::vision::wait_for(&server, &id, &["published", "rejected"], 600, 300);
    assert_eq!(status["state"], "published", "{status}");
    let frame = format!("{id}-0000");
    let served = crate::vision::eventually(|| {
        server
            .http()
            .get(format!("{}/v1/frames/{frame}.jpg", server.url))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(served, "imagery from S3");
    // The CLI reads the same store.
    let out = Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(["sql", "--store", store, "--format", "csv", "SELECT count(*) AS n FROM frames"])
        .envs(s3.env())
        .output()
        .expect("sql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let published =
        status["frames"].as_array().expect("frames").iter().filter(|f| f["state"] == "published").count();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("n\n{published}\n"));
    let audit = Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(["privacy", "audit", "--store", store, "--trim-default-m", "0", "--trim-min-m", "0"])
        .envs(s3.env())
        .output()
        .expect("audit");
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
}
