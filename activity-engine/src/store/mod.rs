//! The store: the authoritative state of the engine, behind a backend-neutral API.
//!
//! # Shape
//!
//! The engine's rules (SEMANTICS 1 and 2) are written once, in the engine, against
//! [`Tx`]: a handful of synchronous primitives on one open transaction (read an
//! execution, write it, claim the oldest dispatchable one, set and clear timers…).
//! A backend implements [`Store`] (run a job in a transaction, answer once it is
//! committed) and [`Tx`] (the primitives). Engine types never mention SQL, and a
//! second backend (PostgreSQL) is an addition, not a rewrite.
//!
//! # Group commit
//!
//! [`Store::transact`] may run many jobs in one transaction: each job runs inside
//! its own savepoint (a job that refuses a request, or fails, leaves no trace), and
//! every job of the batch is answered only after the one `COMMIT`. So an
//! acknowledged change is always durable (SEMANTICS 5) while concurrent requests
//! share one disk flush.
//!
//! # What a PostgreSQL backend needs
//!
//! - The same tables (see [`sqlite`]); `BIGSERIAL` keys, `BYTEA` blobs.
//! - [`Tx::next_dispatchable`] with `FOR UPDATE SKIP LOCKED`, so that several engine
//!   nodes claim different attempts; [`Tx::due_timers`] likewise, so one node fires
//!   each timer; [`Tx::queue`] with `FOR UPDATE` so the token bucket of a queue's
//!   global rate limit (kept in its row, updated in the claiming transaction) is
//!   shared by all nodes. [`Tx::next_workflow_task`] and
//!   [`Tx::due_workflow_timers`] the same way; [`Tx::run`] (and the other reads
//!   of a run) with `FOR UPDATE`, since every transaction that appends to a
//!   history, or buffers an event, writes or checks the run's row first: event
//!   ids stay gap-free, and the `(run_key, event_id)` key refuses a duplicate.
//! - Wake-ups across nodes: the engine's in-memory notifications (long polls,
//!   outcome waiters, the timer loop) only wake waiters of *this* process. A
//!   PostgreSQL store adds `LISTEN/NOTIFY` (queue name, execution key, "timers
//!   changed") and feeds them to the same notifiers; no correctness depends on them,
//!   only latency.
//! - A blocking client run on the blocking pool (or an async one behind the same
//!   job interface), group commit by batching jobs per connection.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use activity_core::{
    definition::BoxFuture,
    failure::{Failure, RetryState},
    options::ValidatedOptions,
    payload::Payload,
    protocol::{ExecutionState, ListExecutionsRequest, TypeKind},
    workflow::{EventKind, HistoryEvent, ListWorkflowsRequest, WorkflowOutcome, WorkflowState},
};

pub mod sqlite;

/// A store operation failed. Says whether a retry makes sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was closed; nothing was done. Retryable against a reopened engine.
    #[error("the store is closed")]
    Closed,
    /// The store is busy or unreachable (I/O error, disk full, lock); nothing was
    /// committed. Retryable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (corruption, a newer schema). Not retryable.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The backend refused an operation (a bug, or a broken schema). Not retryable.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Closed | StoreError::Unavailable(_))
    }
}

/// A job run in a transaction: returns `true` to keep its changes, `false` to
/// roll them back (a refused request).
pub type TxJob = Box<dyn FnOnce(&mut dyn Tx) -> bool + Send>;

/// An authoritative store with group commit. See the [module docs](self).
pub trait Store: Send + Sync + 'static {
    /// Runs `job` in a transaction, possibly shared with other jobs, and resolves
    /// once that transaction is committed (or failed: then nothing of it is kept).
    ///
    /// Must not block the async runtime; implementations that block run the wait
    /// on tokio's blocking pool, which also keeps a paused (virtual) clock from
    /// skipping ahead while a store request is in flight.
    fn transact(&self, job: TxJob) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Finishes the jobs already handed over and closes the store; later calls
    /// fail with [`StoreError::Closed`].
    fn close(&self) -> BoxFuture<'static, ()>;
}

/// Runs `f` in a transaction of `store` and returns its result once committed.
///
/// An `Err` from `f` rolls back what `f` wrote. If the commit fails, the store's
/// error is returned (converted), unless `f` itself refused the request.
pub async fn run<R, E>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, E> + Send + 'static,
) -> Result<R, E>
where
    R: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let slot: Arc<Mutex<Option<Result<R, E>>>> = Arc::new(Mutex::new(None));
    let job_slot = slot.clone();
    let job: TxJob = Box::new(move |tx| {
        let result = f(tx);
        let keep = result.is_ok();
        *lock(&job_slot) = Some(result);
        keep
    });
    let committed = store.transact(job).await;
    let result = lock(&slot).take();
    match (committed, result) {
        (Ok(()), Some(result)) => result,
        (Err(_), Some(Err(refused))) => Err(refused),
        (Err(err), _) => Err(err.into()),
        (Ok(()), None) => Err(StoreError::Backend(
            "a store job ended without a result (it panicked)".into(),
        )
        .into()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The slot is written once by one job; a poisoned lock still holds valid data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The primitives the engine's rules are written with, on one open transaction.
///
/// Times are milliseconds since the Unix epoch.
pub trait Tx {
    /// A value of the engine's own metadata (e.g. the task-token key).
    fn meta_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets a metadata value.
    fn meta_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Inserts a new execution and returns its key (`record.key` is ignored).
    fn insert_execution(&mut self, record: &ExecutionRecord) -> Result<i64, StoreError>;
    /// Writes every field of an existing execution.
    fn update_execution(&mut self, record: &ExecutionRecord) -> Result<(), StoreError>;
    /// The execution with this key.
    fn execution(&mut self, key: i64) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The execution with this id within `scope` (`""` for standalone activities).
    fn execution_by_id(
        &mut self,
        scope: &str,
        activity_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The oldest (by dispatchable time, then key) SCHEDULED execution of the
    /// queue that is dispatchable at `now`, locked for this transaction.
    fn next_dispatchable(
        &mut self,
        task_queue: &str,
        now: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The earliest dispatchable time after `now` on the queue (attempts in backoff).
    fn next_dispatch_time(&mut self, task_queue: &str, now: i64)
        -> Result<Option<i64>, StoreError>;
    /// (all SCHEDULED, dispatchable at `now`) attempts on the queue.
    fn backlog(&mut self, task_queue: &str, now: i64) -> Result<(u64, u64), StoreError>;

    /// The queue's settings and rate-limit bucket.
    fn queue(&mut self, name: &str) -> Result<Option<QueueRecord>, StoreError>;
    /// Writes the queue's settings and bucket.
    fn put_queue(&mut self, queue: &QueueRecord) -> Result<(), StoreError>;
    /// Records that `identity` polled the queue at `now`.
    fn touch_poller(
        &mut self,
        task_queue: &str,
        identity: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Pollers of the queue seen at or after `since`, most recent first.
    fn pollers(&mut self, task_queue: &str, since: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Sets (or moves) the timer of this kind of an execution.
    fn set_timer(&mut self, timer: &TimerRecord) -> Result<(), StoreError>;
    /// Removes the timer of this kind of an execution, if any.
    fn clear_timer(&mut self, execution_key: i64, kind: TimerKind) -> Result<(), StoreError>;
    /// Removes every timer of an execution.
    fn clear_timers(&mut self, execution_key: i64) -> Result<(), StoreError>;
    /// Timers due at `now`, earliest first, at most `limit`.
    fn due_timers(&mut self, now: i64, limit: usize) -> Result<Vec<TimerRecord>, StoreError>;
    /// The earliest due time of any timer (of executions and of workflow runs).
    fn next_timer_due(&mut self) -> Result<Option<i64>, StoreError>;

    /// Executions, newest first (by key), only those that match the request's
    /// filters, skipping `request.offset`, at most `limit`.
    fn list_executions(
        &mut self,
        request: &ListExecutionsRequest,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The names of the task queues that have a row, pollers, registered types
    /// or a scheduled workflow task, in order, at most `limit`.
    fn task_queue_names(&mut self, limit: usize) -> Result<Vec<String>, StoreError>;

    /// The executions of `scope` (a workflow run id) that are not final, by key.
    fn open_executions(&mut self, scope: &str) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The execution of `scope` scheduled by the workflow command with this `seq`.
    fn execution_by_seq(
        &mut self,
        scope: &str,
        seq: u32,
    ) -> Result<Option<ExecutionRecord>, StoreError>;

    /// Inserts a new workflow run and returns its key (`record.key` is ignored).
    fn insert_run(&mut self, record: &RunRecord) -> Result<i64, StoreError>;
    /// Writes every changing field of an existing run.
    fn update_run(&mut self, record: &RunRecord) -> Result<(), StoreError>;
    /// The run with this key.
    fn run(&mut self, key: i64) -> Result<Option<RunRecord>, StoreError>;
    /// The run with this run id.
    fn run_by_id(&mut self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The latest run (highest key) of a workflow id.
    fn latest_run(&mut self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The run of the queue whose workflow task is SCHEDULED, oldest first (by
    /// scheduled time, then key), locked for this transaction.
    fn next_workflow_task(&mut self, task_queue: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Runs, newest first (by start time, then key), only those that match the
    /// request's filters, skipping `request.offset`, at most `limit`.
    fn list_runs(
        &mut self,
        request: &ListWorkflowsRequest,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Appends an event to a run's history; `event.event_id` must be the next id.
    fn append_event(&mut self, run_key: i64, event: &HistoryEvent) -> Result<(), StoreError>;
    /// The whole history of a run, in order.
    fn history(&mut self, run_key: i64) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_after(run_key, 0)
    }
    /// The events of a run's history after event `after` (0: all), in order.
    fn history_after(&mut self, run_key: i64, after: u64) -> Result<Vec<HistoryEvent>, StoreError>;
    /// Keeps an event that arrived while the run's workflow task was started; it
    /// is appended after that task's answer.
    fn buffer_event(&mut self, run_key: i64, time: i64, kind: &EventKind)
        -> Result<(), StoreError>;
    /// Removes and returns the run's buffered events (time, kind), in arrival order.
    fn take_buffered(&mut self, run_key: i64) -> Result<Vec<(i64, EventKind)>, StoreError>;

    /// Sets (or moves) a workflow timer.
    fn set_workflow_timer(&mut self, timer: &WorkflowTimerRecord) -> Result<(), StoreError>;
    /// Removes the run's timers of `kind` (only the one with `seq`, when given).
    fn clear_workflow_timer(
        &mut self,
        run_key: i64,
        kind: WorkflowTimerKind,
        seq: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Removes every timer of a run.
    fn clear_workflow_timers(&mut self, run_key: i64) -> Result<(), StoreError>;
    /// Workflow timers due at `now`, earliest first, at most `limit`.
    fn due_workflow_timers(
        &mut self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<WorkflowTimerRecord>, StoreError>;

    // Registered types.
    /// Inserts or replaces the registration of a type on a task queue.
    fn put_registered_type(&mut self, record: &TypeRecord) -> Result<(), StoreError>;
    /// The registration of a type on a task queue, if any.
    fn registered_type(
        &mut self,
        kind: TypeKind,
        name: &str,
        task_queue: &str,
    ) -> Result<Option<TypeRecord>, StoreError>;
    /// Every registration, by kind, name and task queue.
    fn registered_types(&mut self) -> Result<Vec<TypeRecord>, StoreError>;
}

/// A type a worker registered on a task queue, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeRecord {
    /// Activity or workflow.
    pub kind: TypeKind,
    /// The type name.
    pub name: String,
    /// The task queue.
    pub task_queue: String,
    /// Argument names (activities).
    pub arguments: Vec<String>,
    /// The input's JSON Schema as JSON text (activities).
    pub input_schema: Option<String>,
    /// The result's JSON Schema as JSON text (activities).
    pub output_schema: Option<String>,
    /// Identity of the worker that registered it last.
    pub identity: String,
    /// When it was registered last.
    pub registered_at: i64,
}

/// One activity execution as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRecord {
    /// Store key (assigned on insert).
    pub key: i64,
    /// `""` for a standalone activity; the workflow run for a workflow's activity.
    pub scope: String,
    /// The activity id, unique within `scope`.
    pub activity_id: String,
    /// The calling workflow; `None` for a standalone activity.
    pub workflow_id: Option<String>,
    /// The calling workflow run; `None` for a standalone activity.
    pub workflow_run_id: Option<String>,
    /// The `seq` of the workflow command that scheduled it; `None` for a
    /// standalone activity.
    pub workflow_seq: Option<u32>,
    /// The activity type.
    pub activity_type: String,
    /// Where attempts are dispatched.
    pub task_queue: String,
    /// Serialized arguments.
    pub input: Vec<Payload>,
    /// Validated options.
    pub options: ValidatedOptions,
    /// State.
    pub state: ExecutionState,
    /// Current attempt, from 1.
    pub attempt: u32,
    /// First scheduling time.
    pub scheduled_at: i64,
    /// When the current attempt is dispatchable.
    pub attempt_scheduled_at: i64,
    /// When the current attempt was started.
    pub started_at: Option<i64>,
    /// Who started it.
    pub worker_identity: Option<String>,
    /// Latest heartbeat details (kept across attempts).
    pub heartbeat_details: Option<Payload>,
    /// Latest heartbeat time.
    pub last_heartbeat_at: Option<i64>,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// Failure of the last failed attempt, or the final failure.
    pub last_failure: Option<Failure>,
    /// Why no further attempt is made (final, not completed).
    pub retry_state: Option<RetryState>,
    /// The result, once completed.
    pub result: Option<Payload>,
    /// When it became final.
    pub closed_at: Option<i64>,
}

/// A task queue's stored settings.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRecord {
    /// Queue name.
    pub name: String,
    /// Global rate limit, activities per second.
    pub rate_limit: Option<f64>,
    /// Tokens in the rate-limit bucket.
    pub bucket_tokens: f64,
    /// When the bucket was last refilled.
    pub bucket_at: i64,
}

/// Which deadline a timer stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The whole execution's deadline.
    ScheduleToClose,
    /// The current attempt's wait in the queue.
    ScheduleToStart,
    /// The started attempt's deadline.
    StartToClose,
    /// The started attempt's next heartbeat deadline.
    Heartbeat,
    /// The end of a retry backoff: the attempt becomes dispatchable (wakes pollers).
    Dispatch,
}

impl TimerKind {
    /// Every kind.
    pub const ALL: [TimerKind; 5] = [
        TimerKind::ScheduleToClose,
        TimerKind::ScheduleToStart,
        TimerKind::StartToClose,
        TimerKind::Heartbeat,
        TimerKind::Dispatch,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::ScheduleToClose => "schedule_to_close",
            TimerKind::ScheduleToStart => "schedule_to_start",
            TimerKind::StartToClose => "start_to_close",
            TimerKind::Heartbeat => "heartbeat",
            TimerKind::Dispatch => "dispatch",
        }
    }

    /// Parses [`TimerKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durable timer: one per (execution, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerRecord {
    /// The execution.
    pub execution_key: i64,
    /// Which deadline.
    pub kind: TimerKind,
    /// The attempt it belongs to (checked when it fires).
    pub attempt: u32,
    /// When it fires.
    pub due_at: i64,
}

/// Where a run's workflow task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkflowTaskState {
    /// No task: the code waits for events.
    Idle,
    /// A task waits in the run's queue for a worker.
    Scheduled,
    /// A worker took the task; events that arrive now are buffered.
    Started,
    /// The last task failed; the next one is scheduled when its backoff ends.
    Backoff,
}

impl WorkflowTaskState {
    /// Every state.
    pub const ALL: [WorkflowTaskState; 4] = [
        WorkflowTaskState::Idle,
        WorkflowTaskState::Scheduled,
        WorkflowTaskState::Started,
        WorkflowTaskState::Backoff,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowTaskState::Idle => "IDLE",
            WorkflowTaskState::Scheduled => "SCHEDULED",
            WorkflowTaskState::Started => "STARTED",
            WorkflowTaskState::Backoff => "BACKOFF",
        }
    }

    /// Parses [`WorkflowTaskState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One workflow run as stored (its history is kept apart, append-only).
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// Store key (assigned on insert).
    pub key: i64,
    /// The workflow id (at most one RUNNING run per id).
    pub workflow_id: String,
    /// The engine-generated, unique run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The run's task queue.
    pub task_queue: String,
    /// Serialized arguments.
    pub input: Vec<Payload>,
    /// State.
    pub state: WorkflowState,
    /// The outcome, once final.
    pub outcome: Option<WorkflowOutcome>,
    /// Whether cancellation of the run was requested.
    pub cancel_requested: bool,
    /// When the run started.
    pub started_at: i64,
    /// When it closed.
    pub closed_at: Option<i64>,
    /// Number of events in its history (the last event id).
    pub history_length: u64,
    /// Where its workflow task is.
    pub task_state: WorkflowTaskState,
    /// Number of the latest workflow task scheduled (from 1; tokens carry it).
    pub task_seq: u32,
    /// When the latest task was scheduled (dispatch order).
    pub task_scheduled_at: i64,
    /// When the current task was started.
    pub task_started_at: Option<i64>,
    /// Who started the current task.
    pub task_identity: Option<String>,
    /// Consecutive failed workflow tasks (backoff of the next one).
    pub task_failures: u32,
}

/// What a workflow timer stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkflowTimerKind {
    /// A timer the workflow started (`seq` = the command's seq).
    Timer,
    /// The started workflow task's deadline (`seq` = task number).
    TaskTimeout,
    /// The end of a failed task's backoff (`seq` = task number).
    TaskBackoff,
}

impl WorkflowTimerKind {
    /// Every kind.
    pub const ALL: [WorkflowTimerKind; 3] = [
        WorkflowTimerKind::Timer,
        WorkflowTimerKind::TaskTimeout,
        WorkflowTimerKind::TaskBackoff,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowTimerKind::Timer => "timer",
            WorkflowTimerKind::TaskTimeout => "task_timeout",
            WorkflowTimerKind::TaskBackoff => "task_backoff",
        }
    }

    /// Parses [`WorkflowTimerKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A durable timer of a workflow run: one per (run, kind, seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkflowTimerRecord {
    /// The run.
    pub run_key: i64,
    /// What it stands for.
    pub kind: WorkflowTimerKind,
    /// The timer's seq, or the task number it belongs to.
    pub seq: u32,
    /// When it fires.
    pub due_at: i64,
}
