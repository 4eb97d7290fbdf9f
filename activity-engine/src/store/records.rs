//! The records the engine reads and writes through [`Tx`](super::Tx), and the
//! stable names of their kinds and states (what every backend stores).

use std::fmt;

use activity_core::{
    failure::{Failure, RetryState},
    options::ValidatedOptions,
    payload::Payload,
    protocol::{ExecutionState, TypeKind},
    workflow::{WorkflowOutcome, WorkflowState},
};

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
    /// The W3C `traceparent` its attempts are traced under (never changes).
    pub trace_context: Option<String>,
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

/// The link of a child run to its parent (docs/semantics.md §3.1): kept for
/// each run a workflow started as its child, and for each later run of its
/// continue-as-new chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildLink {
    /// The child run's key.
    pub run_key: i64,
    /// The child's workflow id (read with the run).
    pub workflow_id: String,
    /// The child's run id (read with the run).
    pub run_id: String,
    /// The parent's workflow id.
    pub parent_workflow_id: String,
    /// The parent's run id.
    pub parent_run_id: String,
    /// The sequence number of the parent's `StartChildWorkflow` command.
    pub parent_seq: u32,
    /// What happens to the child when the parent closes first.
    pub policy: activity_core::workflow::ParentClosePolicy,
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
    /// Size of its history in bytes (the stored events).
    pub history_size: u64,
    /// Whether its history got its `HistorySizeWarning` event.
    pub history_warned: bool,
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
    /// The W3C `traceparent` its workflow tasks are traced under (never changes).
    pub trace_context: Option<String>,
}

/// Which events of a history one read returns: those after event `after`, in
/// order, at most `max_events`, stopping before the one that would pass
/// `max_bytes` of stored events (but at least one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The last event id already read (0: from the start).
    pub after: u64,
    /// The most events.
    pub max_events: u64,
    /// The most bytes of stored events (passed by a single first event).
    pub max_bytes: u64,
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
    /// The end of the run's run timeout (`seq` 0).
    RunTimeout,
    /// The end of the workflow's execution timeout, carried from run to run
    /// of a continue-as-new chain (`seq` 0).
    ExecutionTimeout,
}

impl WorkflowTimerKind {
    /// Every kind.
    pub const ALL: [WorkflowTimerKind; 5] = [
        WorkflowTimerKind::Timer,
        WorkflowTimerKind::TaskTimeout,
        WorkflowTimerKind::TaskBackoff,
        WorkflowTimerKind::RunTimeout,
        WorkflowTimerKind::ExecutionTimeout,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowTimerKind::Timer => "timer",
            WorkflowTimerKind::TaskTimeout => "task_timeout",
            WorkflowTimerKind::TaskBackoff => "task_backoff",
            WorkflowTimerKind::RunTimeout => "run_timeout",
            WorkflowTimerKind::ExecutionTimeout => "execution_timeout",
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
