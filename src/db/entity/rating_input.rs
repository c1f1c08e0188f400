use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rating_inputs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub institution_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub year: i32,
    /// JSON of `rating::Imported`.
    #[sea_orm(column_type = "Text")]
    pub values: String,
    /// JSON array of the imports that gave the values, oldest first (a later
    /// import replaces the values it gives and keeps the others).
    #[sea_orm(column_type = "Text")]
    pub import_ids: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
