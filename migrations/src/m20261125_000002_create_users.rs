//! Users and their refresh tokens. Emails are stored normalised (trimmed,
//! lower-case) under a unique index, which makes them unique case-insensitively
//! on every backend. Refresh tokens are stored only as SHA-256 digests and are
//! grouped in families so that reuse of a rotated token revokes the family.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, string, string_len, string_len_null, string_null, string_uniq,
    timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};

use crate::columns::{id, index, references, with_timestamps};
use crate::m20261125_000001_create_directory::{Organisations, Regions};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    Role,
    OrganisationId,
    RegionCode,
    Sector,
    Disabled,
}

#[derive(DeriveIden)]
pub enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(string_uniq(Users::Email))
                    .col(string(Users::DisplayName))
                    .col(string(Users::PasswordHash))
                    .col(string_len(Users::Role, 32))
                    .col(uuid_null(Users::OrganisationId))
                    .col(string_len_null(Users::RegionCode, 2))
                    .col(string_null(Users::Sector))
                    .col(boolean(Users::Disabled).default(false))
                    .foreign_key(&mut references(
                        (Users::Table, Users::OrganisationId),
                        (Organisations::Table, Organisations::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (Users::Table, Users::RegionCode),
                        (Regions::Table, Regions::Code),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(id(RefreshTokens::Id))
                    .col(uuid(RefreshTokens::UserId))
                    .col(uuid(RefreshTokens::FamilyId))
                    .col(string_uniq(RefreshTokens::TokenHash))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .foreign_key(&mut references(
                        (RefreshTokens::Table, RefreshTokens::UserId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            ))
            .await?;
        manager
            .create_index(index(
                "ix_refresh_tokens_family",
                RefreshTokens::Table,
                [RefreshTokens::FamilyId],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).take())
            .await?;
        Ok(())
    }
}
