//! Hostile clients against one node: decompression bombs, empty and truncated bodies, slow-drip
//! connections, a streamed oversized manifest and a flood from one device. Each is refused with its
//! code and leaves the store as it was, honest drivers' uploads go through meanwhile, and the
//! server's memory stays flat.

use crate::support::*;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::DeviceKeyFile;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The node's read deadline in these tests (`--request-timeout-s`); the default is 60.
const READ_TIMEOUT_S: u64 = 5;
const MIB: u64 = 1024 * 1024;

struct Node {
    _tmp: tempfile::TempDir,
    server: Server,
    frames: Vec<(Vec<u8>, String)>,
}

impl Node {
    fn addr(&self) -> &str {
        self.server.url.trim_start_matches("http://")
    }

    /// Opens a capture of `frames` for `key` and returns its id.
    fn open(&self, key: &DeviceKeyFile, sequence: u64, frames: &[(Vec<u8>, String)]) -> String {
        let resp = self.server.post_manifest(key, &manifest(key, sequence, frames).to_bytes());
        assert_eq!(resp.status(), 201, "open: {:?}", resp.text());
        resp.json::<serde_json::Value>().expect("json")["capture_id"].as_str().expect("id").to_owned()
    }

    /// A whole honest upload: manifest, every frame, commit.
    fn upload(&self, key: &DeviceKeyFile, sequence: u64) {
        let id = self.open(key, sequence, &self.frames);
        for (bytes, sha) in &self.frames {
            let resp = self.server.put_frame(&id, sha, bytes.clone());
            assert_eq!(resp.status(), 201, "frame: {:?}", resp.text());
        }
        assert_eq!(self.server.commit(&id).status(), 202);
    }

    /// Runs a request that must be refused and must leave the store untouched.
    fn refused(&self, status: u16, code: &str, request: impl FnOnce() -> reqwest::blocking::Response) {
        let before = files(&self.server.data);
        assert_refused(request(), status, code);
        assert_eq!(files(&self.server.data), before, "{code}: the store changed");
    }
}

/// Resident and peak memory of a process, in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).expect(key);
        line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("kB") * 1024
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// Reads one HTTP/1.1 response from a raw connection: status and JSON body.
fn read_response(stream: &mut TcpStream) -> (u16, serde_json::Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, serde_json::from_slice(&buf[head_end..head_end + length]).expect("json body"))
}

fn assert_code((status, body): (u16, serde_json::Value), want: u16, code: &str) {
    assert_eq!((status, body["code"].as_str()), (want, Some(code)), "body: {body}");
}

/// A frame header claiming 65535x65535 pixels (16 GB decoded), padded to a plausible frame size.
fn bomb() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0];
    b.extend([0xFF, 0xFE, 0x75, 0x32]);
    b.extend(std::iter::repeat_n(0x20u8, 0x7530));
    b.extend([0xFF, 0xDA, 0x00, 0x02]);
    b.extend(std::iter::repeat_n(0x5Au8, 40_000));
    b.extend([0xFF, 0xD9]);
    b
}

/// Opens a raw connection that sends a request head and then drips its body one byte a second.
fn drip(
    addr: &str,
    path: &str,
    length: usize,
) -> std::thread::JoinHandle<(u16, serde_json::Value, Duration)> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("head");
    std::thread::spawn(move || {
        let started = Instant::now();
        stream.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        let mut probe = [0u8; 1];
        // Drip until the server answers (a read that does not time out).
        loop {
            assert!(started.elapsed() < Duration::from_secs(30), "the server never timed the drip out");
            if stream.write_all(&[0xFF]).is_err() {
                break;
            }
            match stream.peek(&mut probe) {
                Ok(_) => break,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let (status, body) = read_response(&mut stream);
        (status, body, started.elapsed())
    })
}

#[test]
fn hostile_clients_are_refused_while_honest_uploads_flow() {
    let tmp = tempfile::tempdir().expect("tmp");
    let timeout = READ_TIMEOUT_S.to_string();
    // The burst covers the 50 drips below (each takes a token before its body is read).
    let args = ["--request-timeout-s", &timeout, "--device-rate", "1", "--device-burst", "80"];
    let server = Server::start(&tmp.path().join("data"), &args);
    let mut node = Node { _tmp: tmp, server, frames: frames() };
    let honest = node.server.register_device("honest");
    let mallory = node.server.register_device("mallory");
    // One upload first, so the baseline holds the working set of a normal upload.
    node.upload(&honest, 1);
    let pid = node.server.pid();
    let (rss_before, peak_before) = memory(pid);

    // A decompression bomb is refused from its header, without decoding a pixel.
    let bomb = bomb();
    let mut with_bomb = node.frames.clone();
    with_bomb[0] = (bomb.clone(), sha256_hex(&bomb));
    let id = node.open(&mallory, 1, &with_bomb);
    let started = Instant::now();
    node.refused(422, "frame_dimensions_invalid", || {
        node.server.put_frame(&id, &with_bomb[0].1, bomb.clone())
    });
    assert!(started.elapsed() < Duration::from_secs(2), "the bomb took {:?}", started.elapsed());

    // Zero-byte bodies: a frame, and a manifest (signed, so it reaches the parser).
    node.refused(422, "frame_size_out_of_range", || {
        node.server.put_frame(&id, &node.frames[1].1, Vec::new())
    });
    node.refused(400, "manifest_malformed", || node.server.post_manifest(&mallory, b""));

    // A JPEG cut short (the device lost power mid-write) is refused at upload: the device still
    // holds the file and resends it. One whose scan is damaged but still ends in EOI is a JPEG by
    // structure; ingest does not decode it (that is what keeps bombs cheap), vision's gates judge it.
    let (whole, _) = &node.frames[2];
    let cut = whole[..whole.len() * 6 / 10].to_vec();
    let mut damaged = cut.clone();
    damaged.extend([0xFF, 0xD9]);
    let mut broken = node.frames.clone();
    broken[0] = (cut.clone(), sha256_hex(&cut));
    broken[1] = (damaged.clone(), sha256_hex(&damaged));
    let id = node.open(&mallory, 2, &broken);
    node.refused(422, "frame_not_jpeg", || node.server.put_frame(&id, &broken[0].1, cut.clone()));
    assert_eq!(node.server.put_frame(&id, &broken[1].1, damaged.clone()).status(), 201);

    // An oversized manifest: a declared length over the limit (the client waiting on 100-continue)
    // is refused before any body is sent; a chunked one is read up to the limit and refused there,
    // never buffered whole.
    let before = files(&node.server.data);
    let sig = mallory.sign(b"x").expect("sign");
    let head = |framing: &str| {
        format!(
            "POST /v1/captures HTTP/1.1\r\nHost: {}\r\nx-roadhex-device: {}\r\nx-roadhex-signature: {sig}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n",
            node.addr(),
            mallory.device_id
        )
    };
    let mut conn = TcpStream::connect(node.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    conn.write_all(head(&format!("Content-Length: {}\r\nExpect: 100-continue", 50 * MIB)).as_bytes())
        .expect("head");
    assert_code(read_response(&mut conn), 413, "manifest_too_large");
    let mut conn = TcpStream::connect(node.addr()).expect("connect");
    conn.write_all(head("Transfer-Encoding: chunked").as_bytes()).expect("head");
    let mut reader = conn.try_clone().expect("clone");
    reader.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let answer = std::thread::spawn(move || read_response(&mut reader));
    let chunk =
        [format!("{:x}\r\n", 64 * 1024).into_bytes(), vec![b' '; 64 * 1024], b"\r\n".to_vec()].concat();
    let mut sent = 0u64;
    while sent < 50 * MIB && conn.write_all(&chunk).is_ok() {
        sent += 64 * 1024;
        if answer.is_finished() {
            break;
        }
    }
    assert_code(answer.join().expect("reader"), 413, "manifest_too_large");
    assert!(sent < 50 * MIB, "the server read all {sent} bytes of the oversized manifest");
    drop(conn);
    assert_eq!(files(&node.server.data), before, "the oversized manifests changed the store");

    // Slow drips: 50 connections each holding a frame upload open, one byte a second, and one
    // sending its headers that slowly. The honest driver's whole upload goes through meanwhile,
    // and each drip is answered 408 `request_timeout` (the slow headers: closed) at the deadline.
    let id = node.open(&mallory, 3, &node.frames);
    let (bytes, sha) = &node.frames[0];
    let path = format!("/v1/captures/{id}/frames/{sha}");
    let drips: Vec<_> = (0..50).map(|_| drip(node.addr(), &path, bytes.len())).collect();
    let mut slow_head = TcpStream::connect(node.addr()).expect("connect");
    slow_head.write_all(b"PUT ").expect("write");
    let slow_started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    node.upload(&honest, 2);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(READ_TIMEOUT_S), "the honest upload took {took:?} behind the drips");
    for d in drips {
        let (status, body, held) = d.join().expect("drip");
        assert_code((status, body), 408, "request_timeout");
        assert!(held < Duration::from_secs(READ_TIMEOUT_S + 3), "a drip was held {held:?}");
    }
    slow_head.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let mut answer = [0u8; 64];
    loop {
        assert!(slow_started.elapsed() < Duration::from_secs(READ_TIMEOUT_S + 10), "slow headers kept open");
        let _ = slow_head.write_all(b"x");
        match slow_head.read(&mut answer) {
            // Closed, or answered 408 and then closed.
            Ok(0) => break,
            Ok(n) => {
                let text = String::from_utf8_lossy(&answer[..n]).into_owned();
                assert!(text.starts_with("HTTP/1.1 408"), "slow headers answered: {text}");
                break;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    assert_eq!(node.server.status(&id)["frames"][0]["state"], "missing", "a dripped frame was stored");

    // A flood from one device (its app retrying in a loop) is limited to its own budget; another
    // driver's upload completes in the middle of it.
    let flood_bytes = manifest(&mallory, 4, &node.frames).to_bytes();
    assert_eq!(node.server.post_manifest(&mallory, &flood_bytes).status(), 201);
    let url = node.server.url.clone();
    let flooder = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        let sig = mallory.sign(&flood_bytes).expect("sign");
        let (mut limited, mut retry_after) = (0, true);
        for _ in 0..200 {
            let resp = client
                .post(format!("{url}/v1/captures"))
                .header("x-roadhex-device", mallory.device_id.as_str())
                .header("x-roadhex-signature", &sig)
                .body(flood_bytes.clone())
                .send()
                .expect("flood");
            if resp.status() == 429 {
                retry_after &= resp.headers().contains_key("retry-after");
                assert_refused(resp, 429, "rate_limited");
                limited += 1;
            }
        }
        (limited, retry_after)
    });
    node.upload(&honest, 3);
    let (limited, retry_after) = flooder.join().expect("flooder");
    assert!(limited >= 120, "only {limited} of 200 flood requests were limited");
    assert!(retry_after, "a 429 without Retry-After");

    // Memory: nothing above was buffered whole or decoded.
    let (rss_after, peak_after) = memory(pid);
    let growth = rss_after.saturating_sub(rss_before).max(peak_after.saturating_sub(peak_before));
    assert!(
        growth < 32 * MIB,
        "memory grew by {} MiB (RSS {} -> {} MiB)",
        growth / MIB,
        rss_before / MIB,
        rss_after / MIB
    );
    assert!(node.server.alive());
}

/// Memory is bounded by configuration, not by load: with two body slots, two dripping uploads hold
/// both, and every other request with a body waits unread (its client not even asked for the body
/// under `Expect: 100-continue`) and is answered 503 `overloaded` with Retry-After once the wait
/// passes; when the drips time out, uploads flow again. Registration is limited per address.
#[test]
fn bodies_in_flight_and_registrations_per_address_are_capped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let args = [
        "--request-timeout-s",
        "6",
        "--max-bodies-in-flight",
        "2",
        "--body-wait-s",
        "2",
        "--address-rate",
        "0.1",
        "--address-burst",
        "6",
    ];
    let server = Server::start(&tmp.path().join("data"), &args);
    let node = Node { _tmp: tmp, server, frames: frames() };
    // Challenge and registration: two of the address's six tokens.
    let honest = node.server.register_device("honest");
    node.upload(&honest, 1);
    let pid = node.server.pid();
    let (rss_before, peak_before) = memory(pid);

    let id = node.open(&honest, 2, &node.frames);
    let (bytes, sha) = &node.frames[0];
    let path = format!("/v1/captures/{id}/frames/{sha}");
    let drips: Vec<_> = (0..2).map(|_| drip(node.addr(), &path, bytes.len())).collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = files(&node.server.data);
    let waiters: Vec<_> = node.frames[1..]
        .iter()
        .map(|(bytes, sha)| {
            let mut conn = TcpStream::connect(node.addr()).expect("connect");
            let head = format!(
                "PUT /v1/captures/{id}/frames/{sha} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
                 Expect: 100-continue\r\n\r\n",
                node.addr(),
                bytes.len()
            );
            conn.write_all(head.as_bytes()).expect("head");
            std::thread::spawn(move || {
                let started = Instant::now();
                conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
                let answer = read_response(&mut conn);
                (answer, started.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (answer, waited) = w.join().expect("waiter");
        assert_code(answer, 503, "overloaded");
        assert!(waited >= Duration::from_millis(1500), "refused after {waited:?}, before the wait");
    }
    assert_eq!(files(&node.server.data), before, "a refused upload changed the store");
    // Operators see them: refusals at the edge are counted with the handlers' own.
    let metrics = node.server.http().get(format!("{}/metrics", node.server.url)).send().expect("metrics");
    let metrics = metrics.text().expect("text");
    let want = format!("roadhex_rejections_total{{code=\"overloaded\"}} {}", node.frames.len() - 1);
    assert!(metrics.lines().any(|l| l == want), "no `{want}` in /metrics");
    // Both slots are held by the drips.
    assert!(metrics.lines().any(|l| l == "roadhex_http_bodies_in_flight 2"), "slots in use: {metrics}");
    for d in drips {
        let (status, body, _) = d.join().expect("drip");
        assert_code((status, body), 408, "request_timeout");
    }
    // The slots are free again: the capture completes.
    for (bytes, sha) in &node.frames {
        assert_eq!(node.server.put_frame(&id, sha, bytes.clone()).status(), 201);
    }
    assert_eq!(node.server.commit(&id).status(), 202);

    // Four more challenges fit the address's burst; the next is refused and writes nothing.
    let challenge = || node.server.http().post(format!("{}/v1/devices/challenge", node.server.url)).send();
    for _ in 0..4 {
        assert_eq!(challenge().expect("challenge").status(), 200);
    }
    let refused = challenge().expect("challenge");
    assert!(refused.headers().contains_key("retry-after"), "a 429 without Retry-After");
    let before = files(&node.server.data);
    assert_refused(refused, 429, "rate_limited");
    assert_eq!(files(&node.server.data), before);

    let (rss_after, peak_after) = memory(pid);
    let growth = rss_after.saturating_sub(rss_before).max(peak_after.saturating_sub(peak_before));
    assert!(growth < 32 * MIB, "memory grew by {} MiB", growth / MIB);
}
