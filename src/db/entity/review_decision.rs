use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "review_decisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub audit_id: Uuid,
    pub revision: i32,
    /// `approve`, `return` or `reject`.
    pub decision: String,
    #[sea_orm(column_type = "Text")]
    pub comment: String,
    /// JSON array of `{rule | item, comment}`.
    #[sea_orm(column_type = "Text")]
    pub items: String,
    pub reviewer_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
