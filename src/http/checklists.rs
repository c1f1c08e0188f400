//! `/checklists` and `/methodologies`: what a mobile client downloads before
//! going offline. Documents are prepared once at start and carry strong
//! ETags, so a client revalidating with `If-None-Match` gets a bodiless 304.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::encoding::Accepted;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiPath, Auth};
use crate::catalogs::{Coding, Prepared};
use crate::checklist::Localized;
use crate::db;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_checklists))
        .routes(routes!(get_checklist_version))
        .routes(routes!(list_methodologies))
        .routes(routes!(get_bundle))
}

/// A published checklist version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecklistOut {
    pub id: String,
    pub version: String,
    /// Order 627 zone, or `services` for organisational conditions.
    pub zone: String,
    #[schema(value_type = Object)]
    pub title: Localized,
    /// ETag of `GET /checklists/{id}/versions/{version}`.
    pub etag: String,
}

/// The current checklists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecklistList {
    pub items: Vec<ChecklistOut>,
}

/// Checklists of the current release.
#[utoipa::path(get, path = "/checklists", tag = "checklists", security(("bearer" = [])),
    responses((status = 200, body = ChecklistList), (status = 401, body = Problem)))]
async fn list_checklists(State(state): State<AppState>, Auth(_): Auth) -> Json<ChecklistList> {
    let catalogs = &state.catalogs;
    let items = catalogs
        .current()
        .checklists()
        .iter()
        .map(|c| ChecklistOut {
            id: c.id().to_owned(),
            version: c.version().to_owned(),
            zone: c.zone().as_str().to_owned(),
            title: c.title().clone(),
            etag: catalogs
                .compiled(c.id(), c.version())
                .map(|p| p.etag.clone())
                .unwrap_or_default(),
        })
        .collect();
    Json(ChecklistList { items })
}

/// The compiled form of one checklist version, current or older: items with
/// localised texts, types, units, ranges, options, conditions and photo
/// requirements, and rules. Send `If-None-Match` to revalidate.
#[utoipa::path(get, path = "/checklists/{id}/versions/{version}", tag = "checklists",
    security(("bearer" = [])),
    params(("id" = String, Path), ("version" = String, Path),
           ("If-None-Match" = Option<String>, Header, description = "ETag held by the client"),
           ("Accept-Encoding" = Option<String>, Header, description = "`br` (preferred) or `gzip`: the document as kept compressed, with `Content-Encoding` and `Content-Length`; the ETag is the same in every coding")),
    responses((status = 200, description = "compiled checklist, with ETag", content_type = "application/json"),
              (status = 304, description = "unchanged"),
              (status = 404, body = Problem)))]
async fn get_checklist_version(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath((id, version)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(prepared) = state.catalogs.compiled(&id, &version) {
        return Ok(conditional(&headers, prepared, Accepted::of(&headers).preferred()).await);
    }
    let stored = db::catalog::checklist_version(&state.db, &id, &version)
        .await?
        .and_then(|row| row.compiled)
        .ok_or_else(|| ApiError::not_found("checklist version"))?;
    let value: serde_json::Value = serde_json::from_str(&stored)
        .map_err(|e| anyhow::anyhow!("stored checklist {id} {version} is not JSON: {e}"))?;
    // Older versions are rare: prepared for this request alone, they are
    // left to the compression layer.
    Ok(conditional(&headers, &Prepared::from_value(&value), None).await)
}

/// A methodology of the current release.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodologyOut {
    pub id: String,
    pub version: String,
    /// `nok` (order 344н), `points` (a points scheme) or `passport` (order 627).
    pub kind: String,
    #[schema(value_type = Object)]
    pub title: Localized,
    /// Used when an audit names none.
    pub default: bool,
    /// ETag of the bundle.
    pub bundle_etag: String,
}

/// The current methodologies.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodologyList {
    pub items: Vec<MethodologyOut>,
}

/// Methodologies of the current release.
#[utoipa::path(get, path = "/methodologies", tag = "checklists", security(("bearer" = [])),
    responses((status = 200, body = MethodologyList), (status = 401, body = Problem)))]
async fn list_methodologies(State(state): State<AppState>, Auth(_): Auth) -> Json<MethodologyList> {
    let catalogs = &state.catalogs;
    let items = catalogs
        .current()
        .methodologies()
        .iter()
        .map(|m| MethodologyOut {
            id: m.id().to_owned(),
            version: m.version().to_owned(),
            kind: m.kind_name().to_owned(),
            title: m.title().clone(),
            default: m.is_default(),
            bundle_etag: catalogs
                .bundle(m.id())
                .map(|p| p.etag.clone())
                .unwrap_or_default(),
        })
        .collect();
    Json(MethodologyList { items })
}

/// Everything a client needs to audit with one methodology in one response:
/// the methodology, the release it belongs to and every compiled checklist.
/// Kept compressed at the best level of brotli and of gzip; sent in the
/// first of them that `Accept-Encoding` accepts.
#[utoipa::path(get, path = "/methodologies/{id}/bundle", tag = "checklists",
    security(("bearer" = [])),
    params(("id" = String, Path),
           ("If-None-Match" = Option<String>, Header, description = "ETag held by the client"),
           ("Accept-Encoding" = Option<String>, Header, description = "`br` (preferred) or `gzip`: the document as kept compressed, with `Content-Encoding` and `Content-Length`; the ETag is the same in every coding")),
    responses((status = 200, description = "`{methodology, release, engine_version, checklists}`, with ETag",
               content_type = "application/json"),
              (status = 304, description = "unchanged"),
              (status = 404, body = Problem)))]
async fn get_bundle(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let prepared = state
        .catalogs
        .bundle(&id)
        .ok_or_else(|| ApiError::not_found("methodology"))?;
    Ok(conditional(&headers, prepared, Accepted::of(&headers).preferred()).await)
}

/// 304 when `If-None-Match` names the document's ETag (or `*`), else 200:
/// in `coding` when one is given and the compressed form can be had (the
/// compression layer then leaves it alone), otherwise as it is, for the
/// compression layer to encode as the client accepts. Every coding carries
/// the same ETag, so a client revalidates whichever it holds.
async fn conditional(headers: &HeaderMap, prepared: &Prepared, coding: Option<Coding>) -> Response {
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            tag == "*" || tag == prepared.etag || tag.strip_prefix("W/") == Some(&prepared.etag)
        });
    let etag = HeaderValue::from_str(&prepared.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static("private, no-cache");
    let vary = HeaderValue::from_static("accept-encoding");
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache),
                (header::VARY, vary),
            ],
        )
            .into_response();
    }
    let described = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache),
        (header::VARY, vary),
    ];
    if let Some(coding) = coding {
        match prepared.encoded(coding).await {
            Ok(body) => {
                let encoding = [(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(coding.name()),
                )];
                return (StatusCode::OK, described, encoding, Body::from(body)).into_response();
            }
            Err(e) => tracing::warn!(
                etag = %prepared.etag,
                coding = coding.name(),
                "a prepared document did not compress, sent as it is: {e}"
            ),
        }
    }
    (StatusCode::OK, described, Body::from(prepared.json.clone())).into_response()
}
