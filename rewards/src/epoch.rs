//! Epochs: a fixed grid of `epoch_days`-long periods starting on Monday 1970-01-05 00:00 UTC, so
//! weekly epochs are ISO weeks (`2026-W48`); other lengths are named by start date (`2026-11-23+14d`).

use crate::config::RewardsConfig;
use crate::error::{Result, RewardsError};
use chrono::{DateTime, Datelike as _, NaiveDate, Utc, Weekday};

/// Monday 1970-01-05 00:00 UTC in Unix milliseconds: the origin of the epoch grid.
pub const ANCHOR_MS: i64 = 4 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Epoch {
    pub id: String,
    /// Inclusive, Unix ms.
    pub start_ms: i64,
    /// Exclusive, Unix ms.
    pub end_ms: i64,
    /// Uploads committed after this (Unix ms) do not count.
    pub cutoff_ms: i64,
}

impl Epoch {
    /// The epoch with grid index `index`.
    pub fn at_index(cfg: &RewardsConfig, index: i64) -> Self {
        let len = cfg.epoch_ms();
        let start_ms = ANCHOR_MS + index * len;
        let end_ms = start_ms + len;
        let date = date_of(start_ms);
        let id = if cfg.epoch_days == 7 {
            let w = date.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        } else {
            format!("{}+{}d", date.format("%Y-%m-%d"), cfg.epoch_days)
        };
        Self { id, start_ms, end_ms, cutoff_ms: end_ms + cfg.cutoff_ms() }
    }

    /// The epoch containing `t_ms`.
    pub fn containing(cfg: &RewardsConfig, t_ms: i64) -> Self {
        Self::at_index(cfg, (t_ms - ANCHOR_MS).div_euclid(cfg.epoch_ms()))
    }

    pub fn index(&self, cfg: &RewardsConfig) -> i64 {
        (self.start_ms - ANCHOR_MS).div_euclid(cfg.epoch_ms())
    }

    pub fn previous(&self, cfg: &RewardsConfig) -> Self {
        Self::at_index(cfg, self.index(cfg) - 1)
    }

    /// Parses an id in the config's naming scheme.
    pub fn parse(cfg: &RewardsConfig, id: &str) -> Result<Self> {
        let bad = || RewardsError::EpochInvalid(id.to_owned());
        let start = if cfg.epoch_days == 7 {
            let (y, w) = id.split_once("-W").ok_or_else(bad)?;
            let (y, w) = (y.parse::<i32>().map_err(|_| bad())?, w.parse::<u32>().map_err(|_| bad())?);
            NaiveDate::from_isoywd_opt(y, w, Weekday::Mon).ok_or_else(bad)?
        } else {
            let (d, _) = id.split_once('+').ok_or_else(bad)?;
            NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| bad())?
        };
        let ms = start.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc().timestamp_millis();
        let e = Self::containing(cfg, ms);
        if e.id != id {
            return Err(bad());
        }
        Ok(e)
    }

    /// `date` partition of the epoch's ledger files (its start day).
    pub fn partition(&self) -> String {
        date_of(self.start_ms).format("%Y-%m-%d").to_string()
    }

    /// The epochs that any observation in `[from_ms, self.end_ms)` can belong to, oldest first.
    pub fn span_back(&self, cfg: &RewardsConfig, from_ms: i64) -> Vec<Epoch> {
        let first = Self::containing(cfg, from_ms).index(cfg);
        (first..=self.index(cfg)).map(|i| Self::at_index(cfg, i)).collect()
    }
}

fn date_of(ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().date_naive()
}

/// RFC 3339 text of a Unix-ms time (for messages and statements).
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_epochs_are_iso_weeks() {
        let cfg = RewardsConfig::default();
        let e = Epoch::parse(&cfg, "2026-W48").expect("parse");
        assert_eq!(rfc3339(e.start_ms), "2026-11-23T00:00:00+00:00");
        assert_eq!(e.end_ms - e.start_ms, 7 * 86_400_000);
        assert_eq!(rfc3339(e.cutoff_ms), "2026-12-02T00:00:00+00:00");
        assert_eq!(Epoch::containing(&cfg, e.end_ms - 1), e);
        assert_eq!(e.previous(&cfg).id, "2026-W47");
        assert_eq!(Epoch::parse(&cfg, "2021-W01").expect("week 1").partition(), "2021-01-04");
        assert!(Epoch::parse(&cfg, "2026-W54").is_err());
        assert!(Epoch::parse(&cfg, "2026-11-23").is_err());
        let span = e.span_back(&cfg, e.start_ms - 1);
        assert_eq!(span.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["2026-W47", "2026-W48"]);
    }

    #[test]
    fn other_lengths_are_named_by_start() {
        let cfg = RewardsConfig { epoch_days: 14, ..RewardsConfig::default() };
        let e = Epoch::containing(&cfg, ANCHOR_MS + 20 * 86_400_000);
        assert_eq!(e.id, "1970-01-19+14d");
        assert_eq!(Epoch::parse(&cfg, &e.id).expect("parse"), e);
        assert!(Epoch::parse(&cfg, "1970-01-20+14d").is_err(), "not on the grid");
    }
}
