//! The rating: imports of the criteria audits do not measure and of survey
//! counts (each file once, by its digest), the values per institution and
//! year, and prepared and published ratings. A published rating's snapshot is
//! never changed: later data makes a new rating, not a different old one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, string, string_len, text, timestamp_with_time_zone, timestamp_with_time_zone_null,
    uuid, uuid_null,
};

use crate::columns::{id, index, references};
use crate::m20261125_000001_create_directory::{Institutions, Regions};
use crate::m20261125_000002_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum RatingImports {
    Table,
    Id,
    Sha256,
    Format,
    Encoding,
    Rows,
    ImportedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum RatingInputs {
    Table,
    InstitutionId,
    Year,
    /// JSON: K1, K2, K4, K5, indicators and survey counts.
    Values,
    /// JSON array of the imports that gave the values, oldest first.
    ImportIds,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum RatingPublications {
    Table,
    Id,
    RegionCode,
    Sector,
    Year,
    MethodologyId,
    MethodologyVersion,
    /// `prepared` or `published`.
    Status,
    /// The rating as computed when prepared (JSON), published as it is.
    Snapshot,
    InputsDigest,
    PreparedBy,
    PreparedAt,
    ApprovedBy,
    ApprovedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RatingImports::Table)
                    .col(id(RatingImports::Id))
                    .col(string_len(RatingImports::Sha256, 64).unique_key())
                    .col(string_len(RatingImports::Format, 8))
                    .col(string_len(RatingImports::Encoding, 16))
                    .col(integer(RatingImports::Rows))
                    .col(uuid(RatingImports::ImportedBy))
                    .col(timestamp_with_time_zone(RatingImports::CreatedAt))
                    .foreign_key(&mut references(
                        (RatingImports::Table, RatingImports::ImportedBy),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RatingInputs::Table)
                    .col(uuid(RatingInputs::InstitutionId))
                    .col(integer(RatingInputs::Year))
                    .col(text(RatingInputs::Values))
                    .col(text(RatingInputs::ImportIds))
                    .col(timestamp_with_time_zone(RatingInputs::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(RatingInputs::InstitutionId)
                            .col(RatingInputs::Year),
                    )
                    .foreign_key(&mut references(
                        (RatingInputs::Table, RatingInputs::InstitutionId),
                        (Institutions::Table, Institutions::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_rating_inputs_year",
                RatingInputs::Table,
                [RatingInputs::Year],
                false,
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RatingPublications::Table)
                    .col(id(RatingPublications::Id))
                    .col(string_len(RatingPublications::RegionCode, 2))
                    .col(string_len(RatingPublications::Sector, 32))
                    .col(integer(RatingPublications::Year))
                    .col(string(RatingPublications::MethodologyId))
                    .col(string(RatingPublications::MethodologyVersion))
                    .col(string_len(RatingPublications::Status, 16))
                    .col(text(RatingPublications::Snapshot))
                    .col(string_len(RatingPublications::InputsDigest, 64))
                    .col(uuid(RatingPublications::PreparedBy))
                    .col(timestamp_with_time_zone(RatingPublications::PreparedAt))
                    .col(uuid_null(RatingPublications::ApprovedBy))
                    .col(timestamp_with_time_zone_null(
                        RatingPublications::ApprovedAt,
                    ))
                    .foreign_key(&mut references(
                        (RatingPublications::Table, RatingPublications::RegionCode),
                        (Regions::Table, Regions::Code),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (RatingPublications::Table, RatingPublications::PreparedBy),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_rating_publications_scope",
                RatingPublications::Table,
                [
                    RatingPublications::RegionCode,
                    RatingPublications::Sector,
                    RatingPublications::Year,
                ],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RatingPublications::Table.into_iden(),
            RatingInputs::Table.into_iden(),
            RatingImports::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
