//! The protocol between workers/clients and the engine: [`ActivityProtocol`].
//!
//! One trait carries every call a worker or a client makes to the engine
//! (docs/semantics.md §2). It has two implementations: in-process (the engine itself,
//! `activity_engine::Engine`) and, later, remote (a gRPC client). Workers and
//! clients hold an `Arc<dyn ActivityProtocol>` and never know which one they talk to.
//!
//! Design choices:
//! - **One method**, [`ActivityProtocol::call`], taking a [`ProtocolRequest`]
//!   (one variant per operation) and answering a [`ProtocolResponse`]; callers
//!   use the typed methods generated on `dyn ActivityProtocol` from the same list
//!   (see [`operations`](ProtocolRequest)). An implementation handles every
//!   variant (a new operation is a compile error until it does); a decorator
//!   handles the ones it cares about and forwards the rest in one line.
//! - **Object-safe**, `call` returns a [`BoxFuture`](crate::BoxFuture): a worker holds the
//!   protocol as a trait object, and a remote implementation needs no generic
//!   plumbing. The cost (one allocation per call) is small next to a store commit.
//! - **Plain data** in and out: requests and responses are structs with public
//!   fields, `#[non_exhaustive]` so that fields (workflow ids, priorities, …) can be
//!   added without breaking callers; build them with their constructors.
//! - **One error type**, [`ProtocolError`], whose variants map one to one onto gRPC
//!   status codes later, and which says whether a retry makes sense
//!   ([`ProtocolError::is_retryable`]).
//! - Operations on a running attempt take a [`TaskTarget`]: either the attempt's
//!   [`TaskToken`] (the worker, or any process it handed the token to), or the
//!   execution's id ([`ExecutionRef`]), which acts on the current attempt
//!   (docs/semantics.md §1.6).
//! - A stale target (an attempt that ended, a final execution) is refused with
//!   [`ProtocolError::AlreadyClosed`], whose [`ClosedReason`] tells a worker *why*, so
//!   it can cancel the activity's context with the right [`CancelReason`]
//!   (e.g. `TimedOut` when the engine timed the attempt out, docs/semantics.md §1.4).
//! - Long polls ([`Operation::is_long_poll`]: polls for work, waits for an
//!   outcome) are bounded by a wait given by the caller,
//!   so that a remote transport never holds a request open forever; the caller loops.
//!
//! The typed client built on this trait is in [`client`].

use std::{fmt, time::Duration, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::{
    context::{ActivityInfo, CancelReason, TaskToken},
    failure::{ActivityFailure, Failure, RetryState, TimeoutKind},
    options::{ActivityOptions, OptionsError, ValidatedOptions},
    payload::Payload,
    registry::ActivityDescriptor,
    workflow::WorkflowState,
};

pub mod client;
mod operations;

pub use operations::{ActivityProtocol, Operation, ProtocolRequest, ProtocolResponse};

/// Calls that wait for an outcome retry while the engine is unavailable.
pub(crate) mod retry;

/// Identifies one activity execution.
///
/// A standalone activity is identified by its activity id alone (unique within
/// the namespace); an activity scheduled by a workflow will also carry the
/// workflow's id and run id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionRef {
    /// The activity id.
    pub activity_id: String,
    /// The calling workflow's id; `None` for a standalone activity.
    pub workflow_id: Option<String>,
    /// The calling workflow's run id; `None` for a standalone activity (or the
    /// workflow's current run).
    pub workflow_run_id: Option<String>,
}

impl ExecutionRef {
    /// A standalone activity execution.
    pub fn standalone(activity_id: impl Into<String>) -> Self {
        Self {
            activity_id: activity_id.into(),
            workflow_id: None,
            workflow_run_id: None,
        }
    }
}

impl fmt::Display for ExecutionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.workflow_id, &self.workflow_run_id) {
            (Some(w), Some(r)) => write!(
                f,
                "activity `{}` of workflow `{w}` run `{r}`",
                self.activity_id
            ),
            (Some(w), None) => write!(f, "activity `{}` of workflow `{w}`", self.activity_id),
            _ => write!(f, "standalone activity `{}`", self.activity_id),
        }
    }
}

/// Which attempt an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskTarget {
    /// The attempt the token was issued for (and only that one).
    Token(TaskToken),
    /// The current attempt of the execution, whichever it is.
    Execution(ExecutionRef),
}

impl From<TaskToken> for TaskTarget {
    fn from(token: TaskToken) -> Self {
        TaskTarget::Token(token)
    }
}

impl From<ExecutionRef> for TaskTarget {
    fn from(execution: ExecutionRef) -> Self {
        TaskTarget::Execution(execution)
    }
}

/// Schedule a (standalone) activity execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleActivityRequest {
    /// The activity id; the engine assigns a unique one when `None`.
    pub activity_id: Option<String>,
    /// The activity type name.
    pub activity_type: String,
    /// The serialized arguments, one payload per argument.
    pub input: Vec<Payload>,
    /// The options, not yet validated: the engine validates them (docs/semantics.md §1.1).
    /// `task_queue` must be set (a client fills in its default queue).
    pub options: ActivityOptions,
    /// The W3C `traceparent` of the caller's span, stored with the execution:
    /// every attempt is traced as its child (docs/semantics.md §5). `None`: not
    /// traced.
    #[serde(default)]
    pub trace_context: Option<String>,
}

impl ScheduleActivityRequest {
    /// A request for activity type `activity_type` with `input` and `options`.
    pub fn new(
        activity_type: impl Into<String>,
        input: Vec<Payload>,
        options: ActivityOptions,
    ) -> Self {
        Self {
            activity_id: None,
            activity_type: activity_type.into(),
            input,
            options,
            trace_context: None,
        }
    }

    /// Sets the W3C `traceparent` the attempts are traced under.
    ///
    /// ```
    /// use activity_core::{protocol::ScheduleActivityRequest, ActivityOptions};
    ///
    /// let request = ScheduleActivityRequest::new("resize", vec![], ActivityOptions::default())
    ///     .with_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// assert!(request.trace_context.is_some());
    /// ```
    pub fn with_trace_context(mut self, traceparent: impl Into<String>) -> Self {
        self.trace_context = Some(traceparent.into());
        self
    }

    /// Sets the activity id.
    pub fn with_activity_id(mut self, activity_id: impl Into<String>) -> Self {
        self.activity_id = Some(activity_id.into());
        self
    }
}

/// What the engine recorded for a scheduled execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleActivityResponse {
    /// The execution (with the id the engine assigned, if none was given).
    pub execution: ExecutionRef,
    /// The options as validated, every default filled in.
    pub options: ValidatedOptions,
}

impl ScheduleActivityResponse {
    /// Builds a response.
    pub fn new(execution: ExecutionRef, options: ValidatedOptions) -> Self {
        Self { execution, options }
    }
}

/// Long-poll one task queue for an activity task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PollActivityTaskRequest {
    /// The task queue to poll. A worker serving several queues polls each.
    pub task_queue: String,
    /// Who polls (host, process, worker id): recorded as the attempt's worker and
    /// listed among the queue's recent pollers.
    pub identity: String,
    /// Sets the queue's global rate limit (`max_task_queue_activities_per_second`,
    /// docs/semantics.md §2), enforced by the engine across all pollers; `None` leaves it
    /// as it is.
    pub max_task_queue_activities_per_second: Option<f64>,
    /// How long to wait for a task before answering `None`; the engine bounds it.
    pub wait: Duration,
}

impl PollActivityTaskRequest {
    /// A poll of `task_queue` by `identity`, waiting up to 60 s.
    pub fn new(task_queue: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            task_queue: task_queue.into(),
            identity: identity.into(),
            max_task_queue_activities_per_second: None,
            wait: Duration::from_secs(60),
        }
    }

    /// Sets how long to wait for a task.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the queue's global rate limit.
    pub fn with_task_queue_rate_limit(mut self, per_second: f64) -> Self {
        self.max_task_queue_activities_per_second = Some(per_second);
        self
    }
}

/// One attempt handed to one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityTask {
    /// The attempt's token (also in `info.task_token`).
    pub task_token: TaskToken,
    /// What the activity knows about the attempt (ids, attempt, deadlines).
    pub info: ActivityInfo,
    /// The serialized arguments.
    pub input: Vec<Payload>,
    /// The details of the last heartbeat recorded by an earlier attempt.
    pub last_heartbeat_details: Option<Payload>,
    /// The W3C `traceparent` stored with the execution (docs/semantics.md §5):
    /// the worker traces the attempt as its child. `None` when not traced.
    #[serde(default)]
    pub trace_context: Option<String>,
}

impl ActivityTask {
    /// Builds a task.
    pub fn new(
        task_token: TaskToken,
        info: ActivityInfo,
        input: Vec<Payload>,
        last_heartbeat_details: Option<Payload>,
    ) -> Self {
        Self {
            task_token,
            info,
            input,
            last_heartbeat_details,
            trace_context: None,
        }
    }

    /// Sets the trace context the attempt is traced under.
    pub fn with_trace_context(mut self, traceparent: Option<String>) -> Self {
        self.trace_context = traceparent;
        self
    }
}

/// The engine's answer to a heartbeat of a running attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatResponse {
    /// Cancellation of the execution was requested: the activity should clean up
    /// and report canceled (or complete anyway).
    pub cancel_requested: bool,
}

impl HeartbeatResponse {
    /// Builds a response.
    pub fn new(cancel_requested: bool) -> Self {
        Self { cancel_requested }
    }

    /// The reason to cancel the activity's context with, if any.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel_requested.then_some(CancelReason::Requested)
    }
}

/// The state of an execution (docs/semantics.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExecutionState {
    /// Waiting in its task queue (or in a retry backoff) for a worker.
    Scheduled,
    /// Handed to a worker.
    Started,
    /// Final: completed with a result.
    Completed,
    /// Final: failed (application failure not retried).
    Failed,
    /// Final: timed out.
    TimedOut,
    /// Final: canceled.
    Canceled,
}

impl ExecutionState {
    /// Every state.
    pub const ALL: &'static [ExecutionState] = &[
        ExecutionState::Scheduled,
        ExecutionState::Started,
        ExecutionState::Completed,
        ExecutionState::Failed,
        ExecutionState::TimedOut,
        ExecutionState::Canceled,
    ];

    /// Whether the state is final (never changes again).
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionState::Scheduled | ExecutionState::Started)
    }

    /// The state's stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Scheduled => "SCHEDULED",
            ExecutionState::Started => "STARTED",
            ExecutionState::Completed => "COMPLETED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::TimedOut => "TIMED_OUT",
            ExecutionState::Canceled => "CANCELED",
        }
    }

    /// Parses [`ExecutionState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "SCHEDULED" => ExecutionState::Scheduled,
            "STARTED" => ExecutionState::Started,
            "COMPLETED" => ExecutionState::Completed,
            "FAILED" => ExecutionState::Failed,
            "TIMED_OUT" => ExecutionState::TimedOut,
            "CANCELED" => ExecutionState::Canceled,
            _ => return None,
        })
    }
}

impl fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The final outcome of an execution: exactly one per execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ExecutionOutcome {
    /// COMPLETED with the serialized result.
    Completed(Payload),
    /// FAILED, TIMED_OUT or CANCELED: the failure the caller sees (docs/semantics.md §4).
    Failed(ActivityFailure),
}

/// Everything known about one execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionDescription {
    /// Which execution.
    pub execution: ExecutionRef,
    /// The activity type name.
    pub activity_type: String,
    /// Its state.
    pub state: ExecutionState,
    /// The current (or last) attempt, from 1.
    pub attempt: u32,
    /// The validated options.
    pub options: ValidatedOptions,
    /// When the execution was first scheduled.
    pub scheduled_time: SystemTime,
    /// When the current attempt became (or becomes, during a backoff) dispatchable.
    pub current_attempt_scheduled_time: SystemTime,
    /// When the current attempt was started, if it was.
    pub started_time: Option<SystemTime>,
    /// The worker that started the current attempt, if any.
    pub worker_identity: Option<String>,
    /// When the last heartbeat was recorded.
    pub last_heartbeat_time: Option<SystemTime>,
    /// The latest heartbeat details.
    pub heartbeat_details: Option<Payload>,
    /// The failure of the last failed attempt (or the final failure).
    pub last_failure: Option<Failure>,
    /// Why no further attempt was (or will be) made, once final and not completed.
    pub retry_state: Option<RetryState>,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// When the execution reached its final state.
    pub close_time: Option<SystemTime>,
    /// The outcome, once final.
    pub outcome: Option<ExecutionOutcome>,
}

impl ExecutionDescription {
    /// A description with the required fields; the others start empty.
    pub fn new(
        execution: ExecutionRef,
        activity_type: impl Into<String>,
        state: ExecutionState,
        attempt: u32,
        options: ValidatedOptions,
        scheduled_time: SystemTime,
    ) -> Self {
        Self {
            execution,
            activity_type: activity_type.into(),
            state,
            attempt,
            options,
            scheduled_time,
            current_attempt_scheduled_time: scheduled_time,
            started_time: None,
            worker_identity: None,
            last_heartbeat_time: None,
            heartbeat_details: None,
            last_failure: None,
            retry_state: None,
            cancel_requested: false,
            close_time: None,
            outcome: None,
        }
    }
}

/// A worker that polled a task queue recently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PollerInfo {
    /// The poller's identity.
    pub identity: String,
    /// When it last polled.
    pub last_poll_time: SystemTime,
}

impl PollerInfo {
    /// Builds poller info.
    pub fn new(identity: impl Into<String>, last_poll_time: SystemTime) -> Self {
        Self {
            identity: identity.into(),
            last_poll_time,
        }
    }
}

/// The state of a task queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskQueueDescription {
    /// The queue's name.
    pub name: String,
    /// Attempts waiting on the queue (dispatchable now or after a backoff).
    pub backlog: u64,
    /// Of those, the attempts dispatchable now.
    pub dispatchable: u64,
    /// Workers that polled recently, most recent first.
    pub pollers: Vec<PollerInfo>,
    /// The global rate limit in activities per second, if set.
    pub rate_limit: Option<f64>,
}

impl TaskQueueDescription {
    /// An empty queue named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            backlog: 0,
            dispatchable: 0,
            pollers: Vec::new(),
            rate_limit: None,
        }
    }
}

/// The most task queues one `list_task_queues` call answers.
pub const MAX_LIST_TASK_QUEUES: usize = 1000;

/// The default number of executions a [`ListExecutionsRequest`] answers.
pub const DEFAULT_LIST_EXECUTIONS_LIMIT: u32 = 100;

/// The most executions one [`ListExecutionsRequest`] answers; larger limits are
/// bounded to it.
pub const MAX_LIST_EXECUTIONS_LIMIT: u32 = 1000;

/// Which executions a [`ListExecutionsRequest`] looks at, by who scheduled them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExecutionScope {
    /// Every execution, standalone or scheduled by a workflow.
    #[default]
    All,
    /// Only standalone executions (scheduled by a client).
    Standalone,
    /// Only the executions scheduled by this workflow run.
    WorkflowRun(String),
}

/// List activity executions, newest (latest first scheduling) first, filtered,
/// one page at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListExecutionsRequest {
    /// Whose executions.
    pub scope: ExecutionScope,
    /// Only executions in this state; `None`: any state.
    pub state: Option<ExecutionState>,
    /// Only executions of this activity type; `None`: any type.
    pub activity_type: Option<String>,
    /// Only executions on this task queue; `None`: any queue.
    pub task_queue: Option<String>,
    /// At most this many (bounded to [`MAX_LIST_EXECUTIONS_LIMIT`]).
    pub limit: u32,
    /// Skips this many matching executions first.
    pub offset: u32,
}

impl ListExecutionsRequest {
    /// Every execution, up to [`DEFAULT_LIST_EXECUTIONS_LIMIT`] of them.
    pub fn new() -> Self {
        Self {
            scope: ExecutionScope::All,
            state: None,
            activity_type: None,
            task_queue: None,
            limit: DEFAULT_LIST_EXECUTIONS_LIMIT,
            offset: 0,
        }
    }

    /// Only the executions of `scope`.
    pub fn with_scope(mut self, scope: ExecutionScope) -> Self {
        self.scope = scope;
        self
    }

    /// Only executions in `state`.
    pub fn with_state(mut self, state: ExecutionState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only executions of `activity_type`.
    pub fn with_activity_type(mut self, activity_type: impl Into<String>) -> Self {
        self.activity_type = Some(activity_type.into());
        self
    }

    /// Only executions on `task_queue`.
    pub fn with_task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.task_queue = Some(task_queue.into());
        self
    }

    /// At most `limit` executions.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matching executions.
    pub fn with_offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }
}

impl Default for ListExecutionsRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// One activity type a worker serves, with the JSON Schemas of its arguments and
/// result (from [`Registry::describe`](crate::Registry::describe)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityTypeInfo {
    /// The activity type name.
    pub name: String,
    /// The parameter names of its arguments, in order.
    pub arguments: Vec<String>,
    /// JSON Schema of the input: an array with one item per argument.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the result.
    pub output_schema: serde_json::Value,
}

impl ActivityTypeInfo {
    /// Builds the info of activity type `name`.
    pub fn new(
        name: impl Into<String>,
        arguments: Vec<String>,
        input_schema: serde_json::Value,
        output_schema: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            arguments,
            input_schema,
            output_schema,
        }
    }
}

impl From<&ActivityDescriptor> for ActivityTypeInfo {
    fn from(descriptor: &ActivityDescriptor) -> Self {
        Self::new(
            descriptor.name.clone(),
            descriptor.arguments.clone(),
            descriptor.input_schema.clone(),
            descriptor.output_schema.clone(),
        )
    }
}

/// What a worker tells the engine it serves: its activity types (with their
/// schemas) and workflow types, on each of its task queues.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerRegistration {
    /// The worker's identity (as in its polls).
    pub identity: String,
    /// The task queues it polls.
    pub task_queues: Vec<String>,
    /// The activity types it serves.
    pub activities: Vec<ActivityTypeInfo>,
    /// The workflow type names it serves.
    pub workflows: Vec<String>,
}

impl WorkerRegistration {
    /// A registration of `identity` on `task_queues`, serving nothing yet.
    pub fn new(identity: impl Into<String>, task_queues: Vec<String>) -> Self {
        Self {
            identity: identity.into(),
            task_queues,
            activities: Vec::new(),
            workflows: Vec::new(),
        }
    }

    /// Sets the activity types served.
    pub fn with_activities(mut self, activities: Vec<ActivityTypeInfo>) -> Self {
        self.activities = activities;
        self
    }

    /// Sets the workflow types served.
    pub fn with_workflows(mut self, workflows: Vec<String>) -> Self {
        self.workflows = workflows;
        self
    }
}

/// Whether a registered type is an activity or a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TypeKind {
    /// An activity type.
    Activity,
    /// A workflow type.
    Workflow,
}

impl TypeKind {
    /// The kind's stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeKind::Activity => "ACTIVITY",
            TypeKind::Workflow => "WORKFLOW",
        }
    }

    /// Parses [`TypeKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ACTIVITY" => Some(TypeKind::Activity),
            "WORKFLOW" => Some(TypeKind::Workflow),
            _ => None,
        }
    }
}

impl fmt::Display for TypeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type the engine knows a worker serves on a task queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegisteredType {
    /// Activity or workflow.
    pub kind: TypeKind,
    /// The type name.
    pub name: String,
    /// The task queue it is served on.
    pub task_queue: String,
    /// The parameter names of an activity's arguments (empty for a workflow).
    pub arguments: Vec<String>,
    /// JSON Schema of an activity's input; `None` for a workflow.
    pub input_schema: Option<serde_json::Value>,
    /// JSON Schema of an activity's result; `None` for a workflow.
    pub output_schema: Option<serde_json::Value>,
    /// When a worker last registered it.
    pub last_registered_time: SystemTime,
    /// The identity of the worker that last registered it.
    pub last_identity: String,
}

impl RegisteredType {
    /// A registered type with no arguments or schemas.
    pub fn new(
        kind: TypeKind,
        name: impl Into<String>,
        task_queue: impl Into<String>,
        last_registered_time: SystemTime,
        last_identity: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            task_queue: task_queue.into(),
            arguments: Vec::new(),
            input_schema: None,
            output_schema: None,
            last_registered_time,
            last_identity: last_identity.into(),
        }
    }

    /// Sets an activity's argument names and schemas.
    pub fn with_schemas(
        mut self,
        arguments: Vec<String>,
        input_schema: serde_json::Value,
        output_schema: serde_json::Value,
    ) -> Self {
        self.arguments = arguments;
        self.input_schema = Some(input_schema);
        self.output_schema = Some(output_schema);
        self
    }
}

/// Why an attempt no longer accepts heartbeats or results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClosedReason {
    /// The engine timed the attempt out (start-to-close or heartbeat).
    AttemptTimedOut(TimeoutKind),
    /// The attempt ended (failed, or timed out) and a later attempt exists.
    AttemptSuperseded,
    /// The execution is final, in this state.
    ExecutionClosed(ExecutionState),
    /// The workflow run is closed, in this state (its workflow tasks are no
    /// longer answered; a closed run is not terminated again).
    WorkflowClosed(WorkflowState),
}

impl ClosedReason {
    /// The reason a worker cancels the activity's context with.
    pub fn cancel_reason(self) -> CancelReason {
        match self {
            ClosedReason::AttemptTimedOut(_)
            | ClosedReason::ExecutionClosed(ExecutionState::TimedOut) => CancelReason::TimedOut,
            ClosedReason::AttemptSuperseded | ClosedReason::ExecutionClosed(_) => {
                CancelReason::ExecutionClosed
            }
            ClosedReason::WorkflowClosed(_) => CancelReason::WorkflowClosed,
        }
    }
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::AttemptTimedOut(kind) => write!(f, "the attempt timed out ({kind:?})"),
            ClosedReason::AttemptSuperseded => f.write_str("a later attempt exists"),
            ClosedReason::ExecutionClosed(state) => write!(f, "the execution is closed ({state})"),
            ClosedReason::WorkflowClosed(state) => {
                write!(f, "the workflow run is closed ({state})")
            }
        }
    }
}

/// A protocol call was refused or could not be carried out.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The activity options break a rule; nothing was scheduled. Not retryable.
    #[error(transparent)]
    InvalidOptions(#[from] OptionsError),
    /// A request field is invalid. Not retryable.
    #[error("invalid `{field}`: {message}")]
    InvalidArgument {
        /// The field.
        field: String,
        /// The rule it breaks.
        message: String,
    },
    /// A payload exceeds the engine's size limit. Not retryable.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Which payload (e.g. "input of activity `charge`").
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The engine's limit in bytes.
        limit: usize,
    },
    /// A task token is malformed, was not issued by this engine, or was altered.
    /// Not retryable.
    #[error("invalid task token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
    /// No such execution (or no started attempt to act on). Not retryable.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// An execution with this id already exists. Not retryable.
    #[error("already exists: {what}")]
    AlreadyExists {
        /// The execution.
        what: String,
    },
    /// The attempt or execution is closed: a stale token, a second completion.
    /// Nothing was changed. Not retryable.
    #[error("already closed: {what}: {reason}")]
    AlreadyClosed {
        /// What was acted on.
        what: String,
        /// Why it is closed.
        reason: ClosedReason,
    },
    /// The call does not apply to the execution as it is (e.g. a cancellation
    /// reported when none was requested). Nothing was changed. Not retryable.
    #[error("{what}: {message}")]
    FailedPrecondition {
        /// What was acted on.
        what: String,
        /// Why the call does not apply, and what to do instead.
        message: String,
    },
    /// The engine cannot serve the call now (shutting down, store busy or
    /// unreachable). Retryable: nothing was acknowledged.
    #[error("engine unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
    },
    /// This implementation of the protocol does not offer the operation. Not
    /// retryable.
    #[error("`{operation}` is not supported by this connection")]
    Unsupported {
        /// The operation.
        operation: String,
    },
    /// The engine failed unexpectedly (e.g. corrupt stored data). Not retryable
    /// without intervention.
    #[error("internal engine error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl ProtocolError {
    /// Whether sending the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProtocolError::Unavailable { .. })
    }

    /// For an [`ProtocolError::AlreadyClosed`] answer to a heartbeat: the reason a
    /// worker should cancel the activity's context with.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        match self {
            ProtocolError::AlreadyClosed { reason, .. } => Some(reason.cancel_reason()),
            ProtocolError::NotFound { .. } => Some(CancelReason::ExecutionClosed),
            _ => None,
        }
    }

    /// A [`ProtocolError::InvalidArgument`].
    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        ProtocolError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_four_are_final() {
        let all = ExecutionState::ALL;
        for &state in all {
            assert_eq!(ExecutionState::parse(state.as_str()), Some(state));
        }
        assert_eq!(all.iter().filter(|s| s.is_final()).count(), 4);
        assert_eq!(ExecutionState::parse("RUNNING"), None);
    }

    #[test]
    fn closed_reasons_map_to_cancel_reasons() {
        let err = ProtocolError::AlreadyClosed {
            what: "x".into(),
            reason: ClosedReason::AttemptTimedOut(TimeoutKind::Heartbeat),
        };
        assert_eq!(err.cancel_reason(), Some(CancelReason::TimedOut));
        assert!(!err.is_retryable());
        assert_eq!(
            ClosedReason::ExecutionClosed(ExecutionState::Completed).cancel_reason(),
            CancelReason::ExecutionClosed
        );
        assert!(ProtocolError::Unavailable {
            message: "down".into()
        }
        .is_retryable());
    }
}
