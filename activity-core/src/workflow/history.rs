//! Workflow histories, commands and the data of workflow tasks (docs/semantics.md §3).
//!
//! The engine keeps an ordered [`HistoryEvent`] list per workflow run. Workflow
//! code runs in workers, in workflow tasks: the worker receives the history, runs
//! (or replays) the code, and answers with [`Command`]s, which the engine records
//! as events and carries out. Every command carries a sequence number (`seq`)
//! assigned by the workflow context in program order, per kind; the engine's
//! events name the same `seq`, which is how replay matches code to history.

use std::{fmt, time::Duration, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::{
    context::TaskToken,
    failure::{ActivityFailure, ApplicationFailure, Failure},
    options::ActivityOptions,
    payload::Payload,
};

/// Identifies a workflow run: its workflow id, and the run id when a specific run
/// is meant (`None`: the latest run of that id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowRef {
    /// The workflow id (unique among running workflows).
    pub workflow_id: String,
    /// The run id, or `None` for the latest run.
    pub run_id: Option<String>,
}

impl WorkflowRef {
    /// The latest run of `workflow_id`.
    pub fn latest(workflow_id: impl Into<String>) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: None,
        }
    }

    /// A specific run.
    pub fn run(workflow_id: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: Some(run_id.into()),
        }
    }
}

impl fmt::Display for WorkflowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run_id {
            Some(run) => write!(f, "workflow `{}` run `{run}`", self.workflow_id),
            None => write!(f, "workflow `{}`", self.workflow_id),
        }
    }
}

/// One event of a workflow run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryEvent {
    /// Position in the history, from 1, without gaps.
    pub event_id: u64,
    /// When the engine recorded it (its clock).
    pub time: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

impl HistoryEvent {
    /// Builds an event.
    pub fn new(event_id: u64, time: SystemTime, kind: EventKind) -> Self {
        Self {
            event_id,
            time,
            kind,
        }
    }
}

/// What happened in a workflow run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The run started (always event 1).
    WorkflowStarted {
        /// The workflow type name.
        workflow_type: String,
        /// The run's task queue (its workflow tasks, and its activities by default).
        task_queue: String,
        /// The serialized arguments.
        input: Vec<Payload>,
        /// The run's timeouts (docs/semantics.md §3): a continued or reset run
        /// carries them on.
        #[serde(default)]
        timeouts: WorkflowTimeouts,
        /// Set in the copy a reset makes: the run the history was first
        /// written by, whose id seeds the random values (docs/semantics.md
        /// §3.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original_run_id: Option<String>,
        /// The parent run, when a workflow started this run as its child
        /// (docs/semantics.md §3.1); `None` for a run started by a client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentRun>,
    },
    /// A workflow task was scheduled (new events wait for the code).
    WorkflowTaskScheduled,
    /// A worker took the workflow task.
    WorkflowTaskStarted {
        /// The worker.
        identity: String,
    },
    /// The worker answered with commands; the command events follow.
    WorkflowTaskCompleted {
        /// The worker.
        identity: String,
    },
    /// The worker failed the task (e.g. nondeterminism); its commands were
    /// discarded and the task is scheduled again later.
    WorkflowTaskFailed {
        /// Why.
        message: String,
    },
    /// The worker did not answer in time; the task is scheduled again.
    WorkflowTaskTimedOut,
    /// Command event: an activity was scheduled.
    ActivityScheduled {
        /// Sequence number of the command.
        seq: u32,
        /// The activity id.
        activity_id: String,
        /// The activity type.
        activity_type: String,
    },
    /// The activity completed.
    ActivityCompleted {
        /// Which activity.
        seq: u32,
        /// Its result.
        result: Payload,
    },
    /// The activity failed, timed out or was canceled (its final outcome).
    ActivityFailed {
        /// Which activity.
        seq: u32,
        /// The failure.
        failure: ActivityFailure,
    },
    /// Command event: cancellation of an activity was requested.
    ActivityCancelRequested {
        /// Which activity.
        seq: u32,
    },
    /// Command event: a timer was started.
    TimerStarted {
        /// Sequence number of the command.
        seq: u32,
        /// How long it runs.
        duration: Duration,
    },
    /// The timer fired.
    TimerFired {
        /// Which timer.
        seq: u32,
    },
    /// Command event: a timer was cancelled before it fired.
    TimerCanceled {
        /// Which timer.
        seq: u32,
    },
    /// Command event: the outcome of a local activity, run by the worker.
    LocalActivityRecorded {
        /// Sequence number of the local activity.
        seq: u32,
        /// The activity type.
        activity_type: String,
        /// Its result, or its final failure.
        outcome: LocalActivityOutcome,
    },
    /// Cancellation of the run was requested; its running activities were
    /// cancel-requested too.
    WorkflowCancelRequested,
    /// Command event: the run completed.
    WorkflowCompleted {
        /// The result.
        result: Payload,
    },
    /// Command event: the run failed.
    WorkflowFailed {
        /// Why.
        failure: WorkflowFailure,
    },
    /// Command event: the run acknowledged its cancellation.
    WorkflowCanceled,
    /// Command event: the run closed and a new run of the same workflow id
    /// started with new arguments and an empty history, in the same
    /// transaction (docs/semantics.md §3.1).
    WorkflowContinuedAsNew {
        /// The run id of the new run (set by the engine when it records the
        /// command).
        new_run_id: String,
        /// The new run's serialized arguments.
        input: Vec<Payload>,
    },
    /// The run was terminated: closed at once, no workflow code ran for it
    /// (docs/semantics.md §3.1).
    WorkflowTerminated {
        /// Why, as given by who terminated it.
        reason: String,
        /// Who terminated it (a client's identity, the CLI's user and host).
        identity: String,
    },
    /// The history reached the engine's warning threshold (in events or in
    /// bytes, whichever came first), once per run: a run whose history passes
    /// the limit is terminated (docs/semantics.md §3.2). Workflow code does
    /// not see it.
    HistorySizeWarning {
        /// Events in the history when the warning was recorded.
        events: u64,
        /// Bytes in the history when the warning was recorded.
        bytes: u64,
        /// The engine's limit of events in a history.
        max_events: u64,
        /// The engine's limit of bytes in a history.
        max_bytes: u64,
    },
    /// The run reached its run timeout or its workflow's execution timeout
    /// (docs/semantics.md §3): closed TIMED_OUT at once, no workflow code ran
    /// for it.
    WorkflowTimedOut {
        /// Which timeout.
        timeout: WorkflowTimeout,
    },
    /// A signal was received (docs/semantics.md §3.1); the code sees it in
    /// arrival order, the same on replay.
    WorkflowSignaled {
        /// The signal's name, as the workflow declares it.
        signal_name: String,
        /// Its serialized payload.
        input: Payload,
        /// Who sent it (a client's identity, the CLI's user and host, or
        /// the workflow run that sent it).
        identity: String,
    },
    /// Command event: the code signaled another run (the outcome follows as
    /// `ExternalSignalResolved`).
    ExternalWorkflowSignaled {
        /// Sequence number of the command.
        seq: u32,
        /// The run signaled (its latest run).
        workflow_id: String,
        /// The signal's name.
        signal_name: String,
    },
    /// The outcome of an `ExternalWorkflowSignaled`: `None` when the signal
    /// was recorded in the other run, else why it was refused (no such
    /// workflow, a closed run).
    ExternalSignalResolved {
        /// Which command.
        seq: u32,
        /// Why it was refused.
        error: Option<String>,
    },
    /// Command event: the code started a child workflow (docs/semantics.md
    /// §3.1); `ChildWorkflowStarted` or `StartChildWorkflowFailed` follows.
    StartChildWorkflowInitiated {
        /// Sequence number of the command.
        seq: u32,
        /// The child's workflow id.
        workflow_id: String,
        /// The child's workflow type.
        workflow_type: String,
        /// What happens to the child when this run closes.
        parent_close_policy: ParentClosePolicy,
    },
    /// The child run started (its `WorkflowStarted` names this run).
    ChildWorkflowStarted {
        /// Which command.
        seq: u32,
        /// The child's workflow id.
        workflow_id: String,
        /// The child's run id.
        run_id: String,
    },
    /// The child could not be started (e.g. a run with its workflow id is
    /// running); nothing was started.
    StartChildWorkflowFailed {
        /// Which command.
        seq: u32,
        /// The child's workflow id.
        workflow_id: String,
        /// Why.
        message: String,
    },
    /// The child (the last run of its continue-as-new chain) completed.
    ChildWorkflowCompleted {
        /// Which command.
        seq: u32,
        /// Its result.
        result: Payload,
    },
    /// The child failed.
    ChildWorkflowFailed {
        /// Which command.
        seq: u32,
        /// Its failure.
        failure: WorkflowFailure,
    },
    /// The child acknowledged its cancellation.
    ChildWorkflowCanceled {
        /// Which command.
        seq: u32,
    },
    /// The child was terminated.
    ChildWorkflowTerminated {
        /// Which command.
        seq: u32,
        /// Why, as given by who terminated it.
        reason: String,
    },
    /// The child reached its run or execution timeout (docs/semantics.md §3).
    ChildWorkflowTimedOut {
        /// Which command.
        seq: u32,
        /// Which timeout.
        timeout: WorkflowTimeout,
    },
    /// Command event: the code asked for the cancellation of its child; the
    /// child's run is cancel-requested (it records `WorkflowCancelRequested`).
    ChildWorkflowCancelRequested {
        /// Which command.
        seq: u32,
    },
}

/// The parent of a child run, as its `WorkflowStarted` names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParentRun {
    /// The parent's workflow id.
    pub workflow_id: String,
    /// The parent's run id.
    pub run_id: String,
    /// The sequence number of the parent's `StartChildWorkflow` command.
    pub seq: u32,
}

impl ParentRun {
    /// Builds a parent reference.
    pub fn new(workflow_id: impl Into<String>, run_id: impl Into<String>, seq: u32) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            seq,
        }
    }
}

/// What happens to a child run that is still open when its parent run closes
/// (completed, failed, canceled, terminated or continued as new;
/// docs/semantics.md §3.1). Applied in the transaction that closes the parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParentClosePolicy {
    /// The child is terminated (the default, as in Temporal).
    #[default]
    Terminate,
    /// The child's cancellation is requested; its code decides how to end.
    RequestCancel,
    /// The child is left running.
    Abandon,
}

impl ParentClosePolicy {
    /// Every policy.
    pub const ALL: &'static [ParentClosePolicy] = &[
        ParentClosePolicy::Terminate,
        ParentClosePolicy::RequestCancel,
        ParentClosePolicy::Abandon,
    ];

    /// The stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ParentClosePolicy::Terminate => "TERMINATE",
            ParentClosePolicy::RequestCancel => "REQUEST_CANCEL",
            ParentClosePolicy::Abandon => "ABANDON",
        }
    }

    /// Parses [`ParentClosePolicy::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == text)
    }
}

impl EventKind {
    /// Whether this event records a command of a workflow task.
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            EventKind::ActivityScheduled { .. }
                | EventKind::ActivityCancelRequested { .. }
                | EventKind::TimerStarted { .. }
                | EventKind::TimerCanceled { .. }
                | EventKind::LocalActivityRecorded { .. }
                | EventKind::WorkflowCompleted { .. }
                | EventKind::WorkflowFailed { .. }
                | EventKind::WorkflowCanceled
                | EventKind::WorkflowContinuedAsNew { .. }
                | EventKind::ExternalWorkflowSignaled { .. }
                | EventKind::StartChildWorkflowInitiated { .. }
                | EventKind::ChildWorkflowCancelRequested { .. }
        )
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::WorkflowStarted { .. } => "WorkflowStarted",
            EventKind::WorkflowTaskScheduled => "WorkflowTaskScheduled",
            EventKind::WorkflowTaskStarted { .. } => "WorkflowTaskStarted",
            EventKind::WorkflowTaskCompleted { .. } => "WorkflowTaskCompleted",
            EventKind::WorkflowTaskFailed { .. } => "WorkflowTaskFailed",
            EventKind::WorkflowTaskTimedOut => "WorkflowTaskTimedOut",
            EventKind::ActivityScheduled { .. } => "ActivityScheduled",
            EventKind::ActivityCompleted { .. } => "ActivityCompleted",
            EventKind::ActivityFailed { .. } => "ActivityFailed",
            EventKind::ActivityCancelRequested { .. } => "ActivityCancelRequested",
            EventKind::TimerStarted { .. } => "TimerStarted",
            EventKind::TimerFired { .. } => "TimerFired",
            EventKind::TimerCanceled { .. } => "TimerCanceled",
            EventKind::LocalActivityRecorded { .. } => "LocalActivityRecorded",
            EventKind::WorkflowCancelRequested => "WorkflowCancelRequested",
            EventKind::WorkflowCompleted { .. } => "WorkflowCompleted",
            EventKind::WorkflowFailed { .. } => "WorkflowFailed",
            EventKind::WorkflowCanceled => "WorkflowCanceled",
            EventKind::WorkflowContinuedAsNew { .. } => "WorkflowContinuedAsNew",
            EventKind::WorkflowTerminated { .. } => "WorkflowTerminated",
            EventKind::WorkflowTimedOut { .. } => "WorkflowTimedOut",
            EventKind::HistorySizeWarning { .. } => "HistorySizeWarning",
            EventKind::WorkflowSignaled { .. } => "WorkflowSignaled",
            EventKind::ExternalWorkflowSignaled { .. } => "ExternalWorkflowSignaled",
            EventKind::ExternalSignalResolved { .. } => "ExternalSignalResolved",
            EventKind::StartChildWorkflowInitiated { .. } => "StartChildWorkflowInitiated",
            EventKind::ChildWorkflowStarted { .. } => "ChildWorkflowStarted",
            EventKind::StartChildWorkflowFailed { .. } => "StartChildWorkflowFailed",
            EventKind::ChildWorkflowCompleted { .. } => "ChildWorkflowCompleted",
            EventKind::ChildWorkflowFailed { .. } => "ChildWorkflowFailed",
            EventKind::ChildWorkflowCanceled { .. } => "ChildWorkflowCanceled",
            EventKind::ChildWorkflowTerminated { .. } => "ChildWorkflowTerminated",
            EventKind::ChildWorkflowTimedOut { .. } => "ChildWorkflowTimedOut",
            EventKind::ChildWorkflowCancelRequested { .. } => "ChildWorkflowCancelRequested",
        }
    }
}

/// The outcome of a local activity, as recorded in history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LocalActivityOutcome {
    /// It completed with this result.
    Completed(Payload),
    /// It failed for good.
    Failed(ActivityFailure),
    /// Attempt `attempt` failed with `failure` and the retry policy asks for a
    /// backoff too long to wait inside a workflow task: attempt `attempt + 1`
    /// runs once a durable timer of `backoff` fires (docs/semantics.md §1.7). Recorded
    /// with a `StartTimer` command; the workflow does not see it.
    Backoff {
        /// The attempt that failed.
        attempt: u32,
        /// Its failure.
        failure: Failure,
        /// How long until the next attempt.
        backoff: Duration,
    },
}

/// Why a workflow run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowFailure {
    /// The workflow returned an application error.
    #[error("{0}")]
    Application(ApplicationFailure),
    /// An activity failed and the workflow returned that failure.
    #[error(transparent)]
    Activity(ActivityFailure),
    /// A child workflow did not complete and the workflow returned that
    /// failure.
    #[error(transparent)]
    Child(ChildWorkflowFailure),
}

/// A child workflow did not produce its result (docs/semantics.md §3.1): which
/// child, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("child workflow `{workflow_type}` (id `{workflow_id}`) {cause}")]
#[non_exhaustive]
pub struct ChildWorkflowFailure {
    /// The child's workflow type.
    pub workflow_type: String,
    /// The child's workflow id.
    pub workflow_id: String,
    /// The child's run id (empty when it never started).
    pub run_id: String,
    /// Why.
    pub cause: ChildWorkflowCause,
}

impl ChildWorkflowFailure {
    /// Builds a child failure.
    pub fn new(
        workflow_type: impl Into<String>,
        workflow_id: impl Into<String>,
        run_id: impl Into<String>,
        cause: ChildWorkflowCause,
    ) -> Self {
        Self {
            workflow_type: workflow_type.into(),
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            cause,
        }
    }
}

/// Why a child workflow did not produce its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ChildWorkflowCause {
    /// It could not be started (e.g. a run with its workflow id is running).
    #[error("was not started: {message}")]
    StartFailed {
        /// Why, as the engine said.
        message: String,
    },
    /// It failed.
    #[error("failed: {0}")]
    Failed(Box<WorkflowFailure>),
    /// It acknowledged its cancellation.
    #[error("was canceled")]
    Canceled,
    /// It was terminated.
    #[error("was terminated: {reason}")]
    Terminated {
        /// Why, as given by who terminated it.
        reason: String,
    },
    /// It reached its run or execution timeout.
    #[error("timed out ({timeout})")]
    TimedOut {
        /// Which timeout.
        timeout: WorkflowTimeout,
    },
}

/// A command of a workflow task, in the order the code produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// Schedule an activity (recorded as `ActivityScheduled`).
    ScheduleActivity {
        /// Sequence number.
        seq: u32,
        /// The activity id (unique within the run).
        activity_id: String,
        /// The activity type.
        activity_type: String,
        /// The serialized arguments.
        input: Vec<Payload>,
        /// The options (definition defaults merged with call-site options); the
        /// task queue defaults to the run's.
        options: ActivityOptions,
        /// The W3C `traceparent` of the workflow task that scheduled it, stored
        /// with the execution: its attempts are traced as children of that
        /// task (docs/semantics.md §5). Not part of the history: replay ignores it.
        #[serde(default)]
        trace_context: Option<String>,
    },
    /// Request cancellation of an activity (recorded as `ActivityCancelRequested`).
    RequestCancelActivity {
        /// Which activity.
        seq: u32,
    },
    /// Start a durable timer (recorded as `TimerStarted`).
    StartTimer {
        /// Sequence number.
        seq: u32,
        /// How long.
        duration: Duration,
    },
    /// Cancel a timer that has not fired (recorded as `TimerCanceled`).
    CancelTimer {
        /// Which timer.
        seq: u32,
    },
    /// Record the outcome of a local activity (recorded as `LocalActivityRecorded`).
    RecordLocalActivity {
        /// Sequence number.
        seq: u32,
        /// The activity type.
        activity_type: String,
        /// Its outcome.
        outcome: LocalActivityOutcome,
    },
    /// Complete the run (recorded as `WorkflowCompleted`).
    CompleteWorkflow {
        /// The result.
        result: Payload,
    },
    /// Fail the run (recorded as `WorkflowFailed`).
    FailWorkflow {
        /// Why.
        failure: WorkflowFailure,
    },
    /// Acknowledge the run's cancellation (recorded as `WorkflowCanceled`).
    CancelWorkflow,
    /// Close the run and start a new run of the same workflow id with these
    /// arguments and an empty history (recorded as `WorkflowContinuedAsNew`;
    /// docs/semantics.md §3.1).
    ContinueAsNew {
        /// The new run's serialized arguments.
        input: Vec<Payload>,
    },
    /// Signal the latest run of another workflow id (recorded as
    /// `ExternalWorkflowSignaled`; resolved by `ExternalSignalResolved`).
    SignalExternalWorkflow {
        /// Sequence number.
        seq: u32,
        /// The workflow id to signal.
        workflow_id: String,
        /// The signal's name.
        signal_name: String,
        /// Its payload.
        input: Payload,
    },
    /// Start a child workflow (recorded as `StartChildWorkflowInitiated`;
    /// resolved by `ChildWorkflowStarted` or `StartChildWorkflowFailed`, then
    /// by the child's close event; docs/semantics.md §3.1).
    StartChildWorkflow {
        /// Sequence number.
        seq: u32,
        /// The child's workflow id.
        workflow_id: String,
        /// The child's workflow type.
        workflow_type: String,
        /// The child's task queue.
        task_queue: String,
        /// The serialized arguments.
        input: Vec<Payload>,
        /// What happens to the child when this run closes.
        parent_close_policy: ParentClosePolicy,
        /// The child's run timeout (docs/semantics.md §3); `None`: no limit.
        #[serde(default)]
        run_timeout: Option<Duration>,
        /// The child's execution timeout, across its continue-as-new;
        /// `None`: no limit.
        #[serde(default)]
        execution_timeout: Option<Duration>,
    },
    /// Request cancellation of a child workflow (recorded as
    /// `ChildWorkflowCancelRequested`).
    RequestCancelChildWorkflow {
        /// Which child.
        seq: u32,
    },
}

impl Command {
    /// The event kind that records this command.
    pub fn to_event(&self) -> EventKind {
        match self.clone() {
            Command::ScheduleActivity {
                seq,
                activity_id,
                activity_type,
                ..
            } => EventKind::ActivityScheduled {
                seq,
                activity_id,
                activity_type,
            },
            Command::RequestCancelActivity { seq } => EventKind::ActivityCancelRequested { seq },
            Command::StartTimer { seq, duration } => EventKind::TimerStarted { seq, duration },
            Command::CancelTimer { seq } => EventKind::TimerCanceled { seq },
            Command::RecordLocalActivity {
                seq,
                activity_type,
                outcome,
            } => EventKind::LocalActivityRecorded {
                seq,
                activity_type,
                outcome,
            },
            Command::CompleteWorkflow { result } => EventKind::WorkflowCompleted { result },
            Command::FailWorkflow { failure } => EventKind::WorkflowFailed { failure },
            Command::CancelWorkflow => EventKind::WorkflowCanceled,
            // The engine names the new run when it records the command.
            Command::ContinueAsNew { input } => EventKind::WorkflowContinuedAsNew {
                new_run_id: String::new(),
                input,
            },
            Command::SignalExternalWorkflow {
                seq,
                workflow_id,
                signal_name,
                ..
            } => EventKind::ExternalWorkflowSignaled {
                seq,
                workflow_id,
                signal_name,
            },
            Command::StartChildWorkflow {
                seq,
                workflow_id,
                workflow_type,
                parent_close_policy,
                ..
            } => EventKind::StartChildWorkflowInitiated {
                seq,
                workflow_id,
                workflow_type,
                parent_close_policy,
            },
            Command::RequestCancelChildWorkflow { seq } => {
                EventKind::ChildWorkflowCancelRequested { seq }
            }
        }
    }

    /// Whether replaying code that produced `self` matches the recorded `event`:
    /// same kind, same sequence number, same activity type.
    pub fn matches(&self, event: &EventKind) -> bool {
        match (self, event) {
            (
                Command::ScheduleActivity {
                    seq, activity_type, ..
                },
                EventKind::ActivityScheduled {
                    seq: s,
                    activity_type: t,
                    ..
                },
            ) => seq == s && activity_type == t,
            (
                Command::RecordLocalActivity {
                    seq, activity_type, ..
                },
                EventKind::LocalActivityRecorded {
                    seq: s,
                    activity_type: t,
                    ..
                },
            ) => seq == s && activity_type == t,
            (
                Command::RequestCancelActivity { seq },
                EventKind::ActivityCancelRequested { seq: s },
            )
            | (Command::StartTimer { seq, .. }, EventKind::TimerStarted { seq: s, .. })
            | (Command::CancelTimer { seq }, EventKind::TimerCanceled { seq: s }) => seq == s,
            (
                Command::SignalExternalWorkflow {
                    seq, signal_name, ..
                },
                EventKind::ExternalWorkflowSignaled {
                    seq: s,
                    signal_name: n,
                    ..
                },
            ) => seq == s && signal_name == n,
            (
                Command::StartChildWorkflow {
                    seq,
                    workflow_id,
                    workflow_type,
                    ..
                },
                EventKind::StartChildWorkflowInitiated {
                    seq: s,
                    workflow_id: i,
                    workflow_type: t,
                    ..
                },
            ) => seq == s && workflow_id == i && workflow_type == t,
            (
                Command::RequestCancelChildWorkflow { seq },
                EventKind::ChildWorkflowCancelRequested { seq: s },
            ) => seq == s,
            (Command::CompleteWorkflow { .. }, EventKind::WorkflowCompleted { .. })
            | (Command::FailWorkflow { .. }, EventKind::WorkflowFailed { .. })
            | (Command::CancelWorkflow, EventKind::WorkflowCanceled)
            | (Command::ContinueAsNew { .. }, EventKind::WorkflowContinuedAsNew { .. }) => true,
            _ => false,
        }
    }

    /// A short description for messages, e.g. "ScheduleActivity(seq 2, `ship`)".
    pub fn describe(&self) -> String {
        match self {
            Command::ScheduleActivity {
                seq, activity_type, ..
            } => format!("ScheduleActivity(seq {seq}, `{activity_type}`)"),
            Command::RecordLocalActivity {
                seq, activity_type, ..
            } => format!("RecordLocalActivity(seq {seq}, `{activity_type}`)"),
            Command::RequestCancelActivity { seq } => format!("RequestCancelActivity(seq {seq})"),
            Command::StartTimer { seq, duration } => format!("StartTimer(seq {seq}, {duration:?})"),
            Command::CancelTimer { seq } => format!("CancelTimer(seq {seq})"),
            Command::CompleteWorkflow { .. } => "CompleteWorkflow".to_owned(),
            Command::FailWorkflow { .. } => "FailWorkflow".to_owned(),
            Command::CancelWorkflow => "CancelWorkflow".to_owned(),
            Command::ContinueAsNew { .. } => "ContinueAsNew".to_owned(),
            Command::SignalExternalWorkflow {
                seq,
                workflow_id,
                signal_name,
                ..
            } => format!("SignalExternalWorkflow(seq {seq}, `{signal_name}` to `{workflow_id}`)"),
            Command::StartChildWorkflow {
                seq,
                workflow_id,
                workflow_type,
                ..
            } => format!("StartChildWorkflow(seq {seq}, `{workflow_type}` id `{workflow_id}`)"),
            Command::RequestCancelChildWorkflow { seq } => {
                format!("RequestCancelChildWorkflow(seq {seq})")
            }
        }
    }
}

/// A short description of an event for messages, e.g. "ActivityScheduled(seq 2, `ship`)".
pub fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::ActivityScheduled {
            seq, activity_type, ..
        }
        | EventKind::LocalActivityRecorded {
            seq, activity_type, ..
        } => format!("{}(seq {seq}, `{activity_type}`)", kind.name()),
        EventKind::ActivityCancelRequested { seq }
        | EventKind::ActivityCompleted { seq, .. }
        | EventKind::ActivityFailed { seq, .. }
        | EventKind::TimerFired { seq }
        | EventKind::TimerCanceled { seq } => format!("{}(seq {seq})", kind.name()),
        EventKind::TimerStarted { seq, duration } => {
            format!("{}(seq {seq}, {duration:?})", kind.name())
        }
        EventKind::HistorySizeWarning {
            events,
            bytes,
            max_events,
            max_bytes,
        } => format!(
            "{}({events} of {max_events} events, {bytes} of {max_bytes} bytes)",
            kind.name()
        ),
        EventKind::WorkflowSignaled { signal_name, .. } => {
            format!("{}(`{signal_name}`)", kind.name())
        }
        EventKind::WorkflowTimedOut { timeout } => format!("{}({timeout})", kind.name()),
        EventKind::StartChildWorkflowInitiated {
            seq,
            workflow_id,
            workflow_type,
            ..
        } => format!(
            "{}(seq {seq}, `{workflow_type}` id `{workflow_id}`)",
            kind.name()
        ),
        EventKind::ChildWorkflowStarted { seq, .. }
        | EventKind::StartChildWorkflowFailed { seq, .. }
        | EventKind::ChildWorkflowCompleted { seq, .. }
        | EventKind::ChildWorkflowFailed { seq, .. }
        | EventKind::ChildWorkflowCanceled { seq }
        | EventKind::ChildWorkflowTerminated { seq, .. }
        | EventKind::ChildWorkflowTimedOut { seq, .. }
        | EventKind::ChildWorkflowCancelRequested { seq } => {
            format!("{}(seq {seq})", kind.name())
        }
        other => other.name().to_owned(),
    }
}

/// The state of a workflow run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkflowState {
    /// Running.
    Running,
    /// Final: completed with a result.
    Completed,
    /// Final: failed.
    Failed,
    /// Final: canceled.
    Canceled,
    /// Final: terminated (closed from outside, no workflow code ran for it).
    Terminated,
    /// Final: continued as new (a new run of the same workflow id took over).
    ContinuedAsNew,
    /// Final: it reached its run timeout or its execution timeout.
    TimedOut,
}

impl WorkflowState {
    /// Every state.
    pub const ALL: &'static [WorkflowState] = &[
        WorkflowState::Running,
        WorkflowState::Completed,
        WorkflowState::Failed,
        WorkflowState::Canceled,
        WorkflowState::Terminated,
        WorkflowState::ContinuedAsNew,
        WorkflowState::TimedOut,
    ];

    /// Whether the state is final.
    pub fn is_final(self) -> bool {
        self != WorkflowState::Running
    }

    /// The stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "RUNNING",
            WorkflowState::Completed => "COMPLETED",
            WorkflowState::Failed => "FAILED",
            WorkflowState::Canceled => "CANCELED",
            WorkflowState::Terminated => "TERMINATED",
            WorkflowState::ContinuedAsNew => "CONTINUED_AS_NEW",
            WorkflowState::TimedOut => "TIMED_OUT",
        }
    }

    /// Parses [`WorkflowState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "RUNNING" => WorkflowState::Running,
            "COMPLETED" => WorkflowState::Completed,
            "FAILED" => WorkflowState::Failed,
            "CANCELED" => WorkflowState::Canceled,
            "TERMINATED" => WorkflowState::Terminated,
            "CONTINUED_AS_NEW" => WorkflowState::ContinuedAsNew,
            "TIMED_OUT" => WorkflowState::TimedOut,
            _ => return None,
        })
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The final outcome of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkflowOutcome {
    /// Completed with this result.
    Completed(Payload),
    /// Failed.
    Failed(WorkflowFailure),
    /// Canceled.
    Canceled,
    /// Terminated, for this reason.
    Terminated {
        /// Why, as given by who terminated it.
        reason: String,
        /// The run that took over when the termination was a reset
        /// (docs/semantics.md §3.1): handles follow it to the workflow's
        /// outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_run_id: Option<String>,
    },
    /// Continued as new: the run `new_run_id` of the same workflow id took
    /// over (its outcome is the workflow's).
    ContinuedAsNew {
        /// The run id of the new run.
        new_run_id: String,
    },
    /// Timed out: it reached this timeout (docs/semantics.md §3).
    TimedOut {
        /// Which timeout.
        timeout: WorkflowTimeout,
    },
}

impl WorkflowOutcome {
    /// Terminated for `reason` (not by a reset).
    pub fn terminated(reason: impl Into<String>) -> Self {
        WorkflowOutcome::Terminated {
            reason: reason.into(),
            new_run_id: None,
        }
    }

    /// The run that took over from a run with this outcome (continued as new,
    /// or reset), whose outcome is the workflow's.
    pub fn next_run(&self) -> Option<&str> {
        match self {
            WorkflowOutcome::ContinuedAsNew { new_run_id } => Some(new_run_id),
            WorkflowOutcome::Terminated {
                new_run_id: Some(new_run_id),
                ..
            } => Some(new_run_id),
            _ => None,
        }
    }

    /// The state a run with this outcome is in.
    pub fn state(&self) -> WorkflowState {
        match self {
            WorkflowOutcome::Completed(_) => WorkflowState::Completed,
            WorkflowOutcome::Failed(_) => WorkflowState::Failed,
            WorkflowOutcome::Canceled => WorkflowState::Canceled,
            WorkflowOutcome::Terminated { .. } => WorkflowState::Terminated,
            WorkflowOutcome::ContinuedAsNew { .. } => WorkflowState::ContinuedAsNew,
            WorkflowOutcome::TimedOut { .. } => WorkflowState::TimedOut,
        }
    }
}

/// Start a workflow run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StartWorkflowRequest {
    /// The workflow id; refused if a run with this id is running.
    pub workflow_id: String,
    /// The workflow type name.
    pub workflow_type: String,
    /// The task queue of its workflow tasks (and default of its activities).
    pub task_queue: String,
    /// The serialized arguments.
    pub input: Vec<Payload>,
    /// The W3C `traceparent` of the caller's span, stored with the run: its
    /// workflow tasks are traced as children of it (docs/semantics.md §5).
    /// `None`: the run is not traced. Set by the client when it is built with
    /// the `otel` feature; see [`with_trace_context`](Self::with_trace_context).
    #[serde(default)]
    pub trace_context: Option<String>,
    /// How long the run may take (`None`: no limit); more than zero.
    #[serde(default)]
    pub run_timeout: Option<Duration>,
    /// How long the workflow may take across continue-as-new (`None`: no
    /// limit); more than zero, and not less than `run_timeout`.
    #[serde(default)]
    pub execution_timeout: Option<Duration>,
    /// Whether a workflow id whose last run closed may start again.
    #[serde(default)]
    pub id_reuse_policy: WorkflowIdReusePolicy,
}

impl StartWorkflowRequest {
    /// Builds a request (no timeouts, [`WorkflowIdReusePolicy::AllowDuplicate`]).
    pub fn new(
        workflow_id: impl Into<String>,
        workflow_type: impl Into<String>,
        task_queue: impl Into<String>,
        input: Vec<Payload>,
    ) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            workflow_type: workflow_type.into(),
            task_queue: task_queue.into(),
            input,
            trace_context: None,
            run_timeout: None,
            execution_timeout: None,
            id_reuse_policy: WorkflowIdReusePolicy::AllowDuplicate,
        }
    }

    /// Sets the run timeout: the run is closed TIMED_OUT when it has run this
    /// long (docs/semantics.md §3).
    ///
    /// ```
    /// use std::time::Duration;
    /// use activity_core::workflow::{StartWorkflowRequest, WorkflowIdReusePolicy};
    ///
    /// let request = StartWorkflowRequest::new("order-7", "checkout", "main", vec![])
    ///     .with_run_timeout(Duration::from_secs(60))
    ///     .with_execution_timeout(Duration::from_secs(3600))
    ///     .with_id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate);
    /// assert_eq!(request.run_timeout, Some(Duration::from_secs(60)));
    /// ```
    pub fn with_run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }

    /// Sets the execution timeout: the workflow's run is closed TIMED_OUT when
    /// this long has passed since the first run of its continue-as-new chain
    /// started (docs/semantics.md §3).
    pub fn with_execution_timeout(mut self, timeout: Duration) -> Self {
        self.execution_timeout = Some(timeout);
        self
    }

    /// Sets whether the workflow id may be reused once its last run closed.
    pub fn with_id_reuse_policy(mut self, policy: WorkflowIdReusePolicy) -> Self {
        self.id_reuse_policy = policy;
        self
    }

    /// Sets the W3C `traceparent` the run's workflow tasks are traced under.
    ///
    /// ```
    /// use activity_core::workflow::StartWorkflowRequest;
    ///
    /// let request = StartWorkflowRequest::new("order-1", "ship", "orders", vec![])
    ///     .with_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// assert!(request.trace_context.is_some());
    /// ```
    pub fn with_trace_context(mut self, traceparent: impl Into<String>) -> Self {
        self.trace_context = Some(traceparent.into());
        self
    }
}

/// Whether a start may reuse a workflow id whose last run is closed
/// (docs/semantics.md §3). A running run with the same id always refuses the
/// start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkflowIdReusePolicy {
    /// Any closed run may be followed by a new one (the default).
    #[default]
    AllowDuplicate,
    /// Only when the last run did not complete successfully (it failed, was
    /// canceled, terminated or timed out).
    AllowDuplicateFailedOnly,
    /// Never: a workflow id is used once.
    RejectDuplicate,
}

impl WorkflowIdReusePolicy {
    /// Every policy.
    pub const ALL: &'static [WorkflowIdReusePolicy] = &[
        WorkflowIdReusePolicy::AllowDuplicate,
        WorkflowIdReusePolicy::AllowDuplicateFailedOnly,
        WorkflowIdReusePolicy::RejectDuplicate,
    ];

    /// The stable name, e.g. `"AllowDuplicateFailedOnly"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowIdReusePolicy::AllowDuplicate => "AllowDuplicate",
            WorkflowIdReusePolicy::AllowDuplicateFailedOnly => "AllowDuplicateFailedOnly",
            WorkflowIdReusePolicy::RejectDuplicate => "RejectDuplicate",
        }
    }

    /// Whether a new run may follow a last run that closed in `last`.
    pub fn allows(self, last: WorkflowState) -> bool {
        match self {
            WorkflowIdReusePolicy::AllowDuplicate => true,
            WorkflowIdReusePolicy::AllowDuplicateFailedOnly => last != WorkflowState::Completed,
            WorkflowIdReusePolicy::RejectDuplicate => false,
        }
    }
}

impl fmt::Display for WorkflowIdReusePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which timeout closed a run (docs/semantics.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkflowTimeout {
    /// The run timeout: one run took too long.
    Run,
    /// The execution timeout: the workflow, across continue-as-new, took too
    /// long.
    Execution,
}

impl fmt::Display for WorkflowTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkflowTimeout::Run => "run timeout",
            WorkflowTimeout::Execution => "execution timeout",
        })
    }
}

/// The timeouts a run was started with, as its `WorkflowStarted` records them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowTimeouts {
    /// The run timeout (each run of the chain gets it anew).
    pub run: Option<Duration>,
    /// The execution timeout.
    pub execution: Option<Duration>,
    /// When the execution timeout ends: the first run's start plus the
    /// execution timeout, the same for every run of the chain.
    pub execution_deadline: Option<SystemTime>,
}

impl WorkflowTimeouts {
    /// Timeouts with the given run and execution timeouts and deadline.
    pub fn new(
        run: Option<Duration>,
        execution: Option<Duration>,
        execution_deadline: Option<SystemTime>,
    ) -> Self {
        Self {
            run,
            execution,
            execution_deadline,
        }
    }
}

/// A workflow task handed to a worker: the run's whole history, the new events
/// last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowTask {
    /// Authenticates the answer (one task attempt).
    pub task_token: TaskToken,
    /// The run.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The history, ending with this task's `WorkflowTaskStarted`.
    pub history: Vec<HistoryEvent>,
    /// The W3C `traceparent` stored with the run (docs/semantics.md §5): the
    /// worker traces the task as its child. `None` when the run is not traced.
    #[serde(default)]
    pub trace_context: Option<String>,
}

impl WorkflowTask {
    /// Builds a task.
    pub fn new(
        task_token: TaskToken,
        workflow_id: String,
        run_id: String,
        workflow_type: String,
        history: Vec<HistoryEvent>,
    ) -> Self {
        Self {
            task_token,
            workflow_id,
            run_id,
            workflow_type,
            history,
            trace_context: None,
        }
    }

    /// Sets the trace context the task is traced under.
    pub fn with_trace_context(mut self, traceparent: Option<String>) -> Self {
        self.trace_context = traceparent;
        self
    }
}

/// What is known about a workflow run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowDescription {
    /// The workflow id.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The task queue.
    pub task_queue: String,
    /// The state.
    pub state: WorkflowState,
    /// When the run started.
    pub start_time: SystemTime,
    /// When it closed.
    pub close_time: Option<SystemTime>,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// Number of history events.
    pub history_length: u64,
    /// The outcome, once final.
    pub outcome: Option<WorkflowOutcome>,
    /// Consecutive workflow tasks that failed (nondeterminism, a determinism
    /// guard, a panic, a workflow type the worker does not have); 0 once a
    /// task completes.
    pub task_failures: u32,
    /// The message of the latest of those failures, e.g. "workflow type `x`
    /// is not registered on this worker; registered types: [a, b]".
    pub last_task_failure: Option<String>,
    /// When the run's run timeout ends (its start plus the run timeout), if
    /// it has one (docs/semantics.md §3).
    #[serde(default)]
    pub run_deadline: Option<SystemTime>,
    /// When its workflow's execution timeout ends, the same for every run of
    /// a continue-as-new chain, if it has one.
    #[serde(default)]
    pub execution_deadline: Option<SystemTime>,
}

impl WorkflowDescription {
    /// A description of a running run with the required fields; the others start
    /// empty (not closed, no cancel request, empty history, no outcome).
    pub fn new(
        workflow_id: impl Into<String>,
        run_id: impl Into<String>,
        workflow_type: impl Into<String>,
        task_queue: impl Into<String>,
        state: WorkflowState,
        start_time: SystemTime,
    ) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            workflow_type: workflow_type.into(),
            task_queue: task_queue.into(),
            state,
            start_time,
            close_time: None,
            cancel_requested: false,
            history_length: 0,
            outcome: None,
            task_failures: 0,
            last_task_failure: None,
            run_deadline: None,
            execution_deadline: None,
        }
    }
}

/// The default number of runs [`ListWorkflowsRequest`] answers.
pub const DEFAULT_LIST_WORKFLOWS_LIMIT: u32 = 100;

/// The most runs one [`ListWorkflowsRequest`] answers; larger limits are bounded
/// to it.
pub const MAX_LIST_WORKFLOWS_LIMIT: u32 = 1000;

/// The most events one [`workflow_history_page`](crate::protocol::ActivityProtocol)
/// answer carries.
pub const MAX_HISTORY_PAGE_EVENTS: u64 = 1000;

/// List workflow runs, newest first, optionally filtered by state, type and
/// workflow id, one page at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListWorkflowsRequest {
    /// Only runs in this state; `None`: any state.
    pub state: Option<WorkflowState>,
    /// Only runs of this workflow type; `None`: any type.
    pub workflow_type: Option<String>,
    /// Only runs whose workflow id starts with this; `None`: any id.
    #[serde(default)]
    pub workflow_id_prefix: Option<String>,
    /// At most this many runs (bounded to [`MAX_LIST_WORKFLOWS_LIMIT`]).
    pub limit: u32,
    /// Skips this many matching runs first (the next page starts at
    /// `offset + limit`).
    #[serde(default)]
    pub offset: u32,
}

impl ListWorkflowsRequest {
    /// Every run, up to [`DEFAULT_LIST_WORKFLOWS_LIMIT`] of them.
    pub fn new() -> Self {
        Self {
            state: None,
            workflow_type: None,
            workflow_id_prefix: None,
            limit: DEFAULT_LIST_WORKFLOWS_LIMIT,
            offset: 0,
        }
    }

    /// Only runs in `state`.
    pub fn with_state(mut self, state: WorkflowState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only runs of `workflow_type`.
    pub fn with_workflow_type(mut self, workflow_type: impl Into<String>) -> Self {
        self.workflow_type = Some(workflow_type.into());
        self
    }

    /// Only runs whose workflow id starts with `prefix`.
    pub fn with_workflow_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.workflow_id_prefix = Some(prefix.into());
        self
    }

    /// At most `limit` runs.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matching runs.
    pub fn with_offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }
}

impl Default for ListWorkflowsRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// One run in a [`ListWorkflowsRequest`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowSummary {
    /// The workflow id.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The task queue.
    pub task_queue: String,
    /// The state.
    pub state: WorkflowState,
    /// When the run started.
    pub start_time: SystemTime,
    /// When it closed; `None` while running.
    pub close_time: Option<SystemTime>,
}

impl WorkflowSummary {
    /// A summary of a run that has not closed (`close_time` is `None`).
    pub fn new(
        workflow_id: impl Into<String>,
        run_id: impl Into<String>,
        workflow_type: impl Into<String>,
        task_queue: impl Into<String>,
        state: WorkflowState,
        start_time: SystemTime,
    ) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            workflow_type: workflow_type.into(),
            task_queue: task_queue.into(),
            state,
            start_time,
            close_time: None,
        }
    }

    /// Sets when the run closed.
    pub fn with_close_time(mut self, close_time: Option<SystemTime>) -> Self {
        self.close_time = close_time;
        self
    }
}

/// Long-poll a task queue for a workflow task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PollWorkflowTaskRequest {
    /// The task queue.
    pub task_queue: String,
    /// Who polls.
    pub identity: String,
    /// How long to wait before answering `None`.
    pub wait: Duration,
}

impl PollWorkflowTaskRequest {
    /// A poll of `task_queue` by `identity`, waiting up to 60 s.
    pub fn new(task_queue: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            task_queue: task_queue.into(),
            identity: identity.into(),
            wait: Duration::from_secs(60),
        }
    }

    /// Sets how long to wait.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// A query handed to a worker polling the run's task queue
/// (docs/semantics.md §3.1): the worker answers it from its cached instance of
/// the run, or by replaying `history`, and writes nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueryTask {
    /// Identifies the query in the answer ([`QueryAnswer`]).
    pub query_id: String,
    /// The run.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The query's name, as the workflow declares it.
    pub query_name: String,
    /// The run's whole history when the query was handed out.
    pub history: Vec<HistoryEvent>,
}

impl QueryTask {
    /// Builds a query task.
    pub fn new(
        query_id: String,
        workflow_id: String,
        run_id: String,
        workflow_type: String,
        query_name: String,
        history: Vec<HistoryEvent>,
    ) -> Self {
        Self {
            query_id,
            workflow_id,
            run_id,
            workflow_type,
            query_name,
            history,
        }
    }
}

/// A worker's answer to a [`QueryTask`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryAnswer {
    /// The handler's serialized result.
    Answered(Payload),
    /// The workflow declares no handler of that name (or registered none yet);
    /// the message lists the ones it has.
    Unknown(String),
    /// The query could not be answered (the replay failed, the handler
    /// panicked, the workflow type is not registered on the worker).
    Failed(String),
}
