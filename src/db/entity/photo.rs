use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "photos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub audit_id: Uuid,
    /// `checklist.item` the photo is evidence for.
    pub item_key: String,
    /// Content address of the original in the object store.
    pub sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    pub captured_at: Option<DateTimeUtc>,
    pub gps_latitude: Option<f64>,
    pub gps_longitude: Option<f64>,
    pub device: Option<String>,
    /// JSON array of plausibility flags.
    #[sea_orm(column_type = "Text")]
    pub flags: String,
    pub client_photo_id: Option<String>,
    pub uploaded_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
