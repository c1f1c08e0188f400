//! Access and refresh tokens.
//!
//! Access tokens are short-lived and self-contained: `dst1.<claims>.<mac>`,
//! where `claims` is base64url JSON and `mac` is HMAC-SHA256 over
//! `dst1.<claims>` with the service key. Any replica holding the key verifies
//! them without a database round trip. They are deliberately not JWTs: one
//! fixed algorithm leaves no `alg` header to confuse, and no RSA dependency.
//!
//! Refresh tokens are 256 random bits; only their SHA-256 is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{RegionCode, Role, Sector};

const PREFIX: &str = "dst1";
/// Minimum length of a configured signing secret.
pub const MIN_SECRET_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// What an access token says about its bearer. Scope travels in the token so
/// that authorisation needs no lookup; a role change takes effect when the
/// current access token expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<Sector>,
    /// Refresh-token family (one login session).
    pub sid: Uuid,
    /// Issued at and expiry, seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
}

/// Why a presented access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature does not match")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// The key that signs access tokens.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Wraps secret bytes.
    ///
    /// # Errors
    /// Returns the length when it is under [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, usize> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(secret.len());
        }
        Ok(Self(secret.to_vec()))
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes.to_vec()))
    }

    /// The key's bytes, for persisting a generated key.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// Signs claims into an access token.
    #[must_use]
    pub fn sign(&self, claims: &Claims) -> String {
        // Serialising a struct of plain fields cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let head = format!("{PREFIX}.{}", B64.encode(json));
        let mut mac = self.mac();
        mac.update(head.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{head}.{}", B64.encode(tag))
    }

    /// Verifies a token's signature and expiry against `now` (epoch seconds).
    ///
    /// # Errors
    /// [`TokenError`] saying what is wrong.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (head, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, payload) = head.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != PREFIX {
            return Err(TokenError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(head.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A new opaque refresh token (256 random bits, base64url).
///
/// # Errors
/// The operating system's random source failed.
pub fn new_refresh_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(B64.encode(bytes))
}

/// Hex SHA-256 of a refresh token, the only form that is stored.
#[must_use]
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: Uuid::nil(),
            role: Role::Volunteer,
            org: None,
            region: Some("48".parse().expect("valid")),
            sector: None,
            sid: Uuid::nil(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn signed_tokens_verify_until_expiry() {
        let key = SigningKey::generate().expect("random");
        let token = key.sign(&claims(100));
        assert_eq!(key.verify(&token, 99), Ok(claims(100)));
        assert_eq!(key.verify(&token, 100), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_and_foreign_keys_are_detected() {
        let key = SigningKey::generate().expect("random");
        let other = SigningKey::generate().expect("random");
        let token = key.sign(&claims(100));
        assert_eq!(other.verify(&token, 0), Err(TokenError::BadSignature));
        let mut forged = claims(100);
        forged.role = Role::Admin;
        let forged_payload = B64.encode(serde_json::to_vec(&forged).expect("json"));
        let tag = token.rsplit_once('.').expect("has tag").1;
        let forged_token = format!("{PREFIX}.{forged_payload}.{tag}");
        assert_eq!(key.verify(&forged_token, 0), Err(TokenError::BadSignature));
        assert_eq!(key.verify("garbage", 0), Err(TokenError::Malformed));
        assert_eq!(key.verify("", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(SigningKey::new(b"short").err(), Some(5));
    }

    #[test]
    fn refresh_digests_are_stable_hex() {
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(digest("abc"), digest("abc"));
        assert_ne!(
            new_refresh_token().expect("random"),
            new_refresh_token().expect("random")
        );
    }
}
