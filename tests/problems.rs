//! Every malformed request gets a problem+json answer with a stable code,
//! never axum's plain-text rejection and never a 500.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{TestApp, assert_problem};
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
