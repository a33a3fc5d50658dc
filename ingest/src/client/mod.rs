//! The reference client: what a companion app does. Key files, registration, capture building
//! and resumable upload. The `roadhex` CLI is a thin shell over these functions.

pub mod build;
pub mod demo;
mod http;
pub mod keys;
pub mod privacy;
pub mod upload;

pub use http::register;
