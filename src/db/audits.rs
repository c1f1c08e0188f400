//! Repository functions for audits. Every write bumps `version` with a
//! conditional update (`WHERE version = expected`), so of concurrent writers
//! with the same `If-Match` exactly one wins, and records a change for
//! `/sync` in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::changes::{self, NewChange};
use super::entity::audit;
use super::scope::{ScopeColumns, visible_to};
use super::{DbError, Page, PageRequest, now};
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
pub async fn create(db: &DatabaseConnection, new: NewAudit) -> Result<Created, DbError> {
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
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    let txn = db.begin().await?;
    let inserted = match audit::Entity::insert(model).exec_with_returning(&txn).await {
        Ok(inserted) => inserted,
        Err(err) => {
            txn.rollback().await.ok();
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
    record(&txn, "audit.created", &inserted).await?;
    txn.commit().await?;
    Ok(Created::New(inserted))
}

/// One audit by id, whoever may see it.
///
/// # Errors
/// Database failure.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Option<audit::Model>, DbError> {
    Ok(audit::Entity::find_by_id(id).one(db).await?)
}

/// Filters of the audit list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub status: Option<AuditStatus>,
    pub site: Option<Uuid>,
    pub updated_since: Option<DateTime<Utc>>,
}

const COLUMNS: ScopeColumns = ScopeColumns {
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

/// Replaces the answers if the audit is still at `expected_version` and
/// editable. `None` when another write got there first or the status no
/// longer allows edits; the caller re-reads to say which.
///
/// # Errors
/// Database failure.
pub async fn update_answers(
    db: &DatabaseConnection,
    id: Uuid,
    expected_version: i64,
    answers: &BTreeMap<String, Json>,
) -> Result<Option<audit::Model>, DbError> {
    let editable = [AuditStatus::Draft.as_str(), AuditStatus::Returned.as_str()];
    let text = serde_json::to_string(answers).unwrap_or_else(|_| "{}".to_owned());
    transition(
        db,
        id,
        expected_version,
        &editable,
        "audit.updated",
        |update| update.col_expr(audit::Column::Answers, Expr::value(text)),
    )
    .await
}

/// Moves the audit from one of `from` to `to` if it is still at
/// `expected_version`. `None` when it is not.
///
/// # Errors
/// Database failure.
pub async fn set_status(
    db: &DatabaseConnection,
    id: Uuid,
    expected_version: i64,
    from: &[AuditStatus],
    to: AuditStatus,
) -> Result<Option<audit::Model>, DbError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let submitted = (to == AuditStatus::Submitted).then(now);
    transition(
        db,
        id,
        expected_version,
        &from,
        "audit.status_changed",
        |update| {
            let update = update.col_expr(audit::Column::Status, Expr::value(to.as_str()));
            match submitted {
                Some(at) => update.col_expr(audit::Column::SubmittedAt, Expr::value(at)),
                None => update,
            }
        },
    )
    .await
}

async fn transition(
    db: &DatabaseConnection,
    id: Uuid,
    expected_version: i64,
    from_statuses: &[&str],
    kind: &'static str,
    set: impl FnOnce(sea_orm::UpdateMany<audit::Entity>) -> sea_orm::UpdateMany<audit::Entity>,
) -> Result<Option<audit::Model>, DbError> {
    let txn = db.begin().await?;
    // The update comes first so SQLite takes its write lock at once instead
    // of upgrading a read lock (which can fail under contention).
    let update = audit::Entity::update_many()
        .col_expr(
            audit::Column::Version,
            Expr::col(audit::Column::Version).add(1),
        )
        .col_expr(audit::Column::UpdatedAt, Expr::value(now()))
        .filter(audit::Column::Id.eq(id))
        .filter(audit::Column::Version.eq(expected_version))
        .filter(audit::Column::Status.is_in(from_statuses.iter().copied()));
    let result = set(update).exec(&txn).await?;
    if result.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(None);
    }
    let updated = audit::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| DbError::Conflict("audit vanished during update".to_owned()))?;
    record(&txn, kind, &updated).await?;
    txn.commit().await?;
    Ok(Some(updated))
}

async fn record(
    txn: &DatabaseTransaction,
    kind: &'static str,
    audit: &audit::Model,
) -> Result<i64, DbError> {
    changes::append(
        txn,
        NewChange {
            kind,
            audit_id: Some(audit.id),
            owner_id: Some(audit.created_by),
            organisation_id: audit.organisation_id,
            region: Some(audit.region_code.clone()),
            sector: Some(audit.sector.clone()),
            audit_status: Some(audit.status.clone()),
            payload: json!({
                "audit_id": audit.id,
                "site_id": audit.site_id,
                "status": audit.status,
                "version": audit.version,
                "updated_at": audit.updated_at,
            }),
        },
    )
    .await
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
