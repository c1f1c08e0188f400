//! Responses kept for `Idempotency-Key` replays are stored deflated in
//! `response_deflated`: a full answer to an answer batch is about 49 KB of
//! JSON, a sixth of that deflated, and phones send a key with every batch.
//! Rows written before keep their text in `response_body` until they
//! expire. Expired keys are found through an index on `created_at`, so that
//! housekeeping deletes them in small batches instead of scanning the table.
//!
//! A release before this one replays a row stored by this one with an empty
//! body, so `down` deletes those rows (their requests then run again on a
//! retry), and replicas of one deployment are upgraded together.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::blob_null;

use crate::columns::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    /// The stored response body, deflated (RFC 1951); null before the
    /// response is stored, and on rows written before this migration.
    ResponseDeflated,
    CreatedAt,
}

const CREATED_INDEX: &str = "idx_idempotency_keys_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(blob_null(IdempotencyKeys::ResponseDeflated))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                CREATED_INDEX,
                IdempotencyKeys::Table,
                [IdempotencyKeys::CreatedAt],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(IdempotencyKeys::Table)
                    .and_where(Expr::col(IdempotencyKeys::ResponseDeflated).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(CREATED_INDEX)
                    .table(IdempotencyKeys::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .drop_column(IdempotencyKeys::ResponseDeflated)
                    .to_owned(),
            )
            .await
    }
}
