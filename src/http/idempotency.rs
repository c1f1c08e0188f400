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
//!
//! A handler can store its response in the write that makes its effect
//! (see [`Keyed`]): `PATCH answers` does, so that a retry finds either the
//! answers and their response, or neither. On the embedded database, if its
//! client hangs up before that write is made, the write is skipped and the
//! key is freed, so the retry runs the request at once. On PostgreSQL a key
//! is freed so only if the client hangs up while the key is being claimed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use super::AppState;
use super::encoding::Accepted;
use super::error::ApiError;
use crate::db::idempotency::{self, Claim, Completion, Deflated, KeyClaim};

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
/// Longest key, in bytes: keys are looked up through an index, whose
/// entries PostgreSQL bounds.
pub const MAX_KEY_BYTES: usize = 255;
/// Largest response stored for replay.
const MAX_STORED_RESPONSE: usize = 8 * 1024 * 1024;

/// The middleware.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match handle(&state, request, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Whether the middleware has anything to do with the request: a mutating one with a key.
pub fn is_keyed(request: &Request) -> bool {
    matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && request.headers().contains_key(HEADER)
}

async fn handle(state: &AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let key = match request.headers().get(HEADER) {
        Some(key) if is_keyed(&request) => key.clone(),
        _ => return Ok(next.run(request).await),
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| is_valid_key(k))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_BYTES} printable ASCII characters"),
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

    let claimed_at = match idempotency::claim(&state.db, user.user_id, &key, &hash).await? {
        Claim::Fresh { claimed_at } => claimed_at,
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
    };

    let claimed = Arc::new(Claimed {
        db: state.db.clone(),
        claim: KeyClaim {
            user: user.user_id,
            key,
            request_hash: hash,
            claimed_at,
        },
        taken: AtomicBool::new(false),
    });
    let pending = Pending(Some(Arc::clone(&claimed)));
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Keyed(Arc::clone(&claimed)));
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let stored = parts.extensions.remove::<Stored>();
    let bytes = match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(bytes) => bytes,
        Err(err) => {
            // The handler's write may have stored the response already; a
            // release leaves a stored response as it is.
            pending.release().await?;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "response not buffered: {err}"
            )));
        }
    };
    if stored.is_none() && parts.status.is_server_error() {
        pending.release().await?;
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    let deflated = match stored {
        Some(Stored(deflated)) => deflated,
        None => {
            let done = claimed.completion(&parts, &bytes);
            idempotency::complete(&state.db, &done).await?;
            done.body
        }
    };
    pending.finish();
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

/// The claimed `Idempotency-Key` of a request, in its extensions, for a
/// handler that stores its response in the write that makes its effect,
/// in one transaction (see [`Keyed::store_with`]). Other handlers ignore
/// it, and the response is stored after them.
#[derive(Clone)]
pub struct Keyed(Arc<Claimed>);

impl Keyed {
    /// Declares that the handler's only write is one that stores its
    /// response (see [`Keyed::store_with`]). On the embedded database such a
    /// write is skipped for a request gone before it runs, so from here
    /// until the request is answered, a client that hangs up frees the key
    /// unless its response is stored by then, and the retry runs the
    /// request again (see [`idempotency::hung_up_writes_are_skipped`]).
    /// Elsewhere the key stays claimed, as for any handler.
    pub fn take_over(&self) {
        if idempotency::hung_up_writes_are_skipped(&self.0.db) {
            self.0.taken.store(true, Ordering::Release);
        }
    }

    /// Takes `response`, the answer the handler gives if its write is made,
    /// for that write to store: returns the response to give, and what the
    /// write is to store with [`crate::db::idempotency::Completion`]. The
    /// response must be given only if the write is made. Takes the key over
    /// (see [`Keyed::take_over`]) if the handler has not yet.
    ///
    /// # Errors
    /// The response is larger than a stored one may be.
    pub async fn store_with(&self, response: Response) -> Result<(Response, Completion), ApiError> {
        self.take_over();
        let (mut parts, body) = response.into_parts();
        let bytes = to_bytes(body, MAX_STORED_RESPONSE)
            .await
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("response not buffered: {err}")))?;
        let done = self.0.completion(&parts, &bytes);
        parts.extensions.insert(Stored(done.body.clone()));
        Ok((Response::from_parts(parts, Body::from(bytes)), done))
    }
}

/// In a response's extensions: its handler's write stored it for its key.
#[derive(Clone)]
struct Stored(Deflated);

/// A key a request has claimed.
struct Claimed {
    db: DatabaseConnection,
    claim: KeyClaim,
    /// The handler stores the response in its own write, which is skipped
    /// if the request is gone before it runs: the key is freed then.
    taken: AtomicBool,
}

impl Claimed {
    /// What to store for the response made of `parts` and `body`.
    fn completion(&self, parts: &axum::http::response::Parts, body: &[u8]) -> Completion {
        Completion {
            claim: self.claim.clone(),
            status: parts.status.as_u16(),
            headers: kept_headers(&parts.headers),
            body: Deflated::new(body),
        }
    }

    async fn release(&self) -> Result<(), ApiError> {
        idempotency::release(&self.db, &self.claim).await?;
        Ok(())
    }
}

/// A claimed key whose request is not answered yet. Dropped unfinished (the
/// client hung up, and the request's future with it), it frees the key if
/// the handler took the key over (see [`Keyed::take_over`]); otherwise the
/// key stays claimed until it counts as abandoned, since the request's
/// effect may be written without its response.
struct Pending(Option<Arc<Claimed>>);

impl Pending {
    /// The request is answered and its response stored.
    fn finish(mut self) {
        self.0 = None;
    }

    /// Frees the key now: the request failed on the server side.
    async fn release(mut self) -> Result<(), ApiError> {
        match self.0.take() {
            Some(claimed) => claimed.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(claimed) = self.0.take() else {
            return;
        };
        if !claimed.taken.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(err) = claimed.release().await {
                tracing::warn!(
                    user = %claimed.claim.user,
                    key = claimed.claim.key,
                    "the Idempotency-Key of a request whose client hung up was not freed: {err:?}"
                );
            }
        });
    }
}

/// Whether `key` is 1 to [`MAX_KEY_BYTES`] printable ASCII characters, the
/// pattern [`document`] declares. (`HeaderValue::to_str` lets a tab through.)
fn is_valid_key(key: &str) -> bool {
    (1..=MAX_KEY_BYTES).contains(&key.len()) && key.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// Declares the optional `Idempotency-Key` header on every mutating
/// operation of `doc`, with its bounds and the answers it can bring.
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};

    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(format!(
            "A key of the client's for this request (a UUID, say), kept 24 hours per user: a \
             retry with the same key and request gets the stored answer with \
             `Idempotent-Replayed: true` instead of a second effect. 400 \
             `invalid-idempotency-key` when not 1 to {MAX_KEY_BYTES} printable ASCII \
             characters; 409 `idempotency-key-in-progress` (with Retry-After) while the first \
             request runs; 422 `idempotency-key-reused` under the same key with another request."
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_BYTES))
                .pattern(Some("^[ -~]+$")),
        ))
        .build();
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone().into());
        }
    }
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
    hex::encode(hasher.finalize())
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
