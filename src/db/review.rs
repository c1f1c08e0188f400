//! Repository functions for ministry review: the queue, claims, per-rule
//! verdicts, decisions and the revisions kept at every submission.
//!
//! Every write that changes what an audit scores or where it stands goes
//! through `audits::conditional_update`, so it bumps the version, lands in
//! `/sync` and in the audit log in the same transaction. Claims are
//! reviewers' bookkeeping: logged, but they leave the version alone.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::audit_log::{self, Actor, Entry};
use super::audits::{Step, conditional_update, finish, state_of};
use super::entity::{audit, audit_revision, photo, review_decision, review_verdict};
use super::scope::visible_to;
use super::{DbError, now};
use crate::audit::AuditStatus;
use crate::audit::review::{Decision, VerdictKind};
use crate::auth::Principal;
use crate::checklist::{Override, Overrides};

/// Filters of the review queue.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub institution: Option<Uuid>,
    pub site: Option<Uuid>,
    pub sector: Option<String>,
    /// Only audits with at least one photo carrying this plausibility flag.
    pub flag: Option<String>,
    /// Keyset: entries after this submission time and id.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// Submitted audits `who` may review, oldest submission first, at most
/// `limit` plus one.
///
/// # Errors
/// Database failure.
pub async fn queue(
    db: &DatabaseConnection,
    who: &Principal,
    filter: &QueueFilter,
    limit: u64,
) -> Result<Vec<audit::Model>, DbError> {
    let mut query = audit::Entity::find()
        .filter(visible_to(who, &super::audits::COLUMNS))
        .filter(audit::Column::Status.eq(AuditStatus::Submitted.as_str()))
        .order_by_asc(audit::Column::SubmittedAt)
        .order_by_asc(audit::Column::Id);
    if let Some(institution) = filter.institution {
        query = query.filter(audit::Column::InstitutionId.eq(institution));
    }
    if let Some(site) = filter.site {
        query = query.filter(audit::Column::SiteId.eq(site));
    }
    if let Some(sector) = &filter.sector {
        query = query.filter(audit::Column::Sector.eq(sector.as_str()));
    }
    if let Some(flag) = &filter.flag {
        let pattern = format!("%\"code\":{}%", Json::String(flag.clone()));
        query = query.filter(
            audit::Column::Id.in_subquery(
                Query::select()
                    .column(photo::Column::AuditId)
                    .from(photo::Entity)
                    .and_where(photo::Column::Flags.like(pattern))
                    .to_owned(),
            ),
        );
    }
    if let Some((at, id)) = filter.after {
        query = query.filter(
            Condition::any().add(audit::Column::SubmittedAt.gt(at)).add(
                Condition::all()
                    .add(audit::Column::SubmittedAt.eq(at))
                    .add(audit::Column::Id.gt(id)),
            ),
        );
    }
    Ok(query.limit(limit + 1).all(db).await?)
}

/// Claims a submitted audit for `actor` unless another reviewer holds it.
/// Claiming an audit one already holds succeeds again. `None` when the
/// audit is not submitted or another reviewer holds it; the caller re-reads
/// it to say which.
///
/// # Errors
/// Database failure.
pub async fn claim(
    db: &DatabaseConnection,
    audit_id: Uuid,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    let reviewer = actor.user_id.unwrap_or_default();
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let updated = audit::Entity::update_many()
        .col_expr(audit::Column::ClaimedBy, Expr::value(reviewer))
        .col_expr(audit::Column::ClaimedAt, claimed_since())
        .filter(audit::Column::Id.eq(audit_id))
        .filter(audit::Column::Status.eq(AuditStatus::Submitted.as_str()))
        .filter(free_or_held_by(reviewer))
        .exec(txn)
        .await?;
    claim_step(
        write,
        audit_id,
        actor,
        updated.rows_affected,
        "review.claimed",
    )
    .await
}

/// Gives up the claim on an audit: one's own, or (`any`, for admins)
/// whoever holds it. `None` when there was no such claim.
///
/// # Errors
/// Database failure.
pub async fn release(
    db: &DatabaseConnection,
    audit_id: Uuid,
    actor: &Actor,
    any: bool,
) -> Result<Option<audit::Model>, DbError> {
    let reviewer = actor.user_id.unwrap_or_default();
    let holder = if any {
        audit::Column::ClaimedBy.is_not_null()
    } else {
        audit::Column::ClaimedBy.eq(reviewer)
    };
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let updated = audit::Entity::update_many()
        .col_expr(audit::Column::ClaimedBy, Expr::value(Option::<Uuid>::None))
        .col_expr(
            audit::Column::ClaimedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(audit::Column::Id.eq(audit_id))
        .filter(holder)
        .exec(txn)
        .await?;
    claim_step(
        write,
        audit_id,
        actor,
        updated.rows_affected,
        "review.released",
    )
    .await
}

async fn claim_step(
    write: super::Write,
    audit_id: Uuid,
    actor: &Actor,
    rows: u64,
    action: &'static str,
) -> Result<Option<audit::Model>, DbError> {
    if rows != 1 {
        write.rollback().await?;
        return Ok(None);
    }
    let txn = &*write;
    let now = audit::Entity::find_by_id(audit_id)
        .one(txn)
        .await?
        .ok_or_else(|| DbError::Conflict("audit vanished during claim".to_owned()))?;
    audit_log::append(
        txn,
        actor,
        Entry::new(action, "audit", audit_id)
            .scope(&now.region_code, &now.sector)
            .states(None, Some(state_of(&now)))
            .detail(json!({"claimed_by": now.claimed_by})),
    )
    .await?;
    write.commit().await?;
    Ok(Some(now))
}

/// Keeps the time of an existing claim, or starts one now.
fn claimed_since() -> Expr {
    Func::coalesce([Expr::col(audit::Column::ClaimedAt), Expr::value(now())]).into()
}

fn free_or_held_by(reviewer: Uuid) -> Condition {
    Condition::any()
        .add(audit::Column::ClaimedBy.is_null())
        .add(audit::Column::ClaimedBy.eq(reviewer))
}

/// A reviewer's verdict on one rule.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    /// `checklist.rule`.
    pub rule: String,
    pub kind: VerdictKind,
    /// `pass`, `fail`, `not_applicable`.
    pub verdict: String,
    /// The engine's outcome when the reviewer decided.
    pub engine_outcome: String,
    pub comment: String,
}

/// Records (or replaces) a verdict on a submitted audit still as `before`
/// shows it, claiming the audit for the reviewer if nobody holds it.
/// `None` when the audit moved on or another reviewer holds it.
///
/// # Errors
/// Database failure.
pub async fn set_verdict(
    db: &DatabaseConnection,
    before: &audit::Model,
    verdict: NewVerdict,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    let reviewer = actor.user_id.unwrap_or_default();
    let Some((write, updated)) = conditional_update(db, before, &[AuditStatus::Submitted], |u| {
        claim_columns(u, reviewer)
    })
    .await?
    else {
        return Ok(None);
    };
    let txn = &*write;
    let at = now();
    review_verdict::Entity::insert(review_verdict::ActiveModel {
        audit_id: Set(before.id),
        rule_key: Set(verdict.rule.clone()),
        kind: Set(verdict.kind.as_str().to_owned()),
        verdict: Set(verdict.verdict.clone()),
        engine_outcome: Set(verdict.engine_outcome.clone()),
        comment: Set(verdict.comment.clone()),
        reviewer_id: Set(reviewer),
        revision: Set(updated.revision),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .on_conflict(
        OnConflict::columns([
            review_verdict::Column::AuditId,
            review_verdict::Column::RuleKey,
        ])
        .update_columns([
            review_verdict::Column::Kind,
            review_verdict::Column::Verdict,
            review_verdict::Column::EngineOutcome,
            review_verdict::Column::Comment,
            review_verdict::Column::ReviewerId,
            review_verdict::Column::Revision,
            review_verdict::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    finish(
        write,
        actor,
        Step::new("audit.updated", "review.verdict_set", before, &updated).detail(json!({
            "rule": verdict.rule,
            "kind": verdict.kind,
            "verdict": verdict.verdict,
            "engine_outcome": verdict.engine_outcome,
            "comment": verdict.comment,
        })),
    )
    .await?;
    Ok(Some(updated))
}

/// What became of a verdict withdrawal.
#[derive(Debug)]
pub enum Withdrawn {
    Done(Box<audit::Model>),
    /// There was no verdict on this rule.
    NoVerdict,
    /// The audit moved on or another reviewer holds it.
    Refused,
}

/// Withdraws the verdict on `rule`: the engine's outcome counts again.
///
/// # Errors
/// Database failure.
pub async fn withdraw_verdict(
    db: &DatabaseConnection,
    before: &audit::Model,
    rule: &str,
    actor: &Actor,
) -> Result<Withdrawn, DbError> {
    let reviewer = actor.user_id.unwrap_or_default();
    let Some((write, updated)) = conditional_update(db, before, &[AuditStatus::Submitted], |u| {
        claim_columns(u, reviewer)
    })
    .await?
    else {
        return Ok(Withdrawn::Refused);
    };
    let txn = &*write;
    let deleted = review_verdict::Entity::delete_many()
        .filter(review_verdict::Column::AuditId.eq(before.id))
        .filter(review_verdict::Column::RuleKey.eq(rule))
        .exec(txn)
        .await?;
    if deleted.rows_affected == 0 {
        write.rollback().await?;
        return Ok(Withdrawn::NoVerdict);
    }
    finish(
        write,
        actor,
        Step::new(
            "audit.updated",
            "review.verdict_withdrawn",
            before,
            &updated,
        )
        .detail(json!({"rule": rule})),
    )
    .await?;
    Ok(Withdrawn::Done(Box::new(updated)))
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub decision: Decision,
    pub comment: String,
    /// `[{rule | item, comment}]`.
    pub items: Json,
}

/// Decides on a submitted audit still as `before` shows it: the status
/// changes, the claim ends, the decision is kept with the revision it was
/// made on, and the volunteer's `/sync` receives it with the comments.
/// `None` when the audit moved on or another reviewer holds it.
///
/// # Errors
/// Database failure.
pub async fn decide(
    db: &DatabaseConnection,
    before: &audit::Model,
    decision: NewDecision,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    let reviewer = actor.user_id.unwrap_or_default();
    let to = decision.decision.outcome();
    let Some((write, updated)) = conditional_update(db, before, &[AuditStatus::Submitted], |u| {
        u.col_expr(audit::Column::Status, Expr::value(to.as_str()))
            .col_expr(audit::Column::ClaimedBy, Expr::value(Option::<Uuid>::None))
            .col_expr(
                audit::Column::ClaimedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(free_or_held_by(reviewer))
    })
    .await?
    else {
        return Ok(None);
    };
    let txn = &*write;
    let at = now();
    review_decision::Entity::insert(review_decision::ActiveModel {
        id: Set(Uuid::now_v7()),
        audit_id: Set(before.id),
        revision: Set(updated.revision),
        decision: Set(decision.decision.as_str().to_owned()),
        comment: Set(decision.comment.clone()),
        items: Set(decision.items.to_string()),
        reviewer_id: Set(reviewer),
        created_at: Set(at),
    })
    .exec_without_returning(txn)
    .await?;
    let review = json!({
        "decision": decision.decision,
        "comment": decision.comment,
        "items": decision.items,
        "reviewer_id": reviewer,
        "revision": updated.revision,
        "decided_at": at,
    });
    finish(
        write,
        actor,
        Step::new("audit.status_changed", "review.decided", before, &updated)
            .payload(json!({ "review": review }))
            .detail(review),
    )
    .await?;
    Ok(Some(updated))
}

fn claim_columns(
    update: sea_orm::UpdateMany<audit::Entity>,
    reviewer: Uuid,
) -> sea_orm::UpdateMany<audit::Entity> {
    update
        .col_expr(audit::Column::ClaimedBy, Expr::value(reviewer))
        .col_expr(audit::Column::ClaimedAt, claimed_since())
        .filter(free_or_held_by(reviewer))
}

/// Verdicts on an audit's rules.
///
/// # Errors
/// Database failure.
pub async fn verdicts_of(
    db: &DatabaseConnection,
    audit_id: Uuid,
) -> Result<Vec<review_verdict::Model>, DbError> {
    Ok(review_verdict::Entity::find()
        .filter(review_verdict::Column::AuditId.eq(audit_id))
        .order_by_asc(review_verdict::Column::RuleKey)
        .all(db)
        .await?)
}

/// The reviewers' overrides of an audit, as the engine applies them.
///
/// # Errors
/// Database failure.
pub async fn overrides(db: &DatabaseConnection, audit_id: Uuid) -> Result<Overrides, DbError> {
    Ok(overrides_of(&verdicts_of(db, audit_id).await?))
}

/// The reviewers' overrides of many audits at once, by audit (audits without
/// verdicts are left out).
///
/// # Errors
/// Database failure.
pub async fn overrides_of_audits(
    db: &DatabaseConnection,
    audits: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Overrides>, DbError> {
    let mut by_audit: std::collections::HashMap<Uuid, Vec<review_verdict::Model>> =
        std::collections::HashMap::new();
    for chunk in audits.chunks(500) {
        for v in review_verdict::Entity::find()
            .filter(review_verdict::Column::AuditId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            by_audit.entry(v.audit_id).or_default().push(v);
        }
    }
    Ok(by_audit
        .into_iter()
        .map(|(audit, verdicts)| (audit, overrides_of(&verdicts)))
        .collect())
}

/// The overrides among stored verdicts (confirmations leave the engine's outcome).
#[must_use]
pub fn overrides_of(verdicts: &[review_verdict::Model]) -> Overrides {
    verdicts
        .iter()
        .filter(|v| v.kind == VerdictKind::Override.as_str())
        .filter_map(|v| {
            let verdict = serde_json::from_value(Json::String(v.verdict.clone())).ok()?;
            Some((
                v.rule_key.clone(),
                Override {
                    verdict,
                    comment: v.comment.clone(),
                },
            ))
        })
        .collect()
}

/// Decisions on an audit, oldest first.
///
/// # Errors
/// Database failure.
pub async fn decisions_of(
    db: &DatabaseConnection,
    audit_id: Uuid,
) -> Result<Vec<review_decision::Model>, DbError> {
    Ok(review_decision::Entity::find()
        .filter(review_decision::Column::AuditId.eq(audit_id))
        .order_by_asc(review_decision::Column::CreatedAt)
        .order_by_asc(review_decision::Column::Id)
        .all(db)
        .await?)
}

/// Every submitted revision of an audit, first first.
///
/// # Errors
/// Database failure.
pub async fn revisions_of(
    db: &DatabaseConnection,
    audit_id: Uuid,
) -> Result<Vec<audit_revision::Model>, DbError> {
    Ok(audit_revision::Entity::find()
        .filter(audit_revision::Column::AuditId.eq(audit_id))
        .order_by_asc(audit_revision::Column::Revision)
        .all(db)
        .await?)
}

/// One revision.
///
/// # Errors
/// Database failure.
pub async fn revision(
    db: &DatabaseConnection,
    audit_id: Uuid,
    revision: i32,
) -> Result<Option<audit_revision::Model>, DbError> {
    Ok(audit_revision::Entity::find_by_id((audit_id, revision))
        .one(db)
        .await?)
}

/// Photo flags of the given audits: `(audit, flags JSON)` per photo.
///
/// # Errors
/// Database failure.
pub async fn photo_flags(
    db: &DatabaseConnection,
    audits: &[Uuid],
) -> Result<Vec<(Uuid, String)>, DbError> {
    Ok(photo::Entity::find()
        .select_only()
        .column(photo::Column::AuditId)
        .column(photo::Column::Flags)
        .filter(photo::Column::AuditId.is_in(audits.iter().copied()))
        .into_tuple()
        .all(db)
        .await?)
}
