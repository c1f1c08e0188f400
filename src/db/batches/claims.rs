//! Claims of `Idempotency-Key`s in batches (see [`super`]): the first
//! insert of each key's row, which every keyed request makes before its
//! handler runs. A claim that finds its key's row already there is not
//! judged here: its caller reads the row and decides, as before (see
//! [`crate::db::idempotency::claim`]).
//!
//! A batch may wait on a key's row that another transaction is changing
//! (`ON CONFLICT` waits to learn whether the row stays), and every claim of
//! the process waits with it. Only single short statements change those
//! rows: storing a response, taking a key over, freeing it, and the
//! sweep's deletes. Leaving keys that have a row out of the insert with
//! `NOT EXISTS` would avoid the wait, but its plan depends on the table's
//! statistics: planned while the table was small, it hashed the whole
//! table for every batch, and in a load run a keyed write cost the
//! database 364 µs instead of 238, more the longer the run went on.
//!
//! A claim made for a request that has gone by the time its batch answers
//! (its client hung up while the claim waited) is freed before the next
//! batch: nobody would use it, and the client's retry would otherwise find
//! its key in progress until it counts as abandoned. A batch that times
//! out (see [`super`]) may still be made after its claims were answered
//! 503; each such key stays claimed until it counts as abandoned, as a
//! claim cut off by an outage did before.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Row as _};
use uuid::Uuid;

use super::{Kind, Queues};
use crate::db::DbError;
use crate::db::idempotency::{self, KeyClaim};

/// Claims of keys; each inserts the row of its [`KeyClaim`].
pub(in crate::db) struct Claims;

/// What one claim found.
#[derive(Debug)]
pub(in crate::db) enum KeyRow {
    /// Its row was inserted: the key was free, and is the request's now.
    Inserted(KeyClaim),
    /// The key has a row: its request reads it and decides.
    Found,
}

impl Kind for Claims {
    type Job = KeyClaim;
    type Outcome = KeyRow;
    type Row = (Uuid, String);
    const WHAT: &'static str = "claims of Idempotency-Keys";

    fn queues() -> &'static Queues<Self> {
        static QUEUES: Queues<Claims> = Queues::new();
        &QUEUES
    }

    fn row(job: &KeyClaim) -> (Uuid, String) {
        (job.user, job.key.clone())
    }

    fn size(job: &KeyClaim) -> usize {
        job.key.len() + job.request_hash.len()
    }

    // Its request is gone: nothing would use or free the key.
    fn made_for_a_request_gone(_: &KeyClaim) -> bool {
        false
    }

    // Nothing will use the claim or free its key: it is freed now, before
    // the next batch, where the client's retry may be.
    async fn undelivered(db: &DatabaseConnection, outcome: KeyRow) {
        let KeyRow::Inserted(claim) = outcome else {
            return;
        };
        if let Err(err) = idempotency::release(db, &claim).await {
            tracing::warn!(
                user = %claim.user,
                key = claim.key,
                "the Idempotency-Key claimed for a request whose client hung up was not freed: \
                 {err:?}"
            );
        }
    }

    async fn run(
        db: &DatabaseConnection,
        jobs: Vec<KeyClaim>,
    ) -> Result<Vec<Result<KeyRow, DbError>>, sqlx::Error> {
        let users: Vec<Uuid> = jobs.iter().map(|j| j.user).collect();
        let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
        let hashes: Vec<&str> = jobs.iter().map(|j| j.request_hash.as_str()).collect();
        let claimed_at: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.claimed_at).collect();
        let rows = sqlx::query(STATEMENT)
            .bind(users)
            .bind(keys)
            .bind(hashes)
            .bind(claimed_at)
            .fetch_all(db.get_postgres_connection_pool())
            .await?;
        // One claim per key in a batch (see `Kind::row`), so a returned
        // key names its claim.
        let inserted = rows
            .iter()
            .map(|row| Ok((row.try_get::<Uuid, _>(0)?, row.try_get::<String, _>(1)?)))
            .collect::<Result<HashSet<_>, sqlx::Error>>()?;
        Ok(jobs
            .into_iter()
            .map(|job| {
                let fresh = inserted.contains(&(job.user, job.key.clone()));
                Ok(if fresh {
                    KeyRow::Inserted(job)
                } else {
                    KeyRow::Found
                })
            })
            .collect())
    }
}

/// The statement of a batch: one row per claim, in the batch's order; the
/// rows that were inserted come back.
const STATEMENT: &str = "\
INSERT INTO idempotency_keys (user_id, key, request_hash, created_at, updated_at)
SELECT c.user_id, c.key, c.request_hash, c.claimed_at, c.claimed_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY
  AS c(user_id, key, request_hash, claimed_at, n)
ORDER BY c.n
ON CONFLICT (user_id, key) DO NOTHING
RETURNING user_id, key";
