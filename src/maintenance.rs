//! Periodic housekeeping, safe to run on every replica at once (each step is
//! idempotent): blobs no photo references, expired resumable uploads,
//! stale temporary files and idempotency records past their retention.
//!
//! Blobs are written before their database row, so a blob without a row may
//! belong to an upload still in flight; only those older than the grace
//! period are removed.

use std::time::{Duration, SystemTime};

use crate::db;
use crate::http::AppState;

/// What one sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub blobs: usize,
    pub uploads: usize,
    pub temp_files: usize,
    pub idempotency_keys: u64,
}

/// Runs every housekeeping step once.
///
/// # Errors
/// The database or the object store failed; steps before the failure are done.
pub async fn sweep(state: &AppState) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let grace = state.settings.blob_grace;
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);

    let referenced = db::photos::referenced_hashes(&state.db).await?;
    for prefix in ["originals/", "thumbnails/"] {
        for blob in state.storage.list(prefix).await? {
            let hash = blob.key.split('/').nth(1).unwrap_or_default();
            if !referenced.contains(hash) && blob.modified <= cutoff {
                state.storage.delete(&blob.key).await?;
                report.blobs += 1;
            }
        }
    }

    let uploads_dir = state.settings.data_dir.join("uploads");
    for upload in db::photos::expired_uploads(&state.db).await? {
        let _ = tokio::fs::remove_file(uploads_dir.join(upload.id.simple().to_string())).await;
        db::photos::delete_upload(&state.db, upload.id).await?;
        report.uploads += 1;
    }
    if let Ok(mut entries) = tokio::fs::read_dir(&uploads_dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let stale = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|modified| modified <= cutoff);
            if entry.file_name().to_string_lossy().starts_with("incoming-") && stale {
                let _ = tokio::fs::remove_file(entry.path()).await;
                report.temp_files += 1;
            }
        }
    }

    report.idempotency_keys = db::idempotency::sweep(&state.db).await?;
    Ok(report)
}

/// Sweeps every `every` for as long as the process runs.
pub fn spawn_periodic(state: AppState, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sweep(&state).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(?report, "housekeeping removed leftovers");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "housekeeping failed; retrying later"),
            }
        }
    });
}
