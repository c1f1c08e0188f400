//! Photo evidence and resumable uploads. A photo row is written only after
//! its original and thumbnails are in the object store, so no row ever
//! points at a missing blob. Blobs are content addressed by `sha256`, so the
//! same picture attached twice is stored once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, double_null, integer, string, string_len, string_null, text,
    timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};

use crate::columns::{id, index, references, with_timestamps};
use crate::m20261125_000002_create_users::Users;
use crate::m20261125_000004_create_audits::Audits;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Photos {
    Table,
    Id,
    AuditId,
    ItemKey,
    Sha256,
    ContentType,
    ByteSize,
    Width,
    Height,
    CapturedAt,
    GpsLatitude,
    GpsLongitude,
    Device,
    /// JSON array of plausibility flags.
    Flags,
    ClientPhotoId,
    UploadedBy,
}

#[derive(DeriveIden)]
pub enum Uploads {
    Table,
    Id,
    UserId,
    AuditId,
    ItemKey,
    Filename,
    Length,
    Offset,
    ExpiresAt,
    PhotoId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Photos::Table)
                    .col(id(Photos::Id))
                    .col(uuid(Photos::AuditId))
                    .col(string(Photos::ItemKey))
                    .col(string_len(Photos::Sha256, 64))
                    .col(string_len(Photos::ContentType, 32))
                    .col(big_integer(Photos::ByteSize))
                    .col(integer(Photos::Width))
                    .col(integer(Photos::Height))
                    .col(timestamp_with_time_zone_null(Photos::CapturedAt))
                    .col(double_null(Photos::GpsLatitude))
                    .col(double_null(Photos::GpsLongitude))
                    .col(string_null(Photos::Device))
                    .col(text(Photos::Flags))
                    .col(string_null(Photos::ClientPhotoId))
                    .col(uuid(Photos::UploadedBy))
                    .foreign_key(&mut references(
                        (Photos::Table, Photos::AuditId),
                        (Audits::Table, Audits::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (Photos::Table, Photos::UploadedBy),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;
        manager
            .create_index(index(
                "ix_photos_audit",
                Photos::Table,
                [Photos::AuditId],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "ix_photos_sha256",
                Photos::Table,
                [Photos::Sha256],
                false,
            ))
            .await?;
        manager
            .create_index(index(
                "ux_photos_client_id",
                Photos::Table,
                [Photos::AuditId, Photos::ClientPhotoId],
                true,
            ))
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(Uploads::Table)
                    .col(id(Uploads::Id))
                    .col(uuid(Uploads::UserId))
                    .col(uuid(Uploads::AuditId))
                    .col(string(Uploads::ItemKey))
                    .col(string_null(Uploads::Filename))
                    .col(big_integer(Uploads::Length))
                    .col(big_integer(Uploads::Offset))
                    .col(timestamp_with_time_zone(Uploads::ExpiresAt))
                    .col(uuid_null(Uploads::PhotoId))
                    .foreign_key(&mut references(
                        (Uploads::Table, Uploads::AuditId),
                        (Audits::Table, Audits::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Uploads::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(Photos::Table).take())
            .await?;
        Ok(())
    }
}
