//! Every object path in the store, built by typed helpers. Ids are validated newtypes, so no
//! caller-supplied string reaches a path unchecked.
//!
//! ```text
//! raw/captures/{capture}/manifest.json         signed manifest bytes (quarantine, never served)
//! raw/captures/{capture}/manifest.sig          base64 signature
//! raw/captures/{capture}/frames/{sha256}.jpg   original frames
//! state/captures/{capture}.json                upload/processing state of a capture
//! registry/devices/{device}.json               device registration
//! registry/sequences/{device}/{seq:020}        claim of a sequence number (created once)
//! registry/challenges/{nonce}.json             pending registration challenge
//! queue/{queue}/{item}.json                    embedded work-queue items
//! frames/{capture}/{index:04}.jpg                 published (anonymized) frames
//! frames/{capture}/{index:04}-{version}.jpg       a frame re-blurred by a redaction
//! registry/zones/{zone}.json                   privacy zone (contributor or network-wide)
//! registry/contributors/{hash}.json            a contributor's privacy settings
//! registry/tracks/{device}/{start:020}-{capture}.json  where a capture runs (trip trimming)
//! state/redactions/{redaction}.json            a redaction request and its current step
//! tables/{table}/date={YYYY-MM-DD}/part-{key}.parquet
//! ```

use object_store::path::Path;
/// The path type of the store, for callers that hold a key read from a table.
pub use object_store::path::Path as ObjectPath;
use roadhex_schemas::tables::{PARTITION_COLUMN, Table};
use roadhex_schemas::{CaptureId, DeviceId};

pub fn raw_capture_prefix(capture: &CaptureId) -> Path {
    Path::from(format!("raw/captures/{capture}"))
}

pub fn raw_manifest(capture: &CaptureId) -> Path {
    Path::from(format!("raw/captures/{capture}/manifest.json"))
}

pub fn raw_signature(capture: &CaptureId) -> Path {
    Path::from(format!("raw/captures/{capture}/manifest.sig"))
}

pub fn raw_frames_prefix(capture: &CaptureId) -> Path {
    Path::from(format!("raw/captures/{capture}/frames"))
}

/// `sha256` must already be validated as 64 lowercase hex digits.
pub fn raw_frame(capture: &CaptureId, sha256: &str) -> Path {
    Path::from(format!("raw/captures/{capture}/frames/{sha256}.jpg"))
}

/// The frame hash from a raw frame path, if it is one.
pub fn sha256_of_raw_frame(path: &Path) -> Option<&str> {
    path.filename()?.strip_suffix(".jpg")
}

/// A published, anonymized frame.
pub fn published_frame(capture: &CaptureId, index: usize) -> Path {
    Path::from(format!("frames/{capture}/{index:04}.jpg"))
}

/// A published frame after a redaction re-blurred it; `version` is the redaction id (hex).
pub fn redacted_frame(capture: &CaptureId, index: usize, version: &str) -> Path {
    Path::from(format!("frames/{capture}/{index:04}-{version}.jpg"))
}

pub fn published_frames_prefix() -> Path {
    Path::from("frames")
}

pub fn raw_captures_prefix() -> Path {
    Path::from("raw/captures")
}

/// The capture of a raw object path (`raw/captures/{capture}/…`).
pub fn capture_of_raw(path: &Path) -> Option<CaptureId> {
    let mut parts = path.parts();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) if a.as_ref() == "raw" && b.as_ref() == "captures" => {
            CaptureId::parse(c.as_ref())
        }
        _ => None,
    }
}

/// Splits a public frame id into its capture and frame index.
pub fn parse_frame_id(id: &str) -> Option<(CaptureId, usize)> {
    let (capture, index) = id.rsplit_once('-')?;
    if index.len() != 4 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((CaptureId::parse(capture)?, index.parse().ok()?))
}

/// `zone` must be 32 lowercase hex digits (the server generates it).
pub fn zone(zone: &str) -> Path {
    Path::from(format!("registry/zones/{zone}.json"))
}

pub fn zones_prefix() -> Path {
    Path::from("registry/zones")
}

/// Contributor ids are free text; their path is a hash, so no id can shape a path.
pub fn contributor_privacy(contributor: &str) -> Path {
    let h = roadhex_schemas::ids::sha256_hex(contributor.as_bytes());
    Path::from(format!("registry/contributors/{}.json", &h[..32]))
}

pub fn track(device: &DeviceId, start_ms: i64, capture: &CaptureId) -> Path {
    Path::from(format!("registry/tracks/{device}/{:020}-{capture}.json", start_ms.max(0)))
}

pub fn tracks_prefix(device: &DeviceId) -> Path {
    Path::from(format!("registry/tracks/{device}"))
}

/// `redaction` must be 32 lowercase hex digits (the server generates it).
pub fn redaction_state(redaction: &str) -> Path {
    Path::from(format!("state/redactions/{redaction}.json"))
}

pub fn redaction_states_prefix() -> Path {
    Path::from("state/redactions")
}

/// Public id of a published frame (stable across re-runs).
pub fn frame_id(capture: &CaptureId, index: usize) -> String {
    format!("{capture}-{index:04}")
}

pub fn capture_state(capture: &CaptureId) -> Path {
    Path::from(format!("state/captures/{capture}.json"))
}

pub fn capture_states_prefix() -> Path {
    Path::from("state/captures")
}

pub fn device(device: &DeviceId) -> Path {
    Path::from(format!("registry/devices/{device}.json"))
}

pub fn devices_prefix() -> Path {
    Path::from("registry/devices")
}

pub fn sequence_claim(device: &DeviceId, sequence: u64) -> Path {
    Path::from(format!("registry/sequences/{device}/{sequence:020}"))
}

pub fn sequences_prefix(device: &DeviceId) -> Path {
    Path::from(format!("registry/sequences/{device}"))
}

/// `nonce` must be hex (the server generates it).
pub fn challenge(nonce: &str) -> Path {
    Path::from(format!("registry/challenges/{nonce}.json"))
}

pub fn challenges_prefix() -> Path {
    Path::from("registry/challenges")
}

pub fn queue_prefix(queue: &str) -> Path {
    Path::from(format!("queue/{queue}"))
}

pub fn queue_item(queue: &str, item: &str) -> Path {
    Path::from(format!("queue/{queue}/{item}.json"))
}

pub fn table_prefix(table: Table) -> Path {
    Path::from(format!("tables/{}", table.name()))
}

/// `date` is `YYYY-MM-DD`; `key` names the flush (deterministic keys make rewrites idempotent).
pub fn table_file(table: Table, date: &str, key: &str) -> Path {
    Path::from(format!("tables/{}/{PARTITION_COLUMN}={date}/part-{key}.parquet", table.name()))
}

/// File-name prefix of compaction outputs; flush keys never start with `compact-`.
pub const COMPACT_PREFIX: &str = "part-compact-";
/// Directory, inside a partition, of the markers that commit compactions.
pub const MARKER_DIR: &str = "_compacted";

/// Output of compacting a partition's files; `id` is derived from the inputs.
pub fn compacted_file(table: Table, date: &str, id: &str) -> Path {
    Path::from(format!("tables/{}/{PARTITION_COLUMN}={date}/{COMPACT_PREFIX}{id}.parquet", table.name()))
}

/// The marker that makes a compaction visible (and its inputs invisible) in one put.
pub fn compaction_marker(table: Table, date: &str, id: &str) -> Path {
    Path::from(format!("tables/{}/{PARTITION_COLUMN}={date}/{MARKER_DIR}/{id}.json", table.name()))
}

/// The lock one compactor holds while it works on the tables.
pub fn compaction_lock() -> Path {
    Path::from("tables/_compaction.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let c = CaptureId::from_manifest_bytes(b"m");
        assert_eq!(raw_frame(&c, "ab").as_ref(), format!("raw/captures/{c}/frames/ab.jpg"));
        assert_eq!(sha256_of_raw_frame(&raw_frame(&c, "ab")), Some("ab"));
        assert_eq!(
            table_file(Table::Captures, "2026-11-23", "x").as_ref(),
            "tables/captures/date=2026-11-23/part-x.parquet"
        );
        let d = DeviceId::from_public_key(&[0; 32]);
        assert!(sequence_claim(&d, 7).as_ref().ends_with("/00000000000000000007"));
        assert_eq!(parse_frame_id(&frame_id(&c, 12)), Some((c.clone(), 12)));
        assert_eq!(parse_frame_id("nope-0001"), None);
        assert_eq!(capture_of_raw(&raw_frame(&c, "ab")), Some(c.clone()));
        assert!(!contributor_privacy("../x").as_ref().contains(".."));
    }
}
