//! The audit log and the `/sync` feed are numbered after commit, by the
//! sealer: concurrent writers never make a follower skip a change, every
//! write is logged once, the background sealer gets there without a reader
//! asking, and a short answer is there for phones that do not need the whole
//! audit after each batch.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::flows::new_audit;
use common::{TestApp, call};
use dostup::db::changes::{self, NewChange};
use dostup::db::entity::{audit_log, audit_log_head, change, outbox};
use reqwest::{Method, StatusCode};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::{Value, json};

/// Sends one batch at `version`; returns the status, the ETag and the body.
async fn send_batch(
    app: &TestApp,
    token: &str,
    id: &str,
    version: i64,
    prefer: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = app
        .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
        .bearer_auth(token)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"answers": {"territory.parking_total": version}}));
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    let (status, headers, body) = call(request).await;
    let etag = headers.get("etag").map(|v| v.to_str().unwrap().to_owned());
    (status, etag, body)
}

/// Follows `/sync` from `cursor` until `has_more` is false; returns the new
/// cursor and every change on the way.
async fn follow(app: &TestApp, token: &str, cursor: Option<String>) -> (String, Vec<Value>) {
    let mut cursor = cursor;
    let mut seen = Vec::new();
    loop {
        let mut request = app
            .get("/api/v1/sync")
            .bearer_auth(token)
            .query(&[("limit", "7")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let (status, _, body) = call(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(body["changes"].as_array().unwrap().iter().cloned());
        cursor = Some(body["cursor"].as_str().unwrap().to_owned());
        if body["has_more"] != true {
            return (cursor.unwrap(), seen);
        }
    }
}

#[tokio::test]
async fn a_follower_during_concurrent_writes_sees_every_version_in_order() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let mut audits = Vec::new();
    for _ in 0..6 {
        audits.push(new_audit(&app, &token, &site).await);
    }
    let (start, _) = follow(&app, &token, None).await;

    // Six writers, ten batches each, while a second device follows the feed.
    let batches = 10;
    let writers: Vec<_> = audits
        .iter()
        .map(|id| {
            let (app_url, id, token) = (app.url(""), id.clone(), token.clone());
            let client = app.client.clone();
            tokio::spawn(async move {
                for version in 1..=batches {
                    let response = client
                        .patch(format!("{app_url}/api/v1/audits/{id}/answers"))
                        .bearer_auth(&token)
                        .header("if-match", format!("\"{version}\""))
                        .json(&json!({"answers": {"territory.parking_total": version}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    let mut cursor = start;
    let mut seen = Vec::new();
    while !writers.iter().all(tokio::task::JoinHandle::is_finished) {
        let (next, changes) = follow(&app, &token, Some(cursor)).await;
        cursor = next;
        seen.extend(changes);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let (_, rest) = follow(&app, &token, Some(cursor)).await;
    seen.extend(rest);

    let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for change in &seen {
        assert_eq!(change["type"], "audit.updated", "{change}");
        versions
            .entry(change["data"]["audit_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(change["data"]["version"].as_i64().unwrap());
    }
    let expected: Vec<i64> = (2..=batches + 1).collect();
    for id in &audits {
        assert_eq!(
            versions.get(id),
            Some(&expected),
            "audit {id}: every version once, in order"
        );
    }

    // Every write is in the log once, and the chain is whole.
    let admin = app.token("admin@demo.local").await;
    let (status, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["intact"], true, "{verified}");
    let logged = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("audit.answers_updated"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(logged, 6 * u64::try_from(batches).unwrap());
}

#[tokio::test]
async fn the_background_sealer_chains_writes_that_nobody_reads() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let id = new_audit(&app, &token, &site).await;
    let (status, _, body) = send_batch(&app, &token, &id, 1, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A rejected batch (stale version) leaves nothing behind.
    let (status, _, _) = send_batch(&app, &token, &id, 1, None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);

    // No reader asks for the log or the feed: the sealer must get there alone.
    let db = &app.state.db;
    eventually("draining the outbox", || async {
        outbox::Entity::find().count(db).await.unwrap() == 0
    })
    .await;
    let mut actions: Vec<String> = audit_log::Entity::find()
        .filter(audit_log::Column::TargetId.eq(id.as_str()))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    actions.sort();
    assert_eq!(actions, ["audit.answers_updated", "audit.created"]);
}

#[tokio::test]
async fn a_change_committed_late_is_numbered_after_those_already_read() {
    let app = TestApp::spawn_demo().await;
    if !app.db.is_postgres() {
        // SQLite has one writer: while a write transaction is open no other
        // write commits, so a change cannot commit after a later one.
        return;
    }
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let (cursor, _) = follow(&app, &token, None).await;

    // A write that takes its time: its change is in the outbox, uncommitted.
    let slow = app.state.db.begin().await.unwrap();
    changes::append(
        &slow,
        NewChange {
            kind: "checklist.published",
            payload: json!({"id": "slow", "version": 1}),
            ..NewChange::default()
        },
    )
    .await
    .unwrap();
    // Meanwhile another write commits, and a follower reads it.
    let id = new_audit(&app, &token, &site).await;
    let (cursor, seen) = follow(&app, &token, Some(cursor)).await;
    let kinds: Vec<&str> = seen.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["audit.created"], "{seen:?}");
    assert_eq!(seen[0]["data"]["audit_id"], id.as_str());

    // The slow write commits: the follower's next read still finds it.
    slow.commit().await.unwrap();
    let (_, seen) = follow(&app, &token, Some(cursor)).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["type"], "checklist.published");
    assert_eq!(seen[0]["data"]["id"], "slow");

    // The column's own sequence kept up with the numbers the sealer gave.
    let last = change::Entity::find()
        .order_by_desc(change::Column::Seq)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let drawn = change::Entity::insert(change::ActiveModel {
        seq: NotSet,
        kind: Set("checklist.published".to_owned()),
        payload: Set("{}".to_owned()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    })
    .exec(&app.state.db)
    .await
    .expect("a row numbered by the sequence does not collide");
    assert!(drawn.last_insert_id > last.seq);
}

/// Refuses, as a database constraint would, every log entry of action
/// `audit.refused`.
async fn refuse_some_entries(app: &TestApp) {
    let db = &app.state.db;
    if app.db.is_postgres() {
        db.execute_unprepared(
            "CREATE FUNCTION refuse_entry() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.action = 'audit.refused' THEN \
             RAISE EXCEPTION 'entries of this kind are refused' USING ERRCODE = 'check_violation'; \
             END IF; RETURN NEW; END $$",
        )
        .await
        .unwrap();
        db.execute_unprepared(
            "CREATE TRIGGER refuse_entry BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_entry()",
        )
        .await
        .unwrap();
    } else {
        db.execute_unprepared(
            "CREATE TRIGGER refuse_entry BEFORE INSERT ON audit_log \
             WHEN NEW.action = 'audit.refused' \
             BEGIN SELECT RAISE(ABORT, 'entries of this kind are refused'); END",
        )
        .await
        .unwrap();
    }
}

/// Waits until `done` holds, for at most 30 s.
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let mut waited = Duration::ZERO;
    while !done().await {
        assert!(
            waited < Duration::from_secs(30),
            "{what} did not happen in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

#[tokio::test]
async fn a_row_the_database_refuses_is_set_aside_and_the_rest_move_on() {
    let app = TestApp::spawn_demo().await;
    refuse_some_entries(&app).await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let (cursor, _) = follow(&app, &token, None).await;
    let bad = common::push_raw_entry(
        &app.state.db,
        common::outbox_entry("audit.refused"),
        chrono::Utc::now(),
    )
    .await;
    let id = new_audit(&app, &token, &site).await;

    // The sealer finds the row the database refuses and sets it aside.
    let db = &app.state.db;
    eventually("setting the refused row aside", || async {
        let row = outbox::Entity::find_by_id(bad).one(db).await.unwrap();
        row.expect("the refused row is kept").failure.is_some()
    })
    .await;
    let row = outbox::Entity::find_by_id(bad)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.failure
            .as_deref()
            .unwrap()
            .contains("entries of this kind are refused"),
        "the reason is the database's: {:?}",
        row.failure
    );
    // The write behind it reached the feed and the log.
    let (_, seen) = follow(&app, &token, Some(cursor)).await;
    assert!(
        seen.iter().any(|c| c["data"]["audit_id"] == id.as_str()),
        "{seen:?}"
    );
    let admin = app.token("admin@demo.local").await;
    let (_, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["unsealed"]["set_aside"], 1, "{verified}");
    assert_eq!(verified["unsealed"]["waiting"], 0, "{verified}");
}

#[tokio::test]
async fn when_every_row_fails_none_is_set_aside() {
    let app = TestApp::spawn_demo().await;
    let db = &app.state.db;
    // The log's head row is gone: no entry can be chained, whichever it is.
    let head = audit_log_head::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    audit_log_head::Entity::delete_many()
        .exec(db)
        .await
        .unwrap();
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    new_audit(&app, &token, &site).await;
    // Readers go on without the newest entries meanwhile.
    let (status, _, _) = call(app.get("/api/v1/sync").bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    // Give the sealer time for a failed pass and its recovery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = outbox::Entity::find().all(db).await.unwrap();
    assert!(rows.len() >= 2, "the writes wait in the outbox: {rows:?}");
    assert!(rows.iter().all(|r| r.failure.is_none()), "{rows:?}");
    // Verification still answers, and counts what waits.
    let admin = app.token("admin@demo.local").await;
    let (status, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert!(
        verified["unsealed"]["waiting"].as_u64().unwrap() >= 2,
        "{verified}"
    );
    assert_eq!(verified["unsealed"]["set_aside"], 0, "{verified}");

    // Once the head is back, everything is sealed in one unbroken chain.
    audit_log_head::Entity::insert(audit_log_head::ActiveModel::from(head))
        .exec(db)
        .await
        .unwrap();
    eventually("sealing after the repair", || async {
        outbox::Entity::find().count(db).await.unwrap() == 0
    })
    .await;
    let (_, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(verified["intact"], true, "{verified}");
}

#[tokio::test]
async fn a_row_this_release_cannot_read_waits_for_one_that_can() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let (cursor, _) = follow(&app, &token, None).await;
    // Written a moment ago by a newer release, in a shape this one cannot read.
    let newer = common::push_raw_entry(
        &app.state.db,
        json!({"format": 2}).to_string(),
        chrono::Utc::now(),
    )
    .await;
    let id = new_audit(&app, &token, &site).await;
    let (_, seen) = follow(&app, &token, Some(cursor)).await;
    assert!(
        seen.iter().any(|c| c["data"]["audit_id"] == id.as_str()),
        "the writes behind it are not held up: {seen:?}"
    );
    let row = outbox::Entity::find_by_id(newer)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the row stays in the outbox");
    assert_eq!(row.failure, None, "it stays in line, not set aside");
}

#[tokio::test]
async fn a_minimal_answer_carries_the_version_and_the_verdict() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let id = new_audit(&app, &token, &site).await;

    let (status, etag, full) = send_batch(&app, &token, &id, 1, None).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(etag.as_deref(), Some("\"2\""));

    let request = app
        .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
        .bearer_auth(&token)
        .header("if-match", "\"2\"")
        .header("prefer", "handling=lenient, return=minimal")
        .json(&json!({"answers": {"territory.parking_total": 4}}));
    let (status, headers, short) = call(request).await;
    assert_eq!(status, StatusCode::OK, "{short}");
    assert_eq!(headers["etag"], "\"3\"");
    assert_eq!(headers["preference-applied"], "return=minimal");
    assert_eq!(short["id"], id.as_str());
    assert_eq!(short["version"], 3);
    assert_eq!(short["status"], "draft");
    assert!(
        short.get("answers").is_none() && short.get("evaluation").is_none(),
        "{short}"
    );
    // The verdict is the one the full answer gives for the same answers.
    let (_, _, now) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(short["summary"], now["evaluation"]["summary"]);
    assert_eq!(short["complete"], now["evaluation"]["complete"]);
    assert_eq!(now["answers"]["territory.parking_total"], 4);
    assert_eq!(full["evaluation"]["complete"], false);

    // A retry of a short answer is replayed short.
    for attempt in 0..2 {
        let request = app
            .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
            .bearer_auth(&token)
            .header("if-match", "\"3\"")
            .header("prefer", "return=minimal")
            .header("idempotency-key", "short-batch")
            .json(&json!({"answers": {"territory.parking_total": 5}}));
        let (status, headers, body) = call(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["preference-applied"], "return=minimal");
        assert_eq!(body["version"], 4, "attempt {attempt}: {body}");
        assert!(body.get("answers").is_none(), "{body}");
        assert_eq!(headers.contains_key("idempotent-replayed"), attempt == 1);
    }

    // Errors are the same problem documents with or without the preference.
    let (status, _, body) = send_batch(&app, &token, &id, 2, Some("return=minimal")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["code"], "version-mismatch");
    assert_eq!(body["current_version"], 4);
}

/// On the embedded database, written answers reach the database file itself
/// within moments, not only its write-ahead log: a copy of the file alone
/// (what a naive backup takes) holds them.
#[tokio::test]
async fn answers_reach_the_database_file_within_moments() {
    let app = TestApp::spawn_demo().await;
    if app.db.is_postgres() {
        return;
    }
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "").await;
    let id = new_audit(&app, &token, &site).await;
    common::flows::patch(&app, &token, &id, json!({"territory.path_width": 2.5})).await;

    let file = app.dir.path().join("dostup.db");
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("copy.db");
    let audit_id = uuid::Uuid::parse_str(&id).unwrap();
    eventually("a checkpoint into the database file", || {
        std::fs::copy(&file, &copy).unwrap();
        let answers: Option<String> = rusqlite::Connection::open(&copy)
            .unwrap()
            .query_row(
                "SELECT answers FROM audits WHERE id = ?1",
                [audit_id.as_bytes()],
                |row| row.get(0),
            )
            .ok();
        std::future::ready(answers.is_some_and(|a| a.contains("territory.path_width")))
    })
    .await;
}

/// On the embedded database, a write that finds SQLite's write lock held by
/// another process (the command line, say) waits for it without holding up
/// the service's other requests, even on a runtime of one worker, and goes
/// through once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_write_waits_for_another_process_without_stalling_other_requests() {
    let app = TestApp::spawn_demo().await;
    if app.db.is_postgres() {
        return;
    }
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "").await;
    let id = new_audit(&app, &token, &site).await;

    let other = rusqlite::Connection::open(app.dir.path().join("dostup.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let write = send_batch(&app, &token, &id, 1, None);
    let meanwhile = async {
        // Reads keep being answered while the write waits for the lock.
        for _ in 0..20 {
            let (status, _, audit) =
                call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
            assert_eq!(status, StatusCode::OK, "{audit}");
            assert_eq!(audit["version"], 1);
        }
        other.execute_batch("COMMIT").unwrap();
    };
    let ((status, _, body), ()) = tokio::join!(write, meanwhile);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
}

/// A column a later release adds to the log or the feed (during a rolling
/// upgrade the older replicas still seal) gets its default: the sealing
/// pass names the columns it writes.
#[tokio::test]
async fn columns_a_later_release_adds_get_their_defaults_when_entries_are_sealed() {
    let app = TestApp::spawn_demo().await;
    let db = &app.state.db;
    for table in ["audit_log", "changes"] {
        db.execute_unprepared(&format!(
            "ALTER TABLE {table} ADD COLUMN added_later INTEGER NOT NULL DEFAULT 7"
        ))
        .await
        .unwrap();
    }
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let id = new_audit(&app, &token, &site).await;
    let (status, _, body) = send_batch(&app, &token, &id, 1, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    eventually("draining the outbox", || async {
        outbox::Entity::find().count(db).await.unwrap() == 0
    })
    .await;
    for table in ["audit_log", "changes"] {
        let counts = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT COUNT(*) AS all_rows, \
                     SUM(CASE WHEN added_later = 7 THEN 1 ELSE 0 END) AS defaulted FROM {table}"
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let all: i64 = counts.try_get("", "all_rows").unwrap();
        let defaulted: i64 = counts.try_get("", "defaulted").unwrap();
        assert!(all >= 2, "{table}: the creation and the batch were sealed");
        assert_eq!(defaulted, all, "{table}: every row has the default");
    }
    let (_, changes) = follow(&app, &token, None).await;
    assert!(
        changes
            .iter()
            .any(|c| c["type"] == "audit.updated" && c["data"]["audit_id"] == id.as_str()),
        "the batch reached the feed"
    );
}
