//! The store: the authoritative state of the engine, behind a backend-neutral API.
//!
//! # Shape
//!
//! The engine's rules (docs/semantics.md §1 and §2) are written once, in the engine, against
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
//! acknowledged change is always durable (docs/semantics.md §5) while concurrent requests
//! share one disk flush.
//!
//! A job may run more than once ([`TxJob`]): on a shared store, a job that
//! meets another transaction's locks is rolled back to its savepoint and runs
//! again in the next transaction, and it is answered after the run that was
//! kept (see the [`postgres`] module).
//!
//! # Layout
//!
//! - [`records`]: what the engine reads and writes, and the stable names of
//!   kinds and states; [`Tx`] and [`Store`] here: all store-neutral.
//! - `sql`: the one implementation of [`Tx`] in SQL, per table and concern
//!   (executions and timers; runs, histories and buffered events; queues and
//!   pollers; registered types), with the row encode/decode helpers. Model
//!   values (options, failures, outcomes, event kinds, payloads) are stored as
//!   model bytes ([`activity_core::codec`]); states and kinds by their stable
//!   names. A backend gives it a connection and its dialect.
//! - [`sqlite`]: the embedded backend (one writer thread, group commit), its
//!   schema and numbered migrations.
//! - [`postgres`]: the shared backend, for several engine nodes on one
//!   database.

use std::sync::{Arc, Condvar, Mutex};

use activity_core::{
    definition::BoxFuture,
    protocol::{ListExecutionsRequest, TypeKind},
    workflow::{EventKind, HistoryEvent, ListWorkflowsRequest},
};

pub mod postgres;
pub mod records;
mod sql;
pub mod sqlite;

pub use records::{
    ChildLink, ExecutionRecord, HistoryPage, QueueRecord, RunRecord, TimerKind, TimerRecord,
    TypeRecord, WorkflowTaskState, WorkflowTimerKind, WorkflowTimerRecord,
};

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
///
/// A store may run a job more than once: a run rolled back on a conflict with
/// another transaction (a deadlock on PostgreSQL) is followed by another, in a
/// new transaction, and only the last run's changes are kept. So a job is `Fn`:
/// each run starts from the same captured request.
pub type TxJob = Box<dyn Fn(&mut dyn Tx) -> bool + Send>;

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

    /// Whether other engine nodes share this store: jobs then [`Tx::publish`]
    /// what they made happen, and [`Store::wakeups`] delivers what the other
    /// nodes published.
    fn is_shared(&self) -> bool {
        false
    }

    /// What other nodes published, once committed (taken once, by the engine).
    /// Only latency depends on it: a node re-reads the store on its own too.
    fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Vec<Wakeup>>> {
        None
    }
}

/// Something a transaction made happen that waiters on other nodes of a
/// shared store may be waiting for (sent on commit, best effort).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Wakeup {
    /// `count` attempts became dispatchable on the task queue.
    Queue(String, usize),
    /// The execution (scope and activity id, as the engine keys its waiters) became final.
    Closed(String),
    /// A workflow task became dispatchable on the task queue.
    WorkflowQueue(String),
    /// The workflow run closed.
    RunClosed(String),
    /// A timer was set, due at this time.
    Timer(i64),
    /// Anything may have changed (notifications may have been missed).
    All,
}

/// Runs `f` in a transaction of `store` and returns its result once committed.
///
/// `f` may run more than once (see [`TxJob`]); the result is that of its last
/// run, the one whose changes were kept.
///
/// An `Err` from `f` rolls back what `f` wrote. If the commit fails, the store's
/// error is returned (converted), unless `f` itself refused the request.
pub async fn run<R, E>(
    store: &dyn Store,
    f: impl Fn(&mut dyn Tx) -> Result<R, E> + Send + 'static,
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

/// Requests in flight, and the guard that keeps a paused clock from skipping
/// ahead while there are any (see the `sqlite` module docs).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: Mutex<u64>,
    idle: Condvar,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new request; starts a guard when it is the only one.
    pub(crate) fn begin(self: &Arc<Self>) {
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
    pub(crate) fn end(&self, n: u64) {
        let mut count = self.lock();
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.idle.notify_all();
        }
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
    /// The value of `key`, first setting it to `value` if it has none. Safe
    /// when several engine nodes race to set it: all of them get the value that
    /// was stored first.
    fn meta_get_or_put(&mut self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;

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
    /// Deletes up to `limit` pollers last seen before `before`, and up to `limit`
    /// queue rows with no rate limit and no poller left; returns how many rows went.
    fn collect_idle_queues(&mut self, before: i64, limit: usize) -> Result<u64, StoreError>;
    /// Deletes what closed before `before` (the retention): closed runs whose
    /// activities are all final, with their histories, buffered events, timers
    /// and executions, until about `limit` rows went (a run goes whole), then
    /// up to `limit` final standalone executions with their timers. Returns
    /// how many rows went.
    fn delete_closed(&mut self, before: i64, limit: usize) -> Result<u64, StoreError>;

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

    /// Records that run `link.run_key` is a child of `link.parent_run_id`
    /// (its workflow and run id fields are ignored).
    fn insert_child_link(&mut self, link: &ChildLink) -> Result<(), StoreError>;
    /// The parent link of run `run_key`, if a workflow started it as a child.
    fn child_link(&mut self, run_key: i64) -> Result<Option<ChildLink>, StoreError>;
    /// The RUNNING children of run `parent_run_id` (only that of command
    /// `seq`, when given), by command and key.
    fn open_children(
        &mut self,
        parent_run_id: &str,
        seq: Option<u32>,
    ) -> Result<Vec<ChildLink>, StoreError>;

    /// Appends an event to a run's history; `event.event_id` must be the next id.
    /// Returns the size of the stored event in bytes (what
    /// [`RunRecord::history_size`] adds up).
    fn append_event(&mut self, run_key: i64, event: &HistoryEvent) -> Result<u64, StoreError>;
    /// The whole history of a run, in order.
    fn history(&mut self, run_key: i64) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_after(run_key, 0)
    }
    /// The events of a run's history after event `after` (0: all), in order.
    fn history_after(&mut self, run_key: i64, after: u64) -> Result<Vec<HistoryEvent>, StoreError>;
    /// A page of a run's history ([`HistoryPage`]).
    fn history_page(
        &mut self,
        run: i64,
        page: HistoryPage,
    ) -> Result<Vec<HistoryEvent>, StoreError>;
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

    /// Sends `wakeups` to the other nodes of a shared store when this
    /// transaction commits (nothing if it does not). A no-op on a store of one
    /// engine.
    fn publish(&mut self, wakeups: Vec<Wakeup>) {
        let _ = wakeups;
    }

    /// Declares that the rest of this job only reads: on a shared store its
    /// reads then lock no rows (claims skip locked rows, and must not pass
    /// over one only looked at).
    fn reads_only(&mut self) {}
}
