//! Persistence: connection, migrations, and repository functions over the
//! sea-orm entities. Everything above this module sees domain values and
//! [`DbError`], never raw SQL errors: unique-constraint violations become
//! [`DbError::Conflict`] here, at the repository boundary.

pub mod audit_log;
pub mod audits;
mod batches;
pub mod catalog;
pub mod changes;
pub mod directory;
mod embedded;
pub mod entity;
pub mod idempotency;
pub mod outbox;
pub mod photos;
pub mod rating;
pub mod recent;
pub mod review;
mod scope;
pub mod tokens;
pub mod users;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dostup_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseExecutor, DatabaseTransaction, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    ModelTrait, RuntimeErr, SqlErr, Statement, TransactionTrait, sqlx,
};

/// Repository errors, small on purpose: callers decide what they mean.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint would be violated (duplicate email, tax id …).
    #[error("conflicts with an existing record: {0}")]
    Conflict(String),
    /// A referenced record (region, organisation, institution) does not exist.
    #[error("refers to a record that does not exist: {0}")]
    MissingReference(String),
    /// Anything else the database reported.
    #[error(transparent)]
    Other(DbErr),
    /// Anything else the embedded path's own SQLite connections reported
    /// (see [`embedded`]).
    #[error("SQLite: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl DbError {
    /// True when the database could not be reached or cut the connection
    /// (pool timeout, broken socket, server shutting down or restarting):
    /// nothing is wrong with the request, which may succeed when tried
    /// again.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Other(err) if unavailable(err))
    }

    /// True when the database refused a value of the request itself: text
    /// holding a character it cannot store (U+0000: SQLSTATE 22021, or
    /// 22P05 in JSON), a value too long for its column (22001) or for an
    /// index entry (54000). The request's checks should have refused it
    /// first; this is the net for one they miss.
    pub fn is_unstorable_value(&self) -> bool {
        match self {
            Self::Other(err) => match sqlx_error(err) {
                Some(sqlx::Error::Database(db)) => db
                    .code()
                    .is_some_and(|code| matches!(&*code, "22021" | "22P05" | "22001" | "54000")),
                _ => false,
            },
            _ => false,
        }
    }
}

/// The driver's error under `err`, if it is one.
fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(err))
        | DbErr::Exec(RuntimeErr::SqlxError(err))
        | DbErr::Query(RuntimeErr::SqlxError(err)) => Some(err),
        _ => None,
    }
}

/// See [`DbError::is_unavailable`].
fn unavailable(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(_)) {
        return true;
    }
    let Some(err) = sqlx_error(err) else {
        return false;
    };
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception) and 57P (the server
        // shutting down or restarting, or the session terminated).
        // A protocol violation (08P01) is a bug, not an outage.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            (code.starts_with("08") && code != "08P01") || code.starts_with("57P")
        }),
        _ => false,
    }
}

impl From<DbErr> for DbError {
    fn from(err: DbErr) -> Self {
        note_if_unavailable(&err);
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) => Self::Conflict(msg),
            Some(SqlErr::ForeignKeyConstraintViolation(msg)) => Self::MissingReference(msg),
            _ => Self::Other(err),
        }
    }
}

/// A pooled connection idle this long is pinged before it is handed out
/// (see [`ping_if_in_doubt`]).
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// For this long after a query found the database unavailable, every
/// pooled connection is pinged before it is handed out: a restart or a
/// failover cuts them all, and each would otherwise fail one request.
const PING_ALL_AFTER_UNAVAILABLE: Duration = Duration::from_secs(10);

/// When a query last found the database unavailable, as [`clock_millis`]
/// read then; 0 if none has.
static UNAVAILABLE_AT: AtomicU64 = AtomicU64::new(0);

/// Milliseconds on a monotonic clock that reads 1 at its first call, so
/// that 0 can mean "never".
fn clock_millis() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).map_or(u64::MAX, |ms| ms.saturating_add(1))
}

/// Opens the window of [`PING_ALL_AFTER_UNAVAILABLE`] if `err` says the
/// database is unavailable.
fn note_if_unavailable(err: &DbErr) {
    if unavailable(err) {
        UNAVAILABLE_AT.store(clock_millis(), Ordering::Relaxed);
    }
}

/// True within [`PING_ALL_AFTER_UNAVAILABLE`] after a query found the
/// database unavailable.
fn unavailable_lately() -> bool {
    match UNAVAILABLE_AT.load(Ordering::Relaxed) {
        0 => false,
        at => Duration::from_millis(clock_millis().saturating_sub(at)) < PING_ALL_AFTER_UNAVAILABLE,
    }
}

/// Pings a pooled connection before it is handed out if it sat idle for
/// [`PING_AFTER_IDLE`] or the database was unavailable moments ago; a
/// connection that fails the ping is replaced. The pool's default pings
/// on every checkout, which costs each query a round trip to the server
/// (about 5 % of the service's and of PostgreSQL's CPU on a `PATCH
/// answers`). A connection in steady use is known to work; one cut off
/// anyway fails its query with `database-unavailable` (503), which clients
/// retry. A connection lost without a word (a partition, no reset) is not
/// caught by this: its query waits for the operating system to give up.
fn ping_if_in_doubt<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    let in_doubt = meta.idle_for >= PING_AFTER_IDLE || unavailable_lately();
    Box::pin(async move {
        if in_doubt {
            conn.ping().await?;
        }
        Ok(true)
    })
}

/// When a pooled connection is tested with a round trip before a query
/// uses it (`DOSTUP_DATABASE_PING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabasePing {
    /// Before every query: a connection the database or the network lost,
    /// even without a word, is found and replaced within the acquire
    /// timeout. The default.
    Always,
    /// Only when in doubt (see [`ping_if_in_doubt`]): saves a round trip
    /// per query, but a connection lost without a reset (a partition, a
    /// failover to another host) holds the query that meets it until the
    /// operating system gives up on the connection.
    WhenInDoubt,
}

impl std::str::FromStr for DatabasePing {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "always" => Ok(Self::Always),
            "when-in-doubt" => Ok(Self::WhenInDoubt),
            other => Err(format!("`{other}`: expected `always` or `when-in-doubt`")),
        }
    }
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`),
/// testing pooled PostgreSQL connections before every query.
///
/// # Errors
/// The database cannot be reached or opened.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, DatabasePing::Always).await
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`).
///
/// SQLite runs in WAL mode with a busy timeout and foreign keys on, so that
/// readers do not block the single writer and constraints hold as on
/// PostgreSQL.
///
/// # Errors
/// The database cannot be reached or opened.
pub async fn connect_with(url: &str, ping: DatabasePing) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's model; a small pool avoids lock
        // churn. A local file has no connection to lose: none is tested.
        options.max_connections(8).test_before_acquire(false);
    } else {
        options.max_connections(32);
        if ping == DatabasePing::WhenInDoubt {
            options
                .test_before_acquire(false)
                .map_sqlx_postgres_before_acquire(ping_if_in_doubt);
        }
    }
    Database::connect(options).await
}

/// A write transaction. On SQLite only one runs at a time in the process,
/// and waiters are served in arrival order: SQLite has a single writer, and
/// queueing here instead of in SQLite's busy handler (growing sleeps, no
/// order) keeps the cores busy and the latency tail short. On PostgreSQL it
/// is a plain transaction.
pub struct Write {
    txn: DatabaseTransaction,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

/// The turn of SQLite writers; a second SQLite database in the same process
/// (tests) only shares the queue.
static SQLITE_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Begins a write transaction (see [`Write`]). Never call it while holding
/// another `Write`: on SQLite that would wait for itself.
///
/// # Errors
/// The database cannot begin a transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<Write, DbErr> {
    // The connection comes first: waiting for one from the pool (shared
    // with readers) while holding the turn would keep every writer waiting.
    // SQLite's `BEGIN` is deferred, so an open transaction waiting for its
    // turn holds no lock.
    let txn = db.begin().await?;
    let turn = if db.get_database_backend() == DbBackend::Sqlite {
        Some(SQLITE_WRITER.lock().await)
    } else {
        None
    };
    Ok(Write { txn, _turn: turn })
}

/// Runs `statement`, one write on its own. On SQLite it runs as a
/// [`Write`], so that it waits its turn like every other writer: in
/// autocommit it would take SQLite's write lock between two writers of the
/// queue, and the next one would wait for it in SQLite's busy handler, in
/// sleeps of milliseconds, while holding the turn. On PostgreSQL it runs
/// as it is.
///
/// # Errors
/// The statement's, or the commit's; nothing is written then.
pub(super) async fn write_alone<T>(
    db: &DatabaseConnection,
    statement: impl AsyncFnOnce(&DatabaseExecutor<'_>) -> Result<T, DbErr>,
) -> Result<T, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return statement(&db.into()).await;
    }
    let write = begin_write(db).await?;
    match statement(&(&write.txn).into()).await {
        // Committed without waking the sealer: these writes record nothing
        // in the outbox.
        Ok(done) => write.txn.commit().await.map(|()| done),
        // Rolled back before the turn passes on: dropped, the transaction
        // would hold SQLite's write lock until sqlx's thread got to it, and
        // the next writer would wait in the busy handler.
        Err(err) => {
            let _ = write.txn.rollback().await;
            Err(err)
        }
    }
}

/// Waits for the SQLite writers' turn on a thread outside the runtime: the
/// embedded path's writer thread takes it for each batch of writes (see
/// [`embedded`]).
pub(super) fn sqlite_turn_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SQLITE_WRITER.blocking_lock()
}

impl Write {
    /// Commits, then lets the next writer in and wakes the sealer (see
    /// [`outbox`]) for what the transaction recorded.
    ///
    /// # Errors
    /// The commit failed; nothing was written.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        outbox::written();
        Ok(())
    }

    /// Rolls back, then lets the next writer in.
    ///
    /// # Errors
    /// The database failed to roll back (the transaction ends anyway).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl std::ops::Deref for Write {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Runs `work`, a future holding a write transaction from start to commit,
/// where the transaction is shortest. On SQLite that is a thread of its own:
/// the single writer holds the database's write lock across every statement
/// of its transaction, and each statement is a hand-off to the connection's
/// thread and back. On the request workers each hand-off would wait behind
/// whatever other requests are doing (rendering answers, say), and every
/// writer queued behind the lock would wait with it; on the writer thread
/// it is picked up at once. On PostgreSQL, where writers do not queue on one
/// lock, `work` runs in place.
///
/// A panic in `work` is resumed in the caller.
pub async fn on_writer<T: Send + 'static>(
    db: &DatabaseConnection,
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    if db.get_database_backend() != DbBackend::Sqlite {
        return work.await;
    }
    match writer_thread().spawn(work).await {
        Ok(value) => value,
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // The writer's runtime never shuts down, so its tasks are never cancelled.
            Err(err) => unreachable!("the SQLite writer thread dropped a task: {err}"),
        },
    }
}

/// The runtime of the SQLite writer thread, started on first use and kept
/// for the life of the process.
fn writer_thread() -> &'static tokio::runtime::Handle {
    static WRITER: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    WRITER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("dostup-writer")
            .build()
            .unwrap_or_else(|err| panic!("cannot start the SQLite writer thread: {err}"));
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("dostup-writer".to_owned())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .unwrap_or_else(|err| panic!("cannot start the SQLite writer thread: {err}"));
        handle
    })
}

/// Advisory lock key that serialises sealing passes of the change feed and
/// the audit log on PostgreSQL, across replicas ("changes" in ASCII).
const ORDER_LOCK: i64 = 0x0063_6861_6e67_6573;

/// Takes [`ORDER_LOCK`] until the end of the transaction (PostgreSQL; on
/// SQLite the single writer orders passes already).
///
/// # Errors
/// Database failure.
pub(crate) async fn take_order_lock<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({ORDER_LOCK})"))
            .await?;
    }
    Ok(())
}

/// Inserts `rows` into `table`: on PostgreSQL as one statement of one shape
/// whatever their number, the rows passed as a JSON array that
/// `json_populate_recordset` turns into the table's rows (the fields named
/// as its columns); elsewhere as a multi-row `VALUES`. A multi-row `VALUES`
/// is a statement of its own for each number of rows: each was parsed and
/// planned, and kept prepared by the connection that ran it (sqlx keeps a
/// hundred per connection), so a sealing pass of hundreds of rows left
/// megabytes in a PostgreSQL session, every pass of another size more.
///
/// # Errors
/// Database failure.
pub(crate) async fn insert_rows<C, E, A, M>(txn: &C, rows: Vec<M>) -> Result<(), DbErr>
where
    C: ConnectionTrait,
    E: EntityTrait<Model = M, ActiveModel = A>,
    A: ActiveModelTrait<Entity = E> + From<M> + Send,
    M: ModelTrait<Entity = E> + serde::Serialize,
{
    if rows.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() != DbBackend::Postgres {
        E::insert_many(rows.into_iter().map(A::from))
            .exec_without_returning(txn)
            .await?;
        return Ok(());
    }
    let table = E::default().table_name().to_owned();
    // The model's columns, named: a column the table has beyond them (one
    // a later release added) gets its default, as with `insert_many`, where
    // `json_populate_recordset` would give it null.
    let columns = E::Column::iter()
        .map(|column| format!("\"{}\"", column.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let json = serde_json::to_string(&rows).map_err(|err| DbErr::Custom(err.to_string()))?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "INSERT INTO \"{table}\" ({columns}) SELECT {columns} \
             FROM json_populate_recordset(NULL::\"{table}\", $1::json)"
        ),
        [json.into()],
    ))
    .await?;
    Ok(())
}

/// Applies every pending migration.
///
/// # Errors
/// A migration failed; nothing after it ran.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    apply_migrations(db).await?;
    audit_log::ensure_head(db).await
}

async fn apply_migrations(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    // Replicas start together: one migrates while the others wait on the
    // advisory lock, then find nothing left to do. The lock lives in a
    // transaction on its own pooled connection and ends with it.
    let guard = db.begin().await?;
    guard
        .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    let result = Migrator::up(db, None).await;
    guard.commit().await?;
    result
}

/// Advisory lock key serialising migrations across replicas ("dostup" in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_646f_7374_7570;

/// Lists applied and pending migrations as `(name, applied)`.
///
/// # Errors
/// The migration table cannot be read.
pub async fn migration_status(db: &DatabaseConnection) -> Result<Vec<(String, bool)>, DbErr> {
    let applied: std::collections::HashSet<String> = Migrator::get_applied_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Ok(Migrator::migrations()
        .iter()
        .map(|m| (m.name().to_owned(), applied.contains(m.name())))
        .collect())
}

/// Cheap round trip used by the readiness probe.
///
/// # Errors
/// The database does not answer.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(|_| ())
        .inspect_err(note_if_unavailable)
}

/// Current time, truncated to microseconds so that values read back from
/// either backend compare equal to what was written.
#[must_use]
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Keyset pagination over time-ordered UUIDv7 ids: rows after `after`, at
/// most `limit` of them. Stable under concurrent inserts, unlike offsets.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<uuid::Uuid>,
    pub limit: u64,
}

/// One page of rows and the id to continue after, if there is more.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<uuid::Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only tells
    /// that another page exists.
    pub(crate) fn from_overfetch(
        mut rows: Vec<T>,
        limit: u64,
        id: impl Fn(&T) -> uuid::Uuid,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&id)
        } else {
            None
        };
        Self {
            items: rows,
            next_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sea_orm::{IdenStatic, Iterable};

    use super::entity::{audit_log, change};

    /// The keys of `model` as JSON, sorted.
    fn fields<M: serde::Serialize>(model: &M) -> Vec<String> {
        let json = serde_json::to_value(model).expect("a model serialises");
        let mut keys: Vec<String> = json
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn columns<C: Iterable + IdenStatic>() -> Vec<String> {
        let mut names: Vec<String> = C::iter().map(|c| c.as_str().to_owned()).collect();
        names.sort();
        names
    }

    /// [`super::insert_rows`] hands PostgreSQL each row as a JSON object
    /// that `json_populate_recordset` reads by column name: a field named
    /// otherwise than its column would be inserted as null.
    #[test]
    fn rows_inserted_as_json_are_named_as_their_columns() {
        let entry = audit_log::Model {
            seq: 1,
            at: Utc::now(),
            actor_id: None,
            actor_role: None,
            action: "audit.answered".to_owned(),
            target_type: "audit".to_owned(),
            target_id: "a".to_owned(),
            region_code: None,
            sector: None,
            before_digest: None,
            after_digest: None,
            detail: "{}".to_owned(),
            request_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert_eq!(fields(&entry), columns::<audit_log::Column>());
        let change = change::Model {
            seq: 1,
            kind: "audit.updated".to_owned(),
            audit_id: None,
            owner_id: None,
            organisation_id: None,
            region_code: None,
            sector: None,
            audit_status: None,
            payload: "{}".to_owned(),
            created_at: Utc::now(),
        };
        assert_eq!(fields(&change), columns::<change::Column>());
    }
}
