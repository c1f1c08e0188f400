//! Numbering the audit log and the change feed in commit order, off the
//! request path.
//!
//! Both need numbers in the order their transactions commit: the log so that
//! its hash chain never forks, the feed so that a `/sync` reader never moves
//! its cursor past a change that commits a moment later. Handing out those
//! numbers inside each writer's transaction would make every audit write in
//! the deployment queue on one lock until its commit.
//!
//! Instead an action writes its log entry and its change into `outbox`, in
//! its own transaction, with nothing shared to wait for. A sealing pass then
//! takes the committed outbox rows in one transaction, under the order lock,
//! and moves them into `audit_log` (numbered and chained to the head) and
//! `changes` (numbered after the last one). Passes follow each other, each
//! commits before the next starts, and a pass only sees rows whose writers
//! have committed, so numbers are handed out in commit order.
//!
//! Every instance runs a [`Sealer`] that passes shortly after each write
//! (batching under load) and polls now and then for rows written elsewhere.
//! Readers of the log and the feed call [`flush`] first, so a caller always
//! reads its own writes. An entry spends a few milliseconds in the outbox
//! under load; until it is sealed it is not covered by the chain.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Order, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};
use tokio::sync::{Notify, watch};

use super::audit_log::Unsealed;
use super::changes::Unnumbered;
use super::entity::outbox;
use super::{DbError, now};

/// Rows moved per pass.
const BATCH: u64 = 500;

/// Pause after a pass that moved rows, so that the next one moves many.
const GATHER: Duration = Duration::from_millis(20);

/// Pause between passes when nothing woke the sealer (rows written by
/// another instance or the command line).
const POLL: Duration = Duration::from_secs(1);

/// Pause after a failed pass.
const RETRY: Duration = Duration::from_secs(2);

/// Wakes the sealers of this process: called after every write commit.
static WRITTEN: Notify = Notify::const_new();

/// Tells this process's sealers that a write committed.
pub(crate) fn written() {
    WRITTEN.notify_waiters();
}

/// Writes a log entry and a change, either or both, inside the action's
/// transaction `txn`.
///
/// # Errors
/// Database failure.
pub(super) async fn push<C: ConnectionTrait>(
    txn: &C,
    entry: Option<Unsealed>,
    change: Option<Unnumbered>,
) -> Result<(), DbError> {
    let text = |value: Result<String, serde_json::Error>| {
        value.map_err(|e| DbError::Other(sea_orm::DbErr::Custom(format!("outbox row: {e}"))))
    };
    let row = outbox::ActiveModel {
        id: NotSet,
        entry: Set(entry.map(|e| text(serde_json::to_string(&e))).transpose()?),
        change: Set(change
            .map(|c| text(serde_json::to_string(&c)))
            .transpose()?),
        created_at: Set(now()),
    };
    outbox::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// One sealing pass: moves up to [`BATCH`] committed outbox rows into the
/// log and the feed; returns how many rows it moved.
///
/// # Errors
/// Database failure, or an outbox row that does not parse (nothing is moved
/// then; the row stays for someone to look at).
pub async fn seal(db: &DatabaseConnection) -> Result<usize, DbError> {
    let owned = db.clone();
    super::on_writer(db, async move { seal_pass(&owned).await }).await
}

async fn seal_pass(db: &DatabaseConnection) -> Result<usize, DbError> {
    let write = super::begin_write(db).await?;
    let txn = &*write;
    super::take_order_lock(txn).await?;
    // Taking the rows out first makes the pass's first statement a write,
    // so SQLite grants the write lock at once instead of upgrading a read.
    let oldest = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .order_by(outbox::Column::Id, Order::Asc)
        .limit(BATCH)
        .to_owned();
    let mut rows = outbox::Entity::delete_many()
        .filter(outbox::Column::Id.in_subquery(oldest))
        .exec_with_returning(txn)
        .await?;
    if rows.is_empty() {
        write.rollback().await?;
        return Ok(0);
    }
    rows.sort_unstable_by_key(|r| r.id);
    let mut entries = Vec::new();
    let mut changes = Vec::new();
    for row in &rows {
        let unreadable = |what: &str, err: serde_json::Error| {
            DbError::Other(sea_orm::DbErr::Custom(format!(
                "outbox row {} holds an unreadable {what}: {err}",
                row.id
            )))
        };
        if let Some(text) = &row.entry {
            entries.push(
                serde_json::from_str::<Unsealed>(text).map_err(|e| unreadable("log entry", e))?,
            );
        }
        if let Some(text) = &row.change {
            changes.push(
                serde_json::from_str::<Unnumbered>(text).map_err(|e| unreadable("change", e))?,
            );
        }
    }
    super::audit_log::seal(txn, entries).await?;
    super::changes::number(txn, changes).await?;
    write.commit().await?;
    Ok(rows.len())
}

/// Seals everything committed so far, so that a reader sees its own writes.
/// Cheap when the outbox is empty: one indexed read.
///
/// # Errors
/// Database failure.
pub async fn flush(db: &DatabaseConnection) -> Result<(), DbError> {
    loop {
        let pending = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Id)
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
            .await?;
        if pending.is_none() || seal(db).await? < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            return Ok(());
        }
    }
}

/// [`flush`] before a read of the log or the feed. A failure is logged and
/// the read goes on: it may then miss the newest writes, which the
/// background sealer numbers moments later.
pub(super) async fn flush_for_reading(db: &DatabaseConnection) {
    if let Err(err) = flush(db).await {
        tracing::warn!(error = %err, "sealing before a read failed");
    }
}

/// The background sealer of one instance; it stops when dropped.
#[derive(Debug)]
pub struct Sealer {
    _stop: watch::Sender<()>,
}

impl Sealer {
    /// Starts sealing `db` in the background.
    #[must_use]
    pub fn start(db: DatabaseConnection) -> Arc<Self> {
        let (stop, stopped) = watch::channel(());
        tokio::spawn(run(db, stopped));
        Arc::new(Self { _stop: stop })
    }
}

async fn run(db: DatabaseConnection, mut stopped: watch::Receiver<()>) {
    loop {
        // Registered before the pass, so a commit during the pass is not missed.
        let woken = WRITTEN.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let pause = match seal(&db).await {
            Ok(0) => None,
            Ok(_) => Some(GATHER),
            Err(err) => {
                tracing::error!(error = %err, "sealing the audit log and change feed failed");
                Some(RETRY)
            }
        };
        let wait = async {
            match pause {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        };
        tokio::select! {
            () = wait => {}
            _ = stopped.changed() => return,
        }
    }
}
