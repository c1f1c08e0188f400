use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rating_imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SHA-256 of the file as sent: the same file twice is one import.
    #[sea_orm(unique)]
    pub sha256: String,
    /// `csv` or `json`.
    pub format: String,
    /// `utf-8`, `windows-1251` or `json`.
    pub encoding: String,
    pub rows: i32,
    pub imported_by: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
