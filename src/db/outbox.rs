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
//!
//! A row that cannot be sealed (it does not parse, or the database refuses
//! its entry) must not hold up every row behind it: it is set aside in the
//! outbox with the reason, reported at error level and by `dostup log
//! verify`, and put back in line by `dostup log requeue`; it is numbered
//! when it is sealed, after the rows that passed it. A row this release
//! cannot parse is left in line for a while first, as during a rolling
//! upgrade a replica of the other release may be able to.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QuerySelect, RuntimeErr,
};
use tokio::sync::{Notify, watch};

use super::audit_log::Unsealed;
use super::changes::Unnumbered;
use super::entity::outbox;
use super::{DbError, now};

/// Rows moved per pass.
pub(super) const BATCH: u64 = 500;

/// How long a row that does not parse stays in line before it is set
/// aside: during a rolling upgrade a replica of the other release may read
/// what this one cannot, and seals it meanwhile.
const UNREADABLE_GRACE: Duration = Duration::from_secs(600);

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
    let row = Row::new(entry, change)?;
    let row = outbox::ActiveModel {
        id: NotSet,
        entry: Set(row.entry),
        change: Set(row.change),
        created_at: Set(row.created_at),
        failure: NotSet,
    };
    outbox::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// The columns of a new outbox row, whichever driver writes it.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) entry: Option<String>,
    pub(super) change: Option<String>,
    pub(super) created_at: chrono::DateTime<chrono::Utc>,
}

impl Row {
    /// Serialises a log entry and a change, either or both.
    ///
    /// # Errors
    /// One of them does not serialise (a bug: they are plain data).
    pub(super) fn new(
        entry: Option<Unsealed>,
        change: Option<Unnumbered>,
    ) -> Result<Self, DbError> {
        let text = |value: Result<String, serde_json::Error>| {
            value.map_err(|e| DbError::Other(sea_orm::DbErr::Custom(format!("outbox row: {e}"))))
        };
        Ok(Self {
            entry: entry.map(|e| text(serde_json::to_string(&e))).transpose()?,
            change: change
                .map(|c| text(serde_json::to_string(&c)))
                .transpose()?,
            created_at: now(),
        })
    }
}

/// One sealing pass: moves up to [`BATCH`] committed outbox rows into the
/// log and the feed; returns how many rows it took out of line, sealed or
/// set aside (a row that does not parse stays in line for
/// [`UNREADABLE_GRACE`], then is set aside).
///
/// # Errors
/// Database failure; nothing is moved then.
pub async fn seal(db: &DatabaseConnection) -> Result<usize, DbError> {
    seal_rows(db, None).await
}

/// A sealing pass over the oldest [`BATCH`] waiting rows, or over row `only`.
async fn seal_rows(db: &DatabaseConnection, only: Option<i64>) -> Result<usize, DbError> {
    let owned = db.clone();
    super::on_writer(db, async move {
        match super::embedded::of(&owned) {
            Some(embedded) => embedded.seal(only).await,
            None => seal_pass(&owned, only).await,
        }
    })
    .await
}

async fn seal_pass(db: &DatabaseConnection, only: Option<i64>) -> Result<usize, DbError> {
    let write = super::begin_write(db).await?;
    let txn = &*write;
    super::take_order_lock(txn).await?;
    // Taking the rows out first makes the pass's first statement a write,
    // so SQLite grants the write lock at once instead of upgrading a read.
    let mut oldest = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .and_where(outbox::Column::Failure.is_null())
        .order_by(outbox::Column::Id, Order::Asc)
        .limit(BATCH)
        .to_owned();
    if let Some(id) = only {
        oldest.and_where(outbox::Column::Id.eq(id));
    }
    let rows = outbox::Entity::delete_many()
        .filter(outbox::Column::Id.in_subquery(oldest))
        .exec_with_returning(txn)
        .await?;
    if rows.is_empty() {
        write.rollback().await?;
        return Ok(0);
    }
    let sorted = Sorted::out(rows);
    if !sorted.back.is_empty() {
        // Back in the outbox under the same number.
        outbox::Entity::insert_many(sorted.back.into_iter().map(outbox::ActiveModel::from))
            .exec_without_returning(txn)
            .await?;
    }
    super::audit_log::seal(txn, sorted.entries).await?;
    super::changes::number(txn, sorted.changes).await?;
    write.commit().await?;
    Ok(sorted.done)
}

/// The rows a pass took out of the outbox, sorted out.
pub(super) struct Sorted {
    /// Log entries to chain, in outbox order.
    pub(super) entries: Vec<Unsealed>,
    /// Changes to number, in outbox order.
    pub(super) changes: Vec<Unnumbered>,
    /// Rows that go back into the outbox: set aside, or still in line.
    pub(super) back: Vec<outbox::Model>,
    /// Rows taken out of line: sealed or set aside.
    pub(super) done: usize,
}

impl Sorted {
    /// Reads every row: a row that does not parse goes back, in line for
    /// [`UNREADABLE_GRACE`] after it was written, set aside after that.
    pub(super) fn out(mut rows: Vec<outbox::Model>) -> Self {
        rows.sort_unstable_by_key(|r| r.id);
        let mut sorted = Self {
            entries: Vec::with_capacity(rows.len()),
            changes: Vec::with_capacity(rows.len()),
            back: Vec::new(),
            done: rows.len(),
        };
        let set_aside_before = now() - UNREADABLE_GRACE;
        for row in rows {
            match read(&row) {
                Ok((entry, change)) => {
                    sorted.entries.extend(entry);
                    sorted.changes.extend(change);
                }
                Err(failure) if row.created_at < set_aside_before => {
                    tracing::error!(
                        row = row.id,
                        %failure,
                        "an outbox row cannot be read and is set aside; its log entry and change \
                         stay out of the log and the feed until `dostup log requeue`"
                    );
                    sorted.back.push(outbox::Model {
                        failure: Some(failure),
                        ..row
                    });
                }
                Err(failure) => {
                    tracing::warn!(
                        row = row.id,
                        %failure,
                        "an outbox row cannot be read by this release; it stays in line for one \
                         that can, and is set aside if none does"
                    );
                    sorted.back.push(row);
                    sorted.done -= 1;
                }
            }
        }
        sorted
    }
}

/// The log entry and the change of an outbox row, or why they cannot be read.
fn read(row: &outbox::Model) -> Result<(Option<Unsealed>, Option<Unnumbered>), String> {
    Ok((
        parse(row.entry.as_deref(), "log entry")?,
        parse(row.change.as_deref(), "change")?,
    ))
}

fn parse<T: serde::de::DeserializeOwned>(
    text: Option<&str>,
    what: &str,
) -> Result<Option<T>, String> {
    text.map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("unreadable {what}: {e}"))
}

/// The numbers of the oldest and the newest rows waiting in line.
async fn waiting_range(db: &DatabaseConnection) -> Result<Option<(i64, i64)>, DbError> {
    let (oldest, newest): (Option<i64>, Option<i64>) = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.min(), "oldest")
        .column_as(outbox::Column::Id.max(), "newest")
        .filter(outbox::Column::Failure.is_null())
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or_default();
    Ok(oldest.zip(newest))
}

/// Seals everything committed before the call, so that a reader sees its
/// own writes. Rows committed meanwhile are left to the sealer, so a reader
/// never chases a steady stream of writes. Cheap when the outbox is empty:
/// one indexed read.
///
/// # Errors
/// Database failure.
pub async fn flush(db: &DatabaseConnection) -> Result<(), DbError> {
    let Some((oldest, newest)) = waiting_range(db).await? else {
        return Ok(());
    };
    // Enough passes for every row numbered up to `newest`, and one more.
    let passes = (newest - oldest) / i64::try_from(BATCH).unwrap_or(i64::MAX) + 2;
    for _ in 0..passes {
        if seal(db).await? == 0 {
            break;
        }
        match waiting_range(db).await? {
            Some((oldest, _)) if oldest <= newest => {}
            _ => break,
        }
    }
    Ok(())
}

/// [`flush`] before a read of the log or the feed. A failure is logged and
/// the read goes on: it may then miss the newest writes, which the
/// background sealer numbers moments later.
pub(super) async fn flush_for_reading(db: &DatabaseConnection) {
    if let Err(err) = flush(db).await {
        tracing::warn!(error = %err, "sealing before a read failed");
    }
}

/// Sets outbox row `id` aside with the reason `failure`, so that the rows
/// behind it are sealed.
async fn set_aside(db: &DatabaseConnection, id: i64, failure: String) -> Result<(), DbError> {
    let row = Condition::all()
        .add(outbox::Column::Id.eq(id))
        .add(outbox::Column::Failure.is_null());
    set_failure(db, row, Some(failure)).await.map(drop)
}

/// Puts every row set aside back in line, oldest first, once the cause is
/// fixed (a newer release reads them, a column was widened); returns how
/// many. They are sealed after the entries already in the log.
///
/// # Errors
/// Database failure.
pub async fn requeue(db: &DatabaseConnection) -> Result<u64, DbError> {
    let set_aside = Condition::all().add(outbox::Column::Failure.is_not_null());
    set_failure(db, set_aside, None).await
}

/// Writes `failure` into the outbox rows matching `rows`; returns how many.
async fn set_failure(
    db: &DatabaseConnection,
    rows: Condition,
    failure: Option<String>,
) -> Result<u64, DbError> {
    let owned = db.clone();
    super::on_writer(db, async move {
        let write = super::begin_write(&owned).await?;
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::Failure, Expr::value(failure))
            .filter(rows)
            .exec(&*write)
            .await?;
        write.commit().await?;
        Ok(result.rows_affected)
    })
    .await
}

/// What the outbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Backlog {
    /// Rows waiting to be sealed.
    pub waiting: u64,
    /// Rows set aside because they could not be sealed; their actions are
    /// missing from the log and the feed until `dostup log requeue`.
    pub set_aside: u64,
}

/// Counts what the outbox holds.
///
/// # Errors
/// Database failure.
pub async fn backlog(db: &DatabaseConnection) -> Result<Backlog, DbError> {
    // COUNT(failure) counts the rows that have one: those set aside.
    let (rows, set_aside): (i64, i64) = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.count(), "rows")
        .column_as(outbox::Column::Failure.count(), "set_aside")
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or_default();
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(Backlog {
        waiting: count(rows - set_aside),
        set_aside: count(set_aside),
    })
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
                recover(&db).await;
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

/// After a failed pass, seals row by row. A row the database refuses for
/// what it holds (a value too long or out of range, a broken constraint) is
/// set aside, so that the rows behind it move on, and stays in the outbox
/// for `dostup log requeue`. Any other failure (the database is away, a
/// permission, a missing head row) holds every row alike, so the sealer
/// stops and tries again later, and nothing is set aside.
async fn recover(db: &DatabaseConnection) {
    for _ in 0..BATCH {
        let Ok(Some((id, _))) = waiting_range(db).await else {
            return;
        };
        let err = match seal_rows(db, Some(id)).await {
            Ok(_) => continue,
            Err(err) => err,
        };
        if !refused_for_its_data(db.get_database_backend(), &err) {
            return;
        }
        if let Err(failed) = set_aside(db, id, err.to_string()).await {
            tracing::warn!(row = id, error = %failed, "setting an outbox row aside failed");
            return;
        }
        tracing::error!(
            row = id,
            error = %err,
            "an outbox row the database refuses is set aside; its log entry and change stay \
             out of the log and the feed until `dostup log requeue`"
        );
    }
}

/// Whether the database refused a statement for the values it carried: on
/// PostgreSQL SQLSTATE classes 22 (data exception) and 23 (integrity
/// constraint), on SQLite the codes for a value too big, a broken
/// constraint and a datatype mismatch. Unique and foreign-key violations
/// are left out (they arrive as [`DbError::Conflict`] and
/// [`DbError::MissingReference`]): under the order lock they mean the
/// tables, not the row, are amiss.
fn refused_for_its_data(backend: DbBackend, err: &DbError) -> bool {
    if let DbError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) = err {
        return sqlite_refuses_data(failure.extended_code);
    }
    let DbError::Other(
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)),
    ) = err
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(err) = &**err else {
        return false;
    };
    let Some(code) = err.code() else {
        return false;
    };
    match backend {
        DbBackend::Postgres => code.starts_with("22") || code.starts_with("23"),
        _ => code.parse::<i32>().is_ok_and(sqlite_refuses_data),
    }
}

/// SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, in the low byte of
/// an extended result code.
fn sqlite_refuses_data(extended_code: i32) -> bool {
    matches!(extended_code & 0xff, 18..=20)
}
