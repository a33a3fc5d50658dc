//! Traffic signs: detect candidates in published frames, classify them into the GTSRB classes,
//! locate each observation from the camera pose, and cluster observations into map features.

pub mod classes;
pub mod cluster;
pub mod dataset;
pub mod detect;
pub mod eval;
pub mod features;
pub mod locate;
pub mod mlp;
pub mod propose;
pub mod synth;
pub mod table;
pub mod train;

pub use detect::{SignDetection, SignModel};
