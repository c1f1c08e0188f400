//! The `dostup` binary as an operator runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use common::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn dostup(data_dir: &std::path::Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dostup"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(database_url);
    command
}

/// Kills the server when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_demo_answers_logs_in_every_demo_user_and_serves_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;
    let mut child = dostup(dir.path(), &database.url)
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Running(child);

    // The server prints the demo logins, then the address it listens on.
    let mut printed = Vec::new();
    let mut base = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Listening on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        printed.push(line);
    }
    let base = base.expect("server printed its address");
    let printed = printed.join("\n");
    for user in [
        "admin",
        "operator",
        "volunteer",
        "coordinator",
        "reviewer",
        "council",
    ] {
        assert!(printed.contains(&format!("{user}@demo.local")), "{printed}");
    }

    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    for user in [
        "admin",
        "operator",
        "volunteer",
        "coordinator",
        "reviewer",
        "council",
    ] {
        let response = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": format!("{user}@demo.local"), "password": "demo-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{user}");
    }
    let doc: Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/institutions"].is_object());
    drop(server);

    // Seeding again (a restart with --demo) duplicates nothing.
    let conn = dostup::db::connect(&database.url).await.unwrap();
    let before = dostup::db::users::list_users(
        &conn,
        dostup::db::PageRequest {
            after: None,
            limit: 100,
        },
    )
    .await
    .unwrap()
    .items
    .len();
    dostup::demo::seed(&conn).await.unwrap();
    let after = dostup::db::users::list_users(
        &conn,
        dostup::db::PageRequest {
            after: None,
            limit: 100,
        },
    )
    .await
    .unwrap()
    .items
    .len();
    assert_eq!(before, 6);
    assert_eq!(after, 6);
}

#[tokio::test]
async fn user_create_and_migrate_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;

    let migrate = dostup(dir.path(), &database.url)
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let listing = String::from_utf8(migrate.stdout).unwrap();
    assert!(
        listing.lines().all(|l| l.starts_with("applied ")),
        "{listing}"
    );
    assert!(listing.contains("m20261125_000002_create_users"));

    let mut create = dostup(dir.path(), &database.url)
        .args([
            "user",
            "create",
            "--email",
            "Chief@Example.org",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-admin-password\n")
        .unwrap();
    let output = create.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("chief@example.org"));

    let again = dostup(dir.path(), &database.url)
        .args([
            "user",
            "create",
            "--email",
            "chief@example.org",
            "--role",
            "admin",
        ])
        .env("DOSTUP_USER_PASSWORD", "a-long-admin-password")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("an account with this email exists"));

    // The bounds of `POST /users` hold here too.
    let long_password = dostup(dir.path(), &database.url)
        .args([
            "user",
            "create",
            "--email",
            "long@example.org",
            "--role",
            "volunteer",
        ])
        .env("DOSTUP_USER_PASSWORD", "p".repeat(1025))
        .output()
        .unwrap();
    assert!(!long_password.status.success());
    assert!(String::from_utf8_lossy(&long_password.stderr).contains("at most 1024 characters"));

    let bad_role = dostup(dir.path(), &database.url)
        .args([
            "user",
            "create",
            "--email",
            "x@example.org",
            "--role",
            "boss",
        ])
        .output()
        .unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("volunteer, coordinator"));

    let no_password = dostup(dir.path(), &database.url)
        .args([
            "user",
            "create",
            "--email",
            "x@example.org",
            "--role",
            "volunteer",
        ])
        .output()
        .unwrap();
    assert!(!no_password.status.success());
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("DOSTUP_USER_PASSWORD"));
}

#[test]
fn version_and_bad_configuration_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let version = Command::new(env!("CARGO_BIN_EXE_dostup"))
        .arg("version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("dostup "));

    let config = dir.path().join("dostup.toml");
    std::fs::write(&config, "bind = \"127.0.0.1:1\"\nbnid = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dostup"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bnid"), "names the unknown key: {stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_dostup"))
        .args(["serve", "--bind", "nowhere", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("bind:"));
}

#[test]
fn checklist_lint_show_and_score_from_the_command_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dostup"))
            .current_dir(root)
            .args(args)
            .output()
            .unwrap()
    };
    let lint = run(&["checklist", "lint"]);
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(String::from_utf8_lossy(&lint.stdout).starts_with("ok: "));

    let broken = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(broken.path().join("methodology")).unwrap();
    std::fs::write(
        broken.path().join("bad.yaml"),
        "id: bad\nversion: 1.0.0\nzone: entrance\ntitle: {ru: Плохой, en: Bad}\nitems:\n  - id: x\n    type: boolen\n",
    )
    .unwrap();
    let lint = run(&["checklist", "lint", broken.path().to_str().unwrap()]);
    assert!(!lint.status.success());
    let stderr = String::from_utf8_lossy(&lint.stderr);
    assert!(
        stderr.contains("bad.yaml:7:"),
        "file:line of the bad type: {stderr}"
    );

    let show = run(&["checklist", "show", "entrance_ramp"]);
    assert!(show.status.success());
    let compiled: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(compiled["id"], "entrance_ramp");
    let unknown = run(&["checklist", "show", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown checklist `nope`"));

    // The worked example of the typical older building: 3 of 5, 4 of 6, 70 %.
    let score = run(&[
        "score",
        "--answers",
        "checklists/examples/typical-older-building.json",
    ]);
    assert!(
        score.status.success(),
        "{}",
        String::from_utf8_lossy(&score.stderr)
    );
    let result: Value = serde_json::from_slice(&score.stdout).unwrap();
    assert_eq!(result["nok"]["p3_1"], 60.0);
    // Texts rendered when the checklists were compiled are indented like the rest.
    let printed = String::from_utf8_lossy(&score.stdout);
    assert!(
        printed.contains("\"message\": {\n") && !printed.contains("{\"ru\""),
        "{printed}"
    );
    assert!(result["rules"][0]["message"]["ru"].is_string());
    assert!(result["rules"][0]["norm"]["document"].is_string());
    assert_eq!(result["nok"]["p3_2"], 80.0);
    assert_eq!(result["nok"]["p3_3"], 70.0);
    assert_eq!(result["nok"]["k3"], 71.0);
    let text = run(&[
        "score",
        "--answers",
        "checklists/examples/typical-older-building.json",
        "--format",
        "text",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("K3 = 71"));
    let points = run(&[
        "score",
        "--answers",
        "checklists/examples/accessible-new-building.json",
        "--methodology",
        "example-region-points",
    ]);
    let points: Value = serde_json::from_slice(&points.stdout).unwrap();
    assert!(
        points["points"]["maximum"].as_f64().unwrap() > 0.0,
        "{}",
        points["points"]
    );
}

#[tokio::test]
async fn an_entry_that_cannot_be_sealed_is_set_aside_reported_and_requeued() {
    use dostup::db::entity::{audit_log, outbox};
    use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    let app = common::TestApp::spawn_demo().await;
    // A row an older or newer release wrote, an hour ago, in a shape this
    // one cannot read (and no replica has read since).
    let bad = common::push_raw_entry(
        &app.state.db,
        "{\"at\": \"yesterday\"".to_owned(),
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
    .await;

    // It does not hold up the writes behind it.
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "поликлиника").await;
    let id = common::flows::new_audit(&app, &token, &site).await;
    let (status, _, feed) = common::call(app.get("/api/v1/sync").bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert!(
        feed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["data"]["audit_id"] == id.as_str()),
        "{feed}"
    );
    let row = outbox::Entity::find_by_id(bad)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the row is kept");
    assert!(
        row.failure
            .as_deref()
            .is_some_and(|f| f.starts_with("unreadable log entry")),
        "{:?}",
        row.failure
    );

    // The operator is told, and the chain itself is whole.
    let (ok, stdout, stderr) = run_cli(&app, &["log", "verify"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("audit log intact"), "{stdout}");
    assert!(stderr.contains("1 entries were set aside"), "{stderr}");

    // Nothing to do until the row can be read: it is set aside again.
    let (ok, _, stderr) = run_cli(&app, &["log", "requeue"]).await;
    assert!(!ok);
    assert!(stderr.contains("1 entries cannot be read"), "{stderr}");

    // Once it reads (here: repaired by hand), requeue chains it.
    outbox::Entity::update(outbox::ActiveModel {
        id: Set(bad),
        entry: Set(Some(common::outbox_entry("audit.repaired"))),
        ..Default::default()
    })
    .exec(&app.state.db)
    .await
    .unwrap();
    let (ok, stdout, stderr) = run_cli(&app, &["log", "requeue"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 entries put back in line"), "{stdout}");
    let repaired = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("audit.repaired"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(repaired, 1);
    let (ok, stdout, stderr) = run_cli(&app, &["log", "verify"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("audit log intact"), "{stdout}");
    assert!(!stderr.contains("set aside"), "{stderr}");
    assert_eq!(
        outbox::Entity::find().count(&app.state.db).await.unwrap(),
        0
    );
}

/// Runs `dostup ARGS` against `app`'s database, off the test's runtime so
/// that the service in the test keeps running meanwhile; returns whether it
/// succeeded, and its output and error output.
async fn run_cli(app: &common::TestApp, args: &[&str]) -> (bool, String, String) {
    let mut command = dostup(app.dir.path(), &app.db.url);
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
