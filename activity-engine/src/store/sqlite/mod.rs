//! The SQLite store: bundled SQLite, WAL, one writer thread with group commit.
//!
//! # Why one writer thread
//!
//! SQLite allows one writer at a time; a dedicated thread that owns the only
//! connection serializes every transaction without lock contention, and can batch
//! whatever requests queued up while the previous commit was flushing into one
//! transaction (group commit). Reads go through the same thread: they are cheap,
//! and every answer then reflects every acknowledged change.
//!
//! A request is handed to the writer over a channel and answered through a tokio
//! oneshot, so the async runtime never blocks and one commit wakes every waiter
//! of its batch directly (no thread hop per request). While any request is in
//! flight, one *guard* task waits on tokio's blocking pool (`spawn_blocking`): a
//! paused (virtual) tokio clock does not auto-advance while a blocking task is in
//! flight, so time cannot skip past a timer while the store is still working on a
//! request that would, say, move that timer. The guard is started when the count
//! of requests in flight goes from zero to one and ends when it is back to zero
//! (after the answers were sent), so a busy store spawns almost none.
//!
//! # Durability
//!
//! A file database runs with `journal_mode=WAL`, `synchronous=FULL` (every commit
//! is on disk before it is acknowledged) and `locking_mode=EXCLUSIVE` (one engine
//! per file: a second engine opening the same file is refused, since the engine's
//! wake-ups are in-process), with savepoint journals in memory
//! (`temp_store=MEMORY`). An in-memory database (for tests) has the same
//! semantics without the disk.
//!
//! # Schema
//!
//! The tables, their versions and the numbered migrations that upgrade older
//! databases in place are in [`schema`]; the statements on them are the
//! shared SQL implementation of [`Tx`](super::Tx) (module `sql`), run here
//! through its connection adapter.

use std::{
    fmt::Write as _,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
};

use activity_core::definition::BoxFuture;
use rusqlite::{types::ValueRef, Connection, ErrorCode};

use super::{
    sql::{Conn, Param, Query, SqlTx, Value},
    InFlight, Store, StoreError, TxJob,
};

pub mod schema;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;

/// Prepared statements kept (more than the store uses).
const STATEMENT_CACHE: usize = 256;

type Reply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

enum Message {
    Job(TxJob, Reply),
    Close(mpsc::SyncSender<()>),
}

/// The SQLite store. See the [module docs](self).
pub struct SqliteStore {
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    location: String,
    counters: Arc<Counters>,
    in_flight: Arc<InFlight>,
}

#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    jobs: AtomicU64,
}

/// What the writer has done so far: group commit at work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Jobs (engine requests) committed in them.
    pub jobs: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    ///
    /// Refused at once, with the file named and what to do: a file another engine
    /// holds, an empty (0-byte) file where a database was expected, a file that is
    /// not a SQLite database, a read-only file or mount, and a database that fails
    /// SQLite's `quick_check` (a corrupted page is found at start, not at the first
    /// write that touches it; the check reads the whole file once, ≈ 0.1 s per
    /// 100 MB here).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path: PathBuf = path.as_ref().to_owned();
        refuse_empty_file(&path)?;
        let shown = path.display();
        let conn = Connection::open(&path).map_err(|e| open_error(&path, e))?;
        // One engine per file: a locked file is refused at once, not after a wait,
        // with the file's name and what holds it.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(sql_error)?;
        // temp_store: the savepoint journal of each grouped request (only used to
        // roll that request back) stays in memory instead of a temp file; commits
        // and their durability are unchanged.
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             BEGIN IMMEDIATE; COMMIT;",
        )
        .map_err(|e| open_error(&path, e))?;
        let problems: Vec<String> = conn
            .prepare("PRAGMA quick_check(5)")
            .and_then(|mut check| {
                check
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| open_error(&path, e))?;
        if problems.iter().any(|line| line != "ok") {
            return Err(StoreError::Corrupt(format!(
                "the database file `{shown}` fails SQLite's integrity check ({}): it was \
                 damaged (a disk fault, or a copy taken while an engine was writing it); \
                 restore it from a backup (`sqlite3 FILE .recover` may save what is still \
                 readable)",
                problems.join("; ")
            )));
        }
        Self::start(conn, shown.to_string())
    }

    /// Opens a new, empty in-memory database (for tests: gone when closed).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(sql_error)?;
        Self::start(conn, ":memory:".to_owned())
    }

    fn start(conn: Connection, location: String) -> Result<Self, StoreError> {
        // Every statement of the store stays prepared (rusqlite keeps 16 by
        // default: with more in use, the least recent were parsed again each time).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&conn)?;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let in_flight = Arc::new(InFlight::default());
        let (writer_counters, writer_in_flight) = (counters.clone(), in_flight.clone());
        thread::Builder::new()
            .name("activity-sqlite-writer".into())
            .spawn(move || writer(conn, receiver, &writer_counters, &writer_in_flight))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            location,
            counters,
            in_flight,
        })
    }

    /// Transactions and jobs committed so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Message>> {
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Store for SqliteStore {
    fn transact(&self, job: TxJob) -> BoxFuture<'static, Result<(), StoreError>> {
        let sender = self.sender();
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            let Some(sender) = sender else {
                return Err(StoreError::Closed);
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            in_flight.begin();
            if sender.send(Message::Job(job, reply)).is_err() {
                in_flight.end(1);
                return Err(StoreError::Closed);
            }
            // The writer answers every job it receives (and uncounts it); a
            // dropped reply means the writer is gone.
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            if let Some(sender) = sender {
                let _ = tokio::task::spawn_blocking(move || {
                    let (reply, done) = mpsc::sync_channel(1);
                    if sender.send(Message::Close(reply)).is_ok() {
                        // The writer answers after dropping the connection.
                        let _ = done.recv();
                    }
                })
                .await;
            }
        })
    }
}

fn writer(
    conn: Connection,
    receiver: mpsc::Receiver<Message>,
    counters: &Counters,
    in_flight: &InFlight,
) {
    let mut conn = Some(conn);
    while let Ok(first) = receiver.recv() {
        let mut jobs = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job, reply) => jobs.push((job, reply)),
                Message::Close(reply) => {
                    close = Some(reply);
                    break;
                }
            }
            if jobs.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        let answered = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
        if let Some(c) = conn.as_ref() {
            run_batch(c, jobs, counters);
        } else {
            for (_, reply) in jobs {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
        in_flight.end(answered);
        if let Some(reply) = close {
            drop(conn.take());
            let _ = reply.send(());
            // Answer whatever raced with the close.
            while let Ok(message) = receiver.try_recv() {
                if let Message::Job(_, reply) = message {
                    let _ = reply.send(Err(StoreError::Closed));
                    in_flight.end(1);
                }
            }
            return;
        }
    }
}

fn run_batch(conn: &Connection, jobs: Vec<(TxJob, Reply)>, counters: &Counters) {
    if jobs.is_empty() {
        return;
    }
    let began = std::time::Instant::now();
    if let Err(e) = execute_cached(conn, "BEGIN IMMEDIATE") {
        let err = sql_error(e);
        for (_, reply) in jobs {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    }
    let mut replies = Vec::with_capacity(jobs.len());
    let mut broken: Option<StoreError> = None;
    for (job, reply) in jobs {
        if broken.is_some() {
            replies.push(reply);
            continue;
        }
        if let Err(e) = execute_cached(conn, "SAVEPOINT job") {
            broken = Some(sql_error(e));
            replies.push(reply);
            continue;
        }
        let mut sqlite = SqliteConn { conn };
        let mut tx = SqlTx::new(&mut sqlite);
        let keep = catch_unwind(AssertUnwindSafe(|| job(&mut tx))).unwrap_or(false);
        let end = if keep {
            execute_cached(conn, "RELEASE job")
        } else {
            execute_cached(conn, "ROLLBACK TO job")
                .and_then(|()| execute_cached(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            broken = Some(sql_error(e));
        }
        replies.push(reply);
    }
    let outcome = match broken {
        Some(err) => Err(err),
        None => execute_cached(conn, "COMMIT").map_err(sql_error),
    };
    if outcome.is_ok() {
        // The metrics of the engine's module docs (`activity_engine::engine::metrics`).
        metrics::histogram!("activity_store_commit_seconds").record(began.elapsed().as_secs_f64());
        metrics::histogram!("activity_store_batch_jobs").record(replies.len() as f64);
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.jobs.fetch_add(
            u64::try_from(replies.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    } else {
        // Nothing of the batch is kept; a failed rollback leaves the connection
        // in autocommit mode anyway once SQLite gave up the transaction.
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        let _ = reply.send(outcome.clone());
    }
}

/// Runs one statement from the connection's statement cache (the transaction
/// and savepoint statements of every job: parsed once, not per job).
fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// A 0-byte file where a database was expected is refused: SQLite would start a
/// fresh, empty engine on it, and a truncated copy or a wrong path would look like
/// an engine that lost everything. A missing file is created; an empty one with a
/// write-ahead log beside it is opened (the log holds its changes).
fn refuse_empty_file(path: &Path) -> Result<(), StoreError> {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if len(path) == Some(0) && len(Path::new(&wal)).unwrap_or(0) == 0 {
        return Err(StoreError::Corrupt(format!(
            "the database file `{}` exists but is empty (0 bytes), so it holds no engine \
             data: for a new engine, remove it (or give a path that does not exist yet) and \
             the engine creates the database; if it should hold data, restore it from a backup",
            path.display()
        )));
    }
    Ok(())
}

/// Why a database file could not be opened, with the file named.
fn open_error(path: &Path, err: rusqlite::Error) -> StoreError {
    let shown = path.display();
    let code = err.sqlite_error_code();
    // SQLite reports a read-only file or mount as one of several codes (often a bare
    // "disk I/O error"): ask the file system.
    if matches!(
        code,
        Some(ErrorCode::ReadOnly | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen)
    ) {
        let probe = std::fs::OpenOptions::new().append(true).open(path);
        if let Err(e) = probe {
            if matches!(
                e.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) {
                return StoreError::Unavailable(format!(
                    "the database file `{shown}` is read-only ({e}): the engine writes every \
                     change to it and to `{shown}-wal` beside it; make both writable (or \
                     remount the file system read-write), or use another path"
                ));
            }
        }
    }
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!(
                "the database file `{shown}` is locked: another engine has it open (another \
                 process, e.g. `activity-server serve` or a program embedding the engine, or \
                 another `Engine` in this one); stop it, or use another file"
            ))
        }
        Some(ErrorCode::ReadOnly) => StoreError::Unavailable(format!(
            "the database file `{shown}` cannot be written ({err}): the engine writes every \
             change to it and to `{shown}-wal` beside it; make both writable, or use \
             another path"
        )),
        Some(ErrorCode::CannotOpen) => StoreError::Unavailable(format!(
            "cannot open the database file `{shown}` ({err}): its directory must exist and \
             be writable (the engine also creates `{shown}-wal` and `{shown}-shm` there)"
        )),
        Some(ErrorCode::NotADatabase) => StoreError::Corrupt(format!(
            "`{shown}` is not a SQLite database (its header is something else): give the \
             engine's database file, or a path that does not exist yet for a new engine"
        )),
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(format!(
            "the database file `{shown}` is damaged ({err}): restore it from a backup \
             (`sqlite3 FILE .recover` may save what is still readable)"
        )),
        _ => sql_error(err),
    }
}

fn sql_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(err.to_string()),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(err.to_string())
        }
        _ => StoreError::Backend(err.to_string()),
    }
}

/// The shared SQL on a SQLite connection.
pub(crate) struct SqliteConn<'c> {
    conn: &'c Connection,
}

impl SqliteConn<'_> {
    fn prepare(
        &self,
        query: &Query,
        params: &[Param<'_>],
    ) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        let mut statement = self.conn.prepare_cached(query.sql)?;
        // Parameters are bound by name (`$n`): SQLite numbers named parameters
        // in order of first appearance, not by their digits.
        let mut name = String::with_capacity(4);
        for (i, param) in params.iter().enumerate() {
            name.clear();
            let _ = write!(name, "${}", i + 1);
            let Some(index) = statement.parameter_index(&name)? else {
                return Err(rusqlite::Error::InvalidParameterName(name));
            };
            match param {
                Param::Null => statement.raw_bind_parameter(index, rusqlite::types::Null)?,
                Param::Int(v) => statement.raw_bind_parameter(index, v)?,
                Param::Bool(v) => statement.raw_bind_parameter(index, v)?,
                Param::Real(v) => statement.raw_bind_parameter(index, v)?,
                Param::Text(v) => statement.raw_bind_parameter(index, v)?,
                Param::Blob(v) => statement.raw_bind_parameter(index, &**v)?,
            }
        }
        Ok(statement)
    }
}

impl Conn for SqliteConn<'_> {
    fn execute(&mut self, query: &Query, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut statement = self.prepare(query, params).map_err(sql_error)?;
        let changed = statement.raw_execute().map_err(sql_error)?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(
        &mut self,
        query: &Query,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut statement = self.prepare(query, params).map_err(sql_error)?;
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(sql_error)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(v) => {
                        Value::Text(String::from_utf8(v.to_vec()).map_err(|e| {
                            StoreError::Corrupt(format!("stored text is not UTF-8: {e}"))
                        })?)
                    }
                    ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    fn row_locks(&self) -> bool {
        // One writer: nothing runs concurrently with a transaction.
        false
    }
}
