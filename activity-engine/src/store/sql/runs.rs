//! Workflow runs, their append-only histories, buffered events and timers.
//!
//! Every transaction that appends to a history, or buffers an event, reads the
//! run first, and that read locks the run's row (`FOR UPDATE`): event ids stay
//! gap-free across nodes, and the `(run_key, event_id)` key refuses a
//! duplicate. Workflow task claims skip runs other transactions hold; due
//! workflow timers lock their run too (see [`super::executions`]).

use activity_core::{
    clock::{from_millis, to_millis},
    workflow::{EventKind, HistoryEvent, ListWorkflowsRequest, WorkflowState},
};

use super::{
    changed_one, first, int, model, opt_model, payloads, rows, Conn, Lock, Param, Query, Reader,
    Value,
};
use crate::store::{
    HistoryPage, RunRecord, StoreError, WorkflowTaskState, WorkflowTimerKind, WorkflowTimerRecord,
};

/// The columns [`read`] decodes, in order.
macro_rules! run_columns {
    () => {
        "key, workflow_id, run_id, workflow_type, task_queue, input, started_at, state, \
         outcome, cancel_requested, closed_at, history_length, task_state, task_seq, \
         task_scheduled_at, task_started_at, task_identity, task_failures, history_size, \
         history_warned, trace_context"
    };
}

fn read(row: Vec<Value>) -> Result<RunRecord, StoreError> {
    let mut r = Reader::new("workflow run", row);
    let key = r.int("key")?;
    let mut r = r.keyed(key);
    Ok(RunRecord {
        key,
        workflow_id: r.text("workflow_id")?,
        run_id: r.text("run_id")?,
        workflow_type: r.text("workflow_type")?,
        task_queue: r.text("task_queue")?,
        input: r.model("input")?,
        started_at: r.int("started_at")?,
        state: r.name("state", WorkflowState::parse)?,
        outcome: r.opt_model("outcome")?,
        cancel_requested: r.flag("cancel_requested")?,
        closed_at: r.opt_int("closed_at")?,
        history_length: r.count("history_length")?,
        task_state: r.name("task_state", WorkflowTaskState::parse)?,
        task_seq: r.count("task_seq")?,
        task_scheduled_at: r.int("task_scheduled_at")?,
        task_started_at: r.opt_int("task_started_at")?,
        task_identity: r.opt_text("task_identity")?,
        task_failures: r.count("task_failures")?,
        history_size: r.count("history_size")?,
        history_warned: r.flag("history_warned")?,
        trace_context: r.opt_text("trace_context")?,
    })
}

/// The columns that change after insert, as parameters `$2`…`$14` (`$1` is the key).
fn changing(r: &RunRecord) -> Result<[Param<'_>; 13], StoreError> {
    Ok([
        r.state.as_str().into(),
        opt_model(r.outcome.as_ref())?,
        r.cancel_requested.into(),
        r.closed_at.into(),
        int(r.history_length),
        r.task_state.as_str().into(),
        r.task_seq.into(),
        r.task_scheduled_at.into(),
        r.task_started_at.into(),
        r.task_identity.as_ref().into(),
        r.task_failures.into(),
        int(r.history_size),
        r.history_warned.into(),
    ])
}

const INSERT: Query = Query::new(
    "INSERT INTO workflow_runs (state, outcome, cancel_requested, closed_at, history_length,
        task_state, task_seq, task_scheduled_at, task_started_at, task_identity, task_failures,
        history_size, history_warned, workflow_id, run_id, workflow_type, task_queue, input,
        started_at, trace_context)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20)
     RETURNING key",
);

pub(crate) fn insert(conn: &mut dyn Conn, r: &RunRecord) -> Result<i64, StoreError> {
    let mut params = Vec::from(changing(r)?);
    params.extend([
        r.workflow_id.as_str().into(),
        r.run_id.as_str().into(),
        r.workflow_type.as_str().into(),
        r.task_queue.as_str().into(),
        payloads(&r.input)?,
        r.started_at.into(),
        r.trace_context.as_ref().into(),
    ]);
    super::insert(conn, &INSERT, &params, "a workflow run")
}

const UPDATE: Query = Query::new(
    "UPDATE workflow_runs SET state = $2, outcome = $3, cancel_requested = $4, closed_at = $5,
        history_length = $6, task_state = $7, task_seq = $8, task_scheduled_at = $9,
        task_started_at = $10, task_identity = $11, task_failures = $12, history_size = $13,
        history_warned = $14
     WHERE key = $1",
);

pub(crate) fn update(conn: &mut dyn Conn, r: &RunRecord) -> Result<(), StoreError> {
    // Ids, type, queue, input and start time never change after insert.
    let mut params = vec![Param::from(r.key)];
    params.extend(changing(r)?);
    let changed = conn.execute(&UPDATE, &params)?;
    changed_one(changed, || format!("run {}", r.key))
}

const BY_KEY: Query = Query::locking(
    concat!(
        "SELECT ",
        run_columns!(),
        " FROM workflow_runs WHERE key = $1"
    ),
    Lock::ForUpdate,
);

pub(crate) fn by_key(conn: &mut dyn Conn, key: i64) -> Result<Option<RunRecord>, StoreError> {
    first(conn, &BY_KEY, &[key.into()], read)
}

const BY_ID: Query = Query::locking(
    concat!(
        "SELECT ",
        run_columns!(),
        " FROM workflow_runs WHERE run_id = $1"
    ),
    Lock::ForUpdate,
);

pub(crate) fn by_id(conn: &mut dyn Conn, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    first(conn, &BY_ID, &[run_id.into()], read)
}

const LATEST: Query = Query::locking(
    concat!(
        "SELECT ",
        run_columns!(),
        " FROM workflow_runs WHERE workflow_id = $1 ORDER BY key DESC LIMIT 1"
    ),
    Lock::ForUpdate,
);

pub(crate) fn latest(
    conn: &mut dyn Conn,
    workflow_id: &str,
) -> Result<Option<RunRecord>, StoreError> {
    first(conn, &LATEST, &[workflow_id.into()], read)
}

macro_rules! next_workflow_task {
    () => {
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM workflow_runs WHERE task_state = 'SCHEDULED' AND task_queue = $1
             ORDER BY task_scheduled_at, key LIMIT 1"
        )
    };
}
const NEXT_WORKFLOW_TASK: Query = Query::locking(next_workflow_task!(), Lock::SkipLocked);

pub(crate) fn next_workflow_task(
    conn: &mut dyn Conn,
    task_queue: &str,
) -> Result<Option<RunRecord>, StoreError> {
    first(conn, &NEXT_WORKFLOW_TASK, &[task_queue.into()], read)
}

// Walks `workflow_runs_by_start` newest first, stopping after `limit` matches.
const LIST: Query = Query::new(concat!(
    "SELECT ",
    run_columns!(),
    " FROM workflow_runs
     WHERE (CAST($1 AS TEXT) IS NULL OR state = $1)
        AND (CAST($2 AS TEXT) IS NULL OR workflow_type = $2)
        AND (CAST($3 AS TEXT) IS NULL OR substr(workflow_id, 1, length($3)) = $3)
     ORDER BY started_at DESC, key DESC LIMIT $4 OFFSET $5"
));

pub(crate) fn list(
    conn: &mut dyn Conn,
    request: &ListWorkflowsRequest,
    limit: u32,
) -> Result<Vec<RunRecord>, StoreError> {
    let params = [
        request.state.map(WorkflowState::as_str).into(),
        request.workflow_type.as_deref().into(),
        request.workflow_id_prefix.as_deref().into(),
        limit.into(),
        request.offset.into(),
    ];
    rows(conn, &LIST, &params, read)
}

const APPEND_EVENT: Query = Query::new(
    "INSERT INTO workflow_history (run_key, event_id, time, kind) VALUES ($1, $2, $3, $4)",
);

/// Appends the event; returns the size of its stored kind in bytes.
pub(crate) fn append_event(
    conn: &mut dyn Conn,
    run_key: i64,
    event: &HistoryEvent,
) -> Result<u64, StoreError> {
    let kind = model(&event.kind)?;
    let size = match &kind {
        Param::Blob(bytes) => bytes.len() as u64,
        _ => 0,
    };
    let params = [
        run_key.into(),
        int(event.event_id),
        to_millis(event.time).into(),
        kind,
    ];
    conn.execute(&APPEND_EVENT, &params)?;
    Ok(size)
}

const HISTORY_AFTER: Query = Query::new(
    "SELECT event_id, time, kind FROM workflow_history
     WHERE run_key = $1 AND event_id > $2 ORDER BY event_id",
);

pub(crate) fn history_after(
    conn: &mut dyn Conn,
    run_key: i64,
    after: u64,
) -> Result<Vec<HistoryEvent>, StoreError> {
    rows(conn, &HISTORY_AFTER, &[run_key.into(), int(after)], |row| {
        read_event(run_key, row).map(|(event, _)| event)
    })
}

/// A history row as its event and the size of its stored kind.
fn read_event(run_key: i64, row: Vec<Value>) -> Result<(HistoryEvent, u64), StoreError> {
    let size = match row.get(2) {
        Some(Value::Blob(kind)) => kind.len() as u64,
        _ => 0,
    };
    let mut r = Reader::new("history event", row);
    let event_id = r.count("event_id")?;
    let mut r = r.keyed(format_args!("{event_id} of run {run_key}"));
    let time = from_millis(r.int("time")?);
    Ok((HistoryEvent::new(event_id, time, r.model("kind")?), size))
}

const HISTORY_CHUNK: Query = Query::new(
    "SELECT event_id, time, kind FROM workflow_history
     WHERE run_key = $1 AND event_id > $2 ORDER BY event_id LIMIT $3",
);

/// Rows read per statement of a page: a page of large events holds few of
/// them in memory beyond what it answers.
const PAGE_CHUNK: u64 = 16;

pub(crate) fn history_page(
    conn: &mut dyn Conn,
    run_key: i64,
    asked: HistoryPage,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let HistoryPage {
        after,
        max_events,
        max_bytes,
    } = asked;
    let mut page: Vec<HistoryEvent> = Vec::new();
    let mut bytes = 0_u64;
    let mut last = after;
    while (page.len() as u64) < max_events {
        let chunk = PAGE_CHUNK.min(max_events - page.len() as u64);
        let params = [run_key.into(), int(last), int(chunk)];
        let events = rows(conn, &HISTORY_CHUNK, &params, |row| {
            read_event(run_key, row)
        })?;
        let full = events.len() as u64 == chunk;
        for (event, size) in events {
            if !page.is_empty() && bytes.saturating_add(size) > max_bytes {
                return Ok(page);
            }
            bytes = bytes.saturating_add(size);
            last = event.event_id;
            page.push(event);
        }
        if !full {
            break;
        }
    }
    Ok(page)
}

const BUFFER_EVENT: Query =
    Query::new("INSERT INTO workflow_buffered_events (run_key, time, kind) VALUES ($1, $2, $3)");

pub(crate) fn buffer_event(
    conn: &mut dyn Conn,
    run_key: i64,
    time: i64,
    kind: &EventKind,
) -> Result<(), StoreError> {
    let params = [run_key.into(), time.into(), model(kind)?];
    conn.execute(&BUFFER_EVENT, &params).map(drop)
}

const BUFFERED: Query = Query::new(
    "SELECT position, time, kind FROM workflow_buffered_events
     WHERE run_key = $1 ORDER BY position",
);
const DELETE_BUFFERED: Query =
    Query::new("DELETE FROM workflow_buffered_events WHERE run_key = $1");

pub(crate) fn take_buffered(
    conn: &mut dyn Conn,
    run_key: i64,
) -> Result<Vec<(i64, EventKind)>, StoreError> {
    let events = rows(conn, &BUFFERED, &[run_key.into()], |row| {
        let mut r = Reader::new("buffered event", row);
        let position = r.int("position")?;
        let mut r = r.keyed(format_args!("{position} of run {run_key}"));
        Ok((r.int("time")?, r.model("kind")?))
    })?;
    if !events.is_empty() {
        conn.execute(&DELETE_BUFFERED, &[run_key.into()])?;
    }
    Ok(events)
}

const SET_TIMER: Query = Query::new(
    "INSERT INTO workflow_timers (run_key, kind, seq, due_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run_key, kind, seq) DO UPDATE SET due_at = excluded.due_at",
);

pub(crate) fn set_timer(conn: &mut dyn Conn, t: &WorkflowTimerRecord) -> Result<(), StoreError> {
    let params = [
        t.run_key.into(),
        t.kind.as_str().into(),
        t.seq.into(),
        t.due_at.into(),
    ];
    conn.execute(&SET_TIMER, &params).map(drop)
}

const CLEAR_TIMER: Query =
    Query::new("DELETE FROM workflow_timers WHERE run_key = $1 AND kind = $2 AND seq = $3");
const CLEAR_TIMERS_OF_KIND: Query =
    Query::new("DELETE FROM workflow_timers WHERE run_key = $1 AND kind = $2");

pub(crate) fn clear_timer(
    conn: &mut dyn Conn,
    run_key: i64,
    kind: WorkflowTimerKind,
    seq: Option<u32>,
) -> Result<(), StoreError> {
    match seq {
        Some(seq) => conn.execute(
            &CLEAR_TIMER,
            &[run_key.into(), kind.as_str().into(), seq.into()],
        ),
        None => conn.execute(
            &CLEAR_TIMERS_OF_KIND,
            &[run_key.into(), kind.as_str().into()],
        ),
    }
    .map(drop)
}

const CLEAR_TIMERS: Query = Query::new("DELETE FROM workflow_timers WHERE run_key = $1");

pub(crate) fn clear_timers(conn: &mut dyn Conn, run_key: i64) -> Result<(), StoreError> {
    conn.execute(&CLEAR_TIMERS, &[run_key.into()]).map(drop)
}

const DUE_TIMERS: Query = Query::locking(
    "SELECT t.run_key, t.kind, t.seq, t.due_at
     FROM workflow_timers t JOIN workflow_runs r ON r.key = t.run_key
     WHERE t.due_at <= $1 ORDER BY t.due_at, t.run_key, t.kind, t.seq LIMIT $2",
    Lock::SkipLocked,
);

pub(crate) fn due_timers(
    conn: &mut dyn Conn,
    now: i64,
    limit: usize,
) -> Result<Vec<WorkflowTimerRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(conn, &DUE_TIMERS, &[now.into(), limit.into()], |row| {
        let mut r = Reader::new("workflow timer", row);
        Ok(WorkflowTimerRecord {
            run_key: r.int("run_key")?,
            kind: r.name("kind", WorkflowTimerKind::parse)?,
            seq: r.count("seq")?,
            due_at: r.int("due_at")?,
        })
    })
}
