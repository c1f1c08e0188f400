//! The change feed behind `GET /sync`.
//!
//! Sequence numbers must be handed out in commit order, or a reader could see
//! change 11 before change 10 commits, move its cursor past 10 and never see
//! it. SQLite has a single writer, which gives that order for free; on
//! PostgreSQL every appending transaction takes one advisory lock right
//! before its insert and holds it until commit, so the next writer only gets
//! a number after the previous one is visible. Append last, just before
//! commit, to keep that serialised stretch short.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
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

/// Appends a change inside `txn`; returns its sequence number.
///
/// # Errors
/// Database failure.
pub async fn append(txn: &DatabaseTransaction, change: NewChange) -> Result<i64, DbError> {
    super::take_order_lock(txn).await?;
    let model = change::ActiveModel {
        seq: NotSet,
        kind: Set(change.kind.to_owned()),
        audit_id: Set(change.audit_id),
        owner_id: Set(change.owner_id),
        organisation_id: Set(change.organisation_id),
        region_code: Set(change.region),
        sector: Set(change.sector),
        audit_status: Set(change.audit_status),
        payload: Set(change.payload.to_string()),
        created_at: Set(now()),
    };
    let inserted = change::Entity::insert(model).exec(txn).await?;
    Ok(inserted.last_insert_id)
}

const COLUMNS: ScopeColumns = ScopeColumns {
    owner: "owner_id",
    organisation: "organisation_id",
    region: "region_code",
    sector: "sector",
    status: "audit_status",
};

/// Changes after `after` that `who` may see, oldest first, at most `limit`
/// (plus one, to tell whether more exist).
///
/// # Errors
/// Database failure.
pub async fn since(
    db: &DatabaseConnection,
    who: &Principal,
    after: i64,
    limit: u64,
) -> Result<Vec<change::Model>, DbError> {
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
