//! `/organisations`: disability organisations, ministries, operators and
//! public councils. Everyone signed in reads them; admins create them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::audit_log::record_committed;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use super::pagination::{PageParams, Paginated};
use super::validate::Checks;
use crate::db::DbError;
use crate::db::audit_log::Entry;
use crate::db::directory::{self, NewOrganisation};
use crate::db::entity::organisation;
use crate::domain::{OrganisationKind, RegionCode, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_organisations, create_organisation))
        .routes(routes!(get_organisation))
}

/// An organisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationOut {
    pub id: Uuid,
    pub name: String,
    pub kind: OrganisationKind,
    pub region: Option<RegionCode>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<organisation::Model> for OrganisationOut {
    type Error = ApiError;
    fn try_from(m: organisation::Model) -> Result<Self, ApiError> {
        let corrupt = |what: &str| anyhow::anyhow!("organisation {} has an invalid {what}", m.id);
        Ok(Self {
            kind: m.kind.parse().map_err(|_| corrupt("kind"))?,
            region: m
                .region_code
                .clone()
                .map(|c| c.parse())
                .transpose()
                .map_err(|_| corrupt("region"))?,
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// Filter and paging of the organisation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganisationQuery {
    pub kind: Option<OrganisationKind>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// Lists organisations.
#[utoipa::path(get, path = "/organisations", tag = "directory", security(("bearer" = [])),
    params(OrganisationQuery),
    responses((status = 200, body = Paginated<OrganisationOut>), (status = 401, body = Problem)))]
async fn list_organisations(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiQuery(q): ApiQuery<OrganisationQuery>,
) -> ApiResult<Json<Paginated<OrganisationOut>>> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let rows = directory::list_organisations(&state.db, q.kind, page).await?;
    Ok(Json(Paginated::try_from_page(
        rows,
        OrganisationOut::try_from,
    )?))
}

/// A new organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisationIn {
    /// Up to 500 characters once trimmed.
    #[schema(min_length = 1, max_length = 500)]
    pub name: String,
    pub kind: OrganisationKind,
    #[schema(value_type = Option<String>, example = "48")]
    pub region: Option<RegionCode>,
}

/// Creates an organisation (admins only).
#[utoipa::path(post, path = "/organisations", tag = "directory", security(("bearer" = [])),
    request_body = NewOrganisationIn,
    responses((status = 201, body = OrganisationOut), (status = 403, body = Problem),
              (status = 409, description = "`organisation-exists`", body = Problem),
              (status = 422, body = Problem)))]
async fn create_organisation(
    State(state): State<AppState>,
    Auth(principal): Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<NewOrganisationIn>,
) -> ApiResult<(StatusCode, Json<OrganisationOut>)> {
    if principal.role != Role::Admin {
        return Err(ApiError::forbidden("only admins manage organisations"));
    }
    let mut checks = Checks::default();
    let name = checks.text("name", &body.name, 500);
    checks.finish()?;
    let created = directory::create_organisation(
        &state.db,
        NewOrganisation {
            name,
            kind: body.kind,
            region: body.region,
        },
    )
    .await
    .map_err(|e| match e {
        DbError::Conflict(_) => ApiError::conflict(
            "organisation-exists",
            "an organisation with this name exists",
        ),
        DbError::MissingReference(_) => {
            ApiError::invalid_field("region", "unknown-region", "the region is not registered")
        }
        other => other.into(),
    })?;
    let out: OrganisationOut = created.try_into()?;
    record_committed(
        &state,
        &request_id.actor(&principal),
        Entry::new("organisation.created", "organisation", out.id)
            .states(None, serde_json::to_value(&out).ok())
            .detail(serde_json::json!({"name": out.name})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One organisation.
#[utoipa::path(get, path = "/organisations/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = OrganisationOut), (status = 404, body = Problem)))]
async fn get_organisation(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<OrganisationOut>> {
    let found = directory::get_organisation(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))?;
    Ok(Json(found.try_into()?))
}
