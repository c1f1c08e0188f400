//! `Idempotency-Key` for every mutating request: a retry with the same key
//! and the same request gets the stored response (marked
//! `Idempotent-Replayed: true`) and never causes a second effect. The same
//! key with a different request is 422 `idempotency-key-reused`; a retry
//! while the first is still running is 409 `idempotency-key-in-progress`.
//! Keys are per user and kept for 24 hours. Server errors (5xx) are not
//! stored, so a retry after one runs the request again.
//!
//! The stored body is deflated; a client that accepts gzip gets that same
//! stream framed as gzip, so a keyed answer is compressed once, not twice.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use super::AppState;
use super::encoding::Accepted;
use super::error::ApiError;
use crate::db::idempotency::{self, Claim, Deflated};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on replayed responses.
pub const REPLAYED: &str = "idempotent-replayed";
/// Headers kept with a stored response.
const KEPT_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("preference-applied"),
];
/// Largest response stored for replay.
const MAX_STORED_RESPONSE: usize = 8 * 1024 * 1024;

/// The middleware.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match handle(&state, request, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(state: &AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let mutating = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(key) = request.headers().get(HEADER).filter(|_| mutating).cloned() else {
        return Ok(next.run(request).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_owned();
    // Without a valid token the handler answers 401 itself; nothing to store.
    let Some(user) = bearer(request.headers()).and_then(|t| state.sessions.authenticate(t).ok())
    else {
        return Ok(next.run(request).await);
    };

    let gzip = Accepted::of(request.headers()).gzip;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, state.settings.body_limit_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body is larger than this service accepts",
            )
        })?;
    let hash = request_hash(&parts.method, &parts.uri, &parts.headers, &bytes);

    match idempotency::claim(&state.db, user.user_id, &key, &hash).await? {
        Claim::Fresh => {}
        Claim::Replay {
            status,
            headers,
            body,
        } => return Ok(replay(status, &headers, body)),
        Claim::Mismatch => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request; use a new key",
            ));
        }
        Claim::InProgress => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-progress",
                "the first request with this Idempotency-Key is still running",
            )
            .retry_after(1));
        }
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(bytes) => bytes,
        Err(err) => {
            idempotency::release(&state.db, user.user_id, &key).await?;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "response not buffered: {err}"
            )));
        }
    };
    if parts.status.is_server_error() {
        idempotency::release(&state.db, user.user_id, &key).await?;
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    let deflated = Deflated::new(&bytes);
    idempotency::complete(
        &state.db,
        user.user_id,
        &key,
        &hash,
        parts.status.as_u16(),
        kept_headers(&parts.headers),
        &deflated,
    )
    .await?;
    let mut response = Response::from_parts(parts, Body::from(bytes.clone()));
    // What the compression layer would compress, by its own rule; it leaves
    // an answer that already has a coding alone.
    if gzip
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && DefaultPredicate::new().should_compress(&response)
    {
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        *response.body_mut() = Body::from(deflated.to_gzip(&bytes));
    }
    Ok(response)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn request_hash(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str());
    hasher.update(b" ");
    hasher.update(uri.path_and_query().map_or("", |p| p.as_str()));
    hasher.update(b"\n");
    if let Some(if_match) = headers.get(header::IF_MATCH) {
        hasher.update(if_match.as_bytes());
    }
    hasher.update(b"\n");
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn kept_headers(headers: &HeaderMap) -> String {
    let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), serde_json::Value::from(value)))
        })
        .collect();
    serde_json::Value::Object(kept).to_string()
}

fn replay(status: u16, headers: &str, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let stored: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(headers).unwrap_or_default();
    for (name, value) in stored {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::try_from(name),
            value.as_str().map(HeaderValue::from_str),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
