//! `/audits`: field audits as mobile clients drive them — created with a
//! client UUID (safe to retry), answered in batches under `If-Match`,
//! submitted when complete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use super::idempotency::Keyed;
use super::pagination::{PageParams, Paginated};
use super::photos::PhotoOut;
use crate::audit::{self, AuditScope, AuditStatus};
use crate::auth::Principal;
use crate::checklist::{
    AnswerSet, Evaluation, JsonObject, evaluate, missing_for_submission, validate_answer,
};
use crate::db::audits::{self as repo, AuditFilter, Created, NewAudit};
use crate::db::directory;
use crate::db::entity::{audit as row, photo as photo_row};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audits))
        .routes(routes!(get_audit, put_audit))
        .routes(routes!(patch_answers))
        .routes(routes!(submit))
}

/// A methodology and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodologyRef {
    #[schema(example = "nok-344n")]
    pub id: String,
    #[schema(example = "1.0.0")]
    pub version: String,
}

/// Creation of an audit under a client-generated UUID.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAudit {
    pub site_id: Uuid,
    /// Omit to pin the current default methodology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methodology: Option<MethodologyRef>,
    /// When the volunteer started on site (the phone's clock), in the years
    /// 1–9999.
    #[serde(
        default,
        deserialize_with = "super::instant::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<DateTime<Utc>>,
}

/// An audit with its answers and the engine's evaluation.
///
/// It borrows the evaluation and the answers, so an answer is written straight into its
/// body without a copy of either (see [`respond`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut<'a> {
    pub id: Uuid,
    pub site_id: Uuid,
    pub institution_id: Uuid,
    pub status: AuditStatus,
    /// Changes with every write; send it back in `If-Match`.
    pub version: i64,
    pub methodology: MethodologyRef,
    /// The checklist release the audit is pinned to.
    pub release: &'a str,
    pub created_by: Uuid,
    pub organisation_id: Option<Uuid>,
    /// `checklist.item → value`.
    #[schema(value_type = Object)]
    pub answers: &'a BTreeMap<String, Json_>,
    /// The engine's result: every rule outcome, zone and passport statuses,
    /// 344н conditions and indicators (the same JSON `dostup score` prints).
    #[schema(value_type = Object)]
    pub evaluation: &'a Evaluation<'a>,
    /// Photo evidence attached to items.
    pub photos: Vec<PhotoOut>,
    /// Submissions so far (0 while a first draft); each is kept as a revision.
    pub revision: i32,
    /// Claim, reviewers' verdicts per rule (overrides are applied in
    /// `evaluation`) and decisions with their comments.
    pub review: super::review::ReviewState,
    pub started_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AuditOut<'_> {
    /// Writes the JSON serde_json writes for the audit (`serde_json::to_writer`), with the
    /// evaluation written by [`Evaluation::write_json`], which copies most of it as rendered.
    /// The derived serialisation stays the reference: a test compares the two.
    ///
    /// # Errors
    /// A value does not serialise (see [`Evaluation::write_json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // Every field named, so that a new one fails to compile until it is written here.
        let AuditOut {
            id,
            site_id,
            institution_id,
            status,
            version,
            methodology,
            release,
            created_by,
            organisation_id,
            answers,
            evaluation,
            photos,
            revision,
            review,
            started_at,
            submitted_at,
            created_at,
            updated_at,
        } = self;
        let mut object = JsonObject::new(out);
        object.field("id", id)?;
        object.field("site_id", site_id)?;
        object.field("institution_id", institution_id)?;
        object.field("status", status)?;
        object.field("version", version)?;
        object.field("methodology", methodology)?;
        object.field("release", release)?;
        object.field("created_by", created_by)?;
        object.field("organisation_id", organisation_id)?;
        object.field("answers", answers)?;
        evaluation.write_json(object.key("evaluation"))?;
        object.field("photos", photos)?;
        object.field("revision", revision)?;
        object.field("review", review)?;
        object.field("started_at", started_at)?;
        object.field("submitted_at", submitted_at)?;
        object.field("created_at", created_at)?;
        object.field("updated_at", updated_at)?;
        object.end();
        Ok(())
    }
}

/// A list entry: the audit without answers and evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditSummary {
    pub id: Uuid,
    pub site_id: Uuid,
    pub status: AuditStatus,
    pub version: i64,
    pub methodology: MethodologyRef,
    pub created_by: Uuid,
    pub submitted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Creates an audit with a client-generated UUID. Repeating the same request
/// returns the same audit (200); the same UUID with a different body is 409
/// `audit-conflict`.
#[utoipa::path(put, path = "/audits/{id}", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "generated by the client")),
    request_body = CreateAudit,
    responses((status = 201, description = "created", body = AuditOut),
              (status = 200, description = "already created by this same request", body = AuditOut),
              (status = 403, description = "`forbidden`: the role cannot audit", body = Problem),
              (status = 409, description = "`audit-conflict`", body = Problem),
              (status = 422, description = "`unknown-site`, `unknown-methodology`, `not-a-scoring-methodology`", body = Problem)))]
async fn put_audit(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateAudit>,
) -> ApiResult<Response> {
    if !audit::may_create(who.role) {
        return Err(ApiError::forbidden(format!(
            "a {} does not carry out audits",
            who.role
        )));
    }
    let fingerprint = fingerprint(&body);
    if let Some(existing) = repo::get(&state.db, id).await? {
        return same_or_conflict(&state, &who, existing, &fingerprint).await;
    }
    let site = directory::get_site(&state.db, body.site_id)
        .await?
        .ok_or_else(|| ApiError::invalid_field("site_id", "unknown-site", "no site has this id"))?;
    let institution = directory::get_institution(&state.db, site.institution_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("site {} has no institution", site.id))?;
    let (methodology, release) = pin_methodology(&state, body.methodology.as_ref()).await?;
    let created = repo::create(
        &state.db,
        NewAudit {
            id,
            site_id: site.id,
            institution_id: institution.id,
            region: institution.region_code,
            sector: institution.sector,
            created_by: who.user_id,
            organisation_id: who.organisation_id,
            methodology_id: methodology.id,
            methodology_version: methodology.version,
            release_hash: release,
            fingerprint: fingerprint.clone(),
            started_at: body.started_at,
        },
        &request_id.actor(&who),
    )
    .await?;
    match created {
        Created::New(audit) => {
            // A new audit has no photos: adding one makes a new version.
            state.recent_audits.keep(audit.clone(), Some(Arc::from([])));
            let answers = answer_set(&audit)?;
            respond_with(&state, StatusCode::CREATED, &audit, &answers, Vec::new()).await
        }
        Created::Existing(audit) => same_or_conflict(&state, &who, audit, &fingerprint).await,
    }
}

async fn same_or_conflict(
    state: &AppState,
    who: &Principal,
    existing: row::Model,
    fingerprint: &str,
) -> ApiResult<Response> {
    if existing.created_by == who.user_id && existing.create_fingerprint == fingerprint {
        respond(state, StatusCode::OK, existing).await
    } else {
        Err(ApiError::conflict(
            "audit-conflict",
            "an audit with this id exists with different data; generate a new id",
        ))
    }
}

/// Resolves the requested (or default) methodology to a pinned release.
async fn pin_methodology(
    state: &AppState,
    requested: Option<&MethodologyRef>,
) -> ApiResult<(MethodologyRef, String)> {
    let catalogs = &state.catalogs;
    let current = catalogs.current();
    let wanted = match requested {
        Some(m) => m.clone(),
        None => {
            let m = current.default_methodology();
            MethodologyRef {
                id: m.id().to_owned(),
                version: m.version().to_owned(),
            }
        }
    };
    let release = catalogs
        .release_with(&wanted.id, &wanted.version)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::invalid_field(
                "methodology",
                "unknown-methodology",
                format!(
                    "methodology {} version {} is not published",
                    wanted.id, wanted.version
                ),
            )
        })?;
    let catalog = catalogs
        .for_release(&release)
        .await
        .map_err(ApiError::from)?;
    let scoring = catalog
        .methodology(&wanted.id)
        .is_some_and(|m| m.kind_name() != "passport");
    if !scoring {
        return Err(ApiError::invalid_field(
            "methodology",
            "not-a-scoring-methodology",
            format!(
                "{} is a passport mapping; choose a scoring methodology",
                wanted.id
            ),
        ));
    }
    Ok((wanted, release))
}

fn fingerprint(body: &CreateAudit) -> String {
    // serde_json's maps are sorted, so equal requests serialise identically
    // whatever the order of their keys on the wire.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

/// One audit.
#[utoipa::path(get, path = "/audits/{id}", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "with `ETag: \"<version>\"`", body = AuditOut),
              (status = 404, description = "`not-found`, also for audits the caller may not see", body = Problem)))]
async fn get_audit(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let (audit, _) = visible(&state, &who, id).await?;
    respond(&state, StatusCode::OK, audit).await
}

/// Filters and paging of the audit list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub status: Option<AuditStatus>,
    pub site: Option<Uuid>,
    /// Only audits changed at or after this instant (RFC 3339). An audit's
    /// `updated_at` is stamped as its write is made, moments before it
    /// commits, so writes can commit out of time order: a client that polls
    /// by time should overlap its windows by a few seconds. `GET /sync`
    /// lists every change once, in commit order. Years 1–9999.
    #[serde(default, deserialize_with = "super::instant::optional")]
    pub updated_since: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// Audits the caller may see.
#[utoipa::path(get, path = "/audits", tag = "audits", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Paginated<AuditSummary>),
              (status = 400, description = "`invalid-query`, `invalid-cursor`", body = Problem)))]
async fn list_audits(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Paginated<AuditSummary>>> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let filter = AuditFilter {
        status: q.status,
        site: q.site,
        updated_since: q.updated_since,
    };
    let rows = repo::list(&state.db, &who, &filter, page).await?;
    Ok(Json(Paginated::try_from_page(rows, |a| {
        Ok::<_, ApiError>(AuditSummary {
            status: parse_status(&a)?,
            methodology: MethodologyRef {
                id: a.methodology_id,
                version: a.methodology_version,
            },
            id: a.id,
            site_id: a.site_id,
            version: a.version,
            created_by: a.created_by,
            submitted_at: a.submitted_at,
            updated_at: a.updated_at,
        })
    })?))
}

/// A batch of answers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswersPatch {
    /// `checklist.item → value`; `null` clears an answer. Numbers are in the
    /// item's unit, or `{"value": 150, "unit": "cm"}`.
    #[schema(value_type = Object)]
    pub answers: BTreeMap<String, Json_>,
}

/// Merges a batch of answers. Requires `If-Match` with the version the
/// client last saw: a stale version is 412 with the current one (merge and
/// retry), a missing header 428. Every bad value is listed in a 422 with its
/// item key and code.
#[utoipa::path(patch, path = "/audits/{id}/answers", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path),
           ("If-Match" = String, Header, description = "the audit's version, e.g. `\"3\"`"),
           ("Prefer" = Option<String>, Header, description = "`return=minimal` (RFC 7240): answer with `AnswersSaved` (version, `complete`, `summary`) instead of the whole audit; `Preference-Applied` confirms it")),
    request_body = AnswersPatch,
    responses((status = 200, description = "new version, answers and evaluation; with `Prefer: return=minimal` an `AnswersSaved`", body = AuditOut),
              (status = 403, description = "`forbidden`: may see but not edit", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "`audit-not-editable` with `audit_status`", body = Problem),
              (status = 412, description = "`version-mismatch` with `current_version`", body = Problem),
              (status = 422, description = "`validation-failed`; per item: `unknown-item`, `wrong-type`, `out-of-range`, `not-an-integer`, `unknown-option`, `duplicate-option`, `unknown-unit`, `unit-mismatch`, `too-long`, `not-answerable`", body = Problem),
              (status = 428, description = "`precondition-required`", body = Problem),
              (status = 503, description = "`database-unavailable`, with Retry-After: retry with the same `Idempotency-Key`", body = Problem)))]
async fn patch_answers(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    keyed: Option<Extension<Keyed>>,
    ApiJson(patch): ApiJson<AnswersPatch>,
) -> ApiResult<Response> {
    let batch = Batch {
        expected: if_match(&headers)?,
        minimal: prefers_minimal(&headers),
        actor: request_id.actor(&who),
        state: &state,
        who: &who,
        answers: &patch.answers,
        keyed: keyed.as_ref().map(|Extension(keyed)| keyed),
    };
    // The batch's one write stores its answer for the key.
    if let Some(keyed) = batch.keyed {
        keyed.take_over();
    }
    // The copy this process kept when it last wrote the audit, if that is
    // the version the client saw: the write itself checks it still is.
    if let Some(recent) = state.recent_audits.get(id, batch.expected) {
        match batch.apply(&recent.audit, recent.photos.clone()).await {
            Ok(Some(response)) => return Ok(response),
            // The service or the database failed: the answer is that.
            Err(err) if err.status().is_server_error() => return Err(err),
            // Refused, or the write found the audit changed: the stored
            // audit decides how, as it would without a copy.
            Ok(None) | Err(_) => state.recent_audits.forget(id, batch.expected),
        }
    }
    let audit = repo::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("audit"))?;
    match batch.apply(&audit, None).await? {
        Some(response) => Ok(response),
        None => Err(lost_race(&state, id).await),
    }
}

/// The audit's photos as stored.
async fn photos_of(state: &AppState, id: Uuid) -> ApiResult<Arc<[photo_row::Model]>> {
    Ok(crate::db::photos::of_audit(&state.db, id).await?.into())
}

/// One `PATCH answers` request.
struct Batch<'a> {
    /// The version from `If-Match`.
    expected: i64,
    /// `Prefer: return=minimal`.
    minimal: bool,
    actor: crate::db::audit_log::Actor,
    state: &'a AppState,
    who: &'a Principal,
    answers: &'a BTreeMap<String, Json_>,
    /// The request's `Idempotency-Key`: the answer is stored with the write.
    keyed: Option<&'a Keyed>,
}

impl Batch<'_> {
    /// Checks and writes the batch onto `audit`, with its `photos` if they
    /// are at hand, and answers as the client asked; `None` when the write
    /// found the audit no longer as `audit` shows it.
    async fn apply(
        &self,
        audit: &row::Model,
        photos: Option<Arc<[photo_row::Model]>>,
    ) -> ApiResult<Option<Response>> {
        let state = self.state;
        let scope = seen_by(self.who, audit)?;
        ensure_editable(self.who, &scope, audit)?;
        if audit.version != self.expected {
            return Err(stale(audit.version));
        }
        let catalog = pinned_catalog(state, audit).await?;
        let errors: Vec<FieldError> = self
            .answers
            .iter()
            .filter_map(|(key, value)| validate_answer(&catalog, key, value).err())
            .map(|e| FieldError::new(e.key, e.code, e.message))
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let merged = audit::merge_answers(answers_of(audit)?, self.answers);
        // The whole answer shows the photos. Read before the write, they are
        // those of the version it makes: a photo added in between bumps the
        // version, and the write fails.
        let photos = match photos {
            None if !self.minimal => Some(photos_of(state, audit.id).await?),
            photos => photos,
        };
        // With a key, the answer is made before the write, which stores it
        // for replay with the answers (see `idempotency::Keyed`).
        if let Some(keyed) = self.keyed
            && let Some(write) = repo::prepare_answers(&state.db, audit, &merged, &self.actor)?
        {
            let answer = self
                .answer(write.audit(), merged, &catalog, photos.as_deref())
                .await?;
            let (answer, done) = keyed.store_with(answer).await?;
            let Some((updated, _)) =
                repo::write_answers(&state.db, audit, write, Some(done)).await?
            else {
                return Ok(None);
            };
            state.recent_audits.keep(updated, photos);
            return Ok(Some(answer));
        }
        let Some(updated) = repo::update_answers(&state.db, audit, &merged, &self.actor).await?
        else {
            return Ok(None);
        };
        let answer = self
            .answer(&updated, merged, &catalog, photos.as_deref())
            .await;
        // Kept before the answer leaves, so the client's next batch finds it.
        state.recent_audits.keep(updated, photos);
        answer.map(Some)
    }

    /// The answer to the batch once `updated` is written with `answers`
    /// (what its answers text holds, so it is not parsed again): the whole
    /// audit with `photos`, or the short answer the client asked for.
    async fn answer(
        &self,
        updated: &row::Model,
        answers: BTreeMap<String, Json_>,
        catalog: &crate::checklist::Catalog,
        photos: Option<&[photo_row::Model]>,
    ) -> ApiResult<Response> {
        let state = self.state;
        let answers = answer_set_with(updated, answers);
        if self.minimal {
            let saved = saved(state, updated, &answers, catalog).await?;
            let mut response = (
                StatusCode::OK,
                [(header::ETAG, etag(saved.version))],
                Json(saved),
            )
                .into_response();
            response.headers_mut().insert(
                "preference-applied",
                HeaderValue::from_static("return=minimal"),
            );
            return Ok(response);
        }
        let photos = photos
            .iter()
            .flat_map(|photos| photos.iter().cloned().map(PhotoOut::from))
            .collect();
        respond_with(state, StatusCode::OK, updated, &answers, photos).await
    }
}

/// The short answer to a batch of answers, for `Prefer: return=minimal`:
/// the new version and the evaluation's verdict, without the answers, the
/// photos and every rule's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswersSaved {
    pub id: Uuid,
    pub status: AuditStatus,
    /// Send it as `If-Match` with the next batch (also the `ETag`).
    pub version: i64,
    /// True when nothing is missing and every score is computable.
    pub complete: bool,
    /// Outcome counts: `pass`, `fail`, `not_applicable`, `incomplete`, `needs_review`.
    #[schema(value_type = Object)]
    pub summary: crate::checklist::Summary,
    pub updated_at: DateTime<Utc>,
}

/// True when the request asks for `Prefer: return=minimal` (RFC 7240).
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

async fn saved(
    state: &AppState,
    audit: &row::Model,
    answers: &AnswerSet,
    catalog: &crate::checklist::Catalog,
) -> ApiResult<AnswersSaved> {
    let (overrides, _) = super::review::review_state(state, audit).await?;
    let evaluation = evaluate(catalog, Some(&audit.methodology_id), answers, &overrides)
        .map_err(|e| anyhow::anyhow!("audit {} does not evaluate: {e}", audit.id))?;
    Ok(AnswersSaved {
        id: audit.id,
        status: parse_status(audit)?,
        version: audit.version,
        complete: evaluation.complete,
        summary: evaluation.summary,
        updated_at: audit.updated_at,
    })
}

/// Submits the audit for review. Every required answer and photo that is
/// missing is listed in a 422 (`answer-required`, `photo-required`); after
/// submission the audit is read-only for the volunteer until a reviewer
/// returns it.
#[utoipa::path(post, path = "/audits/{id}/submit", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path),
           ("If-Match" = Option<String>, Header, description = "optional: submit only this version")),
    responses((status = 200, description = "submitted", body = AuditOut),
              (status = 404, body = Problem),
              (status = 409, description = "`audit-not-editable` with `audit_status`", body = Problem),
              (status = 412, description = "`version-mismatch` with `current_version`", body = Problem),
              (status = 422, description = "`validation-failed` with per item `answer-required` / `photo-required`", body = Problem)))]
async fn submit(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = match headers.get(header::IF_MATCH) {
        Some(_) => Some(if_match(&headers)?),
        None => None,
    };
    let (audit, scope) = visible(&state, &who, id).await?;
    ensure_editable(&who, &scope, &audit)?;
    if expected.is_some_and(|v| v != audit.version) {
        return Err(stale(audit.version));
    }
    let catalog = pinned_catalog(&state, &audit).await?;
    let answers = answer_set(&audit)?;
    let photos: BTreeSet<String> = super::photos::of_audit(&state, id)
        .await?
        .into_iter()
        .map(|p| p.item)
        .collect();
    let missing = missing_for_submission(&catalog, &answers, &photos)
        .map_err(|e| anyhow::anyhow!("stored answers of audit {id} no longer validate: {e}"))?;
    if !missing.is_empty() {
        return Err(ApiError::Validation(
            missing
                .into_iter()
                .map(|m| {
                    let message = if m.code == "photo-required" {
                        "attach a photo to this item"
                    } else {
                        "answer this item"
                    };
                    FieldError::new(m.item, m.code, message)
                })
                .collect(),
        ));
    }
    match repo::submit(&state.db, &audit, &request_id.actor(&who)).await? {
        Some(updated) => respond(&state, StatusCode::OK, updated).await,
        None => Err(lost_race(&state, id).await),
    }
}

/// The audit if `who` may see it; 404 otherwise, so ids do not leak.
pub(super) async fn visible(
    state: &AppState,
    who: &Principal,
    id: Uuid,
) -> ApiResult<(row::Model, AuditScope)> {
    let audit = repo::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("audit"))?;
    let scope = seen_by(who, &audit)?;
    Ok((audit, scope))
}

/// The scope of `audit` if `who` may see it; 404 otherwise.
fn seen_by(who: &Principal, audit: &row::Model) -> ApiResult<AuditScope> {
    let scope = repo::scope_of(audit).map_err(|e| anyhow::anyhow!(e))?;
    if audit::can_see(who, &scope) {
        Ok(scope)
    } else {
        Err(ApiError::not_found("audit"))
    }
}

pub(super) fn ensure_editable(
    who: &Principal,
    scope: &AuditScope,
    audit: &row::Model,
) -> ApiResult<()> {
    if !audit::can_edit(who, scope) {
        return Err(ApiError::forbidden(
            "you may read this audit but not change it",
        ));
    }
    if !scope.status.is_editable() {
        return Err(not_editable(scope.status, audit.version));
    }
    Ok(())
}

fn not_editable(status: AuditStatus, version: i64) -> ApiError {
    ApiError::conflict(
        "audit-not-editable",
        format!("the audit is {status}; it can be changed again only if a reviewer returns it"),
    )
    .with("audit_status", status.as_str())
    .with("current_version", version)
}

fn stale(current: i64) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "version-mismatch",
        format!("the audit changed since you read it; it is now at version {current}: fetch it, merge and retry"),
    )
    .with("current_version", current)
    .header(header::ETAG, etag(current))
}

/// After a conditional write matched nothing: say whether the status or
/// the version moved.
async fn lost_race(state: &AppState, id: Uuid) -> ApiError {
    match repo::get(&state.db, id).await {
        Ok(Some(now)) => match parse_status(&now) {
            Ok(status) if !status.is_editable() => not_editable(status, now.version),
            Ok(_) => stale(now.version),
            Err(e) => e,
        },
        Ok(None) => ApiError::not_found("audit"),
        Err(e) => e.into(),
    }
}

/// Parses `If-Match`: `"7"`, `W/"7"` or `7`.
fn if_match(headers: &HeaderMap) -> ApiResult<i64> {
    let value = headers.get(header::IF_MATCH).ok_or_else(|| {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "send If-Match with the audit version you last saw",
        )
    })?;
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-if-match",
                "If-Match must be the audit's version as its ETag gave it, e.g. \"3\"",
            )
        })
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn parse_status(audit: &row::Model) -> ApiResult<AuditStatus> {
    audit
        .status
        .parse()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("audit {}: {e}", audit.id)))
}

pub(super) fn answers_of(audit: &row::Model) -> ApiResult<BTreeMap<String, Json_>> {
    serde_json::from_str(&audit.answers).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "audit {} answers are not JSON: {e}",
            audit.id
        ))
    })
}

pub(super) fn answer_set(audit: &row::Model) -> ApiResult<AnswerSet> {
    Ok(answer_set_with(audit, answers_of(audit)?))
}

/// The answer set of `audit` whose answers, as parsed, are `answers`.
fn answer_set_with(audit: &row::Model, answers: BTreeMap<String, Json_>) -> AnswerSet {
    AnswerSet {
        methodology: Some(audit.methodology_id.clone()),
        answers,
        survey: None,
    }
}

/// The checklist release an audit is pinned to.
pub(super) async fn pinned_catalog(
    state: &AppState,
    audit: &row::Model,
) -> ApiResult<std::sync::Arc<crate::checklist::Catalog>> {
    state
        .catalogs
        .for_release(&audit.release_hash)
        .await
        .map_err(ApiError::from)
}

/// Answers with the audit as clients see it, evaluated against its pinned release, and its
/// version as the `ETag`.
pub(super) async fn respond(
    state: &AppState,
    status: StatusCode,
    audit: row::Model,
) -> ApiResult<Response> {
    let photos = super::photos::of_audit(state, audit.id).await?;
    let answers = answer_set(&audit)?;
    respond_with(state, status, &audit, &answers, photos).await
}

/// [`respond`] with the audit's photos at hand.
async fn respond_with(
    state: &AppState,
    status: StatusCode,
    audit: &row::Model,
    answers: &AnswerSet,
    photos: Vec<PhotoOut>,
) -> ApiResult<Response> {
    let catalog = pinned_catalog(state, audit).await?;
    let (overrides, review) = super::review::review_state(state, audit).await?;
    let evaluation = evaluate(&catalog, Some(&audit.methodology_id), answers, &overrides)
        .map_err(|e| anyhow::anyhow!("audit {} does not evaluate: {e}", audit.id))?;
    // Most of the body is the evaluation, some 600 bytes a rule, and then the answers as
    // stored: sized for both, the body is written once, without growing from nothing.
    let capacity = evaluation.rules.len() * 640 + audit.answers.len() + 4096;
    let out = AuditOut {
        status: parse_status(audit)?,
        id: audit.id,
        site_id: audit.site_id,
        institution_id: audit.institution_id,
        version: audit.version,
        methodology: MethodologyRef {
            id: audit.methodology_id.clone(),
            version: audit.methodology_version.clone(),
        },
        release: &audit.release_hash,
        created_by: audit.created_by,
        organisation_id: audit.organisation_id,
        answers: &answers.answers,
        evaluation: &evaluation,
        photos,
        revision: audit.revision,
        review,
        started_at: audit.started_at,
        submitted_at: audit.submitted_at,
        created_at: audit.created_at,
        updated_at: audit.updated_at,
    };
    let mut body = Vec::with_capacity(capacity);
    out.write_json(&mut body)
        .map_err(|e| anyhow::anyhow!("audit {} not serialisable: {e}", audit.id))?;
    Ok((
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag(out.version)),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::checklist::Overrides;

    /// An audit's answer is written by hand (`AuditOut::write_json`); it must be, byte for
    /// byte, what serde_json writes for it.
    #[test]
    fn an_audit_written_by_hand_is_what_serde_json_writes() {
        let catalog = crate::checklist::shipped::catalog();
        let answers = crate::checklist::shipped::example("typical-older-building");
        let verdict = crate::checklist::Override {
            verdict: crate::checklist::Verdict::Fail,
            comment: "фото: \"нет\"".to_owned(),
        };
        let verdicts: Overrides = [("sanitary.accessible_toilet".to_owned(), verdict)].into();
        let evaluations = [
            evaluate(&catalog, None, &answers, &verdicts).unwrap(),
            evaluate(&catalog, None, &answers, &Overrides::new()).unwrap(),
        ];
        let at = "2026-05-04T10:11:12.345678Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        let photo = PhotoOut {
            id: Uuid::from_u128(5),
            audit_id: Uuid::from_u128(1),
            item: "entrance.door_width".to_owned(),
            sha256: "ab".repeat(32),
            content_type: "image/jpeg".to_owned(),
            byte_size: 123_456,
            width: 1280,
            height: 960,
            captured_at: Some(at),
            latitude: Some(55.75),
            longitude: None,
            device: Some("Pixel \"7\"".to_owned()),
            flags: serde_json::json!([{"code": "no-gps"}]),
            client_photo_id: None,
            urls: serde_json::json!({"original": "/a/b"}),
            created_at: at,
        };
        for (evaluation, organisation, photos, claimed_by, started, submitted) in [
            (
                &evaluations[0],
                Some(Uuid::from_u128(4)),
                vec![photo],
                Some(Uuid::from_u128(6)),
                Some(at),
                None,
            ),
            (&evaluations[1], None, Vec::new(), None, None, Some(at)),
        ] {
            let out = AuditOut {
                id: Uuid::from_u128(1),
                site_id: Uuid::from_u128(2),
                institution_id: Uuid::from_u128(3),
                status: AuditStatus::Draft,
                version: 7,
                methodology: MethodologyRef {
                    id: "nok-344n".to_owned(),
                    version: "1.0.0".to_owned(),
                },
                release: "f00d",
                created_by: Uuid::from_u128(2),
                organisation_id: organisation,
                answers: &answers.answers,
                evaluation,
                photos,
                revision: 1,
                review: super::super::review::ReviewState {
                    claimed_by,
                    claimed_at: claimed_by.map(|_| at),
                    verdicts: Vec::new(),
                    decisions: Vec::new(),
                },
                started_at: started,
                submitted_at: submitted,
                created_at: at,
                updated_at: at,
            };
            let mut by_hand = Vec::new();
            out.write_json(&mut by_hand).unwrap();
            assert_eq!(
                String::from_utf8(by_hand).unwrap(),
                serde_json::to_string(&out).unwrap()
            );
        }
    }
}
