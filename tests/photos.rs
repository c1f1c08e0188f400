//! Photo evidence as volunteers send it and reviewers see it: multipart
//! uploads, thumbnails, originals with Range, plausibility flags, and every
//! bad input refused with nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::flows::new_audit;
use common::images::{self, Exif};
use common::{TestApp, assert_problem, call, refused};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn form(bytes: Vec<u8>, name: &str, item: &str) -> Form {
    Form::new()
        .text("item", item.to_owned())
        .part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

fn upload(app: &TestApp, token: &str, audit: &str, form: Form) -> reqwest::RequestBuilder {
    app.request(Method::POST, &format!("/api/v1/audits/{audit}/photos"))
        .bearer_auth(token)
        .multipart(form)
}

fn stored_objects(app: &TestApp) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if e.file_name() == ".tmp" {
                        0
                    } else if path.is_dir() {
                        count(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&app.dir.path().join("objects"))
}

fn now_exif() -> String {
    chrono::Utc::now().format("%Y:%m:%d %H:%M:%S").to_string()
}

#[tokio::test]
async fn a_phone_photo_is_stored_once_with_thumbnails_and_flags() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "библиотека").await;
    let audit = new_audit(&app, &token, &site).await;

    // Taken at the library, now, in portrait (orientation 6: rotate 90°).
    let taken = now_exif();
    let photo = images::with_exif(
        &images::jpeg(1600, 1200),
        &Exif {
            make: "Xiaomi",
            taken: &taken,
            latitude: 52.6120,
            longitude: 39.5991,
            orientation: 6,
        },
    );
    let (status, _, body) = call(upload(
        &app,
        &token,
        &audit,
        form(photo.clone(), "IMG_0001.jpg", "entrance.level_entrance")
            .text("client_photo_id", "p-1"),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["item"], "entrance.level_entrance");
    assert_eq!(body["content_type"], "image/jpeg");
    assert_eq!(
        (body["width"].as_i64(), body["height"].as_i64()),
        (Some(1200), Some(1600)),
        "orientation applied"
    );
    assert_eq!(body["flags"], json!([]), "near the site, during the audit");
    assert!((body["latitude"].as_f64().unwrap() - 52.6120).abs() < 1e-4);
    assert_eq!(body["device"], "Xiaomi");
    let objects_after_first = stored_objects(&app);
    assert_eq!(objects_after_first, 3, "original and two thumbnails");

    // The retry of a lost response returns the same photo.
    let (status, _, again) = call(upload(
        &app,
        &token,
        &audit,
        form(photo.clone(), "IMG_0001.jpg", "entrance.level_entrance")
            .text("client_photo_id", "p-1"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], body["id"]);

    // The original comes back byte for byte, and in ranges.
    let id = body["id"].as_str().unwrap();
    let original = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), StatusCode::OK);
    assert_eq!(original.headers()["content-type"], "image/jpeg");
    assert_eq!(original.bytes().await.unwrap().as_ref(), photo.as_slice());
    let part = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", photo.len())
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &photo[10..20]);
    let beyond = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&token)
        .header("range", format!("bytes={}-", photo.len() + 5))
        .send()
        .await
        .unwrap();
    assert_problem(
        beyond,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range-not-satisfiable",
    )
    .await;

    for (size, expected) in [(320, (240, 320)), (1280, (960, 1280))] {
        let thumb = app
            .get(&format!("/api/v1/photos/{id}/thumbnail/{size}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(thumb.status(), StatusCode::OK);
        let img = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            expected,
            "thumbnail {size} upright"
        );
    }
    let bad_size = app
        .get(&format!("/api/v1/photos/{id}/thumbnail/64"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(bad_size, StatusCode::NOT_FOUND, "not-found").await;

    // The audit shows it; a stranger cannot fetch it.
    let (_, _, audit_doc) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(audit_doc["photos"][0]["id"], body["id"]);
    let reviewer = app.token("reviewer@demo.local").await;
    let hidden = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND, "not-found").await;

    // The same picture in another audit: stored once, flagged for reviewers.
    let other = new_audit(&app, &token, &site).await;
    let (status, _, reused) = call(upload(
        &app,
        &token,
        &other,
        form(photo, "copy.jpg", "entrance.level_entrance"),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reused["flags"], json!([{"code": "used-in-other-audit"}]));
    assert_eq!(
        stored_objects(&app),
        objects_after_first,
        "content stored once"
    );
}

#[tokio::test]
async fn implausible_photos_are_flagged_not_refused() {
    let app = TestApp::spawn_demo().await;
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "библиотека").await;
    let audit = new_audit(&app, &token, &site).await;

    // Taken in Yelets, 70 km away, a year ago.
    let far = images::with_exif(
        &images::jpeg(800, 600),
        &Exif {
            make: "Samsung",
            taken: "2025:06:01 10:00:00",
            latitude: 52.6208,
            longitude: 38.5008,
            orientation: 1,
        },
    );
    let (status, _, body) = call(upload(
        &app,
        &token,
        &audit,
        form(far, "far.jpg", "entrance.level_entrance"),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let codes: Vec<&str> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["far-from-site", "outside-audit-window"]);
    assert!(body["flags"][0]["distance_m"].as_f64().unwrap() > 60_000.0);

    let (status, _, bare) = call(upload(
        &app,
        &token,
        &audit,
        form(
            images::png(300, 200),
            "scan.png",
            "territory.parking_marked",
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bare["flags"], json!([{"code": "no-exif"}]));
    assert_eq!(bare["content_type"], "image/png");
}

#[tokio::test]
async fn bad_uploads_are_refused_precisely_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|s| s.photo_max_bytes = 2 * 1024 * 1024).await;
    dostup::demo::seed(&app.state.db).await.unwrap();
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let audit = new_audit(&app, &token, &site).await;

    let full = images::jpeg(640, 480);
    let mut polyglot = images::jpeg(64, 64);
    polyglot.extend_from_slice(b"PK\x03\x04<script>alert(1)</script>");
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0".to_vec();
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            Vec::new(),
            "empty.jpg",
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty-file",
        ),
        (
            full[..full.len() / 2].to_vec(),
            "cut.jpg",
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt-image",
        ),
        (
            images::png_bomb(60_000, 60_000),
            "bomb.png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "image-too-large",
        ),
        (
            b"this is a text file, not a photo\n".to_vec(),
            "note.jpg",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-image-format",
        ),
        (
            polyglot,
            "poly.jpg",
            StatusCode::UNPROCESSABLE_ENTITY,
            "trailing-data",
        ),
        (
            heic,
            "IMG_1234.HEIC",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-image-format",
        ),
        (
            vec![0xFF; 3 * 1024 * 1024],
            "huge.jpg",
            StatusCode::PAYLOAD_TOO_LARGE,
            "file-too-large",
        ),
    ];
    for (bytes, name, status, code) in cases {
        let response = upload(
            &app,
            &token,
            &audit,
            form(bytes, name, "entrance.level_entrance"),
        )
        .send()
        .await
        .unwrap();
        let problem = assert_problem(response, status, code).await;
        if name.ends_with("HEIC") {
            assert!(
                problem["detail"].as_str().unwrap().contains("JPEG"),
                "hints at JPEG: {problem}"
            );
        }
    }

    // A body that is not a form, or a form without its boundary, gets a
    // problem like any other.
    let photos = format!("/api/v1/audits/{audit}/photos");
    for content_type in [None, Some("text/plain"), Some("image/jpeg")] {
        let mut request = app
            .request(Method::POST, &photos)
            .bearer_auth(&token)
            .body(images::jpeg(64, 64));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        refused(
            request,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    for content_type in ["multipart/form-data", "Multipart/Form-Data; charset=utf-8"] {
        refused(
            app.request(Method::POST, &photos)
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body("--x\r\n"),
            StatusCode::BAD_REQUEST,
            "malformed-multipart",
        )
        .await;
    }

    let unknown = upload(
        &app,
        &token,
        &audit,
        form(images::jpeg(64, 64), "a.jpg", "entrance.no_such_item"),
    )
    .send()
    .await
    .unwrap();
    let problem = assert_problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "item");
    assert_eq!(problem["errors"][0]["code"], "unknown-item");

    let no_item = app
        .request(Method::POST, &format!("/api/v1/audits/{audit}/photos"))
        .bearer_auth(&token)
        .multipart(Form::new().part("file", Part::bytes(images::jpeg(64, 64)).file_name("a.jpg")))
        .send()
        .await
        .unwrap();
    assert_problem(
        no_item,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;

    // A client's id for the photo is looked up through an index: bounded.
    let random_id = |bytes: usize| {
        let hex: String = (0..bytes / 32 + 1)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        hex[..bytes].to_owned()
    };
    let long_id = upload(
        &app,
        &token,
        &audit,
        form(images::jpeg(64, 64), "a.jpg", "entrance.level_entrance")
            .text("client_photo_id", random_id(256)),
    )
    .send()
    .await
    .unwrap();
    let problem = assert_problem(
        long_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "client_photo_id");
    assert_eq!(problem["errors"][0]["code"], "too-long");

    // Someone else's audit does not exist for this volunteer.
    let coordinator = app.token("admin@demo.local").await;
    let foreign = new_audit(&app, &coordinator, &site).await;
    let response = upload(
        &app,
        &token,
        &foreign,
        form(images::jpeg(64, 64), "a.jpg", "entrance.level_entrance"),
    )
    .send()
    .await
    .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;

    assert_eq!(stored_objects(&app), 0, "no blob from any refused upload");
    let (_, _, doc) = call(
        app.get(&format!("/api/v1/audits/{audit}"))
            .bearer_auth(&token),
    )
    .await;
    assert!(doc["photos"].as_array().unwrap().is_empty());
    assert_eq!(doc["version"], 1, "refused uploads change nothing");
    let leftovers = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "temporary files removed");

    // The longest id allowed is kept and found again.
    let longest = random_id(255);
    for expected in [StatusCode::CREATED, StatusCode::OK] {
        let (status, _, photo) = call(upload(
            &app,
            &token,
            &audit,
            form(images::jpeg(64, 64), "a.jpg", "entrance.level_entrance")
                .text("client_photo_id", longest.clone()),
        ))
        .await;
        assert_eq!(status, expected, "{photo}");
        assert_eq!(photo["client_photo_id"], longest.as_str());
    }
}

#[tokio::test]
async fn the_sweep_removes_only_unreferenced_old_blobs() {
    let app = TestApp::spawn_with(|s| s.blob_grace = std::time::Duration::ZERO).await;
    dostup::demo::seed(&app.state.db).await.unwrap();
    let token = app.token("volunteer@demo.local").await;
    let site = app.demo_site(&token, "школа").await;
    let audit = new_audit(&app, &token, &site).await;
    let (status, _, photo) = call(upload(
        &app,
        &token,
        &audit,
        form(images::jpeg(400, 300), "a.jpg", "entrance.level_entrance"),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // An orphan, as left by a crash between blob and row.
    app.state
        .storage
        .put("originals/0000orphan", vec![1, 2, 3].into(), "image/jpeg")
        .await
        .unwrap();
    app.state
        .storage
        .put(
            "thumbnails/0000orphan/320.jpg",
            vec![1].into(),
            "image/jpeg",
        )
        .await
        .unwrap();
    std::fs::write(
        app.dir.path().join("uploads").join("incoming-stale"),
        b"half",
    )
    .unwrap();
    assert_eq!(stored_objects(&app), 5);

    let report = dostup::maintenance::sweep(&app.state).await.unwrap();
    assert_eq!(report.blobs, 2);
    assert_eq!(report.temp_files, 1);
    assert_eq!(
        stored_objects(&app),
        3,
        "the photo's original and thumbnails stay"
    );
    let id = photo["id"].as_str().unwrap();
    let original = app
        .get(&format!("/api/v1/photos/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), StatusCode::OK);
    // A second sweep finds nothing.
    assert_eq!(
        dostup::maintenance::sweep(&app.state).await.unwrap().blobs,
        0
    );
}
