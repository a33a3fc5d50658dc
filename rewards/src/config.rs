//! The rewards rules: one versioned, TOML-loadable struct. The version is written into every
//! `epochs` row, so a ledger always says which rules produced it.

use crate::error::{Result, RewardsError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardsConfig {
    /// Recorded with each epoch; change it whenever any rule below changes.
    pub version: String,
    /// Epoch length in days; epochs start on Mondays 00:00 UTC (weekly: ISO weeks).
    pub epoch_days: u32,
    /// Uploads committed later than this many hours after the epoch's end do not count.
    pub cutoff_hours: u32,
    /// Days a cell's freshness multiplier takes to refill linearly from 0 to 1.
    pub refill_days: u32,
    /// Tokens split per epoch, in base units.
    pub budget: u64,
    /// Weight of cells outside every region.
    pub default_weight: f64,
    /// Optional regions with their own weight and progress tiers.
    pub regions: Vec<Region>,
    /// Progress multipliers by share of a region's road cells covered in the epoch (MIP-7).
    pub progress_tiers: Vec<Tier>,
    pub fraud: FraudConfig,
    /// The node runs an epoch this many hours after its cutoff (time for vision to publish).
    pub settle_hours: u32,
}

/// A region: a set of H3 resolution-6 cells sharing a weight and a progress target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    /// H3 resolution-6 cells (hex, e.g. "862830827ffffff").
    pub cells: Vec<String>,
    pub weight: f64,
    /// Road cells (res 12, any mount) in the region; 0 disables progress multipliers.
    #[serde(default)]
    pub road_cells: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Lowest progress (0..1) this multiplier applies from.
    pub min_progress: f64,
    pub multiplier: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudConfig {
    /// Frames whose 64-bit dHashes differ in at most this many bits are the same image (0..=7).
    pub max_phash_distance: u32,
    /// How far back, in days before an epoch, frames are searched for earlier copies.
    pub duplicate_lookback_days: u32,
    /// Highest plausible speed between two captures of one device, m/s.
    pub max_speed_mps: f64,
    /// Jumps shorter than this are never teleports (GNSS noise, capture cuts).
    pub teleport_min_m: f64,
    /// Largest tolerated gap between device and server clocks, seconds.
    pub max_clock_skew_s: u32,
}

impl Default for RewardsConfig {
    fn default() -> Self {
        Self {
            version: "rewards-v1".to_owned(),
            epoch_days: 7,
            cutoff_hours: 48,
            refill_days: 7,
            budget: 1_000_000_000_000,
            default_weight: 1.0,
            regions: Vec::new(),
            progress_tiers: vec![
                Tier { min_progress: 0.7, multiplier: 1.5 },
                Tier { min_progress: 0.8, multiplier: 2.0 },
                Tier { min_progress: 0.9, multiplier: 3.0 },
            ],
            fraud: FraudConfig::default(),
            settle_hours: 6,
        }
    }
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            max_phash_distance: 2,
            duplicate_lookback_days: 7,
            max_speed_mps: 70.0,
            teleport_min_m: 500.0,
            max_clock_skew_s: 300,
        }
    }
}

impl RewardsConfig {
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| RewardsError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RewardsError::Config(m));
        if self.version.is_empty() || self.version.len() > 64 {
            return bad("version must be 1..64 characters".into());
        }
        if self.epoch_days == 0 || self.refill_days == 0 {
            return bad("epoch_days and refill_days must be positive".into());
        }
        if self.fraud.max_phash_distance > 7 {
            return bad("fraud.max_phash_distance must be at most 7".into());
        }
        let finite = |x: f64| x.is_finite() && x >= 0.0;
        if !finite(self.default_weight) || self.progress_tiers.iter().any(|t| !finite(t.multiplier)) {
            return bad("weights and multipliers must be finite and non-negative".into());
        }
        self.region_index()?;
        Ok(())
    }

    pub fn epoch_ms(&self) -> i64 {
        i64::from(self.epoch_days) * DAY_MS
    }

    pub fn cutoff_ms(&self) -> i64 {
        i64::from(self.cutoff_hours) * HOUR_MS
    }

    pub fn refill_ms(&self) -> i64 {
        i64::from(self.refill_days) * DAY_MS
    }

    pub fn settle_ms(&self) -> i64 {
        i64::from(self.settle_hours) * HOUR_MS
    }

    pub fn duplicate_lookback_ms(&self) -> i64 {
        i64::from(self.fraud.duplicate_lookback_days) * DAY_MS
    }

    /// Resolution-6 cell → index into `regions`. A cell may belong to one region only.
    pub fn region_index(&self) -> Result<HashMap<u64, usize>> {
        let mut map = HashMap::new();
        for (i, r) in self.regions.iter().enumerate() {
            if !(r.weight.is_finite() && r.weight >= 0.0) {
                return Err(RewardsError::Config(format!("region {}: weight must be >= 0", r.name)));
            }
            for c in &r.cells {
                let cell = parse_r6(c).ok_or_else(|| {
                    RewardsError::Config(format!("region {}: {c} is not an H3 res-6 cell", r.name))
                })?;
                if map.insert(cell, i).is_some() {
                    return Err(RewardsError::Config(format!("cell {c} is in two regions")));
                }
            }
        }
        Ok(map)
    }

    /// Progress multiplier for `covered` of `road_cells` cells (tiers sorted by threshold).
    pub fn tier_multiplier(&self, covered: u64, road_cells: u64) -> f64 {
        if road_cells == 0 {
            return 1.0;
        }
        let progress = covered as f64 / road_cells as f64;
        let mut tiers: Vec<&Tier> = self.progress_tiers.iter().collect();
        tiers.sort_by(|a, b| b.min_progress.total_cmp(&a.min_progress));
        tiers.iter().find(|t| progress >= t.min_progress).map_or(1.0, |t| t.multiplier)
    }
}

/// A hex H3 index of resolution 6 (mode bits 1, resolution nibble 6).
fn parse_r6(s: &str) -> Option<u64> {
    let v = u64::from_str_radix(s, 16).ok()?;
    let mode = (v >> 59) & 0xF;
    let res = (v >> 52) & 0xF;
    (mode == 1 && res == 6).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_validation() {
        let cfg = RewardsConfig::default();
        let text = toml::to_string(&cfg).expect("toml");
        assert_eq!(RewardsConfig::from_toml(&text).expect("parse"), cfg);
        let custom = RewardsConfig::from_toml(
            "version = \"v2\"\nepoch_days = 14\n[[regions]]\nname = \"sf\"\ncells = [\"862830827ffffff\"]\nweight = 2.0\nroad_cells = 10\n",
        )
        .expect("custom");
        assert_eq!(custom.epoch_ms(), 14 * DAY_MS);
        assert_eq!(custom.region_index().expect("regions").len(), 1);
        assert!(RewardsConfig::from_toml("bogus = 1").is_err());
        let bad_cell = "[[regions]]\nname = \"x\"\ncells = [\"8c2830827ffffff\"]\nweight = 1.0\n";
        assert!(RewardsConfig::from_toml(bad_cell).is_err(), "a res-12 cell is not a region cell");
    }

    #[test]
    fn mip7_tiers() {
        let cfg = RewardsConfig::default();
        assert_eq!(cfg.tier_multiplier(69, 100), 1.0);
        assert_eq!(cfg.tier_multiplier(70, 100), 1.5);
        assert_eq!(cfg.tier_multiplier(85, 100), 2.0);
        assert_eq!(cfg.tier_multiplier(100, 100), 3.0);
        assert_eq!(cfg.tier_multiplier(5, 0), 1.0);
    }
}
