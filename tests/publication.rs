//! Checklist versions are published once and never change; old versions stay
//! available; a catalog that does not lint keeps the service from starting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::path::{Path, PathBuf};

use common::{TestDatabase, call, item_with_id};
use dostup::config::Settings;
use dostup::server::build_state;
use reqwest::StatusCode;
use serde_json::json;

fn copy_checklists(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("checklists");
    for sub in ["", "methodology"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, to.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}

fn settings(dir: &Path, database: &TestDatabase, checklists: PathBuf) -> Settings {
    let mut settings = Settings::for_data_dir(dir);
    settings.database_url = database.url.clone();
    settings.checklists_dir = checklists;
    settings
}

#[tokio::test]
async fn a_changed_file_needs_a_version_bump_and_old_versions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;
    let checklists = dir.path().join("checklists");
    copy_checklists(&checklists);
    let first = build_state(settings(dir.path(), &database, checklists.clone()))
        .await
        .unwrap();
    let first_release = first.catalogs.release().to_owned();

    // An expert edits the lift checklist but forgets the version.
    let lifts = checklists.join("lifts.yaml");
    let text = std::fs::read_to_string(&lifts).unwrap();
    let version_line = text
        .lines()
        .find(|l| l.starts_with("version:"))
        .unwrap()
        .to_owned();
    let edited = text.replacen("title:", "# cabin size rechecked\ntitle:", 1);
    std::fs::write(&lifts, &edited).unwrap();
    let refused = build_state(settings(dir.path(), &database, checklists.clone()))
        .await
        .unwrap_err();
    let message = format!("{refused:#}");
    assert!(message.contains("checklist `lifts`"), "{message}");
    assert!(
        message.contains("bump `version` in lifts.yaml"),
        "{message}"
    );

    // With the bump the new version is published beside the old one.
    std::fs::write(&lifts, edited.replacen(&version_line, "version: 9.0.0", 1)).unwrap();
    let second = build_state(settings(dir.path(), &database, checklists.clone()))
        .await
        .unwrap();
    assert_ne!(second.catalogs.release(), first_release);
    let old_version = version_line
        .trim_start_matches("version:")
        .trim()
        .to_owned();

    let server =
        dostup::server::Server::bind_with_state("127.0.0.1:0".parse().unwrap(), second.clone())
            .await
            .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    dostup::demo::seed(&second.db).await.unwrap();
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"email": "volunteer@demo.local", "password": "demo-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    for version in [old_version.as_str(), "9.0.0"] {
        let (status, _, body) = call(
            client
                .get(format!(
                    "http://{addr}/api/v1/checklists/lifts/versions/{version}"
                ))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "version {version}: {body}");
        assert_eq!(body["version"], version);
    }
    let (_, _, list) = call(
        client
            .get(format!("http://{addr}/api/v1/checklists"))
            .bearer_auth(token),
    )
    .await;
    let lifts = item_with_id(&list, "lifts");
    assert_eq!(
        lifts["version"], "9.0.0",
        "the list shows the current version"
    );

    // The old release can still be rebuilt for audits pinned to it.
    let old = second.catalogs.for_release(&first_release).await.unwrap();
    assert_eq!(old.checklist("lifts").unwrap().version(), old_version);
}

#[tokio::test]
async fn broken_checklists_keep_the_service_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(dir.path()).await;
    let checklists = dir.path().join("checklists");
    copy_checklists(&checklists);
    let entrance = checklists.join("entrance.yaml");
    let text = std::fs::read_to_string(&entrance).unwrap();
    std::fs::write(&entrance, text.replacen("items:", "itmes:", 1)).unwrap();
    let err = build_state(settings(dir.path(), &database, checklists))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("do not lint"), "{message}");
    assert!(
        message.contains("entrance.yaml:"),
        "names the file and line: {message}"
    );
    assert!(message.contains("itmes"), "{message}");
}

/// Writes a copy of the checklists in which `lifts` is at version 9.0.0,
/// with `note` as a comment so that two copies can differ.
fn lifts_9(to: &Path, note: &str) {
    copy_checklists(to);
    let lifts = to.join("lifts.yaml");
    let text = std::fs::read_to_string(&lifts).unwrap();
    let version_line = text.lines().find(|l| l.starts_with("version:")).unwrap();
    let bumped = text.replacen(version_line, "version: 9.0.0", 1).replacen(
        "title:",
        &format!("# {note}\ntitle:"),
        1,
    );
    std::fs::write(&lifts, bumped).unwrap();
}

/// Starts the service once on a new database in `dir`, then two replicas at
/// the same moment whose `lifts` is at version 9.0.0 with the notes `a` and
/// `b` (the same note, the same content); returns how each start went.
async fn start_two_replicas_of_lifts_9(
    dir: &Path,
    a: &str,
    b: &str,
) -> (
    anyhow::Result<dostup::AppState>,
    anyhow::Result<dostup::AppState>,
) {
    let database = TestDatabase::create(dir).await;
    let original = dir.join("original");
    copy_checklists(&original);
    build_state(settings(dir, &database, original))
        .await
        .unwrap();
    let (first, second) = (dir.join("a"), dir.join("b"));
    lifts_9(&first.join("checklists"), a);
    lifts_9(&second.join("checklists"), b);
    tokio::join!(
        build_state(settings(&first, &database, first.join("checklists"))),
        build_state(settings(&second, &database, second.join("checklists"))),
    )
}

#[tokio::test]
async fn replicas_starting_together_publish_a_new_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) =
        start_two_replicas_of_lifts_9(dir.path(), "cabin size rechecked", "cabin size rechecked")
            .await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.catalogs.release(), second.catalogs.release());
    assert_eq!(
        first
            .catalogs
            .current()
            .checklist("lifts")
            .unwrap()
            .version(),
        "9.0.0"
    );
}

#[tokio::test]
async fn replicas_with_different_content_for_one_version_do_not_both_start() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) =
        start_two_replicas_of_lifts_9(dir.path(), "cabin size rechecked", "door width rechecked")
            .await;
    let refused = match (first, second) {
        (Ok(_), Err(err)) | (Err(err), Ok(_)) => format!("{err:#}"),
        (Ok(_), Ok(_)) => panic!("both replicas started with different content for lifts 9.0.0"),
        (Err(a), Err(b)) => panic!("neither replica started: {a:#} / {b:#}"),
    };
    assert!(refused.contains("checklist `lifts`"), "{refused}");
    assert!(
        refused.contains("bump `version` in lifts.yaml"),
        "{refused}"
    );
}
