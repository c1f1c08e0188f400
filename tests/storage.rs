//! The same storage suite against both blob stores: the local directory
//! (always) and a real S3-compatible server (when `TEST_S3_ENDPOINT` is
//! set; `.ci/run` starts one). Each test uses its own directory or bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use dostup::storage::{BlobStore, FsStore, S3Config, S3Store};
use reqwest::StatusCode;
use uuid::Uuid;

fn s3_config() -> Option<S3Config> {
    let endpoint = std::env::var("TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())?;
    Some(S3Config {
        endpoint,
        region: std::env::var("TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
        bucket: format!("dostup-test-{}", Uuid::new_v4().simple()),
        access_key: std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testkey".to_owned()),
        secret_key: std::env::var("TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testsecret".to_owned()),
    })
}

async fn stores(dir: &std::path::Path) -> Vec<(&'static str, BlobStore)> {
    let mut out = vec![(
        "fs",
        BlobStore::Fs(FsStore::open(&dir.join("objects")).unwrap()),
    )];
    match s3_config() {
        Some(config) => out.push(("s3", BlobStore::S3(S3Store::open(&config).await.unwrap()))),
        None => eprintln!("TEST_S3_ENDPOINT not set: the S3 half of this suite did not run"),
    }
    out
}

#[tokio::test]
async fn both_stores_keep_read_list_and_delete_blobs_alike() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()).await {
        let body = (0..=255u8).cycle().take(100_000).collect::<Vec<u8>>();
        store
            .put("originals/abc", body.clone().into(), "image/jpeg")
            .await
            .unwrap();
        assert_eq!(
            store.get("originals/abc").await.unwrap().unwrap().as_ref(),
            body.as_slice(),
            "{name}"
        );
        assert_eq!(
            store.size("originals/abc").await.unwrap(),
            Some(100_000),
            "{name}"
        );
        let range = store
            .get_range("originals/abc", 1000, Some(1009))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(range.as_ref(), &body[1000..1010], "{name}");
        let tail = store
            .get_range("originals/abc", 99_990, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tail.as_ref(), &body[99_990..], "{name}");
        assert_eq!(
            store.get("originals/missing").await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.size("originals/missing").await.unwrap(),
            None,
            "{name}"
        );

        // A file larger than one multipart chunk streams in.
        let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
        let path = dir.path().join(format!("big-{name}"));
        std::fs::write(&path, &big).unwrap();
        store
            .put_file("originals/big", &path, "image/jpeg")
            .await
            .unwrap();
        assert_eq!(
            store.size("originals/big").await.unwrap(),
            Some(12_000_000),
            "{name}"
        );
        assert_eq!(
            store.get("originals/big").await.unwrap().unwrap().as_ref(),
            big.as_slice(),
            "{name}"
        );

        store
            .put("thumbnails/abc/320.jpg", vec![1, 2, 3].into(), "image/jpeg")
            .await
            .unwrap();
        let listed: Vec<String> = store
            .list("thumbnails/")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(listed, vec!["thumbnails/abc/320.jpg"], "{name}");
        let all: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(
            all,
            vec!["originals/abc", "originals/big", "thumbnails/abc/320.jpg"],
            "{name}"
        );

        store.delete("originals/abc").await.unwrap();
        store.delete("originals/abc").await.unwrap();
        assert_eq!(store.get("originals/abc").await.unwrap(), None, "{name}");
        assert!(
            store.put("../escape", vec![0].into(), "x").await.is_err(),
            "{name}"
        );
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn photos_travel_through_s3_when_configured() {
    let Some(config) = s3_config() else {
        eprintln!("TEST_S3_ENDPOINT not set: photos through S3 not exercised");
        return;
    };
    let app = common::TestApp::spawn_with(|s| {
        s.storage = dostup::config::StorageSettings::S3(config.clone())
    })
    .await;
    dostup::demo::seed(&app.state.db).await.unwrap();
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "библиотека").await;
    let audit = Uuid::new_v4().to_string();
    let (status, _, _) = common::call(
        app.request(reqwest::Method::PUT, &format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"site_id": site})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let photo = common::images::jpeg(900, 600);
    let form = reqwest::multipart::Form::new()
        .text("item", "entrance.level_entrance")
        .part(
            "file",
            reqwest::multipart::Part::bytes(photo.clone()).file_name("a.jpg"),
        );
    let (status, _, body) = common::call(
        app.request(
            reqwest::Method::POST,
            &format!("/api/v1/audits/{audit}/photos"),
        )
        .bearer_auth(&token)
        .multipart(form),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The API redirects to a presigned URL; the client follows it.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let id = body["id"].as_str().unwrap();
    let redirect = no_redirects
        .get(app.url(&format!("/api/v1/photos/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let original = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), StatusCode::OK);
    assert_eq!(original.bytes().await.unwrap().as_ref(), photo.as_slice());
    let listed = S3Store::open(&config).await.unwrap();
    let keys: Vec<String> = BlobStore::S3(listed)
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "original and two thumbnails in the bucket: {keys:?}"
    );
}
