//! A row of the outbox that the sealer cannot move (it does not parse, or
//! the database refuses its entry) is set aside with the reason in
//! `failure`, so that it does not hold up the rows behind it; `dostup log
//! requeue` clears the reason and puts it back in line.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    /// Why sealing set the row aside; null while it waits to be sealed.
    Failure,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(text_null(Outbox::Failure))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Failure)
                    .to_owned(),
            )
            .await
    }
}
