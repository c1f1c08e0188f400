//! The embedded database's writer: one thread that runs every write of the
//! embedded path in batches, one transaction per batch (group commit).
//!
//! Writes used to run in place on the request's worker, each in its own
//! transaction, after waiting for the writers' turn. The turn passes in
//! arrival order, so under load it went to a request whose task still
//! waited for its worker, busy rendering another answer; the turn was then
//! owned and nobody wrote, and the cores idled (a fifth of the machine in a
//! load run of keyed writes, each three writes in the turn).
//!
//! Here writes queue for a thread that does nothing else. It takes every
//! write that has come in, runs each in a savepoint of one transaction,
//! commits once, asks for a checkpoint if it changed rows (see
//! [`Embedded::checkpoint_soon`]), and answers each request:
//! - a write whose statements fail (or panic) is rolled back to its
//!   savepoint and fails alone; the others go on;
//! - a failed commit fails every write of the batch, and nothing of it is
//!   written;
//! - a write whose request has gone (the client hung up) before it ran is
//!   not run, as a write still waiting for the turn was not, unless it
//!   completes what its request began (see [`Gone`]);
//! - after an error that makes SQLite roll back the whole transaction (a
//!   full disk, an I/O error), the batch stops and every write of it fails;
//! - one commit for many writes writes each page they share (the outbox's
//!   last page, the idempotency keys' newest) once to the write-ahead log.
//!
//! The thread holds the writers' turn (see [`crate::db::Write`]) for each
//! batch, so writes through sea-orm still take turns with it. When another
//! process holds SQLite's write lock (the command line, say), the thread
//! waits for it up to the busy timeout; requests wait for their answer
//! without holding a runtime worker.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::Embedded;
use crate::db::DbError;

/// Most writes in one transaction: a batch is what came in while the
/// previous one ran, so this bounds only a burst.
const BATCH: usize = 128;

type Panic = Box<dyn Any + Send>;
/// What a write's request gets back: its result, or its panic.
type Outcome<T> = Result<Result<T, DbError>, Panic>;

/// What becomes of a write whose request has gone before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gone {
    /// It is not run, as a write still waiting for the turn was not: the
    /// client retries, and the write runs then.
    Skip,
    /// It runs all the same: it completes what the request began (storing
    /// the response of a claimed `Idempotency-Key`, or freeing the key), so
    /// that the client's retry finds it done rather than in progress; or it
    /// is the sealer's own work, which no client waits for.
    Run,
}

/// Runs `work` in the next batch of writes to `db`; its statements are
/// committed with the batch. `work` runs on the writer thread with the
/// batch's connection, inside a transaction that it must neither begin nor
/// end. A panic in `work` is resumed in the caller.
///
/// # Errors
/// `work`'s error; or the commit's, and then nothing of `work` is written.
pub(super) async fn write<T, F>(db: Arc<Embedded>, gone: Gone, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Job {
        db,
        work: Box::new(Pending {
            work: Some(work),
            gone,
            outcome: None,
            reply,
        }),
    };
    if queue().send(job).is_err() {
        return Err(stopped());
    }
    match answer.await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => panic::resume_unwind(panic),
        Err(_) => Err(stopped()),
    }
}

/// One write waiting for the writer.
struct Job {
    db: Arc<Embedded>,
    work: Box<dyn Work>,
}

/// A write, whatever its result type.
trait Work: Send {
    /// Whether it is to run: its request still waits for it, or it runs
    /// regardless (see [`Gone`]).
    fn wanted(&self) -> bool;
    /// Runs its statements; whether they are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers its request once the batch is committed, or has failed.
    fn answer(self: Box<Self>, batch: Result<(), &DbError>);
}

struct Pending<T, F> {
    work: Option<F>,
    gone: Gone,
    outcome: Option<Outcome<T>>,
    reply: oneshot::Sender<Outcome<T>>,
}

impl<T, F> Work for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, DbError> + Send,
{
    fn wanted(&self) -> bool {
        self.gone == Gone::Run || !self.reply.is_closed()
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(conn)));
        let keep = matches!(outcome, Ok(Ok(_)));
        self.outcome = Some(outcome);
        keep
    }

    fn answer(self: Box<Self>, batch: Result<(), &DbError>) {
        let outcome = match (self.outcome, batch) {
            // Its own failure, whatever became of the batch.
            (Some(outcome @ (Ok(Err(_)) | Err(_))), _) => outcome,
            (Some(done), Ok(())) => done,
            (_, Err(err)) => Ok(Err(again(err))),
            (None, Ok(())) => Ok(Err(stopped())),
        };
        // Its request may have gone meanwhile; nothing was kept for it then
        // that it would not have kept itself.
        let _ = self.reply.send(outcome);
    }
}

/// The queue of the writer thread, which starts on first use and serves
/// every embedded database of the process for its life.
fn queue() -> &'static Sender<Job> {
    static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("dostup-sqlite-writer".to_owned())
            .spawn(move || serve(&receiver))
            .unwrap_or_else(|err| panic!("cannot start the SQLite writer thread: {err}"));
        sender
    })
}

fn serve(queue: &Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Only a bug in this module could panic here; the requests of the
        // batch then get an error, and the thread goes on serving.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| run_batch(batch)));
    }
}

/// Runs a batch: the writes to each database in one transaction, in the
/// order they came in.
fn run_batch(mut batch: Vec<Job>) {
    let _turn = crate::db::sqlite_turn_blocking();
    while let Some(first) = batch.first() {
        let db = Arc::clone(&first.db);
        let (same, rest): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| Arc::ptr_eq(&job.db, &db));
        batch = rest;
        let mut writes: Vec<Box<dyn Work>> = same
            .into_iter()
            .map(|job| job.work)
            .filter(|work| work.wanted())
            .collect();
        if writes.is_empty() {
            continue;
        }
        let done = db.with(|conn| commit(conn, &mut writes));
        if matches!(done, Ok(true)) {
            db.checkpoint_soon();
        }
        for work in writes {
            work.answer(done.as_ref().map(|_| ()));
        }
    }
}

/// Runs `writes` in one transaction on `conn` and commits it; whether the
/// commit changed any row (an empty sealing pass does not). A write alone
/// needs no savepoint: if it fails, the transaction is rolled back.
fn commit(conn: &mut Connection, writes: &mut [Box<dyn Work>]) -> Result<bool, DbError> {
    let changes = conn.total_changes();
    let mut txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let [work] = writes {
        if !work.run(&txn) {
            // Dropping the transaction without a commit rolls it back.
            return Ok(false);
        }
    } else {
        for work in writes {
            let savepoint = txn.savepoint()?;
            if work.run(&savepoint) {
                savepoint.commit()?;
            } else {
                // A savepoint dropped without a commit is rolled back.
                drop(savepoint);
            }
            // After some errors (a full disk, an I/O error, running out of
            // memory) SQLite rolls back the whole transaction instead of
            // the statement. The writes before are gone with it, and the
            // next savepoint would start a transaction of its own and
            // commit alone; the batch stops and fails instead.
            if txn.is_autocommit() {
                return Err(rolled_back());
            }
        }
    }
    txn.commit()?;
    Ok(conn.total_changes() != changes)
}

/// The failure of a batch, for each of its writes. It stays a database
/// failure: a constraint that fails at `COMMIT` is not a conflict of every
/// write in the batch.
fn again(err: &DbError) -> DbError {
    match err {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => failure(other.to_string()),
    }
}

fn rolled_back() -> DbError {
    failure("SQLite rolled back the batch's transaction after an error".to_owned())
}

fn stopped() -> DbError {
    failure("the embedded database's writer dropped this write".to_owned())
}

fn failure(message: String) -> DbError {
    DbError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(message),
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::task::Poll;

    use rusqlite::params;

    use super::*;

    /// A database file with a table of names and one with a deferred
    /// foreign key, which fails only at `COMMIT`.
    pub(in crate::db::embedded) fn database() -> (tempfile::TempDir, Arc<Embedded>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE names (name TEXT PRIMARY KEY);
             CREATE TABLE refs (name TEXT REFERENCES names (name) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let db = Arc::new(Embedded {
            path,
            idle: Mutex::new(Vec::new()),
            checkpoints: super::super::Checkpoints::default(),
        });
        (dir, db)
    }

    fn insert(db: &Arc<Embedded>, name: &'static str) -> impl Future<Output = Result<(), DbError>> {
        write(Arc::clone(db), Gone::Skip, move |conn| {
            conn.execute("INSERT INTO names (name) VALUES (?1)", params![name])?;
            Ok(())
        })
    }

    fn names(db: &Embedded) -> Vec<String> {
        db.with(|conn| {
            let mut query = conn.prepare("SELECT name FROM names ORDER BY name")?;
            let names = query
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(names)
        })
        .unwrap()
    }

    /// Occupies the writer thread until the returned sender is used (or
    /// dropped), so that the writes queued meanwhile make one batch.
    async fn hold_writer(db: &Arc<Embedded>) -> (std::sync::mpsc::Sender<()>, impl Future) {
        let (started, running) = oneshot::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let gate = tokio::spawn(write(Arc::clone(db), Gone::Skip, move |_| {
            let _ = started.send(());
            let _ = wait.recv();
            Ok(())
        }));
        running.await.unwrap();
        (go, gate)
    }

    /// Polls `write` once, which puts it in the writer's queue.
    async fn queue<F: Future>(mut write: Pin<&mut F>) {
        std::future::poll_fn(|cx| {
            assert!(
                write.as_mut().poll(cx).is_pending(),
                "a write ran while the writer was held"
            );
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_and_the_rest_of_its_batch_is_committed() {
        let (_dir, db) = database();
        let (go, gate) = hold_writer(&db).await;
        let mut first = pin!(insert(&db, "first"));
        let mut conflict = pin!(write(Arc::clone(&db), Gone::Skip, |conn| {
            conn.execute("INSERT INTO names (name) VALUES ('half')", [])?;
            conn.execute("INSERT INTO names (name) VALUES ('first')", [])?;
            Ok(())
        }));
        let mut panics = Box::pin(write(
            Arc::clone(&db),
            Gone::Skip,
            |conn| -> Result<(), DbError> {
                conn.execute("INSERT INTO names (name) VALUES ('before the panic')", [])?;
                panic!("a bug in a write");
            },
        ));
        let outside = db.open().unwrap();
        let mut last = pin!(write(Arc::clone(&db), Gone::Skip, move |conn| {
            // One transaction: the batch's first write is not committed yet.
            let seen: i64 = outside
                .query_row("SELECT count(*) FROM names", [], |row| row.get(0))
                .unwrap();
            assert_eq!(seen, 0, "a write of the batch committed on its own");
            conn.execute("INSERT INTO names (name) VALUES ('last')", [])?;
            Ok(())
        }));
        queue(first.as_mut()).await;
        queue(conflict.as_mut()).await;
        queue(panics.as_mut()).await;
        queue(last.as_mut()).await;
        go.send(()).unwrap();
        gate.await;

        first.await.unwrap();
        assert!(
            matches!(conflict.await, Err(DbError::Conflict(_))),
            "a unique violation is a conflict"
        );
        let panicked = tokio::spawn(panics).await;
        assert!(
            panicked.unwrap_err().is_panic(),
            "the panic reaches its caller"
        );
        last.await.unwrap();
        // The failing writes left nothing behind, not even their first
        // statements; the others are there.
        assert_eq!(names(&db), ["first", "last"]);
        // The writer goes on after a panic.
        insert(&db, "after").await.unwrap();
        assert_eq!(names(&db), ["after", "first", "last"]);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_write_of_its_batch() {
        let (_dir, db) = database();
        let (go, gate) = hold_writer(&db).await;
        let mut fine = pin!(insert(&db, "fine"));
        // Accepted by its statement; the deferred key fails the commit.
        let mut dangling = pin!(write(Arc::clone(&db), Gone::Skip, |conn| {
            conn.execute("INSERT INTO refs (name) VALUES ('nobody')", [])?;
            Ok(())
        }));
        queue(fine.as_mut()).await;
        queue(dangling.as_mut()).await;
        go.send(()).unwrap();
        gate.await;

        let (fine, dangling) = (fine.await, dangling.await);
        assert!(
            fine.is_err(),
            "a write committed with a failed batch: {fine:?}"
        );
        assert!(dangling.is_err());
        assert!(
            names(&db).is_empty(),
            "nothing of a failed batch is written"
        );
        let (pooled, in_transaction) = {
            let idle = db.idle.lock().unwrap();
            (idle.len(), idle.iter().any(|conn| !conn.is_autocommit()))
        };
        assert!(pooled > 0, "the batch's connection went back to the pool");
        assert!(
            !in_transaction,
            "a pooled connection is inside a transaction"
        );
        // The connection is usable again, outside any transaction.
        insert(&db, "next").await.unwrap();
        assert_eq!(names(&db), ["next"]);
    }

    #[tokio::test]
    async fn a_batch_that_sqlite_rolls_back_entirely_fails_as_a_whole() {
        let (_dir, db) = database();
        let (go, gate) = hold_writer(&db).await;
        let mut before = pin!(insert(&db, "before"));
        // An interrupted insert inside a transaction makes SQLite roll back
        // the whole transaction, as a full disk or an I/O error may.
        let mut interrupted = pin!(write(Arc::clone(&db), Gone::Skip, |conn| {
            // Long enough to be interrupted: it would insert a billion rows.
            // Prepared before the interruptions start: one that lands while the
            // statement is parsed fails it before it runs, and rolls nothing back.
            let mut statement = conn.prepare(
                "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                 WHERE i < 1000000000) INSERT INTO names (name) SELECT 'n' || i FROM n",
            )?;
            let handle = conn.get_interrupt_handle();
            let done = Arc::new(AtomicBool::new(false));
            let interrupter = std::thread::spawn({
                let done = Arc::clone(&done);
                move || {
                    while !done.load(std::sync::atomic::Ordering::Acquire) {
                        handle.interrupt();
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                }
            });
            let inserted = statement.execute([]);
            done.store(true, std::sync::atomic::Ordering::Release);
            interrupter.join().unwrap();
            inserted?;
            Ok(())
        }));
        let mut after = pin!(insert(&db, "after"));
        queue(before.as_mut()).await;
        queue(interrupted.as_mut()).await;
        queue(after.as_mut()).await;
        go.send(()).unwrap();
        gate.await;

        let (before, interrupted, after) = (before.await, interrupted.await, after.await);
        assert!(
            matches!(&interrupted, Err(DbError::Sqlite(err)) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)),
            "{interrupted:?}"
        );
        // The transaction is gone with the writes before: the batch fails,
        // and no write after commits on its own.
        assert!(before.is_err(), "{before:?}");
        assert!(after.is_err(), "{after:?}");
        assert!(names(&db).is_empty(), "{:?}", names(&db));
        insert(&db, "next").await.unwrap();
        assert_eq!(names(&db), ["next"]);
    }

    #[tokio::test]
    async fn a_write_that_completes_its_request_runs_after_the_request_has_gone() {
        let (_dir, db) = database();
        let (go, gate) = hold_writer(&db).await;
        let mut completes = Box::pin(write(Arc::clone(&db), Gone::Run, |conn| {
            conn.execute("INSERT INTO names (name) VALUES ('completed')", [])?;
            Ok(())
        }));
        queue(completes.as_mut()).await;
        drop(completes);
        go.send(()).unwrap();
        gate.await;

        insert(&db, "next").await.unwrap();
        assert_eq!(names(&db), ["completed", "next"]);
    }

    #[tokio::test]
    async fn a_write_whose_request_has_gone_is_not_run() {
        let (_dir, db) = database();
        let (go, gate) = hold_writer(&db).await;
        let mut gone = Box::pin(insert(&db, "gone"));
        queue(gone.as_mut()).await;
        drop(gone);
        let mut kept = pin!(insert(&db, "kept"));
        queue(kept.as_mut()).await;
        go.send(()).unwrap();
        gate.await;

        kept.await.unwrap();
        assert_eq!(names(&db), ["kept"]);
    }
}
