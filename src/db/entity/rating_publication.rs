use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rating_publications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub region_code: String,
    pub sector: String,
    pub year: i32,
    pub methodology_id: String,
    pub methodology_version: String,
    /// `prepared` or `published`.
    pub status: String,
    /// The rating as computed when prepared (JSON).
    #[sea_orm(column_type = "Text")]
    pub snapshot: String,
    pub inputs_digest: String,
    pub prepared_by: Uuid,
    pub prepared_at: DateTimeUtc,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
