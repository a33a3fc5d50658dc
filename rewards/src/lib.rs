//! Rewards: fresh-coverage credits per epoch, fraud flags, and a ledger anyone can check (issue 6).
//!
//! - [`config`]: the versioned rules (TOML); [`epoch`]: the epoch grid and ids.
//! - [`input`]: reads captures, frames, coverage and revocations; [`flags`]: fraud flags.
//! - [`compute`]: validity, freshness, points, integer split ([`split`]), Merkle root ([`merkle`]).
//! - [`ledger`]: deterministic `rewards`/`epochs` files; [`run`]: an epoch end to end and the node loop.
//! - [`statement`]: per-contributor statements with proofs; [`sql`]: the public SQL recomputation.
//! - [`sim`]: honest and adversarial fleets over a synthetic road network ([`synth`] writes tables);
//!   [`verify`]: ledger vs SQL cross-checks.
//!
//! The stage meets the others only through the lake's tables and the device registry.

pub mod compute;
pub mod config;
pub mod epoch;
pub mod error;
pub mod flags;
pub mod input;
pub mod ledger;
pub mod merkle;
pub mod run;
pub mod sim;
pub mod split;
pub mod sql;
pub mod statement;
pub mod synth;
pub mod verify;

pub use config::RewardsConfig;
pub use epoch::Epoch;
pub use error::{Result, RewardsError};
pub use run::{RunReport, Step, run_epoch};
pub use statement::{Statement, statement};
