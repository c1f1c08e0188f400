//! The directory as operators and volunteers use it: who may write, filters,
//! pagination, validation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::collections::HashSet;

use common::{TestApp, assert_problem, call, field_errors, refused};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn create_institution(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/institutions", &body)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_volunteer_may_read_but_not_create_institutions() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let list: Value = app
        .get("/api/v1/institutions")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        8,
        "the demo's institutions"
    );

    let response = create_institution(
        &app,
        &token,
        json!({"name": "Школа № 1", "region": "48", "sector": "education"}),
    )
    .await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn an_operator_creates_institutions_and_sites_in_scope_only() {
    let app = TestApp::spawn_demo().await;
    let operator = app.token("operator@demo.local").await;
    let response = create_institution(
        &app,
        &operator,
        json!({"name": "  МБОУ «Гимназия № 12»  ", "region": "48", "sector": "education", "tax_id": "4826012345"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["name"], "МБОУ «Гимназия № 12»", "trimmed");
    let id = created["id"].as_str().unwrap();

    let fetched: Value = app
        .get(&format!("/api/v1/institutions/{id}"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);

    let site = app
        .post_json(
            &format!("/api/v1/institutions/{id}/sites"),
            &json!({"name": "Корпус 1", "address": "г. Липецк, ул. Ленина, 1", "latitude": 52.61, "longitude": 39.59}),
        )
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(site.status(), StatusCode::CREATED);
    let site: Value = site.json().await.unwrap();
    let sites: Value = app
        .get(&format!("/api/v1/institutions/{id}/sites"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sites["items"], json!([site]));
    assert_eq!(sites["next_cursor"], Value::Null);

    // The operator is scoped to region 48; region 29 is someone else's.
    let admin = app.token("admin@demo.local").await;
    dostup::db::directory::upsert_region(
        &app.state.db,
        &"29".parse().unwrap(),
        "Архангельская область",
    )
    .await
    .unwrap();
    let elsewhere = create_institution(
        &app,
        &operator,
        json!({"name": "Библиотека", "region": "29", "sector": "culture"}),
    )
    .await;
    assert_problem(elsewhere, StatusCode::FORBIDDEN, "forbidden").await;
    let by_admin = create_institution(
        &app,
        &admin,
        json!({"name": "Библиотека", "region": "29", "sector": "culture"}),
    )
    .await;
    assert_eq!(by_admin.status(), StatusCode::CREATED);

    // The same tax id twice is a conflict, not a second institution.
    let duplicate = create_institution(
        &app,
        &admin,
        json!({"name": "Другое имя", "region": "48", "sector": "education", "tax_id": "4826012345"}),
    )
    .await;
    assert_problem(duplicate, StatusCode::CONFLICT, "tax-id-taken").await;
}

#[tokio::test]
async fn invalid_institutions_list_every_bad_field() {
    let app = TestApp::spawn_demo().await;
    let admin = app.token("admin@demo.local").await;
    let response = create_institution(
        &app,
        &admin,
        json!({"name": "   ", "region": "4", "sector": "education", "tax_id": "12ab"}),
    )
    .await;
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let fields: HashSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["name", "region", "tax_id"]));

    let unknown_region = create_institution(
        &app,
        &admin,
        json!({"name": "Школа", "region": "77", "sector": "education"}),
    )
    .await;
    let body = assert_problem(
        unknown_region,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "region");
    assert_eq!(body["errors"][0]["code"], "unknown-region");

    let bad_sector = create_institution(
        &app,
        &admin,
        json!({"name": "Школа", "region": "48", "sector": "schools"}),
    )
    .await;
    let body = assert_problem(
        bad_sector,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "sector");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("education")
    );

    let site = app
        .post_json(
            "/api/v1/institutions/01890000-0000-7000-8000-000000000000/sites",
            &json!({"name": "x", "address": "y", "latitude": 1.0, "longitude": 1.0}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(site, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn sites_reject_impossible_coordinates() {
    let app = TestApp::spawn_demo().await;
    let admin = app.token("admin@demo.local").await;
    let list: Value = app
        .get("/api/v1/institutions?limit=1")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap();
    let response = app
        .post_json(
            &format!("/api/v1/institutions/{id}/sites"),
            &json!({"name": "Корпус", "address": "адрес", "latitude": 152.0, "longitude": -200.0}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let codes = field_errors(&body);
    assert_eq!(
        codes,
        vec![("latitude", "out-of-range"), ("longitude", "out-of-range")]
    );
}

#[tokio::test]
async fn pages_cover_every_institution_exactly_once() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = app
            .get("/api/v1/institutions")
            .bearer_auth(&token)
            .query(&[("limit", "3")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "8 institutions in pages of 3");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 8);
    assert_eq!(unique.len(), 8);

    for (query, code) in [
        ("limit=0", "invalid-query"),
        ("limit=100000", "invalid-query"),
        ("cursor=bogus", "invalid-cursor"),
    ] {
        let response = app
            .get(&format!("/api/v1/institutions?{query}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn institutions_filter_by_region_sector_and_text() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("reviewer@demo.local").await;
    let names = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |query: &'static str| {
        let request = app
            .get(&format!("/api/v1/institutions?{query}"))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let health = get("sector=health").await;
    assert_eq!(names(health).len(), 2);
    // Case-insensitive on Cyrillic, which SQLite's LIKE alone would miss.
    let library = names(get("text=%D0%91%D0%98%D0%91%D0%9B%D0%98%D0%9E%D0%A2%D0%95%D0%9A").await);
    assert_eq!(
        library,
        vec!["ГУК «Липецкая областная универсальная научная библиотека»"]
    );
    // LIKE wildcards in the text are literal.
    assert!(names(get("text=%25").await).is_empty());
    assert!(names(get("region=29").await).is_empty());
    assert_eq!(names(get("region=48&sector=culture").await).len(), 2);

    let bad = app
        .get("/api/v1/institutions?sector=schools")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid-query").await;
}

#[tokio::test]
async fn admins_manage_organisations_and_users() {
    let app = TestApp::spawn_demo().await;
    let admin = app.token("admin@demo.local").await;
    let org = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "Липецкое отделение ВОС", "kind": "disability_organisation", "region": "48"}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), StatusCode::CREATED);
    let org: Value = org.json().await.unwrap();

    let user = app
        .post_json(
            "/api/v1/users",
            &json!({"email": "New.Volunteer@Example.org", "password": "long-enough-pw", "role": "volunteer",
                    "organisation_id": org["id"], "region": "48"}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::CREATED);
    let user: Value = user.json().await.unwrap();
    assert_eq!(user["email"], "new.volunteer@example.org");
    assert_eq!(
        app.login("NEW.volunteer@example.org", "long-enough-pw")
            .await
            .status(),
        StatusCode::OK
    );

    let duplicate = app
        .post_json(
            "/api/v1/users",
            &json!({"email": "new.volunteer@EXAMPLE.org", "password": "long-enough-pw", "role": "volunteer"}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(duplicate, StatusCode::CONFLICT, "email-taken").await;

    let weak = app
        .post_json(
            "/api/v1/users",
            &json!({"email": "a@b.org", "password": "short", "role": "volunteer"}),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = assert_problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    assert_eq!(body["errors"][0]["code"], "weak-password");

    // Every bad field is named at once, and nothing is created.
    let body = refused(
        app.post_json(
            "/api/v1/users",
            &json!({"email": "not-an-address", "password": "p".repeat(1025), "role": "volunteer",
                    "display_name": "Д".repeat(201)}),
        )
        .bearer_auth(&admin),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let named = field_errors(&body);
    assert_eq!(
        named,
        [
            ("email", "invalid-email"),
            ("password", "too-long"),
            ("display_name", "too-long")
        ]
    );
    // The bounds themselves are allowed.
    let (status, _, bounded) = call(
        app.post_json(
            "/api/v1/users",
            &json!({"email": "bounds@example.org", "password": "p".repeat(1024), "role": "volunteer",
                    "display_name": "Д".repeat(200)}),
        )
        .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bounded}");

    let operator = app.token("operator@demo.local").await;
    let forbidden = app
        .get("/api/v1/users")
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
    let users: Value = app
        .get("/api/v1/users")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 8);
}
