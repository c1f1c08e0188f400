use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log_head")]
pub struct Model {
    /// Always 1: there is one chain.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// Number of the last entry (0 before the first).
    pub seq: i64,
    /// Hash of the last entry (64 zeros before the first).
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
