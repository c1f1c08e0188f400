//! Resumable uploads (tus 1.0): a real tus client (tuspy) interrupts and
//! resumes an upload, and the protocol's error cases answer as the
//! specification says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{TestApp, assert_problem, call, refused};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

async fn audit(app: &TestApp, token: &str) -> String {
    let site = app.demo_site(token, "библиотека").await;
    let id = Uuid::new_v4().to_string();
    let (status, _, _) = call(
        app.request(Method::PUT, &format!("/api/v1/audits/{id}"))
            .bearer_auth(token)
            .json(&json!({"site_id": site})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    id
}

fn meta(audit: &str, item: &str) -> String {
    format!("audit_id {},item {}", B64.encode(audit), B64.encode(item))
}

#[tokio::test]
async fn a_standard_tus_client_resumes_an_interrupted_upload() {
    let has_tuspy = std::process::Command::new("python3")
        .args(["-c", "import tusclient"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_tuspy {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install tuspy (pip install tuspy)"
        );
        eprintln!("tuspy is not installed (pip install tuspy): the tus client test did not run");
        return;
    }
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let audit = audit(&app, &token).await;
    let photo = common::images::jpeg(2400, 1800);
    assert!(
        photo.len() > 3 * 64 * 1024,
        "needs several chunks: {}",
        photo.len()
    );
    let file = app.dir.path().join("photo.jpg");
    std::fs::write(&file, &photo).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tus/resume.py");
    let endpoint = app.url("/api/v1/uploads");
    let (token2, audit2, file2) = (token.clone(), audit.clone(), file.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([
                script,
                &endpoint,
                &token2,
                &audit2,
                "entrance.level_entrance",
            ])
            .arg(&file2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "tuspy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        result["resumed_at"],
        2 * 64 * 1024,
        "resumed from the stored offset"
    );

    let (_, _, doc) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    let photos = doc["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 1);
    assert_eq!(photos[0]["item"], "entrance.level_entrance");
    assert_eq!(
        photos[0]["sha256"],
        Sha256::digest(&photo)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "stored byte for byte"
    );
    let leftovers = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(
        leftovers, 0,
        "the partial file is gone once the photo is stored"
    );
}

#[tokio::test]
async fn the_tus_protocol_rules_are_enforced() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let audit = audit(&app, &token).await;

    let options = app
        .request(Method::OPTIONS, "/api/v1/uploads")
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    assert!(
        options.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("checksum")
    );

    let tus = |method: Method, path: &str| {
        app.request(method, path)
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
    };
    let no_version = app
        .request(Method::POST, "/api/v1/uploads")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(
        no_version,
        StatusCode::PRECONDITION_FAILED,
        "tus-version-unsupported",
    )
    .await;
    let unknown_item = tus(Method::POST, "/api/v1/uploads")
        .header("upload-length", "100")
        .header("upload-metadata", meta(&audit, "entrance.nothing"))
        .send()
        .await
        .unwrap();
    assert_problem(
        unknown_item,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    // A file name is kept as text: a control character in it is refused.
    let body = refused(
        tus(Method::POST, "/api/v1/uploads")
            .header("upload-length", "100")
            .header(
                "upload-metadata",
                format!(
                    "{},filename {}",
                    meta(&audit, "entrance.level_entrance"),
                    B64.encode("ramp\u{0}.jpg")
                ),
            ),
        StatusCode::BAD_REQUEST,
        "invalid-upload-metadata",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("`filename`"),
        "{body}"
    );
    // A length that is not a whole number of bytes is named as such; none
    // at all is a deferred length, which is not supported.
    for length in ["-1", "1e3", "18446744073709551616", "ten"] {
        refused(
            tus(Method::POST, "/api/v1/uploads")
                .header("upload-length", length)
                .header("upload-metadata", meta(&audit, "entrance.level_entrance")),
            StatusCode::BAD_REQUEST,
            "invalid-upload-length",
        )
        .await;
    }
    refused(
        tus(Method::POST, "/api/v1/uploads")
            .header("upload-defer-length", "1")
            .header("upload-metadata", meta(&audit, "entrance.level_entrance")),
        StatusCode::BAD_REQUEST,
        "missing-upload-length",
    )
    .await;
    let huge = tus(Method::POST, "/api/v1/uploads")
        .header("upload-length", (1u64 << 40).to_string())
        .header("upload-metadata", meta(&audit, "entrance.level_entrance"))
        .send()
        .await
        .unwrap();
    assert_problem(huge, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;

    let photo = common::images::jpeg(300, 200);
    let created = tus(Method::POST, "/api/v1/uploads")
        .header("upload-length", photo.len().to_string())
        .header("upload-metadata", meta(&audit, "entrance.level_entrance"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.headers().contains_key("upload-expires"));
    let location = created.headers()["location"].to_str().unwrap().to_owned();

    let patch = |offset: usize, bytes: &[u8], checksum: Option<String>| {
        let mut request = tus(Method::PATCH, &location)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes.to_vec());
        if let Some(c) = checksum {
            request = request.header("upload-checksum", c);
        }
        request
    };
    // An offset that is missing or not a whole number of bytes stores
    // nothing: the upload stays at 0.
    refused(
        tus(Method::PATCH, &location)
            .header("content-type", "application/offset+octet-stream")
            .body(photo.clone()),
        StatusCode::BAD_REQUEST,
        "missing-upload-offset",
    )
    .await;
    for offset in ["-1", "0x0", "18446744073709551616"] {
        refused(
            tus(Method::PATCH, &location)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset)
                .body(photo.clone()),
            StatusCode::BAD_REQUEST,
            "invalid-upload-offset",
        )
        .await;
    }
    let untouched = tus(Method::HEAD, &location).send().await.unwrap();
    assert_eq!(untouched.headers()["upload-offset"], "0");
    let half = photo.len() / 2;
    let wrong = patch(
        0,
        &photo[..half],
        Some(format!("sha256 {}", B64.encode(Sha256::digest(b"other")))),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(wrong.status().as_u16(), 460, "checksum mismatch");
    let first = patch(
        0,
        &photo[..half],
        Some(format!(
            "sha256 {}",
            B64.encode(Sha256::digest(&photo[..half]))
        )),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.headers()["upload-offset"], half.to_string());
    let stale = patch(0, &photo[..half], None).send().await.unwrap();
    assert_problem(stale, StatusCode::CONFLICT, "offset-mismatch").await;
    let head = tus(Method::HEAD, &location).send().await.unwrap();
    assert_eq!(head.headers()["upload-offset"], half.to_string());
    assert_eq!(head.headers()["cache-control"], "no-store");
    let last = patch(half, &photo[half..], None).send().await.unwrap();
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert!(last.headers().contains_key("dostup-photo-id"));

    // Another volunteer cannot see the upload; termination removes it.
    let second = tus(Method::POST, "/api/v1/uploads")
        .header("upload-length", "10")
        .header("upload-metadata", meta(&audit, "entrance.level_entrance"))
        .send()
        .await
        .unwrap();
    let second = second.headers()["location"].to_str().unwrap().to_owned();
    let gone = tus(Method::DELETE, &second).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let after = tus(Method::HEAD, &second).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);

    // A bad picture uploaded through tus is refused like a multipart one.
    let text = b"not a picture at all".to_vec();
    let created = tus(Method::POST, "/api/v1/uploads")
        .header("upload-length", text.len().to_string())
        .header("upload-metadata", meta(&audit, "entrance.level_entrance"))
        .send()
        .await
        .unwrap();
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let refused = tus(Method::PATCH, &location)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_problem(
        refused,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-image-format",
    )
    .await;
    let (_, _, doc) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(
        doc["photos"].as_array().unwrap().len(),
        1,
        "only the good upload became a photo"
    );
}

#[tokio::test]
async fn tus_discovery_and_browser_preflights_coexist_under_cors() {
    let app =
        TestApp::spawn_with(|s| s.cors_origins = vec!["https://app.example.org".to_owned()]).await;
    let discovery = app
        .request(Method::OPTIONS, "/api/v1/uploads")
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), StatusCode::NO_CONTENT);
    assert_eq!(discovery.headers()["tus-version"], "1.0.0");
    let preflight = app
        .request(Method::OPTIONS, "/api/v1/uploads")
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "upload-length,tus-resumable",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed.contains("upload-length") && allowed.contains("tus-resumable"),
        "{allowed}"
    );
}
