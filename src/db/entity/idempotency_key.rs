use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 of method, path and body of the first request.
    pub request_hash: String,
    /// `None` while the first request is still being handled.
    pub status_code: Option<i32>,
    /// JSON object of the replayed headers.
    #[sea_orm(column_type = "Text", nullable)]
    pub response_headers: Option<String>,
    /// The stored body as text; only on rows written before bodies were
    /// stored deflated.
    #[sea_orm(column_type = "Text", nullable)]
    pub response_body: Option<String>,
    /// The stored body, deflated (RFC 1951).
    #[sea_orm(column_type = "Blob", nullable)]
    pub response_deflated: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
