//! Ministry review: claims and revision numbers on audits, a snapshot of
//! every submission, reviewers' per-rule verdicts and decisions, and the
//! hash-chained log of every mutating action with its head (the last
//! entry's number and hash, locked by each append so the chain never forks).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, string, string_len, string_len_null, string_null, text,
    timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};

use crate::columns::{id, index, references, with_timestamps};
use crate::m20261125_000002_create_users::Users;
use crate::m20261125_000004_create_audits::Audits;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditReview {
    /// Number of submissions so far; the current revision.
    Revision,
    ClaimedBy,
    ClaimedAt,
}

#[derive(DeriveIden)]
pub enum AuditRevisions {
    Table,
    AuditId,
    Revision,
    /// JSON object `checklist.item → value` as submitted.
    Answers,
    /// JSON array of `{id, item, sha256}` attached at submission.
    Photos,
    SubmittedBy,
    SubmittedAt,
}

#[derive(DeriveIden)]
pub enum ReviewVerdicts {
    Table,
    AuditId,
    RuleKey,
    /// `confirm` or `override`.
    Kind,
    Verdict,
    EngineOutcome,
    Comment,
    ReviewerId,
    Revision,
}

#[derive(DeriveIden)]
pub enum ReviewDecisions {
    Table,
    Id,
    AuditId,
    Revision,
    Decision,
    Comment,
    /// JSON array of `{rule | item, comment}`.
    Items,
    ReviewerId,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum AuditLog {
    Table,
    Seq,
    At,
    ActorId,
    ActorRole,
    Action,
    TargetType,
    TargetId,
    RegionCode,
    Sector,
    BeforeDigest,
    AfterDigest,
    Detail,
    RequestId,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
pub enum AuditLogHead {
    Table,
    Id,
    Seq,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            integer(AuditReview::Revision).default(0).take(),
            uuid_null(AuditReview::ClaimedBy),
            timestamp_with_time_zone_null(AuditReview::ClaimedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Audits::Table)
                        .add_column(column)
                        .take(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditRevisions::Table)
                    .col(uuid(AuditRevisions::AuditId))
                    .col(integer(AuditRevisions::Revision))
                    .col(text(AuditRevisions::Answers))
                    .col(text(AuditRevisions::Photos))
                    .col(uuid(AuditRevisions::SubmittedBy))
                    .col(timestamp_with_time_zone(AuditRevisions::SubmittedAt))
                    .primary_key(
                        Index::create()
                            .col(AuditRevisions::AuditId)
                            .col(AuditRevisions::Revision),
                    )
                    .foreign_key(&mut references(
                        (AuditRevisions::Table, AuditRevisions::AuditId),
                        (Audits::Table, Audits::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(with_timestamps(
                Table::create()
                    .table(ReviewVerdicts::Table)
                    .col(uuid(ReviewVerdicts::AuditId))
                    .col(string(ReviewVerdicts::RuleKey))
                    .col(string_len(ReviewVerdicts::Kind, 16))
                    .col(string_len(ReviewVerdicts::Verdict, 16))
                    .col(string_len(ReviewVerdicts::EngineOutcome, 16))
                    .col(text(ReviewVerdicts::Comment))
                    .col(uuid(ReviewVerdicts::ReviewerId))
                    .col(integer(ReviewVerdicts::Revision))
                    .primary_key(
                        Index::create()
                            .col(ReviewVerdicts::AuditId)
                            .col(ReviewVerdicts::RuleKey),
                    )
                    .foreign_key(&mut references(
                        (ReviewVerdicts::Table, ReviewVerdicts::AuditId),
                        (Audits::Table, Audits::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (ReviewVerdicts::Table, ReviewVerdicts::ReviewerId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReviewDecisions::Table)
                    .col(id(ReviewDecisions::Id))
                    .col(uuid(ReviewDecisions::AuditId))
                    .col(integer(ReviewDecisions::Revision))
                    .col(string_len(ReviewDecisions::Decision, 16))
                    .col(text(ReviewDecisions::Comment))
                    .col(text(ReviewDecisions::Items))
                    .col(uuid(ReviewDecisions::ReviewerId))
                    .col(timestamp_with_time_zone(ReviewDecisions::CreatedAt))
                    .foreign_key(&mut references(
                        (ReviewDecisions::Table, ReviewDecisions::AuditId),
                        (Audits::Table, Audits::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut references(
                        (ReviewDecisions::Table, ReviewDecisions::ReviewerId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_review_decisions_audit",
                ReviewDecisions::Table,
                [ReviewDecisions::AuditId],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_integer(AuditLog::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(uuid_null(AuditLog::ActorId))
                    .col(string_len_null(AuditLog::ActorRole, 16))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len(AuditLog::TargetType, 32))
                    .col(string(AuditLog::TargetId))
                    .col(string_len_null(AuditLog::RegionCode, 2))
                    .col(string_null(AuditLog::Sector))
                    .col(string_len_null(AuditLog::BeforeDigest, 64))
                    .col(string_len_null(AuditLog::AfterDigest, 64))
                    .col(text(AuditLog::Detail))
                    .col(string_null(AuditLog::RequestId))
                    .col(string_len(AuditLog::PrevHash, 64))
                    .col(string_len(AuditLog::Hash, 64))
                    .take(),
            )
            .await?;
        for statement in [
            index(
                "ix_audit_log_target",
                AuditLog::Table,
                [AuditLog::TargetType, AuditLog::TargetId],
                false,
            ),
            index(
                "ix_audit_log_actor",
                AuditLog::Table,
                [AuditLog::ActorId],
                false,
            ),
            index("ix_audit_log_at", AuditLog::Table, [AuditLog::At], false),
        ] {
            manager.create_index(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditLogHead::Table)
                    .col(integer(AuditLogHead::Id).primary_key())
                    .col(big_integer(AuditLogHead::Seq))
                    .col(string_len(AuditLogHead::Hash, 64))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLogHead::Table.into_iden(),
            AuditLog::Table.into_iden(),
            ReviewDecisions::Table.into_iden(),
            ReviewVerdicts::Table.into_iden(),
            AuditRevisions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        for column in [
            AuditReview::ClaimedAt.into_iden(),
            AuditReview::ClaimedBy.into_iden(),
            AuditReview::Revision.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Audits::Table)
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
