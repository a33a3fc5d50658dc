//! Privacy zones and trim settings. A contributor manages theirs through any of their devices (a
//! request signed with the device key); the operator manages network-wide zones with its token.

use crate::Ingest;
use crate::error::{IngestError, Result};
use crate::registry;
use chrono::Utc;
use roadhex_lake::paths;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::privacy::{MAX_ZONES_PER_CONTRIBUTOR, PrivacySettings, Zone, ZoneShape};
use roadhex_schemas::signing::{REQUEST_SKEW_S, decode_signature, request_message, token_matches, verify};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The credentials a request carried (any may be absent).
#[derive(Debug, Default, Clone)]
pub struct RequestAuth<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub device: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub time: Option<&'a str>,
    pub bearer: Option<&'a str>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Operator,
    Contributor(String),
}

/// `POST /v1/zones` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneRequest {
    pub shape: ZoneShape,
    #[serde(default)]
    pub label: Option<String>,
}

/// `PUT /v1/contributors/{id}/privacy` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyRequest {
    /// Metres trimmed from each end of every drive.
    pub trim_m: f64,
}

/// A contributor's trim distance as it applies, with the range they may choose in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrivacyView {
    pub contributor_id: String,
    pub trim_m: f64,
    /// False while the network default applies.
    pub chosen: bool,
    pub trim_min_m: f64,
    pub trim_max_m: f64,
}

impl Ingest {
    /// Authenticates a privacy request: the operator token, or a device signature (with a fresh
    /// time) over method, path, time and body.
    pub async fn caller(&self, auth: &RequestAuth<'_>) -> Result<Caller> {
        if let Some(token) = auth.bearer {
            let expected = self.config().operator_token.as_deref().ok_or(IngestError::OperatorDisabled)?;
            return if token_matches(Some(token), expected) {
                Ok(Caller::Operator)
            } else {
                Err(IngestError::Unauthorized)
            };
        }
        let device = auth.device.ok_or(IngestError::MissingHeader(crate::api::DEVICE_HEADER))?;
        let signature = auth.signature.ok_or(IngestError::MissingHeader(crate::api::SIGNATURE_HEADER))?;
        let time = auth.time.ok_or(IngestError::MissingHeader(roadhex_schemas::signing::TIME_HEADER))?;
        let unix_s: i64 = time
            .trim()
            .parse()
            .map_err(|_| IngestError::BadRequest("x-roadhex-time is unix seconds".into()))?;
        let skew_s = (Utc::now().timestamp() - unix_s).abs();
        if skew_s > REQUEST_SKEW_S {
            return Err(IngestError::RequestExpired { skew_s });
        }
        let active = registry::active(self.lake(), &registry::parse_device_id(device)?).await?;
        let sig = decode_signature(signature)?;
        verify(&active.key, &request_message(auth.method, auth.path, unix_s, auth.body), &sig)?;
        Ok(Caller::Contributor(active.record.contributor_id))
    }

    /// Registers a zone: the caller's own, or network-wide for the operator. The id derives from
    /// the owner and the request, so repeating a request (or replaying it) changes nothing.
    pub async fn add_zone(&self, caller: &Caller, req: &ZoneRequest) -> Result<(Zone, bool)> {
        req.shape.validate()?;
        if req.label.as_ref().is_some_and(|l| l.chars().count() > 64) {
            return Err(IngestError::BadRequest("label is at most 64 characters".into()));
        }
        let owner = match caller {
            Caller::Operator => None,
            Caller::Contributor(c) => Some(c.clone()),
        };
        let canonical = serde_json::to_string(&(owner.as_deref(), req))
            .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        let zone_id = sha256_hex(canonical.as_bytes())[..32].to_owned();
        let path = paths::zone(&zone_id);
        if let Some(existing) = self.lake().get_json::<Zone>(&path).await? {
            return Ok((existing, false));
        }
        if let Some(c) = &owner {
            let zones = roadhex_lake::privacy::zones(self.lake()).await?;
            if zones.iter().filter(|z| z.contributor_id.as_deref() == Some(c)).count()
                >= MAX_ZONES_PER_CONTRIBUTOR
            {
                return Err(IngestError::TooManyZones { limit: MAX_ZONES_PER_CONTRIBUTOR });
            }
        }
        let zone = Zone {
            zone_id,
            contributor_id: owner,
            shape: req.shape.clone(),
            label: req.label.clone(),
            created_at: Utc::now(),
        };
        self.lake().put_json(&path, &zone).await?;
        Ok((zone, true))
    }

    /// The zones that apply to the caller: network-wide ones and their own (all for the operator).
    pub async fn zones(&self, caller: &Caller) -> Result<Vec<Zone>> {
        let all = roadhex_lake::privacy::zones(self.lake()).await?;
        Ok(match caller {
            Caller::Operator => all,
            Caller::Contributor(c) => all.into_iter().filter(|z| z.applies_to(c)).collect(),
        })
    }

    /// Deletes a zone the caller owns (the operator may delete any). Frames captured while it
    /// stood stay unpublished.
    pub async fn delete_zone(&self, caller: &Caller, zone_id: &str) -> Result<Zone> {
        if zone_id.len() != 32 || !zone_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(IngestError::ZoneNotFound(zone_id.to_owned()));
        }
        let path = paths::zone(zone_id);
        let zone: Zone = self
            .lake()
            .get_json(&path)
            .await?
            .ok_or_else(|| IngestError::ZoneNotFound(zone_id.to_owned()))?;
        let allowed = match caller {
            Caller::Operator => true,
            Caller::Contributor(c) => zone.contributor_id.as_deref() == Some(c.as_str()),
        };
        if !allowed {
            return Err(IngestError::Forbidden(format!("zone {zone_id} belongs to someone else")));
        }
        self.lake().delete(&path).await?;
        Ok(zone)
    }

    fn check_owner(caller: &Caller, contributor: &str) -> Result<()> {
        match caller {
            Caller::Operator => Ok(()),
            Caller::Contributor(c) if c == contributor => Ok(()),
            Caller::Contributor(_) => {
                Err(IngestError::Forbidden(format!("the signing device does not belong to {contributor}")))
            }
        }
    }

    pub async fn privacy(&self, caller: &Caller, contributor: &str) -> Result<PrivacyView> {
        Self::check_owner(caller, contributor)?;
        let stored = roadhex_lake::privacy::settings(self.lake(), contributor).await?;
        let policy = &self.config().privacy;
        Ok(PrivacyView {
            contributor_id: contributor.to_owned(),
            trim_m: policy.trim_for(stored.as_ref().map(|s| s.trim_m)),
            chosen: stored.is_some(),
            trim_min_m: policy.trim_min_m,
            trim_max_m: policy.trim_max_m,
        })
    }

    pub async fn set_privacy(
        &self,
        caller: &Caller,
        contributor: &str,
        req: &PrivacyRequest,
    ) -> Result<PrivacyView> {
        Self::check_owner(caller, contributor)?;
        self.config().privacy.check_trim(req.trim_m)?;
        let settings = PrivacySettings {
            contributor_id: contributor.to_owned(),
            trim_m: req.trim_m,
            updated_at: Utc::now(),
        };
        self.lake().put_json(&paths::contributor_privacy(contributor), &settings).await?;
        self.privacy(caller, contributor).await
    }
}
