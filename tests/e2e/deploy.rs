//! The deployment files, checked against the real binary without a Docker engine or a cluster.
//!
//! - Every flag, `ROADHEX_*` variable and role that deploy/Dockerfile, deploy/compose.yaml and
//!   deploy/k8s/ use is one `roadhex serve --help` lists; every `AWS_*` one is an S3 setting the
//!   lake accepts; every config key of deploy/roadhex.example.toml (and the k8s ConfigMap's file)
//!   is a field of the real config types, and a node starts on each file.
//! - The runtime image's Debian packages cover every shared library the binary links (ldd, dpkg).
//! - The compose topology runs as native processes on loopback: its nats and s3 services with their
//!   own commands (nats-server, s3s-fs), then every roadhex service with its command and
//!   environment (hostnames and container paths mapped to this machine, ports made distinct).
//!   Each passes its compose health check (the image's own script), and a capture uploaded through
//!   the two ingest replicas is published by vision, served by tiles and counted by sql.
//! - Every k8s Deployment starts the same way from its ConfigMap, Secret template and args, and
//!   its probes answer 200; the HPAs, Services and adapter rule point at things that exist.

use crate::s3::{nats_server_bin, s3s_fs_bin};
use crate::support::*;
use serde::Deserialize as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Roles every topology must run somewhere.
const ROLES: [&str; 5] = ["ingest", "vision", "sql", "rewards", "tiles"];
/// Environment that is neither a roadhex setting nor an S3 one but may appear in deploy files.
const OTHER_ENV: [&str; 1] = ["RUST_LOG"];

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, merge keys (`<<`) applied, as JSON.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let mut v =
            serde_norway::Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        v.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !v.is_null() {
            out.push(serde_json::to_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }
    out
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().expect("string item").to_owned()).collect())
        .unwrap_or_default()
}

// --- what the binary accepts ---------------------------------------------------------------------

struct Accepted {
    flags: BTreeSet<String>,
    envs: BTreeSet<String>,
    roles: BTreeSet<String>,
}

/// Flags, environment variables and role names from `roadhex serve --help`.
fn serve_help() -> Accepted {
    let help = roadhex_ok(&["serve", "--help"]);
    let mut acc = Accepted { flags: BTreeSet::new(), envs: BTreeSet::new(), roles: BTreeSet::new() };
    for line in help.lines().map(str::trim) {
        if line.starts_with('-') {
            for tok in line.split([' ', ',']).filter(|t| t.starts_with("--")) {
                acc.flags.insert(tok.split(['=', '<']).next().unwrap_or(tok).to_owned());
            }
        }
    }
    for part in help.split("[env: ").skip(1) {
        let name = part.split(['=', ']']).next().unwrap_or_default();
        acc.envs.insert(name.to_owned());
    }
    let roles =
        help.split("[possible values: ").nth(1).and_then(|r| r.split(']').next()).expect("roles in help");
    acc.roles = roles.split(", ").map(str::to_owned).collect();
    for must in ["--roles", "--store", "--queue", "--listen"] {
        assert!(acc.flags.contains(must), "help parse lost {must}: {help}");
    }
    assert!(acc.envs.contains("ROADHEX_STORE") && acc.envs.contains("ROADHEX_OPERATOR_TOKEN"), "{help}");
    acc
}

impl Accepted {
    /// `roadhex ARGS…` of a deploy file: `serve`, then only known flags; roles are known ones.
    fn check_args(&self, what: &str, args: &[String]) {
        assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}: {args:?}");
        let mut it = args[1..].iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            assert!(self.flags.contains(flag), "{what}: `{flag}` is not a flag of roadhex serve");
            let value = inline.or_else(|| it.next().cloned()).unwrap_or_default();
            if flag == "--roles" {
                self.check_roles(what, &value);
            }
        }
    }

    fn check_roles(&self, what: &str, roles: &str) {
        for r in roles.split(',') {
            assert!(self.roles.contains(r), "{what}: role `{r}` is not one of {:?}", self.roles);
        }
    }

    /// What a roadhex process gets: `ROADHEX_*` settings, S3 settings of the lake (`AWS_*`, all
    /// parsed together as the lake does), RUST_LOG.
    fn check_env(&self, what: &str, env: &BTreeMap<String, String>) {
        let mut s3 = Vec::new();
        for (name, value) in env {
            if name.starts_with("ROADHEX_") {
                assert!(self.envs.contains(name), "{what}: {name} is not read by roadhex serve");
                if name == "ROADHEX_ROLES" {
                    self.check_roles(what, value);
                }
            } else if let Some(key) = name.strip_prefix("AWS_") {
                s3.push((format!("aws_{}", key.to_lowercase()), value.as_str()));
            } else {
                assert!(
                    OTHER_ENV.contains(&name.as_str()),
                    "{what}: {name} is neither a roadhex nor an S3 setting"
                );
            }
        }
        if !s3.is_empty() {
            // The lake parses each key as an object_store S3 setting; an unknown one is an error.
            let opts: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            roadhex_lake::Lake::open_with("s3://bucket/prefix", &opts)
                .unwrap_or_else(|e| panic!("{what}: {opts:?} are not S3 settings of the lake: {e}"));
        }
    }
}

/// Roles a `roadhex serve` command line runs (`--roles` or ROADHEX_ROLES; all when neither).
fn roles_of(args: &[String], env: &BTreeMap<String, String>) -> BTreeSet<String> {
    let from_args = args.iter().position(|a| a == "--roles").map(|i| args[i + 1].clone());
    let from_eq = args.iter().find_map(|a| a.strip_prefix("--roles=").map(str::to_owned));
    match from_args.or(from_eq).or_else(|| env.get("ROADHEX_ROLES").cloned()) {
        Some(r) => r.split(',').map(str::to_owned).collect(),
        None => ROLES.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// An HTTP listener exists unless the process runs vision alone (src/serve.rs).
fn has_listener(roles: &BTreeSet<String>) -> bool {
    roles.iter().any(|r| r != "vision")
}

// --- Dockerfile --------------------------------------------------------------------------------

#[derive(Debug)]
struct Stage {
    from: String,
    /// (INSTRUCTION, rest of the line), continuation lines joined.
    instrs: Vec<(String, String)>,
}

fn dockerfile(path: &Path) -> Vec<Stage> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for raw in read(path).lines() {
        let t = raw.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => cur.push_str(&format!("{head} ")),
            None => {
                cur.push_str(t);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines.into_iter().filter(|l| !l.trim().is_empty()) {
        let (ins, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let ins = ins.to_uppercase();
        if ins == "FROM" {
            stages.push(Stage {
                from: rest.split_whitespace().next().unwrap_or_default().into(),
                instrs: vec![],
            });
        } else {
            stages.last_mut().expect("FROM first").instrs.push((ins, rest.trim().to_owned()));
        }
    }
    stages
}

impl Stage {
    fn all(&self, ins: &str) -> impl Iterator<Item = &str> {
        self.instrs.iter().filter(move |(i, _)| i == ins).map(|(_, r)| r.as_str())
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for rest in self.all("ENV") {
            for kv in rest.split_whitespace() {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("ENV {rest}: use KEY=VALUE"));
                out.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
        out
    }

    /// Packages of `apt-get install` in RUN lines.
    fn apt_packages(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for run in self.all("RUN") {
            for cmd in run.split("&&") {
                if let Some((_, pkgs)) = cmd.split_once("apt-get install") {
                    out.extend(pkgs.split_whitespace().filter(|p| !p.starts_with('-')).map(str::to_owned));
                }
            }
        }
        out
    }

    /// COPY lines as (from stage, sources, destination).
    fn copies(&self) -> Vec<(Option<String>, Vec<String>, String)> {
        self.all("COPY")
            .map(|rest| {
                let mut from = None;
                let mut paths = Vec::new();
                for tok in rest.split_whitespace() {
                    if let Some(f) = tok.strip_prefix("--from=") {
                        from = Some(f.to_owned());
                    } else if !tok.starts_with("--") {
                        paths.push(tok.to_owned());
                    }
                }
                let dest = paths.pop().expect("COPY destination");
                (from, paths, dest)
            })
            .collect()
    }

    /// The JSON (exec) form of ENTRYPOINT, CMD or a HEALTHCHECK's CMD.
    fn exec_form(&self, ins: &str) -> Vec<String> {
        let rest = self.all(ins).last().unwrap_or_else(|| panic!("no {ins}"));
        let json = &rest[rest.find('[').unwrap_or_else(|| panic!("{ins} {rest}: use the exec form"))..];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{ins} {rest}: {e}"))
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}

// --- compose -----------------------------------------------------------------------------------

/// `${NAME:-default}` / `${NAME-default}` with their defaults (a fresh checkout has no .env, so
/// every variable needs one) and `$$` → `$`.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {s}"));
            let expr = &body[..end];
            let default =
                expr.split_once(":-").or_else(|| expr.split_once('-')).map(|(_, d)| d).unwrap_or_else(|| {
                    panic!("`{s}`: ${{{expr}}} has no default; compose up would need a .env")
                });
            out.push_str(default);
            rest = &body[end + 1..];
        } else {
            panic!("`{s}`: use ${{NAME:-default}} (or $$ for a literal $)");
        }
    }
    out.push_str(rest);
    out
}

fn interpolate_all(v: &mut Value) {
    match v {
        Value::String(s) => *s = interpolate(s),
        Value::Array(a) => a.iter_mut().for_each(interpolate_all),
        Value::Object(o) => o.values_mut().for_each(interpolate_all),
        _ => {}
    }
}

fn compose() -> Value {
    let mut docs = yaml_docs(&deploy("compose.yaml"));
    assert_eq!(docs.len(), 1);
    let mut c = docs.remove(0);
    interpolate_all(&mut c);
    c
}

fn is_roadhex(svc: &Value) -> bool {
    svc["build"]["dockerfile"] == "deploy/Dockerfile"
}

/// A service's `environment` (map or KEY=VALUE list).
fn service_env(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|kv| kv.as_str()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn command_of(svc: &Value) -> Vec<String> {
    match &svc["command"] {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        v => strs(v),
    }
}

/// (source, target) of each volume of a service.
fn volumes(svc: &Value) -> Vec<(String, String)> {
    strs(&svc["volumes"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            (src.to_owned(), dst.to_owned())
        })
        .collect()
}

/// Service names in an order that honours `depends_on`.
fn start_order(services: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    while order.len() < services.len() {
        let before = order.len();
        for (name, svc) in services {
            let deps: Vec<&String> =
                svc["depends_on"].as_object().map(|d| d.keys().collect()).unwrap_or_default();
            if !order.contains(name) && deps.iter().all(|d| order.contains(d)) {
                order.push(name.clone());
            }
        }
        assert!(order.len() > before, "depends_on has a cycle: {order:?}");
    }
    order
}

// --- k8s ---------------------------------------------------------------------------------------

struct K8s {
    /// Resources of kustomization.yaml.
    objects: Vec<Value>,
    secret: Value,
    adapter: Value,
}

fn k8s() -> K8s {
    let dir = deploy("k8s");
    let kust = yaml_docs(&dir.join("kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> = strs(&kust["resources"]).into_iter().collect();
    let mut objects = Vec::new();
    for file in &listed {
        let docs = yaml_docs(&dir.join(file));
        assert!(!docs.is_empty(), "{file} is empty");
        objects.extend(docs);
    }
    // Every manifest in the directory is listed, except the two that must not be applied as is.
    let unlisted: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("k8s dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml" && !listed.contains(f))
        .collect();
    let expected: BTreeSet<String> =
        ["secret.example.yaml", "prometheus-adapter-values.yaml"].map(str::to_owned).into();
    assert_eq!(unlisted, expected, "manifests missing from kustomization.yaml");
    for o in &objects {
        assert!(
            o["apiVersion"].is_string() && o["kind"].is_string() && o["metadata"]["name"].is_string(),
            "{o}"
        );
        assert!(o["metadata"]["namespace"].is_null(), "namespace-agnostic manifests: {}", o["metadata"]);
    }
    let secret = yaml_docs(&dir.join("secret.example.yaml")).remove(0);
    assert_eq!(secret["kind"], "Secret");
    let adapter = yaml_docs(&dir.join("prometheus-adapter-values.yaml")).remove(0);
    K8s { objects, secret, adapter }
}

impl K8s {
    fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Value> + use<'_> {
        let kind = kind.to_owned();
        self.objects.iter().filter(move |o| o["kind"] == kind.as_str())
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|o| o["metadata"]["name"] == name)
    }

    /// The one container of a Deployment.
    fn container(d: &Value) -> &Value {
        let cs = d["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
        assert_eq!(cs.len(), 1, "one container per role");
        &cs[0]
    }

    /// What the container's process sees: the image's ENV, envFrom (ConfigMap, Secret), env.
    fn env(&self, d: &Value, image_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let c = Self::container(d);
        let mut env = image_env.clone();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let data = if let Some(name) = from["configMapRef"]["name"].as_str() {
                self.named("ConfigMap", name).unwrap_or_else(|| panic!("no ConfigMap {name}"))["data"].clone()
            } else {
                let name = from["secretRef"]["name"].as_str().expect("configMapRef or secretRef");
                assert_eq!(self.secret["metadata"]["name"], name, "secretRef {name} is not the template's");
                self.secret["stringData"].clone()
            };
            for (k, v) in data.as_object().expect("data") {
                env.insert(k.clone(), v.as_str().expect("string value").to_owned());
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            env.insert(e["name"].as_str().expect("name").into(), e["value"].as_str().expect("value").into());
        }
        env
    }
}

// --- config keys -------------------------------------------------------------------------------

/// The `[section]` tables of the node's config with every field, from the real types' defaults.
fn config_defaults() -> Value {
    json!({
        "gates": roadhex_schemas::gates::GateConfig::default(),
        "quality": roadhex_vision::quality::QualityConfig::default(),
        "anonymizer": roadhex_vision::anonymize::EnsembleConfig::default(),
        "sql": roadhex_lake::sql::SqlLimits::default(),
        "compaction": roadhex_lake::compact::CompactionConfig::default(),
        "tiles": roadhex_tiles::TilesConfig::default(),
        "privacy": roadhex_schemas::privacy::PrivacyPolicy::default(),
        "rewards": roadhex_rewards::RewardsConfig::default(),
    })
}

/// Every key of `got` is a field of `known` (recursively; arrays of tables against their first
/// default element). Some sections ignore unknown keys when parsing, so a typo would not fail
/// startup: this catches it.
fn check_keys(file: &str, path: &str, got: &toml::Value, known: &Value) {
    match got {
        toml::Value::Table(t) => {
            let known = known.as_object().unwrap_or_else(|| panic!("{file}: `{path}` is not a table"));
            for (k, v) in t {
                let sub = known.get(k).unwrap_or_else(|| panic!("{file}: `{path}.{k}` is not a config key"));
                check_keys(file, &format!("{path}.{k}"), v, sub);
            }
        }
        toml::Value::Array(items) => {
            if let Some(first) = known.as_array().and_then(|a| a.first()) {
                for (i, item) in items.iter().enumerate() {
                    check_keys(file, &format!("{path}[{i}]"), item, first);
                }
            }
        }
        _ => {}
    }
}

/// Section keys against the real types; top-level keys against the flags (keys are the long
/// flags with underscores, `queue_url` and the two `*_rate_per_s` being the renamed ones).
fn check_config(file: &str, text: &str, acc: &Accepted) {
    let doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let sections = config_defaults();
    for (k, v) in &doc {
        if let Some(known) = sections.get(k) {
            check_keys(file, k, v, known);
        } else {
            let flag = match k.as_str() {
                "queue_url" => "--queue".to_owned(),
                "device_rate_per_s" => "--device-rate".to_owned(),
                "address_rate_per_s" => "--address-rate".to_owned(),
                k => format!("--{}", k.replace('_', "-")),
            };
            assert!(acc.flags.contains(&flag), "{file}: top-level key `{k}` is no setting ({flag})");
        }
    }
}

// --- processes ---------------------------------------------------------------------------------

/// A helper process (nats-server, s3s-fs) killed on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn eventually(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(url: &str) -> Option<reqwest::blocking::Response> {
    reqwest::blocking::Client::new().get(url).timeout(Duration::from_secs(5)).send().ok()
}

fn get_status(url: &str) -> u16 {
    get(url).map_or(0, |r| r.status().as_u16())
}

/// Replaces `:PORT` and `/PORT` (not followed by a digit) by the native port.
fn map_port(s: &str, from: u16, to: u16) -> String {
    let mut out = s.to_owned();
    for sep in [':', '/'] {
        let pat = format!("{sep}{from}");
        let mut i = 0;
        while let Some(j) = out[i..].find(&pat).map(|j| j + i) {
            let end = j + pat.len();
            if out[end..].starts_with(|c: char| c.is_ascii_digit()) {
                i = end;
                continue;
            }
            out.replace_range(j..end, &format!("{sep}{to}"));
            i = j + 1;
        }
    }
    out
}

/// How the container world maps onto this machine: `host:port` of services, container paths.
#[derive(Default)]
struct World {
    /// ("service:port", "127.0.0.1:native").
    hosts: Vec<(String, String)>,
    /// (container path, host path), longest first when applied.
    paths: Vec<(String, PathBuf)>,
}

impl World {
    fn map(&self, value: &str) -> String {
        let mut v = value.to_owned();
        for (from, to) in &self.hosts {
            v = v.replace(&format!("//{from}"), &format!("//{to}"));
        }
        if v.starts_with('/') {
            let mut paths: Vec<_> = self.paths.iter().collect();
            paths.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
            let (c, h) = paths
                .into_iter()
                .find(|(c, _)| v == *c || v.starts_with(&format!("{c}/")))
                .unwrap_or_else(|| panic!("container path {v} has no mapping (a volume or the image)"));
            return format!("{}{}", h.display(), &v[c.len()..]);
        }
        v
    }
}

/// The process a container with this image, args and environment runs, on this machine.
fn spawn_roadhex(args: &[String], env: &BTreeMap<String, String>, world: &World, home: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roadhex"));
    cmd.args(args.iter().map(|a| world.map(a)))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home);
    for (k, v) in env {
        let v = match k.as_str() {
            // Distinct ports on loopback; every container listens on its own 8080.
            "ROADHEX_LISTEN" | "ROADHEX_FLIGHT_LISTEN" => "127.0.0.1:0".to_owned(),
            _ => world.map(v),
        };
        cmd.env(k, v);
    }
    // Test-only: the upload is one short drive that the default 200 m trip trimming would
    // swallow whole (the privacy tests cover trimming); logs at warn.
    cmd.env("ROADHEX_TRIM_DEFAULT_M", "0").env("ROADHEX_TRIM_MIN_M", "0").env("RUST_LOG", "warn");
    std::fs::create_dir_all(home).expect("home");
    Server::spawn(cmd, home)
}

/// The image's health check script (deploy/healthcheck.sh) against a running process.
fn healthcheck(args: &[String], listen: &str) -> bool {
    Command::new("bash")
        .arg(deploy("healthcheck.sh"))
        .args(args)
        .env("ROADHEX_LISTEN", listen)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn listen_of(server: &Server) -> String {
    server.url.strip_prefix("http://").expect("http url").to_owned()
}

// --- the tests ---------------------------------------------------------------------------------

/// The runtime stage's ENV, what a container of the image starts with.
fn image_env() -> BTreeMap<String, String> {
    dockerfile(&deploy("Dockerfile")).last().expect("runtime stage").env()
}

/// Ports the runtime stage EXPOSEs.
fn exposed(runtime: &Stage) -> BTreeSet<u16> {
    runtime.all("EXPOSE").flat_map(|e| e.split_whitespace()).map(|p| p.parse().expect("port")).collect()
}

/// Whether the runtime stage installs a command of this name.
fn installed(runtime: &Stage, name: &str) -> bool {
    runtime.copies().iter().any(|(_, _, dest)| dest == &format!("/usr/local/bin/{name}"))
}

#[test]
fn dockerfile_builds_and_starts_what_the_node_runs() {
    let acc = serve_help();
    let stages = dockerfile(&deploy("Dockerfile"));
    let runtime = stages.last().expect("stages");
    assert_eq!(runtime.from, "debian:bookworm-slim");
    let image_env = runtime.env();
    acc.check_env("Dockerfile ENV", &image_env);
    assert_eq!(runtime.exec_form("ENTRYPOINT"), ["roadhex"]);
    acc.check_args("Dockerfile CMD", &runtime.exec_form("CMD"));
    let user = runtime.all("USER").last().expect("USER");
    let uid: u32 = user.split(':').next().and_then(|u| u.parse().ok()).expect("numeric USER (runAsNonRoot)");
    assert!(uid > 0, "non-root user");
    assert!(exposed(runtime).contains(&port_of(&image_env["ROADHEX_LISTEN"])), "EXPOSE the listen port");
    // The health check script is installed under the name HEALTHCHECK (and compose) call.
    let hc = runtime.exec_form("HEALTHCHECK");
    let copies = runtime.copies();
    assert!(installed(runtime, &hc[0]) && hc[1] == "/healthz", "HEALTHCHECK {hc:?}");
    assert!(copies.iter().any(|(_, src, _)| src == &["deploy/healthcheck.sh".to_owned()]));

    // Builder: the package list setup.sh reads, the Makefile's features, the models.
    let builder = &stages[0];
    assert!(builder.from.starts_with("rust:1.95-bookworm"), "{}", builder.from);
    assert!(read(&deploy("setup.sh")).contains("apt-packages.txt"), "setup.sh reads the shared list");
    assert!(builder.copies().iter().any(|(_, src, _)| src == &["deploy/apt-packages.txt".to_owned()]));
    let makefile = read(&deploy("../Makefile"));
    let features =
        makefile.lines().find_map(|l| l.strip_prefix("CARGO_FEATURES := --features ")).expect("features");
    assert!(builder.all("ARG").any(|a| a == format!("FEATURES={features}")), "image features = Makefile's");
    let models = &image_env["ROADHEX_MODELS"];
    assert!(
        builder.all("RUN").any(|r| r.contains(&format!("ROADHEX_MODELS={models} bash deploy/models.sh")))
    );
    assert!(copies.iter().any(|(from, src, dest)| from.as_deref() == Some("builder")
        && src == std::slice::from_ref(models)
        && dest == models));
    // The web map's files land where the tiles role looks: ROADHEX_WEB_DIR/node_modules/…
    let web = &image_env["ROADHEX_WEB_DIR"];
    let dist = format!("{web}/node_modules/maplibre-gl/dist/");
    for f in ["maplibre-gl.js", "maplibre-gl.css"] {
        assert!(
            copies.iter().any(|(_, src, dest)| dest == &dist && src.iter().any(|s| s.ends_with(f))),
            "{f}"
        );
    }
    let web_stage = stages.iter().find(|s| {
        s.copies().iter().any(|(_, src, _)| src.contains(&"deploy/web/package-lock.json".to_owned()))
    });
    assert!(
        web_stage.is_some_and(|s| s.all("RUN").any(|r| r.starts_with("npm ci"))),
        "web stage from the lockfile"
    );
    // The s3s-fs image is the version the tests install.
    let s3s = dockerfile(&deploy("s3s-fs.Dockerfile"));
    let s3s_sh = read(&deploy("s3.sh"));
    let version =
        s3s_sh.lines().find_map(|l| l.strip_prefix("VERSION=")).and_then(|v| v.split_whitespace().next());
    assert!(
        s3s[0].all("ARG").any(|a| Some(a.strip_prefix("S3S_FS_VERSION=").unwrap_or_default()) == version)
    );
}

#[test]
fn compose_uses_only_what_the_binary_accepts() {
    let acc = serve_help();
    let stages = dockerfile(&deploy("Dockerfile"));
    let runtime = stages.last().expect("stages");
    let image_env = runtime.env();
    let exposed = exposed(runtime);
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let mut roles_run = BTreeSet::new();
    for (name, svc) in services.iter().filter(|(_, s)| is_roadhex(s)) {
        let what = format!("compose service {name}");
        let args = command_of(svc);
        acc.check_args(&what, &args);
        let env = service_env(svc);
        acc.check_env(&what, &env);
        let mut all_env = image_env.clone();
        all_env.extend(env.clone());
        let roles = roles_of(&args, &all_env);
        roles_run.extend(roles.iter().cloned());
        // Health check: the image's script, on every process that listens, off on the others.
        let disabled = svc["healthcheck"]["disable"] == true;
        assert_eq!(disabled, !has_listener(&roles), "{what}: health check vs listener");
        if !disabled {
            let test = strs(&svc["healthcheck"]["test"]);
            assert!(test[0] == "CMD" && installed(runtime, &test[1]), "{what}: {test:?}");
        }
        // The config file is mounted where ROADHEX_CONFIG points, from a file that exists.
        if let Some(cfg) = env.get("ROADHEX_CONFIG") {
            let (src, _) = volumes(svc).into_iter().find(|(_, dst)| dst == cfg).expect("config mount");
            assert!(deploy(&src).is_file(), "{what}: {src}");
        }
        if let Some(flight) = all_env.get("ROADHEX_FLIGHT_LISTEN") {
            assert!(exposed.contains(&port_of(flight)), "EXPOSE the Flight SQL port");
        }
        for (dep, cond) in svc["depends_on"].as_object().expect("depends_on") {
            assert_eq!(cond["condition"], "service_healthy", "{what} waits for {dep} to be healthy");
        }
    }
    assert_eq!(roles_run, BTreeSet::from(ROLES.map(str::to_owned)), "compose runs every role");
    // Dependencies: healthy ones have a health check, completed ones are one-shot.
    for (name, svc) in services {
        for (dep, cond) in svc["depends_on"].as_object().into_iter().flatten() {
            let d = &services.get(dep).unwrap_or_else(|| panic!("{name} depends on unknown {dep}"));
            match cond["condition"].as_str() {
                Some("service_healthy") => {
                    assert!(d["healthcheck"]["test"].is_array(), "{dep} has no health check")
                }
                Some("service_completed_successfully") => assert_eq!(d["restart"], "no", "{dep} is one-shot"),
                other => panic!("{name} -> {dep}: condition {other:?}"),
            }
        }
        for (src, _) in volumes(svc) {
            if !src.starts_with('.') {
                assert!(c["volumes"].get(&src).is_some(), "{name}: volume {src} is not declared");
            }
        }
    }
}

#[test]
fn k8s_manifests_use_only_what_the_binary_accepts() {
    let acc = serve_help();
    let image_env = image_env();
    let k = k8s();
    let mut k8s_roles = BTreeSet::new();
    for d in k.of_kind("Deployment") {
        let name = d["metadata"]["name"].as_str().expect("name");
        let what = format!("k8s Deployment {name}");
        let pod = &d["spec"]["template"];
        for (key, val) in d["spec"]["selector"]["matchLabels"].as_object().expect("selector") {
            assert_eq!(&pod["metadata"]["labels"][key], val, "{what}: selector matches the pod labels");
        }
        let c = K8s::container(d);
        assert_eq!(c["image"], "roadhex", "{what}: the image kustomization.yaml rewrites");
        assert!(c["command"].is_null(), "{what}: the image's ENTRYPOINT runs");
        let args = strs(&c["args"]);
        acc.check_args(&what, &args);
        let env = k.env(d, &image_env);
        acc.check_env(&what, &env);
        let roles = roles_of(&args, &env);
        k8s_roles.extend(roles.iter().cloned());
        assert!(
            c["resources"]["requests"]["cpu"].is_string() || c["resources"]["requests"]["cpu"].is_number()
        );
        assert!(c["resources"]["limits"]["memory"].is_string(), "{what}: a memory limit");
        // The config file: a ConfigMap volume mounted at ROADHEX_CONFIG's directory.
        let cfg = Path::new(&env["ROADHEX_CONFIG"]);
        let mount = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["mountPath"] == cfg.parent().expect("dir").to_str().expect("utf8"))
            .expect("config mount");
        let vol = pod["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("volume");
        let cm = k
            .named("ConfigMap", vol["configMap"]["name"].as_str().expect("configMap volume"))
            .expect("ConfigMap");
        let file = cfg.file_name().expect("file").to_str().expect("utf8");
        check_config(
            &format!("{what}: {file}"),
            cm["data"][file].as_str().expect("config file in ConfigMap"),
            &acc,
        );
        // Probes exactly where there is a listener, on a declared port that is ROADHEX_LISTEN's.
        let ports: BTreeMap<String, u64> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().expect("port name").to_owned(),
                    p["containerPort"].as_u64().expect("port"),
                )
            })
            .collect();
        for probe in ["readinessProbe", "livenessProbe"] {
            let p = &c[probe]["httpGet"];
            assert_eq!(p.is_object(), has_listener(&roles), "{what}: {probe} iff it listens");
            if p.is_object() {
                let port = ports[p["port"].as_str().expect("named port")];
                assert_eq!(port, u64::from(port_of(&env["ROADHEX_LISTEN"])), "{what}: {probe} port");
            }
        }
        if let Some(flight) = env.get("ROADHEX_FLIGHT_LISTEN") {
            assert_eq!(ports.get("flight").copied(), Some(u64::from(port_of(flight))), "{what}: flight port");
        }
    }
    assert_eq!(k8s_roles, BTreeSet::from(ROLES.map(str::to_owned)), "k8s runs every role");
    for s in k.of_kind("Service") {
        let sel = s["spec"]["selector"].as_object().expect("selector");
        let targets: Vec<&Value> = k
            .of_kind("Deployment")
            .filter(|d| sel.iter().all(|(key, v)| &d["spec"]["template"]["metadata"]["labels"][key] == v))
            .collect();
        assert_eq!(targets.len(), 1, "Service {} selects one Deployment", s["metadata"]["name"]);
        let c = K8s::container(targets[0]);
        for p in s["spec"]["ports"].as_array().expect("ports") {
            let named = c["ports"].as_array().into_iter().flatten().any(|cp| cp["name"] == p["targetPort"]);
            assert!(
                named,
                "Service {}: targetPort {} is a container port",
                s["metadata"]["name"], p["targetPort"]
            );
        }
    }
    let hpa = |name: &str| k.named("HorizontalPodAutoscaler", name).unwrap_or_else(|| panic!("HPA {name}"));
    for h in k.of_kind("HorizontalPodAutoscaler") {
        assert_eq!(h["apiVersion"], "autoscaling/v2");
        let target = &h["spec"]["scaleTargetRef"];
        assert!(
            target["kind"] == "Deployment"
                && k.named("Deployment", target["name"].as_str().expect("name")).is_some()
        );
    }
    let ingest_cpu = &hpa("ingest")["spec"]["metrics"][0];
    assert!(ingest_cpu["type"] == "Resource" && ingest_cpu["resource"]["name"] == "cpu", "{ingest_cpu}");
    let vision_q = &hpa("vision")["spec"]["metrics"][0]["external"]["metric"];
    let rule = &k.adapter["rules"]["external"][0];
    assert_eq!(rule["name"]["as"], vision_q["name"], "the adapter serves the metric the HPA reads");
    assert!(
        rule["seriesQuery"].as_str().expect("query").starts_with(vision_q["name"].as_str().expect("name"))
    );
    // (That the node exports this series with these labels is checked on a running node below.)
}

/// The example config: real keys, and a node with every role starts on it (store, queue and
/// listen address overridden: flags win over the file).
#[test]
fn example_config_keys_are_real_and_a_node_starts_on_it() {
    let acc = serve_help();
    let example = deploy("roadhex.example.toml");
    check_config("roadhex.example.toml", &read(&example), &acc);
    let tmp = tempfile::tempdir().expect("tmp");
    let store = format!("file://{}", tmp.path().join("lake").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roadhex"));
    cmd.args([
        "serve",
        "--config",
        example.to_str().expect("utf8"),
        "--store",
        &store,
        "--queue",
        "embedded",
    ])
    .args(["--listen", "127.0.0.1:0"])
    .env("RUST_LOG", "warn");
    let node = Server::spawn(cmd, tmp.path());
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get_status(&format!("{}{path}", node.url)), 200, "{path} with the example config");
    }
}

#[test]
fn runtime_image_packages_cover_every_linked_library() {
    if Command::new("dpkg-query").arg("--version").output().is_err()
        || Command::new("ldd").arg("--version").output().is_err()
    {
        eprintln!("deploy: dpkg-query or ldd missing (not Debian?): the image's library list is not checked");
        return;
    }
    let stages = dockerfile(&deploy("Dockerfile"));
    let listed = stages.last().expect("runtime").apt_packages();
    assert!(listed.contains("ca-certificates"), "{listed:?}");
    // Every package the list pulls in (Depends and Pre-Depends, as apt-get with
    // --no-install-recommends does), from this machine's package database.
    let db = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${Provides}\t${Pre-Depends}, ${Depends}\n"])
        .output()
        .expect("dpkg-query");
    let mut deps: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut providers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names = |s: &str| -> Vec<String> {
        s.split('|')
            .map(|a| {
                a.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .filter(|a| !a.is_empty())
            .collect()
    };
    for line in String::from_utf8_lossy(&db.stdout).lines() {
        let mut f = line.split('\t');
        let (pkg, provides, depends) =
            (f.next().unwrap_or_default(), f.next().unwrap_or_default(), f.next().unwrap_or_default());
        for p in provides.split(',').flat_map(&names) {
            providers.entry(p).or_default().push(pkg.to_owned());
        }
        deps.insert(pkg.to_owned(), depends.split(',').map(&names).filter(|d| !d.is_empty()).collect());
    }
    let mut closure: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = listed.iter().cloned().collect();
    while let Some(p) = todo.pop() {
        let real = if deps.contains_key(&p) {
            vec![p.clone()]
        } else {
            providers.get(&p).cloned().unwrap_or_default()
        };
        for r in real {
            if closure.insert(r.clone()) {
                for alts in &deps[&r] {
                    // Any installed alternative may be the one apt picks: follow all of them.
                    todo.extend(alts.iter().cloned());
                }
            }
        }
    }
    for p in &listed {
        assert!(
            closure.contains(p),
            "{p} (runtime list) is not installed here, so its libraries cannot be checked"
        );
    }
    let ldd = Command::new("ldd").arg(env!("CARGO_BIN_EXE_roadhex")).output().expect("ldd");
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let libs: Vec<&str> = ldd
        .lines()
        .filter_map(|l| l.split("=> ").nth(1)?.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .collect();
    assert!(libs.iter().any(|l| l.contains("libopencv_core")), "the binary links OpenCV: {ldd}");
    let base = ["libc6", "libgcc-s1", "libstdc++6"];
    // Merged /usr: dpkg knows one of /lib/… and /usr/lib/…; alternatives (BLAS) by their target.
    let candidates: Vec<Vec<String>> = libs
        .iter()
        .map(|lib| {
            let real =
                std::fs::canonicalize(lib).map_or_else(|_| lib.to_string(), |p| p.display().to_string());
            vec![
                lib.to_string(),
                lib.replacen("/lib/", "/usr/lib/", 1),
                real.clone(),
                real.replacen("/usr/lib/", "/lib/", 1),
            ]
        })
        .collect();
    // One dpkg-query for all paths (unknown ones only print to stderr).
    let out =
        Command::new("dpkg-query").arg("-S").args(candidates.iter().flatten()).output().expect("dpkg -S");
    let owners: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("diversion"))
        .filter_map(|l| {
            let (pkgs, path) = l.rsplit_once(": ")?;
            let pkg = pkgs.split(", ").next()?.split(':').next()?;
            Some((path.to_owned(), pkg.to_owned()))
        })
        .collect();
    let mut missing = Vec::new();
    for (lib, cands) in libs.iter().zip(&candidates) {
        let owner = cands
            .iter()
            .find_map(|c| owners.get(c))
            .unwrap_or_else(|| panic!("{lib}: no Debian package owns it"));
        if !base.contains(&owner.as_str()) && !closure.contains(owner) {
            missing.push(format!("{lib} ({owner})"));
        }
    }
    assert!(
        missing.is_empty(),
        "the runtime image lacks the packages of {} libraries: {:?}…",
        missing.len(),
        &missing[..missing.len().min(8)]
    );
}

#[test]
fn compose_and_k8s_roles_run_natively_and_publish_an_upload() {
    let started = Instant::now();
    let acc = serve_help();
    let image_env = image_env();
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut world = World::default();
    // The image's paths: models and web assets as deploy/models.sh and deploy/web.sh install them here.
    let cache = PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/roadhex");
    let host_dir =
        |var: &str, default: &str| std::env::var_os(var).map_or_else(|| cache.join(default), PathBuf::from);
    world.paths.push((image_env["ROADHEX_MODELS"].clone(), host_dir("ROADHEX_MODELS", "models")));
    world.paths.push((image_env["ROADHEX_WEB_DIR"].clone(), host_dir("ROADHEX_WEB_DIR", "web")));
    world.paths.push((image_env["ROADHEX_DATA"].clone(), tmp.path().join("data")));
    let mut helpers = Vec::new();
    let mut nodes: BTreeMap<String, Vec<Server>> = BTreeMap::new();
    let mut s3_keys = (String::new(), String::new());

    for name in start_order(services) {
        let svc = &services[&name];
        // Volumes: named ones become temp dirs, bind mounts the files beside compose.yaml.
        let mut svc_world = World { hosts: world.hosts.clone(), paths: world.paths.clone() };
        for (src, dst) in volumes(svc) {
            let host =
                if src.starts_with('.') { deploy(&src) } else { tmp.path().join("volumes").join(&src) };
            if !src.starts_with('.') {
                std::fs::create_dir_all(&host).expect("volume dir");
            }
            svc_world.paths.push((dst, host));
        }
        let cmd = command_of(svc);
        if is_roadhex(svc) {
            let mut env = image_env.clone();
            env.extend(service_env(svc));
            let replicas = svc["deploy"]["replicas"].as_u64().unwrap_or(1);
            for i in 0..replicas {
                let mut node = spawn_roadhex(&cmd, &env, &svc_world, &tmp.path().join(format!("{name}-{i}")));
                let roles = roles_of(&cmd, &env);
                if has_listener(&roles) {
                    let test = strs(&svc["healthcheck"]["test"]);
                    let listen = listen_of(&node);
                    eventually(&format!("{name}-{i}: {test:?}"), 20, || healthcheck(&test[2..], &listen));
                    // The image's own HEALTHCHECK too.
                    assert!(healthcheck(&["/healthz".to_owned()], &listen), "{name}: HEALTHCHECK");
                    if env.contains_key("ROADHEX_FLIGHT_LISTEN") {
                        assert!(node.next_line().starts_with("flight sql on grpc://"), "{name}: Flight SQL");
                    }
                } else {
                    assert!(node.url.is_empty() && node.alive(), "{name}: runs without a listener");
                }
                nodes.entry(name.clone()).or_default().push(node);
            }
        } else if svc["image"].as_str().is_some_and(|i| i.starts_with("nats:")) {
            // nats-server with the service's flags; client and monitoring ports made native.
            let (client, monitor) = (free_port(), free_port());
            let mut args = Vec::new();
            let mut container_monitor = 0;
            let mut it = cmd.iter();
            while let Some(a) = it.next() {
                args.push(a.clone());
                if a == "-sd" {
                    args.push(svc_world.map(it.next().expect("-sd dir")));
                } else if a == "-m" {
                    container_monitor = it.next().expect("-m port").parse().expect("port");
                    args.push(monitor.to_string());
                }
            }
            assert!(cmd.contains(&"-js".to_owned()), "NATS with JetStream");
            args.extend(["-a", "127.0.0.1", "-p"].map(str::to_owned));
            args.push(client.to_string());
            let child = Command::new(nats_server_bin())
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server");
            helpers.push(Helper(child));
            world.hosts.push((format!("{name}:4222"), format!("127.0.0.1:{client}")));
            let test = strs(&svc["healthcheck"]["test"]);
            let url = map_port(test.last().expect("url"), container_monitor, monitor);
            assert!(test[1] == "wget" && url.starts_with("http://127.0.0.1:"), "{test:?}");
            eventually("nats health check", 10, || get_status(&url) == 200);
        } else if svc["entrypoint"].is_array() {
            // A one-shot (the bucket): its entrypoint and command, container paths mapped.
            let argv: Vec<String> =
                strs(&svc["entrypoint"]).into_iter().chain(cmd).map(|a| svc_world.map(&a)).collect();
            let st = Command::new(&argv[0]).args(&argv[1..]).status().expect("one-shot");
            assert!(st.success(), "{name}: {argv:?}");
        } else {
            assert_eq!(svc["build"]["dockerfile"], "s3s-fs.Dockerfile", "{name}: a service this test knows");
            let port = free_port();
            let mut args = Vec::new();
            let mut container_port = 0;
            let mut it = cmd.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--host" => {
                        it.next();
                        args.extend(["--host".to_owned(), "127.0.0.1".to_owned()]);
                    }
                    "--port" => {
                        container_port = it.next().expect("port").parse().expect("port");
                        args.extend(["--port".to_owned(), port.to_string()]);
                    }
                    "--access-key" | "--secret-key" => {
                        let v = it.next().expect("key").clone();
                        if a == "--access-key" {
                            s3_keys.0 = v.clone()
                        } else {
                            s3_keys.1 = v.clone()
                        }
                        args.extend([a.clone(), v]);
                    }
                    _ => args.push(svc_world.map(a)),
                }
            }
            let child = Command::new(s3s_fs_bin())
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs");
            helpers.push(Helper(child));
            world.hosts.push((format!("{name}:{container_port}"), format!("127.0.0.1:{port}")));
            let test = strs(&svc["healthcheck"]["test"]);
            let argv: Vec<String> = test[1..].iter().map(|a| map_port(a, container_port, port)).collect();
            eventually("s3 health check", 10, || {
                Command::new(&argv[0])
                    .args(&argv[1..])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
        }
    }
    let ingest = &nodes["ingest"];
    assert_eq!(ingest.len(), 2, "two ingest replicas");
    let env = service_env(&services["ingest"]);
    assert_eq!(
        (&env["AWS_ACCESS_KEY_ID"], &env["AWS_SECRET_ACCESS_KEY"]),
        (&s3_keys.0, &s3_keys.1),
        "S3 keys"
    );

    // An upload through the compose topology: manifest and half the frames to one ingest
    // replica, the rest and the commit to the other; vision publishes, tiles and sql serve it.
    let key = ingest[0].register_device("compose");
    let frames = frames();
    let opened: Value =
        ingest[0].post_manifest(&key, &manifest(&key, 1, &frames).to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("capture id").to_owned();
    for (i, (body, sha)) in frames.iter().enumerate() {
        assert_eq!(ingest[i % 2].put_frame(&id, sha, body.clone()).status(), 201);
    }
    assert_eq!(ingest[1].commit(&id).status(), 202);
    // The queue depth the vision HPA scales on, as the node exports it.
    let metrics = get(&format!("{}/metrics", ingest[0].url)).expect("metrics").text().expect("text");
    let k = k8s();
    let q = &k.named("HorizontalPodAutoscaler", "vision").expect("hpa")["spec"]["metrics"][0]["external"]["metric"];
    let labels: Vec<String> = q["selector"]["matchLabels"]
        .as_object()
        .expect("labels")
        .iter()
        .map(|(l, v)| format!("{l}=\"{}\"", v.as_str().expect("str")))
        .collect();
    let series = format!("{}{{{}}}", q["name"].as_str().expect("name"), labels.join(","));
    assert!(metrics.lines().any(|l| l.starts_with(&series)), "no {series} in /metrics:\n{metrics}");
    let mut status = Value::Null;
    eventually("published through compose", 90, || {
        status = ingest[0].status(&id);
        assert_ne!(status["state"], "rejected", "{status}");
        status["state"] == "published"
    });
    let tiles = &nodes["tiles"][0];
    eventually("tiles serves the frame", 30, || {
        get_status(&format!("{}/v1/frames/{id}-0000.jpg", tiles.url)) == 200
    });
    assert_eq!(
        get_status(&format!("{}/web/maplibre-gl.js", tiles.url)),
        200,
        "web assets at ROADHEX_WEB_DIR"
    );
    assert_eq!(get_status(&format!("{}/v1/contributors/compose/rewards", tiles.url)), 200, "rewards role");
    let sql = &nodes["sql"][0];
    let token = &service_env(&services["sql"])["ROADHEX_SQL_TOKEN"];
    let rows: Value = reqwest::blocking::Client::new()
        .post(format!("{}/v1/sql", sql.url))
        .bearer_auth(token)
        .header("accept", "application/json")
        .body("SELECT count(*) AS n FROM frames")
        .send()
        .expect("sql")
        .json()
        .expect("json");
    let published =
        status["frames"].as_array().expect("frames").iter().filter(|f| f["state"] == "published").count();
    assert_eq!(rows[0]["n"], published, "{rows}");
    assert!(published > 0);

    // Every k8s Deployment, on the same NATS and S3: its probes answer, vision has no listener.
    let k8s_cfg = tmp.path().join("k8s-config");
    std::fs::create_dir_all(&k8s_cfg).expect("dir");
    let mut kworld = World { hosts: world.hosts.clone(), paths: world.paths.clone() };
    for d in k.of_kind("Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        let cont = K8s::container(d);
        for m in cont["volumeMounts"].as_array().into_iter().flatten() {
            let vol = pod["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == m["name"])
                .expect("volume");
            let host = match vol["configMap"]["name"].as_str() {
                Some(cm) => {
                    for (file, text) in
                        k.named("ConfigMap", cm).expect("cm")["data"].as_object().expect("data")
                    {
                        std::fs::write(k8s_cfg.join(file), text.as_str().expect("text")).expect("write");
                    }
                    k8s_cfg.clone()
                }
                None => tmp.path().join("k8s-volumes").join(m["name"].as_str().expect("name")),
            };
            kworld.paths.push((m["mountPath"].as_str().expect("path").to_owned(), host));
        }
    }
    // Test-only: the k8s Secret is a template and the ConfigMap names a real S3; point both at
    // this machine's s3s-fs.
    let s3 = world.hosts.iter().find(|(h, _)| h.starts_with("s3:")).expect("s3").1.clone();
    let overrides = [
        ("AWS_ENDPOINT", format!("http://{s3}")),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", s3_keys.0.clone()),
        ("AWS_SECRET_ACCESS_KEY", s3_keys.1.clone()),
    ];
    let mut k8s_nodes = Vec::new();
    for d in k.of_kind("Deployment") {
        let name = d["metadata"]["name"].as_str().expect("name");
        let cont = K8s::container(d);
        let args = strs(&cont["args"]);
        let mut env = k.env(d, &image_env);
        env.extend(overrides.iter().map(|(a, b)| ((*a).to_owned(), b.clone())));
        acc.check_args(name, &args);
        let mut node = spawn_roadhex(&args, &env, &kworld, &tmp.path().join(format!("k8s-{name}")));
        for probe in ["readinessProbe", "livenessProbe"] {
            if let Some(path) = cont[probe]["httpGet"]["path"].as_str() {
                let url = format!("{}{path}", node.url);
                eventually(&format!("k8s {name} {probe} {path}"), 20, || get_status(&url) == 200);
            }
        }
        if !has_listener(&roles_of(&args, &env)) {
            assert!(node.url.is_empty() && node.alive(), "k8s {name}: no listener, no probes");
        }
        k8s_nodes.push(node);
    }
    drop(k8s_nodes);
    drop(nodes);
    drop(helpers);
    eprintln!(
        "deploy: compose topology and k8s Deployments ran natively in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
