//! Stored responses for `Idempotency-Key`. The first request with a key
//! claims it by inserting a row (the primary key makes concurrent claims
//! exclusive), then stores its response; retries replay that response.
//!
//! Every keyed request writes twice, so on the embedded database these
//! writes go to its writer (see [`super::embedded`]), like the answer write
//! they usually wrap, and are committed with the writes around them: a
//! write outside the writers' turn would meet a writer inside it in
//! SQLite's busy handler. On PostgreSQL, claims that come in together
//! insert their rows in one statement and one commit (see
//! [`super::batches`]); a claim whose key has a row already is judged by
//! its own request.

use std::io::{Read, Write};

use axum::body::Bytes;
use chrono::{DateTime, Duration, Utc};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use super::batches::claims::{Claims, KeyRow};
use super::entity::idempotency_key;
use super::{DbError, now};

/// How long a stored response is replayed.
pub const RETENTION_HOURS: i64 = 24;
/// Keys deleted per transaction by [`sweep`].
const SWEEP_BATCH: u64 = 500;
/// After this long a claimed key whose request never finished (the replica
/// died) may be claimed again.
const ABANDONED_AFTER_SECS: i64 = 300;

/// What to do with a request carrying a key.
#[derive(Debug)]
pub enum Claim {
    /// First use: handle the request, then [`complete`] or [`release`].
    /// `claimed_at` tells this claim from a later one of the same request
    /// that takes the key over once this one counts as abandoned.
    Fresh { claimed_at: DateTime<Utc> },
    /// A retry of a finished request: replay this.
    Replay {
        status: u16,
        headers: String,
        body: Vec<u8>,
    },
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still being handled.
    InProgress,
}

/// Claims `key` for `user` and this request's hash.
///
/// # Errors
/// Database failure.
pub async fn claim(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    request_hash: &str,
) -> Result<Claim, DbError> {
    if let Some(embedded) = super::embedded::of(db) {
        return embedded.claim_key(user, key, request_hash).await;
    }
    let ts = now();
    let fresh = if db.get_database_backend() == DbBackend::Postgres {
        let claim = KeyClaim {
            user,
            key: key.to_owned(),
            request_hash: request_hash.to_owned(),
            claimed_at: ts,
        };
        matches!(
            super::batches::make::<Claims>(db, claim).await?,
            KeyRow::Inserted(_)
        )
    } else {
        insert_claim(db, user, key, request_hash, ts).await?
    };
    if fresh {
        return Ok(Claim::Fresh { claimed_at: ts });
    }
    let Some(existing) = idempotency_key::Entity::find_by_id((user, key.to_owned()))
        .one(db)
        .await?
    else {
        // Released between our insert and read: the key is free again.
        return Box::pin(claim(db, user, key, request_hash)).await;
    };
    let seen_at = existing.updated_at;
    if let Some(claim) = judge(existing, request_hash, ts)? {
        return Ok(claim);
    }
    let taken = idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::RequestHash,
            Expr::value(request_hash),
        )
        .col_expr(
            idempotency_key::Column::StatusCode,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(
            idempotency_key::Column::ResponseHeaders,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            idempotency_key::Column::ResponseDeflated,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(idempotency_key::Column::CreatedAt, Expr::value(ts))
        .col_expr(idempotency_key::Column::UpdatedAt, Expr::value(ts))
        .filter(idempotency_key::Column::UserId.eq(user))
        .filter(idempotency_key::Column::Key.eq(key))
        .filter(idempotency_key::Column::UpdatedAt.eq(seen_at))
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Claim::Fresh { claimed_at: ts }
    } else {
        Claim::InProgress
    })
}

/// Inserts the row of a claim of `key` made at `ts`, unless the key has
/// one: whether it did. (On PostgreSQL, [`super::batches::claims`] does
/// this for many claims at once.)
async fn insert_claim(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    request_hash: &str,
    ts: DateTime<Utc>,
) -> Result<bool, DbError> {
    let row = idempotency_key::ActiveModel {
        user_id: Set(user),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        status_code: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        response_deflated: Set(None),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    match idempotency_key::Entity::insert(row)
        .exec(db)
        .await
        .map_err(DbError::from)
    {
        Ok(_) => Ok(true),
        Err(DbError::Conflict(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// What the stored row of a key means for a new request with
/// `request_hash` at `ts`; `None` when the row may be taken over: it is past
/// its retention, or its request was abandoned unfinished.
///
/// # Errors
/// The stored body does not inflate.
pub(super) fn judge(
    existing: idempotency_key::Model,
    request_hash: &str,
    ts: DateTime<Utc>,
) -> Result<Option<Claim>, DbError> {
    let expired = existing.created_at < ts - Duration::hours(RETENTION_HOURS);
    let abandoned = existing.status_code.is_none()
        && existing.updated_at < ts - Duration::seconds(ABANDONED_AFTER_SECS);
    if expired || abandoned {
        return Ok(None);
    }
    if existing.request_hash != request_hash {
        return Ok(Some(Claim::Mismatch));
    }
    let Some(status) = existing.status_code else {
        return Ok(Some(Claim::InProgress));
    };
    let body = match (existing.response_deflated, existing.response_body) {
        (Some(deflated), _) => inflate(&deflated).map_err(|err| {
            DbError::Other(DbErr::Custom(format!(
                "the stored response of Idempotency-Key {:?} does not inflate: {err}",
                existing.key
            )))
        })?,
        (None, Some(text)) => text.into_bytes(),
        (None, None) => Vec::new(),
    };
    Ok(Some(Claim::Replay {
        status: u16::try_from(status).unwrap_or(500),
        headers: existing.response_headers.unwrap_or_default(),
        body,
    }))
}

/// A response body as it is stored: deflated (raw deflate, no framing) at
/// the fastest level, which takes a full answer (about 49 KB of JSON) to a
/// sixth of that in a fraction of what writing it whole would cost the
/// database. Held shared, so that the embedded database's writer and the
/// answer framed as gzip read the same bytes.
#[derive(Debug, Clone)]
pub struct Deflated(Bytes);

impl Deflated {
    #[must_use]
    pub fn new(body: &[u8]) -> Self {
        let mut encoder =
            DeflateEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
        // Writing into a `Vec` cannot fail.
        let _ = encoder.write_all(body);
        Self(Bytes::from(encoder.finish().unwrap_or_default()))
    }

    /// The same compressed stream framed as gzip (RFC 1952) for a client
    /// that accepts it, so the answer is not compressed a second time:
    /// gzip's header, the stream, then the CRC-32 and length of `body`,
    /// which must be the body this was made from.
    #[must_use]
    pub fn to_gzip(&self, body: &[u8]) -> Vec<u8> {
        // Deflate, no flags, no time, "fastest" (the level used), unknown OS.
        const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];
        let mut crc = flate2::Crc::new();
        crc.update(body);
        let mut gzip = Vec::with_capacity(HEADER.len() + self.0.len() + 8);
        gzip.extend_from_slice(&HEADER);
        gzip.extend_from_slice(&self.0);
        gzip.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952 section 2.3.1).
        #[allow(clippy::cast_possible_truncation)]
        gzip.extend_from_slice(&(body.len() as u32).to_le_bytes());
        gzip
    }
}

fn inflate(stored: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(stored.len().saturating_mul(6));
    DeflateDecoder::new(stored).read_to_end(&mut body)?;
    Ok(body)
}

/// A key as one request claimed it.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    pub user: Uuid,
    pub key: String,
    /// The hash of the request that claimed the key.
    pub request_hash: String,
    /// When it claimed it (see [`Claim::Fresh`]).
    pub claimed_at: DateTime<Utc>,
}

/// A claimed key and the response to store for it: by [`complete`] after
/// the request, or by the write that makes the request's effect, in the
/// same transaction (see [`super::audits::write_answers`]), so that a
/// retry finds both or neither.
#[derive(Debug, Clone)]
pub struct Completion {
    pub claim: KeyClaim,
    pub status: u16,
    /// The kept headers, as a JSON object.
    pub headers: String,
    pub body: Deflated,
}

impl Completion {
    /// The stored body, as written to the database.
    pub(super) fn deflated(&self) -> &Bytes {
        &self.body.0
    }

    /// Logs a response that could not be stored: its key was taken over
    /// (see [`claim`]) or freed meanwhile.
    pub(super) fn warn_not_stored(&self) {
        tracing::warn!(
            user = %self.claim.user,
            key = self.claim.key,
            "a response was not stored for replay: its Idempotency-Key was taken over or freed \
             meanwhile"
        );
    }
}

/// Stores the response of the request that claimed the key (its body
/// deflated, see [`Deflated`]). If the key is no longer that request's (it
/// was taken over as abandoned meanwhile), nothing is stored and a warning
/// is logged.
///
/// # Errors
/// Database failure.
pub async fn complete(db: &DatabaseConnection, done: &Completion) -> Result<(), DbError> {
    let stored = if let Some(embedded) = super::embedded::of(db) {
        embedded.complete_key(done.clone()).await?
    } else {
        let update = idempotency_key::Entity::update_many()
            .col_expr(
                idempotency_key::Column::StatusCode,
                Expr::value(i32::from(done.status)),
            )
            .col_expr(
                idempotency_key::Column::ResponseHeaders,
                Expr::value(done.headers.clone()),
            )
            .col_expr(
                idempotency_key::Column::ResponseDeflated,
                Expr::value(done.deflated().to_vec()),
            )
            .col_expr(idempotency_key::Column::UpdatedAt, Expr::value(now()))
            .filter(idempotency_key::Column::UserId.eq(done.claim.user))
            .filter(idempotency_key::Column::Key.eq(&done.claim.key))
            .filter(idempotency_key::Column::RequestHash.eq(&done.claim.request_hash))
            .filter(idempotency_key::Column::CreatedAt.eq(done.claim.claimed_at))
            .filter(idempotency_key::Column::StatusCode.is_null());
        update.exec(db).await?.rows_affected == 1
    };
    if !stored {
        done.warn_not_stored();
    }
    Ok(())
}

/// Frees the key of `claim` if its request did not finish: it failed on
/// the server side, or its client hung up before its effect was written
/// (or, on PostgreSQL, while its claim was being made; see
/// [`super::batches::claims`]); a retry then runs it again. A key whose
/// response is stored, or that another claim has taken over (a later one of
/// the same request too), is left as it is.
///
/// # Errors
/// Database failure.
pub async fn release(db: &DatabaseConnection, claim: &KeyClaim) -> Result<(), DbError> {
    if let Some(embedded) = super::embedded::of(db) {
        return embedded.release_key(claim.clone()).await;
    }
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::UserId.eq(claim.user))
        .filter(idempotency_key::Column::Key.eq(&claim.key))
        .filter(idempotency_key::Column::RequestHash.eq(&claim.request_hash))
        .filter(idempotency_key::Column::CreatedAt.eq(claim.claimed_at))
        .filter(idempotency_key::Column::StatusCode.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Whether the key of a request whose client hung up before its write may
/// be freed, when that write also stores the request's response (see
/// [`Completion`]): on the embedded database a write whose request is gone
/// before it runs is skipped, and a release queued after it runs after it.
/// On PostgreSQL a statement already sent runs to its end whatever becomes
/// of its request, so the key stays claimed until it counts as abandoned.
#[must_use]
pub fn hung_up_writes_are_skipped(db: &DatabaseConnection) -> bool {
    super::embedded::of(db).is_some()
}

/// Deletes stored responses older than the retention period, oldest first,
/// [`SWEEP_BATCH`] keys per transaction, so that writers wait for one
/// batch at most.
///
/// # Errors
/// Database failure; the batches before it stay deleted.
pub async fn sweep(db: &DatabaseConnection) -> Result<u64, DbError> {
    let cutoff = now() - Duration::hours(RETENTION_HOURS);
    let mut deleted = 0;
    loop {
        let oldest = Query::select()
            .columns([
                idempotency_key::Column::UserId,
                idempotency_key::Column::Key,
            ])
            .from(idempotency_key::Entity)
            .and_where(idempotency_key::Column::CreatedAt.lt(cutoff))
            .order_by(idempotency_key::Column::CreatedAt, Order::Asc)
            .limit(SWEEP_BATCH)
            .to_owned();
        // The age again: a key taken over meanwhile is young, and on
        // PostgreSQL the delete re-checks only its own conditions on a row
        // another transaction changed.
        let delete = idempotency_key::Entity::delete_many()
            .filter(
                Expr::tuple([
                    Expr::col(idempotency_key::Column::UserId),
                    Expr::col(idempotency_key::Column::Key),
                ])
                .in_subquery(oldest),
            )
            .filter(idempotency_key::Column::CreatedAt.lt(cutoff));
        let batch = super::write_alone(db, async |txn| delete.exec(txn).await)
            .await?
            .rows_affected;
        deleted += batch;
        if batch < SWEEP_BATCH {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_stream_framed_as_gzip_decodes_to_the_body() {
        let body = "{\"ru\":\"Пандус у входа\",\"en\":\"Ramp at the entrance\"}".repeat(300);
        let deflated = Deflated::new(body.as_bytes());
        let gzip = deflated.to_gzip(body.as_bytes());
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .expect("valid gzip");
        assert_eq!(decoded, body);
        assert_eq!(
            inflate(&deflated.0).expect("valid deflate"),
            body.as_bytes()
        );

        // The trailer is checked: a gzip made for another body is refused.
        let wrong = deflated.to_gzip(b"another body");
        let mut sink = Vec::new();
        assert!(
            flate2::read::GzDecoder::new(&wrong[..])
                .read_to_end(&mut sink)
                .is_err()
        );
    }
}
