//! Traffic signs: detect candidates in published frames, classify them into the GTSRB classes,
//! locate each observation from the camera pose, and cluster observations into map features.

pub mod classes;
pub mod cluster;
pub mod locate;
