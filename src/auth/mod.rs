//! Authentication: password logins, access tokens, refresh-token rotation
//! with reuse detection, and login throttling. Authorisation decisions (who
//! may touch what) are made by the resources themselves from a [`Principal`].

pub mod accounts;
pub mod password;
pub mod rate_limit;
pub mod token;

use std::net::IpAddr;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, DbError, entity::user};
use crate::domain::{RegionCode, Role, Sector};
pub use rate_limit::LoginLimiter;
pub use token::{Claims, SigningKey, TokenError};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub organisation_id: Option<Uuid>,
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
}

impl From<Claims> for Principal {
    fn from(c: Claims) -> Self {
        Self {
            user_id: c.sub,
            role: c.role,
            organisation_id: c.org,
            region: c.region,
            sector: c.sector,
        }
    }
}

impl Principal {
    /// Whether the caller's scope covers `region` and `sector`: an unset
    /// scope field means "all".
    #[must_use]
    pub fn covers(&self, region: &RegionCode, sector: Sector) -> bool {
        self.region.as_ref().is_none_or(|r| r == region) && self.sector.is_none_or(|s| s == sector)
    }
}

/// Issued on login and on refresh.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

/// Why a login, refresh or logout did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown email, wrong password or disabled account: deliberately one
    /// answer for all three.
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("too many login attempts; retry in {} s", .0.as_secs().max(1))]
    TooManyAttempts(Duration),
    #[error("the refresh token is unknown, expired or revoked")]
    InvalidRefreshToken,
    /// A rotated token came back: someone may hold a stolen copy, so the
    /// whole session family has been revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

/// Issues and checks sessions; one per process, shared by all requests.
#[derive(Debug)]
pub struct Sessions {
    pub key: SigningKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub limiter: LoginLimiter,
}

/// Trims and lower-cases an email, the form in which it is stored and looked up.
#[must_use]
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Sessions {
    /// Checks a password login and opens a new session family.
    ///
    /// # Errors
    /// [`AuthError::TooManyAttempts`] when throttled (checked before any
    /// password work), [`AuthError::InvalidCredentials`] otherwise on failure.
    pub async fn login(
        &self,
        db: &DatabaseConnection,
        email: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<TokenPair, AuthError> {
        let email = normalise_email(email);
        self.limiter
            .check(&email, address)
            .map_err(AuthError::TooManyAttempts)?;
        let found = db::users::find_by_email(db, &email).await?;
        let password = password.to_owned();
        let stored = found.as_ref().map(|u| u.password_hash.clone());
        let valid = tokio::task::spawn_blocking(move || match stored {
            Some(hash) => password::verify(&password, &hash),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(|e| AuthError::Internal(format!("password check did not finish: {e}")))?;
        match found {
            Some(user) if valid && !user.disabled => self.open(db, &user, Uuid::now_v7()).await,
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Exchanges a refresh token for a new pair; the old token becomes used.
    /// Presenting a used token again revokes its whole family.
    ///
    /// # Errors
    /// [`AuthError::InvalidRefreshToken`] or [`AuthError::RefreshTokenReused`].
    pub async fn refresh(
        &self,
        db: &DatabaseConnection,
        refresh_token: &str,
    ) -> Result<TokenPair, AuthError> {
        let row = db::tokens::find_by_hash(db, &token::digest(refresh_token))
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if row.revoked_at.is_some() {
            return Err(AuthError::InvalidRefreshToken);
        }
        if row.used_at.is_none() && row.expires_at <= chrono::Utc::now() {
            return Err(AuthError::InvalidRefreshToken);
        }
        // `mark_used` is conditional: of two concurrent refreshes with one
        // token, the loser is handled exactly like a replay.
        if row.used_at.is_some() || !db::tokens::mark_used(db, row.id).await? {
            db::tokens::revoke_family(db, row.family_id).await?;
            tracing::warn!(user = %row.user_id, family = %row.family_id,
                "refresh token reused; session family revoked");
            return Err(AuthError::RefreshTokenReused);
        }
        let user = db::users::get_user(db, row.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(AuthError::InvalidRefreshToken)?;
        self.open(db, &user, row.family_id).await
    }

    /// Ends the session the refresh token belongs to and returns its user.
    /// Unknown tokens are accepted silently (`None`), so logout is idempotent.
    ///
    /// # Errors
    /// Database failure.
    pub async fn logout(
        &self,
        db: &DatabaseConnection,
        refresh_token: &str,
    ) -> Result<Option<Uuid>, AuthError> {
        match db::tokens::find_by_hash(db, &token::digest(refresh_token)).await? {
            Some(row) if db::tokens::revoke_family(db, row.family_id).await? > 0 => {
                Ok(Some(row.user_id))
            }
            _ => Ok(None),
        }
    }

    /// Verifies an access token.
    ///
    /// # Errors
    /// [`TokenError`] saying why it is refused.
    pub fn authenticate(&self, access_token: &str) -> Result<Principal, TokenError> {
        self.key
            .verify(access_token, chrono::Utc::now().timestamp())
            .map(Principal::from)
    }

    async fn open(
        &self,
        db: &DatabaseConnection,
        user: &user::Model,
        family: Uuid,
    ) -> Result<TokenPair, AuthError> {
        let role: Role = user
            .role
            .parse()
            .map_err(|e| AuthError::Internal(format!("user {} has a bad role: {e}", user.id)))?;
        let now = chrono::Utc::now();
        let access_secs = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: user.id,
            role,
            org: user.organisation_id,
            region: user.region_code.clone().and_then(|c| c.parse().ok()),
            sector: user.sector.as_deref().and_then(|s| s.parse().ok()),
            sid: family,
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(access_secs),
        };
        let refresh = token::new_refresh_token()
            .map_err(|e| AuthError::Internal(format!("random source failed: {e}")))?;
        let refresh_ttl = chrono::Duration::from_std(self.refresh_ttl)
            .unwrap_or_else(|_| chrono::Duration::days(30));
        db::tokens::insert(
            db,
            user.id,
            family,
            token::digest(&refresh),
            now + refresh_ttl,
        )
        .await?;
        Ok(TokenPair {
            access_token: self.key.sign(&claims),
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: self.access_ttl.as_secs(),
        })
    }
}
