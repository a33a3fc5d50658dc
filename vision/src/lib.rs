//! Anonymization, quality gates, frame positioning, H3 indexing and sign detection (see issues 4 and 5).
//!
//! Skeleton only: this stage is not built yet. It will meet the others only through the lake's tables
//! and work queue.
