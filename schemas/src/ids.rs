//! Identifiers. Both are derived from content, so the same input always maps to the same id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A device: the first 16 bytes of SHA-256 over its ed25519 public key, as 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

/// A capture: the first 16 bytes of SHA-256 over the signed manifest bytes, as 32 hex digits.
/// Re-posting the same manifest therefore resumes the same capture.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaptureId(String);

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! id_common {
    ($t:ident) => {
        impl $t {
            /// Accepts only the canonical form (32 lowercase hex digits), so ids are safe in paths.
            pub fn parse(s: &str) -> Option<Self> {
                is_id(s).then(|| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
id_common!(DeviceId);
id_common!(CaptureId);

impl DeviceId {
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        Self(short_hash(public_key))
    }
}

impl CaptureId {
    pub fn from_manifest_bytes(bytes: &[u8]) -> Self {
        Self(short_hash(bytes))
    }
}

/// Lowercase hex SHA-256 of a byte string (the form frames are addressed by).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical() {
        let id = CaptureId::from_manifest_bytes(b"x");
        assert_eq!(CaptureId::parse(id.as_str()), Some(id.clone()));
        assert!(CaptureId::parse("../etc/passwd").is_none());
        assert!(CaptureId::parse(&id.as_str().to_uppercase()).is_none());
        assert!(is_sha256_hex(&sha256_hex(b"")));
    }
}
