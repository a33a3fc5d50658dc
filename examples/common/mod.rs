//! Shared by `examples/loadgen/`, `examples/chaos/`, `examples/scale_bench.rs` and
//! `tests/e2e/chaos.rs`: helper servers (s3s-fs, nats-server), `roadhex serve` processes that can
//! be killed and restarted on the same port, and signed captures of real dashcam frames.
#![allow(dead_code)] // each program uses a part of it

pub(crate) mod fleet;
pub(crate) mod ports;
pub(crate) mod procs;
