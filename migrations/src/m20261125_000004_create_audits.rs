//! Field audits, the change feed mobile clients sync from, and stored
//! responses for `Idempotency-Key` retries.
//!
//! Audits copy the site's region and sector (and the author's organisation)
//! so that scope checks and review queues need no joins. `version` counts
//! every change and backs `ETag`/`If-Match`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, integer_null, string, string_len, string_len_null, string_null, text,
    text_null, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};

use crate::columns::{id, index, references, with_timestamps};
use crate::m20261125_000001_create_directory::{Regions, Sites};
use crate::m20261125_000002_create_users::Users;
use crate::m20261125_000003_create_catalog::CatalogReleases;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Audits {
    Table,
    Id,
    SiteId,
    InstitutionId,
    RegionCode,
    Sector,
    CreatedBy,
    OrganisationId,
    Status,
    MethodologyId,
    MethodologyVersion,
    ReleaseHash,
    Answers,
    Version,
    CreateFingerprint,
    StartedAt,
    SubmittedAt,
}

#[derive(DeriveIden)]
pub enum Changes {
    Table,
    Seq,
    Kind,
    AuditId,
    OwnerId,
    OrganisationId,
    RegionCode,
    Sector,
    AuditStatus,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum IdempotencyKeys {
    Table,
    UserId,
    Key,
    RequestHash,
    StatusCode,
    ResponseHeaders,
    ResponseBody,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Audits::Table)
                    .col(id(Audits::Id))
                    .col(uuid(Audits::SiteId))
                    .col(uuid(Audits::InstitutionId))
                    .col(string_len(Audits::RegionCode, 2))
                    .col(string_len(Audits::Sector, 32))
                    .col(uuid(Audits::CreatedBy))
                    .col(uuid_null(Audits::OrganisationId))
                    .col(string_len(Audits::Status, 16))
                    .col(string(Audits::MethodologyId))
                    .col(string(Audits::MethodologyVersion))
                    .col(string_len(Audits::ReleaseHash, 64))
                    .col(text(Audits::Answers))
                    .col(big_integer(Audits::Version))
                    .col(string_len(Audits::CreateFingerprint, 64))
                    .col(timestamp_with_time_zone_null(Audits::StartedAt))
                    .col(timestamp_with_time_zone_null(Audits::SubmittedAt))
                    .foreign_key(&mut references(
                        (Audits::Table, Audits::SiteId),
                        (Sites::Table, Sites::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (Audits::Table, Audits::CreatedBy),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (Audits::Table, Audits::RegionCode),
                        (Regions::Table, Regions::Code),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (Audits::Table, Audits::ReleaseHash),
                        (CatalogReleases::Table, CatalogReleases::Hash),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;
        for statement in [
            index(
                "ix_audits_created_by",
                Audits::Table,
                [Audits::CreatedBy],
                false,
            ),
            index(
                "ix_audits_organisation",
                Audits::Table,
                [Audits::OrganisationId],
                false,
            ),
            index(
                "ix_audits_scope_status",
                Audits::Table,
                [Audits::RegionCode, Audits::Sector, Audits::Status],
                false,
            ),
            index("ix_audits_site", Audits::Table, [Audits::SiteId], false),
        ] {
            manager.create_index(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Changes::Table)
                    .col(big_pk_auto(Changes::Seq))
                    .col(string_len(Changes::Kind, 32))
                    .col(uuid_null(Changes::AuditId))
                    .col(uuid_null(Changes::OwnerId))
                    .col(uuid_null(Changes::OrganisationId))
                    .col(string_len_null(Changes::RegionCode, 2))
                    .col(string_null(Changes::Sector))
                    .col(string_null(Changes::AuditStatus))
                    .col(text(Changes::Payload))
                    .col(timestamp_with_time_zone(Changes::CreatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(uuid(IdempotencyKeys::UserId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    .col(integer_null(IdempotencyKeys::StatusCode))
                    .col(text_null(IdempotencyKeys::ResponseHeaders))
                    .col(text_null(IdempotencyKeys::ResponseBody))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .take(),
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Changes::Table.into_iden(),
            Audits::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
