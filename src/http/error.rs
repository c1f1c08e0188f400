//! The one error type at the HTTP boundary. Every failure leaves the service
//! as RFC 9457 `application/problem+json` with a stable kebab-case `code` that
//! clients switch on. Internal details of 5xx errors are logged with their
//! whole source chain and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::db::DbError;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field or checklist item in a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: a field path such as `email` or `items[2].value`, or a checklist
    /// item key such as `ramps.slope_percent`.
    pub field: String,
    /// Stable machine code, e.g. `missing-field`, `invalid-value`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The problem document (RFC 9457) as sent to clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:dostup:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For 422: every invalid field or checklist item.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members specific to the problem, e.g. `current_version` on 412.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with a status, a code and a message for people.
    #[error("{code}: {detail}")]
    Problem {
        status: StatusCode,
        code: &'static str,
        detail: String,
        /// Seconds, sent as `Retry-After` (429, 503).
        retry_after: Option<u64>,
        /// Extra members of the problem document.
        extensions: serde_json::Map<String, serde_json::Value>,
        /// Extra response headers (`ETag` with 412, …).
        headers: Vec<(header::HeaderName, HeaderValue)>,
    },
    /// 422 with every invalid field.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// 500; the source is logged, the client sees a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A client error.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Problem { status, .. } => *status,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Adds `Retry-After: secs`.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let Self::Problem { retry_after, .. } = &mut self {
            *retry_after = Some(secs);
        }
        self
    }

    /// Adds a member to the problem document.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        const RESERVED: [&str; 6] = ["type", "title", "status", "code", "detail", "errors"];
        debug_assert!(
            !RESERVED.contains(&name),
            "`{name}` is a standard problem member"
        );
        if RESERVED.contains(&name) {
            return self;
        }
        if let Self::Problem { extensions, .. } = &mut self {
            extensions.insert(name.to_owned(), value.into());
        }
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        if let Self::Problem { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }

    /// 404 for a resource the caller cannot see (or that does not exist:
    /// the two are deliberately indistinguishable).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} not found"),
        )
    }

    /// 403 for an action the caller's role or scope does not allow.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 401 with a specific code (`unauthenticated`, `invalid-token`, …).
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 422 with a single field error.
    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    /// 409 with a specific code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<String>) {
        match self {
            Self::Problem {
                status,
                code,
                detail,
                ..
            } => (*status, code, Some(detail.clone())),
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                Some(match errors.len() {
                    1 => "1 field is invalid".to_owned(),
                    n => format!("{n} fields are invalid"),
                }),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                Some("the service failed to handle the request; it has been logged".to_owned()),
            ),
        }
    }
}

/// Builds a problem response; also used by middleware for errors that never
/// reach a handler (unknown route, panics).
pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: Option<String>,
    errors: Vec<FieldError>,
) -> Response {
    problem_document(Problem {
        type_uri: format!("urn:dostup:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
        detail,
        errors,
        extensions: serde_json::Map::new(),
    })
}

fn problem_document(body: Problem) -> Response {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (status, json).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(err) = &self {
            tracing::error!(error = ?err, "request failed");
        }
        let (status, code, detail) = self.parts();
        let (errors, retry_after, extensions, headers) = match self {
            Self::Validation(errors) => (errors, None, serde_json::Map::new(), Vec::new()),
            Self::Problem {
                retry_after,
                extensions,
                headers,
                ..
            } => (Vec::new(), retry_after, extensions, headers),
            Self::Internal(_) => (Vec::new(), None, serde_json::Map::new(), Vec::new()),
        };
        let mut response = problem_document(Problem {
            type_uri: format!("urn:dostup:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            errors,
            extensions,
        });
        let out = response.headers_mut();
        for (name, value) in headers {
            out.insert(name, value);
        }
        if let Some(secs) = retry_after {
            out.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            out.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "the database is unavailable");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "the database cannot be reached at the moment; try again",
            )
            .retry_after(1);
        }
        match err {
            DbError::Conflict(_) => {
                Self::conflict("conflict", "a record with the same unique value exists")
            }
            DbError::MissingReference(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing-reference",
                "a referenced record does not exist",
            ),
            DbError::Other(_) if err.is_unstorable_value() => {
                tracing::warn!(error = %err, "the database refused a value the checks let through");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unstorable-value",
                    "the request holds a value the database cannot store: text with a U+0000, \
                     or a value too long for its field",
                )
            }
            DbError::Other(e) => Self::Internal(anyhow::Error::new(e).context("database")),
            DbError::Sqlite(e) => Self::Internal(anyhow::Error::new(e).context("database")),
        }
    }
}

impl From<crate::catalogs::CatalogError> for ApiError {
    fn from(err: crate::catalogs::CatalogError) -> Self {
        match err {
            crate::catalogs::CatalogError::Db(db) => db.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials => {
                Self::unauthorized("invalid-credentials", err.to_string())
            }
            AuthError::InvalidRefreshToken => {
                Self::unauthorized("invalid-refresh-token", err.to_string())
            }
            AuthError::RefreshTokenReused => {
                Self::unauthorized("refresh-token-reused", err.to_string())
            }
            AuthError::TooManyAttempts(wait) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-login-attempts",
                err.to_string(),
            )
            .retry_after(wait.as_secs().max(1)),
            AuthError::Db(db) => db.into(),
            AuthError::Internal(msg) => Self::Internal(anyhow::anyhow!(msg)),
        }
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
