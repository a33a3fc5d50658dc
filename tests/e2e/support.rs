//! Shared fixtures: a server process, a registered device, street tracks and frames.

use base64::Engine as _;
use roadhex_ingest::formats::gpx;
use roadhex_schemas::geo::{bearing_deg, haversine_m};
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::{DeviceKeyFile, registration_message};
use roadhex_schemas::{Camera, CaptureManifest, FixType, FrameEntry, GnssSample, Mount};
use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub(crate) const OPERATOR_TOKEN: &str = "test-operator-token";

pub(crate) fn shared_data() -> PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The six Udacity road frames (960x540 JPEG, 50–71 KB).
pub(crate) fn udacity_frames() -> PathBuf {
    shared_data().join("dashcam_udacity/lanelines_p1")
}

pub(crate) use crate::chaos::common::ports::free_port;

pub(crate) fn roadhex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roadhex")).args(args).output().expect("run roadhex")
}

pub(crate) fn roadhex_ok(args: &[&str]) -> String {
    let out = roadhex(args);
    assert!(out.status.success(), "roadhex {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `roadhex capture build --key KEY --out OUT --json ARGS…`, parsed.
pub(crate) fn capture_build(key: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let (key, out) = (key.to_str().expect("utf8"), out.to_str().expect("utf8"));
    let mut all = vec!["capture", "build", "--key", key, "--out", out, "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&roadhex_ok(&all)).expect("build report json")
}

/// A `roadhex serve` child process; killed (SIGKILL) on drop.
pub(crate) struct Server {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    pub(crate) url: String,
    pub(crate) data: PathBuf,
}

impl Server {
    /// The ingest role alone: committed captures stay queued for the test to inspect.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_roles(data, "ingest", extra)
    }

    pub(crate) fn start_roles(data: &Path, roles: &str, extra: &[&str]) -> Server {
        Self::start_env(data, roles, extra, &[])
    }

    /// With extra environment (S3 credentials); `--store` in `extra` overrides `data`.
    pub(crate) fn start_env(data: &Path, roles: &str, extra: &[&str], env: &[(&str, String)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roadhex"));
        cmd.args(["serve", "--data", data.to_str().expect("utf8 path"), "--listen", "127.0.0.1:0"])
            .args(["--operator-token", OPERATOR_TOKEN, "--roles", roles])
            .args(extra)
            .env("RUST_LOG", "warn")
            // Tests of other stages upload short synthetic drives that 200 m of trimming at each
            // end would swallow; the privacy tests turn trimming on with flags (flags win).
            .env("ROADHEX_TRIM_DEFAULT_M", "0")
            .env("ROADHEX_TRIM_MIN_M", "0")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::spawn(cmd, data)
    }

    /// Spawns a prepared `roadhex serve` command and reads its first line (the listen address).
    pub(crate) fn spawn(mut cmd: Command, data: &Path) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read listen line");
        // A process without HTTP roles (vision alone) says so instead; it has no URL.
        let url = match line.trim().strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None => {
                assert!(line.starts_with("running"), "unexpected first line: {line}");
                String::new()
            }
        };
        Server { child, stdout, url, data: data.to_owned() }
    }

    /// `GET /openapi.json`, parsed.
    pub(crate) fn openapi(&self) -> serde_json::Value {
        self.http().get(format!("{}/openapi.json", self.url)).send().expect("openapi").json().expect("json")
    }

    /// The next line the server prints (e.g. the Flight SQL address after the HTTP one).
    pub(crate) fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read server stdout");
        line.trim().to_owned()
    }

    /// The server's process id (for reading its memory from /proc).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, no chance to flush anything.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    pub(crate) fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    pub(crate) fn post_manifest(&self, key: &DeviceKeyFile, bytes: &[u8]) -> reqwest::blocking::Response {
        let sig = key.sign(bytes).expect("sign");
        self.post_signed(key.device_id.as_str(), &sig, bytes)
    }

    pub(crate) fn post_signed(&self, device: &str, sig: &str, bytes: &[u8]) -> reqwest::blocking::Response {
        self.http()
            .post(format!("{}/v1/captures", self.url))
            .header("x-roadhex-device", device)
            .header("x-roadhex-signature", sig)
            .body(bytes.to_vec())
            .send()
            .expect("post manifest")
    }

    pub(crate) fn put_frame(&self, capture: &str, sha: &str, body: Vec<u8>) -> reqwest::blocking::Response {
        self.http()
            .put(format!("{}/v1/captures/{capture}/frames/{sha}", self.url))
            .body(body)
            .send()
            .expect("put frame")
    }

    pub(crate) fn commit(&self, capture: &str) -> reqwest::blocking::Response {
        self.http().post(format!("{}/v1/captures/{capture}/commit", self.url)).send().expect("commit")
    }

    pub(crate) fn status(&self, capture: &str) -> serde_json::Value {
        self.http()
            .get(format!("{}/v1/captures/{capture}", self.url))
            .send()
            .expect("status")
            .json()
            .expect("json")
    }

    /// Registers a fresh device key through the API.
    pub(crate) fn register_device(&self, contributor: &str) -> DeviceKeyFile {
        let key = DeviceKeyFile::generate();
        let resp = self.register(&key.public_key, contributor, |m| key.sign(m).expect("sign"));
        assert_eq!(resp.status(), 201, "register: {:?}", resp.text());
        key
    }

    pub(crate) fn register(
        &self,
        public_key: &str,
        contributor: &str,
        sign: impl Fn(&[u8]) -> String,
    ) -> reqwest::blocking::Response {
        let c: serde_json::Value = self
            .http()
            .post(format!("{}/v1/devices/challenge", self.url))
            .send()
            .expect("challenge")
            .json()
            .expect("json");
        let nonce = c["nonce"].as_str().expect("nonce");
        let body = serde_json::json!({
            "public_key": public_key,
            "contributor_id": contributor,
            "nonce": nonce,
            "signature": sign(&registration_message(nonce, contributor)),
        });
        self.http().post(format!("{}/v1/devices", self.url)).json(&body).send().expect("register")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under a directory, relative, for "nothing was written" checks.
pub(crate) fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).expect("prefix").display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts a refusal: HTTP status, error code, and a JSON body with a message.
pub(crate) fn assert_refused(
    resp: reqwest::blocking::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let got = resp.status().as_u16();
    let body: serde_json::Value = resp.json().expect("json error body");
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {body}");
    body
}

/// 1 Hz GNSS samples driving at `speed` m/s along a real street: the car drive around Višnjan
/// (Croatia) from the gpxpy test files, resampled by distance.
pub(crate) fn street_track(start_ms: i64, seconds: i64, speed: f64) -> Vec<GnssSample> {
    let bytes =
        std::fs::read(shared_data().join("gpx_tracks/gpxpy/around-visnjan-with-car.gpx")).expect("gpx");
    let road = gpx::parse(&bytes).expect("parse");
    let mut cum = vec![0.0];
    for w in road.windows(2) {
        cum.push(cum.last().copied().unwrap_or(0.0) + haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon));
    }
    (0..=seconds)
        .map(|i| {
            // Skip the first 300 m: the recording starts with GPS jitter in a parking place.
            let d = (300.0 + speed * i as f64).min(cum.last().copied().unwrap_or(0.0) - 0.01);
            let seg = cum.partition_point(|&c| c <= d).clamp(1, road.len() - 1);
            let (a, b) = (&road[seg - 1], &road[seg]);
            let f =
                if cum[seg] > cum[seg - 1] { (d - cum[seg - 1]) / (cum[seg] - cum[seg - 1]) } else { 0.0 };
            GnssSample {
                t_ms: start_ms + i * 1000,
                lat: a.lat + (b.lat - a.lat) * f,
                lon: a.lon + (b.lon - a.lon) * f,
                alt: 200.0,
                speed,
                heading: bearing_deg(a.lat, a.lon, b.lat, b.lon),
                hdop: Some(0.8),
                satellites: Some(10),
                fix: Some(FixType::Fix3d),
            }
        })
        .collect()
}

/// Writes a GPX of `street_track` (without hdop/sats, as a phone would).
pub(crate) fn write_street_gpx(path: &Path, start_ms: i64, seconds: i64, speed: f64) {
    std::fs::write(path, gpx::write(&street_track(start_ms, seconds, speed))).expect("write gpx");
}

pub(crate) const T0: i64 = 1_777_630_800_000; // 2026-05-01T10:20:00Z

/// The Udacity frames as (bytes, sha256).
pub(crate) fn frames() -> Vec<(Vec<u8>, String)> {
    let mut paths: Vec<_> =
        std::fs::read_dir(udacity_frames()).expect("frames").flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let b = std::fs::read(p).expect("read");
            let s = sha256_hex(&b);
            (b, s)
        })
        .collect()
}

/// A valid manifest for `frames`, one per second starting 2 s into a 10 m/s street track.
/// The camera of a Hivemapper-sized dashcam (2028x1024 frames).
pub(crate) fn dashcam_camera() -> Camera {
    Camera {
        width: 2028,
        height: 1024,
        focal_length_px: None,
        hfov_deg: Some(120.0),
        mount: Mount::Front,
        mount_height_m: 1.4,
    }
}

pub(crate) fn manifest(key: &DeviceKeyFile, sequence: u64, frames: &[(Vec<u8>, String)]) -> CaptureManifest {
    CaptureManifest {
        version: 1,
        device_id: key.device_id.to_string(),
        sequence,
        created_at: chrono::DateTime::from_timestamp_millis(T0 + 60_000).expect("time"),
        camera: Camera {
            width: 960,
            height: 540,
            focal_length_px: None,
            hfov_deg: Some(100.0),
            mount: Mount::Front,
            mount_height_m: 1.4,
        },
        telemetry: street_track(T0, frames.len() as i64 + 4, 10.0),
        imu: Vec::new(),
        frames: frames
            .iter()
            .enumerate()
            .map(|(i, (b, s))| FrameEntry {
                t_ms: T0 + 2_000 + i as i64 * 1000,
                sha256: s.clone(),
                size: b.len() as u64,
            })
            .collect(),
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes `samples` as an NMEA log (RMC + GGA per fix), with dates moved back by `eras` GPS
/// week-number eras, as a receiver with the 1024-week rollover bug reports them.
pub(crate) fn write_nmea(path: &Path, samples: &[GnssSample], eras: i64) {
    fn sentence(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |a, b| a ^ b);
        format!("${body}*{sum:02X}\r\n")
    }
    fn dm(v: f64, deg_digits: usize, pos: char, neg: char) -> (String, char) {
        let a = v.abs();
        let d = a.trunc();
        (format!("{:0w$}{:07.4}", d as u32, (a - d) * 60.0, w = deg_digits), if v >= 0.0 { pos } else { neg })
    }
    let mut out = String::new();
    for s in samples {
        let t = chrono::DateTime::from_timestamp_millis(s.t_ms - eras * 1024 * 7 * 86_400_000).expect("time");
        let (lat, ns) = dm(s.lat, 2, 'N', 'S');
        let (lon, ew) = dm(s.lon, 3, 'E', 'W');
        let hms = t.format("%H%M%S%.3f");
        let knots = s.speed * 3600.0 / 1852.0;
        out += &sentence(&format!(
            "GPRMC,{hms},A,{lat},{ns},{lon},{ew},{knots:.2},{:.1},{},,",
            s.heading,
            t.format("%d%m%y")
        ));
        out += &sentence(&format!("GPGGA,{hms},{lat},{ns},{lon},{ew},1,09,0.9,{:.1},M,0.0,M,,", s.alt));
    }
    std::fs::write(path, out).expect("write nmea");
}
