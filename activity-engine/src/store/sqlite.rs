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
//! # Schema (version 3)
//!
//! - `meta(key, value)`: engine metadata: schema version, task-token key.
//! - `executions`: one row per activity execution: ids (`scope`, `activity_id`,
//!   unique together; `scope` is `""` for standalone activities and the run id for
//!   a workflow's; `workflow_id`/`workflow_run_id`/`workflow_seq` are `NULL` for
//!   standalone activities), type, queue, input, validated
//!   options (JSON), state, attempt, times, worker, heartbeat details, cancel flag,
//!   last failure (JSON), retry state, result. A partial index on
//!   `(task_queue, attempt_scheduled_at, key) WHERE state = 'SCHEDULED'` is the
//!   dispatch order (FIFO by dispatchable time).
//! - `timers(execution_key, kind, attempt, due_at)`: durable timers, one per
//!   execution and kind, indexed by due time; re-armed from the rows at open.
//! - `task_queues(name, rate_limit, bucket_tokens, bucket_at)`: the queue's global
//!   rate limit and its token bucket.
//! - `pollers(task_queue, identity, last_poll_at)`: recent pollers.
//! - `workflow_runs`: one row per workflow run: `workflow_id`, `run_id` (unique),
//!   type, queue, input, state, outcome (JSON), cancel flag, times, history length,
//!   and its workflow task (state, number, scheduled/started time, worker,
//!   consecutive failures). A partial unique index allows one RUNNING run per
//!   workflow id; a partial index on `(task_queue, task_scheduled_at, key) WHERE
//!   task_state = 'SCHEDULED'` is the workflow task dispatch order; an index on
//!   `(started_at DESC, key DESC)` serves listing runs newest first.
//! - `workflow_history(run_key, event_id, time, kind)`: the append-only history,
//!   event ids from 1 without gaps, the event kind as JSON.
//! - `workflow_buffered_events(position, run_key, time, kind)`: events that
//!   arrived while the run's workflow task was started, appended after its answer.
//! - `workflow_timers(run_key, kind, seq, due_at)`: durable timers of runs (the
//!   workflow's own timers, workflow task timeouts and backoffs).
//! - `registered_types(kind, name, task_queue, arguments, input_schema,
//!   output_schema, identity, registered_at)`: the activity and workflow types
//!   workers registered, per task queue; schemas as JSON text.
//!
//! Version 1 databases (before workflows) and version 2 databases (before
//! registered types) are upgraded in place when opened.
//!
//! Payloads are stored as blobs (encoding name + bytes), never re-encoded.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Condvar, Mutex,
    },
    thread,
};

use activity_core::{
    clock::{from_millis, to_millis},
    definition::BoxFuture,
    failure::{Failure, RetryState},
    options::ValidatedOptions,
    payload::{Encoding, Payload},
    protocol::{ExecutionScope, ExecutionState, ListExecutionsRequest, TypeKind},
    workflow::{EventKind, HistoryEvent, ListWorkflowsRequest, WorkflowOutcome, WorkflowState},
};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::{
    ExecutionRecord, QueueRecord, RunRecord, Store, StoreError, TimerKind, TimerRecord, Tx, TxJob,
    TypeRecord, WorkflowTaskState, WorkflowTimerKind, WorkflowTimerRecord,
};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;
const SCHEMA_VERSION: &str = "3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    key                  INTEGER PRIMARY KEY AUTOINCREMENT,
    scope                TEXT NOT NULL,
    activity_id          TEXT NOT NULL,
    workflow_id          TEXT,
    workflow_run_id      TEXT,
    activity_type        TEXT NOT NULL,
    task_queue           TEXT NOT NULL,
    input                BLOB NOT NULL,
    options              TEXT NOT NULL,
    state                TEXT NOT NULL,
    attempt              INTEGER NOT NULL,
    scheduled_at         INTEGER NOT NULL,
    attempt_scheduled_at INTEGER NOT NULL,
    started_at           INTEGER,
    worker_identity      TEXT,
    heartbeat_details    BLOB,
    last_heartbeat_at    INTEGER,
    cancel_requested     INTEGER NOT NULL,
    last_failure         TEXT,
    retry_state          TEXT,
    result               BLOB,
    closed_at            INTEGER,
    workflow_seq         INTEGER,
    UNIQUE (scope, activity_id)
);
CREATE INDEX IF NOT EXISTS executions_dispatch
    ON executions (task_queue, attempt_scheduled_at, key) WHERE state = 'SCHEDULED';
CREATE TABLE IF NOT EXISTS timers (
    execution_key INTEGER NOT NULL REFERENCES executions (key),
    kind          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    PRIMARY KEY (execution_key, kind)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);
CREATE TABLE IF NOT EXISTS task_queues (
    name          TEXT PRIMARY KEY,
    rate_limit    REAL,
    bucket_tokens REAL NOT NULL,
    bucket_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pollers (
    task_queue   TEXT NOT NULL,
    identity     TEXT NOT NULL,
    last_poll_at INTEGER NOT NULL,
    PRIMARY KEY (task_queue, identity)
);
CREATE TABLE IF NOT EXISTS workflow_runs (
    key               INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id       TEXT NOT NULL,
    run_id            TEXT NOT NULL UNIQUE,
    workflow_type     TEXT NOT NULL,
    task_queue        TEXT NOT NULL,
    input             BLOB NOT NULL,
    state             TEXT NOT NULL,
    outcome           TEXT,
    cancel_requested  INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    closed_at         INTEGER,
    history_length    INTEGER NOT NULL,
    task_state        TEXT NOT NULL,
    task_seq          INTEGER NOT NULL,
    task_scheduled_at INTEGER NOT NULL,
    task_started_at   INTEGER,
    task_identity     TEXT,
    task_failures     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_runs_by_workflow_id ON workflow_runs (workflow_id, key);
CREATE INDEX IF NOT EXISTS workflow_runs_by_start ON workflow_runs (started_at DESC, key DESC);
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_one_running
    ON workflow_runs (workflow_id) WHERE state = 'RUNNING';
CREATE INDEX IF NOT EXISTS workflow_tasks_dispatch
    ON workflow_runs (task_queue, task_scheduled_at, key) WHERE task_state = 'SCHEDULED';
CREATE TABLE IF NOT EXISTS workflow_history (
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    event_id INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    PRIMARY KEY (run_key, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workflow_buffered_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    time     INTEGER NOT NULL,
    kind     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_buffered_by_run
    ON workflow_buffered_events (run_key, position);
CREATE TABLE IF NOT EXISTS workflow_timers (
    run_key INTEGER NOT NULL REFERENCES workflow_runs (key),
    kind    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    due_at  INTEGER NOT NULL,
    PRIMARY KEY (run_key, kind, seq)
);
CREATE INDEX IF NOT EXISTS workflow_timers_due ON workflow_timers (due_at);
CREATE TABLE IF NOT EXISTS registered_types (
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    task_queue    TEXT NOT NULL,
    arguments     TEXT NOT NULL,
    input_schema  TEXT,
    output_schema TEXT,
    identity      TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name, task_queue)
) WITHOUT ROWID;
";

/// Prepared statements kept (more than the store uses).
const STATEMENT_CACHE: usize = 256;

/// Indexes on columns that an upgrade adds, so made after it (idempotent).
/// `executions_by_seq`: a workflow command finds its activity by `seq` (without
/// it every schedule scanned the run's executions: quadratic in a fan-out).
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS executions_by_seq
    ON executions (scope, workflow_seq) WHERE workflow_seq IS NOT NULL;
";

/// Upgrades a version 1 database (before workflows): the new tables are made by
/// [`SCHEMA`]; executions gain the `seq` of the workflow command that made them.
const UPGRADE_FROM_1: &str = "ALTER TABLE executions ADD COLUMN workflow_seq INTEGER;";

type Reply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

enum Message {
    Job(TxJob, Reply),
    Close(mpsc::SyncSender<()>),
}

/// Requests in flight, and the guard that keeps a paused clock from skipping
/// ahead while there are any (see the module docs).
#[derive(Debug, Default)]
struct InFlight {
    count: Mutex<u64>,
    idle: Condvar,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new request; starts a guard when it is the only one.
    fn begin(self: &Arc<Self>) {
        let first = {
            let mut count = self.lock();
            *count += 1;
            *count == 1
        };
        if first {
            let this = self.clone();
            // Needs a runtime (transact is called from one); the guard only waits.
            drop(tokio::task::spawn_blocking(move || {
                let mut count = this.lock();
                while *count > 0 {
                    count = this.idle.wait(count).unwrap_or_else(|p| p.into_inner());
                }
            }));
        }
    }

    /// Uncounts `n` answered requests (after their answers were sent).
    fn end(&self, n: u64) {
        let mut count = self.lock();
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.idle.notify_all();
        }
    }
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
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path: PathBuf = path.as_ref().to_owned();
        let conn = Connection::open(&path).map_err(sql_error)?;
        // One engine per file: a locked file is refused at once, not after a wait.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(sql_error)?;
        // temp_store: the savepoint journal of each grouped request (only used to
        // roll that request back) stays in memory instead of a temp file; commits
        // and their durability are unchanged.
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(sql_error)?;
        Self::start(conn, path.display().to_string())
    }

    /// Opens a new, empty in-memory database (for tests: gone when closed).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(sql_error)?;
        Self::start(conn, ":memory:".to_owned())
    }

    fn start(conn: Connection, location: String) -> Result<Self, StoreError> {
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(sql_error)?;
        // Every statement of the store stays prepared (rusqlite keeps 16 by
        // default: with more in use, the least recent were parsed again each time).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(sql_error)?;
        let version: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.as_bytes()],
                )
                .map_err(sql_error)?;
            }
            Some(v) if v == SCHEMA_VERSION.as_bytes() => {}
            // The new tables were made by `SCHEMA`; version 1 also gains a column.
            Some(v) if v == b"1" || v == b"2" => {
                let upgrade = if v == b"1" { UPGRADE_FROM_1 } else { "" };
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {upgrade}
                     UPDATE meta SET value = CAST('{SCHEMA_VERSION}' AS BLOB)
                        WHERE key = 'schema_version';
                     COMMIT;"
                ))
                .map_err(sql_error)?;
            }
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "database schema version {} is not supported by this engine (expects {SCHEMA_VERSION})",
                    String::from_utf8_lossy(&v)
                )))
            }
        }
        conn.execute_batch(INDEXES).map_err(sql_error)?;
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
        let mut tx = SqliteTx { conn };
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

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

struct SqliteTx<'c> {
    conn: &'c Connection,
}

const EXECUTION_COLUMNS: &str = "key, scope, activity_id, workflow_id, workflow_run_id, \
    activity_type, task_queue, input, options, state, attempt, scheduled_at, \
    attempt_scheduled_at, started_at, worker_identity, heartbeat_details, last_heartbeat_at, \
    cancel_requested, last_failure, retry_state, result, closed_at, workflow_seq";

/// The columns of a row, read before decoding (rusqlite closures cannot return our errors).
struct RawExecution {
    key: i64,
    scope: String,
    activity_id: String,
    workflow_id: Option<String>,
    workflow_run_id: Option<String>,
    activity_type: String,
    task_queue: String,
    input: Vec<u8>,
    options: String,
    state: String,
    attempt: i64,
    scheduled_at: i64,
    attempt_scheduled_at: i64,
    started_at: Option<i64>,
    worker_identity: Option<String>,
    heartbeat_details: Option<Vec<u8>>,
    last_heartbeat_at: Option<i64>,
    cancel_requested: bool,
    last_failure: Option<String>,
    retry_state: Option<String>,
    result: Option<Vec<u8>>,
    closed_at: Option<i64>,
    workflow_seq: Option<i64>,
}

fn raw_execution(row: &Row<'_>) -> rusqlite::Result<RawExecution> {
    Ok(RawExecution {
        key: row.get(0)?,
        scope: row.get(1)?,
        activity_id: row.get(2)?,
        workflow_id: row.get(3)?,
        workflow_run_id: row.get(4)?,
        activity_type: row.get(5)?,
        task_queue: row.get(6)?,
        input: row.get(7)?,
        options: row.get(8)?,
        state: row.get(9)?,
        attempt: row.get(10)?,
        scheduled_at: row.get(11)?,
        attempt_scheduled_at: row.get(12)?,
        started_at: row.get(13)?,
        worker_identity: row.get(14)?,
        heartbeat_details: row.get(15)?,
        last_heartbeat_at: row.get(16)?,
        cancel_requested: row.get(17)?,
        last_failure: row.get(18)?,
        retry_state: row.get(19)?,
        result: row.get(20)?,
        closed_at: row.get(21)?,
        workflow_seq: row.get(22)?,
    })
}

impl RawExecution {
    fn decode(self) -> Result<ExecutionRecord, StoreError> {
        let key = self.key;
        let what = |field: &str| format!("execution {key}, column `{field}`");
        Ok(ExecutionRecord {
            key,
            scope: self.scope,
            activity_id: self.activity_id,
            workflow_id: self.workflow_id,
            workflow_run_id: self.workflow_run_id,
            activity_type: self.activity_type,
            task_queue: self.task_queue,
            input: decode_payloads(&self.input).map_err(|e| corrupt(&what("input"), e))?,
            options: serde_json::from_str::<ValidatedOptions>(&self.options)
                .map_err(|e| corrupt(&what("options"), e))?,
            state: ExecutionState::parse(&self.state)
                .ok_or_else(|| corrupt(&what("state"), &self.state))?,
            attempt: u32::try_from(self.attempt).map_err(|e| corrupt(&what("attempt"), e))?,
            scheduled_at: self.scheduled_at,
            attempt_scheduled_at: self.attempt_scheduled_at,
            started_at: self.started_at,
            worker_identity: self.worker_identity,
            heartbeat_details: self
                .heartbeat_details
                .map(|b| decode_payload(&b))
                .transpose()
                .map_err(|e| corrupt(&what("heartbeat_details"), e))?,
            last_heartbeat_at: self.last_heartbeat_at,
            cancel_requested: self.cancel_requested,
            last_failure: self
                .last_failure
                .map(|f| serde_json::from_str::<Failure>(&f))
                .transpose()
                .map_err(|e| corrupt(&what("last_failure"), e))?,
            retry_state: self
                .retry_state
                .map(|r| serde_json::from_str::<RetryState>(&r))
                .transpose()
                .map_err(|e| corrupt(&what("retry_state"), e))?,
            result: self
                .result
                .map(|b| decode_payload(&b))
                .transpose()
                .map_err(|e| corrupt(&what("result"), e))?,
            closed_at: self.closed_at,
            workflow_seq: self
                .workflow_seq
                .map(u32::try_from)
                .transpose()
                .map_err(|e| corrupt(&what("workflow_seq"), e))?,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a record: {e}")))
}

impl SqliteTx<'_> {
    fn one_execution(
        &mut self,
        sql_where: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE {sql_where}");
        let raw = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params, raw_execution).optional())
            .map_err(sql_error)?;
        raw.map(RawExecution::decode).transpose()
    }
}

impl Tx for SqliteTx<'_> {
    fn meta_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_error)
    }

    fn meta_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(sql_error)
    }

    fn insert_execution(&mut self, r: &ExecutionRecord) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO executions (scope, activity_id, workflow_id, workflow_run_id,
                    activity_type, task_queue, input, options, state, attempt, scheduled_at,
                    attempt_scheduled_at, started_at, worker_identity, heartbeat_details,
                    last_heartbeat_at, cancel_requested, last_failure, retry_state, result,
                    closed_at, workflow_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20, ?21, ?22)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.scope,
                    r.activity_id,
                    r.workflow_id,
                    r.workflow_run_id,
                    r.activity_type,
                    r.task_queue,
                    encode_payloads(&r.input),
                    to_json(&r.options)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    r.state.as_str(),
                    r.attempt,
                    r.scheduled_at,
                    r.attempt_scheduled_at,
                    r.started_at,
                    r.worker_identity,
                    r.heartbeat_details.as_ref().map(encode_payload),
                    r.last_heartbeat_at,
                    r.cancel_requested,
                    r.last_failure
                        .as_ref()
                        .map(to_json)
                        .transpose()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    r.retry_state
                        .as_ref()
                        .map(to_json)
                        .transpose()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    r.result.as_ref().map(encode_payload),
                    r.closed_at,
                    r.workflow_seq,
                ])
            })
            .map_err(sql_error)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn update_execution(&mut self, r: &ExecutionRecord) -> Result<(), StoreError> {
        // Ids, type, queue, input and options never change after insert.
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE executions SET state = ?2, attempt = ?3, attempt_scheduled_at = ?4,
                    started_at = ?5, worker_identity = ?6, heartbeat_details = ?7,
                    last_heartbeat_at = ?8, cancel_requested = ?9, last_failure = ?10,
                    retry_state = ?11, result = ?12, closed_at = ?13
                 WHERE key = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.key,
                    r.state.as_str(),
                    r.attempt,
                    r.attempt_scheduled_at,
                    r.started_at,
                    r.worker_identity,
                    r.heartbeat_details.as_ref().map(encode_payload),
                    r.last_heartbeat_at,
                    r.cancel_requested,
                    r.last_failure
                        .as_ref()
                        .map(to_json)
                        .transpose()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    r.retry_state
                        .as_ref()
                        .map(to_json)
                        .transpose()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    r.result.as_ref().map(encode_payload),
                    r.closed_at,
                ])
            })
            .map_err(sql_error)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Backend(format!(
                "execution {} does not exist",
                r.key
            )))
        }
    }

    fn execution(&mut self, key: i64) -> Result<Option<ExecutionRecord>, StoreError> {
        self.one_execution("key = ?1", params![key])
    }

    fn execution_by_id(
        &mut self,
        scope: &str,
        activity_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.one_execution(
            "scope = ?1 AND activity_id = ?2",
            params![scope, activity_id],
        )
    }

    fn next_dispatchable(
        &mut self,
        task_queue: &str,
        now: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        // The single writer serializes claims; PostgreSQL adds FOR UPDATE SKIP LOCKED.
        self.one_execution(
            "state = 'SCHEDULED' AND task_queue = ?1 AND attempt_scheduled_at <= ?2
             ORDER BY attempt_scheduled_at, key LIMIT 1",
            params![task_queue, now],
        )
    }

    fn next_dispatch_time(
        &mut self,
        task_queue: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT MIN(attempt_scheduled_at) FROM executions
                 WHERE state = 'SCHEDULED' AND task_queue = ?1 AND attempt_scheduled_at > ?2",
            )
            .and_then(|mut s| s.query_row(params![task_queue, now], |r| r.get(0)))
            .map_err(sql_error)
    }

    fn backlog(&mut self, task_queue: &str, now: i64) -> Result<(u64, u64), StoreError> {
        let (all, ready): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(attempt_scheduled_at <= ?2), 0) FROM executions
                 WHERE state = 'SCHEDULED' AND task_queue = ?1",
            )
            .and_then(|mut s| s.query_row(params![task_queue, now], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sql_error)?;
        Ok((all.max(0).unsigned_abs(), ready.max(0).unsigned_abs()))
    }

    fn queue(&mut self, name: &str) -> Result<Option<QueueRecord>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT name, rate_limit, bucket_tokens, bucket_at FROM task_queues WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![name], |r| {
                    Ok(QueueRecord {
                        name: r.get(0)?,
                        rate_limit: r.get(1)?,
                        bucket_tokens: r.get(2)?,
                        bucket_at: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(sql_error)
    }

    fn put_queue(&mut self, q: &QueueRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO task_queues (name, rate_limit, bucket_tokens, bucket_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET rate_limit = excluded.rate_limit,
                    bucket_tokens = excluded.bucket_tokens, bucket_at = excluded.bucket_at",
            )
            .and_then(|mut s| {
                s.execute(params![q.name, q.rate_limit, q.bucket_tokens, q.bucket_at])
            })
            .map(drop)
            .map_err(sql_error)
    }

    fn touch_poller(
        &mut self,
        task_queue: &str,
        identity: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO pollers (task_queue, identity, last_poll_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (task_queue, identity) DO UPDATE SET last_poll_at = excluded.last_poll_at",
            )
            .and_then(|mut s| s.execute(params![task_queue, identity, now]))
            .map(drop)
            .map_err(sql_error)
    }

    fn pollers(&mut self, task_queue: &str, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT identity, last_poll_at FROM pollers
                 WHERE task_queue = ?1 AND last_poll_at >= ?2
                 ORDER BY last_poll_at DESC, identity",
            )
            .and_then(|mut s| {
                s.query_map(params![task_queue, since], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(sql_error)
    }

    fn set_timer(&mut self, t: &TimerRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO timers (execution_key, kind, attempt, due_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (execution_key, kind) DO UPDATE
                    SET attempt = excluded.attempt, due_at = excluded.due_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t.execution_key,
                    t.kind.as_str(),
                    t.attempt,
                    t.due_at
                ])
            })
            .map(drop)
            .map_err(sql_error)
    }

    fn clear_timer(&mut self, execution_key: i64, kind: TimerKind) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM timers WHERE execution_key = ?1 AND kind = ?2")
            .and_then(|mut s| s.execute(params![execution_key, kind.as_str()]))
            .map(drop)
            .map_err(sql_error)
    }

    fn clear_timers(&mut self, execution_key: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM timers WHERE execution_key = ?1")
            .and_then(|mut s| s.execute(params![execution_key]))
            .map(drop)
            .map_err(sql_error)
    }

    fn due_timers(&mut self, now: i64, limit: usize) -> Result<Vec<TimerRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT execution_key, kind, attempt, due_at FROM timers
                 WHERE due_at <= ?1 ORDER BY due_at, execution_key, kind LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![now, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
            })
            .map_err(sql_error)?;
        rows.into_iter()
            .map(|(execution_key, kind, attempt, due_at)| {
                Ok(TimerRecord {
                    execution_key,
                    kind: TimerKind::parse(&kind).ok_or_else(|| corrupt("timer kind", &kind))?,
                    attempt: u32::try_from(attempt).map_err(|e| corrupt("timer attempt", e))?,
                    due_at,
                })
            })
            .collect()
    }

    fn next_timer_due(&mut self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MIN(due_at) FROM (SELECT MIN(due_at) AS due_at FROM timers
                    UNION ALL SELECT MIN(due_at) FROM workflow_timers)",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)
    }

    fn list_executions(
        &mut self,
        request: &ListExecutionsRequest,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        // Newest first by key (the order of first scheduling), no extra index:
        // a scope filter uses the `(scope, activity_id)` key.
        let scope = match &request.scope {
            // Standalone executions have the empty scope (`ExecutionRecord::scope`).
            ExecutionScope::Standalone => Some(""),
            ExecutionScope::WorkflowRun(run_id) => Some(run_id.as_str()),
            _ => None,
        };
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions
             WHERE (?1 IS NULL OR scope = ?1) AND (?2 IS NULL OR state = ?2)
                AND (?3 IS NULL OR activity_type = ?3) AND (?4 IS NULL OR task_queue = ?4)
             ORDER BY key DESC LIMIT ?5 OFFSET ?6"
        );
        let raws: Vec<RawExecution> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(
                    params![
                        scope,
                        request.state.map(ExecutionState::as_str),
                        request.activity_type,
                        request.task_queue,
                        limit,
                        request.offset
                    ],
                    raw_execution,
                )?
                .collect()
            })
            .map_err(sql_error)?;
        raws.into_iter().map(RawExecution::decode).collect()
    }

    fn task_queue_names(&mut self, limit: usize) -> Result<Vec<String>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "SELECT name FROM task_queues
                 UNION SELECT task_queue FROM pollers
                 UNION SELECT task_queue FROM registered_types
                 UNION SELECT task_queue FROM workflow_runs WHERE task_state = 'SCHEDULED'
                 ORDER BY 1 LIMIT ?1",
            )
            .and_then(|mut s| s.query_map(params![limit], |r| r.get(0))?.collect())
            .map_err(sql_error)
    }

    fn open_executions(&mut self, scope: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions
             WHERE scope = ?1 AND state IN ('SCHEDULED', 'STARTED') ORDER BY key"
        );
        let raws: Vec<RawExecution> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_map(params![scope], raw_execution)?.collect())
            .map_err(sql_error)?;
        raws.into_iter().map(RawExecution::decode).collect()
    }

    fn execution_by_seq(
        &mut self,
        scope: &str,
        seq: u32,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.one_execution(
            "scope = ?1 AND workflow_seq = ?2 ORDER BY key LIMIT 1",
            params![scope, seq],
        )
    }

    fn insert_run(&mut self, r: &RunRecord) -> Result<i64, StoreError> {
        let outcome = r.outcome.as_ref().map(to_json).transpose()?;
        self.conn
            .prepare_cached(
                "INSERT INTO workflow_runs (workflow_id, run_id, workflow_type, task_queue, input,
                    state, outcome, cancel_requested, started_at, closed_at, history_length,
                    task_state, task_seq, task_scheduled_at, task_started_at, task_identity,
                    task_failures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.workflow_id,
                    r.run_id,
                    r.workflow_type,
                    r.task_queue,
                    encode_payloads(&r.input),
                    r.state.as_str(),
                    outcome,
                    r.cancel_requested,
                    r.started_at,
                    r.closed_at,
                    i64::try_from(r.history_length).unwrap_or(i64::MAX),
                    r.task_state.as_str(),
                    r.task_seq,
                    r.task_scheduled_at,
                    r.task_started_at,
                    r.task_identity,
                    r.task_failures,
                ])
            })
            .map_err(sql_error)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn update_run(&mut self, r: &RunRecord) -> Result<(), StoreError> {
        // Ids, type, queue, input and start time never change after insert.
        let outcome = r.outcome.as_ref().map(to_json).transpose()?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE workflow_runs SET state = ?2, outcome = ?3, cancel_requested = ?4,
                    closed_at = ?5, history_length = ?6, task_state = ?7, task_seq = ?8,
                    task_scheduled_at = ?9, task_started_at = ?10, task_identity = ?11,
                    task_failures = ?12
                 WHERE key = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.key,
                    r.state.as_str(),
                    outcome,
                    r.cancel_requested,
                    r.closed_at,
                    i64::try_from(r.history_length).unwrap_or(i64::MAX),
                    r.task_state.as_str(),
                    r.task_seq,
                    r.task_scheduled_at,
                    r.task_started_at,
                    r.task_identity,
                    r.task_failures,
                ])
            })
            .map_err(sql_error)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("run {} does not exist", r.key)))
        }
    }

    fn run(&mut self, key: i64) -> Result<Option<RunRecord>, StoreError> {
        self.one_run("key = ?1", params![key])
    }

    fn run_by_id(&mut self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.one_run("run_id = ?1", params![run_id])
    }

    fn latest_run(&mut self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.one_run(
            "workflow_id = ?1 ORDER BY key DESC LIMIT 1",
            params![workflow_id],
        )
    }

    fn next_workflow_task(&mut self, task_queue: &str) -> Result<Option<RunRecord>, StoreError> {
        // The single writer serializes claims; PostgreSQL adds FOR UPDATE SKIP LOCKED.
        self.one_run(
            "task_state = 'SCHEDULED' AND task_queue = ?1
             ORDER BY task_scheduled_at, key LIMIT 1",
            params![task_queue],
        )
    }

    fn list_runs(
        &mut self,
        request: &ListWorkflowsRequest,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        // Walks `workflow_runs_by_start` newest first, stopping after `limit` matches.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR workflow_type = ?2)
                AND (?3 IS NULL OR substr(workflow_id, 1, length(?3)) = ?3)
             ORDER BY started_at DESC, key DESC LIMIT ?4 OFFSET ?5"
        );
        let raws: Vec<RawRun> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(
                    params![
                        request.state.map(WorkflowState::as_str),
                        request.workflow_type,
                        request.workflow_id_prefix,
                        limit,
                        request.offset
                    ],
                    raw_run,
                )?
                .collect()
            })
            .map_err(sql_error)?;
        raws.into_iter().map(RawRun::decode).collect()
    }

    fn append_event(&mut self, run_key: i64, event: &HistoryEvent) -> Result<(), StoreError> {
        let kind = to_json(&event.kind)?;
        self.conn
            .prepare_cached(
                "INSERT INTO workflow_history (run_key, event_id, time, kind)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run_key,
                    i64::try_from(event.event_id).unwrap_or(i64::MAX),
                    to_millis(event.time),
                    kind
                ])
            })
            .map(drop)
            .map_err(sql_error)
    }

    fn history_after(&mut self, run_key: i64, after: u64) -> Result<Vec<HistoryEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows: Vec<(i64, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT event_id, time, kind FROM workflow_history
                 WHERE run_key = ?1 AND event_id > ?2 ORDER BY event_id",
            )
            .and_then(|mut s| {
                s.query_map(params![run_key, after], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .map_err(sql_error)?;
        rows.into_iter()
            .map(|(event_id, time, kind)| {
                let what = || format!("run {run_key}, history event {event_id}");
                Ok(HistoryEvent::new(
                    u64::try_from(event_id).map_err(|e| corrupt(&what(), e))?,
                    from_millis(time),
                    serde_json::from_str::<EventKind>(&kind).map_err(|e| corrupt(&what(), e))?,
                ))
            })
            .collect()
    }

    fn buffer_event(
        &mut self,
        run_key: i64,
        time: i64,
        kind: &EventKind,
    ) -> Result<(), StoreError> {
        let kind = to_json(kind)?;
        self.conn
            .prepare_cached(
                "INSERT INTO workflow_buffered_events (run_key, time, kind) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![run_key, time, kind]))
            .map(drop)
            .map_err(sql_error)
    }

    fn take_buffered(&mut self, run_key: i64) -> Result<Vec<(i64, EventKind)>, StoreError> {
        let rows: Vec<(i64, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT position, time, kind FROM workflow_buffered_events
                 WHERE run_key = ?1 ORDER BY position",
            )
            .and_then(|mut s| {
                s.query_map(params![run_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(sql_error)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached("DELETE FROM workflow_buffered_events WHERE run_key = ?1")
            .and_then(|mut s| s.execute(params![run_key]))
            .map_err(sql_error)?;
        rows.into_iter()
            .map(|(position, time, kind)| {
                let kind = serde_json::from_str::<EventKind>(&kind).map_err(|e| {
                    corrupt(&format!("run {run_key}, buffered event {position}"), e)
                })?;
                Ok((time, kind))
            })
            .collect()
    }

    fn set_workflow_timer(&mut self, t: &WorkflowTimerRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO workflow_timers (run_key, kind, seq, due_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run_key, kind, seq) DO UPDATE SET due_at = excluded.due_at",
            )
            .and_then(|mut s| s.execute(params![t.run_key, t.kind.as_str(), t.seq, t.due_at]))
            .map(drop)
            .map_err(sql_error)
    }

    fn clear_workflow_timer(
        &mut self,
        run_key: i64,
        kind: WorkflowTimerKind,
        seq: Option<u32>,
    ) -> Result<(), StoreError> {
        let result = match seq {
            Some(seq) => self
                .conn
                .prepare_cached(
                    "DELETE FROM workflow_timers WHERE run_key = ?1 AND kind = ?2 AND seq = ?3",
                )
                .and_then(|mut s| s.execute(params![run_key, kind.as_str(), seq])),
            None => self
                .conn
                .prepare_cached("DELETE FROM workflow_timers WHERE run_key = ?1 AND kind = ?2")
                .and_then(|mut s| s.execute(params![run_key, kind.as_str()])),
        };
        result.map(drop).map_err(sql_error)
    }

    fn clear_workflow_timers(&mut self, run_key: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM workflow_timers WHERE run_key = ?1")
            .and_then(|mut s| s.execute(params![run_key]))
            .map(drop)
            .map_err(sql_error)
    }

    fn due_workflow_timers(
        &mut self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<WorkflowTimerRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT run_key, kind, seq, due_at FROM workflow_timers
                 WHERE due_at <= ?1 ORDER BY due_at, run_key, kind, seq LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![now, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
            })
            .map_err(sql_error)?;
        rows.into_iter()
            .map(|(run_key, kind, seq, due_at)| {
                Ok(WorkflowTimerRecord {
                    run_key,
                    kind: WorkflowTimerKind::parse(&kind)
                        .ok_or_else(|| corrupt("workflow timer kind", &kind))?,
                    seq: u32::try_from(seq).map_err(|e| corrupt("workflow timer seq", e))?,
                    due_at,
                })
            })
            .collect()
    }
    fn put_registered_type(&mut self, r: &TypeRecord) -> Result<(), StoreError> {
        let arguments = to_json(&r.arguments)?;
        self.conn
            .prepare_cached(
                "INSERT INTO registered_types (kind, name, task_queue, arguments, input_schema,
                    output_schema, identity, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (kind, name, task_queue) DO UPDATE SET
                    arguments = excluded.arguments, input_schema = excluded.input_schema,
                    output_schema = excluded.output_schema, identity = excluded.identity,
                    registered_at = excluded.registered_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.kind.as_str(),
                    r.name,
                    r.task_queue,
                    arguments,
                    r.input_schema,
                    r.output_schema,
                    r.identity,
                    r.registered_at,
                ])
            })
            .map(drop)
            .map_err(sql_error)
    }

    fn registered_type(
        &mut self,
        kind: TypeKind,
        name: &str,
        task_queue: &str,
    ) -> Result<Option<TypeRecord>, StoreError> {
        let sql = format!(
            "SELECT {TYPE_COLUMNS} FROM registered_types
             WHERE kind = ?1 AND name = ?2 AND task_queue = ?3"
        );
        let raw = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![kind.as_str(), name, task_queue], raw_type)
                    .optional()
            })
            .map_err(sql_error)?;
        raw.map(RawType::decode).transpose()
    }

    fn registered_types(&mut self) -> Result<Vec<TypeRecord>, StoreError> {
        let sql =
            format!("SELECT {TYPE_COLUMNS} FROM registered_types ORDER BY kind, name, task_queue");
        let raws: Vec<RawType> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_map([], raw_type)?.collect())
            .map_err(sql_error)?;
        raws.into_iter().map(RawType::decode).collect()
    }
}

const TYPE_COLUMNS: &str =
    "kind, name, task_queue, arguments, input_schema, output_schema, identity, registered_at";

/// The columns of a registered type row, read before decoding.
struct RawType {
    kind: String,
    arguments: String,
    record: TypeRecord,
}

fn raw_type(r: &Row<'_>) -> rusqlite::Result<RawType> {
    Ok(RawType {
        kind: r.get(0)?,
        arguments: r.get(3)?,
        record: TypeRecord {
            kind: TypeKind::Activity,
            name: r.get(1)?,
            task_queue: r.get(2)?,
            arguments: Vec::new(),
            input_schema: r.get(4)?,
            output_schema: r.get(5)?,
            identity: r.get(6)?,
            registered_at: r.get(7)?,
        },
    })
}

impl RawType {
    fn decode(self) -> Result<TypeRecord, StoreError> {
        let mut record = self.record;
        record.kind =
            TypeKind::parse(&self.kind).ok_or_else(|| corrupt("type kind", &self.kind))?;
        record.arguments =
            serde_json::from_str(&self.arguments).map_err(|e| corrupt("type arguments", e))?;
        Ok(record)
    }
}

const RUN_COLUMNS: &str = "key, workflow_id, run_id, workflow_type, task_queue, input, state, \
    outcome, cancel_requested, started_at, closed_at, history_length, task_state, task_seq, \
    task_scheduled_at, task_started_at, task_identity, task_failures";

/// The columns of a run row, read before decoding.
struct RawRun {
    key: i64,
    workflow_id: String,
    run_id: String,
    workflow_type: String,
    task_queue: String,
    input: Vec<u8>,
    state: String,
    outcome: Option<String>,
    cancel_requested: bool,
    started_at: i64,
    closed_at: Option<i64>,
    history_length: i64,
    task_state: String,
    task_seq: i64,
    task_scheduled_at: i64,
    task_started_at: Option<i64>,
    task_identity: Option<String>,
    task_failures: i64,
}

fn raw_run(row: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        key: row.get(0)?,
        workflow_id: row.get(1)?,
        run_id: row.get(2)?,
        workflow_type: row.get(3)?,
        task_queue: row.get(4)?,
        input: row.get(5)?,
        state: row.get(6)?,
        outcome: row.get(7)?,
        cancel_requested: row.get(8)?,
        started_at: row.get(9)?,
        closed_at: row.get(10)?,
        history_length: row.get(11)?,
        task_state: row.get(12)?,
        task_seq: row.get(13)?,
        task_scheduled_at: row.get(14)?,
        task_started_at: row.get(15)?,
        task_identity: row.get(16)?,
        task_failures: row.get(17)?,
    })
}

impl RawRun {
    fn decode(self) -> Result<RunRecord, StoreError> {
        let key = self.key;
        let what = |field: &str| format!("workflow run {key}, column `{field}`");
        Ok(RunRecord {
            key,
            workflow_id: self.workflow_id,
            run_id: self.run_id,
            workflow_type: self.workflow_type,
            task_queue: self.task_queue,
            input: decode_payloads(&self.input).map_err(|e| corrupt(&what("input"), e))?,
            state: WorkflowState::parse(&self.state)
                .ok_or_else(|| corrupt(&what("state"), &self.state))?,
            outcome: self
                .outcome
                .map(|o| serde_json::from_str::<WorkflowOutcome>(&o))
                .transpose()
                .map_err(|e| corrupt(&what("outcome"), e))?,
            cancel_requested: self.cancel_requested,
            started_at: self.started_at,
            closed_at: self.closed_at,
            history_length: u64::try_from(self.history_length)
                .map_err(|e| corrupt(&what("history_length"), e))?,
            task_state: WorkflowTaskState::parse(&self.task_state)
                .ok_or_else(|| corrupt(&what("task_state"), &self.task_state))?,
            task_seq: u32::try_from(self.task_seq).map_err(|e| corrupt(&what("task_seq"), e))?,
            task_scheduled_at: self.task_scheduled_at,
            task_started_at: self.task_started_at,
            task_identity: self.task_identity,
            task_failures: u32::try_from(self.task_failures)
                .map_err(|e| corrupt(&what("task_failures"), e))?,
        })
    }
}

impl SqliteTx<'_> {
    fn one_run(
        &mut self,
        sql_where: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE {sql_where}");
        let raw = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params, raw_run).optional())
            .map_err(sql_error)?;
        raw.map(RawRun::decode).transpose()
    }
}

// Payload blobs: [encoding name length: u8][encoding name][data]. A list of
// payloads: [count: u32 BE] then each as [length: u32 BE][payload blob].

fn encoding_name(encoding: Encoding) -> &'static str {
    encoding.as_str()
}

fn parse_encoding(name: &[u8]) -> Result<Encoding, String> {
    if name == Encoding::Json.as_str().as_bytes() {
        Ok(Encoding::Json)
    } else {
        Err(format!(
            "unknown payload encoding `{}`",
            String::from_utf8_lossy(name)
        ))
    }
}

fn encode_payload(payload: &Payload) -> Vec<u8> {
    let name = encoding_name(payload.encoding).as_bytes();
    let mut out = Vec::with_capacity(1 + name.len() + payload.data.len());
    // Encoding names are short constants (< 256 bytes).
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name);
    out.extend_from_slice(&payload.data);
    out
}

fn decode_payload(blob: &[u8]) -> Result<Payload, String> {
    let (&len, rest) = blob.split_first().ok_or("empty payload blob")?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err("truncated payload blob".into());
    }
    let (name, data) = rest.split_at(len);
    Ok(Payload {
        encoding: parse_encoding(name)?,
        data: data.to_vec().into(),
    })
}

fn encode_payloads(payloads: &[Payload]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        &u32::try_from(payloads.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for p in payloads {
        let blob = encode_payload(p);
        out.extend_from_slice(&u32::try_from(blob.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&blob);
    }
    out
}

fn take_u32(bytes: &mut &[u8]) -> Result<usize, String> {
    let (head, rest) = bytes.split_at_checked(4).ok_or("truncated payload list")?;
    *bytes = rest;
    let mut buf = [0_u8; 4];
    buf.copy_from_slice(head);
    usize::try_from(u32::from_be_bytes(buf)).map_err(|e| e.to_string())
}

fn decode_payloads(mut bytes: &[u8]) -> Result<Vec<Payload>, String> {
    let count = take_u32(&mut bytes)?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = take_u32(&mut bytes)?;
        let (blob, rest) = bytes
            .split_at_checked(len)
            .ok_or("truncated payload list")?;
        out.push(decode_payload(blob)?);
        bytes = rest;
    }
    if bytes.is_empty() {
        Ok(out)
    } else {
        Err("trailing bytes after the payload list".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_upgraded_in_place_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            // The version 1 schema: executions without `workflow_seq`, no workflow tables.
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS workflow_runs")
                .next()
                .unwrap()
                .replace("    workflow_seq         INTEGER,\n", "");
            conn.execute_batch(&v1).unwrap();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![b"1".to_vec()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO executions (scope, activity_id, activity_type, task_queue, input,
                    options, state, attempt, scheduled_at, attempt_scheduled_at,
                    cancel_requested)
                 VALUES ('', 'old', 't', 'q', ?1, ?2, 'SCHEDULED', 1, 0, 0, 0)",
                params![
                    encode_payloads(&[]),
                    to_json(
                        &activity_core::ActivityOptions::new()
                            .start_to_close(std::time::Duration::from_secs(1))
                            .validate(Some("q"))
                            .unwrap()
                    )
                    .unwrap()
                ],
            )
            .unwrap();
            assert!(conn.prepare("SELECT workflow_seq FROM executions").is_err());
        }
        let store = SqliteStore::open(&path).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: Vec<u8> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.as_bytes());
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT key FROM executions WHERE scope = 'r' AND workflow_seq = 1",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("executions_by_seq"), "{plan}");
        let mut tx = SqliteTx { conn: &conn };
        let old = tx.execution_by_id("", "old").unwrap().expect("kept");
        assert_eq!(old.workflow_seq, None);
        assert_eq!(tx.latest_run("any").unwrap(), None);
    }

    #[test]
    fn a_version_2_database_is_upgraded_in_place_and_gains_registered_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            // The version 2 schema: everything but `registered_types`.
            let conn = Connection::open(&path).unwrap();
            let v2 = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS registered_types")
                .next()
                .unwrap();
            conn.execute_batch(v2).unwrap();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![b"2".to_vec()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO task_queues (name, rate_limit, bucket_tokens, bucket_at)
                 VALUES ('kept', 2.5, 0, 0)",
                [],
            )
            .unwrap();
            assert!(conn.prepare("SELECT kind FROM registered_types").is_err());
        }
        let store = SqliteStore::open(&path).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: Vec<u8> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, b"3");
        let mut tx = SqliteTx { conn: &conn };
        assert_eq!(tx.queue("kept").unwrap().unwrap().rate_limit, Some(2.5));
        assert_eq!(tx.registered_types().unwrap(), vec![]);
        let record = TypeRecord {
            kind: TypeKind::Activity,
            name: "charge".into(),
            task_queue: "q".into(),
            arguments: vec!["card".into(), "cents".into()],
            input_schema: Some("{\"type\":\"array\"}".into()),
            output_schema: Some("true".into()),
            identity: "w1".into(),
            registered_at: 5,
        };
        tx.put_registered_type(&record).unwrap();
        let again = TypeRecord {
            identity: "w2".into(),
            registered_at: 9,
            ..record
        };
        tx.put_registered_type(&again).unwrap();
        assert_eq!(tx.registered_types().unwrap(), vec![again.clone()]);
        assert_eq!(
            tx.registered_type(TypeKind::Activity, "charge", "q")
                .unwrap(),
            Some(again)
        );
        assert_eq!(
            tx.registered_type(TypeKind::Workflow, "charge", "q")
                .unwrap(),
            None
        );
    }

    #[test]
    fn payload_blobs_round_trip_and_reject_garbage() {
        let list = vec![Payload::json("a").unwrap(), Payload::json(&[1, 2]).unwrap()];
        assert_eq!(decode_payloads(&encode_payloads(&list)).unwrap(), list);
        assert_eq!(decode_payloads(&encode_payloads(&[])).unwrap(), vec![]);
        assert!(decode_payloads(&[0, 0, 0, 1]).is_err());
        assert!(decode_payload(&[3, b'x']).is_err());
        assert!(decode_payload(b"\x03abc{}")
            .unwrap_err()
            .contains("unknown payload encoding"));
    }
}
