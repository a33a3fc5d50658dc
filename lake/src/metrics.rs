//! Process-wide counters, gauges and latency histograms in the Prometheus text format. Every stage
//! records into one registry; the node serves [`render`] at `GET /metrics`. Small on purpose: a few
//! dozen series, a mutex per update, no label cardinality beyond error codes and stage names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// Histogram bucket bounds in seconds (request and stage latencies).
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Registry {
    help: BTreeMap<&'static str, (&'static str, &'static str)>,
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    let m = R.get_or_init(|| Mutex::new(Registry::default()));
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn labels(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Adds `by` to counter `name` (`_total` by convention).
pub fn count(name: &'static str, help: &'static str, l: &[(&'static str, &str)], by: f64) {
    let mut r = registry();
    r.help.entry(name).or_insert((help, "counter"));
    *r.counters.entry((name, labels(l))).or_default() += by;
}

/// Sets gauge `name`.
pub fn gauge(name: &'static str, help: &'static str, l: &[(&'static str, &str)], value: f64) {
    let mut r = registry();
    r.help.entry(name).or_insert((help, "gauge"));
    r.gauges.insert((name, labels(l)), value);
}

/// Records one duration in histogram `name` (`_seconds` by convention).
pub fn observe(name: &'static str, help: &'static str, l: &[(&'static str, &str)], seconds: f64) {
    let mut r = registry();
    r.help.entry(name).or_insert((help, "histogram"));
    let h = r.histograms.entry((name, labels(l))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if seconds <= *bound {
            h.buckets[i] += 1;
        }
    }
    h.count += 1;
    h.sum += seconds;
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// Every series, in the Prometheus text exposition format 0.0.4.
pub fn render() -> String {
    let r = registry();
    let mut out = String::new();
    for (name, (help, kind)) in &r.help {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for ((n, l), v) in r.counters.iter().chain(r.gauges.iter()).filter(|((n, _), _)| n == name) {
            let _ = writeln!(out, "{n}{} {v}", label_text(l, None));
        }
        for ((n, l), h) in r.histograms.iter().filter(|((n, _), _)| n == name) {
            for (bound, c) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(out, "{n}_bucket{} {c}", label_text(l, Some(("le", bound.to_string()))));
            }
            let _ = writeln!(out, "{n}_bucket{} {}", label_text(l, Some(("le", "+Inf".into()))), h.count);
            let _ = writeln!(
                out,
                "{n}_sum{} {}\n{n}_count{} {}",
                label_text(l, None),
                h.sum,
                label_text(l, None),
                h.count
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        count("test_things_total", "Things.", &[("code", "a\"b")], 2.0);
        count("test_things_total", "Things.", &[("code", "a\"b")], 1.0);
        gauge("test_depth", "Depth.", &[], 7.0);
        observe("test_latency_seconds", "Latency.", &[("stage", "x")], 0.02);
        let text = render();
        assert!(
            text.contains("# TYPE test_things_total counter\ntest_things_total{code=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("test_depth 7\n"));
        assert!(text.contains("test_latency_seconds_bucket{stage=\"x\",le=\"0.01\"} 0\n"));
        assert!(text.contains("test_latency_seconds_bucket{stage=\"x\",le=\"0.025\"} 1\n"));
        assert!(text.contains("test_latency_seconds_bucket{stage=\"x\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("test_latency_seconds_count{stage=\"x\"} 1\n"));
    }
}
