//! Logins, refresh rotation, reuse detection, logout and throttling, as a
//! mobile client experiences them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEMO_USERS: [(&str, &str); 6] = [
    ("admin@demo.local", "admin"),
    ("operator@demo.local", "operator"),
    ("volunteer@demo.local", "volunteer"),
    ("coordinator@demo.local", "coordinator"),
    ("reviewer@demo.local", "reviewer"),
    ("council@demo.local", "council"),
];

async fn tokens(app: &TestApp, email: &str) -> Value {
    let response = app.login(email, "demo-password").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &Value) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh_token}),
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn every_demo_user_logs_in_and_sees_their_role() {
    let app = TestApp::spawn_demo().await;
    for (email, role) in DEMO_USERS {
        let pair = tokens(&app, email).await;
        assert_eq!(pair["token_type"], "Bearer");
        assert_eq!(pair["expires_in"], 900);
        let me: Value = app
            .get("/api/v1/me")
            .bearer_auth(pair["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], email);
        assert_eq!(me["role"], role);
        assert!(
            me.get("password_hash").is_none(),
            "hash never leaves the service"
        );
    }
}

#[tokio::test]
async fn email_is_case_insensitive() {
    let app = TestApp::spawn_demo().await;
    let response = app.login("  Volunteer@DEMO.local ", "demo-password").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn_demo().await;
    let wrong_password = assert_problem(
        app.login("volunteer@demo.local", "not-the-password").await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let unknown_email = assert_problem(
        app.login("nobody@demo.local", "not-the-password").await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    assert_eq!(wrong_password, unknown_email);
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_session() {
    let app = TestApp::spawn_demo().await;
    let first = tokens(&app, "volunteer@demo.local").await;

    let response = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    let me = app
        .get("/api/v1/me")
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // Someone replays the first token: the whole family dies…
    assert_problem(
        refresh(&app, &first["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    )
    .await;
    // …including the legitimate, newer token.
    assert_problem(
        refresh(&app, &second["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;

    // Another login of the same user is a separate family and still works.
    let other = tokens(&app, "volunteer@demo.local").await;
    assert_eq!(
        refresh(&app, &other["refresh_token"]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_only_one_through() {
    let app = TestApp::spawn_demo().await;
    let pair = tokens(&app, "reviewer@demo.local").await;
    let (a, b) = tokio::join!(
        refresh(&app, &pair["refresh_token"]),
        refresh(&app, &pair["refresh_token"])
    );
    let ok = [a.status(), b.status()]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert!(ok <= 1, "a refresh token works at most once");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn_demo().await;
    let pair = tokens(&app, "coordinator@demo.local").await;
    let response = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        refresh(&app, &pair["refresh_token"]).await,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
    // Logging out twice is harmless.
    let again = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused() {
    let app = TestApp::spawn_demo().await;
    assert_problem(
        refresh(&app, &json!("made-up")).await,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    )
    .await;
}

#[tokio::test]
async fn protected_routes_need_a_valid_token() {
    let app = TestApp::spawn_demo().await;
    let missing = app.get("/api/v1/me").send().await.unwrap();
    assert_eq!(
        missing
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    assert_problem(missing, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let garbage = app
        .get("/api/v1/me")
        .bearer_auth("dst1.abc.def")
        .send()
        .await
        .unwrap();
    assert_problem(garbage, StatusCode::UNAUTHORIZED, "invalid-token").await;

    let basic = app
        .get("/api/v1/institutions")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED, "invalid-token").await;

    // A token signed by another installation is not accepted here.
    let other = TestApp::spawn_demo().await;
    let foreign = other.token("admin@demo.local").await;
    let response = app
        .get("/api/v1/me")
        .bearer_auth(&foreign)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid-token").await;
}

#[tokio::test]
async fn expired_access_tokens_say_so() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let mut claims = app.state.sessions.key.verify(&token, 0).unwrap();
    claims.exp = chrono::Utc::now().timestamp() - 1;
    let expired = app.state.sessions.key.sign(&claims);
    let response = app
        .get("/api/v1/me")
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "token-expired").await;
}

#[tokio::test]
async fn login_attempts_are_throttled_per_account() {
    let app = TestApp::spawn_with(|s| s.login_attempts_per_minute = 3).await;
    dostup::demo::seed(&app.state.db).await.unwrap();
    for _ in 0..3 {
        let response = app.login("volunteer@demo.local", "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = app.login("volunteer@demo.local", "demo-password").await;
    let retry_after: u64 = throttled
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!(retry_after >= 1);
    assert_problem(
        throttled,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-login-attempts",
    )
    .await;
    // Other accounts from the same address still get in.
    assert_eq!(
        app.login("admin@demo.local", "demo-password")
            .await
            .status(),
        StatusCode::OK
    );
}
