//! Processes on loopback: s3s-fs, nats-server and `roadhex serve`, each killed (SIGKILL) on drop.

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use std::fmt;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `roadhex` binary next to this program's profile directory
/// (`target/<profile>/examples/NAME` → `target/<profile>/roadhex`), or `$ROADHEX_BIN`.
pub(crate) fn roadhex_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ROADHEX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating this program")?;
    let dir =
        exe.parent().and_then(Path::parent).ok_or_else(|| anyhow!("{} has no profile dir", exe.display()))?;
    let bin = dir.join("roadhex");
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => String::new(),
        Some(p) => format!(" --profile {p}"),
    };
    ensure!(
        bin.is_file(),
        "{} is missing: cargo build{profile} --bin roadhex --features roadhex-lake/sql,nats",
        bin.display()
    );
    Ok(bin)
}

/// A child process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(super::ports::free_port())
}

fn wait_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// s3s-fs (installed by deploy/s3.sh) with a bucket `lake`, on a free loopback port.
#[derive(Debug)]
pub(crate) struct S3 {
    server: Killed,
    pub(crate) endpoint: String,
    _dir: tempfile::TempDir,
}

impl S3 {
    pub(crate) fn start() -> Result<Self> {
        let root = std::env::var_os("ROADHEX_S3S_ROOT").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/roadhex/s3s")
        });
        let bin = root.join("bin/s3s-fs");
        ensure!(bin.is_file(), "{} is missing: run deploy/s3.sh (make setup does)", bin.display());
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("lake"))?;
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "testing", "--secret-key", "testing"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = Killed(child);
        wait_port(port, "s3s-fs")?;
        Ok(Self { server, endpoint: format!("http://127.0.0.1:{port}"), _dir: dir })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.0.id()
    }

    /// The `AWS_*` environment a roadhex process needs for this server.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.options().into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect()
    }

    /// The same settings for `Lake::open_with`.
    pub(crate) fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Opens `url` (s3://lake/…) on this server in this process.
    pub(crate) fn lake(&self, url: &str) -> Result<roadhex_lake::Lake> {
        let opts = self.options();
        let refs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Ok(roadhex_lake::Lake::open_with(url, &refs)?)
    }
}

/// `nats-server -js` on a free loopback port, with its store in a temp dir.
#[derive(Debug)]
pub(crate) struct Nats {
    server: Killed,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub(crate) fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| {
                anyhow!("nats-server is missing: apt-get install nats-server (make setup does)")
            })?;
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        let server = Killed(child);
        wait_port(port, "nats-server")?;
        Ok(Self { server, url: format!("nats://127.0.0.1:{port}"), _dir: dir })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.0.id()
    }
}

/// How to start one `roadhex serve` process; a restart reuses it, port included.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) bin: PathBuf,
    pub(crate) roles: String,
    /// `--data DIR` or `--store URL --queue URL`, and any other flags.
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// Fixed HTTP port, so clients find a restarted process where the old one was.
    pub(crate) port: u16,
    /// Where stderr (the process's log) goes.
    pub(crate) log: Log,
}

/// Where the stderr of a `roadhex serve` goes.
#[derive(Clone)]
pub(crate) enum Log {
    /// Appended to this file.
    File(PathBuf),
    /// This program's stderr.
    Inherit,
    /// Each line to this function, on a thread of its own.
    Lines(Arc<dyn Fn(&str) + Send + Sync>),
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Inherit => f.write_str("Inherit"),
            Self::Lines(_) => f.write_str("Lines(..)"),
        }
    }
}

/// A running `roadhex serve`.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) spec: NodeSpec,
    child: Killed,
    _stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`, empty for a process without HTTP roles.
    pub(crate) url: String,
}

impl Node {
    /// Starts the process and waits for its first line (`listening on …` or `running …`).
    pub(crate) fn start(spec: NodeSpec) -> Result<Self> {
        // A port just freed by a killed process can take a moment to bind again.
        let mut tries = 0;
        loop {
            match Self::launch(&spec).and_then(|(child, stdout)| Self::ready(spec.clone(), child, stdout)) {
                Ok(node) => return Ok(node),
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("[{}] start failed ({e:#}); retrying", spec.name);
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts every process at once, so their start-ups overlap, then waits for each one's first
    /// line; a process that fails to start is not retried.
    pub(crate) fn start_all(specs: Vec<NodeSpec>) -> Result<Vec<Self>> {
        let launched = specs.iter().map(Self::launch).collect::<Result<Vec<_>>>()?;
        specs
            .into_iter()
            .zip(launched)
            .map(|(spec, (child, stdout))| Self::ready(spec, child, stdout))
            .collect()
    }

    fn launch(spec: &NodeSpec) -> Result<(Killed, BufReader<ChildStdout>)> {
        let stderr = match &spec.log {
            Log::File(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            Log::Inherit => Stdio::inherit(),
            Log::Lines(_) => Stdio::piped(),
        };
        let mut child = Command::new(&spec.bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", spec.port), "--roles", &spec.roles])
            .args(&spec.args)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            // The whole simulated fleet registers from one loopback address.
            .env("ROADHEX_ADDRESS_BURST", "100000")
            // Short synthetic drives: trip trimming (200 m at each end, and a wait for the drive's
            // next capture) would hold them back, as in the e2e tests.
            .env("ROADHEX_TRIM_DEFAULT_M", "0")
            .env("ROADHEX_TRIM_MIN_M", "0")
            .env("ROADHEX_FEATURES_EVERY_S", "0")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        if let (Log::Lines(each), Some(stderr)) = (&spec.log, child.stderr.take()) {
            let each = Arc::clone(each);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
                    each(&line);
                }
            });
        }
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        Ok((Killed(child), BufReader::new(stdout)))
    }

    /// Waits for the first line of a launched process.
    fn ready(spec: NodeSpec, child: Killed, mut stdout: BufReader<ChildStdout>) -> Result<Self> {
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the first line of roadhex serve")?;
        let url = match line.trim().strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None if line.starts_with("running") => String::new(),
            None => bail!(
                "roadhex serve --roles {} did not start (first line {line:?}); {}",
                spec.roles,
                match &spec.log {
                    Log::File(path) => format!("see {}", path.display()),
                    Log::Inherit | Log::Lines(_) => {
                        format!("is {} built with --features nats?", spec.bin.display())
                    }
                }
            ),
        };
        Ok(Self { spec, child, _stdout: stdout, url })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// SIGKILL, then the same process again on the same port.
    pub(crate) fn kill_and_restart(&mut self) -> Result<()> {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        *self = Self::start(self.spec.clone())?;
        Ok(())
    }
}

/// Resident set size and its peak (`VmRSS`, `VmHWM`) of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process has used, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks as f64 / 100.0)
}

/// `roadhex sql … --format json-array QUERY` against a store, parsed.
pub(crate) fn sql_rows(
    bin: &Path,
    store_args: &[String],
    env: &[(String, String)],
    query: &str,
) -> Result<Vec<serde_json::Value>> {
    let out = Command::new(bin)
        .arg("sql")
        .args(store_args)
        .args(["--format", "json-array", query])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .context("running roadhex sql")?;
    ensure!(out.status.success(), "roadhex sql {query:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}
