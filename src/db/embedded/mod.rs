//! The embedded database's busiest statements, on connections of its own.
//!
//! sqlx gives every SQLite connection a thread of its own, and each
//! statement is a hand-off to that thread and back: two thread switches,
//! and on a busy machine two waits to be scheduled. Reading an audit by its
//! key takes SQLite a few microseconds, the hand-offs many times that; and
//! a writer waits for them while it holds the database's only write lock,
//! so every writer behind it waits too.
//!
//! This module keeps connections of its own to the same database file
//! (rusqlite, on the SQLite library sqlx links) for the path that mobile
//! clients drive and for the sealer that follows it:
//! - reading an audit and its photos runs in place on the request's thread;
//! - writing a batch of answers and its outbox row, claiming an
//!   `Idempotency-Key` and storing the response for replay (see
//!   [`super::idempotency`]; phones send a key with every batch), and a
//!   sealing pass (see [`super::outbox`]) go to one writer thread (see
//!   [`writer`]), one hand-off per write, which commits the writes that
//!   came in together as one transaction; after a commit that changed
//!   rows, a checkpoint is scheduled off the writer (at most one every
//!   100 ms), so that no writer copies the write-ahead log back while the
//!   others wait.
//!
//! Each of these statements is bounded: a lookup by key, one row written,
//! one batch of the outbox. Everything else goes through sea-orm; both sides
//! see the same database, in WAL mode.
//!
//! It must stay the same as the sea-orm path it stands in for: the same
//! rows, the same encodings (UUIDs as 16-byte blobs, timestamps as RFC 3339
//! text, as sqlx writes them), the same outbox rows, log entries and
//! changes. The PostgreSQL test run exercises the sea-orm path, the SQLite
//! run this one, with the same tests. Only file databases take it; an
//! in-memory one (not shared between connections) stays on sea-orm.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use sea_orm::{DatabaseConnection, DbBackend};
use uuid::Uuid;

use super::DbError;
use super::audit_log::{HEAD_ID, chain_after, missing_head};
use super::changes::numbered_after;
use super::entity::{audit, idempotency_key, outbox as outbox_row, photo};
use super::idempotency::{self, Claim};
use super::outbox;

mod writer;

use writer::Gone;

/// Idle connections kept per database; more are opened when requests need
/// them, and closed when they come back to a full shelf.
const IDLE: usize = 16;

/// How long a statement waits for a lock another process holds (the
/// command line sealing the log, say) before it fails, as on sea-orm's
/// connections. Writes of this process queue for the writer thread instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the write-ahead log is copied back into the
/// database file while writes come in (see [`Embedded::checkpoint_soon`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Rounds of [`CHECKPOINT_EVERY`] a checkpoint goes on trying while a
/// reader keeps it from copying every frame.
const CHECKPOINT_RETRIES: u32 = 50;

/// Size of the write-ahead log, in pages, at which a writer on these
/// connections copies it back itself: only when the background checkpoints
/// fall behind (SQLite's default is 1,000 pages).
const WRITER_CHECKPOINT_PAGES: u32 = 20_000;

/// The connections to one database file.
pub(super) struct Embedded {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    checkpoints: Checkpoints,
}

/// Background checkpoints of one database (see [`Embedded::checkpoint_soon`]).
#[derive(Default)]
struct Checkpoints {
    /// A checkpoint is scheduled or running.
    scheduled: AtomicBool,
    /// Checkpoints asked for so far: one asked for while another runs may
    /// come after that one has passed the frames it is meant for.
    asked: AtomicU64,
}

/// The embedded path for `db`, or `None` when it does not apply
/// (PostgreSQL, an in-memory SQLite database).
pub(super) fn of(db: &DatabaseConnection) -> Option<Arc<Embedded>> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let options = db.get_sqlite_connection_pool().connect_options();
    let path = options.get_filename();
    if path == Path::new(":memory:") || path.as_os_str().is_empty() {
        return None;
    }
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<Embedded>>>> = OnceLock::new();
    let mut open = OPEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(embedded) = open.get(path) {
        return Some(Arc::clone(embedded));
    }
    let embedded = Arc::new(Embedded {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
        checkpoints: Checkpoints::default(),
    });
    open.insert(path.to_owned(), Arc::clone(&embedded));
    Some(embedded)
}

impl Embedded {
    /// One audit by id.
    ///
    /// # Errors
    /// Database failure, or a row that does not decode.
    pub(super) fn audit(&self, id: Uuid) -> Result<Option<audit::Model>, DbError> {
        self.with(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audits WHERE id = ?1"
            ))?
            .query_row(params![id.as_bytes()], audit_row)
            .optional()
            .map_err(DbError::from)
        })
    }

    /// The photos of an audit, oldest first.
    ///
    /// # Errors
    /// Database failure, or a row that does not decode.
    pub(super) fn photos(&self, audit_id: Uuid) -> Result<Vec<photo::Model>, DbError> {
        self.with(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                photo_columns!(),
                " FROM photos WHERE audit_id = ?1 ORDER BY created_at, id"
            ))?
            .query_map(params![audit_id.as_bytes()], photo_row)?
            .collect::<rusqlite::Result<_>>()
            .map_err(DbError::from)
        })
    }

    /// Writes `after`'s answers, version and time over the audit `before`
    /// describes, if it is still as `before` shows it, records the step in
    /// the outbox with `row`, and stores the response `done` of the
    /// request's `Idempotency-Key`, in one transaction; `after` if it wrote,
    /// and whether it stored the response (see
    /// [`super::audits::write_answers`], which builds `after` and `row`
    /// before the write, so that the writer runs only the statements).
    ///
    /// # Errors
    /// Database failure; nothing is written then.
    pub(super) async fn update_answers(
        self: &Arc<Self>,
        before: &audit::Model,
        after: audit::Model,
        row: outbox::Row,
        done: Option<idempotency::Completion>,
    ) -> Result<Option<(audit::Model, bool)>, DbError> {
        let (updated_at, created_at) = (timestamp(after.updated_at), timestamp(row.created_at));
        let (id, version, status, revision) = (
            before.id.into_bytes(),
            before.version,
            before.status.clone(),
            before.revision,
        );
        let claimed_by = before.claimed_by.map(Uuid::into_bytes);
        self.write(Gone::Skip, move |conn| {
            let updated = conn
                .prepare_cached(
                    "UPDATE audits SET version = version + 1, updated_at = ?1, answers = ?2 \
                     WHERE id = ?3 AND version = ?4 AND status = ?5 AND revision = ?6 \
                     AND claimed_by IS ?7",
                )?
                .execute(params![
                    updated_at,
                    after.answers,
                    id,
                    version,
                    status,
                    revision,
                    claimed_by,
                ])?;
            if updated == 0 {
                return Ok(None);
            }
            conn.prepare_cached(
                "INSERT INTO outbox (entry, change, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![row.entry, row.change, created_at])?;
            let stored = match &done {
                Some(done) => store_response(conn, done)?,
                None => false,
            };
            // The sealer is woken here rather than by the request, which
            // may be gone by the time the batch commits; its pass queues
            // for this writer, behind this batch, so it finds the row.
            outbox::written();
            Ok(Some((after, stored)))
        })
        .await
    }

    /// [`idempotency::claim`] in one transaction: inserts the key's row,
    /// or judges the stored one and takes it over if it may.
    ///
    /// # Errors
    /// Database failure; nothing is written then.
    pub(super) async fn claim_key(
        self: &Arc<Self>,
        user: Uuid,
        key: &str,
        request_hash: &str,
    ) -> Result<Claim, DbError> {
        let (key, request_hash) = (key.to_owned(), request_hash.to_owned());
        self.write(Gone::Skip, move |conn| {
            let now = super::now();
            let ts = timestamp(now);
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO idempotency_keys (user_id, \"key\", request_hash, created_at, \
                     updated_at) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
                )?
                .execute(params![user.as_bytes(), key, request_hash, ts])?;
            if inserted == 1 {
                return Ok(Claim::Fresh { claimed_at: now });
            }
            let existing = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM idempotency_keys WHERE user_id = ?1 AND \"key\" = ?2"
                ))?
                .query_row(params![user.as_bytes(), key], key_row)?;
            if let Some(claim) = idempotency::judge(existing, &request_hash, now)? {
                return Ok(claim);
            }
            conn.prepare_cached(
                "UPDATE idempotency_keys SET request_hash = ?3, status_code = NULL, \
                 response_headers = NULL, response_body = NULL, response_deflated = NULL, \
                 created_at = ?4, updated_at = ?4 WHERE user_id = ?1 AND \"key\" = ?2",
            )?
            .execute(params![user.as_bytes(), key, request_hash, ts])?;
            Ok(Claim::Fresh { claimed_at: now })
        })
        .await
    }

    /// [`idempotency::complete`]: stores the response of a claimed key, its
    /// body deflated, if the key is still claimed by the request that
    /// claimed it; whether it stored it.
    ///
    /// # Errors
    /// Database failure.
    pub(super) async fn complete_key(
        self: &Arc<Self>,
        done: idempotency::Completion,
    ) -> Result<bool, DbError> {
        self.write(Gone::Run, move |conn| Ok(store_response(conn, &done)?))
            .await
    }

    /// [`idempotency::release`]: frees a key if the claim `claim` describes
    /// still holds it unfinished.
    ///
    /// # Errors
    /// Database failure.
    pub(super) async fn release_key(
        self: &Arc<Self>,
        claim: idempotency::KeyClaim,
    ) -> Result<(), DbError> {
        self.write(Gone::Run, move |conn| {
            conn.prepare_cached(
                "DELETE FROM idempotency_keys WHERE user_id = ?1 AND \"key\" = ?2 \
                 AND request_hash = ?3 AND created_at = ?4 AND status_code IS NULL",
            )?
            .execute(params![
                claim.user.as_bytes(),
                claim.key,
                claim.request_hash,
                timestamp(claim.claimed_at)
            ])?;
            Ok(())
        })
        .await
    }

    /// One sealing pass (see [`outbox`]), the same as the sea-orm one: moves
    /// up to [`outbox::BATCH`] committed outbox rows, or row `only`, into
    /// the log and the feed; returns how many rows it took out of line.
    ///
    /// # Errors
    /// Database failure; nothing is moved then.
    pub(super) async fn seal(self: Arc<Self>, only: Option<i64>) -> Result<usize, DbError> {
        self.write(Gone::Run, move |txn| {
            let rows = txn
                .prepare_cached(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                     WHERE failure IS NULL AND (?1 IS NULL OR id = ?1) ORDER BY id LIMIT ?2) \
                     RETURNING id, entry, change, created_at, failure",
                )?
                .query_map(
                    params![only, i64::try_from(outbox::BATCH).unwrap_or(i64::MAX)],
                    outbox_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if rows.is_empty() {
                return Ok(0);
            }
            let sorted = outbox::Sorted::out(rows);
            let mut back = txn.prepare_cached(
                "INSERT INTO outbox (id, entry, change, created_at, failure) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for row in &sorted.back {
                back.execute(params![
                    row.id,
                    row.entry,
                    row.change,
                    timestamp(row.created_at),
                    row.failure
                ])?;
            }
            drop(back);
            if !sorted.entries.is_empty() {
                let (seq, hash) = txn
                    .prepare_cached("SELECT seq, hash FROM audit_log_head WHERE id = ?1")?
                    .query_row(params![HEAD_ID], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .optional()?
                    .ok_or_else(missing_head)?;
                let (sealed, seq, hash) = chain_after(seq, hash, sorted.entries);
                let mut insert = txn.prepare_cached(
                    "INSERT INTO audit_log (seq, at, actor_id, actor_role, action, target_type, \
                     target_id, region_code, sector, before_digest, after_digest, detail, \
                     request_id, prev_hash, hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?;
                for e in &sealed {
                    insert.execute(params![
                        e.seq,
                        timestamp(e.at),
                        e.actor_id.map(Uuid::into_bytes),
                        e.actor_role,
                        e.action,
                        e.target_type,
                        e.target_id,
                        e.region_code,
                        e.sector,
                        e.before_digest,
                        e.after_digest,
                        e.detail,
                        e.request_id,
                        e.prev_hash,
                        e.hash,
                    ])?;
                }
                drop(insert);
                txn.prepare_cached("UPDATE audit_log_head SET seq = ?1, hash = ?2 WHERE id = ?3")?
                    .execute(params![seq, hash, HEAD_ID])?;
            }
            if !sorted.changes.is_empty() {
                let last: Option<i64> = txn
                    .prepare_cached("SELECT MAX(seq) FROM changes")?
                    .query_row([], |r| r.get(0))?;
                let mut insert = txn.prepare_cached(
                    "INSERT INTO changes (seq, kind, audit_id, owner_id, organisation_id, \
                     region_code, sector, audit_status, payload, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for c in numbered_after(last.unwrap_or(0), sorted.changes) {
                    insert.execute(params![
                        c.seq,
                        c.kind,
                        c.audit_id.map(Uuid::into_bytes),
                        c.owner_id.map(Uuid::into_bytes),
                        c.organisation_id.map(Uuid::into_bytes),
                        c.region_code,
                        c.sector,
                        c.audit_status,
                        c.payload,
                        timestamp(c.created_at),
                    ])?;
                }
            }
            Ok(sorted.done)
        })
        .await
    }

    /// Copies the write-ahead log back into the database file shortly, on
    /// a thread of its own, unless that is already scheduled. SQLite would
    /// otherwise do it inside the commit that fills the log, with two
    /// `fsync`s, while that writer holds the turn and every other writer
    /// waits. A passive checkpoint lets writers go on meanwhile.
    ///
    /// The thread goes round again while it has not caught up: when a
    /// checkpoint was asked for while it ran (its commit may have come after
    /// the frames it copied), or when a reader still on an older snapshot
    /// kept it from copying every frame. Otherwise the last writes before a
    /// quiet spell would stay in the log alone, where a copy of the
    /// database file (what a naive backup takes) does not have them.
    fn checkpoint_soon(self: &Arc<Self>) {
        let checkpoints = &self.checkpoints;
        // Sequentially consistent, here and in the loop: each side writes
        // one flag and then reads the other's, and one of them must see
        // the other's write.
        checkpoints.asked.fetch_add(1, Ordering::SeqCst);
        if checkpoints.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        // A thread of its own, not the runtime's: the writer thread asks
        // too, and a runtime shutting down need not wait for it.
        let db = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("dostup-sqlite-checkpoint".to_owned())
            .spawn(move || db.checkpoint_until_caught_up());
        if let Err(err) = spawned {
            self.checkpoints.scheduled.store(false, Ordering::SeqCst);
            tracing::warn!(error = %err, "cannot start a checkpoint thread; the next write asks again");
        }
    }

    /// The loop of [`Embedded::checkpoint_soon`]'s thread.
    fn checkpoint_until_caught_up(&self) {
        let checkpoints = &self.checkpoints;
        let mut behind = 0;
        loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            let asked = checkpoints.asked.load(Ordering::SeqCst);
            let copied = self.with(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    // (busy, frames in the log, frames copied back); a
                    // checkpoint another connection runs (busy, -1, -1)
                    // may not have caught up either.
                    let (busy, log, copied): (i64, i64, i64) =
                        (row.get(0)?, row.get(1)?, row.get(2)?);
                    Ok(busy == 0 && log >= 0 && copied >= log)
                })
                .map_err(DbError::from)
            });
            let caught_up = match copied {
                Ok(all) => all,
                Err(err) => {
                    tracing::warn!(error = %err, "copying the write-ahead log into the database failed");
                    true
                }
            };
            behind = if caught_up { 0 } else { behind + 1 };
            checkpoints.scheduled.store(false, Ordering::SeqCst);
            let asked_since = checkpoints.asked.load(Ordering::SeqCst) != asked;
            // A reader that stays on its snapshot is waited for a few
            // seconds at most; the next write asks again.
            let again = asked_since || (behind > 0 && behind < CHECKPOINT_RETRIES);
            // Round again unless nothing is left, or a checkpoint asked
            // for after the flag was cleared has taken over.
            if !again || checkpoints.scheduled.swap(true, Ordering::SeqCst) {
                break;
            }
        }
    }

    /// Runs `work`, the statements of one write, on the writer thread (see
    /// [`writer`]), in a transaction committed with the other writes that
    /// came in meanwhile.
    async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        gone: Gone,
        work: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        writer::write(Arc::clone(self), gone, work).await
    }

    /// Runs `work` on an idle connection (or a new one) and puts it back.
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = work(&mut conn);
        // A connection left inside a transaction is not reused (rusqlite
        // rolls back a transaction it drops, after a failed `COMMIT` too;
        // this is for when that rollback fails as well).
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE {
                idle.push(conn);
            }
        }
        result
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The same per-connection settings as sea-orm's (`db::connect`); the
        // journal mode (WAL) is the file's own.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        Ok(conn)
    }
}

impl From<rusqlite::Error> for DbError {
    /// As [`DbError`] from sea-orm's errors: unique and foreign-key
    /// violations get their own variants.
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(failure, message) = &err {
            let message = message.clone().unwrap_or_else(|| failure.to_string());
            match failure.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return Self::Conflict(message);
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Self::MissingReference(message),
                _ => {}
            }
        }
        Self::Sqlite(err)
    }
}

/// The columns of [`audit::Model`], in its order (a macro, so that the
/// statements are literals prepared without building a string each time).
macro_rules! audit_columns {
    () => {
        "id, site_id, institution_id, region_code, sector, created_by, organisation_id, status, \
         methodology_id, methodology_version, release_hash, answers, version, create_fingerprint, \
         started_at, submitted_at, revision, claimed_by, claimed_at, created_at, updated_at"
    };
}
use audit_columns;

fn audit_row(row: &Row<'_>) -> rusqlite::Result<audit::Model> {
    Ok(audit::Model {
        id: row.get::<_, Id>(0)?.0,
        site_id: row.get::<_, Id>(1)?.0,
        institution_id: row.get::<_, Id>(2)?.0,
        region_code: row.get(3)?,
        sector: row.get(4)?,
        created_by: row.get::<_, Id>(5)?.0,
        organisation_id: row.get::<_, Option<Id>>(6)?.map(|i| i.0),
        status: row.get(7)?,
        methodology_id: row.get(8)?,
        methodology_version: row.get(9)?,
        release_hash: row.get(10)?,
        answers: row.get(11)?,
        version: row.get(12)?,
        create_fingerprint: row.get(13)?,
        started_at: row.get(14)?,
        submitted_at: row.get(15)?,
        revision: row.get(16)?,
        claimed_by: row.get::<_, Option<Id>>(17)?.map(|i| i.0),
        claimed_at: row.get(18)?,
        created_at: row.get(19)?,
        updated_at: row.get(20)?,
    })
}

fn outbox_row(row: &Row<'_>) -> rusqlite::Result<outbox_row::Model> {
    Ok(outbox_row::Model {
        id: row.get(0)?,
        entry: row.get(1)?,
        change: row.get(2)?,
        created_at: row.get(3)?,
        failure: row.get(4)?,
    })
}

/// The columns of [`idempotency_key::Model`], in its order.
macro_rules! key_columns {
    () => {
        "user_id, \"key\", request_hash, status_code, response_headers, response_body, \
         response_deflated, created_at, updated_at"
    };
}
use key_columns;

fn key_row(row: &Row<'_>) -> rusqlite::Result<idempotency_key::Model> {
    Ok(idempotency_key::Model {
        user_id: row.get::<_, Id>(0)?.0,
        key: row.get(1)?,
        request_hash: row.get(2)?,
        status_code: row.get(3)?,
        response_headers: row.get(4)?,
        response_body: row.get(5)?,
        response_deflated: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

/// The columns of [`photo::Model`], in its order.
macro_rules! photo_columns {
    () => {
        "id, audit_id, item_key, sha256, content_type, byte_size, width, height, captured_at, \
         gps_latitude, gps_longitude, device, flags, client_photo_id, uploaded_by, created_at, \
         updated_at"
    };
}
use photo_columns;

fn photo_row(row: &Row<'_>) -> rusqlite::Result<photo::Model> {
    Ok(photo::Model {
        id: row.get::<_, Id>(0)?.0,
        audit_id: row.get::<_, Id>(1)?.0,
        item_key: row.get(2)?,
        sha256: row.get(3)?,
        content_type: row.get(4)?,
        byte_size: row.get(5)?,
        width: row.get(6)?,
        height: row.get(7)?,
        captured_at: row.get(8)?,
        gps_latitude: row.get(9)?,
        gps_longitude: row.get(10)?,
        device: row.get(11)?,
        flags: row.get(12)?,
        client_photo_id: row.get(13)?,
        uploaded_by: row.get::<_, Id>(14)?.0,
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
    })
}

/// A UUID as sqlx stores it: 16 bytes (text is read too).
struct Id(Uuid);

impl FromSql for Id {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let parsed = match value {
            ValueRef::Blob(bytes) => Uuid::from_slice(bytes),
            ValueRef::Text(text) => Uuid::try_parse_ascii(text),
            _ => return Err(FromSqlError::InvalidType),
        };
        parsed.map(Id).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// Stores the response of a claimed key if the key is still claimed by the
/// request that claimed it; whether it stored it.
fn store_response(conn: &Connection, done: &idempotency::Completion) -> rusqlite::Result<bool> {
    let stored = conn
        .prepare_cached(
            "UPDATE idempotency_keys SET status_code = ?4, response_headers = ?5, \
             response_deflated = ?6, updated_at = ?7 WHERE user_id = ?1 \
             AND \"key\" = ?2 AND request_hash = ?3 AND created_at = ?8 \
             AND status_code IS NULL",
        )?
        .execute(params![
            done.claim.user.as_bytes(),
            done.claim.key,
            done.claim.request_hash,
            done.status,
            done.headers,
            &done.deflated()[..],
            timestamp(super::now()),
            timestamp(done.claim.claimed_at)
        ])?;
    Ok(stored == 1)
}

/// A timestamp as sqlx writes it, so that text comparisons in queries
/// (`updated_at >= ?`) order both drivers' rows alike. (rusqlite's own
/// writes a space for the `T`; its reading takes both, and SQLite's
/// `YYYY-MM-DD HH:MM:SS`.)
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_sqlx_writes_them() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T09:31:49.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2026-12-03T09:31:49.123456+00:00");
        let whole = DateTime::parse_from_rfc3339("2026-12-03T09:31:49Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(whole), "2026-12-03T09:31:49+00:00");
    }

    #[test]
    fn timestamps_read_in_both_forms() {
        let read = |text: &str| DateTime::<Utc>::column_result(ValueRef::Text(text.as_bytes()));
        let expected = DateTime::parse_from_rfc3339("2026-12-03T09:31:49.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(read("2026-12-03T09:31:49.5+00:00").unwrap(), expected);
        assert_eq!(read("2026-12-03 09:31:49.5").unwrap(), expected);
        assert!(read("yesterday").is_err());
    }

    #[test]
    fn ids_read_from_blobs_and_text() {
        let id = Uuid::now_v7();
        let blob = Id::column_result(ValueRef::Blob(id.as_bytes())).unwrap();
        assert_eq!(blob.0, id);
        let text = id.to_string();
        let text = Id::column_result(ValueRef::Text(text.as_bytes())).unwrap();
        assert_eq!(text.0, id);
        assert!(Id::column_result(ValueRef::Blob(&[1, 2, 3])).is_err());
        assert!(Id::column_result(ValueRef::Integer(7)).is_err());
    }

    /// The last write before a quiet spell reaches the database file even
    /// when a reader on an older snapshot held up the first checkpoint
    /// after it: a copy of the file alone, as a naive backup takes, has it.
    #[tokio::test]
    async fn the_last_write_reaches_the_file_though_a_reader_held_up_the_checkpoint() {
        let (dir, db) = writer::tests::database();
        let file = dir.path().join("writer.db");
        let reader = Connection::open(&file).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM names;")
            .unwrap();
        db.write(Gone::Run, |conn| {
            conn.execute("INSERT INTO names (name) VALUES ('last')", [])?;
            Ok(())
        })
        .await
        .unwrap();
        // The writer asked for a checkpoint with its commit. The first one
        // runs while the reader still needs the file
        // as it was before the write.
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        reader.execute_batch("COMMIT").unwrap();

        let copy = dir.path().join("copy.db");
        let in_file = || {
            std::fs::copy(&file, &copy).unwrap();
            Connection::open(&copy)
                .unwrap()
                .query_row("SELECT count(*) FROM names WHERE name = 'last'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
                == 1
        };
        let mut waited = Duration::ZERO;
        while !in_file() {
            assert!(
                waited < Duration::from_secs(10),
                "the write is still only in the write-ahead log"
            );
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            waited += CHECKPOINT_EVERY;
        }
    }
}
