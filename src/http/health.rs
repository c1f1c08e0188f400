//! Liveness and readiness probes for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiResult};

/// Probe answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, body = Health)))]
async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The service can serve requests: the database and the photo store answer.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health),
              (status = 503, description = "`database-unavailable` or `storage-unavailable`", body = super::error::Problem)))]
async fn ready(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    crate::db::ping(&state.db).await.map_err(|err| {
        tracing::warn!(error = %err, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "the database does not answer",
        )
        .retry_after(5)
    })?;
    state.storage.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-unavailable",
            "the photo store does not answer",
        )
        .retry_after(5)
    })?;
    Ok(Json(Health { status: "ok" }))
}
