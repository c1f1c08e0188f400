//! On PostgreSQL, writes of one kind that come in while others of that
//! kind are being made go to the database together: one statement and one
//! commit for the lot (group commit), as the embedded database's writer
//! does on SQLite. Two kinds are batched: answer writes ([`answers`]) and
//! claims of `Idempotency-Key`s ([`claims`]), which every keyed request
//! makes before its handler runs.
//!
//! Each write on its own was one statement in autocommit: a round trip, a
//! plan, a transaction and a WAL flush each, and a pool checkout with its
//! release test. With PostgreSQL, the service and the load generator on the
//! same two cores, those were most of the database's CPU per write, not the
//! rows. Here, per kind, database and process, one batch runs at a time
//! (a batch of claims and one of answers may run together); writes that
//! come in meanwhile wait for it, then go in the next one. A write alone
//! runs at once, as before. (Two batches of answers under way at once made
//! no clear difference in load runs; one is simpler.)
//!
//! What every kind keeps:
//! - each write keeps the conditions it had on its own, and its outcome is
//!   its own: a batch is a way to send writes, not a transaction the
//!   writes depend on each other in;
//! - two writes of one row never share a batch: the later one goes in the
//!   next, where it finds the row as the first left it. The rows of a
//!   batch are taken in one order, whichever way its writes came in;
//! - a batch that gets no answer within [`Kind::TIMEOUT`] fails, so a lost
//!   connection cannot hold every write of its kind in the process. Its
//!   statement may still be made after that, as one cut off by an outage
//!   may: each kind says what becomes of its writes then;
//! - a write whose client has hung up before its batch starts is not made,
//!   unless its kind says it must be (see [`Kind::made_for_a_request_gone`]);
//!   one whose client hangs up while its batch runs is made, and its kind
//!   may undo what nobody will use (see [`Kind::undelivered`]).
//!
//! A statement that fails fails every write of its batch, and nothing of
//! it is written: with 503 for each if the database was unavailable, with
//! 500 otherwise.

pub(super) mod answers;
pub(super) mod claims;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::{DatabaseConnection, DbErr, RuntimeErr};
use tokio::sync::oneshot;

use super::DbError;

/// Most bytes of writes in one statement.
const BATCH_BYTES: usize = 8 << 20;

/// How long a batch may take before its writes are answered as if the
/// connection had been cut: a connection lost without a reset would
/// otherwise hold every write of its kind in the process until the
/// operating system gives up on it, minutes.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A kind of write made in batches.
pub(super) trait Kind: Sized + 'static {
    /// One write.
    type Job: Send + 'static;
    /// What became of one write.
    type Outcome: Send + 'static;
    /// What no two writes of one batch share: the row they write. Batches
    /// take their rows in its order.
    type Row: Ord + Send;
    /// What a batch of this kind makes, for messages: "answer writes".
    const WHAT: &'static str;
    /// Most writes in one statement: a batch is what came in while the
    /// previous one ran, so this bounds only a burst.
    const MOST: usize = 128;
    /// How long a batch may take (see [`BATCH_TIMEOUT`]).
    const TIMEOUT: Duration = BATCH_TIMEOUT;

    /// The queues of this kind, one per database.
    fn queues() -> &'static Queues<Self>;

    /// The row `job` writes.
    fn row(job: &Self::Job) -> Self::Row;

    /// About how many bytes `job` adds to a batch's statement.
    fn size(job: &Self::Job) -> usize;

    /// Whether `job` is made even when its request has gone before its
    /// batch starts.
    fn made_for_a_request_gone(job: &Self::Job) -> bool;

    /// Takes the outcome of a write whose request had gone by the time its
    /// batch answered, to undo what nobody will use; by default what was
    /// written for it stays written. It gets only the writes of a batch
    /// whose statement was made, and only those it could not answer; it
    /// runs after the batch has answered the others and before the next
    /// batch starts, within the batch's time.
    fn undelivered(
        _db: &DatabaseConnection,
        _outcome: Self::Outcome,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Makes `jobs`, sorted by their rows, in one statement: the outcome of
    /// each, in their order, one for every job.
    fn run(
        db: &DatabaseConnection,
        jobs: Vec<Self::Job>,
    ) -> impl Future<Output = Result<Vec<Result<Self::Outcome, DbError>>, sqlx::Error>> + Send;
}

/// A write waiting for its batch, and where its outcome goes.
struct Waiting<K: Kind> {
    job: K::Job,
    reply: oneshot::Sender<Result<K::Outcome, DbError>>,
}

/// The writes of one kind waiting for one database, and whether a batch
/// is running.
struct Queue<K: Kind> {
    waiting: Vec<Waiting<K>>,
    running: bool,
}

type Shared<K> = Arc<Mutex<Queue<K>>>;

/// The queues of one kind, by database.
pub(super) struct Queues<K: Kind>(Mutex<BTreeMap<String, Shared<K>>>);

impl<K: Kind> Queues<K> {
    pub(super) const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }
}

fn lock<K: Kind>(queue: &Shared<K>) -> MutexGuard<'_, Queue<K>> {
    // Nothing panics while holding it; a poisoned queue is still whole.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `job` in the next batch of its kind to `db` (PostgreSQL).
///
/// # Errors
/// The batch's statement failed; nothing of it was written.
pub(super) async fn make<K: Kind>(
    db: &DatabaseConnection,
    job: K::Job,
) -> Result<K::Outcome, DbError> {
    let queue = queue_of::<K>(db);
    let (reply, answer) = oneshot::channel();
    let start = {
        let mut waiting = lock(&queue);
        waiting.waiting.push(Waiting { job, reply });
        !std::mem::replace(&mut waiting.running, true)
    };
    if start {
        // The guard exists before the task is first polled, so a task
        // dropped unstarted (its runtime shutting down) still counts off.
        let running = Running {
            queue,
            armed: Cell::new(true),
        };
        tokio::spawn(drain(db.clone(), running));
    }
    answer.await.unwrap_or_else(|_| {
        Err(DbError::Other(DbErr::Custom(format!(
            "the batch of {} stopped before it was made",
            K::WHAT
        ))))
    })
}

/// The queue of kind `K` for the database `db` connects to; one per
/// database and process, shared by every pool connected to it.
fn queue_of<K: Kind>(db: &DatabaseConnection) -> Shared<K> {
    let options = db.get_postgres_connection_pool().connect_options();
    let name = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let mut queues = K::queues().0.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(queues.entry(name).or_insert_with(|| {
        Arc::new(Mutex::new(Queue {
            waiting: Vec::new(),
            running: false,
        }))
    }))
}

/// Clears `running` if the draining task ends before its queue is empty
/// (its runtime shut down), so that the next write starts another.
struct Running<K: Kind> {
    queue: Shared<K>,
    armed: Cell<bool>,
}

impl<K: Kind> Drop for Running<K> {
    fn drop(&mut self) {
        if self.armed.get() {
            lock(&self.queue).running = false;
        }
    }
}

/// Runs batches while writes are waiting.
async fn drain<K: Kind>(db: DatabaseConnection, running: Running<K>) {
    loop {
        let batch = {
            let mut queue = lock(&running.queue);
            let batch = take_batch(&mut queue.waiting);
            if batch.is_empty() {
                // Under the lock: a write queued after this starts a task.
                queue.running = false;
                running.armed.set(false);
                return;
            }
            batch
        };
        // A task of its own: a bug that panics fails only this batch's
        // requests (their replies are dropped), and the queue goes on.
        let _ = tokio::spawn(run(db.clone(), batch)).await;
    }
}

/// Takes the writes for the next batch out of `waiting`: at most
/// [`Kind::MOST`] and [`BATCH_BYTES`] (but always the first), at most one
/// per row, none whose request has gone unless its kind makes it all the
/// same; none only if no write is waiting.
fn take_batch<K: Kind>(waiting: &mut Vec<Waiting<K>>) -> Vec<Waiting<K>> {
    let mut rows = BTreeSet::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut later = Vec::new();
    for write in waiting.drain(..) {
        if write.reply.is_closed() && !K::made_for_a_request_gone(&write.job) {
            continue;
        }
        let size = K::size(&write.job);
        let fits = batch.is_empty() || (batch.len() < K::MOST && bytes + size <= BATCH_BYTES);
        if fits && rows.insert(K::row(&write.job)) {
            bytes += size;
            batch.push(write);
        } else {
            later.push(write);
        }
    }
    *waiting = later;
    batch
}

/// Runs one batch and answers each of its writes.
async fn run<K: Kind>(db: DatabaseConnection, mut batch: Vec<Waiting<K>>) {
    batch.sort_by_cached_key(|w| K::row(&w.job));
    let (jobs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|w| (w.job, w.reply)).unzip();
    let outcomes = tokio::time::timeout(K::TIMEOUT, K::run(&db, jobs))
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the batch of {} got no answer from the database in time",
                    K::WHAT
                ),
            )))
        });
    match outcomes {
        Ok(outcomes) => {
            debug_assert_eq!(outcomes.len(), replies.len(), "one outcome per write");
            // Those whose requests have gone meanwhile.
            let mut undelivered = Vec::new();
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                if let Err(Ok(outcome)) = reply.send(outcome) {
                    undelivered.push(outcome);
                }
            }
            let undo = async {
                for outcome in undelivered {
                    K::undelivered(&db, outcome).await;
                }
            };
            if tokio::time::timeout(K::TIMEOUT, undo).await.is_err() {
                tracing::warn!(
                    "undoing what a batch of {} made for requests gone meanwhile took too long",
                    K::WHAT
                );
            }
        }
        Err(err) => {
            let err = Arc::new(err);
            for reply in replies {
                let _ = reply.send(Err(again::<K>(&err)));
            }
        }
    }
}

/// The failure of a batch, for each of its writes. The database being
/// unavailable stays that (503 for each); anything else is a failure of the
/// batch (500), not a conflict of every write in it, which a keyed write
/// would store for replay.
fn again<K: Kind>(err: &Arc<sqlx::Error>) -> DbError {
    let shared = DbErr::Query(RuntimeErr::SqlxError(Arc::clone(err)));
    let again = DbError::from(shared);
    if again.is_unavailable() {
        again
    } else {
        DbError::Other(DbErr::Custom(format!(
            "the batch of {} failed: {err}",
            K::WHAT
        )))
    }
}

/// The outcome at each ordinal (from 1) that `rows` report, for a batch of
/// `len` writes; a missing one is an error of its write.
fn by_ordinal<T, K: Kind>(
    len: usize,
    rows: impl IntoIterator<Item = (i64, T)>,
) -> Vec<Result<T, DbError>> {
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(len).collect();
    for (n, outcome) in rows {
        let slot = usize::try_from(n - 1).ok().and_then(|i| slots.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(outcome);
        }
    }
    (1..)
        .zip(slots)
        .map(|(n, slot)| {
            slot.ok_or_else(|| {
                DbError::Other(DbErr::Custom(format!(
                    "the batch of {} returned no row for write {n}",
                    K::WHAT
                )))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The queue's own rules, with a kind whose statement is a stand-in: a
    //! batch that hangs, fails or panics when told to cannot be had from a
    //! real database. The statements of the real kinds are tested against
    //! SQLite and PostgreSQL in `tests/audits.rs`.

    use std::sync::Mutex;

    use tokio::sync::Notify;
    use tokio::task::JoinHandle;

    use super::*;

    /// What the stand-in statement does for a write.
    enum Does {
        Answer,
        /// Waits until told to go on.
        WaitFor(Arc<Notify>),
        Hang,
        /// Fails as a connection reset does.
        FailCut,
        /// Fails as a statement the server refuses does.
        FailRefused,
        Panic,
    }

    /// The rows of each batch run, in order.
    type Log = Arc<Mutex<Vec<Vec<u32>>>>;

    /// The rows written for requests gone meanwhile, of every test.
    static UNDELIVERED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    struct Job {
        row: u32,
        does: Does,
        made_if_gone: bool,
        log: Log,
    }

    struct Test;

    impl Kind for Test {
        type Job = Job;
        type Outcome = u32;
        type Row = u32;
        const WHAT: &'static str = "test writes";
        const MOST: usize = 3;

        fn queues() -> &'static Queues<Self> {
            static QUEUES: Queues<Test> = Queues::new();
            &QUEUES
        }

        fn row(job: &Job) -> u32 {
            job.row
        }

        fn size(_: &Job) -> usize {
            1
        }

        fn made_for_a_request_gone(job: &Job) -> bool {
            job.made_if_gone
        }

        async fn undelivered(_: &DatabaseConnection, row: u32) {
            UNDELIVERED.lock().unwrap().push(row);
        }

        async fn run(
            _: &DatabaseConnection,
            jobs: Vec<Job>,
        ) -> Result<Vec<Result<u32, DbError>>, sqlx::Error> {
            let rows = jobs.iter().map(|j| j.row).collect();
            jobs[0].log.lock().unwrap().push(rows);
            for job in &jobs {
                match &job.does {
                    Does::Answer => {}
                    Does::WaitFor(go_on) => go_on.notified().await,
                    Does::Hang => std::future::pending::<()>().await,
                    Does::FailCut => {
                        return Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
                    }
                    Does::FailRefused => {
                        return Err(sqlx::Error::Protocol("an answer out of place".into()));
                    }
                    Does::Panic => panic!("a bug in the batch"),
                }
            }
            Ok(jobs.iter().map(|j| Ok(j.row)).collect())
        }
    }

    /// The same writes, with a batch given 300 ms, for the test of a batch
    /// without an answer: the others hold batches open for as long as they
    /// need, which a busy machine may make long.
    struct Impatient;

    impl Kind for Impatient {
        type Job = Job;
        type Outcome = u32;
        type Row = u32;
        const WHAT: &'static str = "impatient test writes";
        const TIMEOUT: Duration = Duration::from_millis(300);

        fn queues() -> &'static Queues<Self> {
            static QUEUES: Queues<Impatient> = Queues::new();
            &QUEUES
        }

        fn row(job: &Job) -> u32 {
            Test::row(job)
        }

        fn size(job: &Job) -> usize {
            Test::size(job)
        }

        fn made_for_a_request_gone(job: &Job) -> bool {
            Test::made_for_a_request_gone(job)
        }

        async fn run(
            db: &DatabaseConnection,
            jobs: Vec<Job>,
        ) -> Result<Vec<Result<u32, DbError>>, sqlx::Error> {
            Test::run(db, jobs).await
        }
    }

    /// A database of its own for each test, so that each has its own
    /// queue; nothing connects to it.
    fn database(name: &str) -> DatabaseConnection {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy(&format!("postgres://test@127.0.0.1:1/{name}"))
            .unwrap();
        sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
    }

    fn job(log: &Log, row: u32, does: Does) -> Job {
        Job {
            row,
            does,
            made_if_gone: false,
            log: Arc::clone(log),
        }
    }

    fn spawn_make<K: Kind<Job = Job, Outcome = u32>>(
        db: &DatabaseConnection,
        job: Job,
    ) -> JoinHandle<Result<u32, DbError>> {
        let db = db.clone();
        tokio::spawn(async move { make::<K>(&db, job).await })
    }

    /// Waits until `done` holds, for up to 10 s.
    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..2_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("still waiting after 10 s");
    }

    fn batches(log: &Log) -> Vec<Vec<u32>> {
        log.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn writes_that_come_in_meanwhile_go_in_the_next_batch_one_per_row() {
        let db = database("one_per_row");
        let log = Log::default();
        let go_on = Arc::new(Notify::new());
        let first = spawn_make::<Test>(&db, job(&log, 0, Does::WaitFor(Arc::clone(&go_on))));
        until(|| batches(&log).len() == 1).await;

        // While the first batch runs: rows 5 and 2, row 5 again, two writes
        // whose requests will have gone (row 9's is made all the same), and
        // rows 4 and 1.
        let mut writes = Vec::new();
        for (row, made_if_gone) in [(5, false), (2, false), (5, false), (7, false), (9, true)] {
            let job = Job {
                made_if_gone,
                ..job(&log, row, Does::Answer)
            };
            writes.push((row, spawn_make::<Test>(&db, job)));
        }
        for row in [4, 1] {
            writes.push((row, spawn_make::<Test>(&db, job(&log, row, Does::Answer))));
        }
        let queue = queue_of::<Test>(&db);
        until(|| lock(&queue).waiting.len() == 7).await;
        for (row, write) in &writes {
            if [7, 9].contains(row) {
                write.abort();
            }
        }
        until(|| writes.iter().filter(|(_, w)| w.is_finished()).count() == 2).await;
        go_on.notify_one();

        assert_eq!(first.await.unwrap().unwrap(), 0);
        for (row, write) in writes {
            if ![7, 9].contains(&row) {
                assert_eq!(write.await.unwrap().unwrap(), row);
            }
        }
        // At most three a batch, in the order of their rows; the second
        // write of row 5 in the batch after the first; the gone write of row
        // 7 not made.
        assert_eq!(batches(&log), [vec![0], vec![2, 5, 9], vec![1, 4, 5]]);
        // The gone write of row 9, made, is handed to its kind; no other.
        let undelivered = UNDELIVERED.lock().unwrap().clone();
        assert!(undelivered.contains(&9), "{undelivered:?}");
        for row in [0, 1, 2, 4, 5, 7] {
            assert!(!undelivered.contains(&row), "{undelivered:?}");
        }
    }

    #[tokio::test]
    async fn a_batch_without_an_answer_fails_its_writes_as_unavailable_and_the_next_goes_on() {
        let db = database("no_answer");
        let log = Log::default();
        let hung = spawn_make::<Impatient>(&db, job(&log, 1, Does::Hang));
        until(|| batches(&log).len() == 1).await;
        let behind = spawn_make::<Impatient>(&db, job(&log, 2, Does::Answer));

        let err = hung.await.unwrap().unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(behind.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_write_as_unavailable_only_when_the_database_was() {
        let db = database("failed");
        let log = Log::default();
        let go_on = Arc::new(Notify::new());
        let first = spawn_make::<Test>(&db, job(&log, 0, Does::WaitFor(Arc::clone(&go_on))));
        until(|| batches(&log).len() == 1).await;
        let cut = [
            spawn_make::<Test>(&db, job(&log, 1, Does::Answer)),
            spawn_make::<Test>(&db, job(&log, 2, Does::FailCut)),
        ];
        until(|| lock(&queue_of::<Test>(&db)).waiting.len() == 2).await;
        go_on.notify_one();
        first.await.unwrap().unwrap();
        for write in cut {
            let err = write.await.unwrap().unwrap_err();
            assert!(err.is_unavailable(), "{err:?}");
        }

        // Anything else is the batch's failure (500), not a conflict or an
        // invalid request of each write.
        let err = make::<Test>(&db, job(&log, 3, Does::FailRefused))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Other(DbErr::Custom(message))
                if message.starts_with("the batch of test writes failed")),
            "{err:?}"
        );
        assert_eq!(batches(&log), [vec![0], vec![1, 2], vec![3]]);
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_its_writes_and_the_next_goes_on() {
        let db = database("panics");
        let log = Log::default();
        let err = make::<Test>(&db, job(&log, 1, Does::Panic))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Other(DbErr::Custom(message))
                if message.contains("stopped before it was made")),
            "{err:?}"
        );
        assert_eq!(
            make::<Test>(&db, job(&log, 2, Does::Answer)).await.unwrap(),
            2
        );
    }
}
