//! `/audit-log`: the tamper-evident history, for admins (all of it) and
//! reviewers (what lies in their region and sector), and the walk of the
//! hash chain that proves nothing in it was changed, removed or reordered.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiQuery, Auth};
use crate::auth::Principal;
use crate::db::audit_log::{self, Actor, Entry, LogFilter, Verification};
use crate::db::entity::audit_log as row;
use crate::domain::Role;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

/// Filters and paging of the log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// A target id, or `type:id` (e.g. `audit:0193…`).
    pub target: Option<String>,
    /// The acting user's id.
    pub actor: Option<Uuid>,
    /// Entries at or after this instant (RFC 3339, years 1–9999).
    #[serde(default, deserialize_with = "super::instant::optional")]
    pub since: Option<DateTime<Utc>>,
    /// Entries before this instant.
    #[serde(default, deserialize_with = "super::instant::optional")]
    pub until: Option<DateTime<Utc>>,
    /// 1–1000, default 100.
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// One entry of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryOut {
    /// Position in the chain: 1, 2, 3 …
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    /// `user.login`, `audit.answers_updated`, `review.decided` …
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub region: Option<String>,
    pub sector: Option<String>,
    /// SHA-256 of the target's state before and after the action.
    pub before_digest: Option<String>,
    pub after_digest: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<row::Model> for LogEntryOut {
    fn from(e: row::Model) -> Self {
        Self {
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            seq: e.seq,
            at: e.at,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            region: e.region_code,
            sector: e.sector,
            before_digest: e.before_digest,
            after_digest: e.after_digest,
            request_id: e.request_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    pub items: Vec<LogEntryOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Log entries, oldest first: every one for admins, those about the
/// reviewer's region and sector for reviewers.
#[utoipa::path(get, path = "/audit-log", tag = "log", security(("bearer" = [])),
    params(LogQuery),
    responses((status = 200, body = LogPage),
              (status = 400, description = "`invalid-query`, `invalid-cursor`", body = Problem),
              (status = 403, description = "`forbidden`: only admins and reviewers", body = Problem)))]
async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    may_read(&who)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "limit must be between 1 and 1000",
        ));
    }
    let filter = LogFilter {
        target: q.target.filter(|t| !t.trim().is_empty()),
        actor: q.actor,
        since: q.since,
        until: q.until,
        after: q.cursor.as_deref().map(decode).transpose()?,
    };
    let mut rows = audit_log::list(&state.db, &who, &filter, limit).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more.then(|| rows.last().map(|e| encode(e.seq))).flatten();
    Ok(Json(LogPage {
        items: rows.into_iter().map(LogEntryOut::from).collect(),
        next_cursor,
    }))
}

/// Walks the whole chain and reports the first entry that was changed,
/// removed or moved (`intact: false` with `first_broken`).
#[utoipa::path(get, path = "/audit-log/verify", tag = "log", security(("bearer" = [])),
    responses((status = 200, body = Verification),
              (status = 403, description = "`forbidden`: only admins and reviewers", body = Problem)))]
async fn verify(State(state): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Verification>> {
    may_read(&who)?;
    Ok(Json(audit_log::verify(&state.db).await?))
}

/// Records an action that already committed in its own transaction (a
/// login, a directory change). A failure here must not turn a finished
/// action into an error the client would retry, so it is reported in the
/// service log as an error instead.
pub(super) async fn record_committed(state: &AppState, actor: &Actor, entry: Entry) {
    let action = entry.action;
    if let Err(err) = audit_log::record(&state.db, actor, entry).await {
        tracing::error!(error = %err, action, "the audit log could not record a finished action");
    }
}

fn may_read(who: &Principal) -> ApiResult<()> {
    if matches!(who.role, Role::Admin | Role::Reviewer) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the audit log is for admins and reviewers",
        ))
    }
}

fn encode(seq: i64) -> String {
    B64.encode(format!("l1:{seq}"))
}

fn decode(cursor: &str) -> ApiResult<i64> {
    B64.decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("l1:").and_then(|n| n.parse().ok()))
        .ok_or_else(super::pagination::invalid_cursor)
}
