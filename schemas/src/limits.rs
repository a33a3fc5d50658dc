//! Numbers the protocol promises. They come from Hivemapper's published firmware
//! (shared/docs/hivemapper-reference.md §1.2) unless noted.

/// Manifest format version this build reads and writes.
pub const MANIFEST_VERSION: u32 = 1;
/// A frame smaller than this is a broken or blank image.
pub const MIN_FRAME_BYTES: u64 = 25_000;
/// A frame larger than this is not a dashcam keyframe.
pub const MAX_FRAME_BYTES: u64 = 2_000_000;
/// Hard cap of frames per capture (a normal capture holds at most [`BUNDLE_FRAMES`]).
pub const MAX_FRAMES: usize = 1_000;
/// Frames per capture the reference client aims for (1 km at 8 m).
pub const BUNDLE_FRAMES: usize = 125;
/// Road length after which the reference client closes a capture.
pub const BUNDLE_METERS: f64 = 1_000.0;
/// Largest accepted image side in pixels; anything above is a decompression bomb, not a dashcam.
pub const MAX_IMAGE_SIDE: u32 = 8_192;
/// Smallest accepted image side in pixels.
pub const MIN_IMAGE_SIDE: u32 = 64;
/// Largest signed manifest the server reads (1,000 frames plus 10 Hz telemetry fit easily).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Telemetry samples a manifest may carry.
pub const MAX_TELEMETRY_SAMPLES: usize = 20_000;
