//! The checklist catalogs the service evaluates with: the current release,
//! loaded from the checklist directory and published at start, and older
//! releases that audits are pinned to, rebuilt from the database on first
//! use and kept in memory. Also the prepared JSON mobile clients download.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use sea_orm::DatabaseConnection;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checklist::{Catalog, ENGINE_VERSION, LoadErrors, Methodology};
use crate::db::DbError;
use crate::db::catalog::{self, PublishError};

/// Why the catalog could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("checklists in {dir} do not lint:\n{errors}\n{count} error(s)")]
    Lint {
        dir: String,
        errors: LoadErrors,
        count: usize,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("release {0} is not stored")]
    UnknownRelease(String),
    #[error("stored release {hash} no longer loads:\n{errors}")]
    BrokenRelease { hash: String, errors: LoadErrors },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A JSON document prepared once, with its strong ETag, and its compressed
/// forms, made the first time a client asks for each.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub json: Bytes,
    /// Quoted, ready for the `ETag` header.
    pub etag: String,
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
}

/// A content coding a prepared document is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    /// Its name in `Content-Encoding`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
        }
    }

    /// `json` compressed at this coding's best level: the document is made
    /// once and sent many times, so size matters more than time.
    ///
    /// # Errors
    /// An encoder failure (it writes to memory; not expected).
    pub fn compress(self, json: &[u8]) -> std::io::Result<Bytes> {
        let mut out = Vec::with_capacity(json.len() / 4);
        match self {
            Self::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
                encoder.write_all(json)?;
                encoder.finish()?;
            }
            Self::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_BEST_QUALITY,
                    lgwin: BROTLI_WINDOW,
                    size_hint: json.len(),
                    ..brotli::enc::BrotliEncoderParams::default()
                };
                brotli::BrotliCompress(&mut &json[..], &mut out, &params)?;
            }
        }
        Ok(Bytes::from(out))
    }
}

const BROTLI_BEST_QUALITY: i32 = 11;
/// 4 MiB: larger than any prepared document, so all of it is context.
const BROTLI_WINDOW: i32 = 22;

impl Prepared {
    /// Serialises `value` and computes its ETag.
    #[must_use]
    pub fn from_value(value: &serde_json::Value) -> Self {
        let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let digest = Sha256::digest(&json);
        let hex = hex::encode(&digest[..16]);
        Self {
            json,
            etag: format!("\"{hex}\""),
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
        }
    }

    /// The document in `coding`: compressed off the runtime's workers the
    /// first time, then kept. Two first requests at once may both compress;
    /// one result is kept.
    ///
    /// # Errors
    /// The encoder failed, or its task panicked.
    pub async fn encoded(&self, coding: Coding) -> std::io::Result<Bytes> {
        let cell = match coding {
            Coding::Gzip => &self.gzip,
            Coding::Brotli => &self.brotli,
        };
        if let Some(kept) = cell.get() {
            return Ok(kept.clone());
        }
        let json = self.json.clone();
        let compressed = tokio::task::spawn_blocking(move || coding.compress(&json))
            .await
            .map_err(std::io::Error::other)??;
        Ok(cell.get_or_init(|| compressed).clone())
    }
}

/// The current catalog and its release, plus older releases on demand.
pub struct Catalogs {
    current: Arc<Catalog>,
    release: String,
    db: DatabaseConnection,
    older: Mutex<HashMap<String, Arc<Catalog>>>,
    compiled: HashMap<(String, String), Prepared>,
    bundles: HashMap<String, Prepared>,
}

impl std::fmt::Debug for Catalogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogs")
            .field("release", &self.release)
            .finish_non_exhaustive()
    }
}

impl Catalogs {
    /// Loads `dir`, refuses it unless it lints, publishes its versions and
    /// prepares the downloads.
    ///
    /// # Errors
    /// Lint errors (every one, with file:line:column), a version whose
    /// content changed without a bump, or a database failure.
    pub async fn publish_dir(db: &DatabaseConnection, dir: &Path) -> Result<Self, CatalogError> {
        let lint = |errors: LoadErrors| CatalogError::Lint {
            dir: dir.display().to_string(),
            count: errors.errors.len(),
            errors,
        };
        let files = Catalog::read_files(dir).map_err(lint)?;
        let catalog = Catalog::from_files(&files).map_err(lint)?;
        let release = catalog::publish(db, dir, &files, &catalog).await?;
        let compiled = catalog
            .checklists()
            .iter()
            .map(|c| {
                let value = serde_json::to_value(c.compiled()).unwrap_or_default();
                (
                    (c.id().to_owned(), c.version().to_owned()),
                    Prepared::from_value(&value),
                )
            })
            .collect();
        let bundles = catalog
            .methodologies()
            .iter()
            .map(|m| {
                (
                    m.id().to_owned(),
                    Prepared::from_value(&bundle(&catalog, m, &release)),
                )
            })
            .collect();
        Ok(Self {
            current: Arc::new(catalog),
            release,
            db: db.clone(),
            older: Mutex::new(HashMap::new()),
            compiled,
            bundles,
        })
    }

    /// The catalog loaded at start.
    #[must_use]
    pub fn current(&self) -> &Arc<Catalog> {
        &self.current
    }

    /// Hash of the current release.
    #[must_use]
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The prepared compiled form of a current checklist version.
    #[must_use]
    pub fn compiled(&self, id: &str, version: &str) -> Option<&Prepared> {
        self.compiled.get(&(id.to_owned(), version.to_owned()))
    }

    /// The prepared bundle of a current methodology.
    #[must_use]
    pub fn bundle(&self, methodology: &str) -> Option<&Prepared> {
        self.bundles.get(methodology)
    }

    /// The catalog of any stored release.
    ///
    /// # Errors
    /// The release is unknown or its stored files no longer load.
    pub async fn for_release(&self, hash: &str) -> Result<Arc<Catalog>, CatalogError> {
        if hash == self.release {
            return Ok(Arc::clone(&self.current));
        }
        if let Some(found) = self.cached(hash) {
            return Ok(found);
        }
        let files = catalog::release_files(&self.db, hash)
            .await?
            .ok_or_else(|| CatalogError::UnknownRelease(hash.to_owned()))?;
        let rebuilt =
            Catalog::from_files(&files).map_err(|errors| CatalogError::BrokenRelease {
                hash: hash.to_owned(),
                errors,
            })?;
        let rebuilt = Arc::new(rebuilt);
        if let Ok(mut older) = self.older.lock() {
            older.insert(hash.to_owned(), Arc::clone(&rebuilt));
        }
        Ok(rebuilt)
    }

    fn cached(&self, hash: &str) -> Option<Arc<Catalog>> {
        self.older.lock().ok()?.get(hash).cloned()
    }

    /// The release to pin for `methodology` at `version`: the current one
    /// when it has that version, otherwise the newest stored release that
    /// does. `None` when no release has it.
    ///
    /// # Errors
    /// Database failure.
    pub async fn release_with(
        &self,
        methodology: &str,
        version: &str,
    ) -> Result<Option<String>, CatalogError> {
        if self
            .current
            .methodology(methodology)
            .is_some_and(|m| m.version() == version)
        {
            return Ok(Some(self.release.clone()));
        }
        let releases = catalog::releases(&self.db).await?;
        Ok(releases
            .into_iter()
            .find(|(_, members)| {
                members
                    .iter()
                    .any(|m| m.kind == "methodology" && m.id == methodology && m.version == version)
            })
            .map(|(hash, _)| hash))
    }
}

/// Everything a client needs to audit with one methodology.
fn bundle(catalog: &Catalog, methodology: &Methodology, release: &str) -> serde_json::Value {
    json!({
        "methodology": {
            "id": methodology.id(),
            "version": methodology.version(),
            "title": methodology.title(),
            "kind": methodology.kind_name(),
        },
        "release": release,
        "engine_version": ENGINE_VERSION,
        "checklists": catalog.checklists().iter().map(|c| c.compiled()).collect::<Vec<_>>(),
    })
}
