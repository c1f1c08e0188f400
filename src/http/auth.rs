//! `/auth/*` and `/me`: logins, token refresh and logout, and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::audit_log::record_committed;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, Auth, ClientAddr, RequestId};
use crate::auth::TokenPair;
use crate::db;
use crate::db::audit_log::{Actor, Entry};
use crate::db::entity::user;
use crate::domain::{RegionCode, Role, Sector};
use serde_json::json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "volunteer@demo.local")]
    pub email: String,
    #[schema(example = "demo-password")]
    pub password: String,
}

/// A refresh token from a previous login or refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Logs in with email and password. Wrong email and wrong password get the
/// same answer; attempts are throttled per account and per address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "`invalid-credentials`", body = Problem),
        (status = 422, description = "`missing-field`, `unknown-field`", body = Problem),
        (status = 429, description = "`too-many-login-attempts`, with Retry-After", body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    request_id: RequestId,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    let pair = state
        .sessions
        .login(&state.db, &body.email, &body.password, addr)
        .await?;
    session_event(
        &state,
        &pair,
        request_id,
        "user.login",
        json!({"address": addr}),
    )
    .await;
    Ok(Json(pair))
}

/// Exchanges a refresh token for a new pair. Each refresh token works once;
/// presenting a used one revokes the whole session (`refresh-token-reused`).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "`invalid-refresh-token`, `refresh-token-reused`", body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let pair = state
        .sessions
        .refresh(&state.db, &body.refresh_token)
        .await?;
    session_event(&state, &pair, request_id, "user.token_refreshed", json!({})).await;
    Ok(Json(pair))
}

/// Logs a session event of the user the new tokens belong to.
async fn session_event(
    state: &AppState,
    pair: &TokenPair,
    request_id: RequestId,
    action: &'static str,
    detail: serde_json::Value,
) {
    if let Ok(who) = state.sessions.authenticate(&pair.access_token) {
        record_committed(
            state,
            &request_id.actor(&who),
            Entry::new(action, "user", who.user_id).detail(detail),
        )
        .await;
    }
}

/// Ends the session of a refresh token; its tokens stop working. Idempotent.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out")))]
async fn logout(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let ended = state
        .sessions
        .logout(&state.db, &body.refresh_token)
        .await?;
    if let Some(user) = ended {
        let actor = Actor {
            user_id: Some(user),
            role: None,
            request_id: request_id.0,
        };
        record_committed(&state, &actor, Entry::new("user.logout", "user", user)).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A user as shown to themselves and to admins; never the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub organisation_id: Option<Uuid>,
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<user::Model> for UserOut {
    type Error = ApiError;
    fn try_from(u: user::Model) -> Result<Self, ApiError> {
        let corrupt =
            |what: &str| anyhow::anyhow!("user {} has an invalid {what} in the database", u.id);
        Ok(Self {
            role: u.role.parse().map_err(|_| corrupt("role"))?,
            region: u
                .region_code
                .clone()
                .map(|c| c.parse())
                .transpose()
                .map_err(|_| corrupt("region"))?,
            sector: u
                .sector
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("sector"))?,
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            organisation_id: u.organisation_id,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        })
    }
}

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut),
              (status = 401, description = "`unauthenticated`, `invalid-token`, `token-expired`", body = Problem)))]
async fn me(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<UserOut>> {
    let user = db::users::get_user(&state.db, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid-token", "the account no longer exists"))?;
    Ok(Json(user.try_into()?))
}
