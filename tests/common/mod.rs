//! Test harness: the real application on `127.0.0.1:0`, each test with its
//! own database. SQLite (a file in a temporary directory) by default; a
//! fresh PostgreSQL database, created and dropped per test, when
//! `TEST_DATABASE_URL` points at a server (`postgres://user@host:port/db`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;

use dostup::AppState;
use dostup::config::Settings;
use dostup::server::{Server, build_state};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub mod flows;
pub mod images;

/// A database for one test; dropped with it.
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
}

impl TestDatabase {
    /// A new empty database: SQLite in `dir`, or PostgreSQL when
    /// `TEST_DATABASE_URL` is set.
    pub async fn create(dir: &Path) -> Self {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            None => Self {
                url: dostup::config::sqlite_url(dir),
                admin_url: None,
                name: String::new(),
            },
            Some(admin_url) => {
                let name = format!("dostup_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("TEST_DATABASE_URL must reach a PostgreSQL server");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                Self {
                    url: replace_database(&admin_url, &name),
                    admin_url: Some(admin_url),
                    name,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin_url.is_some()
    }

    /// PostgreSQL only: how many sessions on this database wait for a lock.
    pub async fn waiting_sessions(&self) -> usize {
        self.sessions("pid", "wait_event_type = 'Lock'").await
    }

    /// PostgreSQL only: ends the sessions on this database that wait for a
    /// lock, as a server restart or a failover ends a query under way;
    /// returns how many it ended.
    pub async fn end_waiting_sessions(&self) -> usize {
        self.end_sessions("wait_event_type = 'Lock'").await
    }

    /// PostgreSQL only: ends every session on this database, as a server
    /// restart does; returns how many it ended.
    pub async fn end_all_sessions(&self) -> usize {
        self.end_sessions("true").await
    }

    async fn end_sessions(&self, which: &str) -> usize {
        self.sessions("pg_terminate_backend(pid)", which).await
    }

    /// Selects `what` over the other sessions on this database that match
    /// `which`; how many there were.
    async fn sessions(&self, what: &str, which: &str) -> usize {
        let admin_url = self.admin_url.as_deref().expect("a PostgreSQL test");
        let admin = Database::connect(admin_url).await.expect("admin connects");
        let rows = admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT {what} FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid() AND {which}",
                    self.name
                ),
            ))
            .await
            .expect("sessions listed");
        admin.close().await.ok();
        rows.len()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own
        // thread does the cleanup even when the test panicked.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/new?x`.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// A running application.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub state: AppState,
    pub db: TestDatabase,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// The application with default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The application with settings adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::create(dir.path()).await;
        let mut settings = Settings::for_data_dir(dir.path());
        settings.database_url = db.url.clone();
        settings.bind = "127.0.0.1:0".parse().expect("addr");
        settings.checklists_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("checklists");
        configure(&mut settings);
        let bind = settings.bind;
        let state = build_state(settings).await.expect("state builds");
        let server = Server::bind_with_state(bind, state.clone())
            .await
            .expect("binds");
        let addr = server.local_addr().expect("bound");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: Client::new(),
            state,
            db,
            dir,
            shutdown: Some(tx),
        }
    }

    /// Another instance of the service on the same database and data
    /// directory, as a second replica behind a load balancer; it stops when
    /// the returned sender is dropped.
    pub async fn replica(&self) -> (String, oneshot::Sender<()>) {
        let mut settings = (*self.state.settings).clone();
        settings.bind = "127.0.0.1:0".parse().expect("addr");
        let state = build_state(settings).await.expect("replica state builds");
        let server = Server::bind_with_state("127.0.0.1:0".parse().expect("addr"), state)
            .await
            .expect("replica binds");
        let addr = server.local_addr().expect("bound");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        (format!("http://{addr}"), tx)
    }

    /// The application with the demo data seeded.
    pub async fn spawn_demo() -> Self {
        let app = Self::spawn().await;
        dostup::demo::seed(&app.state.db).await.expect("demo seed");
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    /// Logs in and returns the whole token response.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .send()
        .await
        .expect("request")
    }

    /// Access token of a demo user.
    pub async fn token(&self, email: &str) -> String {
        let response = self.login(email, dostup::demo::DEMO_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts a problem+json answer and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for expected `{code}`");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("urn:dostup:problem:{code}"));
    body
}

/// Sends `request` and asserts its problem+json answer (see [`assert_problem`]).
pub async fn refused(request: RequestBuilder, status: StatusCode, code: &str) -> Value {
    assert_problem(request.send().await.expect("request"), status, code).await
}

/// The (field, code) of every error a `validation-failed` problem lists, in
/// its order.
pub fn field_errors(problem: &Value) -> Vec<(&str, &str)> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_else(|| panic!("no {key} in {e}"));
            (text("field"), text("code"))
        })
        .collect()
}

/// The entry of a list answer (`{"items": [...]}`) whose `id` is `id`.
pub fn item_with_id(list: &Value, id: &str) -> Value {
    list["items"]
        .as_array()
        .expect("a list answer")
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {list}"))
        .clone()
}

/// Sends a request and returns status, headers and JSON body (Null when empty).
pub async fn call(request: RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

impl TestApp {
    /// The first site of the demo institution whose name contains `name_part`.
    pub async fn demo_site(&self, token: &str, name_part: &str) -> String {
        let list: Value = self
            .get("/api/v1/institutions")
            .query(&[("text", name_part)])
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let institution = list["items"][0]["id"]
            .as_str()
            .expect("institution")
            .to_owned();
        let sites: Value = self
            .get(&format!("/api/v1/institutions/{institution}/sites"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        sites["items"][0]["id"].as_str().expect("site").to_owned()
    }
}

/// Writes an outbox row holding the log entry `entry` (JSON text), written
/// at `at`, straight into the database, as another release might have;
/// returns its number.
pub async fn push_raw_entry(
    db: &sea_orm::DatabaseConnection,
    entry: String,
    at: chrono::DateTime<chrono::Utc>,
) -> i64 {
    use dostup::db::entity::outbox;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    outbox::Entity::insert(outbox::ActiveModel {
        entry: Set(Some(entry)),
        created_at: Set(at),
        ..Default::default()
    })
    .exec(db)
    .await
    .unwrap()
    .last_insert_id
}

/// An outbox row's log entry as the service writes it, for `action` on a
/// made-up audit.
pub fn outbox_entry(action: &str) -> String {
    json!({
        "at": "2026-12-01T10:00:00Z",
        "actor_id": null,
        "actor_role": null,
        "action": action,
        "target_type": "audit",
        "target_id": "from-the-outbox",
        "region_code": null,
        "sector": null,
        "before_digest": null,
        "after_digest": null,
        "detail": "{}",
        "request_id": null
    })
    .to_string()
}
