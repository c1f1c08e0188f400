//! `/ratings`: imports of the other criteria and survey counts, the rating of a
//! region, sector and year (JSON, CSV, XLSX), the answers behind it as a
//! streamed CSV, and publication: an operator prepares a rating, a council
//! member approves it, and the frozen snapshot is served to everyone under
//! `/public/ratings`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, Auth, RequestId, is_json, media_type};
use crate::auth::Principal;
use crate::db::entity::rating_publication;
use crate::db::rating::{self as repo, NewImport, NewPublication};
use crate::domain::{RegionCode, Role, Sector};
use crate::rating::export::{self, Layout};
use crate::rating::gather::{GatherError, RatingQuery, RatingReport, gather};
use crate::rating::import::{self, InstitutionKey};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_inputs))
        .routes(routes!(get_rating))
        .routes(routes!(export_answers))
        .routes(routes!(list_publications, prepare))
        .routes(routes!(get_publication))
        .routes(routes!(approve))
        .routes(routes!(public_list))
        .routes(routes!(public_get))
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const CSV: &str = "text/csv; charset=utf-8";

// ---------------------------------------------------------------- imports

/// The outcome of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub import_id: Uuid,
    /// SHA-256 of the file.
    pub sha256: String,
    pub rows: i32,
    /// `utf-8`, `windows-1251` or `json`.
    pub encoding: String,
    /// True when this very file was imported before: nothing changed.
    pub unchanged: bool,
    pub imported_at: DateTime<Utc>,
}

/// Imports K1, K2, K4, K5 (or their indicators) and survey counts per
/// institution and year, from CSV (`text/csv`; UTF-8 or Windows-1251, `,` or
/// `;`) or JSON (`{"rows": [...]}`). All or nothing: any bad row rejects the
/// file with every bad row and column listed. The same file again is a no-op.
#[utoipa::path(post, path = "/ratings/inputs", tag = "rating", security(("bearer" = [])),
    request_body(content_type = "text/csv", description = "columns: institution_id or tax_id, year, k1, k2, k4, k5, indicators 1.1 … 5.3, disabled_respondents, disabled_satisfied"),
    responses((status = 201, description = "imported", body = ImportOut),
              (status = 200, description = "this file was imported before; nothing changed", body = ImportOut),
              (status = 403, description = "`forbidden`: operators and admins import", body = Problem),
              (status = 415, description = "`unsupported-media-type`: send text/csv or application/json", body = Problem),
              (status = 422, description = "`validation-failed`, one entry per bad row and column (`line 3/k1`, `rows[2].k1`): `unknown-column`, `missing-column`, `duplicate-column`, `invalid-number`, `out-of-range`, `invalid-count`, `invalid-year`, `invalid-value`, `required`, `duplicate-row`, `empty-row`, `unknown-institution`, `out-of-scope`, `unsupported-encoding`, `malformed-csv`, `malformed-json`, `empty-import`", body = Problem)))]
async fn import_inputs(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    if !matches!(who.role, Role::Operator | Role::Admin) {
        return Err(ApiError::forbidden(
            "operators and admins import rating inputs",
        ));
    }
    let content_type = headers.get(header::CONTENT_TYPE);
    let (parsed, format) = if is_json(content_type) {
        (import::parse_json(&body), "json")
    } else if media_type(content_type).as_deref() == Some("text/csv") {
        (import::parse_csv(&body), "csv")
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the import as text/csv or application/json",
        ));
    };
    let parsed = parsed.map_err(|problems| {
        ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError::new(p.field, p.code, p.message))
                .collect(),
        )
    })?;
    let digest = hex::encode(Sha256::digest(&body));
    if let Some(done) = repo::import_by_digest(&state.db, &digest).await? {
        return Ok((StatusCode::OK, Json(import_out(done, true))).into_response());
    }

    // Resolve every institution; an unknown one or one outside the
    // operator's scope is a bad row like any other.
    let ids: Vec<Uuid> = parsed
        .rows
        .iter()
        .filter_map(|r| match &r.institution {
            InstitutionKey::Id(id) => Some(*id),
            InstitutionKey::TaxId(_) => None,
        })
        .collect();
    let tax_ids: Vec<String> = parsed
        .rows
        .iter()
        .filter_map(|r| match &r.institution {
            InstitutionKey::TaxId(t) => Some(t.clone()),
            InstitutionKey::Id(_) => None,
        })
        .collect();
    let known = repo::institutions_named(&state.db, &ids, &tax_ids).await?;
    let mut errors = Vec::new();
    let mut rows = Vec::with_capacity(parsed.rows.len());
    let mut seen = std::collections::BTreeMap::new();
    for row in parsed.rows {
        let found = known.iter().find(|i| match &row.institution {
            InstitutionKey::Id(id) => i.id == *id,
            InstitutionKey::TaxId(t) => i.tax_id.as_deref() == Some(t.as_str()),
        });
        let Some(institution) = found else {
            errors.push(FieldError::new(
                &row.location,
                "unknown-institution",
                "no institution in the directory has this id or tax id",
            ));
            continue;
        };
        let in_scope = match (
            institution.region_code.parse::<RegionCode>(),
            institution.sector.parse::<Sector>(),
        ) {
            (Ok(region), Ok(sector)) => who.covers(&region, sector),
            _ => false,
        };
        if !in_scope {
            errors.push(FieldError::new(
                &row.location,
                "out-of-scope",
                "the institution is outside your region or sector",
            ));
            continue;
        }
        // One institution named by id on one row and by tax id on another.
        if let Some(first) = seen.insert((institution.id, row.year), row.location.clone()) {
            errors.push(FieldError::new(
                &row.location,
                "duplicate-row",
                format!("the same institution and year as {first}"),
            ));
            continue;
        }
        rows.push((institution.id, row.year, row.values));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let stored = repo::store_import(
        &state.db,
        NewImport {
            sha256: digest.clone(),
            format,
            encoding: parsed.encoding,
            rows,
        },
        &request_id.actor(&who),
    )
    .await;
    match stored {
        Ok(import) => Ok((StatusCode::CREATED, Json(import_out(import, false))).into_response()),
        // The same file arrived twice at once: the other request stored it.
        Err(crate::db::DbError::Conflict(_)) => {
            let done = repo::import_by_digest(&state.db, &digest)
                .await?
                .ok_or_else(|| anyhow::anyhow!("import {digest} conflicted but is missing"))?;
            Ok((StatusCode::OK, Json(import_out(done, true))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn import_out(m: crate::db::entity::rating_import::Model, unchanged: bool) -> ImportOut {
    ImportOut {
        import_id: m.id,
        sha256: m.sha256,
        rows: m.rows,
        encoding: m.encoding,
        unchanged,
        imported_at: m.created_at,
    }
}

// ---------------------------------------------------------------- ratings

/// Which rating, and in what form.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatingParams {
    /// Two-digit region code.
    #[param(value_type = String, example = "48")]
    pub region: RegionCode,
    pub sector: Sector,
    pub year: i32,
    /// A scoring methodology id (default: the catalog's default, `nok-344n`).
    pub methodology: Option<String>,
    /// `json`, `csv` or `xlsx`; overrides `Accept`.
    pub format: Option<String>,
}

/// The forms a rating is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Csv,
    Xlsx,
}

fn form(requested: Option<&str>, headers: &HeaderMap) -> ApiResult<Form> {
    match requested.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => return Ok(Form::Json),
        Some("csv") => return Ok(Form::Csv),
        Some("xlsx") => return Ok(Form::Xlsx),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("format `{other}` is not one of json, csv, xlsx"),
            ));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(if accept.contains("spreadsheetml") {
        Form::Xlsx
    } else if accept.contains("text/csv") {
        Form::Csv
    } else {
        Form::Json
    })
}

/// The rating of a region, sector and year as stored data give it now:
/// institutions ranked by Sn (ties share a rank; incomplete ones listed last,
/// unranked, with what is missing), every criterion, K3's indicators, summary
/// figures, and the versions and ids it was computed from. JSON, CSV or XLSX
/// by `format=` or `Accept`.
#[utoipa::path(get, path = "/ratings", tag = "rating", security(("bearer" = [])),
    params(RatingParams),
    responses((status = 200, description = "the rating (`application/json`, `text/csv`, or XLSX)", body = RatingReport),
              (status = 400, description = "`invalid-query`", body = Problem),
              (status = 403, description = "`forbidden`: outside the caller's scope, or a volunteer", body = Problem),
              (status = 422, description = "`validation-failed`: `methodology` `unknown-methodology`, `not-a-scoring-methodology`", body = Problem)))]
async fn get_rating(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<RatingParams>,
) -> ApiResult<Response> {
    may_read_ratings(&who, &q.region, q.sector)?;
    let form = form(q.format.as_deref(), &headers)?;
    let report = compute(&state, &q.region, q.sector, q.year, q.methodology.clone()).await?;
    render(report, form, "rating")
}

/// The years a rating, and the answers behind it, may be asked for
/// ([`crate::rating::YEARS`]).
fn check_year(year: i32) -> ApiResult<()> {
    if crate::rating::YEARS.contains(&year) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!(
                "year must be between {} and {}",
                crate::rating::YEARS.start(),
                crate::rating::YEARS.end()
            ),
        ))
    }
}

async fn compute(
    state: &AppState,
    region: &RegionCode,
    sector: Sector,
    year: i32,
    methodology: Option<String>,
) -> ApiResult<RatingReport> {
    check_year(year)?;
    let query = RatingQuery {
        region: region.as_str().to_owned(),
        sector: sector.as_str().to_owned(),
        year,
        methodology,
    };
    gather(&state.db, &state.catalogs, &query)
        .await
        .map_err(|e| match e {
            GatherError::UnknownMethodology(_) => {
                ApiError::invalid_field("methodology", "unknown-methodology", e.to_string())
            }
            GatherError::NotScoring(_) | GatherError::NoRatingWeights(_) => {
                ApiError::invalid_field("methodology", "not-a-scoring-methodology", e.to_string())
            }
            GatherError::Db(db) => db.into(),
            // A stored release that no longer loads is 500; the database
            // failing to read it is 503, as everywhere.
            GatherError::Catalog(err) => err.into(),
        })
}

fn render(report: RatingReport, form: Form, name: &str) -> ApiResult<Response> {
    let layout = if report.in_points() {
        Layout::Points
    } else {
        Layout::Criteria
    };
    let file = format!("{name}-{}-{}-{}", report.region, report.sector, report.year);
    Ok(match form {
        Form::Json => Json(report).into_response(),
        Form::Csv => {
            // Line by line: the table is not copied into one more buffer.
            let header = export::csv_header(layout);
            let lines = std::iter::once(header).chain(
                report
                    .institutions
                    .into_iter()
                    .map(move |s| export::csv_line(layout, &s)),
            );
            let stream = futures_util::stream::iter(
                lines.map(|l| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(l))),
            );
            attachment(Body::from_stream(stream), CSV, &format!("{file}.csv"))
        }
        Form::Xlsx => {
            let bytes = export::xlsx(
                &report.title(),
                layout,
                &report.institutions,
                &report.summary,
            )
            .map_err(|e| anyhow::anyhow!("XLSX export failed: {e}"))?;
            attachment(Body::from(bytes), XLSX, &format!("{file}.xlsx"))
        }
    })
}

fn attachment(body: Body, content_type: &'static str, file: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

fn may_read_ratings(who: &Principal, region: &RegionCode, sector: Sector) -> ApiResult<()> {
    let role_reads = matches!(
        who.role,
        Role::Operator | Role::Council | Role::Reviewer | Role::Admin
    );
    if role_reads && who.covers(region, sector) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "ratings are for operators, reviewers and councils of the region and sector",
        ))
    }
}

/// Which answers to export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnswersParams {
    #[param(value_type = String, example = "48")]
    pub region: RegionCode,
    pub sector: Sector,
    /// 2000–2100.
    #[param(minimum = 2000, maximum = 2100)]
    pub year: i32,
}

/// Every answer of the approved audits of a region, sector and year as CSV
/// (`audit_id, institution_id, site_id, revision, item, value`), streamed page
/// by page from the database so memory stays bounded however many there are.
#[utoipa::path(get, path = "/ratings/answers", tag = "rating", security(("bearer" = [])),
    params(AnswersParams),
    responses((status = 200, description = "`text/csv`", content_type = "text/csv"),
              (status = 400, description = "`invalid-query`: a year outside 2000–2100", body = Problem),
              (status = 403, body = Problem)))]
async fn export_answers(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AnswersParams>,
) -> ApiResult<Response> {
    may_read_ratings(&who, &q.region, q.sector)?;
    // Checked before the answer starts: a year the database cannot hold
    // would otherwise fail the stream after its 200.
    check_year(q.year)?;
    let file = format!("answers-{}-{}-{}.csv", q.region, q.sector.as_str(), q.year);
    let header = "\u{feff}audit_id,institution_id,site_id,revision,item,value\r\n";
    let db = state.db.clone();
    let (region, sector, year) = (
        q.region.as_str().to_owned(),
        q.sector.as_str().to_owned(),
        q.year,
    );
    let pages = futures_util::stream::unfold(Some(None), move |cursor: Option<Option<Uuid>>| {
        let db = db.clone();
        let (region, sector) = (region.clone(), sector.clone());
        async move {
            let after = cursor?;
            match repo::approved_page(&db, &region, &sector, year, after, 200).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|a| a.id);
                    let mut chunk = String::new();
                    for a in &page {
                        let answers: std::collections::BTreeMap<String, serde_json::Value> =
                            serde_json::from_str(&a.answers).unwrap_or_default();
                        for (item, value) in answers {
                            // Text is quoted and kept from running as a formula;
                            // numbers and booleans are written as they are.
                            let value = match value {
                                serde_json::Value::String(s) => export::quote(&s),
                                other => other.to_string(),
                            };
                            chunk.push_str(&format!(
                                "{},{},{},{},{},{}\r\n",
                                a.id,
                                a.institution_id,
                                a.site_id,
                                a.revision,
                                export::quote(&item),
                                value
                            ));
                        }
                    }
                    Some((Ok(axum::body::Bytes::from(chunk)), Some(next)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "answers export failed mid-stream");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    // Fused: the compression layer polls a body once more after its end,
    // and an `unfold` polled after its end panics, which cut every
    // compressed export off before its last chunk.
    let body = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(header.as_bytes()))
    })
    .chain(pages)
    .fuse();
    Ok(attachment(Body::from_stream(body), CSV, &file))
}

// ---------------------------------------------------------------- publication

/// A rating to prepare for the council.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareIn {
    #[schema(value_type = String, example = "48")]
    pub region: RegionCode,
    pub sector: Sector,
    pub year: i32,
    /// Default: the catalog's default methodology.
    #[serde(default)]
    pub methodology: Option<String>,
}

/// A prepared or published rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicationOut {
    pub id: Uuid,
    pub region: String,
    pub sector: String,
    pub year: i32,
    pub methodology_id: String,
    pub methodology_version: String,
    /// `prepared` or `published`.
    pub status: String,
    /// SHA-256 over every input the rating was computed from.
    pub inputs_digest: String,
    pub prepared_by: Uuid,
    pub prepared_at: DateTime<Utc>,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    /// The frozen rating (left out of lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RatingReport>)]
    pub rating: Option<Box<serde_json::value::RawValue>>,
}

/// A list of ratings.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicationList {
    pub items: Vec<PublicationOut>,
}

fn publication_out(m: rating_publication::Model, with_rating: bool) -> ApiResult<PublicationOut> {
    // The snapshot is served exactly as it was stored when prepared.
    let rating = if with_rating {
        Some(
            serde_json::value::RawValue::from_string(m.snapshot)
                .map_err(|e| anyhow::anyhow!("rating {} snapshot unreadable: {e}", m.id))?,
        )
    } else {
        None
    };
    Ok(PublicationOut {
        id: m.id,
        region: m.region_code,
        sector: m.sector,
        year: m.year,
        methodology_id: m.methodology_id,
        methodology_version: m.methodology_version,
        status: m.status,
        inputs_digest: m.inputs_digest,
        prepared_by: m.prepared_by,
        prepared_at: m.prepared_at,
        approved_by: m.approved_by,
        approved_at: m.approved_at,
        rating,
    })
}

/// Computes a rating now and keeps it, unchanged, for the public council to
/// approve (operators and admins).
#[utoipa::path(post, path = "/ratings/publications", tag = "rating", security(("bearer" = [])),
    request_body = PrepareIn,
    responses((status = 201, description = "prepared", body = PublicationOut),
              (status = 403, description = "`forbidden`: operators of the region and sector, admins", body = Problem),
              (status = 422, body = Problem)))]
async fn prepare(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<PrepareIn>,
) -> ApiResult<(StatusCode, Json<PublicationOut>)> {
    if !matches!(who.role, Role::Operator | Role::Admin) || !who.covers(&body.region, body.sector) {
        return Err(ApiError::forbidden(
            "operators of the region and sector prepare ratings",
        ));
    }
    let report = compute(
        &state,
        &body.region,
        body.sector,
        body.year,
        body.methodology,
    )
    .await?;
    let snapshot = serde_json::to_string(&report)
        .map_err(|e| anyhow::anyhow!("rating not serialisable: {e}"))?;
    let stored = repo::prepare(
        &state.db,
        NewPublication {
            region: report.region.clone(),
            sector: report.sector.clone(),
            year: report.year,
            methodology_id: report.methodology.id.clone(),
            methodology_version: report.methodology.version.clone(),
            snapshot,
            inputs_digest: report.inputs_digest.clone(),
        },
        &request_id.actor(&who),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(publication_out(stored, true)?)))
}

/// Filters of the rating list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicationQuery {
    #[param(value_type = Option<String>)]
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
    pub year: Option<i32>,
}

/// Prepared and published ratings in the caller's scope, newest first.
#[utoipa::path(get, path = "/ratings/publications", tag = "rating", security(("bearer" = [])),
    params(PublicationQuery),
    responses((status = 200, body = PublicationList), (status = 403, body = Problem)))]
async fn list_publications(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PublicationQuery>,
) -> ApiResult<Json<PublicationList>> {
    if !matches!(
        who.role,
        Role::Operator | Role::Council | Role::Reviewer | Role::Admin
    ) {
        return Err(ApiError::forbidden(
            "ratings are for operators, reviewers and councils",
        ));
    }
    let region = q.region.as_ref().or(who.region.as_ref());
    let sector = q.sector.or(who.sector);
    let rows = repo::publications(
        &state.db,
        false,
        region.map(RegionCode::as_str),
        sector.map(Sector::as_str),
        q.year,
    )
    .await?;
    let items = rows
        .into_iter()
        .filter(|m| in_scope(&who, m))
        .map(|m| publication_out(m, false))
        .collect::<ApiResult<_>>()?;
    Ok(Json(PublicationList { items }))
}

fn in_scope(who: &Principal, m: &rating_publication::Model) -> bool {
    match (
        m.region_code.parse::<RegionCode>(),
        m.sector.parse::<Sector>(),
    ) {
        (Ok(region), Ok(sector)) => who.covers(&region, sector),
        _ => false,
    }
}

/// One prepared or published rating, with its frozen content.
#[utoipa::path(get, path = "/ratings/publications/{id}", tag = "rating", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PublicationOut), (status = 404, body = Problem)))]
async fn get_publication(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PublicationOut>> {
    let found = repo::publication(&state.db, id)
        .await?
        .filter(|m| {
            matches!(
                who.role,
                Role::Operator | Role::Council | Role::Reviewer | Role::Admin
            ) && in_scope(&who, m)
        })
        .ok_or_else(|| ApiError::not_found("rating"))?;
    Ok(Json(publication_out(found, true)?))
}

/// Approves a prepared rating (council members of its region and sector, and
/// admins): it is published exactly as prepared, and never changes again.
#[utoipa::path(post, path = "/ratings/publications/{id}/approve", tag = "rating", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "published", body = PublicationOut),
              (status = 403, description = "`forbidden`: only the public council approves", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "`already-published`", body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PublicationOut>> {
    let found = repo::publication(&state.db, id)
        .await?
        .filter(|m| in_scope(&who, m))
        .ok_or_else(|| ApiError::not_found("rating"))?;
    if !matches!(who.role, Role::Council | Role::Admin) {
        return Err(ApiError::forbidden("the public council approves ratings"));
    }
    match repo::publish(&state.db, found.id, &request_id.actor(&who)).await? {
        Some(published) => Ok(Json(publication_out(published, true)?)),
        None => Err(ApiError::conflict(
            "already-published",
            "this rating is published already; prepare a new one for new data",
        )),
    }
}

/// Published ratings, newest first; no sign-in needed.
#[utoipa::path(get, path = "/public/ratings", tag = "rating",
    params(PublicationQuery),
    responses((status = 200, body = PublicationList)))]
async fn public_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PublicationQuery>,
) -> ApiResult<Json<PublicationList>> {
    let rows = repo::publications(
        &state.db,
        true,
        q.region.as_ref().map(RegionCode::as_str),
        q.sector.map(Sector::as_str),
        q.year,
    )
    .await?;
    let items = rows
        .into_iter()
        .map(|m| publication_out(m, false))
        .collect::<ApiResult<_>>()?;
    Ok(Json(PublicationList { items }))
}

/// Form of a public rating.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicFormat {
    /// `json` (default), `csv` or `xlsx`; overrides `Accept`.
    pub format: Option<String>,
}

/// A published rating, exactly as the council approved it; no sign-in
/// needed. Prepared (unapproved) ratings are not found here.
#[utoipa::path(get, path = "/public/ratings/{id}", tag = "rating",
    params(("id" = Uuid, Path), PublicFormat),
    responses((status = 200, description = "the published rating (JSON, CSV or XLSX)", body = PublicationOut),
              (status = 404, body = Problem)))]
async fn public_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<PublicFormat>,
) -> ApiResult<Response> {
    let found = repo::publication(&state.db, id)
        .await?
        .filter(|m| m.status == "published")
        .ok_or_else(|| ApiError::not_found("published rating"))?;
    match form(q.format.as_deref(), &headers)? {
        Form::Json => Ok(Json(publication_out(found, true)?).into_response()),
        other => {
            let report: RatingReport = serde_json::from_str(&found.snapshot)
                .map_err(|e| anyhow::anyhow!("rating {} snapshot unreadable: {e}", found.id))?;
            render(report, other, "published-rating")
        }
    }
}
