//! `/institutions` and their `/sites`: the directory volunteers pick from.
//! Everyone signed in reads it; admins and operators (within their region
//! and sector scope) write it.

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
use crate::auth::Principal;
use crate::db::audit_log::Entry;
use crate::db::directory::{self, InstitutionFilter, NewInstitution, NewSite};
use crate::db::entity::{institution, site};
use crate::domain::{RegionCode, Sector};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_institutions, create_institution))
        .routes(routes!(get_institution))
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site))
}

/// An institution (организация социальной сферы).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstitutionOut {
    pub id: Uuid,
    pub name: String,
    pub region: RegionCode,
    pub sector: Sector,
    /// ИНН, 10 or 12 digits.
    pub tax_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<institution::Model> for InstitutionOut {
    type Error = ApiError;
    fn try_from(m: institution::Model) -> Result<Self, ApiError> {
        let corrupt = |what: &str| anyhow::anyhow!("institution {} has an invalid {what}", m.id);
        Ok(Self {
            region: m.region_code.parse().map_err(|_| corrupt("region"))?,
            sector: m.sector.parse().map_err(|_| corrupt("sector"))?,
            id: m.id,
            name: m.name,
            tax_id: m.tax_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// A building of an institution, where audits happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteOut {
    pub id: Uuid,
    pub institution_id: Uuid,
    pub name: String,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<site::Model> for SiteOut {
    fn from(m: site::Model) -> Self {
        Self {
            id: m.id,
            institution_id: m.institution_id,
            name: m.name,
            address: m.address,
            latitude: m.latitude,
            longitude: m.longitude,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Filters for the institution list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstitutionQuery {
    /// Two-digit region code.
    pub region: Option<String>,
    pub sector: Option<Sector>,
    /// Case-insensitive part of the name.
    pub text: Option<String>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// Lists institutions, filtered and paginated.
#[utoipa::path(get, path = "/institutions", tag = "directory", security(("bearer" = [])),
    params(InstitutionQuery),
    responses((status = 200, body = Paginated<InstitutionOut>),
              (status = 400, description = "`invalid-query`, `invalid-cursor`", body = Problem),
              (status = 401, body = Problem)))]
async fn list_institutions(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiQuery(q): ApiQuery<InstitutionQuery>,
) -> ApiResult<Json<Paginated<InstitutionOut>>> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let region = q
        .region
        .map(|r| r.parse::<RegionCode>())
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", e.to_string()))?;
    let filter = InstitutionFilter {
        region,
        sector: q.sector,
        text: q.text,
    };
    let rows = directory::list_institutions(&state.db, &filter, page).await?;
    Ok(Json(Paginated::try_from_page(
        rows,
        InstitutionOut::try_from,
    )?))
}

/// A new institution.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstitutionIn {
    /// Up to 500 characters once trimmed.
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "ОБУ «Центр социальной защиты населения по г. Липецку»"
    )]
    pub name: String,
    #[schema(value_type = String, example = "48", pattern = "^[0-9]{2}$")]
    pub region: String,
    pub sector: Sector,
    /// ИНН: 10 digits (legal entity) or 12.
    #[schema(pattern = "^([0-9]{10}|[0-9]{12})$")]
    pub tax_id: Option<String>,
}

/// Registers an institution (admins; operators within their scope).
#[utoipa::path(post, path = "/institutions", tag = "directory", security(("bearer" = [])),
    request_body = NewInstitutionIn,
    responses((status = 201, body = InstitutionOut),
              (status = 403, description = "`forbidden`: role or scope does not allow it", body = Problem),
              (status = 409, description = "`tax-id-taken`", body = Problem),
              (status = 422, description = "invalid fields, unknown region", body = Problem)))]
async fn create_institution(
    State(state): State<AppState>,
    Auth(principal): Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<NewInstitutionIn>,
) -> ApiResult<(StatusCode, Json<InstitutionOut>)> {
    require_directory_writer(&principal)?;
    let mut checks = Checks::default();
    let name = checks.text("name", &body.name, 500);
    let region = body.region.parse::<RegionCode>();
    if let Err(e) = &region {
        checks.fail("region", "invalid-value", e.to_string());
    }
    let tax_id = body
        .tax_id
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if let Some(t) = &tax_id {
        checks.ensure(
            matches!(t.len(), 10 | 12) && t.bytes().all(|b| b.is_ascii_digit()),
            "tax_id",
            "invalid-value",
            "ИНН has 10 or 12 digits",
        );
    }
    checks.finish()?;
    let region =
        region.map_err(|e| ApiError::invalid_field("region", "invalid-value", e.to_string()))?;
    if !principal.covers(&region, body.sector) {
        return Err(ApiError::forbidden(
            "the institution is outside your region or sector",
        ));
    }
    if !directory::list_regions(&state.db)
        .await?
        .iter()
        .any(|r| r.code == region.as_str())
    {
        return Err(ApiError::invalid_field(
            "region",
            "unknown-region",
            format!("region {region} is not registered"),
        ));
    }
    let created = directory::create_institution(
        &state.db,
        NewInstitution {
            name,
            region,
            sector: body.sector,
            tax_id,
        },
    )
    .await
    .map_err(|e| match e {
        crate::db::DbError::Conflict(_) => ApiError::conflict(
            "tax-id-taken",
            "an institution with this tax id is registered",
        ),
        other => other.into(),
    })?;
    let out: InstitutionOut = created.try_into()?;
    record_committed(
        &state,
        &request_id.actor(&principal),
        Entry::new("institution.created", "institution", out.id)
            .scope(out.region.as_str(), out.sector.as_str())
            .states(None, serde_json::to_value(&out).ok())
            .detail(serde_json::json!({"name": out.name})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One institution.
#[utoipa::path(get, path = "/institutions/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = InstitutionOut), (status = 404, body = Problem)))]
async fn get_institution(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<InstitutionOut>> {
    let found = directory::get_institution(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("institution"))?;
    Ok(Json(found.try_into()?))
}

/// Sites of an institution.
#[utoipa::path(get, path = "/institutions/{id}/sites", tag = "directory", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = Paginated<SiteOut>), (status = 404, body = Problem)))]
async fn list_sites(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(paging): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<SiteOut>>> {
    let page = paging.request()?;
    directory::get_institution(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("institution"))?;
    let rows = directory::list_sites(&state.db, id, page).await?;
    Ok(Json(Paginated::from_page(rows, SiteOut::from)))
}

/// A new site.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteIn {
    /// Up to 500 characters once trimmed.
    #[schema(min_length = 1, max_length = 500)]
    pub name: String,
    /// Up to 1,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 1000)]
    pub address: String,
    /// WGS 84 degrees, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// WGS 84 degrees, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
}

/// Adds a site to an institution (admins; operators within their scope).
#[utoipa::path(post, path = "/institutions/{id}/sites", tag = "directory", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewSiteIn,
    responses((status = 201, body = SiteOut), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_site(
    State(state): State<AppState>,
    Auth(principal): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewSiteIn>,
) -> ApiResult<(StatusCode, Json<SiteOut>)> {
    require_directory_writer(&principal)?;
    let institution: InstitutionOut = directory::get_institution(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("institution"))?
        .try_into()?;
    if !principal.covers(&institution.region, institution.sector) {
        return Err(ApiError::forbidden(
            "the institution is outside your region or sector",
        ));
    }
    let mut checks = Checks::default();
    let name = checks.text("name", &body.name, 500);
    let address = checks.text("address", &body.address, 1000);
    checks.ensure(
        (-90.0..=90.0).contains(&body.latitude),
        "latitude",
        "out-of-range",
        "must be between -90 and 90",
    );
    checks.ensure(
        (-180.0..=180.0).contains(&body.longitude),
        "longitude",
        "out-of-range",
        "must be between -180 and 180",
    );
    checks.finish()?;
    let created = directory::create_site(
        &state.db,
        NewSite {
            institution_id: id,
            name,
            address,
            latitude: body.latitude,
            longitude: body.longitude,
        },
    )
    .await?;
    let out = SiteOut::from(created);
    record_committed(
        &state,
        &request_id.actor(&principal),
        Entry::new("site.created", "site", out.id)
            .scope(institution.region.as_str(), institution.sector.as_str())
            .states(None, serde_json::to_value(&out).ok())
            .detail(serde_json::json!({"institution_id": id, "name": out.name})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One site.
#[utoipa::path(get, path = "/sites/{id}", tag = "directory", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SiteOut), (status = 404, body = Problem)))]
async fn get_site(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SiteOut>> {
    let found = directory::get_site(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    Ok(Json(found.into()))
}

fn require_directory_writer(principal: &Principal) -> Result<(), ApiError> {
    if principal.role.manages_directory() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "a {} may not change the directory; admins and operators may",
            principal.role
        )))
    }
}
