//! The outbox: audit-log entries and change-feed changes written by an
//! action inside its own transaction, before they are numbered. A sealer
//! moves them into `audit_log` (chained) and `changes` (numbered) in commit
//! order, so writers no longer queue on one lock for those numbers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_pk_auto, text_null, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Outbox {
    Table,
    Id,
    /// JSON: the log entry to chain, if the action is logged.
    Entry,
    /// JSON: the change to number, if the action is synced.
    Change,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(text_null(Outbox::Entry))
                    .col(text_null(Outbox::Change))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
