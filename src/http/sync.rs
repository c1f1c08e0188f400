//! `GET /sync`: everything that changed for the caller since a cursor, in
//! commit order, so a phone that was offline for a week catches up with one
//! loop: call with the last cursor until `has_more` is false.

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

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiQuery, Auth};
use crate::db::changes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync))
}

/// Sync parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// `cursor` of the previous answer; omit to start from the beginning.
    pub cursor: Option<String>,
    /// At most this many changes (1–1000, default 200).
    pub limit: Option<u64>,
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    /// `audit.created`, `audit.updated`, `audit.status_changed`,
    /// `checklist.published`, `methodology.published`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What changed; for audits `{audit_id, site_id, status, version, updated_at}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// A batch of changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    pub changes: Vec<ChangeOut>,
    /// Pass back as `cursor` next time (also when `changes` is empty).
    pub cursor: String,
    /// More changes are waiting: call again right away.
    pub has_more: bool,
}

/// Changes visible to the caller since `cursor`, oldest first. Cursors are
/// opaque, survive restarts and work on any replica; no change committed
/// concurrently is ever skipped.
#[utoipa::path(get, path = "/sync", tag = "audits", security(("bearer" = [])),
    params(SyncQuery),
    responses((status = 200, body = SyncOut),
              (status = 400, description = "`invalid-cursor`, `invalid-query`", body = Problem),
              (status = 401, body = Problem)))]
async fn sync(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> ApiResult<Json<SyncOut>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "limit must be between 1 and 1000",
        ));
    }
    let after = q.cursor.as_deref().map(decode).transpose()?.unwrap_or(0);
    let mut rows = changes::since(&state.db, &principal, after, limit).await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let last = rows.last().map_or(after, |c| c.seq);
    let changes = rows
        .into_iter()
        .map(|c| ChangeOut {
            data: serde_json::from_str(&c.payload).unwrap_or(serde_json::Value::Null),
            kind: c.kind,
            at: c.created_at,
        })
        .collect();
    Ok(Json(SyncOut {
        changes,
        cursor: encode(last),
        has_more,
    }))
}

fn encode(seq: i64) -> String {
    B64.encode(format!("s1:{seq}"))
}

fn decode(cursor: &str) -> Result<i64, ApiError> {
    B64.decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("s1:").and_then(|n| n.parse().ok()))
        .filter(|n: &i64| *n >= 0)
        .ok_or_else(super::pagination::invalid_cursor)
}
