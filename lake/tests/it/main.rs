//! The lake against real servers started on loopback: S3 (s3s-fs) and NATS JetStream.

#[cfg(feature = "nats")]
mod nats;
mod s3;
