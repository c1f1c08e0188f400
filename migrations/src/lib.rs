//! Schema history of Dostup. Every file is one schema change, named
//! `mYYYYMMDD_HHMMSS_verb_noun`, and is never edited once it has landed: a fix
//! is a new migration. The same migrations run on SQLite (embedded default) and
//! PostgreSQL (production), so only portable column types are used here.

pub use sea_orm_migration::prelude::*;

mod columns;
mod m20261125_000001_create_directory;
mod m20261125_000002_create_users;
mod m20261125_000003_create_catalog;
mod m20261125_000004_create_audits;
mod m20261125_000005_create_photos;
mod m20261202_000006_create_review;
mod m20261202_000007_create_rating;
mod m20261202_000008_create_outbox;
mod m20261203_000009_add_outbox_failure;
mod m20261203_000010_compress_stored_responses;

/// Applies Dostup's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_directory::Migration),
            Box::new(m20261125_000002_create_users::Migration),
            Box::new(m20261125_000003_create_catalog::Migration),
            Box::new(m20261125_000004_create_audits::Migration),
            Box::new(m20261125_000005_create_photos::Migration),
            Box::new(m20261202_000006_create_review::Migration),
            Box::new(m20261202_000007_create_rating::Migration),
            Box::new(m20261202_000008_create_outbox::Migration),
            Box::new(m20261203_000009_add_outbox_failure::Migration),
            Box::new(m20261203_000010_compress_stored_responses::Migration),
        ]
    }
}
