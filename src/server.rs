//! Start-up and shutdown of the service: open the database, apply
//! migrations, load the token key, bind, serve until a signal arrives.
//! Tests and the binary go through the same [`Server`].

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::auth::{LoginLimiter, Sessions, SigningKey};
use crate::catalogs::Catalogs;
use crate::config::{Settings, StorageSettings};
use crate::db;
use crate::http::{AppState, app};
use crate::storage::{BlobStore, FsStore, S3Store};

/// File in the data directory holding a generated token key.
const KEY_FILE: &str = "token-signing.key";

/// Opens the database, applies migrations and assembles the shared state.
///
/// # Errors
/// The data directory, database or token key cannot be set up; the message
/// says which.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let conn = db::connect_with(&settings.database_url, settings.database_ping)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                crate::config::redact_url(&settings.database_url)
            )
        })?;
    db::migrate(&conn).await.context("migrations failed")?;
    let catalogs = Catalogs::publish_dir(&conn, &settings.checklists_dir).await?;
    tracing::info!(release = catalogs.release(), "checklists published");
    let key = signing_key(&settings)?;
    let per_minute = NonZeroU32::new(settings.login_attempts_per_minute).unwrap_or(NonZeroU32::MIN);
    let sessions = Arc::new(Sessions {
        key,
        access_ttl: settings.access_token_ttl,
        refresh_ttl: settings.refresh_token_ttl,
        limiter: LoginLimiter::new(per_minute),
    });
    spawn_limiter_sweep(&sessions);
    let storage = open_storage(&settings).await?;
    std::fs::create_dir_all(settings.data_dir.join("uploads")).with_context(|| {
        format!(
            "cannot create {}",
            settings.data_dir.join("uploads").display()
        )
    })?;
    // One decode per core: more would only add memory, not speed.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Ok(AppState {
        sealer: db::outbox::Sealer::start(conn.clone()),
        db: conn,
        storage,
        ingest_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
        catalogs: Arc::new(catalogs),
        recent_audits: Arc::new(db::recent::RecentAudits::new(settings.audit_cache_entries)),
        sessions,
        settings: Arc::new(settings),
    })
}

/// Opens the configured object store (creating the bucket or directory).
async fn open_storage(settings: &Settings) -> anyhow::Result<BlobStore> {
    Ok(match &settings.storage {
        StorageSettings::Fs(root) => BlobStore::Fs(
            FsStore::open(root)
                .with_context(|| format!("cannot open object directory {}", root.display()))?,
        ),
        StorageSettings::S3(config) => {
            BlobStore::S3(S3Store::open(config).await.with_context(|| {
                format!(
                    "cannot open bucket {} at {}",
                    config.bucket, config.endpoint
                )
            })?)
        }
    })
}

/// The configured secret, or a key generated once and kept in the data
/// directory (fine for one process; replicas must share `DOSTUP_TOKEN_SECRET`).
fn signing_key(settings: &Settings) -> anyhow::Result<SigningKey> {
    if let Some(secret) = &settings.token_secret {
        return SigningKey::new(secret.as_bytes()).map_err(|len| {
            anyhow::anyhow!(
                "DOSTUP_TOKEN_SECRET has {len} bytes; use at least {}",
                crate::auth::token::MIN_SECRET_BYTES
            )
        });
    }
    if !settings.is_sqlite() {
        tracing::warn!(
            "DOSTUP_TOKEN_SECRET is not set: tokens are signed with a key from the data directory, \
             which other replicas do not share"
        );
    }
    load_or_create_key(&settings.data_dir.join(KEY_FILE))
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SigningKey> {
    if let Ok(bytes) = std::fs::read(path) {
        return SigningKey::new(&bytes).map_err(|len| {
            anyhow::anyhow!(
                "{} holds only {len} bytes; delete it to make a new key",
                path.display()
            )
        });
    }
    let key = SigningKey::generate().context("random source failed")?;
    write_private(path, key.as_bytes())
        .with_context(|| format!("cannot write token key {}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Forgets recovered login-throttle keys every few minutes, for as long as
/// the sessions exist.
fn spawn_limiter_sweep(sessions: &Arc<Sessions>) {
    let weak = Arc::downgrade(sessions);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        tick.tick().await;
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(sessions) => sessions.limiter.sweep(),
                None => break,
            }
        }
    });
}

/// A bound, not yet serving, instance of the service.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Server {
    /// Builds the state and binds the configured address (port 0 picks a
    /// free port; see [`Server::local_addr`]).
    ///
    /// # Errors
    /// Start-up failure or the address is taken.
    pub async fn bind(settings: Settings) -> anyhow::Result<Self> {
        let bind = settings.bind;
        let state = build_state(settings).await?;
        Self::bind_with_state(bind, state).await
    }

    /// Binds with a state built elsewhere (tests seed it first).
    ///
    /// # Errors
    /// The address is taken.
    pub async fn bind_with_state(bind: SocketAddr, state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        Ok(Self {
            listener,
            router: app(state.clone()),
            state,
        })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// The socket has no local address (never for a bound TCP listener).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state, e.g. for seeding.
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
