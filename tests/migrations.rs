//! Migrations on an empty database, on SQLite and on PostgreSQL alike: up,
//! down to nothing, and up again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::TestDatabase;
use dostup_migrations::{Migrator, MigratorTrait};
use sea_orm_migration::SchemaManager;

const TABLES: [&str; 6] = [
    "regions",
    "organisations",
    "institutions",
    "sites",
    "users",
    "refresh_tokens",
];

#[tokio::test]
async fn migrations_apply_revert_and_reapply_on_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;
    let conn = dostup::db::connect(&database.url).await.unwrap();
    let manager = SchemaManager::new(&conn);

    for table in TABLES {
        assert!(
            !manager.has_table(table).await.unwrap(),
            "{table} absent before"
        );
    }
    dostup::db::migrate(&conn).await.unwrap();
    for table in TABLES {
        assert!(manager.has_table(table).await.unwrap(), "{table} created");
    }
    let status = dostup::db::migration_status(&conn).await.unwrap();
    assert!(!status.is_empty());
    assert!(status.iter().all(|(_, applied)| *applied), "{status:?}");

    Migrator::down(&conn, None).await.unwrap();
    for table in TABLES {
        assert!(
            !manager.has_table(table).await.unwrap(),
            "{table} dropped by down"
        );
    }
    Migrator::up(&conn, None).await.unwrap();
    assert!(manager.has_table("users").await.unwrap());
    // Applying again is a no-op.
    dostup::db::migrate(&conn).await.unwrap();
    conn.close().await.unwrap();
}

#[test]
fn test_database_urls_keep_host_and_options() {
    assert_eq!(
        common::replace_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        common::replace_database("postgres://u:p@h/db?sslmode=disable", "t2"),
        "postgres://u:p@h/t2?sslmode=disable"
    );
    assert_eq!(
        common::replace_database("postgres://h:1", "t3"),
        "postgres://h:1/t3"
    );
}

#[tokio::test]
async fn replicas_starting_together_migrate_once_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;
    if !database.is_postgres() {
        // The embedded SQLite default runs as a single process.
        return;
    }
    let a = dostup::db::connect(&database.url).await.unwrap();
    let b = dostup::db::connect(&database.url).await.unwrap();
    let c = dostup::db::connect(&database.url).await.unwrap();
    let (ra, rb, rc) = tokio::join!(
        dostup::db::migrate(&a),
        dostup::db::migrate(&b),
        dostup::db::migrate(&c)
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    let status = dostup::db::migration_status(&a).await.unwrap();
    assert!(status.iter().all(|(_, applied)| *applied));
}
