//! The one implementation of [`Tx`] in SQL, shared by the backends.
//!
//! Each concern keeps its statements and its row encode/decode next to each
//! other: [`executions`] (executions and their timers), [`runs`] (workflow
//! runs, histories, buffered events and workflow timers), [`queues`] (task
//! queues, pollers and the engine's metadata), [`types`] (registered types) and
//! [`retention`] (deleting what closed longer ago than the retention).
//! A backend supplies a [`Conn`]: run a [`Query`] with [`Param`]s, return rows
//! of [`Value`]s. The SQL is written once in the dialect both backends accept
//! (`$n` parameters, `ON CONFLICT`, `RETURNING`); what differs is declared on
//! the query ([`Lock`]) and spelled by the backend.
//!
//! # Encodings (one per concept)
//!
//! - Model values (validated options, failures, retry states, workflow
//!   outcomes, history and buffered event kinds, argument names) and payloads
//!   (one, or a list) are model bytes: [`activity_core::codec`] (MessagePack
//!   with named fields, payload bytes as `bin`), in blob columns.
//! - States and kinds that queries filter on are their stable names (text).
//! - Times are milliseconds since the Unix epoch; counters are integers.

pub(crate) mod children;
pub(crate) mod executions;
pub(crate) mod queues;
pub(crate) mod retention;
pub(crate) mod runs;
pub(crate) mod types;

use std::borrow::Cow;

use activity_core::{
    codec,
    payload::Payload,
    protocol::{ListExecutionsRequest, TypeKind},
    workflow::{EventKind, HistoryEvent, ListWorkflowsRequest},
};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    ChildLink, ExecutionRecord, HistoryPage, QueueRecord, RunRecord, StoreError, TimerKind,
    TimerRecord, Tx, TypeRecord, Wakeup, WorkflowTimerKind, WorkflowTimerRecord,
};

/// How a `SELECT` locks the rows it reads, for backends with row locks
/// (SQLite has one writer and ignores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Lock {
    /// A plain read.
    None,
    /// `FOR UPDATE`: the rows are read for a change in this transaction; a
    /// concurrent transaction changing them waits.
    ForUpdate,
    /// `FOR UPDATE SKIP LOCKED`: claims; rows another transaction holds are
    /// skipped (another node is claiming them).
    SkipLocked,
}

/// One statement: its text (in the shared dialect) and how it locks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    /// The SQL, with parameters `$1`, `$2`, …
    pub(crate) sql: &'static str,
    /// Appended by backends with row locks.
    pub(crate) lock: Lock,
}

impl Query {
    /// A statement that locks nothing.
    pub(crate) const fn new(sql: &'static str) -> Self {
        Self {
            sql,
            lock: Lock::None,
        }
    }

    /// A `SELECT` that locks what it reads.
    pub(crate) const fn locking(sql: &'static str, lock: Lock) -> Self {
        Self { sql, lock }
    }
}

/// A statement parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param<'a> {
    /// `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(Cow<'a, [u8]>),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<u32> for Param<'_> {
    fn from(value: u32) -> Self {
        Param::Int(i64::from(value))
    }
}

impl From<u64> for Param<'_> {
    fn from(value: u64) -> Self {
        Param::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

impl From<f64> for Param<'_> {
    fn from(value: f64) -> Self {
        Param::Real(value)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}

impl From<Vec<u8>> for Param<'_> {
    fn from(value: Vec<u8>) -> Self {
        Param::Blob(Cow::Owned(value))
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Blob(Cow::Borrowed(value))
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// One column of a result row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// A flag (backends with a boolean type).
    Bool(bool),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A backend's connection, inside the transaction of a batch of jobs.
pub(crate) trait Conn {
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, query: &Query, params: &[Param<'_>]) -> Result<u64, StoreError>;
    /// Runs a query; its rows, each with one value per selected column.
    fn query(&mut self, query: &Query, params: &[Param<'_>])
        -> Result<Vec<Vec<Value>>, StoreError>;
    /// Whether concurrent transactions exist and [`Lock`]s mean something.
    fn row_locks(&self) -> bool;
    /// Keeps `wakeups` to send when the transaction commits.
    fn publish(&mut self, wakeups: Vec<Wakeup>) {
        let _ = wakeups;
    }
    /// Lock nothing from now on in this job ([`Tx::reads_only`]).
    fn reads_only(&mut self) {}
}

/// Reads the columns of one row in order, naming the column (and the row) in
/// any error: stored data that does not decode is [`StoreError::Corrupt`].
pub(crate) struct Reader {
    values: std::vec::IntoIter<Value>,
    table: &'static str,
    key: String,
}

impl Reader {
    /// A row of `table`.
    pub(crate) fn new(table: &'static str, row: Vec<Value>) -> Self {
        Self {
            values: row.into_iter(),
            table,
            key: String::new(),
        }
    }

    /// Names the row (its key) in later errors.
    pub(crate) fn keyed(mut self, key: impl std::fmt::Display) -> Self {
        self.key = format!(" {key}");
        self
    }

    fn corrupt(&self, column: &str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(format!(
            "{}{}, column `{column}`: {detail}",
            self.table, self.key
        ))
    }

    fn next(&mut self, column: &str) -> Result<Value, StoreError> {
        self.values
            .next()
            .ok_or_else(|| self.corrupt(column, "missing from the row"))
    }

    /// An integer column that may be `NULL`.
    pub(crate) fn opt_int(&mut self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.next(column)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(v)),
            other => Err(self.corrupt(column, format!("expected an integer, found {other:?}"))),
        }
    }

    /// An integer column.
    pub(crate) fn int(&mut self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    /// A non-negative integer column that fits `T`, which may be `NULL`.
    pub(crate) fn opt_count<T: TryFrom<i64>>(
        &mut self,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_int(column)?
            .map(|v| {
                T::try_from(v).map_err(|_| self.corrupt(column, format!("{v} is out of range")))
            })
            .transpose()
    }

    /// A non-negative integer column that fits `T`.
    pub(crate) fn count<T: TryFrom<i64>>(&mut self, column: &str) -> Result<T, StoreError> {
        self.opt_count(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    /// A flag (an integer where the backend has no boolean type).
    pub(crate) fn flag(&mut self, column: &str) -> Result<bool, StoreError> {
        match self.next(column)? {
            Value::Bool(v) => Ok(v),
            Value::Int(v) => Ok(v != 0),
            other => Err(self.corrupt(column, format!("expected a flag, found {other:?}"))),
        }
    }

    /// A float column that may be `NULL`.
    pub(crate) fn opt_real(&mut self, column: &str) -> Result<Option<f64>, StoreError> {
        match self.next(column)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(v)),
            // SQLite stores a whole REAL value as an integer when it can.
            Value::Int(v) => Ok(Some(v as f64)),
            other => Err(self.corrupt(column, format!("expected a number, found {other:?}"))),
        }
    }

    /// A float column.
    pub(crate) fn real(&mut self, column: &str) -> Result<f64, StoreError> {
        self.opt_real(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    /// A text column that may be `NULL`.
    pub(crate) fn opt_text(&mut self, column: &str) -> Result<Option<String>, StoreError> {
        match self.next(column)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(self.corrupt(column, format!("expected text, found {other:?}"))),
        }
    }

    /// A text column.
    pub(crate) fn text(&mut self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    /// A stable name, parsed.
    pub(crate) fn name<T>(
        &mut self,
        column: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let text = self.text(column)?;
        parse(&text).ok_or_else(|| self.corrupt(column, format!("unknown name `{text}`")))
    }

    /// A blob column that may be `NULL`.
    pub(crate) fn opt_blob(&mut self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.next(column)? {
            Value::Null => Ok(None),
            Value::Blob(v) => Ok(Some(v)),
            other => Err(self.corrupt(column, format!("expected bytes, found {other:?}"))),
        }
    }

    /// A column of model bytes that may be `NULL`, decoded.
    pub(crate) fn opt_model<T: DeserializeOwned>(
        &mut self,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_blob(column)?
            .map(|bytes| codec::from_slice(&bytes).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A column of model bytes, decoded.
    pub(crate) fn model<T: DeserializeOwned>(&mut self, column: &str) -> Result<T, StoreError> {
        self.opt_model(column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }
}

/// Encodes a model value for a blob column.
pub(crate) fn model<T: Serialize + ?Sized>(value: &T) -> Result<Param<'static>, StoreError> {
    codec::to_vec(value)
        .map(Param::from)
        .map_err(|e| StoreError::Backend(format!("cannot encode a record: {e}")))
}

/// Encodes an optional model value for a blob column (`NULL` when `None`).
pub(crate) fn opt_model<T: Serialize>(value: Option<&T>) -> Result<Param<'static>, StoreError> {
    value.map_or(Ok(Param::Null), model)
}

/// The payload list columns (`input`) hold a list of payloads.
pub(crate) fn payloads(value: &[Payload]) -> Result<Param<'static>, StoreError> {
    model(value)
}

/// A time or counter that does not fit an `i64` is stored as the largest one.
pub(crate) fn int(value: u64) -> Param<'static> {
    Param::from(value)
}

/// Runs `query` and reads each row with `read`.
pub(crate) fn rows<T>(
    conn: &mut dyn Conn,
    query: &Query,
    params: &[Param<'_>],
    read: impl Fn(Vec<Value>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    conn.query(query, params)?.into_iter().map(read).collect()
}

/// Runs `query` and reads its first row, if any, with `read`.
pub(crate) fn first<T>(
    conn: &mut dyn Conn,
    query: &Query,
    params: &[Param<'_>],
    read: impl FnOnce(Vec<Value>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    conn.query(query, params)?
        .into_iter()
        .next()
        .map(read)
        .transpose()
}

/// The single value of a one-row, one-column query (an aggregate).
pub(crate) fn scalar(
    conn: &mut dyn Conn,
    query: &Query,
    params: &[Param<'_>],
) -> Result<Value, StoreError> {
    Ok(conn
        .query(query, params)?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .unwrap_or(Value::Null))
}

/// Runs an `INSERT … RETURNING key` and returns the new row's key.
pub(crate) fn insert(
    conn: &mut dyn Conn,
    query: &Query,
    params: &[Param<'_>],
    what: &str,
) -> Result<i64, StoreError> {
    match scalar(conn, query, params)? {
        Value::Int(key) => Ok(key),
        other => Err(StoreError::Backend(format!(
            "inserting {what} returned {other:?}, not its key"
        ))),
    }
}

/// Checks that an update changed exactly one row.
pub(crate) fn changed_one(changed: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Backend(format!("{} does not exist", what())))
    }
}

/// [`Tx`] on a backend's connection.
pub(crate) struct SqlTx<'c> {
    conn: &'c mut dyn Conn,
}

impl<'c> SqlTx<'c> {
    /// The primitives on `conn`, inside its open transaction.
    pub(crate) fn new(conn: &'c mut dyn Conn) -> Self {
        Self { conn }
    }
}

impl Tx for SqlTx<'_> {
    fn meta_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        queues::meta_get(self.conn, key)
    }

    fn meta_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        queues::meta_put(self.conn, key, value)
    }

    fn meta_get_or_put(&mut self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        queues::meta_get_or_put(self.conn, key, value)
    }

    fn insert_execution(&mut self, record: &ExecutionRecord) -> Result<i64, StoreError> {
        executions::insert(self.conn, record)
    }

    fn update_execution(&mut self, record: &ExecutionRecord) -> Result<(), StoreError> {
        executions::update(self.conn, record)
    }

    fn execution(&mut self, key: i64) -> Result<Option<ExecutionRecord>, StoreError> {
        executions::by_key(self.conn, key)
    }

    fn execution_by_id(
        &mut self,
        scope: &str,
        activity_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        executions::by_id(self.conn, scope, activity_id)
    }

    fn next_dispatchable(
        &mut self,
        task_queue: &str,
        now: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        executions::next_dispatchable(self.conn, task_queue, now)
    }

    fn next_dispatch_time(
        &mut self,
        task_queue: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        executions::next_dispatch_time(self.conn, task_queue, now)
    }

    fn backlog(&mut self, task_queue: &str, now: i64) -> Result<(u64, u64), StoreError> {
        executions::backlog(self.conn, task_queue, now)
    }

    fn queue(&mut self, name: &str) -> Result<Option<QueueRecord>, StoreError> {
        queues::get(self.conn, name)
    }

    fn put_queue(&mut self, queue: &QueueRecord) -> Result<(), StoreError> {
        queues::put(self.conn, queue)
    }

    fn touch_poller(
        &mut self,
        task_queue: &str,
        identity: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        queues::touch_poller(self.conn, task_queue, identity, now)
    }

    fn pollers(&mut self, task_queue: &str, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        queues::pollers(self.conn, task_queue, since)
    }

    fn collect_idle_queues(&mut self, before: i64, limit: usize) -> Result<u64, StoreError> {
        queues::collect_idle(self.conn, before, limit)
    }

    fn delete_closed(&mut self, before: i64, limit: usize) -> Result<u64, StoreError> {
        retention::delete_closed(self.conn, before, limit)
    }

    fn set_timer(&mut self, timer: &TimerRecord) -> Result<(), StoreError> {
        executions::set_timer(self.conn, timer)
    }

    fn clear_timer(&mut self, execution_key: i64, kind: TimerKind) -> Result<(), StoreError> {
        executions::clear_timer(self.conn, execution_key, kind)
    }

    fn clear_timers(&mut self, execution_key: i64) -> Result<(), StoreError> {
        executions::clear_timers(self.conn, execution_key)
    }

    fn due_timers(&mut self, now: i64, limit: usize) -> Result<Vec<TimerRecord>, StoreError> {
        executions::due_timers(self.conn, now, limit)
    }

    fn next_timer_due(&mut self) -> Result<Option<i64>, StoreError> {
        executions::next_timer_due(self.conn)
    }

    fn list_executions(
        &mut self,
        request: &ListExecutionsRequest,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        executions::list(self.conn, request, limit)
    }

    fn task_queue_names(&mut self, limit: usize) -> Result<Vec<String>, StoreError> {
        queues::names(self.conn, limit)
    }

    fn open_executions(&mut self, scope: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        executions::open(self.conn, scope)
    }

    fn execution_by_seq(
        &mut self,
        scope: &str,
        seq: u32,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        executions::by_seq(self.conn, scope, seq)
    }

    fn insert_run(&mut self, record: &RunRecord) -> Result<i64, StoreError> {
        runs::insert(self.conn, record)
    }

    fn update_run(&mut self, record: &RunRecord) -> Result<(), StoreError> {
        runs::update(self.conn, record)
    }

    fn run(&mut self, key: i64) -> Result<Option<RunRecord>, StoreError> {
        runs::by_key(self.conn, key)
    }

    fn run_by_id(&mut self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        runs::by_id(self.conn, run_id)
    }

    fn latest_run(&mut self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError> {
        runs::latest(self.conn, workflow_id)
    }

    fn next_workflow_task(&mut self, task_queue: &str) -> Result<Option<RunRecord>, StoreError> {
        runs::next_workflow_task(self.conn, task_queue)
    }

    fn list_runs(
        &mut self,
        request: &ListWorkflowsRequest,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        runs::list(self.conn, request, limit)
    }

    fn insert_child_link(&mut self, link: &ChildLink) -> Result<(), StoreError> {
        children::insert(self.conn, link)
    }

    fn child_link(&mut self, run_key: i64) -> Result<Option<ChildLink>, StoreError> {
        children::of_run(self.conn, run_key)
    }

    fn open_children(
        &mut self,
        parent_run_id: &str,
        seq: Option<u32>,
    ) -> Result<Vec<ChildLink>, StoreError> {
        children::open(self.conn, parent_run_id, seq)
    }

    fn append_event(&mut self, run_key: i64, event: &HistoryEvent) -> Result<u64, StoreError> {
        runs::append_event(self.conn, run_key, event)
    }

    fn history_after(&mut self, run_key: i64, after: u64) -> Result<Vec<HistoryEvent>, StoreError> {
        runs::history_after(self.conn, run_key, after)
    }

    fn history_page(
        &mut self,
        run: i64,
        page: HistoryPage,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        runs::history_page(self.conn, run, page)
    }

    fn buffer_event(
        &mut self,
        run_key: i64,
        time: i64,
        kind: &EventKind,
    ) -> Result<(), StoreError> {
        runs::buffer_event(self.conn, run_key, time, kind)
    }

    fn take_buffered(&mut self, run_key: i64) -> Result<Vec<(i64, EventKind)>, StoreError> {
        runs::take_buffered(self.conn, run_key)
    }

    fn set_workflow_timer(&mut self, timer: &WorkflowTimerRecord) -> Result<(), StoreError> {
        runs::set_timer(self.conn, timer)
    }

    fn clear_workflow_timer(
        &mut self,
        run_key: i64,
        kind: WorkflowTimerKind,
        seq: Option<u32>,
    ) -> Result<(), StoreError> {
        runs::clear_timer(self.conn, run_key, kind, seq)
    }

    fn clear_workflow_timers(&mut self, run_key: i64) -> Result<(), StoreError> {
        runs::clear_timers(self.conn, run_key)
    }

    fn due_workflow_timers(
        &mut self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<WorkflowTimerRecord>, StoreError> {
        runs::due_timers(self.conn, now, limit)
    }

    fn put_registered_type(&mut self, record: &TypeRecord) -> Result<(), StoreError> {
        types::put(self.conn, record)
    }

    fn registered_type(
        &mut self,
        kind: TypeKind,
        name: &str,
        task_queue: &str,
    ) -> Result<Option<TypeRecord>, StoreError> {
        types::get(self.conn, kind, name, task_queue)
    }

    fn registered_types(&mut self) -> Result<Vec<TypeRecord>, StoreError> {
        types::all(self.conn)
    }

    fn publish(&mut self, wakeups: Vec<Wakeup>) {
        self.conn.publish(wakeups);
    }

    fn reads_only(&mut self) {
        self.conn.reads_only();
    }
}
