//! Runtime settings. Precedence, lowest first: built-in defaults, an optional
//! TOML file (`--config` / `DOSTUP_CONFIG`), `DOSTUP_*` environment variables,
//! command-line flags. Environment and flags are merged by clap before they
//! reach [`Settings::resolve`], which only has to lay them over the file.
//!
//! Secrets (the token signing key, database passwords inside URLs) are read
//! from the environment or the data directory, never from the file, and are
//! never printed: `Debug` for [`Settings`] redacts them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default address: loopback only, so a fresh install is not exposed.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "dostup-data";
/// Default number of recently written audits kept in memory: the audits
/// a few thousand phones are working on. Each copy holds the audit's
/// answers (a few kilobytes for a full checklist) and its photo rows.
pub const DEFAULT_AUDIT_CACHE_ENTRIES: usize = 4096;

/// Errors while assembling the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// The optional configuration file. Every key is optional; unknown keys are
/// errors so that a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub checklists_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub body_limit_bytes: Option<usize>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub login_attempts_per_minute: Option<u32>,
    pub trust_forwarded_for: Option<bool>,
    pub storage: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_bucket: Option<String>,
    pub photo_max_bytes: Option<u64>,
    pub photo_max_distance_m: Option<f64>,
    pub upload_expiry_secs: Option<u64>,
    pub blob_grace_secs: Option<u64>,
    pub audit_cache_entries: Option<usize>,
    pub database_ping: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML configuration file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, or has an unknown key; the
    /// message names the file and, from the TOML parser, the line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|err| ConfigError::ParseFile {
            path: path.to_owned(),
            message: err.to_string(),
        })
    }
}

/// Values given on the command line or in the environment (clap merges the
/// two). `None` means "not given", so that the file and defaults can apply.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub checklists_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub body_limit_bytes: Option<usize>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub login_attempts_per_minute: Option<u32>,
    pub trust_forwarded_for: Option<bool>,
    pub token_secret: Option<String>,
    pub storage: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_bucket: Option<String>,
    /// From the environment only.
    pub s3_access_key: Option<String>,
    /// From the environment only.
    pub s3_secret_key: Option<String>,
    pub photo_max_bytes: Option<u64>,
    pub photo_max_distance_m: Option<f64>,
    pub upload_expiry_secs: Option<u64>,
    pub blob_grace_secs: Option<u64>,
    pub audit_cache_entries: Option<usize>,
    pub database_ping: Option<String>,
}

/// Where photos are stored.
#[derive(Clone, Debug)]
pub enum StorageSettings {
    /// A directory (default: `<data-dir>/objects`).
    Fs(PathBuf),
    /// An S3-compatible bucket.
    S3(crate::storage::S3Config),
}

/// Fully resolved settings of one service process.
#[derive(Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub checklists_dir: PathBuf,
    /// `sqlite://…` (default, in the data directory) or `postgres://…`.
    pub database_url: String,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub login_attempts_per_minute: u32,
    pub trust_forwarded_for: bool,
    /// Key for signing access tokens; `None` lets the service use (and create)
    /// a key file in the data directory.
    pub token_secret: Option<String>,
    pub storage: StorageSettings,
    /// Largest photo accepted, in bytes.
    pub photo_max_bytes: u64,
    /// Photos taken farther than this from the site are flagged.
    pub photo_max_distance_m: f64,
    /// Unfinished resumable uploads are deleted after this long.
    pub upload_expiry: Duration,
    /// Blobs no photo references are deleted after this long.
    pub blob_grace: Duration,
    /// Audits whose last written state each process keeps in memory, so a
    /// batch of answers to one of them needs no read first; 0 keeps none.
    pub audit_cache_entries: usize,
    /// When a pooled database connection is tested before use.
    pub database_ping: crate::db::DatabasePing,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("checklists_dir", &self.checklists_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("cors_origins", &self.cors_origins)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("audit_cache_entries", &self.audit_cache_entries)
            .field("database_ping", &self.database_ping)
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Settings {
    /// Lays command-line/environment values over the file over the defaults.
    ///
    /// # Errors
    /// A value that does not parse (bind address) or is out of range (zero
    /// TTLs or rate limits), naming the setting.
    pub fn resolve(file: FileConfig, over: Overrides) -> Result<Self, ConfigError> {
        let bind_text = over
            .bind
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse().map_err(|_| ConfigError::Invalid {
            name: "bind",
            message: format!("`{bind_text}` is not an address like 127.0.0.1:8080"),
        })?;
        let data_dir = over
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = over
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir));
        let positive = |name: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    name,
                    message: "must be greater than zero".to_owned(),
                })
            } else {
                Ok(value)
            }
        };
        let access = positive(
            "access_token_ttl_secs",
            over.access_token_ttl_secs
                .or(file.access_token_ttl_secs)
                .unwrap_or(15 * 60),
        )?;
        let refresh = positive(
            "refresh_token_ttl_secs",
            over.refresh_token_ttl_secs
                .or(file.refresh_token_ttl_secs)
                .unwrap_or(30 * 24 * 3600),
        )?;
        let attempts = positive(
            "login_attempts_per_minute",
            u64::from(
                over.login_attempts_per_minute
                    .or(file.login_attempts_per_minute)
                    .unwrap_or(10),
            ),
        )?;
        let storage = match over.storage.or(file.storage).as_deref().unwrap_or("fs") {
            "fs" => StorageSettings::Fs(data_dir.join("objects")),
            "s3" => {
                let required = |name: &'static str, value: Option<String>| {
                    value.filter(|v| !v.is_empty()).ok_or(ConfigError::Invalid {
                        name,
                        message: "required when DOSTUP_STORAGE=s3".to_owned(),
                    })
                };
                StorageSettings::S3(crate::storage::S3Config {
                    endpoint: required("s3_endpoint", over.s3_endpoint.or(file.s3_endpoint))?,
                    region: over
                        .s3_region
                        .or(file.s3_region)
                        .unwrap_or_else(|| "us-east-1".to_owned()),
                    bucket: required("s3_bucket", over.s3_bucket.or(file.s3_bucket))?,
                    access_key: required("s3_access_key", over.s3_access_key)?,
                    secret_key: required("s3_secret_key", over.s3_secret_key)?,
                })
            }
            other => {
                return Err(ConfigError::Invalid {
                    name: "storage",
                    message: format!("`{other}` is not `fs` or `s3`"),
                });
            }
        };
        let photo_max_bytes = positive(
            "photo_max_bytes",
            over.photo_max_bytes
                .or(file.photo_max_bytes)
                .unwrap_or(40 * 1024 * 1024),
        )?;
        let photo_max_distance_m = over
            .photo_max_distance_m
            .or(file.photo_max_distance_m)
            .unwrap_or(300.0);
        if !(photo_max_distance_m.is_finite() && photo_max_distance_m > 0.0) {
            return Err(ConfigError::Invalid {
                name: "photo_max_distance_m",
                message: "must be a positive number of metres".to_owned(),
            });
        }
        let upload_expiry = positive(
            "upload_expiry_secs",
            over.upload_expiry_secs
                .or(file.upload_expiry_secs)
                .unwrap_or(24 * 3600),
        )?;
        let blob_grace = positive(
            "blob_grace_secs",
            over.blob_grace_secs
                .or(file.blob_grace_secs)
                .unwrap_or(3600),
        )?;
        let database_ping = over
            .database_ping
            .or(file.database_ping)
            .as_deref()
            .unwrap_or("always")
            .parse()
            .map_err(|message| ConfigError::Invalid {
                name: "database_ping",
                message,
            })?;
        Ok(Self {
            database_ping,
            storage,
            photo_max_bytes,
            photo_max_distance_m,
            upload_expiry: Duration::from_secs(upload_expiry),
            blob_grace: Duration::from_secs(blob_grace),
            audit_cache_entries: over
                .audit_cache_entries
                .or(file.audit_cache_entries)
                .unwrap_or(DEFAULT_AUDIT_CACHE_ENTRIES),
            bind,
            checklists_dir: over
                .checklists_dir
                .or(file.checklists_dir)
                .unwrap_or_else(|| PathBuf::from("checklists")),
            data_dir,
            database_url,
            cors_origins: over.cors_origins.or(file.cors_origins).unwrap_or_default(),
            body_limit_bytes: over
                .body_limit_bytes
                .or(file.body_limit_bytes)
                .unwrap_or(2 * 1024 * 1024),
            access_token_ttl: Duration::from_secs(access),
            refresh_token_ttl: Duration::from_secs(refresh),
            login_attempts_per_minute: u32::try_from(attempts).unwrap_or(u32::MAX),
            trust_forwarded_for: over
                .trust_forwarded_for
                .or(file.trust_forwarded_for)
                .unwrap_or(false),
            token_secret: over.token_secret.filter(|s| !s.is_empty()),
        })
    }

    /// Settings for tests and tools: defaults with the given data directory.
    #[must_use]
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let over = Overrides {
            data_dir: Some(data_dir.to_owned()),
            ..Overrides::default()
        };
        // Defaults always resolve; the fallback only exists to avoid a panic path.
        Self::resolve(FileConfig::default(), over).unwrap_or_else(|_| unreachable_defaults())
    }

    /// Whether the database is the embedded SQLite file.
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

#[cold]
fn unreachable_defaults() -> Settings {
    Settings {
        bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        checklists_dir: PathBuf::from("checklists"),
        database_url: sqlite_url(Path::new(DEFAULT_DATA_DIR)),
        cors_origins: Vec::new(),
        body_limit_bytes: 2 * 1024 * 1024,
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
        login_attempts_per_minute: 10,
        trust_forwarded_for: false,
        token_secret: None,
        storage: StorageSettings::Fs(Path::new(DEFAULT_DATA_DIR).join("objects")),
        photo_max_bytes: 40 * 1024 * 1024,
        photo_max_distance_m: 300.0,
        upload_expiry: Duration::from_secs(24 * 3600),
        blob_grace: Duration::from_secs(3600),
        audit_cache_entries: DEFAULT_AUDIT_CACHE_ENTRIES,
        database_ping: crate::db::DatabasePing::Always,
    }
}

/// The SQLite URL of the embedded database inside `data_dir`; `mode=rwc`
/// creates the file on first start.
#[must_use]
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("dostup.db").display())
}

/// A database URL with any password replaced, for logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file: FileConfig = toml::from_str("bind = \"127.0.0.1:9000\"\nbody_limit_bytes = 10\n")
            .expect("valid toml");
        let over = Overrides {
            body_limit_bytes: Some(20),
            ..Overrides::default()
        };
        let settings = Settings::resolve(file, over).expect("resolves");
        assert_eq!(settings.bind.port(), 9000);
        assert_eq!(settings.body_limit_bytes, 20);
        assert!(settings.is_sqlite());
    }

    #[test]
    fn database_ping_is_always_unless_asked_and_a_typo_is_named() {
        let settings = Settings::resolve(FileConfig::default(), Overrides::default()).expect("ok");
        assert_eq!(settings.database_ping, crate::db::DatabasePing::Always);
        let file: FileConfig = toml::from_str("database_ping = \"when-in-doubt\"").expect("toml");
        let settings = Settings::resolve(file, Overrides::default()).expect("resolves");
        assert_eq!(settings.database_ping, crate::db::DatabasePing::WhenInDoubt);
        let over = Overrides {
            database_ping: Some("sometimes".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(FileConfig::default(), over).expect_err("rejected");
        assert!(err.to_string().starts_with("database_ping:"), "{err}");
        assert!(err.to_string().contains("when-in-doubt"), "{err}");
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let err = toml::from_str::<FileConfig>("bnd = \"x\"").expect_err("typo rejected");
        assert!(err.to_string().contains("bnd"), "{err}");
    }

    #[test]
    fn bad_bind_names_the_setting() {
        let over = Overrides {
            bind: Some("localhost".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(FileConfig::default(), over).expect_err("rejected");
        assert!(err.to_string().starts_with("bind:"), "{err}");
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/dostup"),
            "postgres://app:<redacted>@db:5432/dostup"
        );
        let mut settings = Settings::for_data_dir(Path::new("x"));
        settings.token_secret = Some("topsecret".into());
        settings.database_url = "postgres://a:pw@h/db".into();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
