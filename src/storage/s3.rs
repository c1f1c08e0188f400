//! Blobs in an S3-compatible bucket (Garage, MinIO, Ceph, AWS) through
//! rust-s3, path-style. The bucket is created on start if missing.

use std::path::Path;
use std::time::SystemTime;

use axum::body::Bytes;
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};

use super::{Listed, StoreError};

/// Connection settings; the keys come from the environment only.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// A bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: Box<Bucket>,
}

fn remote(err: impl std::fmt::Display) -> StoreError {
    StoreError::Remote(err.to_string())
}

impl S3Store {
    /// Connects and creates the bucket if it does not exist.
    ///
    /// # Errors
    /// Bad settings, or the server refuses.
    pub async fn open(config: &S3Config) -> Result<Self, StoreError> {
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: config.endpoint.clone(),
        };
        let credentials = Credentials::new(
            Some(&config.access_key),
            Some(&config.secret_key),
            None,
            None,
            None,
        )
        .map_err(remote)?;
        let bucket = Bucket::new(&config.bucket, region.clone(), credentials.clone())
            .map_err(remote)?
            .with_path_style();
        let store = Self { bucket };
        // Probe with a one-key listing rather than listing all buckets: it
        // needs only rights on this bucket and every S3 server answers it.
        match store.probe().await {
            Ok(()) => {}
            Err(s3::error::S3Error::HttpFailWithBody(404, _)) => {
                Bucket::create_with_path_style(
                    &config.bucket,
                    region,
                    credentials,
                    BucketConfiguration::default(),
                )
                .await
                .map_err(remote)?;
            }
            Err(e) => return Err(remote(e)),
        }
        Ok(store)
    }

    async fn probe(&self) -> Result<(), s3::error::S3Error> {
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .map(|_| ())
    }

    pub(super) async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.bucket
            .put_object_with_content_type(key, &bytes, content_type)
            .await
            .map_err(remote)?;
        Ok(())
    }

    pub(super) async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let mut file = tokio::fs::File::open(path).await?;
        self.bucket
            .put_object_stream_with_content_type(&mut file, key, content_type)
            .await
            .map_err(remote)?;
        Ok(())
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        if !self.bucket.object_exists(key).await.map_err(remote)? {
            return Ok(None);
        }
        let response = self.bucket.get_object(key).await.map_err(remote)?;
        Ok(Some(response.bytes().clone()))
    }

    pub(super) async fn get_range(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        let Some(size) = self.size(key).await? else {
            return Ok(None);
        };
        if start >= size {
            return Ok(Some(Bytes::new()));
        }
        let end = end.map(|e| e.min(size - 1));
        let response = self
            .bucket
            .get_object_range(key, start, end)
            .await
            .map_err(remote)?;
        Ok(Some(response.bytes().clone()))
    }

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if !self.bucket.object_exists(key).await.map_err(remote)? {
            return Ok(None);
        }
        let (head, _) = self.bucket.head_object(key).await.map_err(remote)?;
        Ok(head.content_length.and_then(|l| u64::try_from(l).ok()))
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let pages = self
            .bucket
            .list(prefix.to_owned(), None)
            .await
            .map_err(remote)?;
        let mut out: Vec<Listed> = pages
            .into_iter()
            .flat_map(|page| page.contents)
            .map(|object| Listed {
                modified: chrono::DateTime::parse_from_rfc3339(&object.last_modified)
                    .map(SystemTime::from)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                key: object.key,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(super) async fn presigned_get(
        &self,
        key: &str,
        seconds: u32,
    ) -> Result<String, StoreError> {
        self.bucket
            .presign_get(key, seconds, None)
            .await
            .map_err(remote)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.probe().await.map_err(remote)
    }
}
