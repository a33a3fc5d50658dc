//! Domain types shared by every roadhex stage: the signed capture wire format, telemetry gates, the
//! Arrow schemas of every table, and small geodesy helpers. Pure: no I/O, no async.

pub mod error;
pub mod gates;
pub mod geo;
pub mod ids;
pub mod jpeg;
pub mod limits;
pub mod manifest;
pub mod openapi;
pub mod privacy;
pub mod rng;
pub mod signing;
pub mod state;
pub mod tables;
pub mod testdata;
pub mod wkb;

pub use error::ManifestError;
pub use ids::{CaptureId, DeviceId};
pub use manifest::{Camera, CaptureManifest, FixType, FrameEntry, GnssSample, ImuSample, Mount};
