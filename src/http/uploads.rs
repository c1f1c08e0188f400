//! `/uploads`: resumable photo uploads speaking tus 1.0 (core, creation,
//! termination, checksum with sha256, expiration), so standard clients
//! (tus-js-client, TUSKit, tus-android-client, tuspy) work unchanged.
//! Metadata: `audit_id`, `item` (`checklist.item`), optional `filename`.
//! When the last byte arrives the file goes through the same ingest as a
//! multipart upload and becomes a photo of the audit.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiPath, Auth, RequestId};
use super::photos::{TempUpload, accept, check_item, editable_audit};
use crate::auth::Principal;
use crate::db::entity::upload;
use crate::db::photos;

const TUS_VERSION: &str = "1.0.0";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

fn h(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(head_upload, patch_upload, delete_upload))
        .layer(axum::middleware::from_fn(tus_headers))
}

/// Whether [`discovery`] has to look at the request: only an `OPTIONS` can be.
pub fn may_be_discovery(request: &Request) -> bool {
    request.method() == axum::http::Method::OPTIONS
}

/// Answers tus discovery (`OPTIONS /api/v1/uploads` without CORS preflight
/// headers). It sits outside the CORS layer, which would otherwise take
/// every OPTIONS request for a browser preflight.
pub async fn discovery(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_discovery = may_be_discovery(&request)
        && request.uri().path() == "/api/v1/uploads"
        && !request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_discovery {
        capabilities(&state)
    } else {
        next.run(request).await
    }
}

/// What this server supports (no token needed).
fn capabilities(state: &AppState) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (h("tus-resumable"), HeaderValue::from_static(TUS_VERSION)),
            (h("tus-version"), HeaderValue::from_static(TUS_VERSION)),
            (
                h("tus-extension"),
                HeaderValue::from_static("creation,termination,checksum,expiration"),
            ),
            (
                h("tus-checksum-algorithm"),
                HeaderValue::from_static("sha256"),
            ),
            (
                h("tus-max-size"),
                HeaderValue::from(state.settings.photo_max_bytes),
            ),
        ],
    )
        .into_response()
}

/// Every answer carries `Tus-Resumable`; requests must speak 1.0.0.
async fn tus_headers(request: Request, next: Next) -> Response {
    let speaks = request
        .headers()
        .get("tus-resumable")
        .is_some_and(|v| v.as_bytes() == TUS_VERSION.as_bytes());
    let mut response = if speaks {
        next.run(request).await
    } else {
        let mut r = ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus-version-unsupported",
            "send Tus-Resumable: 1.0.0",
        )
        .into_response();
        r.headers_mut()
            .insert(h("tus-version"), HeaderValue::from_static(TUS_VERSION));
        r
    };
    response
        .headers_mut()
        .insert(h("tus-resumable"), HeaderValue::from_static(TUS_VERSION));
    response
}

/// A tus length or offset: `missing` when the header is absent, `invalid`
/// when it is not a whole number of bytes (`-1`, `1e3`, past 2^64).
fn header_u64(
    headers: &HeaderMap,
    name: &'static str,
    missing: &'static str,
    invalid: &'static str,
) -> ApiResult<u64> {
    let value = headers
        .get(name)
        .ok_or_else(|| bad(missing, format!("send {name}")))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad(invalid, format!("{name} must be a whole number of bytes")))
}

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, detail)
}

/// `Upload-Metadata: key base64,key base64`.
fn metadata(headers: &HeaderMap) -> ApiResult<Vec<(String, String)>> {
    let Some(raw) = headers.get("upload-metadata") else {
        return Ok(Vec::new());
    };
    let raw = raw
        .to_str()
        .map_err(|_| bad("invalid-upload-metadata", "Upload-Metadata is not ASCII"))?;
    raw.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
            let decoded = B64
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    bad(
                        "invalid-upload-metadata",
                        format!("the value of `{key}` is not base64 UTF-8"),
                    )
                })?;
            if let Some(c) = crate::domain::refused_control(&decoded) {
                return Err(bad(
                    "invalid-upload-metadata",
                    format!(
                        "the value of `{key}` {}",
                        crate::domain::describe_control(c)
                    ),
                ));
            }
            Ok((key.to_owned(), decoded))
        })
        .collect()
}

fn expires(row: &upload::Model) -> HeaderValue {
    HeaderValue::from_str(
        &row.expires_at
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    )
    .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// Creates an upload (tus creation). Requires `Upload-Length` and metadata
/// `audit_id` and `item`.
#[utoipa::path(post, path = "/uploads", tag = "evidence", security(("bearer" = [])),
    params(("Tus-Resumable" = String, Header), ("Upload-Length" = u64, Header),
           ("Upload-Metadata" = String, Header, description = "`audit_id <b64>,item <b64>,filename <b64>`")),
    responses((status = 201, description = "created; `Location`, `Upload-Expires`"),
              (status = 400, description = "`missing-upload-length`, `invalid-upload-length` (not a whole number of bytes), `invalid-upload-metadata`", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "`audit-not-editable`", body = Problem),
              (status = 412, description = "`tus-version-unsupported`", body = Problem),
              (status = 413, description = "`file-too-large`", body = Problem),
              (status = 422, description = "`validation-failed` (`audit_id`, `item`)", body = Problem)))]
async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Deferred length (Upload-Defer-Length) is not supported.
    let length = header_u64(
        &headers,
        "Upload-Length",
        "missing-upload-length",
        "invalid-upload-length",
    )?;
    if length > state.settings.photo_max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file-too-large",
            format!(
                "photos may have at most {} bytes",
                state.settings.photo_max_bytes
            ),
        ));
    }
    let meta = metadata(&headers)?;
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let audit_id: Uuid = get("audit_id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "audit_id",
                "required",
                "metadata `audit_id` must be the audit's UUID",
            )
        })?;
    let item = get("item")
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "item",
                "required",
                "metadata `item` names the checklist item",
            )
        })?;
    let audit = editable_audit(&state, &who, audit_id).await?;
    check_item(&state, &audit, &item).await?;
    let now = crate::db::now();
    let expiry = chrono::Duration::from_std(state.settings.upload_expiry)
        .unwrap_or(chrono::Duration::days(1));
    let row = photos::create_upload(
        &state.db,
        upload::Model {
            id: Uuid::now_v7(),
            user_id: who.user_id,
            audit_id,
            item_key: item,
            filename: get("filename"),
            length: i64::try_from(length).unwrap_or(i64::MAX),
            offset: 0,
            expires_at: now + expiry,
            photo_id: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    tokio::fs::File::create(part_path(&state, row.id))
        .await
        .map_err(|e| anyhow::anyhow!("cannot create upload file: {e}"))?;
    let location = HeaderValue::from_str(&format!("/api/v1/uploads/{}", row.id))
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (h("upload-expires"), expires(&row)),
        ],
    )
        .into_response())
}

/// Uploads with a PATCH in progress in this process. Two PATCHes at once
/// would both append to the file before either moved the offset; the
/// second is refused instead (tus leaves locking to the server).
static WRITING: std::sync::Mutex<Vec<Uuid>> = std::sync::Mutex::new(Vec::new());

struct Writing(Uuid);

impl Writing {
    fn claim(id: Uuid) -> Option<Self> {
        let mut busy = WRITING.lock().ok()?;
        if busy.contains(&id) {
            return None;
        }
        busy.push(id);
        Some(Self(id))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Ok(mut busy) = WRITING.lock() {
            busy.retain(|id| *id != self.0);
        }
    }
}

fn part_path(state: &AppState, id: Uuid) -> std::path::PathBuf {
    state
        .settings
        .data_dir
        .join("uploads")
        .join(id.simple().to_string())
}

async fn owned(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<upload::Model> {
    let row = photos::get_upload(&state.db, id)
        .await?
        .filter(|u| u.user_id == who.user_id)
        .ok_or_else(|| ApiError::not_found("upload"))?;
    if row.expires_at < Utc::now() && row.photo_id.is_none() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "upload-expired",
            "the upload expired; start a new one",
        ));
    }
    Ok(row)
}

fn offsets(row: &upload::Model) -> [(HeaderName, HeaderValue); 4] {
    [
        (h("upload-offset"), HeaderValue::from(row.offset)),
        (h("upload-length"), HeaderValue::from(row.length)),
        (h("upload-expires"), expires(row)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// Where an upload stands (tus core): `Upload-Offset` to resume from.
#[utoipa::path(head, path = "/uploads/{id}", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header)),
    responses((status = 200, description = "`Upload-Offset`, `Upload-Length`, `Upload-Expires`"),
              (status = 404, body = Problem), (status = 410, description = "`upload-expired`", body = Problem)))]
async fn head_upload(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let row = owned(&state, &who, id).await?;
    Ok((StatusCode::OK, offsets(&row)).into_response())
}

/// Appends bytes at `Upload-Offset` (tus core, with optional
/// `Upload-Checksum: sha256 <base64>`). The last chunk turns the upload
/// into a photo; ingest errors are answered as for multipart uploads.
#[utoipa::path(patch, path = "/uploads/{id}", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header), ("Upload-Offset" = u64, Header),
           ("Upload-Checksum" = Option<String>, Header, description = "`sha256 <base64 digest of this chunk>`")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "stored; new `Upload-Offset`"),
              (status = 400, description = "`missing-upload-offset`, `invalid-upload-offset` (not a whole number of bytes), `unsupported-checksum-algorithm`, `invalid-checksum`", body = Problem),
              (status = 409, description = "`offset-mismatch`, `upload-complete`, `upload-busy`", body = Problem),
              (status = 413, description = "`file-too-large`: more bytes than Upload-Length", body = Problem),
              (status = 415, description = "`unsupported-media-type` or an ingest refusal", body = Problem),
              (status = 460, description = "`checksum-mismatch`: the chunk was discarded", body = Problem)))]
async fn patch_upload(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes() != OFFSET_STREAM.as_bytes())
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send chunks as application/offset+octet-stream",
        ));
    }
    let _writing = Writing::claim(id).ok_or_else(|| {
        ApiError::conflict("upload-busy", "another request is writing to this upload")
            .retry_after(1)
    })?;
    let row = owned(&state, &who, id).await?;
    if row.photo_id.is_some() || row.offset >= row.length {
        return Err(ApiError::conflict(
            "upload-complete",
            "this upload is complete",
        ));
    }
    let offset = header_u64(
        &headers,
        "Upload-Offset",
        "missing-upload-offset",
        "invalid-upload-offset",
    )?;
    if i64::try_from(offset).ok() != Some(row.offset) {
        return Err(ApiError::conflict(
            "offset-mismatch",
            format!("the upload is at offset {}; resume from there", row.offset),
        )
        .header(h("upload-offset"), HeaderValue::from(row.offset)));
    }
    let checksum = match headers
        .get("upload-checksum")
        .map(|v| v.to_str().unwrap_or_default())
    {
        None => None,
        Some(value) => {
            let (algorithm, digest) = value.split_once(' ').unwrap_or((value, ""));
            if algorithm != "sha256" {
                return Err(bad(
                    "unsupported-checksum-algorithm",
                    "only sha256 is supported",
                ));
            }
            Some(
                B64.decode(digest.trim())
                    .map_err(|_| bad("invalid-checksum", "the checksum is not base64"))?,
            )
        }
    };

    let path = part_path(&state, id);
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .map_err(|e| anyhow::anyhow!("upload file missing: {e}"))?;
    let room = u64::try_from(row.length - row.offset).unwrap_or(0);
    let mut received = 0u64;
    let mut hasher = Sha256::new();
    let mut stream = body.into_data_stream();
    let mut too_much = false;
    // A dropped connection ends the stream with an error; what arrived
    // before it is kept so the client can resume (unless a checksum needs
    // the whole chunk).
    while let Some(Ok(chunk)) = stream.next().await {
        received += chunk.len() as u64;
        if received > room {
            too_much = true;
            break;
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| anyhow::anyhow!("upload write failed: {e}"))?;
    }
    file.flush()
        .await
        .map_err(|e| anyhow::anyhow!("upload flush failed: {e}"))?;
    drop(file);
    let bad_checksum = checksum.is_some_and(|expected| expected != hasher.finalize().as_slice());
    if too_much || bad_checksum {
        let keep = u64::try_from(row.offset).unwrap_or(0);
        let handle = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!(e))?;
        handle.set_len(keep).map_err(|e| anyhow::anyhow!(e))?;
        return Err(if too_much {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file-too-large",
                "more bytes than Upload-Length",
            )
        } else {
            ApiError::new(
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                "checksum-mismatch",
                "the chunk does not match Upload-Checksum and was discarded; send it again",
            )
        });
    }
    let new_offset = row.offset + i64::try_from(received).unwrap_or(0);
    if !photos::advance_upload(&state.db, id, row.offset, new_offset).await? {
        return Err(ApiError::conflict(
            "offset-mismatch",
            "another request wrote to this upload at the same time",
        ));
    }
    let mut done = row.clone();
    done.offset = new_offset;
    if new_offset < row.length {
        return Ok((StatusCode::NO_CONTENT, offsets(&done)).into_response());
    }

    // Complete: ingest exactly as a multipart upload would.
    let audit = match editable_audit(&state, &who, row.audit_id).await {
        Ok(audit) => audit,
        Err(err) => {
            discard(&state, id).await;
            return Err(err);
        }
    };
    let temp = TempUpload::adopt(path).await?;
    match accept(
        &state,
        &request_id.actor(&who),
        &audit,
        &row.item_key,
        Some(format!("tus-{id}")),
        temp,
    )
    .await
    {
        Ok((_, photo)) => {
            photos::finish_upload(&state.db, id, photo.id).await?;
            let photo_id =
                HeaderValue::from_str(&photo.id.to_string()).map_err(|e| anyhow::anyhow!(e))?;
            let mut response = (StatusCode::NO_CONTENT, offsets(&done)).into_response();
            response
                .headers_mut()
                .insert(h("dostup-photo-id"), photo_id);
            Ok(response)
        }
        Err(err) => {
            discard(&state, id).await;
            Err(err)
        }
    }
}

async fn discard(state: &AppState, id: Uuid) {
    let _ = tokio::fs::remove_file(part_path(state, id)).await;
    if let Err(err) = photos::delete_upload(&state.db, id).await {
        tracing::warn!(error = %err, upload = %id, "could not delete a refused upload");
    }
}

/// Abandons an upload (tus termination).
#[utoipa::path(delete, path = "/uploads/{id}", tag = "evidence", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header)),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
async fn delete_upload(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    photos::get_upload(&state.db, id)
        .await?
        .filter(|u| u.user_id == who.user_id)
        .ok_or_else(|| ApiError::not_found("upload"))?;
    discard(&state, id).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
