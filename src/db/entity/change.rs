use sea_orm::entity::prelude::*;

// Serialize: sealing passes insert rows as JSON on PostgreSQL
// (`db::insert_rows`); the fields are named as the columns.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "changes")]
pub struct Model {
    /// Commit-ordered sequence number; the sync cursor.
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub kind: String,
    pub audit_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub organisation_id: Option<Uuid>,
    pub region_code: Option<String>,
    pub sector: Option<String>,
    pub audit_status: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
