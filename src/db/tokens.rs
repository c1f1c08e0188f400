//! Repository functions for refresh tokens. Rotation is a conditional update
//! (`used_at IS NULL`), so of two concurrent refreshes with the same token
//! exactly one wins and the other is treated as reuse.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entity::refresh_token;
use super::{DbError, now};

/// Stores a new refresh token digest in `family_id`.
///
/// # Errors
/// Database failure.
pub async fn insert(
    db: &DatabaseConnection,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let ts = now();
    let model = refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(token_hash),
        expires_at: Set(expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    super::write_alone(db, async |txn| {
        refresh_token::Entity::insert(model).exec(txn).await
    })
    .await?;
    Ok(())
}

/// The token row with this digest, whatever its state.
///
/// # Errors
/// Database failure.
pub async fn find_by_hash(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<refresh_token::Model>, DbError> {
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .one(db)
        .await?)
}

/// Marks the token used if nobody has; `false` means it was already used or
/// revoked (possibly a moment ago, by a concurrent request).
///
/// # Errors
/// Database failure.
pub async fn mark_used(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbError> {
    let ts = now();
    let update = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(ts))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(ts))
        .filter(refresh_token::Column::Id.eq(id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null());
    let result = super::write_alone(db, async |txn| update.exec(txn).await).await?;
    Ok(result.rows_affected == 1)
}

/// Revokes every token of a family (logout, or detected reuse).
///
/// # Errors
/// Database failure.
pub async fn revoke_family(db: &DatabaseConnection, family_id: Uuid) -> Result<u64, DbError> {
    let ts = now();
    let update = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(ts))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(ts))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null());
    let result = super::write_alone(db, async |txn| update.exec(txn).await).await?;
    Ok(result.rows_affected)
}
