//! The HTTP API. This module only merges the per-resource routers, adds the
//! cross-cutting layers (request ids, tracing, compression, CORS, body
//! limits, panic capture) and serves the OpenAPI document and its viewer.
//! Handlers live in one module per resource.

pub mod audit_log;
pub mod audits;
pub mod auth;
pub mod checklists;
mod encoding;
pub mod error;
pub mod extract;
mod health;
pub mod idempotency;
mod instant;
pub mod institutions;
mod only;
pub mod organisations;
pub mod pagination;
pub mod passports;
pub mod photos;
pub mod ratings;
pub mod review;
pub mod sync;
pub mod uploads;
pub mod users;
mod validate;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use sea_orm::DatabaseConnection;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Sessions;
use crate::catalogs::Catalogs;
use crate::config::Settings;
use crate::storage::BlobStore;
use error::problem_response;

/// Prefix of every versioned route.
pub const API_PREFIX: &str = "/api/v1";

/// Shared state of all handlers; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub catalogs: Arc<Catalogs>,
    pub sessions: Arc<Sessions>,
    pub settings: Arc<Settings>,
    pub storage: BlobStore,
    /// Bounds concurrent image decoding (CPU and memory heavy).
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Numbers the audit log and the change feed in the background; stops
    /// with the last clone of the state.
    pub sealer: Arc<crate::db::outbox::Sealer>,
    /// The audits this process wrote last, so that the next batch of
    /// answers need not read its audit back first.
    pub recent_audits: Arc<crate::db::recent::RecentAudits>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dostup API",
        description = "Field accessibility audits: directory, checklists, audits, evidence, review and rating. \
Errors are RFC 9457 problem documents with a stable `code`. \
A request answers 503 `database-unavailable` with `Retry-After` when the database cannot be reached \
or cuts its query off (a restart, a failover): retry it as it was, a write with its `Idempotency-Key`. \
Text may hold tabs and line breaks but no other control character (U+0000 included): in a JSON body \
that is 422 `validation-failed` with `control-character` per field, in a query parameter 400 \
`invalid-query`, in a path segment 400 `invalid-path`. \
A request whose `Accept-Encoding` accepts neither gzip nor an answer without a coding \
(`identity;q=0`, `*;q=0`) is refused with 406 `not-acceptable` before anything is done. \
Should the database refuse a value the checks let through (a U+0000, a value too long for its \
column), the answer is 422 `unstorable-value`.",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&BearerAuth),
    // Answered instead of `AuditOut` when a PATCH asks for `Prefer: return=minimal`.
    components(schemas(audits::AnswersSaved)),
    tags(
        (name = "auth", description = "Logins, tokens and the current user"),
        (name = "directory", description = "Regions' institutions, their sites, organisations"),
        (name = "users", description = "Accounts (admins)"),
        (name = "checklists", description = "Checklists and methodologies for offline work"),
        (name = "audits", description = "Field audits, answers, submission and sync"),
        (name = "evidence", description = "Photo evidence: uploads, originals, thumbnails"),
        (name = "review", description = "Ministry review: queue, claims, verdicts, decisions, revisions"),
        (name = "passports", description = "Order 627 accessibility passports and A11yJSON"),
        (name = "rating", description = "Rating inputs, ratings with exports, publication, public ratings"),
        (name = "log", description = "The tamper-evident history of every change"),
        (name = "health", description = "Probes")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The versioned API routes and their OpenAPI description.
fn api(max_photo_bytes: u64) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(photos::router(max_photo_bytes))
        .merge(auth::router())
        .merge(audits::router())
        .merge(checklists::router())
        .merge(sync::router())
        .merge(review::router())
        .merge(ratings::router())
        .merge(passports::router())
        .merge(audit_log::router())
        .merge(uploads::router())
        .merge(institutions::router())
        .merge(organisations::router())
        .merge(users::router())
}

/// Builds the complete application: what the binary serves and what tests
/// and benchmarks drive.
pub fn app(state: AppState) -> Router {
    let (api_router, mut doc) = OpenApiRouter::new()
        .nest(API_PREFIX, api(state.settings.photo_max_bytes))
        .merge(health::router())
        .split_for_parts();
    doc.info = ApiDoc::openapi().info;
    idempotency::document(&mut doc);
    let request_id = HeaderName::from_static("x-request-id");
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CatchPanicLayer::custom(panic_response))
        // A client that accepts no coding is refused before any handler
        // runs (`RefuseLayer`, below), not by the compression layer after its
        // effect; the others' Accept-Encoding is settled for it.
        .map_request(encoding::settle)
        // Answers are made per request, so they are compressed for speed:
        // gzip at its fastest level takes a quarter of its default's time on
        // an audit (0.12 ms against 0.52) for 11 KB instead of 8 KB of 42 KB.
        // Brotli is slower than gzip at every level that matters here
        // (docs/performance.md); the documents made once (checklists,
        // bundles) carry their own, best-compressed, encodings.
        .layer(CompressionLayer::new().no_br().quality(CompressionLevel::Fastest))
        .layer(encoding::RefuseLayer)
        // Tus discovery is answered before CORS, which treats every OPTIONS
        // as a preflight; without configured origins there is no CORS layer.
        .layer(only::Only::new(
            uploads::may_be_discovery,
            axum::middleware::from_fn_with_state(state.clone(), uploads::discovery),
        ))
        .option_layer((!state.settings.cors_origins.is_empty()).then(|| cors(&state.settings.cors_origins)))
        .layer(only::Only::new(
            idempotency::is_keyed,
            axum::middleware::from_fn_with_state(state.clone(), idempotency::layer),
        ))
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes));
    api_router
        .merge(SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers)
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    let origin = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(allowed)
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static(idempotency::HEADER),
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-checksum"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static(idempotency::REPLAYED),
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-expires"),
            HeaderName::from_static("dostup-photo-id"),
        ])
}

async fn not_found() -> Response {
    problem_response(
        StatusCode::NOT_FOUND,
        "not-found",
        Some("no such route".to_owned()),
        Vec::new(),
    )
}

async fn method_not_allowed() -> Response {
    problem_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        Some("this route does not accept that method".to_owned()),
        Vec::new(),
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        Some("the service failed to handle the request; it has been logged".to_owned()),
        Vec::new(),
    )
}
