//! The schema of the SQLite store and its numbered migrations.
//!
//! A database records its version in `meta.schema_version`. Opening one runs,
//! in order, every migration step above that version, each in its own
//! transaction that also records the new version: a fresh database runs them
//! all, an old one only what it lacks, and a crash between two steps leaves a
//! database at the earlier version that the next open finishes. A version
//! newer than the last step is refused (it was written by a newer engine).
//!
//! # Version 6
//!
//! - `meta(key, value)`: engine metadata: schema version, task-token key.
//! - `executions`: one row per activity execution: ids (`scope`, `activity_id`,
//!   unique together; `scope` is `""` for standalone activities and the run id
//!   for a workflow's; `workflow_id`/`workflow_run_id`/`workflow_seq` are
//!   `NULL` for standalone activities), type, queue, input, validated options,
//!   state, attempt, times, worker, heartbeat details, cancel flag, last
//!   failure, retry state, result, and the W3C `traceparent` its attempts
//!   are traced under (`trace_context`, `NULL` when not traced; version 6).
//!   A partial index on `(task_queue,
//!   attempt_scheduled_at, key) WHERE state = 'SCHEDULED'` is the dispatch
//!   order (FIFO by dispatchable time); `(scope, workflow_seq)` finds a
//!   workflow command's activity.
//! - `timers(execution_key, kind, attempt, due_at)`: durable timers, one per
//!   execution and kind, indexed by due time.
//! - `task_queues(name, rate_limit, bucket_tokens, bucket_at)`: the queue's
//!   global rate limit and its token bucket.
//! - `pollers(task_queue, identity, last_poll_at)`: recent pollers.
//! - `workflow_runs`: one row per workflow run: `workflow_id`, `run_id`
//!   (unique), type, queue, input, state, outcome, cancel flag, times, history
//!   length and size in bytes, whether it got its history size warning, and
//!   its workflow task (state, number, scheduled/started time,
//!   worker, consecutive failures), and the W3C `traceparent` its workflow
//!   tasks are traced under (`trace_context`, version 6). A partial unique index allows one RUNNING
//!   run per workflow id; a partial index on `(task_queue, task_scheduled_at,
//!   key) WHERE task_state = 'SCHEDULED'` is the workflow task dispatch order;
//!   `(started_at DESC, key DESC)` lists runs newest first; `(closed_at, key)`
//!   of closed runs is the retention's order (as is that of closed standalone
//!   executions).
//! - `workflow_history(run_key, event_id, time, kind)`: the append-only
//!   history, event ids from 1 without gaps.
//! - `workflow_buffered_events(position, run_key, time, kind)`: events that
//!   arrived while the run's workflow task was started.
//! - `workflow_timers(run_key, kind, seq, due_at)`: durable timers of runs.
//! - `workflow_children(run_key, parent_workflow_id, parent_run_id,
//!   parent_seq, parent_close_policy)`: the parent of each child run (and of
//!   each later run of its continue-as-new chain), indexed by parent run id
//!   and command.
//! - `registered_types(kind, name, task_queue, arguments, input_schema,
//!   output_schema, identity, registered_at)`: the types workers registered;
//!   schemas as JSON text (they are JSON Schema documents).
//!
//! Model values (options, failures, retry states, outcomes, event kinds,
//! argument names) and payloads are model bytes in `BLOB` columns (see the
//! `sql` module); versions 1 to 3 kept the model values as JSON text, and
//! payloads inside them as lists of numbers.

use rusqlite::{functions::FunctionFlags, params, Connection, OptionalExtension};

use super::sql_error;
use crate::store::StoreError;

/// One step of the schema's history.
struct Migration {
    /// The version the database has after this step.
    version: u32,
    /// What the step does.
    what: &'static str,
    apply: fn(&Connection) -> Result<(), StoreError>,
}

/// Every step, in order; the last one's version is the current schema.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "executions, timers, task queues and pollers",
        apply: |conn| batch(conn, V1),
    },
    Migration {
        version: 2,
        what: "workflow runs, histories, buffered events and workflow timers",
        apply: |conn| batch(conn, V2),
    },
    Migration {
        version: 3,
        what: "registered types",
        apply: |conn| batch(conn, V3),
    },
    Migration {
        version: 4,
        what: "model values and payloads as model bytes (were JSON text)",
        apply: to_model_bytes,
    },
    Migration {
        version: 5,
        what: "history sizes, and the indexes of the retention",
        apply: |conn| batch(conn, V5),
    },
    Migration {
        version: 6,
        what: "the trace context of runs and executions",
        apply: |conn| batch(conn, V6),
    },
    Migration {
        version: 7,
        what: "the links of child workflow runs to their parents",
        apply: |conn| batch(conn, V7),
    },
];

/// The schema version this engine writes.
pub(crate) fn current_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn batch(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.execute_batch(sql).map_err(sql_error)
}

/// Brings the database on `conn` to the current version (see the module docs).
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // Foreign keys are checked after the steps (a step may rebuild a table
    // others refer to); the pragma cannot change inside a transaction.
    batch(conn, "PRAGMA foreign_keys = OFF;")?;
    let mut version = stored_version(conn)?;
    let latest = current_version();
    if version > latest {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this engine's {latest}: \
             it was written by a newer version; open it with that version (or newer)"
        )));
    }
    let from = version;
    for step in MIGRATIONS.iter().filter(|m| m.version > from) {
        batch(conn, "BEGIN IMMEDIATE")?;
        let applied = (step.apply)(conn).and_then(|()| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![step.version.to_string().into_bytes()],
            )
            .map_err(sql_error)
        });
        if let Err(err) = applied {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Corrupt(format!(
                "cannot upgrade the database from schema version {version} to {} ({}): {err}",
                step.version, step.what
            )));
        }
        batch(conn, "COMMIT")?;
        version = step.version;
    }
    let broken: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()
        .map_err(sql_error)?;
    if let Some(table) = broken {
        return Err(StoreError::Corrupt(format!(
            "table `{table}` has rows that refer to rows that do not exist"
        )));
    }
    batch(conn, "PRAGMA foreign_keys = ON;")
}

/// The recorded version; 0 for a new database.
fn stored_version(conn: &Connection) -> Result<u32, StoreError> {
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    if !has_meta {
        return Ok(0);
    }
    let value: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    let Some(value) = value else {
        return Ok(0);
    };
    std::str::from_utf8(&value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the database's schema version `{}` is not a number",
                String::from_utf8_lossy(&value)
            ))
        })
}

/// Version 1: activity executions.
const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE executions (
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
    UNIQUE (scope, activity_id)
);
CREATE INDEX executions_dispatch
    ON executions (task_queue, attempt_scheduled_at, key) WHERE state = 'SCHEDULED';
CREATE TABLE timers (
    execution_key INTEGER NOT NULL REFERENCES executions (key),
    kind          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    PRIMARY KEY (execution_key, kind)
);
CREATE INDEX timers_due ON timers (due_at);
CREATE TABLE task_queues (
    name          TEXT PRIMARY KEY,
    rate_limit    REAL,
    bucket_tokens REAL NOT NULL,
    bucket_at     INTEGER NOT NULL
);
CREATE TABLE pollers (
    task_queue   TEXT NOT NULL,
    identity     TEXT NOT NULL,
    last_poll_at INTEGER NOT NULL,
    PRIMARY KEY (task_queue, identity)
);
";

/// Version 2: workflows.
const V2: &str = "
ALTER TABLE executions ADD COLUMN workflow_seq INTEGER;
CREATE TABLE workflow_runs (
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
CREATE INDEX workflow_runs_by_workflow_id ON workflow_runs (workflow_id, key);
CREATE INDEX workflow_runs_by_start ON workflow_runs (started_at DESC, key DESC);
CREATE UNIQUE INDEX workflow_runs_one_running
    ON workflow_runs (workflow_id) WHERE state = 'RUNNING';
CREATE INDEX workflow_tasks_dispatch
    ON workflow_runs (task_queue, task_scheduled_at, key) WHERE task_state = 'SCHEDULED';
CREATE TABLE workflow_history (
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    event_id INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    PRIMARY KEY (run_key, event_id)
) WITHOUT ROWID;
CREATE TABLE workflow_buffered_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    time     INTEGER NOT NULL,
    kind     TEXT NOT NULL
);
CREATE INDEX workflow_buffered_by_run ON workflow_buffered_events (run_key, position);
CREATE TABLE workflow_timers (
    run_key INTEGER NOT NULL REFERENCES workflow_runs (key),
    kind    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    due_at  INTEGER NOT NULL,
    PRIMARY KEY (run_key, kind, seq)
);
CREATE INDEX workflow_timers_due ON workflow_timers (due_at);
";

/// Version 3: registered types, and the index of a command's activity.
const V3: &str = "
CREATE TABLE registered_types (
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
CREATE INDEX IF NOT EXISTS executions_by_seq
    ON executions (scope, workflow_seq) WHERE workflow_seq IS NOT NULL;
";

/// Version 4: the tables with model values, rebuilt with `BLOB` columns and
/// their values converted by `v4(what, value)` (see [`to_model_bytes`]).
const V4: &str = "
CREATE TABLE executions_v4 (
    key                  INTEGER PRIMARY KEY AUTOINCREMENT,
    scope                TEXT NOT NULL,
    activity_id          TEXT NOT NULL,
    workflow_id          TEXT,
    workflow_run_id      TEXT,
    workflow_seq         INTEGER,
    activity_type        TEXT NOT NULL,
    task_queue           TEXT NOT NULL,
    input                BLOB NOT NULL,
    options              BLOB NOT NULL,
    state                TEXT NOT NULL,
    attempt              INTEGER NOT NULL,
    scheduled_at         INTEGER NOT NULL,
    attempt_scheduled_at INTEGER NOT NULL,
    started_at           INTEGER,
    worker_identity      TEXT,
    heartbeat_details    BLOB,
    last_heartbeat_at    INTEGER,
    cancel_requested     INTEGER NOT NULL,
    last_failure         BLOB,
    retry_state          BLOB,
    result               BLOB,
    closed_at            INTEGER,
    UNIQUE (scope, activity_id)
);
INSERT INTO executions_v4 (key, scope, activity_id, workflow_id, workflow_run_id,
    workflow_seq, activity_type, task_queue, input, options, state, attempt, scheduled_at,
    attempt_scheduled_at, started_at, worker_identity, heartbeat_details, last_heartbeat_at,
    cancel_requested, last_failure, retry_state, result, closed_at)
SELECT key, scope, activity_id, workflow_id, workflow_run_id, workflow_seq, activity_type,
    task_queue, v4('payloads', input), v4('options', options), state, attempt, scheduled_at,
    attempt_scheduled_at, started_at, worker_identity, v4('payload', heartbeat_details),
    last_heartbeat_at, cancel_requested, v4('failure', last_failure),
    v4('retry_state', retry_state), v4('payload', result), closed_at
FROM executions;
DROP TABLE executions;
ALTER TABLE executions_v4 RENAME TO executions;
CREATE INDEX executions_dispatch
    ON executions (task_queue, attempt_scheduled_at, key) WHERE state = 'SCHEDULED';
CREATE INDEX executions_by_seq
    ON executions (scope, workflow_seq) WHERE workflow_seq IS NOT NULL;

CREATE TABLE workflow_runs_v4 (
    key               INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id       TEXT NOT NULL,
    run_id            TEXT NOT NULL UNIQUE,
    workflow_type     TEXT NOT NULL,
    task_queue        TEXT NOT NULL,
    input             BLOB NOT NULL,
    state             TEXT NOT NULL,
    outcome           BLOB,
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
INSERT INTO workflow_runs_v4 (key, workflow_id, run_id, workflow_type, task_queue, input,
    state, outcome, cancel_requested, started_at, closed_at, history_length, task_state,
    task_seq, task_scheduled_at, task_started_at, task_identity, task_failures)
SELECT key, workflow_id, run_id, workflow_type, task_queue, v4('payloads', input), state,
    v4('outcome', outcome), cancel_requested, started_at, closed_at, history_length,
    task_state, task_seq, task_scheduled_at, task_started_at, task_identity, task_failures
FROM workflow_runs;
DROP TABLE workflow_runs;
ALTER TABLE workflow_runs_v4 RENAME TO workflow_runs;
CREATE INDEX workflow_runs_by_workflow_id ON workflow_runs (workflow_id, key);
CREATE INDEX workflow_runs_by_start ON workflow_runs (started_at DESC, key DESC);
CREATE UNIQUE INDEX workflow_runs_one_running
    ON workflow_runs (workflow_id) WHERE state = 'RUNNING';
CREATE INDEX workflow_tasks_dispatch
    ON workflow_runs (task_queue, task_scheduled_at, key) WHERE task_state = 'SCHEDULED';

CREATE TABLE workflow_history_v4 (
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    event_id INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    kind     BLOB NOT NULL,
    PRIMARY KEY (run_key, event_id)
) WITHOUT ROWID;
INSERT INTO workflow_history_v4 (run_key, event_id, time, kind)
SELECT run_key, event_id, time, v4('event', kind) FROM workflow_history;
DROP TABLE workflow_history;
ALTER TABLE workflow_history_v4 RENAME TO workflow_history;

CREATE TABLE workflow_buffered_events_v4 (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key  INTEGER NOT NULL REFERENCES workflow_runs (key),
    time     INTEGER NOT NULL,
    kind     BLOB NOT NULL
);
INSERT INTO workflow_buffered_events_v4 (position, run_key, time, kind)
SELECT position, run_key, time, v4('event', kind) FROM workflow_buffered_events;
DROP TABLE workflow_buffered_events;
ALTER TABLE workflow_buffered_events_v4 RENAME TO workflow_buffered_events;
CREATE INDEX workflow_buffered_by_run ON workflow_buffered_events (run_key, position);

CREATE TABLE registered_types_v4 (
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    task_queue    TEXT NOT NULL,
    arguments     BLOB NOT NULL,
    input_schema  TEXT,
    output_schema TEXT,
    identity      TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name, task_queue)
) WITHOUT ROWID;
INSERT INTO registered_types_v4 (kind, name, task_queue, arguments, input_schema,
    output_schema, identity, registered_at)
SELECT kind, name, task_queue, v4('arguments', arguments), input_schema, output_schema,
    identity, registered_at
FROM registered_types;
DROP TABLE registered_types;
ALTER TABLE registered_types_v4 RENAME TO registered_types;
";

/// Version 5: each run's history size in bytes (counted for the runs already
/// there) and whether it got its size warning, and the indexes the retention deletes by (closed runs and closed
/// standalone executions, by close time).
pub(crate) const V5: &str = "
ALTER TABLE workflow_runs ADD COLUMN history_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_runs ADD COLUMN history_warned BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE workflow_runs SET history_size = (SELECT COALESCE(SUM(length(h.kind)), 0)
    FROM workflow_history h WHERE h.run_key = workflow_runs.key);
CREATE INDEX workflow_runs_closed ON workflow_runs (closed_at, key)
    WHERE closed_at IS NOT NULL;
CREATE INDEX executions_closed ON executions (closed_at, key)
    WHERE scope = '' AND closed_at IS NOT NULL;
";

/// Version 6: the W3C `traceparent` stored with each run and each execution
/// (docs/semantics.md §5.1); `NULL` for what is not traced (every row before).
/// One self-contained step, run as it is by both stores.
pub(crate) const V6: &str = "
ALTER TABLE workflow_runs ADD COLUMN trace_context TEXT;
ALTER TABLE executions ADD COLUMN trace_context TEXT;
";

/// Version 7: `workflow_children(run_key, parent_workflow_id, parent_run_id,
/// parent_seq, parent_close_policy)`, one row per run a workflow started as
/// its child (and per later run of its continue-as-new chain), indexed by the
/// parent's run id and command (docs/semantics.md §3.1). One self-contained
/// step: the same SQL on both stores.
pub(crate) const V7: &str = "
CREATE TABLE workflow_children (
    run_key BIGINT PRIMARY KEY,
    parent_workflow_id TEXT NOT NULL,
    parent_run_id TEXT NOT NULL,
    parent_seq BIGINT NOT NULL,
    parent_close_policy TEXT NOT NULL
);
CREATE INDEX workflow_children_parent ON workflow_children (parent_run_id, parent_seq);
";

/// Version 4: every model value as model bytes (see [`V4`]). The SQL function
/// `v4(what, value)` reads a version 3 value (JSON text, or a payload blob)
/// and writes its model bytes; `NULL` stays `NULL`.
fn to_model_bytes(conn: &Connection) -> Result<(), StoreError> {
    conn.create_scalar_function(
        "v4",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let what: String = ctx.get(0)?;
            let value = ctx.get_raw(1);
            if value == rusqlite::types::ValueRef::Null {
                return Ok(None);
            }
            let converted = match value {
                rusqlite::types::ValueRef::Text(text) | rusqlite::types::ValueRef::Blob(text) => {
                    legacy::to_model_bytes(&what, text)
                }
                other => Err(format!(
                    "expected text or bytes, found {:?}",
                    other.data_type()
                )),
            };
            converted
                .map(Some)
                .map_err(|e| rusqlite::Error::UserFunctionError(format!("{what}: {e}").into()))
        },
    )
    .map_err(sql_error)?;
    let result = batch(conn, V4);
    let _ = conn.remove_function("v4", 2);
    result
}

/// The encodings of versions 1 to 3, read once to upgrade.
pub(crate) mod legacy {
    use activity_core::{
        codec,
        failure::{Failure, RetryState},
        options::ValidatedOptions,
        payload::{Encoding, Payload},
        workflow::{EventKind, WorkflowOutcome},
    };
    use serde::{de::DeserializeOwned, Serialize};

    /// Converts one version 3 value of kind `what` to model bytes.
    pub(crate) fn to_model_bytes(what: &str, value: &[u8]) -> Result<Vec<u8>, String> {
        match what {
            "payload" => encode(&payload(value)?),
            "payloads" => encode(&payloads(value)?),
            "options" => json::<ValidatedOptions>(value),
            "failure" => json::<Failure>(value),
            "retry_state" => json::<RetryState>(value),
            "outcome" => json::<WorkflowOutcome>(value),
            "event" => json::<EventKind>(value),
            "arguments" => json::<Vec<String>>(value),
            other => Err(format!("no conversion for `{other}`")),
        }
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
        codec::to_vec(value).map_err(|e| e.to_string())
    }

    fn json<T: Serialize + DeserializeOwned>(text: &[u8]) -> Result<Vec<u8>, String> {
        let value: T = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        encode(&value)
    }

    // Payload blobs: [encoding name length: u8][encoding name][data]. A list of
    // payloads: [count: u32 BE] then each as [length: u32 BE][payload blob].

    /// A version 3 payload blob.
    pub(crate) fn payload(blob: &[u8]) -> Result<Payload, String> {
        let (&len, rest) = blob.split_first().ok_or("empty payload blob")?;
        let (name, data) = rest
            .split_at_checked(usize::from(len))
            .ok_or("truncated payload blob")?;
        let name = std::str::from_utf8(name).map_err(|_| "a payload encoding is not UTF-8")?;
        let encoding =
            Encoding::parse(name).ok_or_else(|| format!("unknown payload encoding `{name}`"))?;
        Ok(Payload {
            encoding,
            data: data.to_vec().into(),
        })
    }

    fn take_u32(bytes: &mut &[u8]) -> Result<usize, String> {
        let (head, rest) = bytes.split_at_checked(4).ok_or("truncated payload list")?;
        *bytes = rest;
        let mut buf = [0_u8; 4];
        buf.copy_from_slice(head);
        usize::try_from(u32::from_be_bytes(buf)).map_err(|e| e.to_string())
    }

    /// A version 3 payload list blob.
    pub(crate) fn payloads(mut bytes: &[u8]) -> Result<Vec<Payload>, String> {
        let count = take_u32(&mut bytes)?;
        let mut out = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let len = take_u32(&mut bytes)?;
            let (blob, rest) = bytes
                .split_at_checked(len)
                .ok_or("truncated payload list")?;
            out.push(payload(blob)?);
            bytes = rest;
        }
        if bytes.is_empty() {
            Ok(out)
        } else {
            Err("trailing bytes after the payload list".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use activity_core::{payload::Payload, ActivityOptions};

    use super::*;
    use crate::store::{
        sql::SqlTx,
        sqlite::{SqliteConn, SqliteStore},
        Tx,
    };

    fn version(conn: &Connection) -> u32 {
        stored_version(conn).unwrap()
    }

    /// A version 3 payload list blob.
    fn v3_payloads(payloads: &[Payload]) -> Vec<u8> {
        let mut out = u32::try_from(payloads.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        for p in payloads {
            let name = p.encoding.as_str().as_bytes();
            let len = u32::try_from(1 + name.len() + p.data.len()).unwrap();
            out.extend(len.to_be_bytes());
            out.push(u8::try_from(name.len()).unwrap());
            out.extend(name);
            out.extend(&p.data[..]);
        }
        out
    }

    fn old_execution(conn: &Connection, options: &str) {
        conn.execute(
            "INSERT INTO executions (scope, activity_id, activity_type, task_queue, input,
                options, state, attempt, scheduled_at, attempt_scheduled_at, cancel_requested)
             VALUES ('', 'old', 't', 'q', ?1, ?2, 'SCHEDULED', 1, 0, 0, 0)",
            params![v3_payloads(&[Payload::json("x").unwrap()]), options],
        )
        .unwrap();
    }

    /// A database at `version` made of `ddl`, in a new directory.
    fn old_database(
        ddl: &str,
        version: &str,
    ) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(ddl).unwrap();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            params![version.as_bytes()],
        )
        .unwrap();
        (dir, path, conn)
    }

    fn options_json() -> String {
        let options = ActivityOptions::new()
            .start_to_close(std::time::Duration::from_secs(1))
            .validate(Some("q"))
            .unwrap();
        serde_json::to_string(&options).unwrap()
    }

    #[test]
    fn a_version_1_database_is_upgraded_in_place_and_keeps_its_rows() {
        let (_dir, path, conn) = old_database(V1, "1");
        old_execution(&conn, &options_json());
        assert!(conn.prepare("SELECT workflow_seq FROM executions").is_err());
        drop(conn);
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), current_version());
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT key FROM executions WHERE scope = 'r' AND workflow_seq = 1",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("executions_by_seq"), "{plan}");
        let mut sqlite = SqliteConn { conn: &conn };
        let mut tx = SqlTx::new(&mut sqlite);
        let old = tx.execution_by_id("", "old").unwrap().expect("kept");
        assert_eq!(old.workflow_seq, None);
        assert_eq!(old.input, vec![Payload::json("x").unwrap()]);
        assert_eq!(
            old.options.start_to_close,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(tx.latest_run("any").unwrap(), None);
        assert_eq!(tx.registered_types().unwrap(), vec![]);
    }

    #[test]
    fn a_value_that_does_not_convert_stops_the_upgrade_and_changes_nothing() {
        let (_dir, path, conn) = old_database(&format!("{V1}{V2}{V3}"), "3");
        old_execution(&conn, "{\"not\": \"options\"}");
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("from schema version 3 to 4") && err.contains("options"),
            "{err}"
        );
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), 3);
        let options: String = conn
            .query_row("SELECT options FROM executions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(options, "{\"not\": \"options\"}");
    }

    #[test]
    fn a_newer_schema_is_refused_with_what_to_do() {
        let (_dir, path, conn) = old_database(V1, "9");
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err().to_string();
        let newer = format!(
            "schema version 9, newer than this engine's {}",
            current_version()
        );
        assert!(
            err.contains(&newer) && err.contains("open it with that version"),
            "{err}"
        );
    }

    #[test]
    fn legacy_payload_blobs_are_read_and_garbage_is_refused() {
        let list = vec![Payload::json("a").unwrap(), Payload::json(&[1, 2]).unwrap()];
        assert_eq!(legacy::payloads(&v3_payloads(&list)).unwrap(), list);
        assert_eq!(legacy::payloads(&v3_payloads(&[])).unwrap(), vec![]);
        assert!(legacy::payloads(&[0, 0, 0, 1]).is_err());
        assert!(legacy::payload(&[3, b'x']).is_err());
        assert!(legacy::payload(b"\x03abc{}")
            .unwrap_err()
            .contains("unknown payload encoding"));
    }
}
