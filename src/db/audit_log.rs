//! The tamper-evident history: an append-only log of every mutating action,
//! each entry carrying the SHA-256 of the one before it.
//!
//! An action writes its entry into the outbox inside its own transaction
//! ([`append`]): the action and its entry land together or not at all. The
//! sealer (see [`super::outbox`]) then numbers the entries 1, 2, 3 … in
//! commit order and chains each to the one before. A single head row
//! (`audit_log_head`) remembers the last entry, so cutting entries off the
//! end is as visible as changing one in the middle, and sealing passes
//! follow each other under the order lock, so the chain never forks, even
//! with several replicas on one database.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::entity::{audit_log, audit_log_head};
use super::{DbError, now};
use crate::auth::Principal;
use crate::domain::Role;

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(super) const HEAD_ID: i32 = 1;

/// Who acts, and the request that carries the action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub role: Option<Role>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The authenticated caller of a request.
    #[must_use]
    pub fn of(principal: &Principal, request_id: Option<String>) -> Self {
        Self {
            user_id: Some(principal.user_id),
            role: Some(principal.role),
            request_id,
        }
    }

    /// The service itself (command line, background work).
    #[must_use]
    pub fn system() -> Self {
        Self::default()
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What happened: `audit.submitted`, `user.login`, `review.decided` …
    pub action: &'static str,
    /// What it happened to: `audit`, `institution`, `user` …
    pub target_type: &'static str,
    pub target_id: String,
    /// Region and sector of the target, when it has them (reviewers see
    /// the entries of their scope).
    pub region: Option<String>,
    pub sector: Option<String>,
    /// Digests of the target's state before and after (see [`digest`]):
    /// only they are kept.
    pub before: Option<String>,
    pub after: Option<String>,
    /// A few readable facts (new status, comment …), kept as they are.
    pub detail: Json,
}

impl Entry {
    /// An entry with no state digests, scope or detail yet.
    #[must_use]
    pub fn new(action: &'static str, target_type: &'static str, target_id: impl ToString) -> Self {
        Self {
            action,
            target_type,
            target_id: target_id.to_string(),
            region: None,
            sector: None,
            before: None,
            after: None,
            detail: json!({}),
        }
    }

    /// Sets the target's scope.
    #[must_use]
    pub fn scope(mut self, region: &str, sector: &str) -> Self {
        self.region = Some(region.to_owned());
        self.sector = Some(sector.to_owned());
        self
    }

    /// Sets an audit's scope, unless the audit is a draft: reviewers do not
    /// see drafts, so they do not read their history either (admins do).
    #[must_use]
    pub fn audit_scope(self, audit: &crate::db::entity::audit::Model) -> Self {
        if audit.status == crate::audit::AuditStatus::Draft.as_str() {
            self
        } else {
            self.scope(&audit.region_code, &audit.sector)
        }
    }

    /// Sets the states whose digests are kept.
    #[must_use]
    pub fn states<T: Digestible>(mut self, before: Option<T>, after: Option<T>) -> Self {
        self.before = before.as_ref().map(digest);
        self.after = after.as_ref().map(digest);
        self
    }

    /// Sets the readable detail.
    #[must_use]
    pub fn detail(mut self, detail: Json) -> Self {
        self.detail = detail;
        self
    }
}

/// Values whose JSON cannot fail to render (serde_json fails only on maps
/// with non-string keys and on custom errors), so they can be digested:
/// JSON values, an audit's state and a stored entry's fields. Sealed: the
/// list is this crate's.
pub trait Digestible: Serialize + sealed::Sealed {}

pub(crate) mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for Json {}
impl Digestible for Json {}

/// Lowercase hex SHA-256 of a value's compact JSON.
///
/// The JSON is written into the hash as it is made, never whole in memory: the log digests
/// an audit's state, answers included, twice for every write. A struct gives the same digest
/// as a JSON object with the same fields only when its fields are in the order of their names,
/// as an object's keys are written.
#[must_use]
pub fn digest<T: Digestible + ?Sized>(value: &T) -> String {
    let mut hash = Hashing(Sha256::new());
    serde_json::to_writer(&mut hash, value)
        .unwrap_or_else(|e| unreachable!("a Digestible value renders as JSON: {e}"));
    hex::encode(hash.0.finalize())
}

/// Writes into a SHA-256 hash.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash of a stored entry: SHA-256 over every field, `prev_hash`
/// included, in a fixed order (a JSON array).
#[must_use]
pub fn entry_hash(e: &audit_log::Model) -> String {
    digest(&Fields(e))
}

/// A stored entry's fields as they are hashed.
struct Fields<'a>(&'a audit_log::Model);

impl sealed::Sealed for Fields<'_> {}
impl Digestible for Fields<'_> {}

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        (
            e.seq,
            Timestamp(e.at),
            e.actor_id,
            &e.actor_role,
            &e.action,
            &e.target_type,
            &e.target_id,
            &e.region_code,
            &e.sector,
            &e.before_digest,
            &e.after_digest,
            &e.detail,
            &e.request_id,
            &e.prev_hash,
        )
            .serialize(s)
    }
}

/// An entry's time as it is hashed: UTC with microseconds.
struct Timestamp(DateTime<Utc>);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.format(TIMESTAMP))
    }
}

const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Creates the head row if this database has none yet (run at start, after
/// migrations; idempotent and safe with replicas starting together).
///
/// # Errors
/// Database failure.
pub async fn ensure_head(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    audit_log_head::Entity::insert(audit_log_head::ActiveModel {
        id: Set(HEAD_ID),
        seq: Set(0),
        hash: Set(GENESIS.to_owned()),
    })
    .on_conflict(
        OnConflict::column(audit_log_head::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// An entry as its action wrote it, before it is numbered and chained.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Unsealed {
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_role: Option<String>,
    action: String,
    target_type: String,
    target_id: String,
    region_code: Option<String>,
    sector: Option<String>,
    before_digest: Option<String>,
    after_digest: Option<String>,
    detail: String,
    request_id: Option<String>,
}

impl Unsealed {
    /// The entry `actor` writes now; the states are digested here, so the
    /// outbox holds only what the log keeps.
    pub(super) fn new(actor: &Actor, entry: Entry) -> Self {
        Self {
            at: now(),
            actor_id: actor.user_id,
            actor_role: actor.role.map(|r| r.as_str().to_owned()),
            action: entry.action.to_owned(),
            target_type: entry.target_type.to_owned(),
            target_id: entry.target_id,
            region_code: entry.region,
            sector: entry.sector,
            before_digest: entry.before,
            after_digest: entry.after,
            detail: entry.detail.to_string(),
            request_id: actor.request_id.clone(),
        }
    }

    /// The stored entry numbered `seq`, chained to `prev_hash`.
    fn chain(self, seq: i64, prev_hash: String) -> audit_log::Model {
        let mut model = audit_log::Model {
            seq,
            at: self.at,
            actor_id: self.actor_id,
            actor_role: self.actor_role,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            region_code: self.region_code,
            sector: self.sector,
            before_digest: self.before_digest,
            after_digest: self.after_digest,
            detail: self.detail,
            request_id: self.request_id,
            prev_hash,
            hash: String::new(),
        };
        model.hash = entry_hash(&model);
        model
    }
}

/// Records an entry inside the caller's transaction `txn`; the sealer
/// numbers and chains it once `txn` has committed.
///
/// # Errors
/// Database failure.
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    entry: Entry,
) -> Result<(), DbError> {
    super::outbox::push(txn, Some(Unsealed::new(actor, entry)), None).await
}

/// Records an action that has no transaction of its own (a login, a
/// directory change already committed).
///
/// # Errors
/// Database failure.
pub async fn record(db: &DatabaseConnection, actor: &Actor, entry: Entry) -> Result<(), DbError> {
    let (owned, actor) = (db.clone(), actor.clone());
    super::on_writer(db, async move {
        let write = super::begin_write(&owned).await?;
        append(&*write, &actor, entry).await?;
        write.commit().await?;
        Ok(())
    })
    .await
}

/// Numbers `entries` after the head and chains them, in order (a sealing
/// pass, under the order lock).
///
/// # Errors
/// Database failure, or a missing head row (the schema was not set up by
/// this service).
pub(super) async fn seal<C: ConnectionTrait>(
    txn: &C,
    entries: Vec<Unsealed>,
) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = audit_log_head::Entity::find_by_id(HEAD_ID)
        .one(txn)
        .await?
        .ok_or_else(missing_head)?;
    let (sealed, seq, hash) = chain_after(head.seq, head.hash, entries);
    super::insert_rows::<_, audit_log::Entity, _, _>(txn, sealed).await?;
    audit_log_head::Entity::update_many()
        .col_expr(audit_log_head::Column::Seq, Expr::value(seq))
        .col_expr(audit_log_head::Column::Hash, Expr::value(hash))
        .filter(audit_log_head::Column::Id.eq(HEAD_ID))
        .exec(txn)
        .await?;
    Ok(())
}

/// The failure of a pass that finds no head row.
pub(super) fn missing_head() -> DbError {
    DbError::MissingReference(
        "the audit log has no head row; start the service once to create it".to_owned(),
    )
}

/// `entries` numbered and chained after the head `(seq, hash)`, and the
/// new head.
pub(super) fn chain_after(
    mut seq: i64,
    mut hash: String,
    entries: Vec<Unsealed>,
) -> (Vec<audit_log::Model>, i64, String) {
    let mut sealed = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let model = entry.chain(seq, std::mem::take(&mut hash));
        hash.clone_from(&model.hash);
        sealed.push(model);
    }
    (sealed, seq, hash)
}

/// Filters of the log listing.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// `target_id`, or `type:id`.
    pub target: Option<String>,
    pub actor: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries after this number.
    pub after: Option<i64>,
}

/// Entries `who` may read, oldest first, at most `limit` plus one (so the
/// caller can tell whether more exist). Everything committed before the
/// call is sealed first.
///
/// # Errors
/// Database failure.
pub async fn list(
    db: &DatabaseConnection,
    who: &Principal,
    filter: &LogFilter,
    limit: u64,
) -> Result<Vec<audit_log::Model>, DbError> {
    super::outbox::flush_for_reading(db).await;
    let mut query = audit_log::Entity::find().order_by_asc(audit_log::Column::Seq);
    if who.role != Role::Admin {
        // Reviewers read the history of what lies in their scope.
        let mut scope = Condition::all().add(audit_log::Column::RegionCode.is_not_null());
        if let Some(region) = &who.region {
            scope = scope.add(audit_log::Column::RegionCode.eq(region.as_str()));
        }
        if let Some(sector) = who.sector {
            scope = scope.add(audit_log::Column::Sector.eq(sector.as_str()));
        }
        query = query.filter(scope);
    }
    if let Some(target) = &filter.target {
        query = match target.split_once(':') {
            Some((kind, id)) => query
                .filter(audit_log::Column::TargetType.eq(kind))
                .filter(audit_log::Column::TargetId.eq(id)),
            None => query.filter(audit_log::Column::TargetId.eq(target.as_str())),
        };
    }
    if let Some(actor) = filter.actor {
        query = query.filter(audit_log::Column::ActorId.eq(actor));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::Column::At.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::Column::At.lt(until));
    }
    if let Some(after) = filter.after {
        query = query.filter(audit_log::Column::Seq.gt(after));
    }
    Ok(query.limit(limit + 1).all(db).await?)
}

/// Why the chain is broken at an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    /// The entry's content no longer matches its hash.
    Altered,
    /// The entry does not follow the one before it: an entry before it was
    /// removed, or entries were reordered.
    Unlinked,
    /// The entry with this number is missing.
    Missing,
    /// Entries at the end of the log were removed.
    Truncated,
}

/// The first broken entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BrokenEntry {
    /// The entry's number.
    pub seq: i64,
    pub breach: Breach,
    /// What was found, for people.
    pub message: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// True when every entry is intact and linked, and none is missing.
    pub intact: bool,
    /// Entries checked.
    pub entries: i64,
    /// Number and hash of the last entry as the head records them.
    pub head_seq: i64,
    pub head_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<BrokenEntry>,
    /// Entries not yet in the chain: waiting to be sealed (a moment, under
    /// load) or set aside because they could not be (see `dostup log
    /// requeue`).
    pub unsealed: super::outbox::Backlog,
}

/// Seals what has committed, then walks the whole chain in batches (memory
/// stays bounded) and reports the first broken entry.
///
/// # Errors
/// Database failure.
pub async fn verify(db: &DatabaseConnection) -> Result<Verification, DbError> {
    const BATCH: u64 = 1000;
    super::outbox::flush_for_reading(db).await;
    let head = audit_log_head::Entity::find_by_id(HEAD_ID)
        .one(db)
        .await?
        .unwrap_or(audit_log_head::Model {
            id: HEAD_ID,
            seq: 0,
            hash: GENESIS.to_owned(),
        });
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1i64;
    let mut checked = 0i64;
    let mut broken = None;
    'walk: loop {
        let batch = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.gte(expected))
            // Entries appended while the walk runs are for the next check.
            .filter(audit_log::Column::Seq.lte(head.seq))
            .order_by_asc(audit_log::Column::Seq)
            .limit(BATCH)
            .all(db)
            .await?;
        let done = (batch.len() as u64) < BATCH;
        for entry in batch {
            checked += 1;
            if entry.seq != expected {
                broken = Some(BrokenEntry {
                    seq: expected,
                    breach: Breach::Missing,
                    message: format!(
                        "entry {expected} is missing (the next one stored is {})",
                        entry.seq
                    ),
                });
                break 'walk;
            }
            if entry_hash(&entry) != entry.hash {
                broken = Some(BrokenEntry {
                    seq: entry.seq,
                    breach: Breach::Altered,
                    message: format!(
                        "entry {} ({} on {} {}) was changed after it was written",
                        entry.seq, entry.action, entry.target_type, entry.target_id
                    ),
                });
                break 'walk;
            }
            if entry.prev_hash != prev_hash {
                broken = Some(BrokenEntry {
                    seq: entry.seq,
                    breach: Breach::Unlinked,
                    message: format!(
                        "entry {} does not follow entry {}: entries were removed or reordered",
                        entry.seq,
                        entry.seq - 1
                    ),
                });
                break 'walk;
            }
            prev_hash = entry.hash;
            expected += 1;
        }
        if done {
            break;
        }
    }
    let last = expected - 1;
    if broken.is_none() && (head.seq != last || head.hash != prev_hash) {
        broken = Some(if head.seq > last {
            BrokenEntry {
                seq: last + 1,
                breach: Breach::Truncated,
                message: format!(
                    "the log ends at entry {last} but entry {} was written",
                    head.seq
                ),
            }
        } else {
            BrokenEntry {
                seq: last,
                breach: Breach::Altered,
                message: format!(
                    "the last entry is {last} but the head records entry {} with another hash",
                    head.seq
                ),
            }
        });
    }
    Ok(Verification {
        intact: broken.is_none(),
        entries: checked,
        head_seq: head.seq,
        head_hash: head.hash,
        first_broken: broken,
        unsealed: super::outbox::backlog(db).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> audit_log::Model {
        let mut e = audit_log::Model {
            seq,
            at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap_or_default(),
            actor_id: Some(Uuid::from_u128(7)),
            actor_role: Some("reviewer".to_owned()),
            action: "review.decided".to_owned(),
            target_type: "audit".to_owned(),
            target_id: "a".to_owned(),
            region_code: Some("48".to_owned()),
            sector: Some("education".to_owned()),
            before_digest: None,
            after_digest: Some(digest(&json!({"status": "approved"}))),
            detail: "{}".to_owned(),
            request_id: None,
            prev_hash: prev.to_owned(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let first = entry(1, GENESIS);
        let second = entry(2, &first.hash);
        assert_ne!(first.hash, second.hash, "the number is hashed");
        let mut changed = second.clone();
        changed.detail = r#"{"comment":"x"}"#.to_owned();
        assert_ne!(entry_hash(&changed), second.hash);
        let mut relinked = second.clone();
        relinked.prev_hash = GENESIS.to_owned();
        assert_ne!(entry_hash(&relinked), second.hash);
        assert_eq!(entry_hash(&second), second.hash, "stable");
        assert_eq!(first.hash.len(), 64);
    }

    /// The hash as entries stored so far were sealed with: the fields as a
    /// `serde_json::Value` array, rendered to a string, then hashed.
    fn hash_as_sealed_so_far(e: &audit_log::Model) -> String {
        let fields = json!([
            e.seq,
            e.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            e.actor_id,
            e.actor_role,
            e.action,
            e.target_type,
            e.target_id,
            e.region_code,
            e.sector,
            e.before_digest,
            e.after_digest,
            e.detail,
            e.request_id,
            e.prev_hash,
        ]);
        hex::encode(Sha256::digest(fields.to_string().as_bytes()))
    }

    #[test]
    fn entries_sealed_before_still_verify() {
        let first = entry(1, GENESIS);
        let mut odd = entry(-2, &first.hash);
        odd.at = DateTime::from_timestamp_micros(-1).unwrap_or_default();
        odd.actor_id = None;
        odd.actor_role = None;
        odd.target_id = "«Школа № 5»\t\"a\\b\"\u{1}/é".to_owned();
        odd.region_code = None;
        odd.sector = None;
        odd.before_digest = Some(digest(&json!({"answers": "{\"x\":\"\\n\"}"})));
        odd.detail = r#"{"comment":"пандус \"нет\"\n"}"#.to_owned();
        odd.request_id = Some("req-\u{7f}\u{2028}".to_owned());
        for e in [&first, &odd] {
            assert_eq!(entry_hash(e), hash_as_sealed_so_far(e), "entry {}", e.seq);
        }
        // Their hashes as sealed before, computed apart from serde_json, so
        // that a change of its escaping would show too.
        assert_eq!(
            first.hash,
            "27d0c6af577d97e6df820a5ded3629d96928efe9b1a77d8cbf034e1303e3ad30"
        );
        assert_eq!(
            entry_hash(&odd),
            "106e00c4bbdcc65c47746f915ed75159b35186f0f7717cbd3a56b6a1ea236d00"
        );
    }

    #[test]
    fn a_digest_is_of_the_compact_json() {
        let value = json!({"b": [1, "ж\"\n"], "a": null});
        assert_eq!(
            digest(&value),
            hex::encode(Sha256::digest(value.to_string().as_bytes()))
        );
        // Keys sorted, no spaces, the string escaped as JSON requires.
        assert_eq!(
            digest(&value),
            "a4b7ab4d4c0b91e2b34aa917952d374a3d78eaeb697942eeb1a82d219f5fe2a0"
        );
    }
}
