//! Device registry: challenge, proof-of-possession registration, revocation. Persisted in the lake
//! and read through on every use, so a revocation takes effect in every ingest process at once.

use crate::error::{IngestError, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use rand::RngCore as _;
use roadhex_lake::{Lake, paths};
use roadhex_schemas::DeviceId;
use roadhex_schemas::signing::{decode_signature, parse_public_key, registration_message, verify};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// Hex nonce to sign (see the registration message format in the README).
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registration {
    /// Hex ed25519 public key (32 bytes).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub public_key: String,
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub contributor_id: String,
    /// Nonce from `POST /v1/devices/challenge`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub nonce: String,
    /// Base64 signature over `roadhex-register-v1\n{nonce}\n{contributor_id}`.
    #[schema(pattern = "^[A-Za-z0-9+/]{86}==$")]
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRecord {
    pub device_id: String,
    pub public_key: String,
    pub contributor_id: String,
    pub registered_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A device allowed to upload, with its parsed key.
#[derive(Debug, Clone)]
pub struct ActiveDevice {
    pub record: DeviceRecord,
    pub key: VerifyingKey,
}

fn valid_contributor(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

pub(crate) fn parse_device_id(id: &str) -> Result<DeviceId> {
    DeviceId::parse(id).ok_or_else(|| IngestError::DeviceIdInvalid(id.to_owned()))
}

pub(crate) async fn new_challenge(lake: &Lake, ttl_s: u64) -> Result<Challenge> {
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ttl = chrono::Duration::seconds(i64::try_from(ttl_s).unwrap_or(300));
    let c = Challenge { nonce: hex::encode(nonce), expires_at: Utc::now() + ttl };
    lake.put_json(&paths::challenge(&c.nonce), &c).await?;
    Ok(c)
}

pub(crate) async fn sweep_challenges(lake: &Lake, ttl_s: u64) -> Result<usize> {
    let ttl = chrono::Duration::seconds(i64::try_from(ttl_s).unwrap_or(300));
    let cutoff = Utc::now() - ttl;
    let mut swept = 0;
    for (path, modified, _) in lake.list_meta(&paths::challenges_prefix()).await? {
        if modified < cutoff {
            lake.delete(&path).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// Registers a device. Returns the record and whether it is new (re-registering is idempotent).
pub(crate) async fn register(lake: &Lake, req: &Registration) -> Result<(DeviceRecord, bool)> {
    if !valid_contributor(&req.contributor_id) {
        return Err(IngestError::ContributorInvalid);
    }
    let key = parse_public_key(&req.public_key)?;
    let sig = decode_signature(&req.signature)?;
    if req.nonce.len() != 64 || !req.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IngestError::ChallengeUnknown);
    }
    let path = paths::challenge(&req.nonce);
    let challenge: Challenge = lake.get_json(&path).await?.ok_or(IngestError::ChallengeUnknown)?;
    // A challenge is single-use, whatever the outcome.
    lake.delete(&path).await?;
    if challenge.expires_at < Utc::now() {
        return Err(IngestError::ChallengeExpired);
    }
    verify(&key, &registration_message(&req.nonce, &req.contributor_id), &sig)?;
    let device_id = DeviceId::from_public_key(&key.to_bytes());
    let record_path = paths::device(&device_id);
    if let Some(existing) = lake.get_json::<DeviceRecord>(&record_path).await? {
        if existing.revoked_at.is_some() {
            return Err(IngestError::DeviceRevoked(existing.device_id));
        }
        if existing.contributor_id != req.contributor_id {
            return Err(IngestError::DeviceAlreadyRegistered { device: existing.device_id });
        }
        return Ok((existing, false));
    }
    let record = DeviceRecord {
        device_id: device_id.to_string(),
        public_key: hex::encode(key.to_bytes()),
        contributor_id: req.contributor_id.clone(),
        registered_at: Utc::now(),
        revoked_at: None,
    };
    lake.put_json(&record_path, &record).await?;
    Ok((record, true))
}

pub(crate) async fn get(lake: &Lake, device: &DeviceId) -> Result<DeviceRecord> {
    lake.get_json(&paths::device(device)).await?.ok_or_else(|| IngestError::UnknownDevice(device.to_string()))
}

/// The device if it may upload now.
pub(crate) async fn active(lake: &Lake, device: &DeviceId) -> Result<ActiveDevice> {
    let record = get(lake, device).await?;
    if record.revoked_at.is_some() {
        return Err(IngestError::DeviceRevoked(record.device_id));
    }
    let key = parse_public_key(&record.public_key)?;
    Ok(ActiveDevice { record, key })
}

pub(crate) async fn revoke(lake: &Lake, device: &DeviceId) -> Result<DeviceRecord> {
    let mut record = get(lake, device).await?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(Utc::now());
        lake.put_json(&paths::device(device), &record).await?;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweeping_deletes_only_expired_challenges() {
        let lake = Lake::open("memory://").expect("lake");
        let c = new_challenge(&lake, 300).await.expect("challenge");
        assert_eq!(sweep_challenges(&lake, 300).await.expect("sweep"), 0);
        assert!(lake.exists(&paths::challenge(&c.nonce)).await.expect("exists"));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(sweep_challenges(&lake, 1).await.expect("sweep"), 1);
        assert!(!lake.exists(&paths::challenge(&c.nonce)).await.expect("exists"));
    }
}
