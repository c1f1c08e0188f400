//! On PostgreSQL, answer writes that come in while others are being made
//! go to the database together: one statement and one commit for the lot
//! (group commit), as the embedded database's writer does on SQLite.
//!
//! Each write on its own was one statement in autocommit: a round trip, a
//! plan, a transaction and a WAL flush each, and a pool checkout with its
//! release test. With PostgreSQL, the service and the load generator on the
//! same two cores, those were most of the database's CPU per write, not the
//! rows. Here, per database and process, one batch runs at a time; writes
//! that come in meanwhile wait for it, then go in the next one. A write
//! alone runs at once, as before. (Two batches under way at once made no
//! clear difference in load runs; one is simpler.)
//!
//! What stays as it was:
//! - each write is conditional on the audit as its caller read it, exactly
//!   as [`super::audits::write_answers`] documents, and stores its keyed
//!   response only with its answers;
//! - a batch never waits on an audit's row: it skips an audit another
//!   transaction holds (`SKIP LOCKED`), and that write is made on its own
//!   connection by its caller, where it waits as before. So a long
//!   transaction on one audit holds up the writes of that audit only. (A
//!   batch may wait on an `Idempotency-Key`'s row, which only single short
//!   statements hold.);
//! - a batch that gets no answer within [`BATCH_TIMEOUT`] fails, so a lost
//!   connection cannot hold every answer write of the process;
//! - two writes of one audit never share a batch: the later one goes in the
//!   next, where it finds the audit as the first left it;
//! - a write whose client has hung up before its batch starts is not made,
//!   as on SQLite; unless it carries an `Idempotency-Key`, which on
//!   PostgreSQL a hang-up does not free: it is made, and its response
//!   stored for the retry to replay.
//!
//! A failing statement fails every write of its batch, and nothing of it
//! is written: with 503 for each if the database was unavailable, with 500
//! otherwise.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{DatabaseConnection, DbErr, RuntimeErr};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::DbError;
use super::entity::audit;
use super::idempotency::Completion;
use super::outbox::Row;

/// Most writes in one statement: a batch is what came in while the
/// previous one ran, so this bounds only a burst.
const BATCH: usize = 128;

/// Most bytes of answers and stored responses in one statement.
const BATCH_BYTES: usize = 8 << 20;

/// How long a batch may take before its writes are answered as if the
/// connection had been cut: a connection lost without a reset would
/// otherwise hold every answer write of the process until the operating
/// system gives up on it, minutes.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of one write of a batch.
#[derive(Debug)]
// One per write, moved once: boxing the written audit would allocate for
// every write to save bytes on the way back.
#[allow(clippy::large_enum_variant)]
pub(super) enum Outcome {
    /// Written; whether its keyed response was stored with it.
    Written(audit::Model, bool),
    /// Not written: the audit is no longer as the caller read it.
    Stale,
    /// Not tried: another transaction holds the audit's row. The caller
    /// makes the write on its own connection, where it waits for the lock.
    Locked(Job),
}

/// One answer write: what the audit must still be, and the write built on
/// it (see [`super::audits::prepare_answers`]).
#[derive(Debug)]
pub(super) struct Job {
    pub(super) expected: Expected,
    pub(super) after: audit::Model,
    pub(super) row: Row,
    pub(super) done: Option<Completion>,
}

/// The columns of the audit as its writer read it that the write is
/// conditional on.
#[derive(Debug)]
pub(super) struct Expected {
    id: Uuid,
    version: i64,
    status: String,
    revision: i32,
    claimed_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
}

impl From<&audit::Model> for Expected {
    fn from(before: &audit::Model) -> Self {
        Self {
            id: before.id,
            version: before.version,
            status: before.status.clone(),
            revision: before.revision,
            claimed_by: before.claimed_by,
            updated_at: before.updated_at,
        }
    }
}

impl Job {
    /// About how many bytes it adds to a batch's statement.
    fn size(&self) -> usize {
        self.after.answers.len() + self.done.as_ref().map_or(0, |d| d.deflated().len())
    }
}

/// A job waiting for its batch, and where its outcome goes.
struct Waiting {
    job: Job,
    reply: oneshot::Sender<Result<Outcome, DbError>>,
}

/// The writes waiting for one database, and whether a batch is running.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    running: bool,
}

type Shared = Arc<Mutex<Queue>>;

fn lock(queue: &Shared) -> MutexGuard<'_, Queue> {
    // Nothing panics while holding it; a poisoned queue is still whole.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `job` in the next batch of answer writes to `db` (PostgreSQL).
///
/// # Errors
/// The batch's statement failed; nothing of it was written.
pub(super) async fn write(db: &DatabaseConnection, job: Job) -> Result<Outcome, DbError> {
    let queue = queue_of(db);
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
        Err(DbError::Other(DbErr::Custom(
            "the batch of answer writes stopped before it was made".to_owned(),
        )))
    })
}

/// The queue of the database `db` connects to; one per database and
/// process, shared by every pool connected to it.
fn queue_of(db: &DatabaseConnection) -> Shared {
    let options = db.get_postgres_connection_pool().connect_options();
    let name = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    static QUEUES: OnceLock<Mutex<HashMap<String, Shared>>> = OnceLock::new();
    let mut queues = QUEUES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(queues.entry(name).or_default())
}

/// Clears `running` if the draining task ends before its queue is empty
/// (its runtime shut down), so that the next write starts another.
struct Running {
    queue: Shared,
    armed: Cell<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.armed.get() {
            lock(&self.queue).running = false;
        }
    }
}

/// Runs batches while writes are waiting.
async fn drain(db: DatabaseConnection, running: Running) {
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
/// [`BATCH`] and [`BATCH_BYTES`] (but always the first), at most one per
/// audit, none whose request has gone unless it carries a key; none only
/// if no write is waiting.
fn take_batch(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let mut audits = HashSet::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut later = Vec::new();
    for write in waiting.drain(..) {
        // A keyed write is made all the same, and its response stored, so
        // that the client's retry replays it: on PostgreSQL a hang-up does
        // not free the key, whose retry would otherwise find it in
        // progress until it is abandoned.
        if write.reply.is_closed() && write.job.done.is_none() {
            continue;
        }
        let size = write.job.size();
        let fits = batch.is_empty() || (batch.len() < BATCH && bytes + size <= BATCH_BYTES);
        if fits && audits.insert(write.job.expected.id) {
            bytes += size;
            batch.push(write);
        } else {
            later.push(write);
        }
    }
    *waiting = later;
    batch
}

/// The statement of a batch. The arrays hold one element per write; the
/// key's columns are null for a write without a key. Every condition is
/// the one a single write checks (see `update_answers_in_one_statement` in
/// [`super::audits`]); `locked` takes the audits' rows without waiting.
const STATEMENT: &str = "\
WITH batch AS (
  SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::uuid[],
      $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],
      $11::timestamptz[], $12::uuid[], $13::text[], $14::text[], $15::int4[], $16::text[],
      $17::bytea[], $18::timestamptz[])
    WITH ORDINALITY AS b(id, version, status, revision, claimed_by, read_at, written_at,
      answers, entry, change, created_at, key_user, key, request_hash, status_code, headers,
      deflated, claimed_at, n)),
locked AS (
  SELECT id FROM audits WHERE id IN (SELECT id FROM batch) FOR NO KEY UPDATE SKIP LOCKED),
updated AS (
  UPDATE audits a SET version = a.version + 1, updated_at = b.written_at, answers = b.answers
  FROM batch b
  WHERE a.id = b.id AND a.id IN (SELECT id FROM locked)
    AND a.version = b.version AND a.status = b.status AND a.revision = b.revision
    AND a.claimed_by IS NOT DISTINCT FROM b.claimed_by AND a.updated_at = b.read_at
  RETURNING b.n),
recorded AS (
  INSERT INTO outbox (entry, change, created_at)
  SELECT b.entry, b.change, b.created_at FROM batch b JOIN updated u ON u.n = b.n ORDER BY b.n),
stored AS (
  UPDATE idempotency_keys k SET status_code = b.status_code, response_headers = b.headers,
    response_deflated = b.deflated, updated_at = b.written_at
  FROM batch b JOIN updated u ON u.n = b.n
  WHERE k.user_id = b.key_user AND k.key = b.key AND k.request_hash = b.request_hash
    AND k.created_at = b.claimed_at AND k.status_code IS NULL
  RETURNING b.n)
SELECT b.n,
  EXISTS (SELECT 1 FROM updated u WHERE u.n = b.n) AS written,
  EXISTS (SELECT 1 FROM stored s WHERE s.n = b.n) AS stored,
  EXISTS (SELECT 1 FROM locked l WHERE l.id = b.id) AS locked
FROM batch b";

/// The batch's columns, one vector per array parameter, borrowed from its
/// writes.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    version: Vec<i64>,
    status: Vec<&'a str>,
    revision: Vec<i32>,
    claimed_by: Vec<Option<Uuid>>,
    read_at: Vec<DateTime<Utc>>,
    written_at: Vec<DateTime<Utc>>,
    answers: Vec<&'a str>,
    entry: Vec<Option<&'a str>>,
    change: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
    key_user: Vec<Option<Uuid>>,
    key: Vec<Option<&'a str>>,
    request_hash: Vec<Option<&'a str>>,
    status_code: Vec<Option<i32>>,
    headers: Vec<Option<&'a str>>,
    deflated: Vec<Option<&'a [u8]>>,
    claimed_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a [Waiting]) -> Self {
        let mut columns = Self::default();
        for Waiting { job, .. } in batch {
            let expected = &job.expected;
            columns.id.push(expected.id);
            columns.version.push(expected.version);
            columns.status.push(&expected.status);
            columns.revision.push(expected.revision);
            columns.claimed_by.push(expected.claimed_by);
            columns.read_at.push(expected.updated_at);
            columns.written_at.push(job.after.updated_at);
            columns.answers.push(&job.after.answers);
            columns.entry.push(job.row.entry.as_deref());
            columns.change.push(job.row.change.as_deref());
            columns.created_at.push(job.row.created_at);
            let done = job.done.as_ref();
            columns.key_user.push(done.map(|d| d.claim.user));
            columns.key.push(done.map(|d| d.claim.key.as_str()));
            columns
                .request_hash
                .push(done.map(|d| d.claim.request_hash.as_str()));
            columns.status_code.push(done.map(|d| i32::from(d.status)));
            columns.headers.push(done.map(|d| d.headers.as_str()));
            columns.deflated.push(done.map(|d| &d.deflated()[..]));
            columns.claimed_at.push(done.map(|d| d.claim.claimed_at));
        }
        columns
    }
}

/// The failure of a batch, for each of its writes. The database being
/// unavailable stays that (503 for each); anything else is a failure of the
/// batch (500), not a conflict of every write in it, which a keyed write
/// would store for replay.
fn again(err: &Arc<sqlx::Error>) -> DbError {
    let shared = DbErr::Query(RuntimeErr::SqlxError(Arc::clone(err)));
    let again = DbError::from(shared);
    if again.is_unavailable() {
        again
    } else {
        DbError::Other(DbErr::Custom(format!(
            "the batch of answer writes failed: {err}"
        )))
    }
}

/// Runs one batch and answers each of its writes.
async fn run(db: DatabaseConnection, mut batch: Vec<Waiting>) {
    // Rows are taken in the order of their ids, whichever way the batch
    // came in.
    batch.sort_unstable_by_key(|w| w.job.expected.id);
    let c = Columns::of(&batch);
    let rows = sqlx::query(STATEMENT)
        .bind(c.id)
        .bind(c.version)
        .bind(c.status)
        .bind(c.revision)
        .bind(c.claimed_by)
        .bind(c.read_at)
        .bind(c.written_at)
        .bind(c.answers)
        .bind(c.entry)
        .bind(c.change)
        .bind(c.created_at)
        .bind(c.key_user)
        .bind(c.key)
        .bind(c.request_hash)
        .bind(c.status_code)
        .bind(c.headers)
        .bind(c.deflated)
        .bind(c.claimed_at)
        .fetch_all(db.get_postgres_connection_pool());
    let rows = tokio::time::timeout(BATCH_TIMEOUT, rows)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the batch of answer writes got no answer from the database in time",
            )))
        });
    let results = rows.and_then(|rows| {
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("n")?,
                    row.try_get::<bool, _>("written")?,
                    row.try_get::<bool, _>("stored")?,
                    row.try_get::<bool, _>("locked")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
    });
    let results = match results.map_err(Arc::new) {
        Ok(results) => results,
        Err(err) => {
            for Waiting { reply, .. } in batch.drain(..) {
                let _ = reply.send(Err(again(&err)));
            }
            return;
        }
    };
    // The outcome of write `n` (from 1, in the batch's order) at `n - 1`.
    let mut outcomes = vec![None; batch.len()];
    for (n, written, stored, locked) in results {
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| outcomes.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some((written, stored, locked));
        }
    }
    if outcomes.iter().flatten().any(|&(written, _, _)| written) {
        super::outbox::written();
    }
    for ((n, Waiting { job, reply }), outcome) in (1_i64..).zip(batch).zip(outcomes) {
        let outcome = match outcome {
            Some((true, stored, _)) => Ok(Outcome::Written(job.after, stored)),
            Some((false, _, true)) => Ok(Outcome::Stale),
            // Not locked: another transaction holds the row, or it is gone.
            Some((false, _, false)) => Ok(Outcome::Locked(job)),
            None => Err(DbError::Other(DbErr::Custom(format!(
                "the batch of answer writes returned no row for write {n}"
            )))),
        };
        // Its request may have gone meanwhile; it would have kept what was
        // written for it all the same.
        let _ = reply.send(outcome);
    }
}
