//! The lake against real servers started on loopback: S3 (s3s-fs) and NATS JetStream.

#[cfg(feature = "nats")]
mod nats;
mod s3;
// The one rule for helper ports, shared with the root crate's examples and e2e tests.
#[path = "../../../examples/common/ports.rs"]
mod ports;
