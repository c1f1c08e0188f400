//! Published checklist and methodology versions. A version, once registered,
//! never changes: the service refuses to start when a file's content changed
//! without a version bump. Sources are kept so that audits pinned to an old
//! release can still be evaluated years later.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, string_len, string_null, text, text_null};

use crate::columns::with_timestamps;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum ChecklistVersions {
    Table,
    /// `checklist` or `methodology`.
    Kind,
    Id,
    Version,
    Sha256,
    /// File name inside the checklist directory (`methodology/` prefix for methodologies).
    File,
    Zone,
    TitleRu,
    TitleEn,
    Source,
    /// Compiled form for mobile clients (checklists only), JSON.
    Compiled,
}

#[derive(DeriveIden)]
pub enum CatalogReleases {
    Table,
    /// SHA-256 over the sorted (file, sha256) pairs of the release.
    Hash,
    /// JSON list of `{kind, id, version, sha256, file}`.
    Manifest,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(ChecklistVersions::Table)
                    .col(string_len(ChecklistVersions::Kind, 16))
                    .col(string(ChecklistVersions::Id))
                    .col(string(ChecklistVersions::Version))
                    .col(string_len(ChecklistVersions::Sha256, 64))
                    .col(string(ChecklistVersions::File))
                    .col(string_null(ChecklistVersions::Zone))
                    .col(string(ChecklistVersions::TitleRu))
                    .col(string(ChecklistVersions::TitleEn))
                    .col(text(ChecklistVersions::Source))
                    .col(text_null(ChecklistVersions::Compiled))
                    .primary_key(
                        Index::create()
                            .col(ChecklistVersions::Kind)
                            .col(ChecklistVersions::Id)
                            .col(ChecklistVersions::Version),
                    )
                    .take(),
            ))
            .await?;
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(CatalogReleases::Table)
                    .col(string_len(CatalogReleases::Hash, 64).primary_key())
                    .col(text(CatalogReleases::Manifest))
                    .take(),
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CatalogReleases::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(ChecklistVersions::Table).take())
            .await?;
        Ok(())
    }
}
