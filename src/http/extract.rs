//! Extractors that fail with problem+json instead of axum's plain-text
//! rejections: JSON bodies (with the path of the offending field), query
//! strings, path parameters, the bearer token and the client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, Path, Query, RawPathParams, Request,
};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, FieldError};
use crate::auth::{Principal, TokenError};
use crate::db::audit_log::Actor;

/// A JSON request body. Requires `Content-Type: application/json` (415),
/// well-formed JSON (400 `malformed-json`), text without control characters
/// (422 `control-character` naming each field, see
/// [`crate::domain::refused_control`]) and a value of the right shape (422
/// with the field path; unknown fields are errors where the type says
/// `deny_unknown_fields`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A raw request body (CSV imports), with the same problem+json answers as
/// [`ApiJson`] when it is too large or cannot be read.
#[derive(Debug, Clone, Default)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(body_rejection)
    }
}

/// Parses JSON, mapping syntax errors to 400, and control characters in
/// text and shape errors to 422.
///
/// # Errors
/// As described on [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if may_hold_controls(bytes) {
        // Rare, so the fields are found on a parse of its own. A body that
        // does not parse gets the parser's error below.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            let mut errors = Vec::new();
            controls_in(&value, "", &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|err| json_error(".", &err))?;
    Ok(value)
}

/// Whether JSON text may hold, once its strings are unescaped, a control
/// character that [`crate::domain::is_refused_control`] refuses: an escape
/// of one (`\u0000`, `\b`, `\f` …), or DEL or a C1 control written as it
/// is (JSON allows no other control character unescaped). Exact for
/// well-formed JSON, and a scan of the bytes for three values only, so
/// every body pays little for it.
fn may_hold_controls(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = memchr::memchr3(b'\\', 0x7f, 0xc2, rest) {
        let next = rest.get(at + 1).copied();
        match (rest[at], next) {
            (b'\\', Some(b'u')) => {
                let escaped = rest
                    .get(at + 2..at + 6)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32);
                if escaped.is_some_and(crate::domain::is_refused_control) {
                    return true;
                }
                rest = &rest[at + 2..];
            }
            (b'\\', Some(b'b' | b'f')) | (0x7f, _) | (0xc2, Some(0x80..=0x9f)) => return true,
            // Any other escape, a backslash's own included, is two bytes.
            (b'\\', Some(_)) => rest = &rest[at + 2..],
            _ => rest = &rest[at + 1..],
        }
    }
    false
}

/// The field error `control-character` on `field`, if `text` holds a
/// refused control character (see [`crate::domain::refused_control`]).
pub(super) fn control_error(field: &str, text: &str) -> Option<FieldError> {
    crate::domain::refused_control(text).map(|c| {
        FieldError::new(
            field,
            "control-character",
            crate::domain::describe_control(c),
        )
    })
}

/// Every string and key under `value` that holds a refused control
/// character, as a field error at its path (`answers.services.website_url`,
/// `items[2].comment`).
fn controls_in(value: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    match value {
        Value::String(text) => errors.extend(control_error(path, text)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                controls_in(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let field = join_path(path, key);
                errors.extend(control_error(&field, key));
                controls_in(item, &field, errors);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// 400 `code` when a decoded query parameter or path segment holds a refused
/// control character (raw, none can be in a URI).
fn refuse_controls(
    code: &'static str,
    what: &str,
    pairs: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
) -> Result<(), ApiError> {
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        if let Some(c) =
            crate::domain::refused_control(name).or_else(|| crate::domain::refused_control(value))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code,
                format!(
                    "the {what} `{}` {}",
                    name.escape_debug(),
                    crate::domain::describe_control(c)
                ),
            ));
        }
    }
    Ok(())
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the body is not valid JSON: {err}"),
        ),
        Category::Data => {
            let message = strip_position(&err.to_string());
            let code = if message.starts_with("unknown field") {
                "unknown-field"
            } else if message.starts_with("missing field") {
                "missing-field"
            } else {
                "invalid-value"
            };
            let field = match (path, code) {
                // A missing field is reported at the enclosing object; name
                // the field itself. Unknown fields already carry their name.
                (_, "missing-field") => join_path(path, quoted(&message)),
                (".", _) => String::new(),
                _ => path.to_owned(),
            };
            ApiError::Validation(vec![FieldError::new(field, code, message)])
        }
    }
}

fn quoted(message: &str) -> &str {
    message.split('`').nth(1).unwrap_or_default()
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

pub(super) fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    media_type(content_type).is_some_and(|essence| {
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// The media type of a `Content-Type`, without its parameters, in lower
/// case (`multipart/form-data` of `Multipart/Form-Data; boundary=x`).
pub(super) fn media_type(content_type: Option<&header::HeaderValue>) -> Option<String> {
    let value = content_type?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than this service accepts",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            rejection.body_text(),
        )
    }
}

/// Query parameters; a bad value, or one holding a control character, is
/// 400 `invalid-query` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Only a percent-escape can put a control character in a query.
        if let Some(query) = parts.uri.query().filter(|q| q.contains('%')) {
            refuse_controls(
                "invalid-query",
                "parameter",
                form_urlencoded::parse(query.as_bytes()),
            )?;
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rejection: QueryRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    rejection.body_text(),
                )
            })
    }
}

/// Path parameters; an id that does not parse, or a segment holding a
/// control character, is 400 `invalid-path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Only a percent-escape can put a control character in a path.
        if parts.uri.path().contains('%')
            && let Ok(params) = RawPathParams::from_request_parts(parts, state).await
        {
            refuse_controls("invalid-path", "path parameter", &params)?;
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|rejection: PathRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-path",
                    rejection.body_text(),
                )
            })
    }
}

/// The authenticated caller, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthenticated",
                "send an access token: Authorization: Bearer <token>",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid-token",
                    "the Authorization header is not `Bearer <token>`",
                )
            })?;
        state
            .sessions
            .authenticate(token)
            .map(Auth)
            .map_err(|err| match err {
                TokenError::Expired => ApiError::unauthorized(
                    "token-expired",
                    "the access token has expired; refresh it",
                ),
                TokenError::Malformed | TokenError::BadSignature => {
                    ApiError::unauthorized("invalid-token", err.to_string())
                }
            })
    }
}

/// The client's address: the peer, or with `trust_forwarded_for` the last
/// `X-Forwarded-For` entry (the one the trusted proxy appended).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.settings.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .rev()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.rsplit(',').next())
                .and_then(|a| a.trim().parse::<IpAddr>().ok());
            if let Some(addr) = forwarded {
                return Ok(Self(addr));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(peer))
    }
}

/// The request's id (`X-Request-Id`, set by the service when the client
/// sent none), for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(128).collect()),
        ))
    }
}

impl RequestId {
    /// The caller acting in this request, as the audit log records it.
    #[must_use]
    pub fn actor(self, who: &Principal) -> Actor {
        Actor::of(who, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan agrees with the check of the parsed text, for every
    /// character of the first planes' start written by serde_json, and
    /// written as a `\u` escape, alone and between other text.
    #[test]
    fn the_scan_finds_exactly_the_refused_control_characters() {
        let samples = (0..=0x2ff_u32)
            .chain([0x2028, 0x2029, 0xfeff, 0xfffd, 0x1f600])
            .filter_map(char::from_u32);
        for c in samples {
            let refused = crate::domain::is_refused_control(c);
            for text in [c.to_string(), format!("ab{c}cd"), format!("ж{c}\\")] {
                let written = serde_json::to_vec(&text).expect("serialises");
                assert_eq!(may_hold_controls(&written), refused, "{c:?} in {text:?}");
            }
            if u32::from(c) <= 0xffff {
                let escaped = format!(
                    "[\"x\\u{:04x}\", \"\\u{:04X}y\"]",
                    u32::from(c),
                    u32::from(c)
                );
                assert_eq!(may_hold_controls(escaped.as_bytes()), refused, "{escaped}");
            }
        }
        // An escaped backslash before `u0000` is text, not an escape.
        assert!(!may_hold_controls(br#"{"a": "\\u0000", "b": "\\\\"}"#));
        assert!(may_hold_controls(br#"{"a": "\\\u0000"}"#));
        // A key counts as much as a value.
        assert!(may_hold_controls(br#"{"a\u0001": 1}"#));
    }

    #[test]
    fn every_field_holding_a_control_character_is_named() {
        let err = parse_json::<serde_json::Value>(
            br#"{"name": "a\u0000", "ok": "line\nbreak", "items": [{"comment": "\u0007"}], "k\u001b": true}"#,
        )
        .expect_err("refused");
        let ApiError::Validation(errors) = err else {
            panic!("not a validation error: {err:?}");
        };
        let mut fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["items[0].comment", "k\u{1b}", "name"]);
        assert!(errors.iter().all(|e| e.code == "control-character"));
        // Malformed JSON is still malformed, whatever it holds.
        let err = parse_json::<serde_json::Value>(br#"{"name": "a\u0000""#).expect_err("refused");
        assert!(
            matches!(
                err,
                ApiError::Problem {
                    code: "malformed-json",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
