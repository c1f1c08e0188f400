use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub audit_id: Uuid,
    pub item_key: String,
    pub filename: Option<String>,
    /// Declared total size.
    pub length: i64,
    /// Bytes received so far.
    pub offset: i64,
    pub expires_at: DateTimeUtc,
    /// Set once the upload became a photo.
    pub photo_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
