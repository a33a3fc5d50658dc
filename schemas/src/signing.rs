//! Device keys and signatures (ed25519).
//!
//! A device signs the exact manifest bytes; the signature travels beside them (base64 in a header).
//! Registration proves possession of the key by signing [`registration_message`].

use crate::ids::DeviceId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    #[error("public key is not 32 bytes of hex or not a valid ed25519 point")]
    InvalidPublicKey,
    #[error("public key is weak (small order); generate a new key")]
    WeakKey,
    #[error("signature is not 64 bytes of base64")]
    InvalidEncoding,
    #[error("signature does not match the signed bytes and the device key")]
    Mismatch,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPublicKey => "public_key_invalid",
            Self::WeakKey => "public_key_weak",
            Self::InvalidEncoding => "signature_malformed",
            Self::Mismatch => "signature_invalid",
        }
    }
}

/// The message a device signs to register: binds the server's nonce to the contributor.
/// Whether a presented bearer token equals the configured one, in time independent of where they differ.
pub fn token_matches(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| {
        let (a, b) = (g.as_bytes(), expected.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    })
}

pub fn registration_message(nonce: &str, contributor_id: &str) -> Vec<u8> {
    format!("roadhex-register-v1\n{nonce}\n{contributor_id}").into_bytes()
}

/// Header with the unix time (seconds) a signed request was made at.
pub const TIME_HEADER: &str = "x-roadhex-time";
/// How far a signed request's time may be from the server's clock.
pub const REQUEST_SKEW_S: i64 = 300;

/// What a device signs to make an API request on its contributor's behalf (privacy zones and
/// settings): method, path, time and the body's hash, so a signature fits only that request.
pub fn request_message(method: &str, path: &str, unix_s: i64, body: &[u8]) -> Vec<u8> {
    format!("roadhex-request-v1\n{method}\n{path}\n{unix_s}\n{}", crate::ids::sha256_hex(body)).into_bytes()
}

/// Parses a hex public key and refuses weak keys.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, SignatureError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::InvalidPublicKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    Ok(key)
}

pub fn decode_signature(b64: &str) -> Result<Signature, SignatureError> {
    let bytes: [u8; 64] =
        B64.decode(b64.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::InvalidEncoding)?;
    Ok(Signature::from_bytes(&bytes))
}

pub fn encode_signature(sig: &Signature) -> String {
    B64.encode(sig.to_bytes())
}

/// Strict verification (rejects malleable signatures and weak keys).
pub fn verify(key: &VerifyingKey, message: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    key.verify_strict(message, sig).map_err(|_| SignatureError::Mismatch)
}

/// A device's key file as the reference client keeps it (JSON, mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceKeyFile {
    pub device_id: DeviceId,
    /// Hex ed25519 public key.
    pub public_key: String,
    /// Hex ed25519 secret seed.
    pub secret_key: String,
    /// Sequence number the next built capture gets.
    pub next_sequence: u64,
}

impl DeviceKeyFile {
    pub fn generate() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let public = key.verifying_key().to_bytes();
        Self {
            device_id: DeviceId::from_public_key(&public),
            public_key: hex::encode(public),
            secret_key: hex::encode(key.to_bytes()),
            next_sequence: 1,
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey, SignatureError> {
        let bytes: [u8; 32] = hex::decode(&self.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureError::InvalidPublicKey)?;
        Ok(SigningKey::from_bytes(&bytes))
    }

    /// Signs bytes and returns the base64 signature.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignatureError> {
        Ok(encode_signature(&self.signing_key()?.sign(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = DeviceKeyFile::generate();
        let sig = k.sign(b"manifest").expect("sign");
        let public = parse_public_key(&k.public_key).expect("key");
        let sig = decode_signature(&sig).expect("decode");
        assert!(verify(&public, b"manifest", &sig).is_ok());
        assert_eq!(verify(&public, b"manifesT", &sig), Err(SignatureError::Mismatch));
        assert_eq!(DeviceId::from_public_key(&public.to_bytes()), k.device_id);
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(parse_public_key(&hex::encode(identity)), Err(SignatureError::WeakKey));
        assert_eq!(parse_public_key("zz"), Err(SignatureError::InvalidPublicKey));
    }
}
