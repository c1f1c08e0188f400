//! Repository functions for users.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entity::user;
use super::{DbError, Page, PageRequest, now};
use crate::domain::{RegionCode, Role, Sector};

/// Fields of a new user; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Must already be normalised (see `auth::normalise_email`).
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub organisation_id: Option<Uuid>,
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
}

/// Creates a user.
///
/// # Errors
/// [`DbError::Conflict`] when the email is taken (case-insensitively, since
/// emails are stored normalised); [`DbError::MissingReference`] for an
/// unknown organisation or region.
pub async fn create_user(db: &DatabaseConnection, new: NewUser) -> Result<user::Model, DbError> {
    let ts = now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(new.email),
        display_name: Set(new.display_name),
        password_hash: Set(new.password_hash),
        role: Set(new.role.as_str().to_owned()),
        organisation_id: Set(new.organisation_id),
        region_code: Set(new.region.map(String::from)),
        sector: Set(new.sector.map(|s| s.as_str().to_owned())),
        disabled: Set(false),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    Ok(super::write_alone(db, async |txn| {
        user::Entity::insert(model).exec_with_returning(txn).await
    })
    .await?)
}

/// A user by normalised email.
///
/// # Errors
/// Database failure.
pub async fn find_by_email(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<user::Model>, DbError> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// A user by id.
///
/// # Errors
/// Database failure.
pub async fn get_user(db: &DatabaseConnection, id: Uuid) -> Result<Option<user::Model>, DbError> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

/// A page of users.
///
/// # Errors
/// Database failure.
pub async fn list_users(
    db: &DatabaseConnection,
    page: PageRequest,
) -> Result<Page<user::Model>, DbError> {
    let mut query = user::Entity::find().order_by_asc(user::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(user::Column::Id.gt(after));
    }
    let rows = query.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.limit, |u| u.id))
}
