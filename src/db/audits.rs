//! Repository functions for audits. Every write bumps `version` with a
//! conditional update (`WHERE version = expected`), so of concurrent writers
//! with the same `If-Match` exactly one wins, and records a change for
//! `/sync` in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::audit_log::{Actor, Entry, Unsealed};
use super::batches::{
    self,
    answers::{self, Answers, Outcome},
};
use super::changes::NewChange;
use super::entity::{audit, audit_revision, photo};
use super::idempotency::Completion;
use super::scope::{ScopeColumns, visible_to};
use super::{DbError, Page, PageRequest, Write, now};
use crate::audit::review::PhotoRef;
use crate::audit::{AuditScope, AuditStatus};
use crate::auth::Principal;

/// Fields of a new audit.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub id: Uuid,
    pub site_id: Uuid,
    pub institution_id: Uuid,
    pub region: String,
    pub sector: String,
    pub created_by: Uuid,
    pub organisation_id: Option<Uuid>,
    pub methodology_id: String,
    pub methodology_version: String,
    pub release_hash: String,
    pub fingerprint: String,
    pub started_at: Option<DateTime<Utc>>,
}

/// Result of an idempotent create.
#[derive(Debug)]
pub enum Created {
    /// A new audit.
    New(audit::Model),
    /// An audit with this id already existed (a retry, or a conflict: the
    /// caller compares fingerprints).
    Existing(audit::Model),
}

/// Creates an audit with its client-chosen id, or returns the existing one.
///
/// # Errors
/// Database failure; [`DbError::MissingReference`] for an unknown site.
pub async fn create(
    db: &DatabaseConnection,
    new: NewAudit,
    actor: &Actor,
) -> Result<Created, DbError> {
    let (owned, actor) = (db.clone(), actor.clone());
    super::on_writer(db, async move { create_here(&owned, new, &actor).await }).await
}

async fn create_here(
    db: &DatabaseConnection,
    new: NewAudit,
    actor: &Actor,
) -> Result<Created, DbError> {
    let ts = now();
    let model = audit::ActiveModel {
        id: Set(new.id),
        site_id: Set(new.site_id),
        institution_id: Set(new.institution_id),
        region_code: Set(new.region),
        sector: Set(new.sector),
        created_by: Set(new.created_by),
        organisation_id: Set(new.organisation_id),
        status: Set(AuditStatus::Draft.as_str().to_owned()),
        methodology_id: Set(new.methodology_id),
        methodology_version: Set(new.methodology_version),
        release_hash: Set(new.release_hash),
        answers: Set("{}".to_owned()),
        version: Set(1),
        create_fingerprint: Set(new.fingerprint),
        started_at: Set(new.started_at),
        submitted_at: Set(None),
        revision: Set(0),
        claimed_by: Set(None),
        claimed_at: Set(None),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let inserted = match audit::Entity::insert(model).exec_with_returning(txn).await {
        Ok(inserted) => inserted,
        Err(err) => {
            write.rollback().await.ok();
            return match DbError::from(err) {
                // A concurrent retry of the same PUT created it a moment ago.
                DbError::Conflict(_) => get(db, new.id)
                    .await?
                    .map(Created::Existing)
                    .ok_or_else(|| DbError::Conflict("audit id".to_owned())),
                other => Err(other),
            };
        }
    };
    let entry = Entry::new("audit.created", "audit", inserted.id)
        .audit_scope(&inserted)
        .states(None, Some(state_of(&inserted)))
        .detail(json!({"site_id": inserted.site_id}));
    record(
        txn,
        actor,
        entry,
        change_of("audit.created", &inserted, None),
    )
    .await?;
    write.commit().await?;
    Ok(Created::New(inserted))
}

/// One audit by id, whoever may see it.
///
/// # Errors
/// Database failure.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Option<audit::Model>, DbError> {
    if let Some(embedded) = super::embedded::of(db) {
        return embedded.audit(id);
    }
    Ok(audit::Entity::find_by_id(id).one(db).await?)
}

/// Filters of the audit list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub status: Option<AuditStatus>,
    pub site: Option<Uuid>,
    pub updated_since: Option<DateTime<Utc>>,
}

/// Scope columns of the audits table, also used by the review queue.
pub(super) const COLUMNS: ScopeColumns = ScopeColumns {
    owner: "created_by",
    organisation: "organisation_id",
    region: "region_code",
    sector: "sector",
    status: "status",
};

/// A page of the audits `who` may see.
///
/// # Errors
/// Database failure.
pub async fn list(
    db: &DatabaseConnection,
    who: &Principal,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<audit::Model>, DbError> {
    let mut query = audit::Entity::find()
        .filter(visible_to(who, &COLUMNS))
        .order_by_asc(audit::Column::Id);
    if let Some(status) = filter.status {
        query = query.filter(audit::Column::Status.eq(status.as_str()));
    }
    if let Some(site) = filter.site {
        query = query.filter(audit::Column::SiteId.eq(site));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(audit::Column::UpdatedAt.gte(since));
    }
    if let Some(after) = page.after {
        query = query.filter(audit::Column::Id.gt(after));
    }
    let rows = query.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.limit, |a| a.id))
}

/// Replaces the answers if the audit is still as `before` shows it (same
/// version) and editable. `None` when another write got there first or the
/// status no longer allows edits; the caller re-reads to say which.
///
/// # Errors
/// Database failure.
pub async fn update_answers(
    db: &DatabaseConnection,
    before: &audit::Model,
    answers: &BTreeMap<String, Json>,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    if !is_editable(before) {
        return Ok(None);
    }
    if let Some(write) = prepare_answers(db, before, answers, actor)? {
        return Ok(write_answers(db, before, write, None)
            .await?
            .map(|(after, _)| after));
    }
    let text = answers_text(answers)?;
    let detail = answers_detail(answers);
    let (owned, before, actor) = (db.clone(), before.clone(), actor.clone());
    super::on_writer(db, async move {
        let Some((write, updated)) =
            conditional_update(&owned, &before, &AuditStatus::EDITABLE, |update| {
                update.col_expr(audit::Column::Answers, Expr::value(text))
            })
            .await?
        else {
            return Ok(None);
        };
        finish(
            write,
            &actor,
            Step::new("audit.updated", "audit.answers_updated", &before, &updated).detail(detail),
        )
        .await?;
        Ok(Some(updated))
    })
    .await
}

/// An answer write built before it is made (see [`prepare_answers`]).
pub struct AnswerWrite {
    after: audit::Model,
    row: super::outbox::Row,
}

impl AnswerWrite {
    /// The audit as the write leaves it, if it is made.
    #[must_use]
    pub fn audit(&self) -> &audit::Model {
        &self.after
    }
}

/// The write of `answers` over the audit `before`, with the audit it leaves
/// and its log entry and change built before it is made, on the databases
/// where [`write_answers`] makes it in one step: the embedded default and
/// PostgreSQL. `None` on other databases (use [`update_answers`]), and when
/// the status no longer allows edits.
///
/// That is exact because the write applies only to the row `before` shows
/// in every column the log and the change carry: the version (every edit
/// bumps it), the status, the revision and the claim (claims do not bump
/// the version); the rest changes only with a new version or never.
/// Building them first keeps the embedded database's writers' turn, which
/// every writer waits for, down to the statements themselves, and lets the
/// caller make the answer to the request before the write (see
/// [`write_answers`]).
///
/// # Errors
/// The log entry or the change does not serialise.
pub fn prepare_answers(
    db: &DatabaseConnection,
    before: &audit::Model,
    answers: &BTreeMap<String, Json>,
    actor: &Actor,
) -> Result<Option<AnswerWrite>, DbError> {
    let in_one_step =
        super::embedded::of(db).is_some() || db.get_database_backend() == DbBackend::Postgres;
    if !in_one_step || !is_editable(before) {
        return Ok(None);
    }
    let after = audit::Model {
        version: before.version + 1,
        updated_at: now(),
        answers: answers_text(answers)?,
        ..before.clone()
    };
    let (entry, change) = Step::new("audit.updated", "audit.answers_updated", before, &after)
        .detail(answers_detail(answers))
        .record(actor);
    let row = super::outbox::Row::new(Some(entry), Some(change.into()))?;
    Ok(Some(AnswerWrite { after, row }))
}

/// Makes `write` (from [`prepare_answers`] on `before`) if the audit is
/// still as `before` shows it, and with it, in the same transaction, stores
/// `done`: the response to the request's `Idempotency-Key`, so that a
/// retry finds either the answers and the response, or neither. The audit
/// as written if it wrote, and whether the response was stored (not when
/// the key was taken over or freed meanwhile; a warning is logged then).
///
/// # Errors
/// Database failure; nothing is written then.
pub async fn write_answers(
    db: &DatabaseConnection,
    before: &audit::Model,
    write: AnswerWrite,
    done: Option<Completion>,
) -> Result<Option<(audit::Model, bool)>, DbError> {
    let written = match super::embedded::of(db) {
        Some(embedded) => {
            embedded
                .update_answers(before, write.after, write.row, done.clone())
                .await?
        }
        None if db.get_database_backend() == DbBackend::Postgres => {
            let job = answers::Job {
                expected: before.into(),
                after: write.after,
                row: write.row,
                done: done.clone(),
            };
            match batches::make::<Answers>(db, job).await? {
                Outcome::Written(after, stored) => Some((after, stored)),
                Outcome::Stale => None,
                // Another transaction holds the audit: wait for it here.
                Outcome::Locked(job) => {
                    let write = AnswerWrite {
                        after: job.after,
                        row: job.row,
                    };
                    update_answers_in_one_statement(db, before, write, done.as_ref()).await?
                }
            }
        }
        None => update_answers_in_one_statement(db, before, write, done.as_ref()).await?,
    };
    if let (Some((_, false)), Some(done)) = (&written, &done) {
        done.warn_not_stored();
    }
    Ok(written)
}

/// The answers as stored.
/// The answers as stored.
///
/// # Errors
/// They do not serialise (a bug: a map of strings to JSON values always
/// does). The write fails then, rather than store something else.
fn answers_text(answers: &BTreeMap<String, Json>) -> Result<String, DbError> {
    serde_json::to_string(answers)
        .map_err(|e| DbError::Other(sea_orm::DbErr::Custom(format!("audit answers: {e}"))))
}

/// The log entry's detail of an answer write: the items it sets.
fn answers_detail(answers: &BTreeMap<String, Json>) -> Json {
    let changed: Vec<&String> = answers.keys().collect();
    json!({ "answers": changed })
}

/// [`write_answers`] on PostgreSQL: the update, its outbox row (see
/// [`prepare_answers`]) and the stored response in one statement, outside
/// any transaction, so a write is one round trip; `after` if the audit was
/// still as `before` shows it, and then the sealer is woken.
///
/// The statement returns only the id, not the row with its answers: the row
/// it wrote is `after`. It also checks the time of the last write, which
/// every write sets (microseconds, exact on PostgreSQL): a version number
/// made twice, by a failover that lost commits or a restore, cannot pass
/// for the one `before` was read at (see [`super::recent`]).
async fn update_answers_in_one_statement(
    db: &DatabaseConnection,
    before: &audit::Model,
    write: AnswerWrite,
    done: Option<&Completion>,
) -> Result<Option<(audit::Model, bool)>, DbError> {
    macro_rules! update {
        () => {
            "WITH updated AS (\
               UPDATE audits SET version = version + 1, updated_at = $1, answers = $2 \
               WHERE id = $3 AND version = $4 AND status = $5 AND revision = $6 \
                 AND claimed_by IS NOT DISTINCT FROM $7 AND updated_at = $11 \
               RETURNING id), \
             recorded AS (\
               INSERT INTO outbox (entry, change, created_at) SELECT $8, $9, $10 FROM updated)"
        };
    }
    let AnswerWrite { after, row } = write;
    let mut values: Vec<sea_orm::Value> = vec![
        after.updated_at.into(),
        after.answers.clone().into(),
        before.id.into(),
        before.version.into(),
        before.status.clone().into(),
        before.revision.into(),
        before.claimed_by.into(),
        row.entry.into(),
        row.change.into(),
        row.created_at.into(),
        before.updated_at.into(),
    ];
    let sql = match done {
        None => concat!(update!(), " SELECT id, false AS stored FROM updated"),
        Some(done) => {
            values.extend([
                done.claim.user.into(),
                done.claim.key.clone().into(),
                done.claim.request_hash.clone().into(),
                i32::from(done.status).into(),
                done.headers.clone().into(),
                done.deflated().to_vec().into(),
                done.claim.claimed_at.into(),
            ]);
            // The key's row is updated only if the audit was: `FROM updated`.
            concat!(
                update!(),
                ", stored AS (\
                   UPDATE idempotency_keys SET status_code = $15, response_headers = $16, \
                     response_deflated = $17, updated_at = $1 FROM updated \
                   WHERE user_id = $12 AND key = $13 AND request_hash = $14 \
                     AND created_at = $18 AND status_code IS NULL \
                   RETURNING 1) \
                 SELECT id, EXISTS (SELECT 1 FROM stored) AS stored FROM updated"
            )
        }
    };
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let Some(result) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    super::outbox::written();
    let stored: bool = result.try_get("", "stored")?;
    Ok(Some((after, stored)))
}

/// Submits the audit if it is still as `before` shows it and editable: it
/// becomes `submitted`, its revision number goes up by one and a snapshot
/// of its answers and photos is kept as that revision. `None` when another
/// write got there first.
///
/// # Errors
/// Database failure.
pub async fn submit(
    db: &DatabaseConnection,
    before: &audit::Model,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    let (owned, before, actor) = (db.clone(), before.clone(), actor.clone());
    super::on_writer(
        db,
        async move { submit_here(&owned, &before, &actor).await },
    )
    .await
}

async fn submit_here(
    db: &DatabaseConnection,
    before: &audit::Model,
    actor: &Actor,
) -> Result<Option<audit::Model>, DbError> {
    let at = now();
    let Some((write, updated)) = conditional_update(db, before, &AuditStatus::EDITABLE, |update| {
        update
            .col_expr(
                audit::Column::Status,
                Expr::value(AuditStatus::Submitted.as_str()),
            )
            .col_expr(audit::Column::SubmittedAt, Expr::value(at))
            .col_expr(
                audit::Column::Revision,
                Expr::col(audit::Column::Revision).add(1),
            )
    })
    .await?
    else {
        return Ok(None);
    };
    let txn = &*write;
    let photos: Vec<PhotoRef> = photo::Entity::find()
        .filter(photo::Column::AuditId.eq(updated.id))
        .order_by_asc(photo::Column::CreatedAt)
        .order_by_asc(photo::Column::Id)
        .all(txn)
        .await?
        .into_iter()
        .map(PhotoRef::from)
        .collect();
    audit_revision::Entity::insert(audit_revision::ActiveModel {
        audit_id: Set(updated.id),
        revision: Set(updated.revision),
        answers: Set(updated.answers.clone()),
        photos: Set(serde_json::to_string(&photos).unwrap_or_else(|_| "[]".to_owned())),
        submitted_by: Set(actor.user_id.unwrap_or(updated.created_by)),
        submitted_at: Set(at),
    })
    .exec_without_returning(txn)
    .await?;
    finish(
        write,
        actor,
        Step::new("audit.status_changed", "audit.submitted", before, &updated)
            .detail(json!({"revision": updated.revision, "photos": photos.len()})),
    )
    .await?;
    Ok(Some(updated))
}

/// Whether the stored audit's status allows the volunteer's edits.
fn is_editable(audit: &audit::Model) -> bool {
    audit
        .status
        .parse::<AuditStatus>()
        .is_ok_and(AuditStatus::is_editable)
}

/// Bumps the version of the audit `before` describes and applies `set`, if
/// the audit is still at that version and in one of `from`. On success the
/// transaction stays open for the caller's further writes and [`finish`].
pub(super) async fn conditional_update(
    db: &DatabaseConnection,
    before: &audit::Model,
    from: &[AuditStatus],
    set: impl FnOnce(sea_orm::UpdateMany<audit::Entity>) -> sea_orm::UpdateMany<audit::Entity>,
) -> Result<Option<(Write, audit::Model)>, DbError> {
    let write = super::begin_write(db).await?;
    // The update comes first so SQLite takes its write lock at once instead
    // of upgrading a read lock (which can fail under contention); it returns
    // the row, which saves a read.
    let update = audit::Entity::update_many()
        .col_expr(
            audit::Column::Version,
            Expr::col(audit::Column::Version).add(1),
        )
        .col_expr(audit::Column::UpdatedAt, Expr::value(now()))
        .filter(audit::Column::Id.eq(before.id))
        .filter(audit::Column::Version.eq(before.version))
        .filter(audit::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    let mut rows = set(update).exec_with_returning(&*write).await?;
    match (rows.pop(), rows.is_empty()) {
        (Some(updated), true) => Ok(Some((write, updated))),
        _ => {
            write.rollback().await?;
            Ok(None)
        }
    }
}

/// One recorded step in an audit's life: the sync change and the log entry
/// written with it.
pub(super) struct Step<'a> {
    change: &'static str,
    action: &'static str,
    before: Option<&'a audit::Model>,
    after: &'a audit::Model,
    /// Extra members of the change's payload.
    payload: Option<Json>,
    detail: Json,
}

impl<'a> Step<'a> {
    pub(super) fn new(
        change: &'static str,
        action: &'static str,
        before: &'a audit::Model,
        after: &'a audit::Model,
    ) -> Self {
        Self {
            change,
            action,
            before: Some(before),
            after,
            payload: None,
            detail: json!({}),
        }
    }

    pub(super) fn detail(mut self, detail: Json) -> Self {
        self.detail = detail;
        self
    }

    pub(super) fn payload(mut self, extra: Json) -> Self {
        self.payload = Some(extra);
        self
    }
}

/// Records the log entry and the change for `/sync` (one outbox row), then
/// commits.
pub(super) async fn finish(write: Write, actor: &Actor, step: Step<'_>) -> Result<(), DbError> {
    let (entry, change) = step.record(actor);
    super::outbox::push(&*write, Some(entry), Some(change.into())).await?;
    write.commit().await?;
    Ok(())
}

impl Step<'_> {
    /// The log entry and the change of this step.
    pub(super) fn record(self, actor: &Actor) -> (Unsealed, NewChange) {
        let mut detail = self.detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("status".to_owned(), json!(self.after.status));
            map.insert("version".to_owned(), json!(self.after.version));
        }
        let entry = Entry::new(self.action, "audit", self.after.id)
            .audit_scope(self.after)
            .states(self.before.map(state_of), Some(state_of(self.after)))
            .detail(detail);
        (
            Unsealed::new(actor, entry),
            change_of(self.change, self.after, self.payload),
        )
    }
}

/// What the log digests of an audit's state (see [`super::audit_log::digest`]).
#[must_use]
pub fn state_of(audit: &audit::Model) -> AuditState<'_> {
    AuditState {
        answers: &audit.answers,
        claimed_by: audit.claimed_by,
        id: audit.id,
        methodology: (&audit.methodology_id, &audit.methodology_version),
        release: &audit.release_hash,
        revision: audit.revision,
        site_id: audit.site_id,
        status: &audit.status,
        version: audit.version,
    }
}

/// An audit's state as the log digests it. The fields are in the order of
/// their names, as the keys of the JSON object the digests have always
/// been computed over.
#[derive(Debug, Serialize)]
pub struct AuditState<'a> {
    answers: &'a str,
    claimed_by: Option<Uuid>,
    id: Uuid,
    methodology: (&'a str, &'a str),
    release: &'a str,
    revision: i32,
    site_id: Uuid,
    status: &'a str,
    version: i64,
}

impl super::audit_log::sealed::Sealed for AuditState<'_> {}
impl super::audit_log::Digestible for AuditState<'_> {}

/// Writes an audit action's log entry and its change in one outbox row.
async fn record(
    txn: &DatabaseTransaction,
    actor: &Actor,
    entry: Entry,
    change: NewChange,
) -> Result<(), DbError> {
    super::outbox::push(txn, Some(Unsealed::new(actor, entry)), Some(change.into())).await
}

/// The `/sync` change of an action on `audit`.
fn change_of(kind: &'static str, audit: &audit::Model, extra: Option<Json>) -> NewChange {
    let mut payload = json!({
        "audit_id": audit.id,
        "site_id": audit.site_id,
        "status": audit.status,
        "version": audit.version,
        "revision": audit.revision,
        "updated_at": audit.updated_at,
    });
    if let (Some(map), Some(Json::Object(extra))) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    NewChange {
        kind,
        audit_id: Some(audit.id),
        owner_id: Some(audit.created_by),
        organisation_id: audit.organisation_id,
        region: Some(audit.region_code.clone()),
        sector: Some(audit.sector.clone()),
        audit_status: Some(audit.status.clone()),
        payload,
    }
}

/// The scope attributes of a stored audit.
///
/// # Errors
/// A stored value no longer parses (a corrupted row).
pub fn scope_of(audit: &audit::Model) -> Result<AuditScope, String> {
    Ok(AuditScope {
        created_by: audit.created_by,
        organisation_id: audit.organisation_id,
        region: audit
            .region_code
            .parse()
            .map_err(|e| format!("audit {}: {e}", audit.id))?,
        sector: audit
            .sector
            .parse()
            .map_err(|e| format!("audit {}: {e}", audit.id))?,
        status: audit
            .status
            .parse()
            .map_err(|e| format!("audit {}: {e}", audit.id))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::audit_log::digest;

    fn audit(claimed_by: Option<Uuid>, answers: &str) -> audit::Model {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap_or_default();
        audit::Model {
            id: Uuid::from_u128(1),
            site_id: Uuid::from_u128(2),
            institution_id: Uuid::from_u128(3),
            region_code: "48".to_owned(),
            sector: "education".to_owned(),
            created_by: Uuid::from_u128(4),
            organisation_id: None,
            status: "submitted".to_owned(),
            methodology_id: "nok-344n".to_owned(),
            methodology_version: "1.2.0".to_owned(),
            release_hash: "ab".repeat(32),
            answers: answers.to_owned(),
            version: 17,
            create_fingerprint: String::new(),
            started_at: None,
            submitted_at: Some(at),
            revision: 2,
            claimed_by,
            claimed_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn an_audits_state_digests_as_it_always_has() {
        let answers =
            r#"{"entrance.ramp_note":"«нет» \"пандуса\"\n\\","territory.parking_total":3}"#;
        // The digests as the log keeps them, computed apart from serde_json.
        let kept = [
            "336adbecf22391bb0a3f57527960b8eb820ce41b6f4fb0a9f1c1ce5e632a36b6",
            "499e69b66bd9f7ab9a54ebf449ed15d5d35373b777c8347b3aaaccc7b14f66e1",
        ];
        let audits = [audit(None, "{}"), audit(Some(Uuid::from_u128(9)), answers)];
        for (audit, kept) in audits.iter().zip(kept) {
            // The object the log's digests were computed over so far.
            let before = json!({
                "id": audit.id,
                "site_id": audit.site_id,
                "status": audit.status,
                "version": audit.version,
                "revision": audit.revision,
                "answers": audit.answers,
                "methodology": [audit.methodology_id, audit.methodology_version],
                "release": audit.release_hash,
                "claimed_by": audit.claimed_by,
            });
            assert_eq!(digest(&state_of(audit)), digest(&before));
            assert_eq!(digest(&state_of(audit)), kept);
        }
    }
}
