//! Epochs, freshness, fraud flags, ledger and statements (see issue 6).
//!
//! Skeleton only: this stage is not built yet. It will meet the others only through the lake's tables
//! and work queue.
