//! Object storage for evidence: a local directory (the embedded default) or
//! any S3-compatible server. Keys are content addresses chosen by the caller
//! (`originals/<sha256>`, `thumbnails/<sha256>/<size>.jpg`), so writing the
//! same photo twice stores it once and a finished write never changes.
//!
//! Writes are complete or absent: the file store renames a fully written
//! temporary file into place, S3 publishes an object only when its upload
//! completes.

mod fs;
mod s3;

use std::path::Path;
use std::time::SystemTime;

use axum::body::Bytes;

pub use fs::FsStore;
pub use s3::{S3Config, S3Store};

/// Why a storage operation failed. Callers answer 503 with `Retry-After`:
/// these are conditions of the store, not of the request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store request failed: {0}")]
    Remote(String),
    #[error("invalid object key `{0}`")]
    BadKey(String),
}

/// A stored object's name and last modification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub modified: SystemTime,
}

/// Where blobs live.
#[derive(Debug, Clone)]
pub enum BlobStore {
    Fs(FsStore),
    S3(S3Store),
}

impl BlobStore {
    /// Stores `bytes` under `key`, replacing nothing that exists (content
    /// addressed keys make a second write a no-op).
    ///
    /// # Errors
    /// The store failed.
    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.put(key, &bytes).await,
            Self::S3(s) => s.put(key, bytes, content_type).await,
        }
    }

    /// Stores the file at `path` under `key`, streaming it: memory stays
    /// bounded whatever its size.
    ///
    /// # Errors
    /// The store failed or the file cannot be read.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.put_file(key, path).await,
            Self::S3(s) => s.put_file(key, path, content_type).await,
        }
    }

    /// The whole object, `None` when absent.
    ///
    /// # Errors
    /// The store failed.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.get(key).await,
            Self::S3(s) => s.get(key).await,
        }
    }

    /// Bytes `start..=end` of the object (to its end when `end` is `None`).
    ///
    /// # Errors
    /// The store failed.
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.get_range(key, start, end).await,
            Self::S3(s) => s.get_range(key, start, end).await,
        }
    }

    /// Size of the object, `None` when absent.
    ///
    /// # Errors
    /// The store failed.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.size(key).await,
            Self::S3(s) => s.size(key).await,
        }
    }

    /// Removes the object; absent objects are fine.
    ///
    /// # Errors
    /// The store failed.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// Every object whose key starts with `prefix`.
    ///
    /// # Errors
    /// The store failed.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        match self {
            Self::Fs(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }

    /// A time-limited URL a client can download from directly, where the
    /// store supports it (S3); `None` means serve the bytes through the API.
    ///
    /// # Errors
    /// The store failed to sign.
    pub async fn presigned_get(
        &self,
        key: &str,
        seconds: u32,
    ) -> Result<Option<String>, StoreError> {
        check_key(key)?;
        match self {
            Self::Fs(_) => Ok(None),
            Self::S3(s) => s.presigned_get(key, seconds).await.map(Some),
        }
    }

    /// Cheap check that the store answers, for readiness.
    ///
    /// # Errors
    /// The store does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Fs(s) => s.ping().await,
            Self::S3(s) => s.ping().await,
        }
    }
}

/// Keys are `/`-separated words of `[A-Za-z0-9._-]`, never `.` or `..`, so
/// they are safe as file paths and as S3 keys alike.
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_cannot_escape_the_store() {
        assert!(check_key("originals/abc123").is_ok());
        assert!(check_key("thumbnails/abc/320.jpg").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "a//b",
            "/abs",
            "a/./b",
            "a b",
            "a\\b",
            "ключ",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
