//! Every malformed request gets a problem+json answer with a stable code,
//! never axum's plain-text rejection and never a 500.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{TestApp, assert_problem, call, field_errors, refused};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn_demo().await;
    let response = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed-json").await;

    let trailing = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\":\"a\",\"password\":\"b\"} []")
        .send()
        .await
        .unwrap();
    assert_problem(trailing, StatusCode::BAD_REQUEST, "malformed-json").await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn_demo().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .request(Method::POST, "/api/v1/auth/login")
            .body("{\"email\":\"a\",\"password\":\"b\"}");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        assert_problem(
            request.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    // Parameters on the media type are fine.
    let ok = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/json; charset=utf-8")
        .body("{\"email\":\"volunteer@demo.local\",\"password\":\"demo-password\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_missing_and_mistyped_fields_are_422_naming_the_field() {
    let app = TestApp::spawn_demo().await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "a@b.c", "password": "x", "remember": true}),
        )
        .send()
        .await
        .unwrap();
    let body = assert_problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "remember");
    assert_eq!(body["errors"][0]["code"], "unknown-field");

    let missing = app
        .post_json("/api/v1/auth/login", &json!({"email": "a@b.c"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(body["errors"][0]["code"], "missing-field");

    let admin = app.token("admin@demo.local").await;
    let list: serde_json::Value = app
        .get("/api/v1/institutions?limit=1")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap();
    let mistyped = app
        .post_json(
            &format!("/api/v1/institutions/{id}/sites"),
            &json!({"name": "x", "address": "y", "latitude": "north", "longitude": 1.0}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = assert_problem(
        mistyped,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "latitude");
    assert_eq!(body["errors"][0]["code"], "invalid-value");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::spawn_with(|s| s.body_limit_bytes = 1024).await;
    let big = json!({"email": "a".repeat(4096), "password": "x"});
    let response = app
        .post_json("/api/v1/auth/login", &big)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_are_problems() {
    let app = TestApp::spawn_demo().await;
    let admin = app.token("admin@demo.local").await;
    assert_problem(
        app.get("/api/v1/nothing-here").send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    assert_problem(
        app.request(Method::DELETE, "/api/v1/auth/login")
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
    assert_problem(
        app.get("/api/v1/institutions/not-a-uuid")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid-path",
    )
    .await;
    assert_problem(
        app.get("/api/v1/institutions/01890000-0000-7000-8000-000000000000")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn responses_carry_request_ids_and_compress() {
    let app = TestApp::spawn_demo().await;
    let response = app.get("/health/live").send().await.unwrap();
    let id = response
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36, "a UUID");
    let given = app
        .get("/health/live")
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-chosen-id");

    let compressed = app
        .get("/api/v1/openapi.json")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn health_probes_answer() {
    let app = TestApp::spawn().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .get("/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/institutions",
        "/api/v1/institutions/{id}",
        "/api/v1/institutions/{id}/sites",
        "/api/v1/sites/{id}",
        "/api/v1/organisations",
        "/api/v1/users",
        "/api/v1/checklists",
        "/api/v1/checklists/{id}/versions/{version}",
        "/api/v1/methodologies",
        "/api/v1/methodologies/{id}/bundle",
        "/api/v1/audits",
        "/api/v1/audits/{id}",
        "/api/v1/audits/{id}/answers",
        "/api/v1/audits/{id}/submit",
        "/api/v1/audits/{id}/photos",
        "/api/v1/photos/{id}",
        "/api/v1/photos/{id}/thumbnail/{size}",
        "/api/v1/sync",
        "/api/v1/uploads",
        "/api/v1/uploads/{id}",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every write may carry an Idempotency-Key, and the document says so
    // with its bounds; reads do not.
    let declares_key = |operation: &serde_json::Value| {
        operation["parameters"]
            .as_array()
            .is_some_and(|parameters| {
                parameters.iter().any(|p| {
                    p["name"] == "Idempotency-Key"
                        && p["in"] == "header"
                        && p["schema"]["maxLength"] == 255
                })
            })
    };
    let mut writes = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let write = matches!(method.as_str(), "post" | "put" | "patch" | "delete");
            assert_eq!(
                declares_key(operation),
                write,
                "{method} {path}: Idempotency-Key declared exactly on writes"
            );
            writes += usize::from(write);
        }
    }
    assert!(writes >= 20, "{writes} writes");

    let viewer = app.get("/api/v1/docs/").send().await.unwrap();
    assert_eq!(viewer.status(), StatusCode::OK);
    let html = viewer.text().await.unwrap();
    assert!(html.contains("swagger"), "the interactive viewer is served");
    assert!(
        !html.contains("https://"),
        "viewer assets are local, nothing fetched from the internet"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_photo_store_is_gone() {
    let app = TestApp::spawn().await;
    std::fs::remove_dir_all(app.dir.path().join("objects")).unwrap();
    let response = app.get("/health/ready").send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-unavailable",
    )
    .await;
}

/// Text from a client may hold tabs and line breaks but no other control
/// character. PostgreSQL cannot store U+0000 in text at all and answered
/// 500 for it; now every way in refuses it, naming the field, and nothing
/// is written.
#[tokio::test]
async fn control_characters_in_text_are_refused_naming_the_field() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let admin = app.token("admin@demo.local").await;

    // Each kind, escaped or (DEL, C1) as it is: 422 on the field.
    for control in ["\u{0}", "\u{8}", "\u{c}", "\u{1b}", "\u{7f}", "\u{85}"] {
        let response = app
            .login(&format!("volunteer{control}@demo.local"), "x")
            .await;
        let body = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "email", "{control:?}: {body}");
        assert_eq!(body["errors"][0]["code"], "control-character", "{body}");
    }
    // Not controls: a no-break space (also two bytes from 0xC2) and the
    // text `\u0000` (an escaped backslash) go through to the password check.
    for email in ["volunteer\u{a0}@demo.local", "volunteer\\u0000@demo.local"] {
        let response = app.login(email, "x").await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    }

    // Every offending field of a body is listed, and nothing is created.
    let (_, _, institutions) = call(app.get("/api/v1/institutions").bearer_auth(&admin)).await;
    let institution = institutions["items"][0]["id"].as_str().unwrap();
    let sites_path = format!("/api/v1/institutions/{institution}/sites");
    let sites_before = call(app.get(&sites_path).bearer_auth(&admin)).await.2;
    let bad_site = json!({"name": "Вход\u{0}", "address": "ул. Мира\u{7}", "latitude": 52.6, "longitude": 39.6});
    let body = refused(
        app.post_json(&sites_path, &bad_site).bearer_auth(&admin),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let mut fields = field_errors(&body);
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            ("address", "control-character"),
            ("name", "control-character")
        ]
    );
    assert_eq!(
        call(app.get(&sites_path).bearer_auth(&admin)).await.2,
        sites_before
    );

    // An answer: named by its item's key; the audit keeps its version.
    let site = app.demo_site(&token, "библиотека").await;
    let audit = common::flows::new_audit(&app, &token, &site).await;
    let answers = format!("/api/v1/audits/{audit}/answers");
    let patch = json!({"answers": {"services.website_url": "https://\u{0}", "services.website_low_vision": true}});
    let body = refused(
        app.request(Method::PATCH, &answers)
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&patch),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(
        body["errors"][0]["field"], "answers.services.website_url",
        "{body}"
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    let (_, _, stored) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["answers"], json!({}));
    // Tabs and line breaks are text.
    let text = "строка одна\r\nстрока\tдва \\u0000";
    let (status, _, saved) = call(
        app.request(Method::PATCH, &answers)
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({"answers": {"services.website_url": text}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["answers"]["services.website_url"], text);

    // A query parameter and a path segment: 400 naming them.
    let body = refused(
        app.get("/api/v1/institutions?text=%D0%B1%00")
            .bearer_auth(&token),
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("`text`"),
        "{body}"
    );
    let body = refused(
        app.get("/api/v1/checklists/entrance%00/versions/1.0.0")
            .bearer_auth(&token),
        StatusCode::BAD_REQUEST,
        "invalid-path",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("`id`"), "{body}");

    // A photo's own id, sent as a multipart field: refused, nothing stored.
    let form = reqwest::multipart::Form::new()
        .text("item", "entrance.level_entrance")
        .text("client_photo_id", "IMG\u{0}1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(common::images::jpeg(300, 200)).file_name("a.jpg"),
        );
    let body = refused(
        app.request(Method::POST, &format!("/api/v1/audits/{audit}/photos"))
            .bearer_auth(&token)
            .multipart(form),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "client_photo_id", "{body}");
    let (_, _, stored) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(stored["photos"], json!([]), "{stored}");
}

/// Instants from clients lie in the years 1–9999: chrono reads years up to
/// ±262,143, which PostgreSQL cannot hold before 4714 BC (it answered 500)
/// and the embedded database, keeping instants as text, ordered wrongly.
#[tokio::test]
async fn instants_outside_the_years_1_to_9999_are_refused() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let admin = app.token("admin@demo.local").await;
    let site = app.demo_site(&token, "библиотека").await;

    for far in [
        "-262143-01-01T00:00:00Z",
        "+262142-12-31T23:59:59Z",
        "+10000-01-01T00:00:00Z",
    ] {
        let id = uuid::Uuid::new_v4();
        let body = refused(
            app.request(Method::PUT, &format!("/api/v1/audits/{id}"))
                .bearer_auth(&token)
                .json(&json!({"site_id": site, "started_at": far})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "started_at", "{body}");
        let (status, _, _) =
            call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing created for {far}");

        refused(
            app.get("/api/v1/audits")
                .query(&[("updated_since", far)])
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        )
        .await;
        refused(
            app.get("/api/v1/audit-log")
                .query(&[("since", far)])
                .bearer_auth(&admin),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        )
        .await;
    }

    // The ends of the range hold, and order as instants on both databases.
    let id = uuid::Uuid::new_v4();
    let (status, _, audit) = call(
        app.request(Method::PUT, &format!("/api/v1/audits/{id}"))
            .bearer_auth(&token)
            .json(&json!({"site_id": site, "started_at": "9999-12-31T23:59:59Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{audit}");
    assert_eq!(audit["started_at"], "9999-12-31T23:59:59Z");
    for (since, listed) in [
        ("0001-01-01T00:00:00Z", true),
        ("9999-12-31T23:59:59Z", false),
    ] {
        let (status, _, list) = call(
            app.get("/api/v1/audits")
                .query(&[("updated_since", since)])
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ids: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        assert_eq!(ids.contains(&json!(id)), listed, "since {since}: {list}");
    }
}

/// The net under the request checks: a value PostgreSQL refuses to store is
/// the request's fault, 422 `unstorable-value`, not a 500. Other errors of
/// the database stay 500. (SQLite stores U+0000 and has no length limits:
/// nothing to refuse there.)
#[tokio::test]
async fn a_value_the_database_cannot_store_is_a_422_and_other_errors_a_500() {
    use axum::response::IntoResponse;
    use dostup::db::DbError;
    use dostup::http::error::ApiError;
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    use std::sync::Arc;

    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        return;
    }
    // The test's own database, dropped with it.
    let pool = app.state.db.get_postgres_connection_pool();
    sqlx::query("CREATE TABLE bounded (short varchar(3), indexed text)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX ON bounded (indexed)")
        .execute(pool)
        .await
        .unwrap();
    // Digits of a hash chain: text that compresses poorly, too big for an
    // index entry.
    let incompressible: String = (0..200u32)
        .scan([0u8; 32], |state, n| {
            use sha2::{Digest, Sha256};
            *state = Sha256::digest([&state[..], &n.to_le_bytes()].concat()).into();
            Some(hex::encode(*state))
        })
        .collect();
    let cases: [(&str, &str, u16, &str); 5] = [
        ("SELECT $1::text", "a\u{0}b", 422, "unstorable-value"),
        ("SELECT $1::jsonb", "\"a\\u0000b\"", 422, "unstorable-value"),
        (
            "INSERT INTO bounded (short) VALUES ($1)",
            "abcd",
            422,
            "unstorable-value",
        ),
        (
            "INSERT INTO bounded (indexed) VALUES ($1)",
            &incompressible,
            422,
            "unstorable-value",
        ),
        ("SELECT 1 / ($1::int - 1)", "1", 500, "internal-error"),
    ];
    for (sql, value, status, code) in cases {
        let err = sqlx::query(sql)
            .bind(value)
            .execute(pool)
            .await
            .expect_err(sql);
        let err = DbError::from(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))));
        let response = ApiError::from(err).into_response();
        assert_eq!(response.status().as_u16(), status, "{sql}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], code, "{sql}");
    }
}
