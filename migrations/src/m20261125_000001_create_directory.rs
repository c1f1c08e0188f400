//! The directory: regions, organisations, institutions and their sites. Every
//! audit and every rating is attached to these, so they come first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{double, string, string_len, string_null, uuid};

use crate::columns::{id, index, references, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Regions {
    Table,
    Code,
    Name,
}

#[derive(DeriveIden)]
pub enum Organisations {
    Table,
    Id,
    Name,
    Kind,
    RegionCode,
}

#[derive(DeriveIden)]
pub enum Institutions {
    Table,
    Id,
    Name,
    /// Lower-cased name for portable case-insensitive search (Cyrillic included).
    NameFolded,
    RegionCode,
    Sector,
    TaxId,
}

#[derive(DeriveIden)]
pub enum Sites {
    Table,
    Id,
    InstitutionId,
    Name,
    Address,
    Latitude,
    Longitude,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Regions::Table)
                    .col(string_len(Regions::Code, 2).primary_key())
                    .col(string(Regions::Name))
                    .take(),
            ))
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Organisations::Table)
                    .col(id(Organisations::Id))
                    .col(string(Organisations::Name))
                    .col(string_len(Organisations::Kind, 32))
                    .col(
                        ColumnDef::new(Organisations::RegionCode)
                            .string_len(2)
                            .null(),
                    )
                    .foreign_key(&mut references(
                        (Organisations::Table, Organisations::RegionCode),
                        (Regions::Table, Regions::Code),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;
        manager
            .create_index(index(
                "ux_organisations_name",
                Organisations::Table,
                [Organisations::Name],
                true,
            ))
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Institutions::Table)
                    .col(id(Institutions::Id))
                    .col(string(Institutions::Name))
                    .col(string(Institutions::NameFolded))
                    .col(string_len(Institutions::RegionCode, 2))
                    .col(string_len(Institutions::Sector, 32))
                    .col(string_null(Institutions::TaxId))
                    .foreign_key(&mut references(
                        (Institutions::Table, Institutions::RegionCode),
                        (Regions::Table, Regions::Code),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;
        manager
            .create_index(index(
                "ix_institutions_region_sector",
                Institutions::Table,
                [Institutions::RegionCode, Institutions::Sector],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "ux_institutions_tax_id",
                Institutions::Table,
                [Institutions::TaxId],
                true,
            ))
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Sites::Table)
                    .col(id(Sites::Id))
                    .col(uuid(Sites::InstitutionId))
                    .col(string(Sites::Name))
                    .col(string(Sites::Address))
                    .col(double(Sites::Latitude))
                    .col(double(Sites::Longitude))
                    .foreign_key(&mut references(
                        (Sites::Table, Sites::InstitutionId),
                        (Institutions::Table, Institutions::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;
        manager
            .create_index(index(
                "ix_sites_institution",
                Sites::Table,
                [Sites::InstitutionId],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Sites::Table.into_iden(),
            Institutions::Table.into_iden(),
            Organisations::Table.into_iden(),
            Regions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
