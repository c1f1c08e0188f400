//! Steps of the audit workflow as clients take them, shared by the test files.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{TestApp, call};

pub fn example_answers(name: &str) -> Value {
    let path = format!(
        "{}/checklists/examples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    example["answers"].clone()
}

/// A new draft audit of `site` by `token`; returns its id.
pub async fn new_audit(app: &TestApp, token: &str, site: &str) -> String {
    let id = Uuid::new_v4().to_string();
    let (status, _, body) = call(
        app.request(Method::PUT, &format!("/api/v1/audits/{id}"))
            .bearer_auth(token)
            .json(&json!({ "site_id": site })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

pub async fn etag(app: &TestApp, token: &str, id: &str) -> String {
    let (status, headers, body) =
        call(app.get(&format!("/api/v1/audits/{id}")).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    headers["etag"].to_str().unwrap().to_owned()
}

pub async fn patch(app: &TestApp, token: &str, id: &str, answers: Value) -> Value {
    let version = etag(app, token, id).await;
    let (status, _, body) = call(
        app.request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
            .bearer_auth(token)
            .header("if-match", version)
            .json(&json!({ "answers": answers })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn submit(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(
        app.post_json(&format!("/api/v1/audits/{id}/submit"), &json!({}))
            .bearer_auth(token),
    )
    .await;
    (status, body)
}

/// A complete audit of the first site of the demo institution whose name
/// contains `institution`, answered from the example file `example` with every
/// required photo, submitted by `token`.
pub async fn submitted_example(
    app: &TestApp,
    token: &str,
    institution: &str,
    example: &str,
) -> String {
    let site = app.demo_site(token, institution).await;
    let id = new_audit(app, token, &site).await;
    patch(app, token, &id, example_answers(example)).await;
    let (status, problem) = submit(app, token, &id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    for (n, error) in problem["errors"].as_array().unwrap().iter().enumerate() {
        assert_eq!(error["code"], "photo-required", "{error}");
        let form = reqwest::multipart::Form::new()
            .text("item", error["field"].as_str().unwrap().to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(super::images::jpeg(300 + n as u32, 200))
                    .file_name("p.jpg"),
            );
        let response = app
            .request(Method::POST, &format!("/api/v1/audits/{id}/photos"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let (status, body) = submit(app, token, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], 1);
    id
}

pub async fn review(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    app.post_json(&format!("/api/v1/audits/{id}/review"), &body)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub async fn verdict(
    app: &TestApp,
    token: &str,
    id: &str,
    rule: &str,
    body: Value,
) -> reqwest::Response {
    app.request(Method::PUT, &format!("/api/v1/audits/{id}/verdicts/{rule}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}
