use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// JSON of the log entry to chain, if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub entry: Option<String>,
    /// JSON of the change to number, if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub change: Option<String>,
    pub created_at: DateTimeUtc,
    /// Why sealing set the row aside; `None` while it waits to be sealed.
    #[sea_orm(column_type = "Text", nullable)]
    pub failure: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
