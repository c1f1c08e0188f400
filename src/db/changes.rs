//! The change feed behind `GET /sync`.
//!
//! Sequence numbers must follow commit order, or a reader could see change
//! 11 before change 10 commits, move its cursor past 10 and never see it.
//! An action therefore writes its change into the outbox inside its own
//! transaction ([`append`]), and the sealer numbers changes in commit order
//! (see [`super::outbox`]). [`since`] seals what has committed before it
//! reads, so a client sees its own writes at once.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde_json::Value as Json;
use uuid::Uuid;

use super::entity::change;
use super::scope::{ScopeColumns, visible_to};
use super::{DbError, now};
use crate::auth::Principal;

/// A change to record. Scope fields decide who sees it in `/sync`; a change
/// with none of them (a new checklist version) is visible to everyone.
#[derive(Debug, Clone, Default)]
pub struct NewChange {
    pub kind: &'static str,
    pub audit_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub organisation_id: Option<Uuid>,
    pub region: Option<String>,
    pub sector: Option<String>,
    pub audit_status: Option<String>,
    pub payload: Json,
}

/// A change as its action wrote it, before it is numbered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Unnumbered {
    kind: String,
    audit_id: Option<Uuid>,
    owner_id: Option<Uuid>,
    organisation_id: Option<Uuid>,
    region_code: Option<String>,
    sector: Option<String>,
    audit_status: Option<String>,
    payload: String,
    created_at: DateTime<Utc>,
}

impl From<NewChange> for Unnumbered {
    fn from(change: NewChange) -> Self {
        Self {
            kind: change.kind.to_owned(),
            audit_id: change.audit_id,
            owner_id: change.owner_id,
            organisation_id: change.organisation_id,
            region_code: change.region,
            sector: change.sector,
            audit_status: change.audit_status,
            payload: change.payload.to_string(),
            created_at: now(),
        }
    }
}

/// Records a change inside the caller's transaction `txn`; the sealer
/// numbers it once `txn` has committed.
///
/// # Errors
/// Database failure.
pub async fn append<C: ConnectionTrait>(txn: &C, change: NewChange) -> Result<(), DbError> {
    super::outbox::push(txn, None, Some(change.into())).await
}

/// Numbers `changes` after the last one, in order (a sealing pass, under
/// the order lock).
///
/// # Errors
/// Database failure.
pub(super) async fn number<C: ConnectionTrait>(
    txn: &C,
    changes: Vec<Unnumbered>,
) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    let last: Option<i64> = change::Entity::find()
        .select_only()
        .column_as(change::Column::Seq.max(), "last")
        .into_tuple()
        .one(txn)
        .await?
        .flatten();
    let numbered = numbered_after(last.unwrap_or(0), changes);
    let newest = numbered.last().map_or(0, |c| c.seq);
    super::insert_rows::<_, change::Entity, _, _>(txn, numbered).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Numbers are given here, not drawn from the column's sequence; keep
        // the sequence level with them, so that a row inserted some other
        // way (a repair by hand) does not collide.
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT setval(pg_get_serial_sequence('changes', 'seq'), $1)",
            [newest.into()],
        ))
        .await?;
    }
    Ok(())
}

/// `changes` numbered after `last`, in order.
pub(super) fn numbered_after(last: i64, changes: Vec<Unnumbered>) -> Vec<change::Model> {
    changes
        .into_iter()
        .zip(last + 1..)
        .map(|(c, seq)| change::Model {
            seq,
            kind: c.kind,
            audit_id: c.audit_id,
            owner_id: c.owner_id,
            organisation_id: c.organisation_id,
            region_code: c.region_code,
            sector: c.sector,
            audit_status: c.audit_status,
            payload: c.payload,
            created_at: c.created_at,
        })
        .collect()
}

const COLUMNS: ScopeColumns = ScopeColumns {
    owner: "owner_id",
    organisation: "organisation_id",
    region: "region_code",
    sector: "sector",
    status: "audit_status",
};

/// Changes after `after` that `who` may see, oldest first, at most `limit`
/// (plus one, to tell whether more exist). Everything committed before the
/// call is sealed first.
///
/// # Errors
/// Database failure.
pub async fn since(
    db: &DatabaseConnection,
    who: &Principal,
    after: i64,
    limit: u64,
) -> Result<Vec<change::Model>, DbError> {
    super::outbox::flush_for_reading(db).await;
    let global = sea_orm::Condition::all()
        .add(change::Column::AuditId.is_null())
        .add(change::Column::OwnerId.is_null());
    Ok(change::Entity::find()
        .filter(change::Column::Seq.gt(after))
        .filter(
            sea_orm::Condition::any()
                .add(global)
                .add(visible_to(who, &COLUMNS)),
        )
        .order_by_asc(change::Column::Seq)
        .limit(limit + 1)
        .all(db)
        .await?)
}
