//! The rating as a region's operator, reviewer and public council produce it:
//! approved audits plus an imported file give a ranked rating, checked to the
//! decimal, exported as CSV and XLSX, published and served to the public
//! frozen; bad imports are refused whole; passports come from approved audits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use chrono::Datelike;
use common::flows::{review, submitted_example, verdict};
use common::{TestApp, assert_problem, call, refused};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LIBRARY: &str = "научная библиотека";
const MUSEUM: &str = "краеведческий музей";

fn year() -> i32 {
    chrono::Utc::now().year()
}

async fn institution_id(app: &TestApp, token: &str, name_part: &str) -> String {
    let (_, _, list) = call(
        app.get("/api/v1/institutions")
            .query(&[("text", name_part)])
            .bearer_auth(token),
    )
    .await;
    list["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn approve(app: &TestApp, reviewer: &str, id: &str) {
    let response = review(
        app,
        reviewer,
        id,
        json!({"decision": "approve", "comment": "checked"}),
    )
    .await;
    let status = response.status();
    assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn import(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let (status, _, body) = call(
        app.request(reqwest::Method::POST, "/api/v1/ratings/inputs")
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body),
    )
    .await;
    (status, body)
}

async fn rating(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> Value {
    let year = year().to_string();
    let mut query = vec![
        ("region", "48"),
        ("sector", "culture"),
        ("year", year.as_str()),
    ];
    query.extend_from_slice(extra);
    let (status, _, body) = call(app.get("/api/v1/ratings").query(&query).bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn by_name<'a>(rating: &'a Value, part: &str) -> &'a Value {
    rating["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"].as_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("{part} in {rating}"))
}

/// The region of the tests: the library audited as the accessible new
/// building, the museum as the typical older building with one rule
/// overridden by the reviewer, and a children's library without any audit.
struct Region {
    app: TestApp,
    operator: String,
    council: String,
    library: String,
    museum: String,
    children: String,
}

async fn region() -> Region {
    let app = TestApp::spawn_demo().await;
    let volunteer = app.token("volunteer@demo.local").await;
    let reviewer = app.token("reviewer@demo.local").await;
    let operator = app.token("operator@demo.local").await;
    let council = app.token("council@demo.local").await;

    let library_audit =
        submitted_example(&app, &volunteer, LIBRARY, "accessible-new-building").await;
    approve(&app, &reviewer, &library_audit).await;
    let museum_audit = submitted_example(&app, &volunteer, MUSEUM, "typical-older-building").await;
    for (rule, body) in [
        (
            "entrance_ramp.ramp_condition",
            json!({"verdict": "pass", "comment": "surface is fine on the photo"}),
        ),
        // The display board on the photo duplicates announcements: 3.2.1 holds after all.
        (
            "information.sound_visual_duplication",
            json!({"verdict": "pass", "comment": "running-text display next to the speaker"}),
        ),
    ] {
        let response = verdict(&app, &reviewer, &museum_audit, rule, body).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    approve(&app, &reviewer, &museum_audit).await;

    let (status, _, children) = call(
        app.post_json(
            "/api/v1/institutions",
            &json!({"name": "Детская библиотека им. Пришвина", "region": "48", "sector": "culture"}),
        )
        .bearer_auth(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{children}");
    Region {
        library: institution_id(&app, &operator, LIBRARY).await,
        museum: institution_id(&app, &operator, MUSEUM).await,
        children: children["id"].as_str().unwrap().to_owned(),
        app,
        operator,
        council,
    }
}

/// K1..K5 and survey counts chosen so that the library (K3 = 91) and the
/// museum (K3 = 79 with the override) tie at Sn = 82.2.
fn inputs_csv(r: &Region) -> String {
    let y = year();
    format!(
        "institution_id;year;k1;k2;k4;k5;disabled_respondents;disabled_satisfied\n\
         {lib};{y};80;80;80;80;10;7\n\
         {mus};{y};92;80;80;80;10;7\n\
         {chi};{y};70,5;60;90;75;4;4\n",
        lib = r.library,
        mus = r.museum,
        chi = r.children,
    )
}

#[tokio::test]
async fn approved_audits_and_an_import_make_a_ranked_rating_that_is_published_frozen() {
    let r = region().await;
    let app = &r.app;
    let (status, imported) =
        import(app, &r.operator, "text/csv", inputs_csv(&r).into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(imported["rows"], 3);
    let (status, again) = import(app, &r.operator, "text/csv", inputs_csv(&r).into_bytes()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same file again changes nothing"
    );
    assert_eq!(again["unchanged"], true);
    assert_eq!(again["import_id"], imported["import_id"]);

    let rated = rating(app, &r.operator, &[]).await;
    let library = by_name(&rated, LIBRARY);
    let museum = by_name(&rated, MUSEUM);
    let children = by_name(&rated, "Пришвина");
    // Library: 100, 100, 70 % → 30 + 40 + 21 = 91; Sn = (4·80 + 91) / 5 = 82.2
    assert_eq!(library["k3"]["p3_1"], 100.0);
    assert_eq!(library["k3"]["p3_2"], 100.0);
    assert_eq!(library["k3"]["p3_3"], 70.0);
    assert_eq!(library["criteria"]["K3"], 91.0);
    assert_eq!(library["score"], 82.2);
    // Museum: 3 of 5 → 60; with the reviewer's override 5 of 6 → 100 (capped);
    // 70 % → 18 + 40 + 21 = 79 (71 without the override); Sn = (92 + 3·80 + 79) / 5 = 82.2
    assert_eq!(museum["k3"]["p3_1"], 60.0);
    assert_eq!(museum["k3"]["p3_2"], 100.0);
    assert_eq!(museum["criteria"]["K3"], 79.0);
    assert_eq!(museum["score"], 82.2);
    assert_eq!(library["rank"], 1);
    assert_eq!(museum["rank"], 1, "a tie shares the rank");
    // No audit: K3 unknown, so no Sn and no rank, never a silent 0.
    assert_eq!(children["criteria"]["K3"], Value::Null);
    assert_eq!(children["criteria"]["K1"], 70.5);
    assert_eq!(children["score"], Value::Null);
    assert_eq!(children["rank"], Value::Null);
    assert_eq!(
        rated["institutions"][2]["name"], children["name"],
        "incomplete ones come last"
    );
    assert!(
        children["missing"][0]
            .as_str()
            .unwrap()
            .contains("no approved audit")
    );
    // Summary figures.
    assert_eq!(rated["summary"]["institutions"], 3);
    assert_eq!(rated["summary"]["ranked"], 2);
    assert_eq!(rated["summary"]["score"]["max"], 82.2);
    assert_eq!(rated["summary"]["gap"], 0.0);
    assert_eq!(rated["summary"]["criteria"]["K3"]["mean"], 85.0);
    assert_eq!(
        rated["summary"]["criteria"]["K1"]["mean"], 80.83,
        "(80 + 92 + 70.5) / 3"
    );
    // Provenance: methodology, engine, releases, audits and import.
    assert_eq!(rated["methodology"]["id"], "nok-344n");
    assert_eq!(rated["methodology"]["sites"], "all_sites");
    assert!(rated["engine_version"].is_string());
    assert_eq!(
        library["sources"]["imports"],
        json!([imported["import_id"]])
    );
    let release = library["sources"]["audits"][0]["release"].as_str().unwrap();
    assert!(
        rated["releases"][release]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("entrance@"))
    );

    // CSV and XLSX of the same table.
    let csv = app
        .get("/api/v1/ratings")
        .query(&[
            ("region", "48"),
            ("sector", "culture"),
            ("year", &year().to_string()),
            ("format", "csv"),
        ])
        .bearer_auth(&r.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("rank,institution_id,name,score,K1,K2,K3,K4,K5"));
    assert!(
        lines[1].starts_with("1,") && lines[1].contains(",82.2,"),
        "{}",
        lines[1]
    );
    let xlsx = app
        .get("/api/v1/ratings")
        .query(&[
            ("region", "48"),
            ("sector", "culture"),
            ("year", &year().to_string()),
        ])
        .header(
            "accept",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .bearer_auth(&r.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), StatusCode::OK);
    let bytes = xlsx.bytes().await.unwrap();
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec()))
            .expect("a readable XLSX");
    let sheet = calamine::Reader::worksheet_range(&mut workbook, "Рейтинг").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(rows[2][..4], ["rank", "institution_id", "name", "score"]);
    assert_eq!(rows[3][3], "82.2");
    assert!(
        rows.iter()
            .any(|row| row[2].contains("Пришвина") && row[3].is_empty())
    );

    // The illustrative points scheme rates the same audits in points.
    let points = rating(
        app,
        &r.operator,
        &[("methodology", "example-region-points")],
    )
    .await;
    assert_eq!(points["methodology"]["kind"], "points");
    assert_eq!(points["methodology"]["maximum"], 31.0);
    assert_eq!(by_name(&points, LIBRARY)["score"], 31.0);
    // 17 points for the older building, + 3 for information with the override.
    assert_eq!(by_name(&points, MUSEUM)["score"], 20.0);
    assert_eq!(by_name(&points, MUSEUM)["rank"], 2);
    assert_eq!(points["summary"]["gap"], 11.0);

    // Publication: the operator prepares, the council approves, the public reads.
    let (status, _, prepared) = call(
        app.post_json(
            "/api/v1/ratings/publications",
            &json!({"region": "48", "sector": "culture", "year": year()}),
        )
        .bearer_auth(&r.operator),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{prepared}");
    assert_eq!(prepared["status"], "prepared");
    let id = prepared["id"].as_str().unwrap().to_owned();
    assert_eq!(prepared["inputs_digest"], rated["inputs_digest"]);
    let hidden = app
        .get(&format!("/api/v1/public/ratings/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND, "not-found").await;
    let by_operator = app
        .post_json(
            &format!("/api/v1/ratings/publications/{id}/approve"),
            &json!({}),
        )
        .bearer_auth(&r.operator)
        .send()
        .await
        .unwrap();
    assert_problem(by_operator, StatusCode::FORBIDDEN, "forbidden").await;
    let (status, _, published) = call(
        app.post_json(
            &format!("/api/v1/ratings/publications/{id}/approve"),
            &json!({}),
        )
        .bearer_auth(&r.council),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["status"], "published");
    let twice = app
        .post_json(
            &format!("/api/v1/ratings/publications/{id}/approve"),
            &json!({}),
        )
        .bearer_auth(&r.council)
        .send()
        .await
        .unwrap();
    assert_problem(twice, StatusCode::CONFLICT, "already-published").await;

    // Later data change the live rating, never the published one.
    let y = year();
    let newer = format!("institution_id,year,k1\n{},{y},100\n", r.library);
    let (status, _) = import(app, &r.operator, "text/csv", newer.into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED);
    let live = rating(app, &r.operator, &[]).await;
    assert_eq!(by_name(&live, LIBRARY)["criteria"]["K1"], 100.0);
    assert_eq!(
        by_name(&live, LIBRARY)["score"],
        86.2,
        "(100 + 3·80 + 91) / 5"
    );
    let (status, _, public) = call(app.get(&format!("/api/v1/public/ratings/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(
        public["rating"]["institutions"], rated["institutions"],
        "frozen as approved"
    );
    assert_ne!(public["rating"]["inputs_digest"], live["inputs_digest"]);
    let (_, _, listed) = call(app.get("/api/v1/public/ratings").query(&[("region", "48")])).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let public_csv = app
        .get(&format!("/api/v1/public/ratings/{id}"))
        .query(&[("format", "csv")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(public_csv.lines().nth(1).unwrap().contains(",82.2,"));

    // Both steps are in the tamper-evident log.
    let admin = app.token("admin@demo.local").await;
    let (_, _, log) = call(
        app.get("/api/v1/audit-log")
            .query(&[("target", format!("rating:{id}").as_str())])
            .bearer_auth(&admin),
    )
    .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["rating.prepared", "rating.published"]);
    let (_, _, verified) = call(app.get("/api/v1/audit-log/verify").bearer_auth(&admin)).await;
    assert_eq!(verified["intact"], true);
}

#[tokio::test]
async fn bad_imports_are_refused_whole_with_every_row_named() {
    let r = region().await;
    let app = &r.app;
    let y = year();
    let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("institution_id,year,k3,k9\n{},{y},50,1\n", r.library),
            vec![
                ("line 1/k3", "unknown-column"),
                ("line 1/k9", "unknown-column"),
            ],
        ),
        (
            format!(
                "institution_id,year,k1,k2,disabled_respondents,disabled_satisfied\n\
                 {lib},{y},101,-1,3,4\n\
                 00000000-0000-7000-8000-000000000000,{y},50,50,,\n\
                 {mus},{y},50,50,,\n\
                 {mus},{y},60,60,,\n",
                lib = r.library,
                mus = r.museum
            ),
            vec![
                ("line 2/k1", "out-of-range"),
                ("line 2/k2", "out-of-range"),
                ("line 2/disabled_satisfied", "out-of-range"),
                ("line 5", "duplicate-row"),
            ],
        ),
        (
            format!("institution_id,year,k1\n00000000-0000-7000-8000-000000000000,{y},50\n"),
            vec![("line 2", "unknown-institution")],
        ),
    ];
    for (csv, wanted) in cases {
        let (status, problem) =
            import(app, &r.operator, "text/csv", csv.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{csv}: {problem}");
        assert_eq!(problem["code"], "validation-failed");
        let found: Vec<(String, String)> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let wanted: Vec<(String, String)> = wanted
            .iter()
            .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
            .collect();
        assert_eq!(found, wanted, "{csv}");
    }
    // Nothing of the refused files was imported.
    let rated = rating(app, &r.operator, &[]).await;
    assert_eq!(by_name(&rated, MUSEUM)["criteria"]["K1"], Value::Null);

    // Windows-1251, as ministries' spreadsheets save it, with the institution's name.
    let cp1251 = format!(
        "institution_id;institution_name;year;k1;k2;k4;k5\n{};Краеведческий музей;{y};85,5;80;80;80\n",
        r.museum
    );
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&cp1251);
    let (status, body) = import(app, &r.operator, "text/csv", bytes.into_owned()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["encoding"], "windows-1251");
    let rated = rating(app, &r.operator, &[]).await;
    assert_eq!(by_name(&rated, MUSEUM)["criteria"]["K1"], 85.5);

    // Neither UTF-8 nor Windows-1251 (0x98 is unassigned there).
    let (status, body) = import(
        app,
        &r.operator,
        "text/csv",
        b"year,k1\n\x98\x98,1\n".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["code"], "unsupported-encoding");
    // JSON imports name rows by index.
    let (status, body) = import(
        app,
        &r.operator,
        "application/json",
        serde_json::to_vec(&json!({"rows": [{"institution_id": r.library, "year": y, "k5": 120}]}))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "rows[0].k5");
    // Who and how.
    let (status, body) = import(app, &r.operator, "application/xml", b"<rows/>".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let volunteer = app.token("volunteer@demo.local").await;
    let (status, _) = import(app, &volunteer, "text/csv", inputs_csv(&r).into_bytes()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let outsider = app
        .get("/api/v1/ratings")
        .query(&[("region", "48"), ("sector", "culture"), ("year", "2026")])
        .bearer_auth(&volunteer)
        .send()
        .await
        .unwrap();
    assert_problem(outsider, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn approved_sites_have_passports_and_a11yjson_and_their_answers_export() {
    let r = region().await;
    let app = &r.app;
    let token = app.token("volunteer@demo.local").await;
    let museum_site = app.demo_site(&token, MUSEUM).await;
    let (status, _, passport) = call(
        app.get(&format!("/api/v1/sites/{museum_site}/passport"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{passport}");
    assert!(
        passport["status"].as_str().unwrap().starts_with('Д'),
        "{passport}"
    );
    let entrance = passport["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == "entrance")
        .unwrap();
    let slope = entrance["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "entrance_ramp.slope")
        .expect("the steep ramp is a violation of the entrance zone");
    assert!(slope["affects"].as_array().unwrap().contains(&json!("К")));
    assert!(
        slope["norm"]["document"]
            .as_str()
            .unwrap()
            .contains("59.13330")
    );
    assert_eq!(slope["work"], "repair");
    assert!(
        slope["photos"][0]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/photos/")
    );
    // The reviewer's pass on the display board is no violation.
    assert!(
        !passport
            .to_string()
            .contains("information.sound_visual_duplication")
    );

    let html = app
        .get(&format!("/api/v1/sites/{museum_site}/passport"))
        .query(&[("format", "html")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let page = html.text().await.unwrap();
    assert!(
        page.contains("Паспорт доступности") && page.contains(passport["status"].as_str().unwrap())
    );

    let (status, headers, place) = call(
        app.get(&format!("/api/v1/sites/{museum_site}/a11yjson"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/geo+json");
    assert_eq!(place["type"], "Feature");
    assert_eq!(place["geometry"]["type"], "Point");
    assert_eq!(
        place["geometry"]["coordinates"][0], 39.6001,
        "longitude first"
    );
    assert!(place["properties"]["accessibility"]["accessibleWith"].is_object());

    // A site nobody audited has no passport yet.
    let other = app.demo_site(&token, "поликлиника").await;
    let none = app
        .get(&format!("/api/v1/sites/{other}/passport"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(none, StatusCode::NOT_FOUND, "no-approved-audit").await;

    // The answers behind the rating, one line per answer.
    let export = app
        .get("/api/v1/ratings/answers")
        .query(&[
            ("region", "48"),
            ("sector", "culture"),
            ("year", &year().to_string()),
        ])
        .bearer_auth(&r.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    let text = export.text().await.unwrap();
    let answers = |name: &str| {
        let example = common::flows::example_answers(name);
        example.as_object().unwrap().len()
    };
    assert_eq!(
        text.lines().count(),
        1 + answers("accessible-new-building") + answers("typical-older-building"),
    );
    assert!(text.lines().nth(1).unwrap().split(',').count() >= 6);

    // As a browser asks for it, compressed: the whole file arrives.
    let compressed = app
        .get("/api/v1/ratings/answers")
        .query(&[
            ("region", "48"),
            ("sector", "culture"),
            ("year", &year().to_string()),
        ])
        .header("accept-encoding", "gzip")
        .bearer_auth(&r.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.status(), StatusCode::OK);
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    let gzip = compressed.bytes().await.expect("the whole body");
    let mut unpacked = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut unpacked)
        .expect("a complete gzip stream");
    assert_eq!(unpacked, text);

    // A year the database cannot hold is refused before the answer starts,
    // not a 200 cut off mid-stream.
    for year in ["-8879", "1999", "2101"] {
        refused(
            app.get("/api/v1/ratings/answers")
                .query(&[("region", "48"), ("sector", "culture"), ("year", year)])
                .bearer_auth(&r.operator),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        )
        .await;
    }
}
