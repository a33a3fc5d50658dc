//! Fraud flags per capture, judged with what was visible when an epoch closed (captures committed
//! by its cutoff), so a later upload never changes a closed epoch. A flagged capture earns nothing
//! and does not drain the freshness of the cells it claims.

use crate::config::RewardsConfig;
use crate::epoch::Epoch;
use crate::input::{FrameHash, Inputs};
use roadhex_schemas::geo::haversine_m;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// A frame is the same image (dHash within the bound) as a frame of an earlier-committed capture.
    DuplicateImage,
    /// Impossible speed between the end of one capture and the start of the next of one device.
    Teleport,
    /// Two captures of one device overlap in time.
    OverlappingCaptures,
    /// Frame, device and server clocks disagree beyond the bound.
    ClockSkew,
    /// The device key was revoked before the epoch's cutoff.
    RevokedKey,
}

impl Flag {
    pub const ALL: [Flag; 5] =
        [Flag::DuplicateImage, Flag::Teleport, Flag::OverlappingCaptures, Flag::ClockSkew, Flag::RevokedKey];

    pub fn code(self) -> &'static str {
        match self {
            Self::DuplicateImage => "duplicate_image",
            Self::Teleport => "teleport",
            Self::OverlappingCaptures => "overlapping_captures",
            Self::ClockSkew => "clock_skew",
            Self::RevokedKey => "revoked_key",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Flags of a capture as a bit set.
pub type Flags = u8;

/// Comma-separated codes in a fixed order, or None when clean.
pub fn codes(flags: Flags) -> Option<String> {
    let v: Vec<&str> = Flag::ALL.iter().filter(|f| flags & f.bit() != 0).map(|f| f.code()).collect();
    (!v.is_empty()).then(|| v.join(","))
}

/// Flags of every capture (indexed like `inputs.captures`) as judged for `epoch`.
pub fn detect(inputs: &Inputs, cfg: &RewardsConfig, epoch: &Epoch) -> Vec<Flags> {
    // What the epoch's own run could see: committed by its cutoff and started before its end
    // (a later epoch's run loads later captures too; they must not change this epoch's flags).
    let visible: Vec<bool> = inputs
        .captures
        .iter()
        .map(|c| c.committed_ms <= epoch.cutoff_ms && c.start_ms < epoch.end_ms)
        .collect();
    let mut flags = vec![0u8; inputs.captures.len()];
    duplicates(inputs, cfg, epoch, &visible, &mut flags);
    device_tracks(inputs, cfg, &visible, &mut flags);
    let skew = i64::from(cfg.fraud.max_clock_skew_s) * 1000;
    for (i, c) in inputs.captures.iter().enumerate() {
        let late_frames = c.end_ms > c.committed_ms + skew;
        let device_ahead = c.created_ms > c.committed_ms + skew;
        let closed_early = c.created_ms + skew < c.end_ms;
        if late_frames || device_ahead || closed_early {
            flags[i] |= Flag::ClockSkew.bit();
        }
        if inputs.revoked_at.get(c.device as usize).copied().flatten().is_some_and(|t| t <= epoch.cutoff_ms) {
            flags[i] |= Flag::RevokedKey.bit();
        }
    }
    for (f, v) in flags.iter_mut().zip(&visible) {
        if !v {
            *f = 0;
        }
    }
    flags
}

/// Groups larger than this compare exact hashes only (quadratic work stays bounded on degenerate
/// inputs such as uniform frames).
const MAX_GROUP: usize = 4096;

/// Near-duplicate search by pigeonhole: with distance ≤ d, two hashes agree exactly on at least
/// one of d+1 disjoint bit blocks, so only frames sharing a block value are compared.
fn duplicates(inputs: &Inputs, cfg: &RewardsConfig, epoch: &Epoch, visible: &[bool], flags: &mut [Flags]) {
    let from = epoch.start_ms - cfg.duplicate_lookback_ms();
    let frames: Vec<&FrameHash> = inputs
        .frames
        .iter()
        .filter(|f| visible[f.capture as usize] && f.t_ms >= from && f.t_ms < epoch.end_ms)
        .collect();
    let d = cfg.fraud.max_phash_distance;
    let blocks = d + 1;
    // One pass per bit block, in parallel; a capture is a copy if any pass says so.
    let passes: Vec<Vec<bool>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..blocks)
            .map(|b| {
                let frames = &frames;
                s.spawn(move || block_pass(inputs, frames, b, blocks, d))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let later: Vec<bool> = (0..inputs.captures.len()).map(|c| passes.iter().any(|p| p[c])).collect();
    for (f, l) in flags.iter_mut().zip(later) {
        if l {
            *f |= Flag::DuplicateImage.bit();
        }
    }
}

/// Frames sharing bit block `b` (of `blocks`) compared pairwise: which captures hold a copy of an
/// earlier capture's frame.
fn block_pass(inputs: &Inputs, frames: &[&FrameHash], b: u32, blocks: u32, d: u32) -> Vec<bool> {
    // Earlier-committed capture is the original; ties by capture id (the index order). A compact
    // copy of the commit times keeps the per-frame lookups in cache.
    let commit: Vec<i64> = inputs.captures.iter().map(|c| c.committed_ms).collect();
    let mut later = vec![false; inputs.captures.len()];
    let lo = 64 * b / blocks;
    let hi = 64 * (b + 1) / blocks;
    let mask = if hi - lo == 64 { u64::MAX } else { ((1u64 << (hi - lo)) - 1) << lo };
    let (entries, bounds) = by_block(frames, hi - lo, |f| (f.phash & mask) >> lo);
    let mut group: Vec<((i64, u32), u64)> = Vec::new();
    for w in bounds.windows(2) {
        let run = &entries[w[0] as usize..w[1] as usize];
        if run.len() < 2 {
            continue;
        }
        group.clear();
        group.extend(run.iter().map(|&(c, phash)| ((commit[c as usize], c), phash)));
        if group.len() > MAX_GROUP {
            exact_copies(&mut group, &mut later);
            continue;
        }
        group.sort_unstable();
        for (j, cur) in group.iter().enumerate() {
            let c = cur.0.1 as usize;
            if later[c] {
                continue;
            }
            later[c] =
                group[..j].iter().any(|prev| prev.0.1 != cur.0.1 && (prev.1 ^ cur.1).count_ones() <= d);
        }
    }
    later
}

/// Frames as (capture, phash) grouped by block value, with the group boundaries: a counting sort
/// for narrow blocks (the default d = 2 gives 21–22 bits), a comparison sort otherwise.
fn by_block(
    frames: &[&FrameHash],
    width: u32,
    key: impl Fn(&FrameHash) -> u64,
) -> (Vec<(u32, u64)>, Vec<u32>) {
    if width > 24 {
        let mut keyed: Vec<(u64, u32, u64)> = frames.iter().map(|f| (key(f), f.capture, f.phash)).collect();
        keyed.sort_unstable();
        let mut bounds = vec![0u32];
        for (i, w) in keyed.windows(2).enumerate() {
            if w[0].0 != w[1].0 {
                bounds.push(i as u32 + 1);
            }
        }
        bounds.push(keyed.len() as u32);
        return (keyed.into_iter().map(|(_, c, p)| (c, p)).collect(), bounds);
    }
    let mut bounds = vec![0u32; (1usize << width) + 1];
    for f in frames {
        bounds[key(f) as usize + 1] += 1;
    }
    for i in 1..bounds.len() {
        bounds[i] += bounds[i - 1];
    }
    let mut next = bounds.clone();
    let mut out = vec![(0u32, 0u64); frames.len()];
    for f in frames {
        let slot = &mut next[key(f) as usize];
        out[*slot as usize] = (f.capture, f.phash);
        *slot += 1;
    }
    (out, bounds)
}

/// Linear fallback for huge groups: among frames with the same hash, every capture after the
/// first one to upload it is a copy.
fn exact_copies(group: &mut [((i64, u32), u64)], later: &mut [bool]) {
    group.sort_unstable_by_key(|&(order, phash)| (phash, order));
    for run in group.chunk_by(|a, b| a.1 == b.1) {
        let first = run[0].0.1;
        for &((_, c), _) in run {
            if c != first {
                later[c as usize] = true;
            }
        }
    }
}

/// Overlaps and teleports between consecutive captures of each device.
fn device_tracks(inputs: &Inputs, cfg: &RewardsConfig, visible: &[bool], flags: &mut [Flags]) {
    let mut by_device: Vec<Vec<usize>> = vec![Vec::new(); inputs.devices.len()];
    for (i, c) in inputs.captures.iter().enumerate() {
        if visible[i] {
            by_device[c.device as usize].push(i);
        }
    }
    for caps in &mut by_device {
        caps.sort_by_key(|&i| (inputs.captures[i].start_ms, i));
        // The capture reaching furthest in time so far: anything starting before its end overlaps.
        let mut reach: Option<usize> = None;
        for w in 0..caps.len() {
            let (i, c) = (caps[w], &inputs.captures[caps[w]]);
            if let Some(r) = reach
                && c.start_ms < inputs.captures[r].end_ms
            {
                flags[i] |= Flag::OverlappingCaptures.bit();
                flags[r] |= Flag::OverlappingCaptures.bit();
            }
            if reach.is_none_or(|r| c.end_ms > inputs.captures[r].end_ms) {
                reach = Some(i);
            }
            let Some(&p) = w.checked_sub(1).and_then(|k| caps.get(k)) else { continue };
            let (Some(a), Some(b)) = (inputs.captures[p].last, c.first) else { continue };
            let dt_s = ((b.0 - a.0) as f64 / 1000.0).max(1.0);
            let dist = haversine_m(a.1, a.2, b.1, b.2);
            if b.0 >= a.0 && dist > cfg.fraud.teleport_min_m && dist / dt_s > cfg.fraud.max_speed_mps {
                flags[i] |= Flag::Teleport.bit();
                flags[p] |= Flag::Teleport.bit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Capture, FrameHash};

    fn capture(id: &str, device: u32, t0: i64, t1: i64, committed: i64, pos: (f64, f64)) -> Capture {
        Capture {
            id: id.into(),
            device,
            contributor: 0,
            committed_ms: committed,
            created_ms: t1 + 1000,
            start_ms: t0,
            end_ms: t1,
            first: Some((t0, pos.0, pos.1)),
            last: Some((t1, pos.0, pos.1 + 0.001)),
        }
    }

    fn inputs(captures: Vec<Capture>, frames: Vec<FrameHash>) -> Inputs {
        Inputs {
            devices: vec!["a".into(), "b".into()],
            contributors: vec!["x".into()],
            mounts: vec!["front".into()],
            revoked_at: vec![None, None],
            captures,
            frames,
            observations: Vec::new(),
        }
    }

    fn flag_of(f: Flags) -> Option<String> {
        codes(f)
    }

    #[test]
    fn each_kind_is_caught_and_honest_work_is_not() {
        let cfg = RewardsConfig::default();
        let e = Epoch::containing(&cfg, 10_000_000);
        let (s, m) = (e.start_ms, 60_000);
        let sf = (37.77, -122.42);
        let caps = vec![
            capture("c0", 0, s, s + m, s + 2 * m, sf), // honest original
            capture("c1", 0, s + 2 * m, s + 3 * m, s + 4 * m, sf), // honest next capture
            capture("c2", 0, s + 3 * m + 30_000, s + 4 * m, s + 5 * m, (38.5, -121.5)), // teleport
            capture("c3", 1, s + 10 * m, s + 12 * m, s + 13 * m, sf), // revoked device, copies c0
            capture("c4", 0, s + 200 * m, s + 202 * m, s + 203 * m, sf), // overlaps c5
            capture("c5", 0, s + 201 * m, s + 204 * m, s + 205 * m, sf),
            capture("c6", 0, s + 400 * m, s + 401 * m, s + 300 * m, sf), // frames after commit
        ];
        let frames = vec![
            FrameHash { capture: 0, t_ms: s, phash: 0xF0F0_F0F0_1234_5678 },
            FrameHash { capture: 3, t_ms: s + 10 * m, phash: 0xF0F0_F0F0_1234_5679 }, // 1 bit off
            FrameHash { capture: 1, t_ms: s + 2 * m, phash: 0x0F0F_0F0F_8765_4321 },
        ];
        let mut inp = inputs(caps, frames);
        inp.revoked_at = vec![None, Some(e.cutoff_ms + 1)];
        let f = detect(&inp, &cfg, &e);
        let got: Vec<Option<String>> = f.iter().map(|&x| flag_of(x)).collect();
        assert_eq!(got[0], None, "the original keeps its credit");
        assert_eq!(got[1].as_deref(), Some("teleport"), "the capture before the jump is suspect too");
        assert_eq!(got[2].as_deref(), Some("teleport"));
        assert_eq!(got[3].as_deref(), Some("duplicate_image"), "revoked after the cutoff: not a flag");
        assert_eq!(got[4].as_deref(), Some("overlapping_captures"));
        assert_eq!(got[5].as_deref(), Some("overlapping_captures"));
        assert_eq!(got[6].as_deref(), Some("clock_skew"));
        inp.revoked_at = vec![None, Some(e.cutoff_ms)];
        assert_eq!(flag_of(detect(&inp, &cfg, &e)[3]).as_deref(), Some("duplicate_image,revoked_key"));
    }

    #[test]
    fn uploads_after_the_cutoff_are_invisible() {
        let cfg = RewardsConfig::default();
        let e = Epoch::containing(&cfg, 10_000_000);
        let s = e.start_ms;
        let caps = vec![
            capture("c0", 0, s, s + 1000, e.cutoff_ms + 1, (37.0, -122.0)),
            capture("c1", 1, s + 5000, s + 6000, s + 7000, (37.0, -122.0)),
        ];
        let frames = vec![
            FrameHash { capture: 0, t_ms: s, phash: 42 },
            FrameHash { capture: 1, t_ms: s + 5000, phash: 42 },
        ];
        let f = detect(&inputs(caps, frames), &cfg, &e);
        assert_eq!(f, vec![0, 0], "a copy of an image uploaded only after the cutoff is not a copy yet");
    }

    #[test]
    fn huge_groups_of_one_hash_fall_back_to_exact_copies() {
        let cfg = RewardsConfig::default();
        let e = Epoch::containing(&cfg, 10_000_000);
        let n = MAX_GROUP + 10;
        // Every capture on its own device, one minute apart, all the same frame hash except the last.
        let caps: Vec<Capture> = (0..n)
            .map(|i| {
                let t = e.start_ms + i as i64 * 60_000;
                let mut c = capture(&format!("c{i:05}"), 0, t, t + 1000, t + 2000, (37.0, -122.0));
                c.device = u32::try_from(i % 2).expect("small");
                c
            })
            .collect();
        let frames: Vec<FrameHash> = (0..n)
            .map(|i| FrameHash {
                capture: u32::try_from(i).expect("small"),
                t_ms: e.start_ms + i as i64 * 60_000,
                phash: if i == n - 1 { 1 } else { 0 },
            })
            .collect();
        let f = detect(&inputs(caps, frames), &cfg, &e);
        assert_eq!(f[0], 0, "the first upload is the original");
        assert!(f[1..n - 1].iter().all(|&x| x == Flag::DuplicateImage.bit()));
        assert_eq!(f[n - 1], 0, "1 bit off, but huge groups compare exact hashes only");
    }

    #[test]
    fn exact_matching_when_no_distance_is_allowed() {
        let cfg = RewardsConfig {
            fraud: crate::config::FraudConfig { max_phash_distance: 0, ..Default::default() },
            ..RewardsConfig::default()
        };
        let e = Epoch::containing(&cfg, 10_000_000);
        let s = e.start_ms;
        let caps = (0..3)
            .map(|i| {
                capture(
                    &format!("c{i}"),
                    i,
                    s + i64::from(i) * 5000,
                    s + i64::from(i) * 5000 + 1000,
                    s + 60_000,
                    (37.0, -122.0),
                )
            })
            .collect();
        let frames = vec![
            FrameHash { capture: 0, t_ms: s, phash: 77 },
            FrameHash { capture: 1, t_ms: s + 5000, phash: 77 },
            FrameHash { capture: 2, t_ms: s + 10_000, phash: 76 },
        ];
        let mut inp = inputs(caps, frames);
        inp.devices = vec!["a".into(), "b".into(), "c".into()];
        inp.revoked_at = vec![None; 3];
        let f = detect(&inp, &cfg, &e);
        assert_eq!(f, vec![0, Flag::DuplicateImage.bit(), 0]);
    }
}
