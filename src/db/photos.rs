//! Repository functions for photos and resumable uploads.

use std::collections::HashSet;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use super::audit_log::{self, Actor, Entry};
use super::changes::{self, NewChange};
use super::entity::{audit, photo, upload};
use super::{DbError, now};
use crate::audit::AuditStatus;

/// Records a stored photo and bumps the audit's version, if the audit is
/// still editable. `None` when it no longer is (submitted meanwhile).
///
/// # Errors
/// [`DbError::Conflict`] when the client photo id was used already.
pub async fn insert(
    db: &DatabaseConnection,
    row: photo::Model,
    actor: &Actor,
) -> Result<Option<photo::Model>, DbError> {
    let (owned, actor) = (db.clone(), actor.clone());
    super::on_writer(db, async move { insert_here(&owned, row, &actor).await }).await
}

async fn insert_here(
    db: &DatabaseConnection,
    row: photo::Model,
    actor: &Actor,
) -> Result<Option<photo::Model>, DbError> {
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let editable = AuditStatus::EDITABLE.map(AuditStatus::as_str);
    let bumped = audit::Entity::update_many()
        .col_expr(
            audit::Column::Version,
            Expr::col(audit::Column::Version).add(1),
        )
        .col_expr(audit::Column::UpdatedAt, Expr::value(now()))
        .filter(audit::Column::Id.eq(row.audit_id))
        .filter(audit::Column::Status.is_in(editable))
        .exec(txn)
        .await?;
    if bumped.rows_affected != 1 {
        write.rollback().await?;
        return Ok(None);
    }
    let active = photo::ActiveModel::from(row).reset_all();
    let inserted = photo::Entity::insert(active)
        .exec_with_returning(txn)
        .await?;
    let owner = audit::Entity::find_by_id(inserted.audit_id)
        .one(txn)
        .await?
        .ok_or_else(|| DbError::Conflict("audit vanished".to_owned()))?;
    changes::append(
        txn,
        NewChange {
            kind: "audit.photo_added",
            audit_id: Some(owner.id),
            owner_id: Some(owner.created_by),
            organisation_id: owner.organisation_id,
            region: Some(owner.region_code.clone()),
            sector: Some(owner.sector.clone()),
            audit_status: Some(owner.status.clone()),
            payload: serde_json::json!({
                "audit_id": owner.id,
                "photo_id": inserted.id,
                "item": inserted.item_key,
                "version": owner.version,
                "updated_at": owner.updated_at,
            }),
        },
    )
    .await?;
    let facts = serde_json::json!({
        "audit_id": inserted.audit_id,
        "item": inserted.item_key,
        "sha256": inserted.sha256,
        "flags": serde_json::from_str::<serde_json::Value>(&inserted.flags).unwrap_or_default(),
    });
    audit_log::append(
        txn,
        actor,
        Entry::new("photo.added", "photo", inserted.id)
            .audit_scope(&owner)
            .states(None, Some(facts.clone()))
            .detail(facts),
    )
    .await?;
    write.commit().await?;
    Ok(Some(inserted))
}

impl From<photo::Model> for crate::audit::review::PhotoRef {
    fn from(p: photo::Model) -> Self {
        Self {
            id: p.id,
            item: p.item_key,
            sha256: p.sha256,
        }
    }
}

/// One photo.
///
/// # Errors
/// Database failure.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Option<photo::Model>, DbError> {
    Ok(photo::Entity::find_by_id(id).one(db).await?)
}

/// The photo a client already sent under its own id, for idempotent retries.
///
/// # Errors
/// Database failure.
pub async fn by_client_id(
    db: &DatabaseConnection,
    audit_id: Uuid,
    client_photo_id: &str,
) -> Result<Option<photo::Model>, DbError> {
    Ok(photo::Entity::find()
        .filter(photo::Column::AuditId.eq(audit_id))
        .filter(photo::Column::ClientPhotoId.eq(client_photo_id))
        .one(db)
        .await?)
}

/// Photos of an audit, oldest first.
///
/// # Errors
/// Database failure.
pub async fn of_audit(
    db: &DatabaseConnection,
    audit_id: Uuid,
) -> Result<Vec<photo::Model>, DbError> {
    if let Some(embedded) = super::embedded::of(db) {
        return embedded.photos(audit_id);
    }
    Ok(photo::Entity::find()
        .filter(photo::Column::AuditId.eq(audit_id))
        .order_by_asc(photo::Column::CreatedAt)
        .order_by_asc(photo::Column::Id)
        .all(db)
        .await?)
}

/// Whether a photo with this content is evidence in another audit.
///
/// # Errors
/// Database failure.
pub async fn used_elsewhere(
    db: &DatabaseConnection,
    sha256: &str,
    audit_id: Uuid,
) -> Result<bool, DbError> {
    Ok(photo::Entity::find()
        .filter(photo::Column::Sha256.eq(sha256))
        .filter(photo::Column::AuditId.ne(audit_id))
        .count(db)
        .await?
        > 0)
}

/// Every content hash some photo references (for the blob sweep).
///
/// # Errors
/// Database failure.
pub async fn referenced_hashes(db: &DatabaseConnection) -> Result<HashSet<String>, DbError> {
    use sea_orm::QuerySelect;
    let hashes: Vec<String> = photo::Entity::find()
        .select_only()
        .column(photo::Column::Sha256)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(hashes.into_iter().collect())
}

/// Creates a resumable upload.
///
/// # Errors
/// Database failure.
pub async fn create_upload(
    db: &DatabaseConnection,
    row: upload::Model,
) -> Result<upload::Model, DbError> {
    let active = upload::ActiveModel::from(row).reset_all();
    Ok(super::write_alone(db, async |txn| {
        upload::Entity::insert(active)
            .exec_with_returning(txn)
            .await
    })
    .await?)
}

/// One upload.
///
/// # Errors
/// Database failure.
pub async fn get_upload(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<upload::Model>, DbError> {
    Ok(upload::Entity::find_by_id(id).one(db).await?)
}

/// Moves the offset from `from` to `to`; `false` if another request moved it.
///
/// # Errors
/// Database failure.
pub async fn advance_upload(
    db: &DatabaseConnection,
    id: Uuid,
    from: i64,
    to: i64,
) -> Result<bool, DbError> {
    let update = upload::Entity::update_many()
        .col_expr(upload::Column::Offset, Expr::value(to))
        .col_expr(upload::Column::UpdatedAt, Expr::value(now()))
        .filter(upload::Column::Id.eq(id))
        .filter(upload::Column::Offset.eq(from));
    let result = super::write_alone(db, async |txn| update.exec(txn).await).await?;
    Ok(result.rows_affected == 1)
}

/// Marks a finished upload with the photo it became.
///
/// # Errors
/// Database failure.
pub async fn finish_upload(
    db: &DatabaseConnection,
    id: Uuid,
    photo_id: Uuid,
) -> Result<(), DbError> {
    let update = upload::Entity::update_many()
        .col_expr(upload::Column::PhotoId, Expr::value(photo_id))
        .col_expr(upload::Column::UpdatedAt, Expr::value(now()))
        .filter(upload::Column::Id.eq(id));
    super::write_alone(db, async |txn| update.exec(txn).await).await?;
    Ok(())
}

/// Deletes an upload row.
///
/// # Errors
/// Database failure.
pub async fn delete_upload(db: &DatabaseConnection, id: Uuid) -> Result<(), DbError> {
    super::write_alone(db, async |txn| {
        upload::Entity::delete_by_id(id).exec(txn).await
    })
    .await?;
    Ok(())
}

/// Uploads past their expiry.
///
/// # Errors
/// Database failure.
pub async fn expired_uploads(db: &DatabaseConnection) -> Result<Vec<upload::Model>, DbError> {
    Ok(upload::Entity::find()
        .filter(upload::Column::ExpiresAt.lt(now()))
        .all(db)
        .await?)
}
