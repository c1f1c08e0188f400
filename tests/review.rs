//! Ministry review as reviewers and volunteers live it: the queue, claims,
//! verdicts that change the score, return through `/sync`, resubmission as
//! a new revision, approval; illegal transitions; and the tamper-evident
//! log that records all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::flows::{etag, patch, review, submit, submitted_example, verdict};
use common::{TestApp, assert_problem, call};
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

/// A complete audit of the demo library, answered from the accessible-building
/// example with every required photo, submitted by `token`.
async fn submitted_audit(app: &TestApp, token: &str) -> String {
    submitted_example(app, token, "библиотека", "accessible-new-building").await
}

/// Creates an account through the admin API and returns its access token.
async fn account(app: &TestApp, email: &str, role: &str, region: &str) -> String {
    let admin = app.token("admin@demo.local").await;
    let (status, _, body) = call(
        app.post_json(
            "/api/v1/users",
            &json!({"email": email, "password": "another-long-password", "role": role,
                    "region": region, "display_name": email}),
        )
        .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = app.login(email, "another-long-password").await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn rule<'a>(audit: &'a Value, key: &str) -> &'a Value {
    audit["evaluation"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == key)
        .unwrap_or_else(|| panic!("rule {key} in the evaluation"))
}

#[tokio::test]
async fn a_returned_audit_is_fixed_resubmitted_and_approved_with_the_override_counted() {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let reviewer = app.token("reviewer@demo.local").await;
    let id = submitted_audit(&app, &volunteer).await;
    let (_, _, before_review) = call(app.get("/api/v1/sync").bearer_auth(&volunteer)).await;
    let cursor = before_review["cursor"].as_str().unwrap().to_owned();

    // The queue shows it, with the site, the volunteer's organisation and what to look at.
    let (status, _, queue) = call(app.get("/api/v1/review/queue").bearer_auth(&reviewer)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let entry = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["audit_id"] == id.as_str())
        .expect("the submitted audit is queued")
        .clone();
    assert!(entry["site"]["name"].as_str().unwrap().len() > 3);
    assert!(entry["organisation"]["name"].is_string(), "{entry}");
    assert_eq!(entry["rules"]["fail"], 0);
    assert!(entry["photos"].as_u64().unwrap() > 0);
    assert!(
        entry["photo_flags"]["no-exif"].as_u64().unwrap() > 0,
        "{entry}"
    );
    let institution = entry["institution"]["id"].as_str().unwrap().to_owned();
    for (filter, found) in [
        (institution.as_str(), true),
        ("01a237d2-0000-7000-8000-000000000000", false),
    ] {
        let (_, _, filtered) = call(
            app.get("/api/v1/review/queue")
                .query(&[("institution", filter)])
                .bearer_auth(&reviewer),
        )
        .await;
        let ids: Vec<&str> = filtered["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["audit_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.contains(&id.as_str()), found, "institution={filter}");
    }
    let (_, _, flagged) = call(
        app.get("/api/v1/review/queue")
            .query(&[("flag", "far-from-site")])
            .bearer_auth(&reviewer),
    )
    .await;
    assert_eq!(
        flagged["items"],
        json!([]),
        "no photo of it is far from the site"
    );

    // Claimed, so a second reviewer of the region cannot take it.
    let (status, _, claimed) = call(
        app.request(Method::POST, &format!("/api/v1/audits/{id}/claim"))
            .bearer_auth(&reviewer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let reviewer_id = claimed["review"]["claimed_by"].as_str().unwrap().to_owned();
    let second = account(&app, "second.reviewer@demo.local", "reviewer", "48").await;
    let taken = app
        .request(Method::POST, &format!("/api/v1/audits/{id}/claim"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(taken, StatusCode::CONFLICT, "audit-claimed").await;
    assert_eq!(problem["claimed_by"], reviewer_id.as_str());
    let meddling = review(&app, &second, &id, json!({"decision": "approve"})).await;
    assert_problem(meddling, StatusCode::CONFLICT, "audit-claimed").await;

    // An override needs a comment and a real rule; then it changes the score.
    assert_eq!(claimed["evaluation"]["nok"]["p3_1"], 100.0);
    let bare = verdict(
        &app,
        &reviewer,
        &id,
        "territory.parking_share",
        json!({"verdict": "fail"}),
    )
    .await;
    let problem = assert_problem(bare, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "comment");
    let unknown = verdict(
        &app,
        &reviewer,
        &id,
        "territory.no_such_rule",
        json!({"verdict": "pass", "comment": "x"}),
    )
    .await;
    let problem = assert_problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "unknown-rule");
    let response = verdict(
        &app,
        &reviewer,
        &id,
        "territory.parking_share",
        json!({"verdict": "fail", "comment": "the photo shows one marked space for 20 places"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let overridden: Value = response.json().await.unwrap();
    let share = rule(&overridden, "territory.parking_share");
    assert_eq!(share["outcome"], "fail");
    assert_eq!(
        share["engine_outcome"], "pass",
        "the engine's own outcome stays recorded"
    );
    assert_eq!(
        share["review"]["comment"],
        "the photo shows one marked space for 20 places"
    );
    assert_eq!(
        overridden["evaluation"]["nok"]["p3_1"], 80.0,
        "3.1.2 parking is no longer met"
    );
    let confirmed = verdict(
        &app,
        &reviewer,
        &id,
        "entrance.door_width",
        json!({"verdict": "confirm"}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);

    // Returning needs a reason; with one, the volunteer's phone learns of it.
    let silent = review(&app, &reviewer, &id, json!({"decision": "return"})).await;
    let problem = assert_problem(
        silent,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "reason-required");
    let bad_item = review(
        &app,
        &reviewer,
        &id,
        json!({"decision": "return", "comment": "recount", "items": [{"item": "territory.nothing", "comment": "?"}]}),
    )
    .await;
    let problem = assert_problem(
        bad_item,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "items[0]");
    assert_eq!(problem["errors"][0]["code"], "unknown-item");
    let returned = review(
        &app,
        &reviewer,
        &id,
        json!({"decision": "return", "comment": "Пересчитайте парковку",
               "items": [{"item": "territory.parking_total", "comment": "count every place"}]}),
    )
    .await;
    assert_eq!(returned.status(), StatusCode::OK);
    let returned: Value = returned.json().await.unwrap();
    assert_eq!(returned["status"], "returned");
    assert!(
        returned["review"]["claimed_by"].is_null(),
        "the claim ends with the decision"
    );

    let (_, _, feed) = call(
        app.get("/api/v1/sync")
            .query(&[("cursor", cursor.as_str())])
            .bearer_auth(&volunteer),
    )
    .await;
    let news = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "audit.status_changed" && c["data"]["audit_id"] == id.as_str())
        .expect("the return reaches the volunteer")
        .clone();
    assert_eq!(news["data"]["status"], "returned");
    assert_eq!(news["data"]["review"]["decision"], "return");
    assert_eq!(news["data"]["review"]["comment"], "Пересчитайте парковку");
    assert_eq!(
        news["data"]["review"]["items"][0]["item"],
        "territory.parking_total"
    );

    // Fixed and resubmitted: a second revision.
    patch(
        &app,
        &volunteer,
        &id,
        json!({"territory.parking_total": 21}),
    )
    .await;
    let (status, resubmitted) = submit(&app, &volunteer, &id).await;
    assert_eq!(status, StatusCode::OK, "{resubmitted}");
    assert_eq!(resubmitted["revision"], 2);

    let approved = review(
        &app,
        &reviewer,
        &id,
        json!({"decision": "approve", "comment": "ok"}),
    )
    .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        approved["evaluation"]["nok"]["p3_1"], 80.0,
        "the override still counts"
    );

    // The volunteer sees the approved audit with the reviewer's verdicts and can no longer edit.
    let (_, _, seen) = call(
        app.get(&format!("/api/v1/audits/{id}"))
            .bearer_auth(&volunteer),
    )
    .await;
    assert_eq!(seen["status"], "approved");
    assert_eq!(seen["evaluation"]["nok"]["p3_1"], 80.0);
    assert_eq!(seen["review"]["verdicts"].as_array().unwrap().len(), 2);
    assert_eq!(seen["review"]["decisions"].as_array().unwrap().len(), 2);
    let late = app
        .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
        .bearer_auth(&volunteer)
        .header("if-match", format!("\"{}\"", seen["version"]))
        .json(&json!({"answers": {"territory.parking_total": 5}}))
        .send()
        .await
        .unwrap();
    assert_problem(late, StatusCode::CONFLICT, "audit-not-editable").await;

    // Both revisions stay readable, with the decision on each and the diff between them.
    let (_, _, revisions) = call(
        app.get(&format!("/api/v1/audits/{id}/revisions"))
            .bearer_auth(&volunteer),
    )
    .await;
    let items = revisions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{revisions}");
    assert_eq!(items[0]["decision"]["decision"], "return");
    assert_eq!(items[1]["decision"]["decision"], "approve");
    let (status, _, first) = call(
        app.get(&format!("/api/v1/audits/{id}/revisions/1"))
            .bearer_auth(&reviewer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["answers"]["territory.parking_total"], 20);
    assert!(!first["photos"].as_array().unwrap().is_empty());
    let (_, _, diff) = call(
        app.get(&format!("/api/v1/audits/{id}/diff"))
            .query(&[("from", "1"), ("to", "2")])
            .bearer_auth(&reviewer),
    )
    .await;
    assert_eq!(
        diff["answers"]["changed"],
        json!({"territory.parking_total": {"from": 20, "to": 21}})
    );
    assert_eq!(diff["answers"]["added"], json!({}));
    assert_eq!(diff["photos"], json!({"added": [], "removed": []}));
    let missing = app
        .get(&format!("/api/v1/audits/{id}/revisions/3"))
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "not-found").await;

    // Every step is in the verified log; reviewers read it from the first
    // submission on (they do not see drafts), admins from the start.
    let admin = app.token("admin@demo.local").await;
    let history = |token: String| {
        let request = app
            .get("/api/v1/audit-log")
            .query(&[
                ("target", format!("audit:{id}").as_str()),
                ("limit", "1000"),
            ])
            .bearer_auth(token);
        async move {
            let (_, _, log) = call(request).await;
            log
        }
    };
    let names = |log: &Value| -> Vec<String> {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    let everything = names(&history(admin.clone()).await);
    let log = history(reviewer.clone()).await;
    let seen_by_reviewer = names(&log);
    assert_eq!(everything[0], "audit.created");
    assert!(!seen_by_reviewer.contains(&"audit.created".to_owned()));
    assert!(seen_by_reviewer.len() < everything.len());
    let actions: Vec<&str> = everything.iter().map(String::as_str).collect();
    for wanted in [
        "audit.created",
        "audit.answers_updated",
        "audit.submitted",
        "review.claimed",
        "review.verdict_set",
        "review.decided",
    ] {
        assert!(actions.contains(&wanted), "{wanted} in {actions:?}");
    }
    // The fix after the return is an edit of a returned audit: reviewers see it.
    assert!(seen_by_reviewer.contains(&"audit.answers_updated".to_owned()));
    assert_eq!(
        actions.iter().filter(|a| **a == "audit.submitted").count(),
        2
    );
    let decided = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["action"] == "review.decided")
        .unwrap();
    assert_eq!(decided["actor_id"], reviewer_id.as_str());
    assert_eq!(decided["actor_role"], "reviewer");
    assert_eq!(decided["detail"]["decision"], "approve");
    assert!(decided["request_id"].is_string());
    assert_eq!(decided["before_digest"].as_str().unwrap().len(), 64);
    let (_, _, photos) = call(
        app.get("/api/v1/audit-log")
            .query(&[("limit", "1000")])
            .bearer_auth(&admin),
    )
    .await;
    let all: Vec<&str> = photos["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        all.contains(&"photo.added")
            && all.contains(&"user.login")
            && all.contains(&"user.created")
    );
    // The log filters by actor and by time.
    let (_, _, by_reviewer) = call(
        app.get("/api/v1/audit-log")
            .query(&[("actor", reviewer_id.as_str()), ("limit", "1000")])
            .bearer_auth(&admin),
    )
    .await;
    let entries = by_reviewer["items"].as_array().unwrap();
    assert!(
        entries.len() >= 4,
        "claim, verdict, two decisions: {by_reviewer}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["actor_id"] == reviewer_id.as_str())
    );
    for (bound, at) in [
        ("since", "2999-01-01T00:00:00Z"),
        ("until", "2000-01-01T00:00:00Z"),
    ] {
        let (_, _, none) = call(
            app.get("/api/v1/audit-log")
                .query(&[(bound, at)])
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(none["items"], json!([]), "{bound} {at}");
    }
    let (_, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["entries"], verified["head_seq"]);
}

#[tokio::test]
async fn illegal_transitions_and_foreign_reviews_are_refused() {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let reviewer = app.token("reviewer@demo.local").await;
    let admin = app.token("admin@demo.local").await;

    // A draft: reviewers do not see it; an admin who does cannot approve it.
    let site = app.demo_site(&volunteer, "библиотека").await;
    let draft = Uuid::new_v4().to_string();
    call(
        app.request(Method::PUT, &format!("/api/v1/audits/{draft}"))
            .bearer_auth(&volunteer)
            .json(&json!({"site_id": site})),
    )
    .await;
    let hidden = review(&app, &reviewer, &draft, json!({"decision": "approve"})).await;
    assert_problem(hidden, StatusCode::NOT_FOUND, "not-found").await;
    let early = review(&app, &admin, &draft, json!({"decision": "approve"})).await;
    let problem = assert_problem(early, StatusCode::CONFLICT, "invalid-transition").await;
    assert_eq!(problem["audit_status"], "draft");
    let claim_draft = app
        .request(Method::POST, &format!("/api/v1/audits/{draft}/claim"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(claim_draft, StatusCode::CONFLICT, "invalid-transition").await;

    let id = submitted_audit(&app, &volunteer).await;
    // Volunteers do not review, not even their own audits.
    let own = review(&app, &volunteer, &id, json!({"decision": "approve"})).await;
    assert_problem(own, StatusCode::FORBIDDEN, "forbidden").await;
    // A reviewer of another region neither sees nor decides.
    dostup::db::directory::upsert_region(
        &app.state.db,
        &"29".parse().unwrap(),
        "Архангельская область",
    )
    .await
    .unwrap();
    let elsewhere = account(&app, "reviewer.29@demo.local", "reviewer", "29").await;
    let (_, _, queue) = call(app.get("/api/v1/review/queue").bearer_auth(&elsewhere)).await;
    assert_eq!(queue["items"], json!([]));
    let foreign = review(
        &app,
        &elsewhere,
        &id,
        json!({"decision": "reject", "comment": "no"}),
    )
    .await;
    assert_problem(foreign, StatusCode::NOT_FOUND, "not-found").await;
    let (_, _, log) = call(app.get("/api/v1/audit-log").bearer_auth(&elsewhere)).await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["region"] == "29"),
        "a reviewer reads only the log of their scope: {log}"
    );
    let refused = app
        .get("/api/v1/audit-log")
        .bearer_auth(&volunteer)
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;

    // Reject needs a reason; a decided audit cannot be decided again.
    let bare = review(&app, &reviewer, &id, json!({"decision": "reject"})).await;
    assert_problem(bare, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    let unknown = review(&app, &reviewer, &id, json!({"decision": "maybe"})).await;
    assert_problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let rejected = review(
        &app,
        &reviewer,
        &id,
        json!({"decision": "reject", "comment": "wrong building photographed"}),
    )
    .await;
    assert_eq!(rejected.status(), StatusCode::OK);
    let again = review(&app, &reviewer, &id, json!({"decision": "approve"})).await;
    let problem = assert_problem(again, StatusCode::CONFLICT, "invalid-transition").await;
    assert_eq!(problem["audit_status"], "rejected");
    let late_verdict = verdict(
        &app,
        &reviewer,
        &id,
        "territory.parking_share",
        json!({"verdict": "pass", "comment": "x"}),
    )
    .await;
    assert_problem(late_verdict, StatusCode::CONFLICT, "invalid-transition").await;
    let edit = app
        .request(Method::PATCH, &format!("/api/v1/audits/{id}/answers"))
        .bearer_auth(&volunteer)
        .header("if-match", etag(&app, &volunteer, &id).await)
        .json(&json!({"answers": {"territory.parking_total": 1}}))
        .send()
        .await
        .unwrap();
    assert_problem(edit, StatusCode::CONFLICT, "audit-not-editable").await;
}

#[tokio::test]
async fn rules_awaiting_a_reviewer_block_approval_until_judged() {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let reviewer = app.token("reviewer@demo.local").await;
    let id = submitted_example(&app, &volunteer, "библиотека", "typical-older-building").await;
    let (_, _, queue) = call(app.get("/api/v1/review/queue").bearer_auth(&reviewer)).await;
    assert_eq!(queue["items"][0]["rules"]["needs_review"], 1, "{queue}");
    assert!(queue["items"][0]["rules"]["fail"].as_u64().unwrap() > 0);

    let early = review(&app, &reviewer, &id, json!({"decision": "approve"})).await;
    let problem =
        assert_problem(early, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    assert_eq!(
        problem["errors"],
        json!([{"field": "entrance_ramp.ramp_condition", "code": "needs-verdict",
                "message": "give a verdict on this rule (PUT /audits/{id}/verdicts/{rule}) before approving"}])
    );
    let nothing = verdict(
        &app,
        &reviewer,
        &id,
        "entrance_ramp.ramp_condition",
        json!({"verdict": "confirm"}),
    )
    .await;
    let problem = assert_problem(
        nothing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "nothing-to-confirm");

    // A verdict claims the audit; withdrawing it brings the engine's outcome back.
    let judged = verdict(
        &app,
        &reviewer,
        &id,
        "entrance_ramp.ramp_condition",
        json!({"verdict": "pass", "comment": "non-slip coating, no cracks on the photo"}),
    )
    .await;
    assert_eq!(judged.status(), StatusCode::OK);
    let judged: Value = judged.json().await.unwrap();
    assert_eq!(
        rule(&judged, "entrance_ramp.ramp_condition")["outcome"],
        "pass"
    );
    assert!(
        judged["review"]["claimed_by"].is_string(),
        "a verdict claims the audit"
    );
    let withdrawn = app
        .request(
            Method::DELETE,
            &format!("/api/v1/audits/{id}/verdicts/entrance_ramp.ramp_condition"),
        )
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), StatusCode::OK);
    let withdrawn: Value = withdrawn.json().await.unwrap();
    assert_eq!(
        rule(&withdrawn, "entrance_ramp.ramp_condition")["outcome"],
        "needs_review"
    );
    let twice = app
        .request(
            Method::DELETE,
            &format!("/api/v1/audits/{id}/verdicts/entrance_ramp.ramp_condition"),
        )
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap();
    assert_problem(twice, StatusCode::NOT_FOUND, "not-found").await;

    // Released, nobody holds it; releasing again says so.
    let release = || {
        app.request(Method::DELETE, &format!("/api/v1/audits/{id}/claim"))
            .bearer_auth(&reviewer)
            .send()
    };
    let released = release().await.unwrap();
    assert_eq!(released.status(), StatusCode::OK);
    let released: Value = released.json().await.unwrap();
    assert!(released["review"]["claimed_by"].is_null());
    assert_problem(
        release().await.unwrap(),
        StatusCode::CONFLICT,
        "not-claimed",
    )
    .await;

    let judged = verdict(
        &app,
        &reviewer,
        &id,
        "entrance_ramp.ramp_condition",
        json!({"verdict": "fail", "comment": "the surface is cracked"}),
    )
    .await;
    assert_eq!(judged.status(), StatusCode::OK);
    let approved = review(&app, &reviewer, &id, json!({"decision": "approve"})).await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["evaluation"]["summary"]["needs_review"], 0);
    assert_eq!(approved["status"], "approved");
}

/// Runs `dostup log verify` against the test's database.
fn cli_verify(app: &TestApp) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dostup"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(app.dir.path())
        .arg("--database-url")
        .arg(&app.db.url)
        .args(["log", "verify"])
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn verification(app: &TestApp, admin: &str) -> Value {
    let (status, _, body) = call(app.get("/api/v1/audit-log/verify").bearer_auth(admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// An app whose log holds a handful of entries.
async fn logged_app() -> (TestApp, String) {
    let app = TestApp::spawn_demo().await;
    let admin = app.token("admin@demo.local").await;
    for email in [
        "volunteer@demo.local",
        "reviewer@demo.local",
        "council@demo.local",
    ] {
        app.token(email).await;
    }
    let body = verification(&app, &admin).await;
    assert_eq!(body["intact"], true, "{body}");
    assert!(body["entries"].as_i64().unwrap() >= 4);
    (app, admin)
}

#[tokio::test]
async fn a_changed_log_entry_is_named() {
    let (app, admin) = logged_app().await;
    let (ok, out) = cli_verify(&app);
    assert!(ok, "{out}");
    assert!(out.contains("intact"), "{out}");
    app.state
        .db
        .execute_unprepared(
            "UPDATE audit_log SET detail = '{\"address\":\"10.0.0.1\"}' WHERE seq = 2",
        )
        .await
        .unwrap();
    let body = verification(&app, &admin).await;
    assert_eq!(body["intact"], false);
    assert_eq!(body["first_broken"]["seq"], 2);
    assert_eq!(body["first_broken"]["breach"], "altered");
    let (ok, out) = cli_verify(&app);
    assert!(!ok, "the command fails on a broken chain");
    assert!(out.contains("entry 2"), "{out}");
}

#[tokio::test]
async fn a_deleted_log_entry_is_named() {
    let (app, admin) = logged_app().await;
    app.state
        .db
        .execute_unprepared("DELETE FROM audit_log WHERE seq = 3")
        .await
        .unwrap();
    let body = verification(&app, &admin).await;
    assert_eq!(body["first_broken"]["seq"], 3, "{body}");
    assert_eq!(body["first_broken"]["breach"], "missing");

    // Cutting off the end is seen too: the head remembers the last entry.
    let (app, admin) = logged_app().await;
    let last = verification(&app, &admin).await["head_seq"]
        .as_i64()
        .unwrap();
    app.state
        .db
        .execute_unprepared(&format!("DELETE FROM audit_log WHERE seq >= {}", last - 1))
        .await
        .unwrap();
    let body = verification(&app, &admin).await;
    assert_eq!(body["first_broken"]["breach"], "truncated", "{body}");
    assert_eq!(body["first_broken"]["seq"], last - 1);
}

#[tokio::test]
async fn entries_appended_while_verifying_are_left_for_the_next_check() {
    let (app, admin) = logged_app().await;
    // As if the walk had read the head just before the last append: the head
    // records the entry before the last one, the last one is already stored.
    app.state
        .db
        .execute_unprepared(
            "UPDATE audit_log_head SET hash = (SELECT hash FROM audit_log \
             WHERE seq = (SELECT seq FROM audit_log_head) - 1), seq = seq - 1",
        )
        .await
        .unwrap();
    let body = verification(&app, &admin).await;
    assert_eq!(body["intact"], true, "{body}");
    assert_eq!(body["entries"], body["head_seq"]);
}

#[tokio::test]
async fn swapped_log_entries_are_named() {
    let (app, admin) = logged_app().await;
    for sql in [
        "UPDATE audit_log SET seq = -1 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -1",
    ] {
        app.state.db.execute_unprepared(sql).await.unwrap();
    }
    let body = verification(&app, &admin).await;
    assert_eq!(body["intact"], false);
    assert_eq!(body["first_broken"]["seq"], 2, "{body}");
    let (ok, out) = cli_verify(&app);
    assert!(!ok && out.contains("entry 2"), "{out}");
}

const USERS: [&str; 4] = [
    "operator@demo.local",
    "volunteer@demo.local",
    "coordinator@demo.local",
    "council@demo.local",
];

#[tokio::test]
async fn concurrent_actions_on_two_replicas_append_one_unbroken_chain() {
    let app = TestApp::spawn_demo().await;
    let (replica, _stop) = app.replica().await;
    let admin = app.token("admin@demo.local").await;
    let before = verification(&app, &admin).await["entries"]
        .as_i64()
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..24 {
        // Half of the requests go to the second replica.
        let base = if n % 4 < 2 {
            app.url("")
        } else {
            replica.clone()
        };
        let request = if n % 2 == 0 {
            app.client
                .post(format!("{base}/api/v1/institutions"))
                .json(
                    &json!({"name": format!("Школа № {n}"), "region": "48", "sector": "education"}),
                )
                .bearer_auth(&admin)
        } else {
            app.client.post(format!("{base}/api/v1/auth/login")).json(
                &json!({"email": USERS[n % USERS.len()], "password": dostup::demo::DEMO_PASSWORD}),
            )
        };
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_success());
    }
    let body = verification(&app, &admin).await;
    assert_eq!(body["intact"], true, "{body}");
    assert_eq!(body["entries"].as_i64().unwrap(), before + 24);
}
