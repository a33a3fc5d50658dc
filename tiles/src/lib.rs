//! Vector tiles, TileJSON, imagery endpoints and the web map (see issue 7).
//!
//! Skeleton only: this stage is not built yet. It will meet the others only through the lake's tables
//! and work queue.
