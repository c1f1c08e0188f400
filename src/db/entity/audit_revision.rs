use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub audit_id: Uuid,
    /// 1 for the first submission, 2 after the first return, …
    #[sea_orm(primary_key, auto_increment = false)]
    pub revision: i32,
    /// JSON object `checklist.item → value` as submitted.
    #[sea_orm(column_type = "Text")]
    pub answers: String,
    /// JSON array of `{id, item, sha256}` attached at submission.
    #[sea_orm(column_type = "Text")]
    pub photos: String,
    pub submitted_by: Uuid,
    pub submitted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
