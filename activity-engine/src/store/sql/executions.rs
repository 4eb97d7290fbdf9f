//! Executions and their timers.
//!
//! Every read of an execution in a transaction locks its row (`FOR UPDATE`):
//! the rules read an execution to change it, and on a shared database two
//! nodes must not both act on one attempt. Jobs that only read
//! ([`Tx::reads_only`](crate::store::Tx::reads_only)) lock nothing, so a claim
//! never skips an attempt that is merely being looked at. Claims skip rows other
//! transactions hold (`SKIP LOCKED`); due timers lock their execution too, so a
//! firing never waits for a row while holding a timer another transaction
//! wants to delete.

use super::{
    changed_one, first, model, opt_model, payloads, rows, scalar, Conn, Lock, Param, Query, Reader,
    Value,
};
use crate::store::{ExecutionRecord, StoreError, TimerKind, TimerRecord};
use activity_core::protocol::{ExecutionScope, ExecutionState, ListExecutionsRequest};

/// The columns [`read`] decodes, in order.
macro_rules! execution_columns {
    () => {
        "key, scope, activity_id, workflow_id, workflow_run_id, activity_type, task_queue, \
         input, options, state, attempt, scheduled_at, attempt_scheduled_at, started_at, \
         worker_identity, heartbeat_details, last_heartbeat_at, cancel_requested, \
         last_failure, retry_state, result, closed_at, workflow_seq, trace_context"
    };
}

fn read(row: Vec<Value>) -> Result<ExecutionRecord, StoreError> {
    let mut r = Reader::new("execution", row);
    let key = r.int("key")?;
    let mut r = r.keyed(key);
    Ok(ExecutionRecord {
        key,
        scope: r.text("scope")?,
        activity_id: r.text("activity_id")?,
        workflow_id: r.opt_text("workflow_id")?,
        workflow_run_id: r.opt_text("workflow_run_id")?,
        activity_type: r.text("activity_type")?,
        task_queue: r.text("task_queue")?,
        input: r.model("input")?,
        options: r.model("options")?,
        state: r.name("state", ExecutionState::parse)?,
        attempt: r.count("attempt")?,
        scheduled_at: r.int("scheduled_at")?,
        attempt_scheduled_at: r.int("attempt_scheduled_at")?,
        started_at: r.opt_int("started_at")?,
        worker_identity: r.opt_text("worker_identity")?,
        heartbeat_details: r.opt_model("heartbeat_details")?,
        last_heartbeat_at: r.opt_int("last_heartbeat_at")?,
        cancel_requested: r.flag("cancel_requested")?,
        last_failure: r.opt_model("last_failure")?,
        retry_state: r.opt_model("retry_state")?,
        result: r.opt_model("result")?,
        closed_at: r.opt_int("closed_at")?,
        workflow_seq: r.opt_count("workflow_seq")?,
        trace_context: r.opt_text("trace_context")?,
    })
}

/// The columns that change after insert, as parameters `$2`…`$13` (`$1` is the key).
fn changing(r: &ExecutionRecord) -> Result<[Param<'_>; 12], StoreError> {
    Ok([
        r.state.as_str().into(),
        r.attempt.into(),
        r.attempt_scheduled_at.into(),
        r.started_at.into(),
        r.worker_identity.as_ref().into(),
        opt_model(r.heartbeat_details.as_ref())?,
        r.last_heartbeat_at.into(),
        r.cancel_requested.into(),
        opt_model(r.last_failure.as_ref())?,
        opt_model(r.retry_state.as_ref())?,
        opt_model(r.result.as_ref())?,
        r.closed_at.into(),
    ])
}

const INSERT: Query = Query::new(
    "INSERT INTO executions (state, attempt, attempt_scheduled_at, started_at,
        worker_identity, heartbeat_details, last_heartbeat_at, cancel_requested, last_failure,
        retry_state, result, closed_at, scope, activity_id, workflow_id, workflow_run_id,
        activity_type, task_queue, input, options, scheduled_at, workflow_seq, trace_context)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23)
     RETURNING key",
);

pub(crate) fn insert(conn: &mut dyn Conn, r: &ExecutionRecord) -> Result<i64, StoreError> {
    let mut params = Vec::from(changing(r)?);
    params.extend([
        r.scope.as_str().into(),
        r.activity_id.as_str().into(),
        r.workflow_id.as_ref().into(),
        r.workflow_run_id.as_ref().into(),
        r.activity_type.as_str().into(),
        r.task_queue.as_str().into(),
        payloads(&r.input)?,
        model(&r.options)?,
        r.scheduled_at.into(),
        r.workflow_seq.into(),
        r.trace_context.as_ref().into(),
    ]);
    super::insert(conn, &INSERT, &params, "an execution")
}

const UPDATE: Query = Query::new(
    "UPDATE executions SET state = $2, attempt = $3, attempt_scheduled_at = $4,
        started_at = $5, worker_identity = $6, heartbeat_details = $7, last_heartbeat_at = $8,
        cancel_requested = $9, last_failure = $10, retry_state = $11, result = $12,
        closed_at = $13
     WHERE key = $1",
);

pub(crate) fn update(conn: &mut dyn Conn, r: &ExecutionRecord) -> Result<(), StoreError> {
    // Ids, type, queue, input, options and trace context never change after insert.
    let mut params = vec![Param::from(r.key)];
    params.extend(changing(r)?);
    let changed = conn.execute(&UPDATE, &params)?;
    changed_one(changed, || format!("execution {}", r.key))
}

const BY_KEY: Query = Query::locking(
    concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE key = $1"
    ),
    Lock::ForUpdate,
);

pub(crate) fn by_key(conn: &mut dyn Conn, key: i64) -> Result<Option<ExecutionRecord>, StoreError> {
    first(conn, &BY_KEY, &[key.into()], read)
}

const BY_ID: Query = Query::locking(
    concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE scope = $1 AND activity_id = $2"
    ),
    Lock::ForUpdate,
);

pub(crate) fn by_id(
    conn: &mut dyn Conn,
    scope: &str,
    activity_id: &str,
) -> Result<Option<ExecutionRecord>, StoreError> {
    first(conn, &BY_ID, &[scope.into(), activity_id.into()], read)
}

const BY_SEQ: Query = Query::locking(
    concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE scope = $1 AND workflow_seq = $2 ORDER BY key LIMIT 1"
    ),
    Lock::ForUpdate,
);

pub(crate) fn by_seq(
    conn: &mut dyn Conn,
    scope: &str,
    seq: u32,
) -> Result<Option<ExecutionRecord>, StoreError> {
    first(conn, &BY_SEQ, &[scope.into(), seq.into()], read)
}

const OPEN: Query = Query::locking(
    concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE scope = $1 AND state IN ('SCHEDULED', 'STARTED') ORDER BY key"
    ),
    Lock::ForUpdate,
);

pub(crate) fn open(conn: &mut dyn Conn, scope: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
    rows(conn, &OPEN, &[scope.into()], read)
}

// Newest first by key (the order of first scheduling), no extra index: a
// scope filter uses the `(scope, activity_id)` key.
const LIST: Query = Query::new(concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions
     WHERE (CAST($1 AS TEXT) IS NULL OR scope = $1)
        AND (CAST($2 AS TEXT) IS NULL OR state = $2)
        AND (CAST($3 AS TEXT) IS NULL OR activity_type = $3)
        AND (CAST($4 AS TEXT) IS NULL OR task_queue = $4)
     ORDER BY key DESC LIMIT $5 OFFSET $6"
));

pub(crate) fn list(
    conn: &mut dyn Conn,
    request: &ListExecutionsRequest,
    limit: u32,
) -> Result<Vec<ExecutionRecord>, StoreError> {
    let scope = match &request.scope {
        // Standalone executions have the empty scope (`ExecutionRecord::scope`).
        ExecutionScope::Standalone => Some(""),
        ExecutionScope::WorkflowRun(run_id) => Some(run_id.as_str()),
        _ => None,
    };
    let params = [
        scope.into(),
        request.state.map(ExecutionState::as_str).into(),
        request.activity_type.as_deref().into(),
        request.task_queue.as_deref().into(),
        limit.into(),
        request.offset.into(),
    ];
    rows(conn, &LIST, &params, read)
}

const NEXT_DISPATCHABLE: Query = Query::locking(
    concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions
         WHERE state = 'SCHEDULED' AND task_queue = $1 AND attempt_scheduled_at <= $2
         ORDER BY attempt_scheduled_at, key LIMIT 1"
    ),
    Lock::SkipLocked,
);

pub(crate) fn next_dispatchable(
    conn: &mut dyn Conn,
    task_queue: &str,
    now: i64,
) -> Result<Option<ExecutionRecord>, StoreError> {
    first(
        conn,
        &NEXT_DISPATCHABLE,
        &[task_queue.into(), now.into()],
        read,
    )
}

const NEXT_DISPATCH_TIME: Query = Query::new(
    "SELECT MIN(attempt_scheduled_at) FROM executions
     WHERE state = 'SCHEDULED' AND task_queue = $1 AND attempt_scheduled_at > $2",
);

pub(crate) fn next_dispatch_time(
    conn: &mut dyn Conn,
    task_queue: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    match scalar(conn, &NEXT_DISPATCH_TIME, &[task_queue.into(), now.into()])? {
        Value::Null => Ok(None),
        Value::Int(at) => Ok(Some(at)),
        other => Err(StoreError::Backend(format!(
            "the next dispatch time is {other:?}"
        ))),
    }
}

const BACKLOG: Query = Query::new(
    "SELECT COUNT(*), COUNT(*) FILTER (WHERE attempt_scheduled_at <= $2) FROM executions
     WHERE state = 'SCHEDULED' AND task_queue = $1",
);

pub(crate) fn backlog(
    conn: &mut dyn Conn,
    task_queue: &str,
    now: i64,
) -> Result<(u64, u64), StoreError> {
    let counts = first(conn, &BACKLOG, &[task_queue.into(), now.into()], |row| {
        let mut r = Reader::new("backlog", row);
        Ok((r.count("all")?, r.count("dispatchable")?))
    })?;
    Ok(counts.unwrap_or((0, 0)))
}

const SET_TIMER: Query = Query::new(
    "INSERT INTO timers (execution_key, kind, attempt, due_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (execution_key, kind) DO UPDATE
        SET attempt = excluded.attempt, due_at = excluded.due_at",
);

pub(crate) fn set_timer(conn: &mut dyn Conn, t: &TimerRecord) -> Result<(), StoreError> {
    let params = [
        t.execution_key.into(),
        t.kind.as_str().into(),
        t.attempt.into(),
        t.due_at.into(),
    ];
    conn.execute(&SET_TIMER, &params).map(drop)
}

const CLEAR_TIMER: Query = Query::new("DELETE FROM timers WHERE execution_key = $1 AND kind = $2");

pub(crate) fn clear_timer(
    conn: &mut dyn Conn,
    execution_key: i64,
    kind: TimerKind,
) -> Result<(), StoreError> {
    let params = [execution_key.into(), kind.as_str().into()];
    conn.execute(&CLEAR_TIMER, &params).map(drop)
}

const CLEAR_TIMERS: Query = Query::new("DELETE FROM timers WHERE execution_key = $1");

pub(crate) fn clear_timers(conn: &mut dyn Conn, execution_key: i64) -> Result<(), StoreError> {
    conn.execute(&CLEAR_TIMERS, &[execution_key.into()])
        .map(drop)
}

const DUE_TIMERS: Query = Query::locking(
    "SELECT t.execution_key, t.kind, t.attempt, t.due_at
     FROM timers t JOIN executions e ON e.key = t.execution_key
     WHERE t.due_at <= $1 ORDER BY t.due_at, t.execution_key, t.kind LIMIT $2",
    Lock::SkipLocked,
);

pub(crate) fn due_timers(
    conn: &mut dyn Conn,
    now: i64,
    limit: usize,
) -> Result<Vec<TimerRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(conn, &DUE_TIMERS, &[now.into(), limit.into()], |row| {
        let mut r = Reader::new("timer", row);
        Ok(TimerRecord {
            execution_key: r.int("execution_key")?,
            kind: r.name("kind", TimerKind::parse)?,
            attempt: r.count("attempt")?,
            due_at: r.int("due_at")?,
        })
    })
}

const NEXT_TIMER_DUE: Query = Query::new(
    "SELECT MIN(due_at) FROM (SELECT MIN(due_at) AS due_at FROM timers
        UNION ALL SELECT MIN(due_at) FROM workflow_timers) AS due",
);

pub(crate) fn next_timer_due(conn: &mut dyn Conn) -> Result<Option<i64>, StoreError> {
    match scalar(conn, &NEXT_TIMER_DUE, &[])? {
        Value::Null => Ok(None),
        Value::Int(at) => Ok(Some(at)),
        other => Err(StoreError::Backend(format!(
            "the next timer is due at {other:?}"
        ))),
    }
}
