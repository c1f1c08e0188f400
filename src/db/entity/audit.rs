use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audits")]
pub struct Model {
    /// Chosen by the client (UUID), so creation can be retried safely.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub site_id: Uuid,
    pub institution_id: Uuid,
    pub region_code: String,
    pub sector: String,
    pub created_by: Uuid,
    pub organisation_id: Option<Uuid>,
    pub status: String,
    pub methodology_id: String,
    pub methodology_version: String,
    pub release_hash: String,
    /// JSON object `checklist.item → value`.
    #[sea_orm(column_type = "Text")]
    pub answers: String,
    /// Incremented by every change; the ETag.
    pub version: i64,
    /// SHA-256 of the canonical creation request.
    pub create_fingerprint: String,
    pub started_at: Option<DateTimeUtc>,
    pub submitted_at: Option<DateTimeUtc>,
    /// Number of submissions so far: the revision under review.
    pub revision: i32,
    /// The reviewer working on the audit, so two do not take the same one.
    pub claimed_by: Option<Uuid>,
    pub claimed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
