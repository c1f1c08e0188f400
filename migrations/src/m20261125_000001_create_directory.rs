//! The directory: regions, organisations, institutions and their sites. Every
//! audit and every rating is attached to these, so they come first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{double, string, string_len, string_null, uuid};

use crate::columns::{id, with_timestamps};

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
                    .foreign_key(
                        ForeignKey::create()
                            .from(Organisations::Table, Organisations::RegionCode)
                            .to(Regions::Table, Regions::Code)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_organisations_name")
                    .table(Organisations::Table)
                    .col(Organisations::Name)
                    .unique()
                    .take(),
            )
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
                    .foreign_key(
                        ForeignKey::create()
                            .from(Institutions::Table, Institutions::RegionCode)
                            .to(Regions::Table, Regions::Code)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_institutions_region_sector")
                    .table(Institutions::Table)
                    .col(Institutions::RegionCode)
                    .col(Institutions::Sector)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_institutions_tax_id")
                    .table(Institutions::Table)
                    .col(Institutions::TaxId)
                    .unique()
                    .take(),
            )
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
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sites::Table, Sites::InstitutionId)
                            .to(Institutions::Table, Institutions::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sites_institution")
                    .table(Sites::Table)
                    .col(Sites::InstitutionId)
                    .take(),
            )
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
