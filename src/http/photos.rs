//! `/audits/{id}/photos` and `/photos/{id}`: photo evidence. Uploads are
//! streamed to a temporary file (memory stays bounded), validated and
//! thumbnailed off the async runtime, written to the object store, and only
//! then recorded: a photo row never points at a missing blob.

use std::path::PathBuf;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiPath, Auth, RequestId, media_type};
use super::validate::Checks;

use crate::auth::Principal;
use crate::db::audit_log::Actor;
use crate::db::entity::{audit as audit_row, photo};
use crate::db::{directory, photos};
use crate::evidence::{
    self, AuditWindow, IngestError, IngestLimits, SiteLocation, THUMBNAIL_SIZES,
};
use crate::storage::StoreError;

pub fn router(max_photo_bytes: u64) -> OpenApiRouter<AppState> {
    let limit = usize::try_from(max_photo_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    OpenApiRouter::new()
        .routes(routes!(upload_photo))
        .layer(DefaultBodyLimit::max(limit))
        .routes(routes!(get_photo))
        .routes(routes!(get_thumbnail))
}

/// A photo as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoOut {
    pub id: Uuid,
    pub audit_id: Uuid,
    /// `checklist.item` the photo is evidence for.
    pub item: String,
    pub sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    pub captured_at: Option<DateTime<Utc>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub device: Option<String>,
    /// Plausibility flags for reviewers: `no-exif`, `no-gps`, `far-from-site`,
    /// `outside-audit-window`, `used-in-other-audit`.
    #[schema(value_type = Vec<Object>)]
    pub flags: serde_json::Value,
    pub client_photo_id: Option<String>,
    /// `original`, `thumbnail_320`, `thumbnail_1280`.
    #[schema(value_type = Object)]
    pub urls: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<photo::Model> for PhotoOut {
    fn from(p: photo::Model) -> Self {
        let base = format!("/api/v1/photos/{}", p.id);
        Self {
            urls: serde_json::json!({
                "original": base,
                "thumbnail_320": format!("{base}/thumbnail/320"),
                "thumbnail_1280": format!("{base}/thumbnail/1280"),
            }),
            flags: serde_json::from_str(&p.flags).unwrap_or_else(|_| serde_json::json!([])),
            id: p.id,
            audit_id: p.audit_id,
            item: p.item_key,
            sha256: p.sha256,
            content_type: p.content_type,
            byte_size: p.byte_size,
            width: p.width,
            height: p.height,
            captured_at: p.captured_at,
            latitude: p.gps_latitude,
            longitude: p.gps_longitude,
            device: p.device,
            client_photo_id: p.client_photo_id,
            created_at: p.created_at,
        }
    }
}

/// Multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form for OpenAPI only
pub struct PhotoForm {
    /// The image: JPEG, PNG or WebP.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `checklist.item` the photo is evidence for.
    item: String,
    /// The client's own id for this photo (at most 255 bytes); a retry with
    /// the same id returns the photo already stored.
    client_photo_id: Option<String>,
}

/// Longest `client_photo_id` kept, in bytes: it is looked up through an
/// index, as an `Idempotency-Key` is.
const MAX_CLIENT_PHOTO_ID: usize = super::idempotency::MAX_KEY_BYTES;

/// Uploads a photo for an item (multipart, for small photos on good
/// networks; use `/uploads` (tus) on flaky ones).
#[utoipa::path(post, path = "/audits/{id}/photos", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = PhotoForm, content_type = "multipart/form-data"),
    responses((status = 201, body = PhotoOut),
              (status = 200, description = "retry with a known `client_photo_id`", body = PhotoOut),
              (status = 400, description = "`malformed-multipart`: no valid boundary, or a form that breaks off", body = Problem),
              (status = 404, description = "audit not found or not visible", body = Problem),
              (status = 409, description = "`audit-not-editable`, `photo-conflict`", body = Problem),
              (status = 413, description = "`file-too-large`", body = Problem),
              (status = 415, description = "`unsupported-media-type`: not multipart/form-data; `unsupported-image-format` (HEIC and others: send JPEG)", body = Problem),
              (status = 422, description = "`validation-failed` (`item`: `unknown-item`, `required`, `control-character`; `client_photo_id`: `control-character`, `too-long`), `empty-file`, `corrupt-image`, `image-too-large`, `trailing-data`", body = Problem),
              (status = 503, description = "`storage-unavailable`, with Retry-After", body = Problem)))]
async fn upload_photo(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(audit_id): ApiPath<Uuid>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut form = form.map_err(|_| not_a_form(&headers))?;
    let audit = editable_audit(&state, &who, audit_id).await?;
    let mut item = None;
    let mut client_id = None;
    let mut file: Option<TempUpload> = None;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "item" => item = Some(field.text().await.map_err(multipart_error)?),
            "client_photo_id" => client_id = Some(field.text().await.map_err(multipart_error)?),
            "file" => {
                let mut temp = TempUpload::create(&state).await?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    temp.write(&chunk, state.settings.photo_max_bytes).await?;
                }
                temp.finish().await?;
                file = Some(temp);
            }
            _ => {}
        }
    }
    let item = item
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "item",
                "required",
                "name the checklist item, e.g. `entrance.level_entrance`",
            )
        })?;
    let file = file
        .ok_or_else(|| ApiError::invalid_field("file", "required", "attach the image as `file`"))?;
    let client_id = client_id
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let mut checks = Checks::default();
    checks.control("item", &item);
    if let Some(id) = &client_id {
        checks.control("client_photo_id", id);
        checks.ensure(
            id.len() <= MAX_CLIENT_PHOTO_ID,
            "client_photo_id",
            "too-long",
            format!("must have at most {MAX_CLIENT_PHOTO_ID} bytes; a UUID will do"),
        );
    }
    checks.finish()?;
    let actor = request_id.actor(&who);
    let (status, stored) = accept(&state, &actor, &audit, &item, client_id, file).await?;
    Ok((status, Json(PhotoOut::from(stored))).into_response())
}

/// The audit, if `who` may add evidence to it now.
pub(crate) async fn editable_audit(
    state: &AppState,
    who: &Principal,
    id: Uuid,
) -> ApiResult<audit_row::Model> {
    let (audit, scope) = super::audits::visible(state, who, id).await?;
    super::audits::ensure_editable(who, &scope, &audit)?;
    Ok(audit)
}

/// Checks that `item` exists in the audit's pinned checklists.
pub(crate) async fn check_item(
    state: &AppState,
    audit: &audit_row::Model,
    item: &str,
) -> ApiResult<()> {
    let catalog = super::audits::pinned_catalog(state, audit).await?;
    if catalog.item(item).is_none() {
        return Err(ApiError::invalid_field(
            "item",
            "unknown-item",
            format!("no checklist item `{item}`; keys are `checklist_id.item_id`"),
        ));
    }
    Ok(())
}

/// Validates, stores and records a fully received file.
pub(crate) async fn accept(
    state: &AppState,
    actor: &Actor,
    audit: &audit_row::Model,
    item: &str,
    client_id: Option<String>,
    file: TempUpload,
) -> ApiResult<(StatusCode, photo::Model)> {
    check_item(state, audit, item).await?;
    if let Some(cid) = &client_id
        && let Some(existing) = photos::by_client_id(&state.db, audit.id, cid).await?
    {
        return if existing.sha256 == file.sha256() && existing.item_key == item {
            Ok((StatusCode::OK, existing))
        } else {
            Err(ApiError::conflict(
                "photo-conflict",
                "this client_photo_id was used for another photo; generate a new one",
            ))
        };
    }
    let sha256 = file.sha256();
    let path = file.path.clone();
    let limits = IngestLimits {
        max_bytes: state.settings.photo_max_bytes,
        ..IngestLimits::default()
    };
    let ingested = {
        let _slot = state
            .ingest_slots
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("ingest pool closed: {e}"))?;
        tokio::task::spawn_blocking(move || -> Result<_, IngestError> {
            let bytes = std::fs::read(&path).map_err(|e| IngestError::Corrupt(e.to_string()))?;
            evidence::ingest(&bytes, &limits)
        })
        .await
        .map_err(|e| anyhow::anyhow!("ingest task failed: {e}"))?
        .map_err(ingest_error)?
    };

    // Blobs first, row second.
    let original = format!("originals/{sha256}");
    if state
        .storage
        .size(&original)
        .await
        .map_err(store_error)?
        .is_none()
    {
        state
            .storage
            .put_file(&original, &file.path, ingested.kind.mime())
            .await
            .map_err(store_error)?;
    }
    for (size, bytes) in &ingested.thumbnails {
        state
            .storage
            .put(
                &thumbnail_key(&sha256, *size),
                Bytes::from(bytes.clone()),
                "image/jpeg",
            )
            .await
            .map_err(store_error)?;
    }

    let site = directory::get_site(&state.db, audit.site_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("audit {} has no site", audit.id))?;
    let started = audit.started_at.unwrap_or(audit.created_at);
    let window = AuditWindow::around(
        started,
        audit.submitted_at.unwrap_or_else(Utc::now).max(Utc::now()),
    );
    let elsewhere = photos::used_elsewhere(&state.db, &sha256, audit.id).await?;
    let flags = evidence::flags(
        &ingested.exif,
        SiteLocation {
            latitude: site.latitude,
            longitude: site.longitude,
        },
        state.settings.photo_max_distance_m,
        window,
        elsewhere,
    );
    let now = crate::db::now();
    let row = photo::Model {
        id: Uuid::now_v7(),
        audit_id: audit.id,
        item_key: item.to_owned(),
        sha256,
        content_type: ingested.kind.mime().to_owned(),
        byte_size: i64::try_from(file.len).unwrap_or(i64::MAX),
        width: i32::try_from(ingested.width).unwrap_or(i32::MAX),
        height: i32::try_from(ingested.height).unwrap_or(i32::MAX),
        captured_at: ingested.exif.captured_at,
        gps_latitude: ingested.exif.latitude,
        gps_longitude: ingested.exif.longitude,
        device: ingested.exif.device.clone(),
        flags: serde_json::to_string(&flags).unwrap_or_else(|_| "[]".to_owned()),
        client_photo_id: client_id,
        uploaded_by: actor.user_id.unwrap_or(audit.created_by),
        created_at: now,
        updated_at: now,
    };
    match photos::insert(&state.db, row, actor).await {
        Ok(Some(stored)) => Ok((StatusCode::CREATED, stored)),
        Ok(None) => Err(ApiError::conflict(
            "audit-not-editable",
            "the audit was submitted while the photo was being processed",
        )),
        Err(crate::db::DbError::Conflict(_)) => Err(ApiError::conflict(
            "photo-conflict",
            "this client_photo_id was used at the same moment for another photo",
        )),
        Err(e) => Err(e.into()),
    }
}

fn thumbnail_key(sha256: &str, size: u32) -> String {
    format!("thumbnails/{sha256}/{size}.jpg")
}

fn ingest_error(err: IngestError) -> ApiError {
    let status = match err {
        IngestError::UnsupportedFormat { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, err.code(), err.to_string())
}

pub(crate) fn store_error(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "object store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-unavailable",
        "the photo store is not answering; nothing was recorded, retry later",
    )
    .retry_after(5)
}

/// A body the form could not be read from: another media type (or none) is
/// 415, a multipart type without a usable boundary 400.
fn not_a_form(headers: &HeaderMap) -> ApiError {
    if media_type(headers.get(header::CONTENT_TYPE)).as_deref() == Some("multipart/form-data") {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-multipart",
            "the multipart/form-data body has no valid boundary",
        )
    } else {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the photo as multipart/form-data (or resumably, through /uploads)",
        )
    }
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file-too-large",
            "the upload is larger than this service accepts for a photo",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-multipart",
            err.body_text(),
        )
    }
}

/// A file being received, hashed on the fly, removed when dropped.
pub(crate) struct TempUpload {
    pub path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    pub len: u64,
}

impl TempUpload {
    pub(crate) async fn create(state: &AppState) -> ApiResult<Self> {
        let path = state
            .settings
            .data_dir
            .join("uploads")
            .join(format!("incoming-{}", Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        Ok(Self {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Appends a chunk; 413 as soon as the total passes `max`.
    pub(crate) async fn write(&mut self, chunk: &[u8], max: u64) -> ApiResult<()> {
        self.len += chunk.len() as u64;
        if self.len > max {
            return Err(ingest_error(IngestError::TooLarge { max }));
        }
        self.hasher.update(chunk);
        if let Some(file) = &mut self.file {
            file.write_all(chunk)
                .await
                .map_err(|e| anyhow::anyhow!("temp write failed: {e}"))?;
        }
        Ok(())
    }

    /// Takes over a fully written file (a finished resumable upload),
    /// hashing it off the async runtime.
    pub(crate) async fn adopt(path: PathBuf) -> ApiResult<Self> {
        let source = path.clone();
        let (hasher, len) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
                use std::io::Read;
                let mut file = std::fs::File::open(&source)?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0; 256 * 1024];
                let mut len = 0u64;
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Ok((hasher, len))
            })
            .await
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?
            .map_err(|e| anyhow::anyhow!("cannot read finished upload: {e}"))?;
        Ok(Self {
            path,
            file: None,
            hasher,
            len,
        })
    }

    /// Flushes and closes the file. Tokio completes file writes in the
    /// background; without this a reader may see a short file.
    pub(crate) async fn finish(&mut self) -> ApiResult<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| anyhow::anyhow!("temp flush failed: {e}"))?;
        }
        Ok(())
    }

    pub(crate) fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        self.file.take();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The photo if its audit is visible to `who`.
async fn visible_photo(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<photo::Model> {
    let found = photos::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("photo"))?;
    super::audits::visible(state, who, found.audit_id)
        .await
        .map_err(|_| ApiError::not_found("photo"))?;
    Ok(found)
}

/// The original, byte for byte. Supports `Range`; with S3 storage answers
/// with a redirect to a presigned URL valid for five minutes.
#[utoipa::path(get, path = "/photos/{id}", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Range" = Option<String>, Header, description = "`bytes=start-end`")),
    responses((status = 200, description = "the original"), (status = 206, description = "a range"),
              (status = 307, description = "presigned object-store URL"),
              (status = 404, body = Problem), (status = 416, description = "`range-not-satisfiable`", body = Problem)))]
async fn get_photo(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let found = visible_photo(&state, &who, id).await?;
    serve_blob(
        &state,
        &format!("originals/{}", found.sha256),
        &found.content_type,
        &headers,
    )
    .await
}

/// A JPEG thumbnail, 320 or 1280 pixels on its longest side, with the EXIF
/// orientation applied.
#[utoipa::path(get, path = "/photos/{id}/thumbnail/{size}", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("size" = u32, Path, description = "320 or 1280")),
    responses((status = 200, description = "image/jpeg"), (status = 307, description = "presigned URL"),
              (status = 404, body = Problem)))]
async fn get_thumbnail(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, size)): ApiPath<(Uuid, u32)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !THUMBNAIL_SIZES.contains(&size) {
        return Err(ApiError::not_found("thumbnail size (320 or 1280)"));
    }
    let found = visible_photo(&state, &who, id).await?;
    serve_blob(
        &state,
        &thumbnail_key(&found.sha256, size),
        "image/jpeg",
        &headers,
    )
    .await
}

async fn serve_blob(
    state: &AppState,
    key: &str,
    content_type: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    if let Some(url) = state
        .storage
        .presigned_get(key, 300)
        .await
        .map_err(store_error)?
    {
        return Ok(Redirect::temporary(&url).into_response());
    }
    let size = state
        .storage
        .size(key)
        .await
        .map_err(store_error)?
        .ok_or_else(|| anyhow::anyhow!("blob {key} is missing"))?;
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let common = [
        (header::CONTENT_TYPE, content_type),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    match parse_range(headers.get(header::RANGE), size) {
        RangeRequest::Whole => {
            let bytes = state
                .storage
                .get(key)
                .await
                .map_err(store_error)?
                .unwrap_or_default();
            Ok((StatusCode::OK, common, Body::from(bytes)).into_response())
        }
        RangeRequest::Part(start, end) => {
            let bytes = state
                .storage
                .get_range(key, start, Some(end))
                .await
                .map_err(store_error)?
                .unwrap_or_default();
            let range = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, range)],
                Body::from(bytes),
            )
                .into_response())
        }
        RangeRequest::Unsatisfiable => Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            format!("the object has {size} bytes"),
        )
        .header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{size}"))
                .unwrap_or(HeaderValue::from_static("bytes */0")),
        )),
    }
}

enum RangeRequest {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; anything else (several ranges, other units) gets
/// the whole object, as RFC 9110 allows.
fn parse_range(value: Option<&HeaderValue>, size: u64) -> RangeRequest {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
    else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') || size == 0 {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size - 1)),
        (Some(s), None) if b.is_empty() => (s, size - 1),
        (None, Some(n)) if a.is_empty() && n > 0 => (size.saturating_sub(n), size - 1),
        _ => return RangeRequest::Whole,
    };
    if start >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Part(start, end)
    }
}

/// Photos of an audit, for the audit document.
pub(crate) async fn of_audit(state: &AppState, audit_id: Uuid) -> ApiResult<Vec<PhotoOut>> {
    Ok(photos::of_audit(&state.db, audit_id)
        .await?
        .into_iter()
        .map(PhotoOut::from)
        .collect())
}
