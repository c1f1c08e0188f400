use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "review_verdicts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub audit_id: Uuid,
    /// `checklist.rule`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub rule_key: String,
    /// `confirm` (the engine's outcome stands) or `override`.
    pub kind: String,
    /// `pass`, `fail` or `not_applicable`.
    pub verdict: String,
    /// What the engine said when the reviewer decided.
    pub engine_outcome: String,
    #[sea_orm(column_type = "Text")]
    pub comment: String,
    pub reviewer_id: Uuid,
    /// The revision the verdict was given on.
    pub revision: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
