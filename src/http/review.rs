//! Ministry review: the queue, claims, per-rule verdicts, decisions, and the
//! revisions an audit went through with the differences between them.
//!
//! A reviewer works the queue like this: `GET /review/queue`, `POST
//! /audits/{id}/claim`, `PUT /audits/{id}/verdicts/{rule}` for rules to
//! confirm or override, then `POST /audits/{id}/review` to approve, return
//! or reject. Reviewers outside the audit's region or sector get 404, as for
//! any audit they may not see.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::audits::{AuditOut, answer_set, answers_of, respond, visible};
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::audit::review::{
    self as rules, AnswersDiff, Decision, PhotoRef, PhotosDiff, VerdictKind, diff_answers,
    diff_photos,
};
use crate::audit::{AuditScope, AuditStatus};
use crate::auth::Principal;
use crate::checklist::{Outcome, Overrides, evaluate};
use crate::db::entity::{audit as row, review_decision, review_verdict};
use crate::db::review::{self as repo, NewDecision, NewVerdict, QueueFilter, Withdrawn};
use crate::db::{audits, directory, photos};
use crate::domain::Role;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue))
        .routes(routes!(claim, release))
        .routes(routes!(set_verdict, withdraw_verdict))
        .routes(routes!(review))
        .routes(routes!(list_revisions))
        .routes(routes!(get_revision))
        .routes(routes!(diff))
}

/// Longest comment accepted, in characters.
const MAX_COMMENT: usize = 4000;

// ---------------------------------------------------------------- queue

/// Filters and paging of the review queue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    pub institution: Option<Uuid>,
    pub site: Option<Uuid>,
    /// `social_services`, `education`, `culture`, `health`.
    pub sector: Option<crate::domain::Sector>,
    /// Only audits with a photo flagged so: `no-exif`, `no-gps`,
    /// `far-from-site`, `outside-audit-window`, `used-in-other-audit`.
    pub flag: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

const FLAGS: [&str; 5] = [
    "no-exif",
    "no-gps",
    "far-from-site",
    "outside-audit-window",
    "used-in-other-audit",
];

/// A name and id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

/// The site of a queued audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSite {
    pub id: Uuid,
    pub name: String,
    pub address: String,
}

/// The institution of a queued audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueInstitution {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub sector: String,
}

/// Rules a reviewer should look at.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleCounts {
    pub fail: usize,
    pub incomplete: usize,
    pub needs_review: usize,
}

/// One audit waiting for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    pub audit_id: Uuid,
    pub version: i64,
    pub revision: i32,
    pub submitted_at: Option<DateTime<Utc>>,
    pub claimed_by: Option<Uuid>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub site: QueueSite,
    pub institution: QueueInstitution,
    /// The volunteer's organisation.
    pub organisation: Option<Named>,
    /// Outcomes after the verdicts given so far.
    pub rules: RuleCounts,
    pub photos: usize,
    /// Plausibility flag → number of photos carrying it.
    pub photo_flags: BTreeMap<String, usize>,
}

/// A page of the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    pub items: Vec<QueueEntry>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Submitted audits in the caller's region and sector, oldest submission
/// first, with what needs attention in each.
#[utoipa::path(get, path = "/review/queue", tag = "review", security(("bearer" = [])),
    params(QueueQuery),
    responses((status = 200, body = QueuePage),
              (status = 400, description = "`invalid-query`, `invalid-cursor`", body = Problem),
              (status = 403, description = "`forbidden`: only reviewers and admins", body = Problem)))]
async fn queue(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Json<QueuePage>> {
    if !matches!(who.role, Role::Reviewer | Role::Admin) {
        return Err(ApiError::forbidden("the review queue is for reviewers"));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(bad_query("limit must be between 1 and 100"));
    }
    if let Some(flag) = &q.flag
        && !FLAGS.contains(&flag.as_str())
    {
        return Err(bad_query(format!(
            "unknown flag `{flag}`; one of {}",
            FLAGS.join(", ")
        )));
    }
    let filter = QueueFilter {
        institution: q.institution,
        site: q.site,
        sector: q.sector.map(|s| s.as_str().to_owned()),
        flag: q.flag,
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let mut rows = repo::queue(&state.db, &who, &filter, limit).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        rows.last()
            .and_then(|a| a.submitted_at.map(|at| encode_cursor(at, a.id)))
    } else {
        None
    };
    let ids: Vec<Uuid> = rows.iter().map(|a| a.id).collect();
    let mut flags: BTreeMap<Uuid, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for (audit_id, text) in repo::photo_flags(&state.db, &ids).await? {
        let entry = flags.entry(audit_id).or_default();
        entry.0 += 1;
        let parsed: Vec<Json_> = serde_json::from_str(&text).unwrap_or_default();
        let codes: BTreeSet<String> = parsed
            .iter()
            .filter_map(|f| f["code"].as_str().map(str::to_owned))
            .collect();
        for code in codes {
            *entry.1.entry(code).or_default() += 1;
        }
    }
    let mut items = Vec::with_capacity(rows.len());
    for audit in rows {
        let site = directory::get_site(&state.db, audit.site_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("audit {} names a missing site", audit.id))?;
        let institution = directory::get_institution(&state.db, audit.institution_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("audit {} names a missing institution", audit.id))?;
        let organisation = match audit.organisation_id {
            Some(id) => directory::get_organisation(&state.db, id)
                .await?
                .map(|o| Named {
                    id: o.id,
                    name: o.name,
                }),
            None => None,
        };
        let summary = evaluated(&state, &audit, |e| RuleCounts {
            fail: e.summary.fail,
            incomplete: e.summary.incomplete,
            needs_review: e.summary.needs_review,
        })
        .await?;
        let (photos, photo_flags) = flags.remove(&audit.id).unwrap_or_default();
        items.push(QueueEntry {
            audit_id: audit.id,
            version: audit.version,
            revision: audit.revision,
            submitted_at: audit.submitted_at,
            claimed_by: audit.claimed_by,
            claimed_at: audit.claimed_at,
            site: QueueSite {
                id: site.id,
                name: site.name,
                address: site.address,
            },
            institution: QueueInstitution {
                id: institution.id,
                name: institution.name,
                region: institution.region_code,
                sector: institution.sector,
            },
            organisation,
            rules: summary,
            photos,
            photo_flags,
        });
    }
    Ok(Json(QueuePage { items, next_cursor }))
}

fn bad_query(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", detail)
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    B64.encode(format!("q1:{}:{id}", at.timestamp_micros()))
}

fn decode_cursor(cursor: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    B64.decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| {
            let rest = t.strip_prefix("q1:")?;
            let (micros, id) = rest.split_once(':')?;
            Some((
                DateTime::from_timestamp_micros(micros.parse().ok()?)?,
                id.parse().ok()?,
            ))
        })
        .ok_or_else(super::pagination::invalid_cursor)
}

// ---------------------------------------------------------------- claims

/// Claims a submitted audit so that no other reviewer works on it. Claiming
/// one's own claim again is harmless.
#[utoipa::path(post, path = "/audits/{id}/claim", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "claimed; the audit", body = AuditOut),
              (status = 403, description = "`forbidden`: not a reviewer", body = Problem),
              (status = 404, description = "not found or outside the reviewer's scope", body = Problem),
              (status = 409, description = "`audit-claimed` with `claimed_by`; `invalid-transition` with `audit_status` when not submitted", body = Problem)))]
async fn claim(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    reviewable(&state, &who, id).await?;
    match repo::claim(&state.db, id, &request_id.actor(&who)).await? {
        Some(audit) => respond(&state, StatusCode::OK, audit).await,
        None => Err(explain_refusal(&state, &who, id).await),
    }
}

/// Releases the caller's claim (admins may release anyone's).
#[utoipa::path(delete, path = "/audits/{id}/claim", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "released; the audit", body = AuditOut),
              (status = 403, body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "`audit-claimed` (held by someone else), `not-claimed`", body = Problem)))]
async fn release(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let audit = reviewable(&state, &who, id).await?;
    let any = who.role == Role::Admin;
    match repo::release(&state.db, id, &request_id.actor(&who), any).await? {
        Some(audit) => respond(&state, StatusCode::OK, audit).await,
        None => Err(match audits::get(&state.db, id).await?.unwrap_or(audit) {
            a if a.claimed_by.is_none() => {
                ApiError::conflict("not-claimed", "nobody holds a claim on this audit")
            }
            a => claimed_by_other(a.claimed_by),
        }),
    }
}

// ---------------------------------------------------------------- verdicts

/// A reviewer's verdict on one rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictIn {
    /// `confirm` keeps the engine's outcome (it must be `pass`, `fail` or
    /// `not_applicable`); `pass`, `fail` or `not_applicable` override it.
    #[schema(example = "fail")]
    pub verdict: String,
    /// Why; required for an override. Up to 4,000 characters.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub comment: String,
}

/// Confirms or overrides the engine's outcome of a rule (e.g. resolves
/// `needs_review`, or fails a measurement the photo contradicts). Scores use
/// the override from then on; the engine's outcome stays beside it in the
/// evaluation. Claims the audit if nobody holds it.
#[utoipa::path(put, path = "/audits/{id}/verdicts/{rule}", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("rule" = String, Path, description = "`checklist.rule`")),
    request_body = VerdictIn,
    responses((status = 200, description = "the audit re-evaluated", body = AuditOut),
              (status = 403, body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "`audit-claimed`, `invalid-transition`", body = Problem),
              (status = 422, description = "`validation-failed`: `rule` `unknown-rule`; `verdict` `unknown-verdict`, `nothing-to-confirm`; `comment` `required`, `too-long`", body = Problem)))]
async fn set_verdict(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath((id, rule)): ApiPath<(Uuid, String)>,
    ApiJson(body): ApiJson<VerdictIn>,
) -> ApiResult<Response> {
    let actor = request_id.actor(&who);
    for _ in 0..RETRIES {
        let audit = reviewable(&state, &who, id).await?;
        ensure_workable(&audit, &who)?;
        let engine = engine_outcome(&state, &audit, &rule).await?;
        let verdict = parse_verdict(&body, engine)?;
        let new = NewVerdict {
            rule: rule.clone(),
            kind: verdict.0,
            verdict: verdict.1.to_owned(),
            engine_outcome: engine.as_str().to_owned(),
            comment: body.comment.trim().to_owned(),
        };
        if let Some(updated) = repo::set_verdict(&state.db, &audit, new, &actor).await? {
            return respond(&state, StatusCode::OK, updated).await;
        }
    }
    Err(explain_refusal(&state, &who, id).await)
}

/// Withdraws the verdict on a rule: the engine's outcome counts again.
#[utoipa::path(delete, path = "/audits/{id}/verdicts/{rule}", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("rule" = String, Path)),
    responses((status = 200, description = "the audit re-evaluated", body = AuditOut),
              (status = 403, body = Problem),
              (status = 404, description = "`not-found`: no such audit or no verdict on the rule", body = Problem),
              (status = 409, description = "`audit-claimed`, `invalid-transition`", body = Problem)))]
async fn withdraw_verdict(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath((id, rule)): ApiPath<(Uuid, String)>,
) -> ApiResult<Response> {
    let actor = request_id.actor(&who);
    for _ in 0..RETRIES {
        let audit = reviewable(&state, &who, id).await?;
        ensure_workable(&audit, &who)?;
        match repo::withdraw_verdict(&state.db, &audit, &rule, &actor).await? {
            Withdrawn::Done(updated) => {
                return respond(&state, StatusCode::OK, *updated).await;
            }
            Withdrawn::NoVerdict => return Err(ApiError::not_found("verdict")),
            Withdrawn::Refused => {}
        }
    }
    Err(explain_refusal(&state, &who, id).await)
}

/// Concurrent writes to one audit are retried this often before giving up.
const RETRIES: usize = 3;

fn parse_verdict(body: &VerdictIn, engine: Outcome) -> ApiResult<(VerdictKind, &'static str)> {
    let comment = body.comment.trim();
    if comment.chars().count() > MAX_COMMENT {
        return Err(ApiError::invalid_field(
            "comment",
            "too-long",
            format!("at most {MAX_COMMENT} characters"),
        ));
    }
    let overriding = match body.verdict.as_str() {
        "confirm" => None,
        "pass" => Some("pass"),
        "fail" => Some("fail"),
        "not_applicable" => Some("not_applicable"),
        other => {
            return Err(ApiError::invalid_field(
                "verdict",
                "unknown-verdict",
                format!("`{other}` is not one of confirm, pass, fail, not_applicable"),
            ));
        }
    };
    match overriding {
        Some(v) if comment.is_empty() => Err(ApiError::invalid_field(
            "comment",
            "required",
            format!(
                "say why the rule is `{v}` rather than the engine's `{}`",
                engine.as_str()
            ),
        )),
        Some(v) => Ok((VerdictKind::Override, v)),
        None => match engine {
            Outcome::Pass | Outcome::Fail | Outcome::NotApplicable => {
                Ok((VerdictKind::Confirm, engine.as_str()))
            }
            Outcome::Incomplete | Outcome::NeedsReview => Err(ApiError::invalid_field(
                "verdict",
                "nothing-to-confirm",
                format!(
                    "the engine's outcome is `{}`; give pass, fail or not_applicable instead",
                    engine.as_str()
                ),
            )),
        },
    }
}

/// The engine's own outcome of `rule` (without any verdict).
async fn engine_outcome(state: &AppState, audit: &row::Model, rule: &str) -> ApiResult<Outcome> {
    let catalog = super::audits::pinned_catalog(state, audit).await?;
    if catalog.rule(rule).is_none() {
        return Err(ApiError::invalid_field(
            "rule",
            "unknown-rule",
            format!("no rule `{rule}` in this audit's checklists; keys are `checklist_id.rule_id`"),
        ));
    }
    let answers = answer_set(audit)?;
    let evaluation = evaluate(
        &catalog,
        Some(&audit.methodology_id),
        &answers,
        &Overrides::new(),
    )
    .map_err(|e| anyhow::anyhow!("audit {} does not evaluate: {e}", audit.id))?;
    evaluation
        .rules
        .iter()
        .find(|r| r.rule == rule)
        .map(|r| r.engine_outcome)
        .ok_or_else(|| anyhow::anyhow!("rule {rule} missing from the evaluation").into())
}

// ---------------------------------------------------------------- decisions

/// A comment on one rule or item, for the volunteer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemComment {
    /// `checklist.rule` (give this or `item`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `checklist.item` (give this or `rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Up to 4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub comment: String,
}

/// A review decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewIn {
    pub decision: Decision,
    /// The reason; required to return or reject. Up to 4,000 characters.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub comment: String,
    /// What to fix, rule by rule or item by item.
    #[serde(default)]
    pub items: Vec<ItemComment>,
}

/// Approves, returns or rejects a submitted audit. Return and reject need a
/// reason; approval needs a verdict on every rule still `needs_review`. A
/// returned audit reaches the volunteer through `/sync` with the comments
/// and becomes editable; its resubmission is a new revision.
#[utoipa::path(post, path = "/audits/{id}/review", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = ReviewIn,
    responses((status = 200, description = "decided; the audit", body = AuditOut),
              (status = 403, description = "`forbidden`: not a reviewer", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "`invalid-transition` with `audit_status`; `audit-claimed` with `claimed_by`", body = Problem),
              (status = 422, description = "`validation-failed`: `comment` `reason-required`, `too-long`; `items[i]` `rule-or-item`, `unknown-rule`, `unknown-item`, `required`; per rule `needs-verdict`", body = Problem)))]
async fn review(
    State(state): State<AppState>,
    Auth(who): Auth,
    request_id: RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReviewIn>,
) -> ApiResult<Response> {
    let actor = request_id.actor(&who);
    for _ in 0..RETRIES {
        let audit = reviewable(&state, &who, id).await?;
        let scope = scope(&audit)?;
        rules::decide(scope.status, body.decision).map_err(|e| invalid_transition(e.current))?;
        ensure_workable(&audit, &who)?;
        validate_decision(&state, &audit, &body).await?;
        let decision = NewDecision {
            decision: body.decision,
            comment: body.comment.trim().to_owned(),
            items: serde_json::to_value(&body.items).unwrap_or_default(),
        };
        if let Some(updated) = repo::decide(&state.db, &audit, decision, &actor).await? {
            return respond(&state, StatusCode::OK, updated).await;
        }
    }
    Err(explain_refusal(&state, &who, id).await)
}

async fn validate_decision(state: &AppState, audit: &row::Model, body: &ReviewIn) -> ApiResult<()> {
    let catalog = super::audits::pinned_catalog(state, audit).await?;
    let mut errors = Vec::new();
    let comment = body.comment.trim();
    if body.decision.needs_reason() && comment.is_empty() {
        errors.push(FieldError::new(
            "comment",
            "reason-required",
            format!("say why the audit is {}ed", body.decision.as_str()),
        ));
    }
    if comment.chars().count() > MAX_COMMENT {
        errors.push(FieldError::new(
            "comment",
            "too-long",
            format!("at most {MAX_COMMENT} characters"),
        ));
    }
    for (n, item) in body.items.iter().enumerate() {
        let field = format!("items[{n}]");
        match (&item.rule, &item.item) {
            (Some(rule), None) if catalog.rule(rule).is_none() => errors.push(FieldError::new(
                &field,
                "unknown-rule",
                format!("no rule `{rule}` in this audit's checklists"),
            )),
            (None, Some(key)) if catalog.item(key).is_none() => errors.push(FieldError::new(
                &field,
                "unknown-item",
                format!("no item `{key}` in this audit's checklists"),
            )),
            (Some(_), None) | (None, Some(_)) => {}
            _ => errors.push(FieldError::new(
                &field,
                "rule-or-item",
                "name exactly one of `rule` or `item`",
            )),
        }
        let text = item.comment.trim();
        if text.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.comment"),
                "required",
                "say what is wrong",
            ));
        } else if text.chars().count() > MAX_COMMENT {
            errors.push(FieldError::new(
                format!("{field}.comment"),
                "too-long",
                format!("at most {MAX_COMMENT} characters"),
            ));
        }
    }
    if body.decision == Decision::Approve {
        let pending: Vec<String> = evaluated(state, audit, |e| {
            e.rules
                .iter()
                .filter(|r| r.outcome == Outcome::NeedsReview)
                .map(|r| r.rule.to_owned())
                .collect()
        })
        .await?;
        errors.extend(pending.into_iter().map(|rule| {
            FieldError::new(
                rule,
                "needs-verdict",
                "give a verdict on this rule (PUT /audits/{id}/verdicts/{rule}) before approving",
            )
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

// ---------------------------------------------------------------- revisions

/// A decision as it was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionOut {
    pub decision: String,
    pub comment: String,
    #[schema(value_type = Vec<ItemComment>)]
    pub items: Json_,
    pub reviewer_id: Uuid,
    pub revision: i32,
    pub decided_at: DateTime<Utc>,
}

impl From<review_decision::Model> for DecisionOut {
    fn from(d: review_decision::Model) -> Self {
        Self {
            items: serde_json::from_str(&d.items).unwrap_or(Json_::Array(Vec::new())),
            decision: d.decision,
            comment: d.comment,
            reviewer_id: d.reviewer_id,
            revision: d.revision,
            decided_at: d.created_at,
        }
    }
}

/// A reviewer's verdict on a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerdictOut {
    pub rule: String,
    /// `confirm` or `override`.
    pub kind: String,
    pub verdict: String,
    /// The engine's outcome when the verdict was given.
    pub engine_outcome: String,
    pub comment: String,
    pub reviewer_id: Uuid,
    pub revision: i32,
    pub updated_at: DateTime<Utc>,
}

impl From<review_verdict::Model> for VerdictOut {
    fn from(v: review_verdict::Model) -> Self {
        Self {
            rule: v.rule_key,
            kind: v.kind,
            verdict: v.verdict,
            engine_outcome: v.engine_outcome,
            comment: v.comment,
            reviewer_id: v.reviewer_id,
            revision: v.revision,
            updated_at: v.updated_at,
        }
    }
}

/// The review side of an audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewState {
    pub claimed_by: Option<Uuid>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub verdicts: Vec<VerdictOut>,
    /// Every decision, oldest first; the last is the current one.
    pub decisions: Vec<DecisionOut>,
}

/// Verdicts as overrides for the engine, and the review state to show.
pub(super) async fn review_state(
    state: &AppState,
    audit: &row::Model,
) -> ApiResult<(Overrides, ReviewState)> {
    // Verdicts and decisions need a submitted audit: one never submitted
    // (revision 0, most edits) has none, and costs no query.
    let (verdicts, decisions) = if audit.revision == 0 {
        (Vec::new(), Vec::new())
    } else {
        (
            repo::verdicts_of(&state.db, audit.id).await?,
            repo::decisions_of(&state.db, audit.id).await?,
        )
    };
    let overrides = repo::overrides_of(&verdicts);
    Ok((
        overrides,
        ReviewState {
            claimed_by: audit.claimed_by,
            claimed_at: audit.claimed_at,
            verdicts: verdicts.into_iter().map(VerdictOut::from).collect(),
            decisions: decisions.into_iter().map(DecisionOut::from).collect(),
        },
    ))
}

/// A submitted revision, in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionSummary {
    pub revision: i32,
    pub submitted_at: DateTime<Utc>,
    pub submitted_by: Uuid,
    pub answers: usize,
    pub photos: usize,
    /// The decision taken on this revision, if any yet.
    pub decision: Option<DecisionOut>,
}

/// The revisions of an audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionList {
    pub items: Vec<RevisionSummary>,
}

/// One revision as it was submitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionOut {
    pub audit_id: Uuid,
    pub revision: i32,
    pub submitted_at: DateTime<Utc>,
    pub submitted_by: Uuid,
    #[schema(value_type = Object)]
    pub answers: BTreeMap<String, Json_>,
    pub photos: Vec<PhotoRef>,
    pub decision: Option<DecisionOut>,
}

/// Every submission of the audit, first first, with the decision on each.
#[utoipa::path(get, path = "/audits/{id}/revisions", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RevisionList),
              (status = 404, body = Problem)))]
async fn list_revisions(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<RevisionList>> {
    visible(&state, &who, id).await?;
    let mut decisions = decisions_by_revision(&state, id).await?;
    let items = repo::revisions_of(&state.db, id)
        .await?
        .into_iter()
        .map(|r| {
            let out = revision_out(r, &mut decisions)?;
            Ok(RevisionSummary {
                revision: out.revision,
                submitted_at: out.submitted_at,
                submitted_by: out.submitted_by,
                answers: out.answers.len(),
                photos: out.photos.len(),
                decision: out.decision,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(RevisionList { items }))
}

/// One revision: its answers and photos as submitted, and the decision on it.
#[utoipa::path(get, path = "/audits/{id}/revisions/{revision}", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("revision" = i32, Path, description = "1 for the first submission")),
    responses((status = 200, body = RevisionOut),
              (status = 404, body = Problem)))]
async fn get_revision(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath((id, revision)): ApiPath<(Uuid, i32)>,
) -> ApiResult<Json<RevisionOut>> {
    visible(&state, &who, id).await?;
    let stored = repo::revision(&state.db, id, revision)
        .await?
        .ok_or_else(|| ApiError::not_found("revision"))?;
    let mut decisions = decisions_by_revision(&state, id).await?;
    Ok(Json(revision_out(stored, &mut decisions)?))
}

async fn decisions_by_revision(
    state: &AppState,
    id: Uuid,
) -> ApiResult<BTreeMap<i32, review_decision::Model>> {
    // The last decision on a revision is the one that stands.
    Ok(repo::decisions_of(&state.db, id)
        .await?
        .into_iter()
        .map(|d| (d.revision, d))
        .collect())
}

fn revision_out(
    r: crate::db::entity::audit_revision::Model,
    decisions: &mut BTreeMap<i32, review_decision::Model>,
) -> ApiResult<RevisionOut> {
    let answers = serde_json::from_str(&r.answers)
        .map_err(|e| anyhow::anyhow!("revision {} of {}: {e}", r.revision, r.audit_id))?;
    let photos = serde_json::from_str(&r.photos)
        .map_err(|e| anyhow::anyhow!("revision {} of {}: {e}", r.revision, r.audit_id))?;
    Ok(RevisionOut {
        decision: decisions.remove(&r.revision).map(DecisionOut::from),
        audit_id: r.audit_id,
        revision: r.revision,
        submitted_at: r.submitted_at,
        submitted_by: r.submitted_by,
        answers,
        photos,
    })
}

/// Which revisions to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier revision.
    pub from: i32,
    /// The later revision; omit for the audit as it is now.
    pub to: Option<i32>,
}

/// What changed between two revisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffOut {
    pub from: i32,
    /// The later revision; `null` for the audit as it is now.
    pub to: Option<i32>,
    pub answers: AnswersDiff,
    pub photos: PhotosDiff,
}

/// The differences in answers and photos between two revisions, or between
/// a revision and the audit as it is now (a volunteer's fixes in progress).
#[utoipa::path(get, path = "/audits/{id}/diff", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path), DiffQuery),
    responses((status = 200, body = DiffOut),
              (status = 400, description = "`invalid-query`", body = Problem),
              (status = 404, description = "`not-found`: the audit or a revision", body = Problem)))]
async fn diff(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<DiffOut>> {
    let (audit, _) = visible(&state, &who, id).await?;
    let snapshot = |n: i32| {
        let state = state.clone();
        async move {
            let r = repo::revision(&state.db, id, n)
                .await?
                .ok_or_else(|| ApiError::not_found(&format!("revision {n}")))?;
            revision_out(r, &mut BTreeMap::new())
        }
    };
    let earlier = snapshot(q.from).await?;
    let (answers, photos) = match q.to {
        Some(n) => {
            let later = snapshot(n).await?;
            (later.answers, later.photos)
        }
        None => {
            let photos = photos::of_audit(&state.db, id)
                .await?
                .into_iter()
                .map(PhotoRef::from)
                .collect();
            (answers_of(&audit)?, photos)
        }
    };
    Ok(Json(DiffOut {
        from: q.from,
        to: q.to,
        answers: diff_answers(&earlier.answers, &answers),
        photos: diff_photos(&earlier.photos, &photos),
    }))
}

// ---------------------------------------------------------------- helpers

/// The audit, if `who` may review it: 404 when they may not see it, 403
/// when they see it but do not review.
async fn reviewable(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<row::Model> {
    let (audit, scope) = visible(state, who, id).await?;
    if rules::may_review(who, &scope) {
        Ok(audit)
    } else {
        Err(ApiError::forbidden(
            "only reviewers in the audit's scope and admins review audits",
        ))
    }
}

fn scope(audit: &row::Model) -> ApiResult<AuditScope> {
    audits::scope_of(audit).map_err(|e| anyhow::anyhow!(e).into())
}

/// The audit is submitted and not held by another reviewer.
fn ensure_workable(audit: &row::Model, who: &Principal) -> ApiResult<()> {
    let status = scope(audit)?.status;
    if status != AuditStatus::Submitted {
        return Err(invalid_transition(status));
    }
    match audit.claimed_by {
        Some(holder) if holder != who.user_id => Err(claimed_by_other(Some(holder))),
        _ => Ok(()),
    }
}

fn invalid_transition(current: AuditStatus) -> ApiError {
    ApiError::conflict(
        "invalid-transition",
        format!("the audit is {current}; only submitted audits are reviewed"),
    )
    .with("audit_status", current.as_str())
}

fn claimed_by_other(holder: Option<Uuid>) -> ApiError {
    ApiError::conflict(
        "audit-claimed",
        "another reviewer is working on this audit; ask them to release it",
    )
    .with("claimed_by", holder.map(|h| h.to_string()))
}

/// After a conditional write matched nothing: say why.
async fn explain_refusal(state: &AppState, who: &Principal, id: Uuid) -> ApiError {
    let audit = match audits::get(&state.db, id).await {
        Ok(Some(audit)) => audit,
        Ok(None) => return ApiError::not_found("audit"),
        Err(e) => return e.into(),
    };
    match ensure_workable(&audit, who) {
        Err(e) => e,
        Ok(()) => ApiError::conflict(
            "conflict",
            "the audit kept changing while the request ran; try again",
        ),
    }
}

/// Runs `f` over the audit's evaluation with the reviewers' verdicts applied.
pub(super) async fn evaluated<R>(
    state: &AppState,
    audit: &row::Model,
    f: impl FnOnce(&crate::checklist::Evaluation<'_>) -> R,
) -> ApiResult<R> {
    let catalog = super::audits::pinned_catalog(state, audit).await?;
    let answers = answer_set(audit)?;
    let overrides = repo::overrides(&state.db, audit.id).await?;
    let evaluation = evaluate(&catalog, Some(&audit.methodology_id), &answers, &overrides)
        .map_err(|e| anyhow::anyhow!("audit {} does not evaluate: {e}", audit.id))?;
    Ok(f(&evaluation))
}
