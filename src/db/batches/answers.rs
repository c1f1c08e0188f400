//! Answer writes in batches (see [`super`]).
//!
//! Each write is conditional on the audit as its caller read it, exactly
//! as [`crate::db::audits::write_answers`] documents, and stores its keyed
//! response only with its answers. What the batch adds:
//! - it never waits on an audit's row: it skips an audit another
//!   transaction holds (`SKIP LOCKED`), and that write is made on its own
//!   connection by its caller, where it waits as before. So a long
//!   transaction on one audit holds up the writes of that audit only. (A
//!   batch may wait on an `Idempotency-Key`'s row, which only single short
//!   statements hold.);
//! - a write whose client has hung up before its batch starts is not made,
//!   as on SQLite; unless it carries an `Idempotency-Key`, which on
//!   PostgreSQL a hang-up after the claim does not free: it is made, and
//!   its response stored for the retry to replay;
//! - a batch that timed out and is made later all the same has written
//!   its keyed responses with its answers: a keyed retry replays them, an
//!   unkeyed one gets 412 and merges.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Row as _};
use uuid::Uuid;

use super::{Kind, Queues, by_ordinal};
use crate::db::DbError;
use crate::db::entity::audit;
use crate::db::idempotency::Completion;
use crate::db::outbox::Row;

/// Answer writes.
pub(in crate::db) struct Answers;

/// What became of one write of a batch.
#[derive(Debug)]
// One per write, moved once: boxing the written audit would allocate for
// every write to save bytes on the way back.
#[allow(clippy::large_enum_variant)]
pub(in crate::db) enum Outcome {
    /// Written; whether its keyed response was stored with it.
    Written(audit::Model, bool),
    /// Not written: the audit is no longer as the caller read it.
    Stale,
    /// Not tried: another transaction holds the audit's row. The caller
    /// makes the write on its own connection, where it waits for the lock.
    Locked(Job),
}

/// One answer write: what the audit must still be, and the write built on
/// it (see [`crate::db::audits::prepare_answers`]).
#[derive(Debug)]
pub(in crate::db) struct Job {
    pub(in crate::db) expected: Expected,
    pub(in crate::db) after: audit::Model,
    pub(in crate::db) row: Row,
    pub(in crate::db) done: Option<Completion>,
}

/// The columns of the audit as its writer read it that the write is
/// conditional on.
#[derive(Debug)]
pub(in crate::db) struct Expected {
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

impl Kind for Answers {
    type Job = Job;
    type Outcome = Outcome;
    type Row = Uuid;
    const WHAT: &'static str = "answer writes";

    fn queues() -> &'static Queues<Self> {
        static QUEUES: Queues<Answers> = Queues::new();
        &QUEUES
    }

    fn row(job: &Job) -> Uuid {
        job.expected.id
    }

    fn size(job: &Job) -> usize {
        job.after.answers.len() + job.done.as_ref().map_or(0, |d| d.deflated().len())
    }

    // A keyed write is made all the same, and its response stored, so that
    // the client's retry replays it: on PostgreSQL a hang-up after the
    // claim does not free the key, whose retry would otherwise find it in
    // progress until it is abandoned.
    fn made_for_a_request_gone(job: &Job) -> bool {
        job.done.is_some()
    }

    async fn run(
        db: &DatabaseConnection,
        jobs: Vec<Job>,
    ) -> Result<Vec<Result<Outcome, DbError>>, sqlx::Error> {
        let c = Columns::of(&jobs);
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
            .fetch_all(db.get_postgres_connection_pool())
            .await?;
        let results = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("n")?,
                    (
                        row.try_get::<bool, _>("written")?,
                        row.try_get::<bool, _>("stored")?,
                        row.try_get::<bool, _>("locked")?,
                    ),
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let results = by_ordinal::<_, Self>(jobs.len(), results);
        if results.iter().flatten().any(|&(written, _, _)| written) {
            crate::db::outbox::written();
        }
        Ok(jobs
            .into_iter()
            .zip(results)
            .map(|(job, result)| {
                result.map(|result| match result {
                    (true, stored, _) => Outcome::Written(job.after, stored),
                    (false, _, true) => Outcome::Stale,
                    // Not locked: another transaction holds the row, or it
                    // is gone.
                    (false, _, false) => Outcome::Locked(job),
                })
            })
            .collect())
    }
}

/// The statement of a batch. The arrays hold one element per write; the
/// key's columns are null for a write without a key. Every condition is
/// the one a single write checks (see `update_answers_in_one_statement` in
/// [`crate::db::audits`]); `locked` takes the audits' rows without waiting.
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
    fn of(jobs: &'a [Job]) -> Self {
        let mut columns = Self::default();
        for job in jobs {
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
