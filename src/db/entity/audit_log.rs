use sea_orm::entity::prelude::*;

// Serialize: sealing passes insert rows as JSON on PostgreSQL
// (`db::insert_rows`); the fields are named as the columns.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// 1, 2, 3 … without gaps: the head row hands numbers out.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub at: DateTimeUtc,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// Scope of the target, for reviewers' view of the log.
    pub region_code: Option<String>,
    pub sector: Option<String>,
    pub before_digest: Option<String>,
    pub after_digest: Option<String>,
    /// Small JSON object with what people need to read the entry.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
