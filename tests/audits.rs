//! Field audits as a volunteer's phone drives them on a flaky network:
//! idempotent creation, answer batches under If-Match, validation,
//! submission, scope, sync and Idempotency-Key replays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::collections::HashSet;

use common::{TestApp, assert_problem, call, item_with_id, refused};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

fn put_audit(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::RequestBuilder {
    app.request(Method::PUT, &format!("/api/v1/audits/{id}"))
        .bearer_auth(token)
        .json(body)
}

fn patch(
    app: &TestApp,
    token: &str,
    id: &str,
    version: Option<&str>,
    answers: Value,
) -> reqwest::RequestBuilder {
    let mut request = app
        .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
        .bearer_auth(token)
        .json(&json!({"answers": answers}));
    if let Some(v) = version {
        request = request.header("if-match", v);
    }
    request
}

/// The demo volunteer's token and a new audit of theirs on the demo school.
async fn volunteer_audit(app: &TestApp) -> (String, String) {
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let id = Uuid::new_v4().to_string();
    call(put_audit(app, &token, &id, &json!({"site_id": site}))).await;
    (token, id)
}

/// PostgreSQL: another session takes audit `id`'s row, as a slow
/// transaction would, and keeps it until the returned transaction ends.
async fn hold_audit(
    app: &TestApp,
    id: &str,
) -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    use sea_orm::TransactionTrait;

    let holder = sea_orm::Database::connect(&app.db.url).await.unwrap();
    let lock = holder.begin().await.unwrap();
    lock.execute_unprepared(&format!(
        "SELECT 1 FROM audits WHERE id = '{id}' FOR UPDATE"
    ))
    .await
    .unwrap();
    (holder, lock)
}

/// Sets `column` of `user`'s `key` to `hours` ago, as if the key had been
/// claimed or last touched then.
async fn age_key(
    db: &sea_orm::DatabaseConnection,
    user: Uuid,
    key: &str,
    column: dostup::db::entity::idempotency_key::Column,
    hours: i64,
) {
    use dostup::db::entity::idempotency_key;
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};

    idempotency_key::Entity::update_many()
        .col_expr(
            column,
            Expr::value(chrono::Utc::now() - chrono::Duration::hours(hours)),
        )
        .filter(idempotency_key::Column::UserId.eq(user))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await
        .unwrap();
}

/// Asks `sessions` (sessions waiting for a lock, counted or ended) every
/// 25 ms for up to 5 s, until it finds some; how many it found last.
async fn once_sessions_wait<F: std::future::Future<Output = usize>>(
    mut sessions: impl FnMut() -> F,
) -> usize {
    for _ in 0..200 {
        let found = sessions().await;
        if found > 0 {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    0
}

async fn sync(app: &TestApp, token: &str, cursor: Option<&str>) -> Value {
    let mut request = app.get("/api/v1/sync").bearer_auth(token);
    if let Some(c) = cursor {
        request = request.query(&[("cursor", c)]);
    }
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn checklists_and_bundles_download_once_and_revalidate_with_304() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let (status, _, list) = call(app.get("/api/v1/checklists").bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    let zones: HashSet<&str> = items.iter().map(|c| c["zone"].as_str().unwrap()).collect();
    for zone in [
        "territory",
        "approach",
        "entrance",
        "routes",
        "service",
        "sanitary",
        "information",
    ] {
        assert!(zones.contains(zone), "zone {zone} covered");
    }
    let entrance = items.iter().find(|c| c["id"] == "entrance").unwrap();
    assert!(
        entrance["title"]["ru"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| ('а'..='я').contains(&c))
    );

    let path = format!(
        "/api/v1/checklists/entrance/versions/{}",
        entrance["version"].as_str().unwrap()
    );
    let (status, headers, compiled) = call(app.get(&path).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], entrance["etag"].as_str().unwrap());
    assert_eq!(compiled["id"], "entrance");
    assert!(
        compiled["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == "level_entrance")
    );

    let (status, _, body) = call(
        app.get(&path)
            .bearer_auth(&token)
            .header("if-none-match", entrance["etag"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(body, Value::Null, "304 has no body");

    let missing = app
        .get("/api/v1/checklists/entrance/versions/9.9.9")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "not-found").await;

    let (_, _, methodologies) = call(app.get("/api/v1/methodologies").bearer_auth(&token)).await;
    let nok = item_with_id(&methodologies, "nok-344n");
    assert_eq!(nok["default"], true);
    let bundle = app
        .get("/api/v1/methodologies/nok-344n/bundle")
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bundle.headers()["content-encoding"],
        "gzip",
        "bundles travel compressed"
    );
    assert_eq!(
        bundle.headers()["etag"],
        nok["bundle_etag"].as_str().unwrap()
    );
    let (status, _, bundle) = call(
        app.get("/api/v1/methodologies/nok-344n/bundle")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["checklists"].as_array().unwrap().len(), items.len());
    assert_eq!(bundle["methodology"]["id"], "nok-344n");
    let (status, _, _) = call(
        app.get("/api/v1/methodologies/nok-344n/bundle")
            .bearer_auth(&token)
            .header("if-none-match", nok["bundle_etag"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
}

/// Sends `request` with `accept-encoding: accept` and returns the
/// `content-encoding` of the answer (empty for none), its body decoded, the
/// length of the body as sent and the headers.
async fn fetch_decoded(
    request: reqwest::RequestBuilder,
    accept: &str,
) -> (String, Vec<u8>, usize, reqwest::header::HeaderMap) {
    use std::io::Read;
    let response = request
        .header("accept-encoding", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "accept-encoding: {accept}"
    );
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap();
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut decoded = Vec::new();
    match coding.as_str() {
        "" => decoded.extend_from_slice(&raw),
        "gzip" => {
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut decoded)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(&raw[..], 4096)
                .read_to_end(&mut decoded)
                .unwrap();
        }
        other => panic!("unexpected content-encoding {other}"),
    }
    (coding, decoded, raw.len(), headers)
}

/// Whether `Vary` tells caches that the answer depends on `Accept-Encoding`.
fn varies_by_encoding(headers: &reqwest::header::HeaderMap) -> bool {
    headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("accept-encoding"))
    })
}

#[tokio::test]
async fn downloads_and_answers_travel_in_the_coding_the_client_accepts() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let bundle = || {
        app.get("/api/v1/methodologies/nok-344n/bundle")
            .bearer_auth(&token)
    };
    let plain = bundle().send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].clone();
    let plain = plain.bytes().await.unwrap().to_vec();

    let mut sizes = std::collections::HashMap::new();
    for (accept, expected) in [
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("*", "br"),
        ("gzip", "gzip"),
        ("br;q=0, gzip;q=0.5", "gzip"),
        ("br;q=0, *", "gzip"),
        ("identity", ""),
        ("gzip;q=0", ""),
        ("deflate", ""),
        ("br, identity;q=0", "br"),
        ("*;q=0, gzip", "gzip"),
        ("*;q=0, identity", ""),
    ] {
        let (coding, decoded, raw, headers) = fetch_decoded(bundle(), accept).await;
        assert_eq!(coding, expected, "bundle with accept-encoding: {accept}");
        assert_eq!(
            decoded, plain,
            "the same document in every coding ({accept})"
        );
        assert_eq!(headers["etag"], etag, "one ETag for every coding");
        assert!(
            varies_by_encoding(&headers),
            "caches are told the coding depends on accept-encoding ({accept})"
        );
        if !expected.is_empty() {
            assert_eq!(
                headers["content-length"].to_str().unwrap(),
                raw.to_string(),
                "a kept document is sent whole, with its length"
            );
            sizes.insert(expected, raw);
        }
    }
    assert!(
        sizes["br"] < sizes["gzip"] && sizes["gzip"] * 4 < plain.len(),
        "kept downloads are compressed hard: {sizes:?} of {}",
        plain.len()
    );

    // A compiled checklist is kept compressed too, and revalidates as before.
    let (_, _, listed) = call(app.get("/api/v1/checklists").bearer_auth(&token)).await;
    let entrance = item_with_id(&listed, "entrance");
    let path = format!(
        "/api/v1/checklists/entrance/versions/{}",
        entrance["version"].as_str().unwrap()
    );
    let (coding, decoded, _, headers) =
        fetch_decoded(app.get(&path).bearer_auth(&token), "br").await;
    assert_eq!(coding, "br");
    let compiled: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(compiled["id"], "entrance");
    let (status, _, _) = call(
        app.get(&path)
            .bearer_auth(&token)
            .header("accept-encoding", "br")
            .header("if-none-match", headers["etag"].to_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Answers are made per request: gzip, which costs the least on the fly;
    // a client that accepts brotli alone gets them as they are.
    let site = app.demo_site(&token, "библиотека").await;
    let id = Uuid::new_v4().to_string();
    let (status, _, _) = call(put_audit(&app, &token, &id, &json!({"site_id": site}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let answers = json!({"territory.parking_total": 4});
    let (coding, decoded, raw, _) = fetch_decoded(
        patch(&app, &token, &id, Some("\"1\""), answers.clone()),
        "gzip, deflate, br",
    )
    .await;
    assert_eq!(coding, "gzip");
    assert!(raw * 3 < decoded.len(), "{raw} bytes for {}", decoded.len());
    let patched: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(patched["answers"]["territory.parking_total"], 4);
    let (status, _, stored) =
        call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        patched, stored,
        "the compressed answer is the audit as stored"
    );
    let (coding, decoded, _, _) = fetch_decoded(
        patch(
            &app,
            &token,
            &id,
            Some("\"2\""),
            json!({"territory.parking_total": 5}),
        ),
        "br",
    )
    .await;
    assert_eq!(coding, "", "brotli is kept for the documents made once");
    let patched: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(patched["version"], 3);

    // A client that accepts no coding the answer could come in is refused
    // before the write, not told 406 after it was made.
    for accept in [
        "identity;q=0",
        "*;q=0",
        "deflate, identity;q=0",
        "gzip;q=0, *;q=0",
    ] {
        refused(
            patch(
                &app,
                &token,
                &id,
                Some("\"3\""),
                json!({"territory.parking_total": 99}),
            )
            .header("accept-encoding", accept),
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
        )
        .await;
    }
    let audit = || app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token);
    let (_, _, unchanged) = call(audit()).await;
    assert_eq!(unchanged["version"], 3, "nothing was written");
    assert_eq!(unchanged["answers"]["territory.parking_total"], 5);
    for (accept, expected) in [("identity;q=0, gzip", "gzip"), ("*;q=0, identity", "")] {
        let (coding, decoded, _, _) = fetch_decoded(audit(), accept).await;
        assert_eq!(coding, expected, "accept-encoding: {accept}");
        let read: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(read, unchanged);
    }

    // A keyed answer goes out as the stream stored for replay, framed as
    // gzip (the decoder checks its CRC and length); a replay comes in
    // whatever coding the retry accepts.
    let keyed = || {
        patch(
            &app,
            &token,
            &id,
            Some("\"3\""),
            json!({"territory.parking_total": 6}),
        )
        .header("idempotency-key", "coding-1")
    };
    let (coding, first, raw, headers) = fetch_decoded(keyed(), "gzip").await;
    assert_eq!(coding, "gzip");
    assert_eq!(headers["content-length"].to_str().unwrap(), raw.to_string());
    assert!(varies_by_encoding(&headers));
    assert!(headers.get("idempotent-replayed").is_none());
    let first: Value = serde_json::from_slice(&first).unwrap();
    let (_, _, stored) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(first, stored);
    assert_eq!(first["version"], 4);
    for accept in ["identity", "gzip", "gzip, deflate, br"] {
        let (coding, replayed, _, headers) = fetch_decoded(keyed(), accept).await;
        assert_eq!(headers["idempotent-replayed"], "true", "{accept}");
        assert_eq!(
            coding,
            if accept == "identity" { "" } else { "gzip" },
            "{accept}"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&replayed).unwrap(),
            first,
            "{accept}"
        );
    }
}

#[tokio::test]
async fn a_scripted_offline_session_reaches_the_second_device() {
    let app = TestApp::spawn_demo().await;
    let phone = app.token("volunteer@demo.local").await;
    let tablet = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&phone, "библиотека").await;

    // The tablet starts following before anything happens.
    let first = sync(&app, &tablet, None).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    assert!(
        first["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "checklist.published")
    );

    // Create, lose the response, retry: same audit, 201 then 200.
    let id = Uuid::new_v4().to_string();
    let body = json!({"site_id": site, "started_at": "2026-11-20T09:00:00Z"});
    let (status, headers, created) = call(put_audit(&app, &phone, &id, &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(created["status"], "draft");
    assert_eq!(
        created["methodology"]["id"], "nok-344n",
        "the default methodology is pinned"
    );
    let (status, _, again) = call(put_audit(&app, &phone, &id, &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(again["version"], 1);
    let other_site = app.demo_site(&phone, "музей").await;
    let conflict = put_audit(&app, &phone, &id, &json!({"site_id": other_site}))
        .send()
        .await
        .unwrap();
    assert_problem(conflict, StatusCode::CONFLICT, "audit-conflict").await;

    // Batch 1.
    let (status, headers, v2) = call(patch(
        &app,
        &phone,
        &id,
        Some("\"1\""),
        json!({"entrance.level_entrance": false, "territory.path_width": 2.5, "territory.path_surface": "hard_even"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(v2["answers"]["territory.path_width"], 2.5);
    assert!(
        v2["evaluation"]["rules"].as_array().unwrap().len() > 50,
        "re-evaluated"
    );

    // Batch 2 from an outdated copy: 412 with the current version…
    let stale = patch(
        &app,
        &phone,
        &id,
        Some("\"1\""),
        json!({"territory.path_width": 1.2}),
    )
    .send()
    .await
    .unwrap();
    let body = assert_problem(stale, StatusCode::PRECONDITION_FAILED, "version-mismatch").await;
    assert_eq!(body["current_version"], 2);
    // …the client merges and retries on top of version 2.
    let (status, _, v3) = call(patch(
        &app,
        &phone,
        &id,
        Some("\"2\""),
        json!({"territory.path_width": 1.2, "territory.path_surface": null, "entrance_ramp.ramp_present": true}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{v3}");
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["answers"]["territory.path_width"], 1.2);
    assert!(
        v3["answers"].get("territory.path_surface").is_none(),
        "null clears"
    );
    assert_eq!(
        v3["answers"]["entrance.level_entrance"], false,
        "earlier answers kept"
    );

    // Batch 3 with bad values: every one is named, nothing is stored.
    let bad = patch(
        &app,
        &phone,
        &id,
        Some("\"3\""),
        json!({
            "territory.path_width": "wide",
            "territory.parking_total": 1e9,
            "territory.path_surface": "lava",
            "nowhere.nothing": 1,
            "entrance.landing_width": {"value": 2, "unit": "percent"}
        }),
    )
    .send()
    .await
    .unwrap();
    let body = assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    let mut codes: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("entrance.landing_width".into(), "unit-mismatch".into()),
            ("nowhere.nothing".into(), "unknown-item".into()),
            ("territory.parking_total".into(), "out-of-range".into()),
            ("territory.path_surface".into(), "unknown-option".into()),
            ("territory.path_width".into(), "wrong-type".into()),
        ]
    );
    let (_, headers, unchanged) =
        call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&phone)).await;
    assert_eq!(headers["etag"], "\"3\"");
    assert_eq!(unchanged["answers"]["territory.path_width"], 1.2);

    // No If-Match at all.
    let blind = patch(&app, &phone, &id, None, json!({"territory.path_width": 3}))
        .send()
        .await
        .unwrap();
    assert_problem(
        blind,
        StatusCode::PRECONDITION_REQUIRED,
        "precondition-required",
    )
    .await;

    // Submitting now lists what is missing, answers and photos alike.
    let incomplete = app
        .post_json(&format!("/api/v1/audits/{id}/submit"), &json!({}))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    let body = assert_problem(
        incomplete,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["code"] == "answer-required" && e["field"] == "territory.parking_total")
    );
    assert!(
        errors
            .iter()
            .any(|e| e["code"] == "photo-required" && e["field"] == "entrance.level_entrance")
    );
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == "answer-required" || e["code"] == "photo-required")
    );

    // The tablet catches up: creation and both successful batches, in order.
    let caught_up = sync(&app, &tablet, Some(&cursor)).await;
    let audit_changes: Vec<(String, i64)> = caught_up["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["data"]["audit_id"] == id.as_str())
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["data"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        audit_changes,
        vec![
            ("audit.created".into(), 1),
            ("audit.updated".into(), 2),
            ("audit.updated".into(), 3)
        ]
    );
    assert_eq!(caught_up["has_more"], false);
    let quiet = sync(&app, &tablet, caught_up["cursor"].as_str()).await;
    assert!(quiet["changes"].as_array().unwrap().is_empty());
    assert_eq!(
        quiet["cursor"], caught_up["cursor"],
        "an empty batch keeps the cursor"
    );
}

#[tokio::test]
async fn audits_are_visible_only_within_scope() {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&volunteer, "школа").await;
    let id = Uuid::new_v4().to_string();
    let (status, _, _) = call(put_audit(&app, &volunteer, &id, &json!({"site_id": site}))).await;
    assert_eq!(status, StatusCode::CREATED);

    // A second volunteer of another organisation.
    let admin = app.token("admin@demo.local").await;
    let (status, _, _) = call(app.post_json(
        "/api/v1/users",
        &json!({"email": "other@demo.local", "password": "other-password", "role": "volunteer", "region": "48"}),
    ).bearer_auth(&admin))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let other = app
        .login("other@demo.local", "other-password")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let other = other["access_token"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/audits/{id}");
    let hidden = app.get(&path).bearer_auth(&other).send().await.unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND, "not-found").await;
    let hidden_edit = patch(
        &app,
        &other,
        &id,
        Some("\"1\""),
        json!({"territory.path_width": 2}),
    )
    .send()
    .await
    .unwrap();
    assert_problem(hidden_edit, StatusCode::NOT_FOUND, "not-found").await;
    let taken_id = put_audit(&app, &other, &id, &json!({"site_id": site}))
        .send()
        .await
        .unwrap();
    assert_problem(taken_id, StatusCode::CONFLICT, "audit-conflict").await;

    let coordinator = app.token("coordinator@demo.local").await;
    assert_eq!(
        app.get(&path)
            .bearer_auth(&coordinator)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let reviewer = app.token("reviewer@demo.local").await;
    let draft_hidden = app.get(&path).bearer_auth(&reviewer).send().await.unwrap();
    assert_problem(draft_hidden, StatusCode::NOT_FOUND, "not-found").await;
    assert_eq!(
        app.get(&path)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let (_, _, mine) = call(app.get("/api/v1/audits").bearer_auth(&volunteer)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, _, theirs) = call(app.get("/api/v1/audits").bearer_auth(&other)).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let (_, _, drafts) = call(
        app.get("/api/v1/audits?status=draft")
            .bearer_auth(&coordinator),
    )
    .await;
    assert_eq!(drafts["items"].as_array().unwrap().len(), 1);
    let (_, _, none) = call(
        app.get("/api/v1/audits?status=submitted")
            .bearer_auth(&coordinator),
    )
    .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, _, later) = call(
        app.get("/api/v1/audits?updated_since=2100-01-01T00:00:00Z")
            .bearer_auth(&volunteer),
    )
    .await;
    assert!(later["items"].as_array().unwrap().is_empty());
    let bad = app
        .get("/api/v1/audits?status=finished")
        .bearer_auth(&volunteer)
        .send()
        .await
        .unwrap();
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid-query").await;

    // Other people's changes never reach this volunteer's sync feed.
    let feed = sync(&app, &other, None).await;
    assert!(
        feed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["data"]["audit_id"].is_null())
    );

    // Reviewers and councils do not run audits.
    let council = app.token("council@demo.local").await;
    let refused = put_audit(
        &app,
        &council,
        &Uuid::new_v4().to_string(),
        &json!({"site_id": site}),
    )
    .send()
    .await
    .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn bad_creations_name_the_field() {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&volunteer, "школа").await;
    let cases = [
        (
            json!({"site_id": Uuid::new_v4()}),
            "site_id",
            "unknown-site",
        ),
        (
            json!({"site_id": site, "methodology": {"id": "nok-344n", "version": "0.0.1"}}),
            "methodology",
            "unknown-methodology",
        ),
        (
            json!({"site_id": site, "methodology": {"id": "passport-627", "version": "1.0.0"}}),
            "methodology",
            "not-a-scoring-methodology",
        ),
        (json!({"site_id": "not-a-uuid"}), "site_id", "invalid-value"),
        (
            json!({"site_id": site, "colour": "red"}),
            "colour",
            "unknown-field",
        ),
    ];
    for (body, field, code) in cases {
        let response = put_audit(&app, &volunteer, &Uuid::new_v4().to_string(), &body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }
    let explicit = put_audit(
        &app,
        &volunteer,
        &Uuid::new_v4().to_string(),
        &json!({"site_id": site, "methodology": {"id": "example-region-points", "version": "0.2.0"}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        explicit.status(),
        StatusCode::CREATED,
        "a points methodology can be chosen"
    );
    let bad_id = put_audit(&app, &volunteer, "123", &json!({"site_id": site}))
        .send()
        .await
        .unwrap();
    assert_problem(bad_id, StatusCode::BAD_REQUEST, "invalid-path").await;
}

#[tokio::test]
async fn parallel_writes_with_one_version_let_exactly_one_through() {
    // With the copy of the audit the service keeps after writing it (all
    // writers start from it), and without one (all read the stored audit).
    for kept in [dostup::config::DEFAULT_AUDIT_CACHE_ENTRIES, 0] {
        let app = TestApp::spawn_with(|s| s.audit_cache_entries = kept).await;
        dostup::demo::seed(&app.state.db).await.expect("demo seed");
        one_of_parallel_writes_wins(&app).await;
    }
}

async fn one_of_parallel_writes_wins(app: &TestApp) {
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let id = Uuid::new_v4().to_string();
    call(put_audit(app, &token, &id, &json!({"site_id": site}))).await;

    let writers = 16;
    let requests = (0..writers).map(|i| {
        let request = patch(
            app,
            &token,
            &id,
            Some("\"1\""),
            json!({"territory.parking_total": i}),
        );
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_statuses(requests).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let stale = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!(won, 1, "{statuses:?}");
    assert_eq!(stale, writers - 1, "{statuses:?}");

    let (_, _, audit) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(audit["version"], 2, "one write, one version bump");
    let feed = sync(app, &token, None).await;
    let updates = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "audit.updated")
        .count();
    assert_eq!(updates, 1, "no phantom changes from losers");
}

async fn futures_statuses<F: std::future::Future<Output = StatusCode> + Send + 'static>(
    requests: impl Iterator<Item = F>,
) -> Vec<StatusCode> {
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// Volunteers answering different audits at the same moment: every batch
/// lands once, on its own audit, with its own answer and version, keyed or
/// not, and the feed has each change once, in each audit's order. On
/// PostgreSQL writes that come in together share one statement, on SQLite
/// one transaction.
#[tokio::test]
async fn simultaneous_writes_to_many_audits_each_land_once_on_their_own_audit() {
    let app = std::sync::Arc::new(TestApp::spawn_demo().await);
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let audits: Vec<String> = (0..12).map(|_| Uuid::new_v4().to_string()).collect();
    for id in &audits {
        call(put_audit(&app, &token, id, &json!({"site_id": site}))).await;
    }
    let cursor = sync(&app, &token, None).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    let steps = 4_i64;
    let value = |audit: usize, step: i64| i64::try_from(audit).unwrap() * 100 + step;
    let writers = audits.iter().enumerate().map(|(a, id)| {
        let (app, token, id) = (std::sync::Arc::clone(&app), token.clone(), id.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for step in 0..steps {
                let mut request = patch(
                    &app,
                    &token,
                    &id,
                    Some(&format!("\"{}\"", step + 1)),
                    json!({"territory.parking_total": value(a, step)}),
                );
                if (a + usize::try_from(step).unwrap()) % 2 == 0 {
                    request = request.header("idempotency-key", format!("many-{a}-{step}"));
                }
                let (status, _, body) = call(request).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                answers.push(body);
            }
            answers
        })
    });
    let writers: Vec<_> = writers.collect();
    for (a, writer) in writers.into_iter().enumerate() {
        for (step, body) in (0..steps).zip(writer.await.unwrap()) {
            assert_eq!(body["id"], audits[a].as_str(), "{body}");
            assert_eq!(body["version"], step + 2, "{body}");
            assert_eq!(
                body["answers"]["territory.parking_total"],
                value(a, step),
                "{body}"
            );
        }
    }

    // A keyed batch replays its own answer.
    let replay = patch(
        &app,
        &token,
        &audits[3],
        Some("\"2\""),
        json!({"territory.parking_total": value(3, 1)}),
    )
    .header("idempotency-key", "many-3-1");
    let (status, headers, body) = call(replay).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(body["id"], audits[3].as_str());
    assert_eq!(body["version"], 3);

    let feed = sync(&app, &token, Some(&cursor)).await;
    for (a, id) in audits.iter().enumerate() {
        let (status, _, audit) =
            call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(audit["version"], steps + 1, "{audit}");
        assert_eq!(
            audit["answers"]["territory.parking_total"],
            value(a, steps - 1)
        );
        let versions: Vec<i64> = feed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "audit.updated" && c["data"]["audit_id"] == id.as_str())
            .map(|c| c["data"]["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, vec![2, 3, 4, 5], "audit {a}");
    }
}

/// A transaction that holds one audit (a slow submission, an operator's
/// session) holds up the answers to that audit only: a write to another
/// audit goes through meanwhile, and the held one is written once the
/// holder lets go.
#[tokio::test]
async fn an_audit_held_by_another_transaction_holds_up_only_its_own_writes() {
    let app = TestApp::spawn_demo().await;
    if !app.db.is_postgres() {
        // SQLite writes one transaction at a time: nothing holds one row.
        return;
    }
    let (token, held) = volunteer_audit(&app).await;
    let free = Uuid::new_v4().to_string();
    let site = app.demo_site(&token, "школа").await;
    call(put_audit(&app, &token, &free, &json!({"site_id": site}))).await;

    let (_holder, lock) = hold_audit(&app, &held).await;
    let waiting = tokio::spawn(
        patch(
            &app,
            &token,
            &held,
            Some("\"1\""),
            json!({"territory.parking_total": 1}),
        )
        .send(),
    );
    let waits = once_sessions_wait(|| app.db.waiting_sessions()).await;
    assert_eq!(waits, 1, "the write to the held audit waits for it");

    for version in 1..=3 {
        let request = patch(
            &app,
            &token,
            &free,
            Some(&format!("\"{version}\"")),
            json!({"territory.parking_total": version}),
        )
        .timeout(std::time::Duration::from_secs(30));
        let (status, _, body) = call(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["version"], version + 1);
    }
    assert!(
        !waiting.is_finished(),
        "the held audit's write went through"
    );

    lock.rollback().await.unwrap();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 2, "{body}");
    assert_eq!(body["answers"]["territory.parking_total"], 1, "{body}");
}

#[tokio::test]
async fn idempotency_keys_replay_instead_of_repeating() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let id = Uuid::new_v4().to_string();
    call(put_audit(&app, &token, &id, &json!({"site_id": site}))).await;

    let send = |key: &str, answers: Value| {
        patch(&app, &token, &id, Some("\"1\""), answers).header("idempotency-key", key.to_owned())
    };
    // A key is 1 to 255 printable ASCII characters; any other is refused
    // before anything is done.
    let long = "k".repeat(256);
    let bad_keys: [&[u8]; 4] = [b"", long.as_bytes(), b"batch\t1", "ключ".as_bytes()];
    for key in bad_keys {
        refused(
            patch(
                &app,
                &token,
                &id,
                Some("\"1\""),
                json!({"territory.parking_total": 9}),
            )
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
        )
        .await;
    }
    let (_, _, audit) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(audit["version"], 1, "nothing was written");
    let (status, _, first) = call(send("batch-1", json!({"territory.parking_total": 10}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["version"], 2);
    // The phone never saw the answer and retries: the stored answer comes
    // back, with no second version bump (a real second write would be 412).
    let (status, headers, replay) =
        call(send("batch-1", json!({"territory.parking_total": 10}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(replay, first);
    let (_, _, audit) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
    assert_eq!(audit["version"], 2);

    let misuse = send("batch-1", json!({"territory.parking_total": 11}))
        .send()
        .await
        .unwrap();
    assert_problem(
        misuse,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;

    // Keys belong to their user: the coordinator's identical key is fresh.
    let coordinator = app.token("coordinator@demo.local").await;
    let theirs = patch(
        &app,
        &coordinator,
        &id,
        Some("\"2\""),
        json!({"territory.parking_total": 12}),
    )
    .header("idempotency-key", "batch-1")
    .send()
    .await
    .unwrap();
    assert_eq!(theirs.status(), StatusCode::OK);

    // Errors are replayed too, so a retried bad batch stays bad.
    let (status, _, _) = call(send("bad", json!({"territory.parking_total": "x"}))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, headers, _) = call(send("bad", json!({"territory.parking_total": "x"}))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(headers["idempotent-replayed"], "true");
}

/// The answer write stores a keyed answer with the answers, in the same
/// transaction, and only under the claim of its own request: on whichever
/// path the database takes (one statement on PostgreSQL, one writer job on
/// the embedded database).
#[tokio::test]
async fn an_answer_write_stores_its_keyed_answer_only_under_its_own_claim() {
    use std::collections::BTreeMap;

    use dostup::db::audit_log::Actor;
    use dostup::db::audits as repo;
    use dostup::db::idempotency::{self, Claim, Completion, Deflated, KeyClaim};

    let app = TestApp::spawn_demo().await;
    let db = &app.state.db;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let id = Uuid::new_v4();
    call(put_audit(
        &app,
        &token,
        &id.to_string(),
        &json!({"site_id": site}),
    ))
    .await;
    let user = Uuid::now_v7();
    let answers = |n: i64| BTreeMap::from([("territory.parking_total".to_owned(), json!(n))]);
    // Claims `key` for `hash`: what the request would store.
    let claim = async |key: &str, hash: &str, body: &[u8]| {
        let Claim::Fresh { claimed_at } = idempotency::claim(db, user, key, hash).await.unwrap()
        else {
            panic!("{key} is claimed already");
        };
        Completion {
            claim: KeyClaim {
                user,
                key: key.into(),
                request_hash: hash.into(),
                claimed_at,
            },
            status: 200,
            headers: r#"{"etag":"\"2\""}"#.into(),
            body: Deflated::new(body),
        }
    };
    let write = async |before: &dostup::db::entity::audit::Model, n: i64, stored: Completion| {
        let write = repo::prepare_answers(db, before, &answers(n), &Actor::system())
            .unwrap()
            .expect("both databases write answers in one step");
        repo::write_answers(db, before, write, Some(stored))
            .await
            .unwrap()
    };
    let v1 = repo::get(db, id).await.unwrap().unwrap();

    // Its own claim: the answers and the answer are stored together.
    let (v2, stored) = write(&v1, 7, claim("k1", "h1", b"answer one").await)
        .await
        .expect("the audit was as v1 shows it");
    assert!(stored);
    assert_eq!(v2.version, 2);
    assert_eq!(
        repo::get(db, id).await.unwrap().unwrap().answers,
        v2.answers
    );
    match idempotency::claim(db, user, "k1", "h1").await.unwrap() {
        Claim::Replay {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, 200);
            assert_eq!(headers, r#"{"etag":"\"2\""}"#);
            assert_eq!(body, b"answer one");
        }
        other => panic!("expected a replay, got {other:?}"),
    }

    // A key another request holds now: the answers are written, the other
    // request's claim is left alone.
    let mut theirs = claim("k2", "h-other", b"").await;
    theirs.claim.request_hash = "h2".into();
    let (v3, stored) = write(&v2, 8, theirs)
        .await
        .expect("the audit was as v2 shows it");
    assert!(!stored);
    assert_eq!(v3.version, 3);
    assert!(matches!(
        idempotency::claim(db, user, "k2", "h-other").await.unwrap(),
        Claim::InProgress
    ));

    // Nor does a claim of the same request that the key no longer holds
    // (a retry took it over once the first counted as abandoned).
    let mut earlier = claim("k4", "h4", b"answer four").await;
    earlier.claim.claimed_at -= chrono::Duration::seconds(400);
    let (v4, stored) = write(&v3, 10, earlier)
        .await
        .expect("the audit was as v3 shows it");
    assert!(!stored);
    assert_eq!(v4.version, 4);
    assert!(matches!(
        idempotency::claim(db, user, "k4", "h4").await.unwrap(),
        Claim::InProgress
    ));

    // A write that finds the audit changed stores nothing either.
    let stale = claim("k3", "h3", b"answer three").await;
    assert!(write(&v2, 9, stale).await.is_none());
    assert!(matches!(
        idempotency::claim(db, user, "k3", "h3").await.unwrap(),
        Claim::InProgress
    ));
    assert_eq!(repo::get(db, id).await.unwrap().unwrap().version, 4);
}

/// A handler whose one write stores its answer (`PATCH answers`) takes the
/// key over; if its client hangs up before that write, the write is skipped
/// on the embedded database and the key is freed, so the retry runs at once
/// instead of hearing "in progress" until the key counts as abandoned. On
/// PostgreSQL a statement already sent may still commit, so the key stays
/// claimed there, as for every other handler. (A handler of the test's own
/// stands for the PATCH, whose hang-up cannot be timed from outside.)
#[tokio::test]
async fn a_key_taken_over_by_its_handler_is_freed_when_the_client_hangs_up() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::{Extension, Router, routing::post};
    use dostup::http::idempotency::{self, Keyed};
    use tower::ServiceExt;

    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (reached, reached_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    // The first call takes the key over, as `PATCH answers` does before
    // its work, and then waits, as for its write, until its client is gone;
    // the retry answers.
    let handler = {
        let calls = Arc::clone(&calls);
        async move |Extension(keyed): Extension<Keyed>| {
            if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                return "second".into_response();
            }
            keyed.take_over();
            let _ = reached.send(());
            std::future::pending::<()>().await;
            "first".into_response()
        }
    };
    let router = Router::new()
        .route("/hang", post(handler))
        .layer(axum::middleware::from_fn_with_state(
            app.state.clone(),
            idempotency::layer,
        ))
        .with_state(app.state.clone());
    let request = || {
        axum::http::Request::post("/hang")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", "hang-1")
            .body(Body::empty())
            .unwrap()
    };

    let first = tokio::spawn(router.clone().oneshot(request()));
    let mut reached_rx = reached_rx;
    reached_rx
        .recv()
        .await
        .expect("the handler took the key over");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    let mut retry = router.clone().oneshot(request()).await.unwrap();
    if app.db.is_postgres() {
        assert_eq!(retry.status(), StatusCode::CONFLICT);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        return;
    }
    // The key is freed by a write queued behind the skipped one.
    for _ in 0..100 {
        if retry.status() != StatusCode::CONFLICT {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        retry = router.clone().oneshot(request()).await.unwrap();
    }
    assert_eq!(retry.status(), StatusCode::OK);
    let body = axum::body::to_bytes(retry.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"second");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A write the database breaks off (a restart, a failover, a killed
/// session) answers `database-unavailable`, 503 with `Retry-After`, not a
/// 500, and frees its `Idempotency-Key`: the phone's retry with the same
/// key writes the batch, once.
#[tokio::test]
async fn a_write_the_database_breaks_off_answers_503_and_its_retry_writes_once() {
    let app = TestApp::spawn_demo().await;
    if !app.db.is_postgres() {
        // The embedded database is a file in the process: there is no
        // connection to lose.
        return;
    }
    let (token, id) = volunteer_audit(&app).await;
    let batch = || {
        patch(
            &app,
            &token,
            &id,
            Some("\"1\""),
            json!({"territory.parking_total": 7}),
        )
        .header("idempotency-key", "restart-1")
    };

    // Another session holds the audit's row, so the write waits for it,
    // and is then ended as a restart would end it.
    let (_holder, lock) = hold_audit(&app, &id).await;
    let first = tokio::spawn(batch().send());
    let ended = once_sessions_wait(|| app.db.end_waiting_sessions()).await;
    assert_eq!(ended, 1, "the write waited for the row");
    let response = first.await.unwrap().unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "database-unavailable",
    )
    .await;
    lock.rollback().await.unwrap();

    let (status, headers, body) = call(batch()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(body["version"], 2, "{body}");
    assert_eq!(body["answers"]["territory.parking_total"], 7, "{body}");
    let (status, headers, replay) = call(batch()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(replay, body);
}

/// A database restart cuts every pooled connection. By default the pool
/// tests a connection before each query, so the next request succeeds.
#[tokio::test]
async fn after_a_database_restart_the_next_request_succeeds() {
    restart_under(dostup::db::DatabasePing::Always).await;
}

/// With `DOSTUP_DATABASE_PING=when-in-doubt` a connection in steady use is
/// not tested before each query, so a request may meet a cut one and answer
/// 503 (the background sealer may meet it first); from then on the pool
/// tests each connection before use, so at most that one request fails,
/// not one per pooled connection.
#[tokio::test]
async fn with_pings_when_in_doubt_a_database_restart_fails_at_most_one_request() {
    restart_under(dostup::db::DatabasePing::WhenInDoubt).await;
}

async fn restart_under(ping: dostup::db::DatabasePing) {
    let app = TestApp::spawn_with(|settings| settings.database_ping = ping).await;
    if !app.db.is_postgres() {
        return; // no connection to lose
    }
    dostup::demo::seed(&app.state.db).await.unwrap();
    let (token, id) = volunteer_audit(&app).await;
    let read = || app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token);
    // Several connections in the pool, as under load.
    let statuses = futures_statuses((0..8).map(|_| {
        let request = read();
        async move { request.send().await.unwrap().status() }
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );

    assert!(
        app.db.end_all_sessions().await >= 2,
        "the pool had connections"
    );
    let first = read().send().await.unwrap();
    if ping == dostup::db::DatabasePing::WhenInDoubt
        && first.status() == StatusCode::SERVICE_UNAVAILABLE
    {
        assert_eq!(first.headers()["retry-after"], "1");
        assert_problem(
            first,
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
        )
        .await;
    } else {
        assert_eq!(first.status(), StatusCode::OK);
    }
    for _ in 0..5 {
        let (status, _, body) = call(read()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id.as_str());
    }
}

/// The life of one key as the service sees it, on whichever path the
/// database takes: claimed once among concurrent requests, replayed once
/// complete, refused for another request, and free again after a server
/// error, an abandoned request, or its retention.
#[tokio::test]
async fn idempotency_keys_are_claimed_once_and_taken_over_only_when_stale() {
    use dostup::db::entity::idempotency_key;
    use dostup::db::idempotency::{self, Claim, Completion, Deflated, KeyClaim};
    use sea_orm::ActiveValue::Set;

    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let user = Uuid::now_v7();
    let age = async |key: &str, column: idempotency_key::Column, hours: i64| {
        age_key(db, user, key, column, hours).await;
    };

    // Sixteen phones' retries at once: exactly one runs the request.
    let claims = futures_util::future::join_all(
        (0..16).map(|_| idempotency::claim(db, user, "batch", "hash-1")),
    )
    .await;
    let fresh: Vec<_> = claims
        .iter()
        .filter_map(|c| match c {
            Ok(Claim::Fresh { claimed_at }) => Some(*claimed_at),
            _ => None,
        })
        .collect();
    let running = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::InProgress)))
        .count();
    assert_eq!((fresh.len(), running), (1, 15), "{claims:?}");
    let request = |hash: &str, claimed_at| KeyClaim {
        user,
        key: "batch".into(),
        request_hash: hash.into(),
        claimed_at,
    };
    assert!(matches!(
        idempotency::claim(db, user, "batch", "hash-2")
            .await
            .unwrap(),
        Claim::Mismatch
    ));

    // The stored answer comes back byte for byte, however it is kept.
    let answer = json!({"rules": vec![json!({"ru": "Пандус", "en": "Ramp"}); 500]}).to_string();
    let done = Completion {
        claim: request("hash-1", fresh[0]),
        status: 200,
        headers: "{}".into(),
        body: Deflated::new(answer.as_bytes()),
    };
    idempotency::complete(db, &done).await.unwrap();
    match idempotency::claim(db, user, "batch", "hash-1")
        .await
        .unwrap()
    {
        Claim::Replay { status, body, .. } => {
            assert_eq!(status, 200);
            assert_eq!(String::from_utf8(body).unwrap(), answer);
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    // A release once the answer is stored (a client hanging up after the
    // write that stored it) leaves it for the retry.
    idempotency::release(db, &done.claim).await.unwrap();
    assert!(matches!(
        idempotency::claim(db, user, "batch", "hash-1")
            .await
            .unwrap(),
        Claim::Replay { status: 200, .. }
    ));
    // A key of another user is another key.
    assert!(matches!(
        idempotency::claim(db, Uuid::now_v7(), "batch", "hash-2")
            .await
            .unwrap(),
        Claim::Fresh { .. }
    ));

    // Past its retention the key serves a new request, and the old answer
    // is gone with it.
    age("batch", idempotency_key::Column::CreatedAt, 25).await;
    let Claim::Fresh { claimed_at: third } = idempotency::claim(db, user, "batch", "hash-3")
        .await
        .unwrap()
    else {
        panic!("an expired key is free");
    };
    let row = idempotency_key::Entity::find_by_id((user, "batch".to_owned()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.request_hash, "hash-3");
    assert_eq!(row.status_code, None);
    assert_eq!((row.response_body, row.response_deflated), (None, None));

    // A request that never finished (its replica died) frees the key after
    // a while; a finished one does not.
    assert!(matches!(
        idempotency::claim(db, user, "batch", "hash-3")
            .await
            .unwrap(),
        Claim::InProgress
    ));
    age("batch", idempotency_key::Column::UpdatedAt, 1).await;
    let Claim::Fresh { claimed_at: fourth } = idempotency::claim(db, user, "batch", "hash-4")
        .await
        .unwrap()
    else {
        panic!("an abandoned key is free");
    };
    // The first request, finishing late, does not store its answer under
    // the key the second one holds now.
    let late = Completion {
        claim: request("hash-3", third),
        body: Deflated::new(b"late"),
        ..done.clone()
    };
    idempotency::complete(db, &late).await.unwrap();
    // Nor does its release free it.
    idempotency::release(db, &late.claim).await.unwrap();
    assert!(matches!(
        idempotency::claim(db, user, "batch", "hash-4")
            .await
            .unwrap(),
        Claim::InProgress
    ));

    // A server error releases the key: the retry runs again.
    idempotency::release(db, &request("hash-4", fourth))
        .await
        .unwrap();
    let Claim::Fresh { claimed_at: fifth } = idempotency::claim(db, user, "batch", "hash-5")
        .await
        .unwrap()
    else {
        panic!("a released key is free");
    };

    // A retry of the same request that takes the key over once it counts
    // as abandoned holds it alone: the first claim, finishing late, neither
    // stores its answer nor frees the key.
    age("batch", idempotency_key::Column::UpdatedAt, 1).await;
    let Claim::Fresh {
        claimed_at: retried,
    } = idempotency::claim(db, user, "batch", "hash-5")
        .await
        .unwrap()
    else {
        panic!("an abandoned key is free for the same request too");
    };
    assert_ne!(retried, fifth);
    let first = Completion {
        claim: request("hash-5", fifth),
        body: Deflated::new(b"first"),
        ..done.clone()
    };
    idempotency::complete(db, &first).await.unwrap();
    idempotency::release(db, &first.claim).await.unwrap();
    assert!(matches!(
        idempotency::claim(db, user, "batch", "hash-5")
            .await
            .unwrap(),
        Claim::InProgress
    ));
    let second = Completion {
        claim: request("hash-5", retried),
        body: Deflated::new(b"second"),
        ..done.clone()
    };
    idempotency::complete(db, &second).await.unwrap();
    match idempotency::claim(db, user, "batch", "hash-5")
        .await
        .unwrap()
    {
        Claim::Replay { body, .. } => assert_eq!(body, b"second"),
        other => panic!("expected a replay, got {other:?}"),
    }

    // A response stored as text, before responses were stored deflated,
    // still replays until it expires.
    let stored_before = |key: &str, hours: i64| {
        let at = chrono::Utc::now() - chrono::Duration::hours(hours);
        idempotency_key::ActiveModel {
            user_id: Set(user),
            key: Set(key.to_owned()),
            request_hash: Set("hash-1".to_owned()),
            status_code: Set(Some(201)),
            response_headers: Set(Some(r#"{"etag":"\"1\""}"#.to_owned())),
            response_body: Set(Some(r#"{"version":1}"#.to_owned())),
            response_deflated: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
    };
    idempotency_key::Entity::insert(stored_before("text", 1))
        .exec(db)
        .await
        .unwrap();
    match idempotency::claim(db, user, "text", "hash-1")
        .await
        .unwrap()
    {
        Claim::Replay {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, 201);
            assert_eq!(headers, r#"{"etag":"\"1\""}"#);
            assert_eq!(body, br#"{"version":1}"#);
        }
        other => panic!("expected a replay, got {other:?}"),
    }

    // Housekeeping removes only keys past their retention, however many.
    let expired: Vec<_> = (0..1_100)
        .map(|n| stored_before(&format!("expired-{n}"), 25 + n % 3))
        .collect();
    idempotency_key::Entity::insert_many(expired)
        .exec(db)
        .await
        .unwrap();
    assert_eq!(idempotency::sweep(db).await.unwrap(), 1_100);
    assert_eq!(idempotency::sweep(db).await.unwrap(), 0);
    let left = idempotency_key::Entity::find().all(db).await.unwrap();
    let mut keys: Vec<_> = left.iter().map(|k| k.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["batch", "batch", "text"]);
}

/// Keys of many requests claimed at once, as phones' keyed requests come in
/// together (on PostgreSQL such claims go to the database in batches):
/// each claim is judged by its own key's row, whatever else arrived with
/// it.
#[tokio::test]
async fn keys_claimed_together_are_each_judged_by_their_own_row() {
    use dostup::db::entity::idempotency_key;
    use dostup::db::idempotency::{self, Claim, Completion, Deflated, KeyClaim};

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Before {
        Free,
        Stored,
        Running,
        Abandoned,
    }
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let users = [Uuid::now_v7(), Uuid::now_v7()];
    // Each user's keys k0 to k11 in threes, in another order for each user,
    // so that a claim judged by another user's key is judged wrong.
    let before = |u: usize, k: usize| {
        [
            Before::Free,
            Before::Stored,
            Before::Running,
            Before::Abandoned,
        ][(k / 3 + u) % 4]
    };
    let answer = |user: Uuid, key: &str| format!("the answer to {key} of {user}");
    for (u, user) in users.into_iter().enumerate() {
        for k in 0..12 {
            let key = format!("k{k}");
            let state = before(u, k);
            let hash = if state == Before::Abandoned {
                "old"
            } else {
                "first"
            };
            if state == Before::Free {
                continue;
            }
            let Claim::Fresh { claimed_at } =
                idempotency::claim(db, user, &key, hash).await.unwrap()
            else {
                panic!("{key} is free before");
            };
            match state {
                Before::Stored => {
                    let done = Completion {
                        claim: KeyClaim {
                            user,
                            key: key.clone(),
                            request_hash: hash.into(),
                            claimed_at,
                        },
                        status: 201,
                        headers: "{}".into(),
                        body: Deflated::new(answer(user, &key).as_bytes()),
                    };
                    idempotency::complete(db, &done).await.unwrap();
                }
                // Its request never finished: its replica died an hour ago.
                Before::Abandoned => {
                    age_key(db, user, &key, idempotency_key::Column::UpdatedAt, 1).await;
                }
                Before::Running | Before::Free => {}
            }
        }
    }

    // All at once: every key of both users for the first request, and each
    // key that may be claimed for a second request too.
    let mut asked = Vec::new();
    for (u, user) in users.into_iter().enumerate() {
        for k in 0..12 {
            asked.push((u, user, k, format!("k{k}"), "first"));
            if matches!(before(u, k), Before::Free | Before::Abandoned) {
                asked.push((u, user, k, format!("k{k}"), "second"));
            }
        }
    }
    let claims = futures_util::future::join_all(
        asked
            .iter()
            .map(|(_, user, _, key, hash)| idempotency::claim(db, *user, key, hash)),
    )
    .await;

    let mut fresh = std::collections::BTreeMap::new();
    for ((u, user, k, key, hash), claim) in asked.iter().zip(claims) {
        let claim = claim.unwrap();
        match (before(*u, *k), &claim) {
            (Before::Stored, Claim::Replay { status, body, .. }) => {
                assert_eq!(*status, 201);
                assert_eq!(body, answer(*user, key).as_bytes());
            }
            (Before::Running, Claim::InProgress) => {}
            (Before::Free | Before::Abandoned, Claim::Fresh { claimed_at }) => {
                assert!(
                    fresh
                        .insert((*user, key.clone()), (*hash, *claimed_at))
                        .is_none(),
                    "{key} of {user} was claimed twice"
                );
            }
            // The other request finds the key claimed by the first, or
            // (when both found it abandoned) being taken over.
            (Before::Free | Before::Abandoned, Claim::Mismatch | Claim::InProgress) => {}
            (state, _) => panic!("{key} of {user} ({state:?}) for the {hash} request: {claim:?}"),
        }
    }
    // Each key that could be claimed went to one of its two requests, and
    // its row is that request's claim.
    assert_eq!(fresh.len(), 12, "{fresh:?}");
    for ((user, key), (hash, claimed_at)) in fresh {
        let row = idempotency_key::Entity::find_by_id((user, key.clone()))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.request_hash.as_str(), row.created_at, row.status_code),
            (hash, claimed_at, None),
            "{key} of {user}"
        );
    }
}

/// A key claimed for a request that has gone by the time its claim is made
/// (the client hung up while the claim waited in the database) is freed:
/// the client's retry runs at once instead of finding the key in progress
/// for minutes.
// One thread: both claims are queued before their batch starts.
#[tokio::test(flavor = "current_thread")]
async fn a_key_claimed_for_a_request_gone_meanwhile_is_freed() {
    use std::future::Future;
    use std::task::Poll;

    use dostup::db::entity::idempotency_key;
    use dostup::db::idempotency::{self, Claim};
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        // The embedded writer does not make a claim whose request has gone,
        // and never waits for another transaction in between.
        return;
    }
    let db = &app.state.db;
    let user = Uuid::now_v7();
    // Another session inserts a claim of "blocker" and has not committed:
    // a batch claiming that key waits for it.
    let holder = sea_orm::Database::connect(&app.db.url).await.unwrap();
    let insert = holder.begin().await.unwrap();
    insert
        .execute_unprepared(&format!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at, updated_at) \
             VALUES ('{user}', 'blocker', 'other', now(), now())"
        ))
        .await
        .unwrap();

    // Both claims are queued in one poll, before their batch starts, so
    // they go in it together.
    let mut blocked = Box::pin(idempotency::claim(db, user, "blocker", "first"));
    let mut gone = Box::pin(idempotency::claim(db, user, "mine", "first"));
    std::future::poll_fn(|cx| {
        assert!(blocked.as_mut().poll(cx).is_pending());
        assert!(gone.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    let waits = once_sessions_wait(|| app.db.waiting_sessions()).await;
    assert_eq!(waits, 1, "the batch waits for the other session's insert");
    // The client of "mine" hangs up; then the other session gives up.
    drop(gone);
    insert.rollback().await.unwrap();
    assert!(matches!(blocked.await.unwrap(), Claim::Fresh { .. }));

    // The batch inserted "mine" and nobody took it: it is freed.
    let mut left = None;
    for _ in 0..200 {
        left = idempotency_key::Entity::find_by_id((user, "mine".to_owned()))
            .one(db)
            .await
            .unwrap();
        if left.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(left, None, "the claim of a request gone is still there");
    assert!(matches!(
        idempotency::claim(db, user, "mine", "first").await.unwrap(),
        Claim::Fresh { .. }
    ));
}

#[tokio::test]
async fn a_complete_audit_is_submitted_and_then_read_only() {
    let app = TestApp::spawn_demo().await;
    let phone = app.token("volunteer@demo.local").await;
    let tablet = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&phone, "библиотека").await;
    let id = Uuid::new_v4().to_string();
    call(put_audit(&app, &phone, &id, &json!({"site_id": site}))).await;

    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/checklists/examples/accessible-new-building.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (status, _, answered) = call(patch(
        &app,
        &phone,
        &id,
        Some("\"1\""),
        example["answers"].clone(),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{answered}");

    // Everything is answered; only the photos are missing.
    let response = app
        .post_json(&format!("/api/v1/audits/{id}/submit"), &json!({}))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let wanted: Vec<String> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["code"], "photo-required", "{e}");
            e["field"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(!wanted.is_empty());
    for (n, item) in wanted.iter().enumerate() {
        let form = reqwest::multipart::Form::new()
            .text("item", item.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(common::images::jpeg(320 + n as u32, 240))
                    .file_name("p.jpg"),
            );
        let response = app
            .request(Method::POST, &format!("/api/v1/audits/{id}/photos"))
            .bearer_auth(&phone)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "photo for {item}: {}",
            response.text().await.unwrap()
        );
    }
    let (_, headers, _) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&phone)).await;
    let version = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, submitted) = call(
        app.post_json(&format!("/api/v1/audits/{id}/submit"), &json!({}))
            .bearer_auth(&phone)
            .header("if-match", &version),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    assert_eq!(submitted["status"], "submitted");
    assert!(submitted["submitted_at"].is_string());
    // Survey counts come with the rating import; until then K3 is unknown, not 0.
    assert_eq!(submitted["evaluation"]["nok"]["p3_1"], 100.0);
    assert!(submitted["evaluation"]["nok"]["k3"].is_null());

    let current = format!("\"{}\"", submitted["version"]);
    let edit = patch(
        &app,
        &phone,
        &id,
        Some(&current),
        json!({"territory.parking_total": 3}),
    )
    .send()
    .await
    .unwrap();
    let problem = assert_problem(edit, StatusCode::CONFLICT, "audit-not-editable").await;
    assert_eq!(problem["status"], 409);
    let again = app
        .post_json(&format!("/api/v1/audits/{id}/submit"), &json!({}))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::CONFLICT, "audit-not-editable").await;
    let form = reqwest::multipart::Form::new()
        .text("item", "entrance.level_entrance")
        .part(
            "file",
            reqwest::multipart::Part::bytes(common::images::jpeg(64, 64)).file_name("late.jpg"),
        );
    let late = app
        .request(Method::POST, &format!("/api/v1/audits/{id}/photos"))
        .bearer_auth(&phone)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(late, StatusCode::CONFLICT, "audit-not-editable").await;

    // The reviewer now sees it; the tablet learns of the submission.
    let reviewer = app.token("reviewer@demo.local").await;
    assert_eq!(
        app.get(&format!("/api/v1/audits/{id}"))
            .bearer_auth(&reviewer)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let feed = sync(&app, &tablet, None).await;
    let last = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["data"]["audit_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(last["type"], "audit.status_changed");
    assert_eq!(last["data"]["status"], "submitted");
}

/// Answers written by the write path read back exactly as stored, through
/// every query: the audit as loaded for requests and as the list filters
/// see it (`updated_since` compares stored timestamps).
#[tokio::test]
async fn answered_audits_read_back_exactly_and_filter_by_update_time() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "").await;
    let id = Uuid::new_v4();
    let (status, _, _) = call(put_audit(
        &app,
        &token,
        &id.to_string(),
        &json!({"site_id": site, "started_at": "2026-12-01T08:00:00.123456Z"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let saved = common::flows::patch(
        &app,
        &token,
        &id.to_string(),
        json!({"territory.path_width": 2.5, "entrance.level_entrance": false}),
    )
    .await;
    assert_eq!(saved["version"], 2);

    // The row as every other query decodes it equals the audit as requests load it.
    let stored = dostup::db::entity::audit::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let loaded = dostup::db::audits::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, loaded);
    assert_eq!(stored.version, 2);
    assert!(
        stored.answers.contains("territory.path_width"),
        "{}",
        stored.answers
    );
    assert_eq!(
        stored.started_at.unwrap().to_rfc3339(),
        "2026-12-01T08:00:00.123456+00:00"
    );

    // `updated_since` finds the audit at its update time and not a microsecond later.
    let updated_at: chrono::DateTime<chrono::Utc> =
        saved["updated_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(updated_at, stored.updated_at);
    for (since, found) in [
        (updated_at, true),
        (updated_at + chrono::Duration::microseconds(1), false),
    ] {
        let (status, _, list) = call(
            app.get("/api/v1/audits")
                .query(&[("updated_since", since.to_rfc3339())])
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ids: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.contains(&id.to_string().as_str()),
            found,
            "since {since}: {ids:?}"
        );
    }
}

/// Each replica keeps the audits it wrote last, so that a phone's next
/// batch needs no read first. A copy gone stale, because another replica
/// or a photo upload wrote the audit since, must never let a write
/// through, change which error a client gets, or hide a photo; what the
/// other replica wrote must survive.
#[tokio::test]
async fn a_replicas_copy_of_an_audit_written_elsewhere_lets_no_stale_write_through() {
    let app = TestApp::spawn_demo().await;
    let (other, _stop) = app.replica().await;
    let here = app.url("");
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let id = Uuid::new_v4().to_string();
    call(put_audit(&app, &token, &id, &json!({"site_id": site}))).await;

    let send = |base: &str, version: i64, answers: Value, minimal: bool| {
        let mut request = app
            .client
            .request(Method::PATCH, format!("{base}/api/v1/audits/{id}/answers"))
            .bearer_auth(&token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({ "answers": answers }));
        if minimal {
            request = request.header("prefer", "return=minimal");
        }
        call(request)
    };
    let written = |(status, _, body): (StatusCode, reqwest::header::HeaderMap, Value),
                   version: i64| {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["version"], version, "{body}");
        body
    };
    let refused_as_stale =
        |(status, headers, body): (StatusCode, reqwest::header::HeaderMap, Value), current: i64| {
            assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
            assert_eq!(body["code"], "version-mismatch", "{body}");
            assert_eq!(body["current_version"], current, "{body}");
            assert_eq!(headers["etag"], format!("\"{current}\"").as_str());
        };
    let photo = |n: u32| {
        let form = reqwest::multipart::Form::new()
            .text("item", "entrance.level_entrance")
            .part(
                "file",
                reqwest::multipart::Part::bytes(common::images::jpeg(64 + n, 64))
                    .file_name("p.jpg"),
            );
        app.client
            .request(Method::POST, format!("{other}/api/v1/audits/{id}/photos"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };

    // This replica writes version 2 and keeps it; the other one writes 3.
    written(
        send(&here, 1, json!({"territory.parking_total": 3}), false).await,
        2,
    );
    let audit_id = Uuid::parse_str(&id).unwrap();
    assert!(app.state.recent_audits.get(audit_id, 2).is_some());
    written(
        send(&other, 2, json!({"territory.parking_disabled": 1}), false).await,
        3,
    );
    // A second device, still at version 2, sends a bad value here: the
    // version is refused first, as it would be without the copy.
    refused_as_stale(
        send(&here, 2, json!({"territory.parking_total": "many"}), false).await,
        3,
    );

    // Again with a good value, the copy of version 4 kept by this replica
    // against version 5 written by the other.
    written(
        send(&here, 3, json!({"territory.parking_distance": 30}), false).await,
        4,
    );
    written(
        send(&other, 4, json!({"territory.parking_marked": true}), false).await,
        5,
    );
    refused_as_stale(
        send(&here, 4, json!({"territory.parking_total": 9}), false).await,
        5,
    );

    // A photo added through the other replica makes version 6. This
    // replica's next answer shows it and keeps it with version 7; a second
    // photo (version 8) then makes that copy stale.
    assert!(photo(1).await.unwrap().status().is_success());
    let body = written(
        send(&here, 6, json!({"territory.parking_total": 4}), false).await,
        7,
    );
    assert_eq!(body["photos"].as_array().unwrap().len(), 1, "{body}");
    assert!(photo(2).await.unwrap().status().is_success());
    refused_as_stale(
        send(&here, 7, json!({"territory.parking_total": 9}), false).await,
        8,
    );
    // A short answer from the stored audit reads no photos and keeps a copy
    // without them; the whole answer from that copy still lists both.
    written(
        send(&here, 8, json!({"territory.parking_total": 5}), true).await,
        9,
    );
    let kept = app.state.recent_audits.get(audit_id, 9).unwrap();
    assert!(kept.photos.is_none());
    let body = written(
        send(&here, 9, json!({"territory.path_width": 2.5}), false).await,
        10,
    );
    assert_eq!(body["photos"].as_array().unwrap().len(), 2, "{body}");
    let body = written(
        send(&here, 10, json!({"territory.path_cross_slope": 1}), false).await,
        11,
    );
    assert_eq!(body["photos"].as_array().unwrap().len(), 2, "{body}");

    // Nothing either replica accepted is lost, and nothing refused landed.
    let (_, _, audit) = call(
        app.client
            .get(format!("{other}/api/v1/audits/{id}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(audit["version"], 11, "{audit}");
    let answers = &audit["answers"];
    assert_eq!(answers["territory.parking_total"], 5, "{audit}");
    assert_eq!(answers["territory.parking_disabled"], 1, "{audit}");
    assert_eq!(answers["territory.parking_distance"], 30, "{audit}");
    assert_eq!(answers["territory.parking_marked"], true, "{audit}");
    assert_eq!(answers["territory.path_width"], 2.5, "{audit}");
    assert_eq!(answers["territory.path_cross_slope"], 1, "{audit}");
}

/// A version number made twice (a PostgreSQL failover that lost commits, a
/// restore) must not pass for the one a replica's copy was kept at: the
/// answers now stored are the ones the batch is merged into.
#[tokio::test]
async fn a_copy_does_not_pass_for_a_version_number_made_twice() {
    let app = TestApp::spawn_demo().await;
    if !app.db.is_postgres() {
        // The embedded database has one process writing it; a restore
        // under a running service is not a case it meets.
        return;
    }
    let (token, id) = volunteer_audit(&app).await;
    let first = json!({"territory.parking_total": 3});
    let (status, _, body) = call(patch(&app, &token, &id, Some("\"1\""), first)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit_id = Uuid::parse_str(&id).unwrap();
    assert!(app.state.recent_audits.get(audit_id, 2).is_some());

    // The database lost that write; another one made version 2 again.
    app.state
        .db
        .execute_unprepared(&format!(
            "UPDATE audits SET answers = '{{\"territory.parking_disabled\": 1}}', \
             updated_at = updated_at + interval '1 second' WHERE id = '{id}'"
        ))
        .await
        .unwrap();

    let next = json!({"territory.path_width": 2.5});
    let (status, _, body) = call(patch(&app, &token, &id, Some("\"2\""), next)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 3, "{body}");
    let answers = &body["answers"];
    assert_eq!(answers["territory.parking_disabled"], 1, "{body}");
    assert_eq!(answers["territory.path_width"], 2.5, "{body}");
    assert!(
        answers.get("territory.parking_total").is_none(),
        "the lost write came back: {body}"
    );
}

#[tokio::test]
async fn an_answer_carries_the_evaluation_dostup_score_prints() {
    let app = TestApp::spawn_demo().await;
    let phone = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&phone, "библиотека").await;
    let id = common::flows::new_audit(&app, &phone, &site).await;
    let answers = common::flows::example_answers("typical-older-building");

    let (status, headers, saved) =
        call(patch(&app, &phone, &id, Some("\"1\""), answers.clone())).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["answers"], answers);
    assert_eq!(saved["photos"], json!([]));

    // The same answers scored from the command line, with the audit's methodology.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = tempfile::NamedTempFile::new().unwrap();
    let input = json!({"methodology": saved["methodology"]["id"], "answers": answers});
    std::fs::write(file.path(), input.to_string()).unwrap();
    let score = std::process::Command::new(env!("CARGO_BIN_EXE_dostup"))
        .current_dir(root)
        .args(["score", "--answers"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        score.status.success(),
        "{}",
        String::from_utf8_lossy(&score.stderr)
    );
    let printed: Value = serde_json::from_slice(&score.stdout).unwrap();
    assert_eq!(
        saved["evaluation"], printed,
        "the evaluation dostup score prints"
    );

    // Read again, the audit answers the same.
    let (status, headers, read) =
        call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&phone)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(read, saved);

    // A later batch merges into the answers kept: one changed, one cleared,
    // sent with a key as a phone does. Its answer is the audit as read.
    let first = answers.as_object().unwrap().keys().next().unwrap().clone();
    let batch = json!({first.clone(): null, "territory.parking_total": 7});
    let (status, _, merged) =
        call(patch(&app, &phone, &id, Some("\"2\""), batch).header("idempotency-key", "merge-1"))
            .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["version"], 3);
    assert!(merged["answers"].get(&first).is_none(), "{merged}");
    assert_eq!(merged["answers"]["territory.parking_total"], 7);
    let (_, _, read) = call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&phone)).await;
    assert_eq!(
        read, merged,
        "the answer to a merging batch is the audit as read"
    );
}
