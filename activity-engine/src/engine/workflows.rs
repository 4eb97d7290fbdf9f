//! The rules of docs/semantics.md §3 (workflow runs, their histories and workflow tasks),
//! as synchronous functions on one store transaction, like `rules`: what they
//! write is committed before the engine answers, or not at all.
//!
//! # A run's workflow task
//!
//! A run has at most one workflow task, scheduled or started
//! ([`WorkflowTaskState`]). Each task has a number (`task_seq`, from 1), which its
//! token carries: a token of an earlier task, or of a task already answered, is
//! refused and changes nothing.
//!
//! - Starting a run appends `WorkflowStarted` and `WorkflowTaskScheduled`.
//! - A poll claims the oldest scheduled task of its queue, appends
//!   `WorkflowTaskStarted` and sets the task's timeout timer, in one transaction.
//! - A *resolution event* (an activity's final outcome, a timer fired, a cancel
//!   request) is appended at once when no task is started, and schedules a task
//!   when none is scheduled. While a task is started it is **buffered**: the
//!   worker's history must end with its `WorkflowTaskStarted`, and the task's
//!   answer (`WorkflowTaskCompleted` and its command events) must follow it
//!   directly. The buffered events are appended after the answer (or after
//!   `WorkflowTaskTimedOut` / `WorkflowTaskFailed`), and a new task is scheduled
//!   for them.
//! - A task that times out is followed by `WorkflowTaskTimedOut` and a new task
//!   at once (another worker replays); a task that fails is followed by
//!   `WorkflowTaskFailed` and a new task after a backoff (a durable timer), so the
//!   run resumes once fixed code is deployed. The run itself is not failed.
//! - A command that closes the run (complete, fail, cancel) makes it final: its
//!   timers, pending task and buffered events are dropped, and its activities that
//!   are not final are closed CANCELED, recording that their run closed, without a
//!   cancel request (docs/semantics.md §1.5). A closed run never changes again.
//! - A task claimed by the worker that claimed the run's previous task carries
//!   only the events after that task's `WorkflowTaskStarted` ([`StickyRuns`]);
//!   that worker has the rest in its cache, or fetches the whole history.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use activity_core::{
    clock::{from_millis, to_millis},
    context::TaskToken,
    failure::{ActivityFailure, ApplicationFailure, Failure, RetryState},
    options::ActivityOptions,
    payload::Payload,
    protocol::{ClosedReason, ExecutionOutcome, ProtocolError},
    workflow::{
        Command, EventKind, HistoryEvent, ListWorkflowsRequest, ParentClosePolicy, ParentRun,
        WorkflowDescription, WorkflowIdReusePolicy, WorkflowOutcome, WorkflowRef, WorkflowState,
        WorkflowSummary, WorkflowTask, WorkflowTimeout, WorkflowTimeouts, MAX_LIST_WORKFLOWS_LIMIT,
    },
};

use super::{
    check_name,
    metrics::WorkflowEvent,
    rules::{self, ms, Effects},
};
use crate::{
    engine::config::EngineConfig,
    store::{
        ChildLink, ExecutionRecord, RunRecord, StoreError, Tx, WorkflowTaskState,
        WorkflowTimerKind, WorkflowTimerRecord,
    },
    token::TokenSigner,
};

/// Error type of the failure given to a workflow whose `ScheduleActivity`
/// command had invalid options (nothing was scheduled).
pub(crate) const INVALID_OPTIONS: &str = "InvalidOptions";
/// Error type of the failure given to a workflow whose `ScheduleActivity`
/// command had an invalid activity type or id (nothing was scheduled).
pub(crate) const INVALID_ARGUMENT: &str = "InvalidArgument";
/// Error type of the failure given to a workflow whose `ScheduleActivity`
/// command reused an activity id of the run (nothing was scheduled).
pub(crate) const ACTIVITY_ID_REUSED: &str = "ActivityIdReused";

/// A new run's fields, checked by the engine.
#[derive(Clone)]
pub(crate) struct NewRun {
    pub(crate) workflow_id: String,
    pub(crate) run_id: String,
    pub(crate) workflow_type: String,
    pub(crate) task_queue: String,
    pub(crate) input: Vec<Payload>,
    /// The W3C `traceparent` stored with the run (docs/semantics.md §5.1).
    pub(crate) trace_context: Option<String>,
    /// The run's timeouts; the execution deadline is set when the chain's
    /// first run starts and carried on.
    pub(crate) timeouts: WorkflowTimeouts,
    pub(crate) id_reuse_policy: WorkflowIdReusePolicy,
    /// The parent, when a workflow starts the run as its child (or a child
    /// continues as new), with the parent-close policy.
    pub(crate) parent: Option<(ParentRun, ParentClosePolicy)>,
}

fn append(
    tx: &mut dyn Tx,
    run: &mut RunRecord,
    time: i64,
    kind: EventKind,
) -> Result<(), StoreError> {
    run.history_length += 1;
    let size = tx.append_event(
        run.key,
        &HistoryEvent::new(run.history_length, from_millis(time), kind),
    )?;
    run.history_size = run.history_size.saturating_add(size);
    Ok(())
}

/// The engine's limits of one run's history (docs/semantics.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HistoryLimits {
    pub(crate) max_events: u64,
    pub(crate) max_bytes: u64,
    pub(crate) warn_events: u64,
    pub(crate) warn_bytes: u64,
}

impl HistoryLimits {
    pub(crate) fn of(config: &EngineConfig) -> Self {
        Self {
            max_events: config.history_max_events,
            max_bytes: config.history_max_bytes,
            warn_events: config.history_warn_events,
            warn_bytes: config.history_warn_bytes,
        }
    }
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self::of(&EngineConfig::default())
    }
}

/// Applies the history limits to a running run whose task is not started
/// (where a resolution event may be appended): the first time its history
/// reaches the warning threshold, appends `HistorySizeWarning`; when it has
/// passed the limit, terminates the run with a reason naming the limit and
/// what to do, so that it never grows into a history no worker can take.
/// Answers whether the run was closed (and written).
fn check_history(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    now: i64,
) -> Result<bool, ProtocolError> {
    let limits = fx.history;
    if run.state.is_final() {
        return Ok(false);
    }
    if run.history_length > limits.max_events || run.history_size > limits.max_bytes {
        let reason = format!(
            "the history of workflow `{}` run `{}` passed the engine's history limit \
             ({} events, {} bytes; it has {} events, {} bytes): split the work into \
             child runs or smaller results",
            run.workflow_id,
            run.run_id,
            limits.max_events,
            limits.max_bytes,
            run.history_length,
            run.history_size,
        );
        tracing::warn!(workflow_id = %run.workflow_id, run_id = %run.run_id, events = run.history_length, bytes = run.history_size, "workflow run terminated: its history passed the limit");
        let identity = "activity-engine (history limit)".to_owned();
        let event = EventKind::WorkflowTerminated {
            reason: reason.clone(),
            identity,
        };
        append(tx, run, now, event)?;
        close_run(tx, fx, run, WorkflowOutcome::terminated(reason), now)?;
        return Ok(true);
    }
    if !run.history_warned
        && (run.history_length >= limits.warn_events || run.history_size >= limits.warn_bytes)
    {
        tracing::warn!(workflow_id = %run.workflow_id, run_id = %run.run_id, events = run.history_length, bytes = run.history_size, "workflow history is near its limit");
        run.history_warned = true;
        let warning = EventKind::HistorySizeWarning {
            events: run.history_length,
            bytes: run.history_size,
            max_events: limits.max_events,
            max_bytes: limits.max_bytes,
        };
        append(tx, run, now, warning)?;
    }
    Ok(false)
}

/// Schedules the run's next workflow task (a new task number).
fn schedule_task(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    now: i64,
) -> Result<(), ProtocolError> {
    run.task_seq = run
        .task_seq
        .checked_add(1)
        .ok_or_else(|| ProtocolError::Internal {
            message: format!("workflow run `{}` ran out of task numbers", run.run_id),
        })?;
    run.task_state = WorkflowTaskState::Scheduled;
    run.task_scheduled_at = now;
    run.task_started_at = None;
    run.task_identity = None;
    append(tx, run, now, EventKind::WorkflowTaskScheduled)?;
    fx.wake_workflow_queue(&run.task_queue);
    Ok(())
}

/// Delivers a resolution event to a running run (the caller writes the run):
/// buffered while a task is started, else appended, scheduling a task if none is
/// pending. Answers whether `run` changed.
fn deliver_to(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    now: i64,
    kind: EventKind,
) -> Result<bool, ProtocolError> {
    match run.task_state {
        WorkflowTaskState::Started => {
            tx.buffer_event(run.key, now, &kind)?;
            Ok(false)
        }
        WorkflowTaskState::Idle => {
            append(tx, run, now, kind)?;
            if !check_history(tx, fx, run, now)? {
                schedule_task(tx, fx, run, now)?;
            }
            Ok(true)
        }
        WorkflowTaskState::Scheduled => {
            append(tx, run, now, kind)?;
            // A claim that skipped the run while this transaction held it (a
            // shared store's SKIP LOCKED) looks again.
            fx.wake_workflow_queue(&run.task_queue);
            Ok(true)
        }
        WorkflowTaskState::Backoff => {
            append(tx, run, now, kind)?;
            check_history(tx, fx, run, now)?;
            Ok(true)
        }
    }
}

/// Delivers a resolution event to the run `run_id`, if it is still running.
fn deliver(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run_id: &str,
    now: i64,
    kind: EventKind,
) -> Result<(), ProtocolError> {
    let Some(mut run) = tx.run_by_id(run_id)? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    if deliver_to(tx, fx, &mut run, now, kind)? {
        tx.update_run(&run)?;
    }
    Ok(())
}

/// Appends the run's buffered events (except the `TimerFired` of timers in
/// `canceled_timers`); answers whether any was appended.
fn flush_buffered(
    tx: &mut dyn Tx,
    run: &mut RunRecord,
    canceled_timers: &[u32],
) -> Result<bool, ProtocolError> {
    let mut any = false;
    for (time, kind) in tx.take_buffered(run.key)? {
        if matches!(&kind, EventKind::TimerFired { seq } if canceled_timers.contains(seq)) {
            continue;
        }
        append(tx, run, time, kind)?;
        any = true;
    }
    Ok(any)
}

/// Called when an execution became final: an activity of a workflow run reports
/// its outcome (`ActivityCompleted` / `ActivityFailed` with the failure of
/// docs/semantics.md §4) to the run, unless the run is closed.
pub(crate) fn activity_closed(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &ExecutionRecord,
    now: i64,
) -> Result<(), ProtocolError> {
    let (Some(run_id), Some(seq)) = (&exec.workflow_run_id, exec.workflow_seq) else {
        return Ok(());
    };
    let kind = match rules::outcome(exec) {
        Some(ExecutionOutcome::Completed(result)) => EventKind::ActivityCompleted { seq, result },
        Some(ExecutionOutcome::Failed(failure)) => EventKind::ActivityFailed { seq, failure },
        None => return Ok(()),
    };
    deliver(tx, fx, run_id, now, kind)
}

/// Starts a run: `WorkflowStarted`, then its first task. Refused while a run
/// of the workflow id is running, and when the id-reuse policy refuses the
/// state its last run closed in (docs/semantics.md §3).
pub(crate) fn start(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    new: NewRun,
    now: i64,
) -> Result<WorkflowRef, ProtocolError> {
    if let Some(latest) = tx.latest_run(&new.workflow_id)? {
        if latest.state == WorkflowState::Running {
            return Err(ProtocolError::AlreadyExists {
                what: format!(
                    "workflow `{}` (run `{}` is running)",
                    latest.workflow_id, latest.run_id
                ),
            });
        }
        if !new.id_reuse_policy.allows(latest.state) {
            return Err(ProtocolError::AlreadyExists {
                what: format!(
                    "workflow `{}` (its last run `{}` closed {}, and the id-reuse policy {} \
                     refuses a new run: use another workflow id, or the policy AllowDuplicate)",
                    latest.workflow_id, latest.run_id, latest.state, new.id_reuse_policy
                ),
            });
        }
    }
    let mut timeouts = new.timeouts;
    if timeouts.execution_deadline.is_none() {
        timeouts.execution_deadline = timeouts
            .execution
            .map(|execution| from_millis(now.saturating_add(ms(execution))));
    }
    let mut run = new_run_record(
        new.workflow_id,
        new.run_id,
        new.workflow_type,
        new.task_queue,
        new.input,
        now,
    );
    run.trace_context = new.trace_context;
    run.key = tx.insert_run(&run)?;
    if let Some((parent, policy)) = &new.parent {
        tx.insert_child_link(&ChildLink {
            run_key: run.key,
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.clone(),
            parent_workflow_id: parent.workflow_id.clone(),
            parent_run_id: parent.run_id.clone(),
            parent_seq: parent.seq,
            policy: *policy,
        })?;
    }
    let started = EventKind::WorkflowStarted {
        workflow_type: run.workflow_type.clone(),
        task_queue: run.task_queue.clone(),
        input: run.input.clone(),
        timeouts,
        original_run_id: None,
        parent: new.parent.map(|(parent, _)| parent),
    };
    append(tx, &mut run, now, started)?;
    set_run_timeouts(tx, fx, &run, &timeouts, now)?;
    schedule_task(tx, fx, &mut run, now)?;
    tx.update_run(&run)?;
    fx.count_run(&run, WorkflowEvent::Started);
    Ok(WorkflowRef::run(run.workflow_id, run.run_id))
}

/// A new running run starting at `now`, before its first event.
fn new_run_record(
    workflow_id: String,
    run_id: String,
    workflow_type: String,
    task_queue: String,
    input: Vec<Payload>,
    now: i64,
) -> RunRecord {
    RunRecord {
        key: 0,
        workflow_id,
        run_id,
        workflow_type,
        task_queue,
        input,
        state: WorkflowState::Running,
        outcome: None,
        cancel_requested: false,
        started_at: now,
        closed_at: None,
        history_length: 0,
        task_state: WorkflowTaskState::Idle,
        task_seq: 0,
        task_scheduled_at: now,
        task_started_at: None,
        task_identity: None,
        task_failures: 0,
        history_size: 0,
        history_warned: false,
        trace_context: None,
    }
}

/// Sets the durable workflow timer `kind` (`seq`) of run `run_key`, due at
/// `due_at`, and wakes the engine's timer loop for it.
fn set_timer(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run_key: i64,
    kind: WorkflowTimerKind,
    seq: u32,
    due_at: i64,
) -> Result<(), ProtocolError> {
    tx.set_workflow_timer(&WorkflowTimerRecord {
        run_key,
        kind,
        seq,
        due_at,
    })?;
    fx.timer_set(due_at);
    Ok(())
}

/// `record`, made the activity `seq` of `run`.
fn of_run(mut record: ExecutionRecord, run: &RunRecord, seq: u32) -> ExecutionRecord {
    record.scope = run.run_id.clone();
    record.workflow_id = Some(run.workflow_id.clone());
    record.workflow_run_id = Some(run.run_id.clone());
    record.workflow_seq = Some(seq);
    record
}

/// Sets the durable timers of a new run's timeouts: its run timeout from
/// `now`, and its chain's execution deadline. The engine's timer machinery
/// fires them once ([`fire_timer`]); closing the run drops them.
fn set_run_timeouts(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &RunRecord,
    timeouts: &WorkflowTimeouts,
    now: i64,
) -> Result<(), ProtocolError> {
    let run_due = timeouts.run.map(|run| now.saturating_add(ms(run)));
    let execution_due = timeouts.execution_deadline.map(to_millis);
    for (kind, due) in [
        (WorkflowTimerKind::RunTimeout, run_due),
        (WorkflowTimerKind::ExecutionTimeout, execution_due),
    ] {
        if let Some(due_at) = due {
            set_timer(tx, fx, run.key, kind, 0, due_at)?;
        }
    }
    Ok(())
}

/// The timeouts the run was started with (its `WorkflowStarted`).
pub(crate) fn run_timeouts(
    tx: &mut dyn Tx,
    run: &RunRecord,
) -> Result<WorkflowTimeouts, ProtocolError> {
    let first = tx.history_page(
        run.key,
        crate::store::HistoryPage {
            after: 0,
            max_events: 1,
            max_bytes: u64::MAX,
        },
    )?;
    Ok(match first.into_iter().next().map(|e| e.kind) {
        Some(EventKind::WorkflowStarted { timeouts, .. }) => timeouts,
        _ => WorkflowTimeouts::default(),
    })
}

/// Closes a running run that reached `timeout`: `WorkflowTimedOut`, then the
/// common close (its activities told the workflow closed, its timers
/// dropped); a started task's answer will be refused.
fn time_out(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    timeout: WorkflowTimeout,
    now: i64,
) -> Result<(), ProtocolError> {
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, %timeout, "workflow run timed out");
    append(tx, run, now, EventKind::WorkflowTimedOut { timeout })?;
    close_run(tx, fx, run, WorkflowOutcome::TimedOut { timeout }, now)
}

/// Claims the oldest scheduled workflow task of the queue for `identity`: appends
/// `WorkflowTaskStarted`, sets its timeout, and hands out the whole history.
/// Which worker claimed each run's latest workflow task, and that task's
/// `WorkflowTaskStarted` event: the run's next task claimed by the same worker
/// carries only the events after it. Kept in memory only: without an entry (a
/// restart, another engine node) a task carries the whole history, and a worker
/// that lacks the earlier events fetches them, so an entry that is wrong costs a
/// fetch, never correctness.
#[derive(Debug, Default)]
pub(crate) struct StickyRuns {
    runs: Mutex<HashMap<String, (String, u64)>>,
}

impl StickyRuns {
    /// Runs remembered at most; past it the map starts over (whole histories).
    const LIMIT: usize = 100_000;

    fn previous(&self, run_id: &str, identity: &str) -> Option<u64> {
        let runs = super::lock(&self.runs);
        let (who, started) = runs.get(run_id)?;
        (who == identity).then_some(*started)
    }

    fn set(&self, run_id: &str, identity: &str, started: u64) {
        let mut runs = super::lock(&self.runs);
        if runs.len() >= Self::LIMIT && !runs.contains_key(run_id) {
            runs.clear();
        }
        runs.insert(run_id.to_owned(), (identity.to_owned(), started));
    }

    /// Forgets a closed run.
    pub(crate) fn forget(&self, run_id: &str) {
        super::lock(&self.runs).remove(run_id);
    }
}

/// The most bytes of stored events a workflow task carries when it would carry
/// the whole history: a larger history goes as its last events only, and a
/// worker without the run cached reads the rest in pages (`WorkflowHistoryPage`
/// through a transport with a message limit), so no task answer grows with
/// the history (docs/semantics.md §3.2).
pub(crate) const TASK_HISTORY_BYTES: u64 = 4 * 1024 * 1024;

/// The last events of `history` that fit in `max_bytes` of stored events (at
/// least the last one).
fn history_tail(mut history: Vec<HistoryEvent>, max_bytes: u64) -> Vec<HistoryEvent> {
    let mut bytes = 0_u64;
    let mut first = history.len();
    for (i, event) in history.iter().enumerate().rev() {
        let size = activity_core::codec::to_vec(&event.kind).map_or(0, |v| v.len() as u64);
        if first < history.len() && bytes.saturating_add(size) > max_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        first = i;
    }
    history.split_off(first)
}

/// Claims the oldest scheduled workflow task of `task_queue` for `identity`
/// (signed and timed out with `dispatch`'s signer and task timeout; history
/// trimmed with its [`StickyRuns`]).
pub(crate) fn claim(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    dispatch: &super::Dispatch,
    task_queue: &str,
    identity: &str,
    now: i64,
) -> Result<Option<WorkflowTask>, ProtocolError> {
    let (signer, sticky) = (&dispatch.signer, &dispatch.sticky);
    let task_timeout = dispatch.workflow_task_timeout;
    let Some(mut run) = tx.next_workflow_task(task_queue)? else {
        return Ok(None);
    };
    let previous = sticky.previous(&run.run_id, identity);
    run.task_state = WorkflowTaskState::Started;
    run.task_started_at = Some(now);
    run.task_identity = Some(identity.to_owned());
    append(
        tx,
        &mut run,
        now,
        EventKind::WorkflowTaskStarted {
            identity: identity.to_owned(),
        },
    )?;
    let due_at = now.saturating_add(ms(task_timeout));
    set_timer(
        tx,
        fx,
        run.key,
        WorkflowTimerKind::TaskTimeout,
        run.task_seq,
        due_at,
    )?;
    tx.update_run(&run)?;
    let history = match previous {
        Some(after) if after < run.history_length => tx.history_after(run.key, after)?,
        _ if run.history_size > TASK_HISTORY_BYTES => {
            history_tail(tx.history(run.key)?, TASK_HISTORY_BYTES)
        }
        _ => tx.history(run.key)?,
    };
    sticky.set(&run.run_id, identity, run.history_length);
    let token = signer.sign_workflow_task(run.key, run.task_seq);
    Ok(Some(
        WorkflowTask::new(
            token,
            run.workflow_id,
            run.run_id,
            run.workflow_type,
            history,
        )
        .with_trace_context(run.trace_context),
    ))
}

/// The run whose current, started workflow task `token` designates.
fn started_task(
    tx: &mut dyn Tx,
    signer: &TokenSigner,
    token: &TaskToken,
) -> Result<RunRecord, ProtocolError> {
    let (key, task) =
        signer
            .verify_workflow_task(token)
            .map_err(|e| ProtocolError::InvalidToken {
                reason: e.to_string(),
            })?;
    let run = tx.run(key)?.ok_or_else(|| ProtocolError::NotFound {
        what: format!("the workflow run of workflow task {task}"),
    })?;
    let what = format!(
        "workflow task {task} of workflow `{}` run `{}`",
        run.workflow_id, run.run_id
    );
    if run.state.is_final() {
        return Err(ProtocolError::AlreadyClosed {
            what,
            reason: ClosedReason::WorkflowClosed(run.state),
        });
    }
    if task == run.task_seq && run.task_state == WorkflowTaskState::Started {
        return Ok(run);
    }
    if task <= run.task_seq {
        // Answered, failed or timed out already (and maybe scheduled again).
        return Err(ProtocolError::AlreadyClosed {
            what,
            reason: ClosedReason::AttemptSuperseded,
        });
    }
    Err(ProtocolError::NotFound { what })
}

/// Whether the command closes the run.
fn closes(command: &Command) -> bool {
    matches!(
        command,
        Command::CompleteWorkflow { .. }
            | Command::FailWorkflow { .. }
            | Command::CancelWorkflow
            | Command::ContinueAsNew { .. }
    )
}

/// A task that closes the run while signals arrived that its code has not
/// seen (buffered while it ran) is refused (docs/semantics.md §3.1): none of
/// its commands is carried out, `WorkflowTaskFailed` says why, the buffered
/// events follow and a new task is scheduled at once (not a failure of the
/// code: no backoff). Answers whether the task was refused; when it was not,
/// the buffered events stay buffered.
fn refuse_close(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    close: &Command,
    now: i64,
) -> Result<bool, ProtocolError> {
    let buffered = tx.take_buffered(run.key)?;
    let unseen: Vec<&str> = buffered
        .iter()
        .filter_map(|(_, kind)| match kind {
            EventKind::WorkflowSignaled { signal_name, .. } => Some(signal_name.as_str()),
            _ => None,
        })
        .collect();
    if unseen.is_empty() {
        for (time, kind) in &buffered {
            tx.buffer_event(run.key, *time, kind)?;
        }
        return Ok(false);
    }
    let message = format!(
        "{} refused: {} signal(s) arrived while the task ran ({}); a new workflow task delivers them (docs/semantics.md §3.1)",
        close.describe(),
        unseen.len(),
        unseen
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, %message, "workflow close refused");
    tx.clear_workflow_timer(run.key, WorkflowTimerKind::TaskTimeout, None)?;
    append(tx, run, now, EventKind::WorkflowTaskFailed { message })?;
    for (time, kind) in buffered {
        append(tx, run, time, kind)?;
    }
    schedule_task(tx, fx, run, now)?;
    tx.update_run(run)?;
    Ok(true)
}

/// Commands after one that closes the run are refused: nothing would carry
/// them out.
fn check_commands(commands: &[Command]) -> Result<(), ProtocolError> {
    if let Some(at) = commands.iter().position(closes) {
        if at + 1 < commands.len() {
            return Err(ProtocolError::invalid_argument(
                "commands",
                format!(
                    "{} must be the last command, but {} follows it",
                    commands[at].describe(),
                    commands[at + 1].describe()
                ),
            ));
        }
    }
    Ok(())
}

/// Completes the started task with its commands: `WorkflowTaskCompleted`, the
/// command events in order, then whatever arrived meanwhile; carries the
/// commands out in the same transaction. A last `ContinueAsNew` closes the run
/// and starts run `next_run_id` of the same workflow id (docs/semantics.md
/// §3.1).
#[allow(clippy::too_many_arguments)]
pub(crate) fn complete_task(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    token: &TaskToken,
    commands: Vec<Command>,
    next_run_id: Option<String>,
    child_run_ids: &[String],
    now: i64,
) -> Result<(), ProtocolError> {
    let mut run = started_task(tx, signer, token)?;
    check_commands(&commands)?;
    if let Some(close) = commands.last().filter(|c| closes(c)) {
        if refuse_close(tx, fx, &mut run, close, now)? {
            return Ok(());
        }
    }
    let latency_ms = now.saturating_sub(run.task_scheduled_at);
    fx.count_run(&run, WorkflowEvent::TaskCompleted { latency_ms });
    tx.clear_workflow_timer(run.key, WorkflowTimerKind::TaskTimeout, None)?;
    let identity = run.task_identity.clone().unwrap_or_default();
    append(
        tx,
        &mut run,
        now,
        EventKind::WorkflowTaskCompleted { identity },
    )?;
    // Until the run is written at the end, its task is still STARTED in the
    // store: outcomes produced while carrying the commands out (an activity
    // canceled at once, invalid options) are buffered, and appended after the
    // command events.
    let mut canceled_timers = Vec::new();
    let mut close = None;
    let mut next = None;
    let mut child_run_ids = child_run_ids.iter();
    for command in commands {
        let event = match (&command, &next_run_id) {
            (Command::ContinueAsNew { input }, Some(new_run_id)) => {
                EventKind::WorkflowContinuedAsNew {
                    new_run_id: new_run_id.clone(),
                    input: input.clone(),
                }
            }
            (Command::ContinueAsNew { .. }, None) => {
                return Err(ProtocolError::invalid_argument(
                    "commands",
                    "ContinueAsNew must be the last command",
                ))
            }
            _ => command.to_event(),
        };
        append(tx, &mut run, now, event)?;
        match command {
            Command::ScheduleActivity {
                seq,
                activity_id,
                activity_type,
                input,
                options,
                trace_context,
            } => schedule_activity(
                tx,
                fx,
                &run,
                ActivityCommand {
                    seq,
                    activity_id,
                    activity_type,
                    input,
                    options,
                    trace_context,
                },
                now,
            )?,
            Command::RequestCancelActivity { seq } => {
                if let Some(exec) = tx.execution_by_seq(&run.run_id, seq)? {
                    if !exec.state.is_final() {
                        rules::cancel_execution(tx, fx, exec, now)?;
                    }
                }
            }
            Command::StartTimer { seq, duration } => {
                let due_at = now.saturating_add(ms(duration));
                set_timer(tx, fx, run.key, WorkflowTimerKind::Timer, seq, due_at)?;
            }
            Command::CancelTimer { seq } => {
                tx.clear_workflow_timer(run.key, WorkflowTimerKind::Timer, Some(seq))?;
                canceled_timers.push(seq);
            }
            Command::RecordLocalActivity { .. } => {}
            Command::SignalExternalWorkflow {
                seq,
                workflow_id,
                signal_name,
                input,
            } => {
                let sent = SignalIn {
                    name: signal_name,
                    input,
                    identity: format!("workflow `{}` run `{}`", run.workflow_id, run.run_id),
                };
                let target = WorkflowRef::latest(workflow_id);
                let error = match check_name("signal_name", &sent.name)
                    .and_then(|()| signal(tx, fx, &target, sent, now))
                {
                    Ok(_) => None,
                    Err(err) => Some(err.to_string()),
                };
                // Buffered: the run's task is still started (see above).
                tx.buffer_event(
                    run.key,
                    now,
                    &EventKind::ExternalSignalResolved { seq, error },
                )?;
            }
            Command::StartChildWorkflow {
                seq,
                workflow_id,
                workflow_type,
                task_queue,
                input,
                parent_close_policy,
                run_timeout,
                execution_timeout,
            } => {
                // Drawn whether or not the child starts: later children keep
                // theirs.
                let run_id = child_run_ids.next().cloned().unwrap_or_default();
                let started = super::runs::check_timeouts(run_timeout, execution_timeout).and_then(
                    |timeouts| {
                        let new = NewRun {
                            workflow_id: workflow_id.clone(),
                            run_id,
                            workflow_type,
                            task_queue,
                            input,
                            // A child continues its parent's trace.
                            trace_context: run.trace_context.clone(),
                            timeouts,
                            id_reuse_policy: WorkflowIdReusePolicy::AllowDuplicate,
                            parent: Some((
                                ParentRun::new(&run.workflow_id, &run.run_id, seq),
                                parent_close_policy,
                            )),
                        };
                        start_child(tx, fx, &run, new, now)
                    },
                );
                let event = match started {
                    Ok(run_id) => EventKind::ChildWorkflowStarted {
                        seq,
                        workflow_id,
                        run_id,
                    },
                    Err(err) => EventKind::StartChildWorkflowFailed {
                        seq,
                        workflow_id,
                        message: err.to_string(),
                    },
                };
                // Buffered: the run's task is still started (see above).
                tx.buffer_event(run.key, now, &event)?;
            }
            Command::RequestCancelChildWorkflow { seq } => {
                for child in tx.open_children(&run.run_id, Some(seq))? {
                    let target = WorkflowRef::run(child.workflow_id, child.run_id);
                    request_cancel(tx, fx, &target, now)?;
                }
            }
            Command::CompleteWorkflow { result } => {
                close = Some(WorkflowOutcome::Completed(result))
            }
            Command::FailWorkflow { failure } => close = Some(WorkflowOutcome::Failed(failure)),
            Command::CancelWorkflow => close = Some(WorkflowOutcome::Canceled),
            Command::ContinueAsNew { input } => {
                let new_run_id = next_run_id.clone().unwrap_or_default();
                close = Some(WorkflowOutcome::ContinuedAsNew {
                    new_run_id: new_run_id.clone(),
                });
                // A child's next run keeps its parent (docs/semantics.md §3.1).
                let parent = tx.child_link(run.key)?.map(|link| {
                    let parent = ParentRun::new(
                        link.parent_workflow_id,
                        link.parent_run_id,
                        link.parent_seq,
                    );
                    (parent, link.policy)
                });
                next = Some(NewRun {
                    workflow_id: run.workflow_id.clone(),
                    run_id: new_run_id,
                    workflow_type: run.workflow_type.clone(),
                    task_queue: run.task_queue.clone(),
                    input,
                    // The next run continues the trace of this one.
                    trace_context: run.trace_context.clone(),
                    // The run timeout anew, the chain's execution deadline
                    // carried on.
                    timeouts: run_timeouts(tx, &run)?,
                    id_reuse_policy: WorkflowIdReusePolicy::AllowDuplicate,
                    parent,
                });
            }
            other => {
                return Err(ProtocolError::invalid_argument(
                    "commands",
                    format!("{} is not supported by this engine", other.describe()),
                ))
            }
        }
    }
    if let Some(outcome) = close {
        close_run(tx, fx, &mut run, outcome, now)?;
        if let Some(new) = next {
            // The same transaction: the old run closed, the new one started
            // with its first workflow task.
            let started = start(tx, fx, new, now)?;
            tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, new_run_id = ?started.run_id, "workflow run continued as new");
        }
        return Ok(());
    }
    run.task_state = WorkflowTaskState::Idle;
    run.task_started_at = None;
    run.task_identity = None;
    run.task_failures = 0;
    let flushed = flush_buffered(tx, &mut run, &canceled_timers)?;
    if check_history(tx, fx, &mut run, now)? {
        return Ok(());
    }
    if flushed {
        schedule_task(tx, fx, &mut run, now)?;
    }
    tx.update_run(&run)?;
    Ok(())
}

/// Starts the child run of a `StartChildWorkflow` command of `parent`
/// (docs/semantics.md §3.1): checked as a client's start is, refused when a
/// run with its workflow id is running. Answers the child's run id.
fn start_child(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    parent: &RunRecord,
    new: NewRun,
    now: i64,
) -> Result<String, ProtocolError> {
    check_name("workflow_id", &new.workflow_id)?;
    check_name("workflow_type", &new.workflow_type)?;
    check_name("task_queue", &new.task_queue)?;
    if new.run_id.is_empty() {
        return Err(ProtocolError::Internal {
            message: "no run id was drawn for a child workflow".into(),
        });
    }
    let started = start(tx, fx, new, now)?;
    tracing::debug!(workflow_id = %parent.workflow_id, run_id = %parent.run_id, child_id = %started.workflow_id, child_run_id = ?started.run_id, "child workflow started");
    Ok(started.run_id.unwrap_or_default())
}

/// The event that tells a parent how its child closed; `None` for a child
/// that continued as new (its chain goes on).
fn child_closed_event(seq: u32, outcome: &WorkflowOutcome) -> Option<EventKind> {
    Some(match outcome.clone() {
        WorkflowOutcome::Completed(result) => EventKind::ChildWorkflowCompleted { seq, result },
        WorkflowOutcome::Failed(failure) => EventKind::ChildWorkflowFailed { seq, failure },
        WorkflowOutcome::Canceled => EventKind::ChildWorkflowCanceled { seq },
        // A child reset is terminated naming the run that took over; the
        // parent is told it was terminated (the new run is not its child).
        WorkflowOutcome::Terminated { reason, .. } => {
            EventKind::ChildWorkflowTerminated { seq, reason }
        }
        WorkflowOutcome::TimedOut { timeout } => EventKind::ChildWorkflowTimedOut { seq, timeout },
        WorkflowOutcome::ContinuedAsNew { .. } => return None,
    })
}

/// The parent-close policy of each open child of a run that closed
/// (docs/semantics.md §3.1), in the transaction that closed it: Terminate
/// terminates the child, RequestCancel requests its cancellation, Abandon
/// leaves it running.
fn close_children(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &RunRecord,
    now: i64,
) -> Result<(), ProtocolError> {
    for child in tx.open_children(&run.run_id, None)? {
        let target = WorkflowRef::run(child.workflow_id, child.run_id);
        match child.policy {
            ParentClosePolicy::Terminate => {
                let reason = format!(
                    "its parent workflow `{}` run `{}` closed ({}); parent-close policy Terminate",
                    run.workflow_id, run.run_id, run.state
                );
                let identity = format!("workflow `{}` run `{}`", run.workflow_id, run.run_id);
                terminate(tx, fx, &target, reason, identity, now)?;
            }
            ParentClosePolicy::RequestCancel => {
                request_cancel(tx, fx, &target, now)?;
            }
            ParentClosePolicy::Abandon => {}
        }
    }
    Ok(())
}

struct ActivityCommand {
    seq: u32,
    activity_id: String,
    activity_type: String,
    input: Vec<Payload>,
    options: ActivityOptions,
    trace_context: Option<String>,
}

/// Schedules an activity of the run; a command the engine cannot carry out
/// (invalid options, type or id) resolves the activity at once with a
/// non-retryable failure naming the problem, delivered to the workflow.
fn schedule_activity(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &RunRecord,
    command: ActivityCommand,
    now: i64,
) -> Result<(), ProtocolError> {
    let ActivityCommand {
        seq,
        activity_id,
        activity_type,
        input,
        options,
        trace_context,
    } = command;
    if tx.execution_by_seq(&run.run_id, seq)?.is_some() {
        return Err(ProtocolError::invalid_argument(
            "commands",
            format!("seq {seq} already scheduled an activity in this run"),
        ));
    }
    let refused = |error_type: &str, message: String| EventKind::ActivityFailed {
        seq,
        failure: ActivityFailure::new(
            activity_type.clone(),
            activity_id.clone(),
            0,
            RetryState::NonRetryableFailure,
            Failure::Application(
                ApplicationFailure::new(error_type, message).with_non_retryable(true),
            ),
        ),
    };
    let checked = check_name("activity_type", &activity_type)
        .and_then(|()| check_name("activity_id", &activity_id))
        .map_err(|e| refused(INVALID_ARGUMENT, e.to_string()))
        .and_then(|()| {
            options
                .validate(Some(&run.task_queue))
                .map_err(|e| refused(INVALID_OPTIONS, e.to_string()))
        })
        .and_then(|validated| {
            check_name("task_queue", &validated.task_queue)
                .map(|()| validated)
                .map_err(|e| refused(INVALID_OPTIONS, e.to_string()))
        });
    let validated = match checked {
        Ok(validated) => validated,
        Err(event) => {
            tx.buffer_event(run.key, now, &event)?;
            return Ok(());
        }
    };
    if tx.execution_by_id(&run.run_id, &activity_id)?.is_some() {
        let event = refused(
            ACTIVITY_ID_REUSED,
            format!("activity id `{activity_id}` is already used in this workflow run"),
        );
        tx.buffer_event(run.key, now, &event)?;
        return Ok(());
    }
    let new = rules::new_record(activity_id, activity_type, input, validated, now);
    let mut record = of_run(new, run, seq);
    // The workflow task that scheduled it, else the run (docs/semantics.md §5.1).
    record.trace_context = trace_context.or_else(|| run.trace_context.clone());
    rules::schedule(tx, fx, record)?;
    Ok(())
}

/// Makes the run final with `outcome`: drops its timers, pending task and
/// buffered events, and closes its activities that are not final (CANCELED,
/// their run closed: not a cancel request).
fn close_run(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    run: &mut RunRecord,
    outcome: WorkflowOutcome,
    now: i64,
) -> Result<(), ProtocolError> {
    run.state = outcome.state();
    fx.count_run(run, WorkflowEvent::Closed(run.state));
    run.outcome = Some(outcome);
    run.closed_at = Some(now);
    run.task_state = WorkflowTaskState::Idle;
    run.task_started_at = None;
    run.task_identity = None;
    tx.update_run(run)?;
    tx.clear_workflow_timers(run.key)?;
    tx.take_buffered(run.key)?;
    // The run is closed in the store now: closing its activities appends nothing.
    // This is not a cancel request: none is recorded (docs/semantics.md §1.5).
    for exec in tx.open_executions(&run.run_id)? {
        rules::close_for_closed_run(tx, fx, exec, run.state, now)?;
    }
    // A child tells its parent how it ended (the parent is written apart:
    // buffered while its task runs); the run's own children meet their
    // parent-close policy.
    if let Some(link) = tx.child_link(run.key)? {
        if let Some(event) = run
            .outcome
            .as_ref()
            .and_then(|outcome| child_closed_event(link.parent_seq, outcome))
        {
            deliver(tx, fx, &link.parent_run_id, now, event)?;
        }
    }
    close_children(tx, fx, run, now)?;
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, state = %run.state, "workflow run closed");
    fx.runs_closed.push(run.run_id.clone());
    Ok(())
}

/// The backoff before the task after `failures` consecutive failed tasks:
/// `initial × 2^(failures − 1)`, at most `maximum`.
pub(crate) fn task_backoff(initial: Duration, maximum: Duration, failures: u32) -> Duration {
    let factor = 2_u32.saturating_pow(failures.saturating_sub(1).min(31));
    initial.saturating_mul(factor).min(maximum)
}

/// Fails the started task: `WorkflowTaskFailed`, then whatever arrived
/// meanwhile; the next task is scheduled when the backoff ends.
pub(crate) fn fail_task(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    token: &TaskToken,
    message: String,
    backoff: (Duration, Duration),
    now: i64,
) -> Result<(), ProtocolError> {
    let mut run = started_task(tx, signer, token)?;
    tx.clear_workflow_timer(run.key, WorkflowTimerKind::TaskTimeout, None)?;
    append(tx, &mut run, now, EventKind::WorkflowTaskFailed { message })?;
    fx.count_run(&run, WorkflowEvent::TaskFailed);
    flush_buffered(tx, &mut run, &[])?;
    run.task_failures = run.task_failures.saturating_add(1);
    run.task_state = WorkflowTaskState::Backoff;
    run.task_started_at = None;
    run.task_identity = None;
    if check_history(tx, fx, &mut run, now)? {
        return Ok(());
    }
    let delay = task_backoff(backoff.0, backoff.1, run.task_failures);
    let due_at = now.saturating_add(ms(delay));
    set_timer(
        tx,
        fx,
        run.key,
        WorkflowTimerKind::TaskBackoff,
        run.task_seq,
        due_at,
    )?;
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, failures = run.task_failures, retry_in = ?delay, "workflow task failed");
    tx.update_run(&run)?;
    Ok(())
}

/// Fires a due workflow timer (already read; removed here). A timer of a closed
/// run, or of a task that is no longer the current one, does nothing.
pub(crate) fn fire_timer(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    timer: &WorkflowTimerRecord,
    now: i64,
) -> Result<(), ProtocolError> {
    tx.clear_workflow_timer(timer.run_key, timer.kind, Some(timer.seq))?;
    let Some(mut run) = tx.run(timer.run_key)? else {
        return Ok(());
    };
    if run.state.is_final() {
        return Ok(());
    }
    let current = timer.seq == run.task_seq;
    let changed = match timer.kind {
        WorkflowTimerKind::Timer => deliver_to(
            tx,
            fx,
            &mut run,
            now,
            EventKind::TimerFired { seq: timer.seq },
        )?,
        WorkflowTimerKind::TaskTimeout
            if current && run.task_state == WorkflowTaskState::Started =>
        {
            tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, task = run.task_seq, "workflow task timed out");
            append(tx, &mut run, now, EventKind::WorkflowTaskTimedOut)?;
            fx.count_run(&run, WorkflowEvent::TaskTimedOut);
            flush_buffered(tx, &mut run, &[])?;
            run.task_state = WorkflowTaskState::Idle;
            if !check_history(tx, fx, &mut run, now)? {
                schedule_task(tx, fx, &mut run, now)?;
            }
            true
        }
        WorkflowTimerKind::TaskBackoff
            if current && run.task_state == WorkflowTaskState::Backoff =>
        {
            schedule_task(tx, fx, &mut run, now)?;
            true
        }
        // `close_run` writes the run.
        WorkflowTimerKind::RunTimeout => {
            time_out(tx, fx, &mut run, WorkflowTimeout::Run, now)?;
            false
        }
        WorkflowTimerKind::ExecutionTimeout => {
            time_out(tx, fx, &mut run, WorkflowTimeout::Execution, now)?;
            false
        }
        _ => false,
    };
    if changed {
        tx.update_run(&run)?;
    }
    Ok(())
}

/// The run `workflow` designates (its latest run when no run id is given).
pub(crate) fn find_run(
    tx: &mut dyn Tx,
    workflow: &WorkflowRef,
) -> Result<RunRecord, ProtocolError> {
    let run = match &workflow.run_id {
        Some(run_id) => tx
            .run_by_id(run_id)?
            .filter(|run| run.workflow_id == workflow.workflow_id),
        None => tx.latest_run(&workflow.workflow_id)?,
    };
    run.ok_or_else(|| ProtocolError::NotFound {
        what: workflow.to_string(),
    })
}

/// Requests cancellation of a running run: `WorkflowCancelRequested` (once), its
/// activities that are not final are cancel-requested, and a task delivers it to
/// the code. A closed run is left as it is. Answers the run's state.
pub(crate) fn request_cancel(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    workflow: &WorkflowRef,
    now: i64,
) -> Result<WorkflowState, ProtocolError> {
    let mut run = find_run(tx, workflow)?;
    if run.state.is_final() || run.cancel_requested {
        return Ok(run.state);
    }
    run.cancel_requested = true;
    deliver_to(tx, fx, &mut run, now, EventKind::WorkflowCancelRequested)?;
    tx.update_run(&run)?;
    for exec in tx.open_executions(&run.run_id)? {
        rules::cancel_execution(tx, fx, exec, now)?;
    }
    Ok(run.state)
}

/// Terminates a running run: `WorkflowTerminated` (with who and why), then
/// the run closes as [`close_run`] closes it; a started task's answer will be
/// refused. A closed run is left as it is: refused as already closed.
pub(crate) fn terminate(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    workflow: &WorkflowRef,
    reason: String,
    identity: String,
    now: i64,
) -> Result<WorkflowState, ProtocolError> {
    let mut run = find_run(tx, workflow)?;
    if run.state.is_final() {
        return Err(ProtocolError::AlreadyClosed {
            what: format!("workflow `{}` run `{}`", run.workflow_id, run.run_id),
            reason: ClosedReason::WorkflowClosed(run.state),
        });
    }
    append(
        tx,
        &mut run,
        now,
        EventKind::WorkflowTerminated {
            reason: reason.clone(),
            identity,
        },
    )?;
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %run.run_id, %reason, "workflow run terminated");
    close_run(tx, fx, &mut run, WorkflowOutcome::terminated(reason), now)?;
    Ok(WorkflowState::Terminated)
}

/// A reset's arguments, checked (docs/semantics.md §3.1).
#[derive(Clone)]
pub(crate) struct ResetIn {
    pub(crate) to_event: u64,
    pub(crate) reason: String,
    pub(crate) identity: String,
    pub(crate) new_run_id: String,
}

/// Resets a run (docs/semantics.md §3.1): checks that `to_event` is one of
/// its `WorkflowTaskCompleted` events; terminates the run if it is running
/// (naming the reset and the new run); starts a new run of the workflow id
/// whose history is the run's events before that task's answer (ending with
/// its `WorkflowTaskStarted`), then `WorkflowTaskFailed` recording the reset,
/// the signals received after that point, and a new workflow task. The
/// activities and timers open at that point are scheduled again for the new
/// run; those of later tasks are not carried over. Answers the new run.
pub(crate) fn reset(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    workflow: &WorkflowRef,
    reset: ResetIn,
    now: i64,
) -> Result<WorkflowRef, ProtocolError> {
    let mut old = find_run(tx, workflow)?;
    let history = tx.history(old.key)?;
    let completed: Vec<u64> = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. }))
        .map(|e| e.event_id)
        .collect();
    let at = reset.to_event;
    if !completed.contains(&at) || at < 2 {
        let found = match history.get((at as usize).wrapping_sub(1)) {
            Some(event) => format!("event {at} is {}", event.kind.name()),
            None => format!("the run has no event {at} (it has {})", history.len()),
        };
        let choices = if completed.is_empty() {
            "it has none yet: no workflow task of it completed".to_owned()
        } else {
            let list: Vec<String> = completed.iter().map(u64::to_string).collect();
            format!("one of [{}]", list.join(", "))
        };
        return Err(ProtocolError::invalid_argument(
            "to_event",
            format!(
                "{found}: a reset goes to a WorkflowTaskCompleted event of workflow `{}` run `{}`, {choices}",
                old.workflow_id, old.run_id
            ),
        ));
    }
    if let Some(latest) = tx.latest_run(&old.workflow_id)? {
        if latest.state == WorkflowState::Running && latest.key != old.key {
            return Err(ProtocolError::AlreadyExists {
                what: format!(
                    "workflow `{}` (run `{}` is running: reset that run, or terminate it first)",
                    latest.workflow_id, latest.run_id
                ),
            });
        }
    }
    let ResetIn {
        reason,
        identity,
        new_run_id,
        ..
    } = reset;
    // Signals the run received after the reset point: in its history, and
    // buffered while a task of it ran (dropped by its close).
    let cut = (at - 1) as usize;
    let mut signals: Vec<(i64, EventKind)> = history[cut..]
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkflowSignaled { .. }))
        .map(|e| (to_millis(e.time), e.kind.clone()))
        .collect();
    if !old.state.is_final() {
        let buffered = tx.take_buffered(old.key)?;
        signals.extend(
            buffered
                .into_iter()
                .filter(|(_, kind)| matches!(kind, EventKind::WorkflowSignaled { .. })),
        );
        let why =
            format!("reset to event {at} by {identity}: {reason}; run `{new_run_id}` took over");
        append(
            tx,
            &mut old,
            now,
            EventKind::WorkflowTerminated {
                reason: why.clone(),
                identity: identity.clone(),
            },
        )?;
        let outcome = WorkflowOutcome::Terminated {
            reason: why,
            new_run_id: Some(new_run_id.clone()),
        };
        close_run(tx, fx, &mut old, outcome, now)?;
    }
    let timeouts = match history.first().map(|e| &e.kind) {
        Some(EventKind::WorkflowStarted { timeouts, .. }) => *timeouts,
        _ => WorkflowTimeouts::default(),
    };
    let mut run = new_run_record(
        old.workflow_id.clone(),
        new_run_id,
        old.workflow_type.clone(),
        old.task_queue.clone(),
        old.input.clone(),
        now,
    );
    // The new run continues the old one's trace.
    run.trace_context = old.trace_context.clone();
    run.key = tx.insert_run(&run)?;
    let copied = &history[..cut];
    for (n, event) in copied.iter().enumerate() {
        let mut kind = event.kind.clone();
        if let (
            0,
            EventKind::WorkflowStarted {
                original_run_id, ..
            },
        ) = (n, &mut kind)
        {
            // The random values of the copied history came from this seed.
            original_run_id.get_or_insert_with(|| old.run_id.clone());
        }
        if matches!(event.kind, EventKind::WorkflowTaskScheduled) {
            run.task_seq = run.task_seq.saturating_add(1);
        }
        if matches!(event.kind, EventKind::WorkflowCancelRequested) {
            run.cancel_requested = true;
        }
        append(tx, &mut run, to_millis(event.time), kind)?;
    }
    let message = format!(
        "reset to event {at} of run `{}` by {identity}: {reason}",
        old.run_id
    );
    append(tx, &mut run, now, EventKind::WorkflowTaskFailed { message })?;
    for (time, kind) in signals {
        append(tx, &mut run, time, kind)?;
    }
    reopen(tx, fx, &old, &run, copied, now)?;
    set_run_timeouts(tx, fx, &run, &timeouts, now)?;
    schedule_task(tx, fx, &mut run, now)?;
    tx.update_run(&run)?;
    fx.count_run(&run, WorkflowEvent::Started);
    tracing::debug!(workflow_id = %run.workflow_id, run_id = %old.run_id, new_run_id = %run.run_id, to_event = at, "workflow run reset");
    Ok(WorkflowRef::run(run.workflow_id, run.run_id))
}

/// Schedules again, for the reset run `run`, the activities and timers that
/// were open at the end of `copied` (the old run's history up to the reset
/// point): an activity with the options of its execution in `old`, a timer
/// due when it was due (at once if that has passed).
fn reopen(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    old: &RunRecord,
    run: &RunRecord,
    copied: &[HistoryEvent],
    now: i64,
) -> Result<(), ProtocolError> {
    let mut activities = Vec::new();
    let mut timers = Vec::new();
    for event in copied {
        match &event.kind {
            EventKind::ActivityScheduled { seq, .. } => activities.push(*seq),
            EventKind::ActivityCompleted { seq, .. } | EventKind::ActivityFailed { seq, .. } => {
                activities.retain(|s| s != seq)
            }
            EventKind::TimerStarted { seq, duration } => {
                timers.push((*seq, to_millis(event.time).saturating_add(ms(*duration))))
            }
            EventKind::TimerFired { seq } | EventKind::TimerCanceled { seq } => {
                timers.retain(|(s, _)| s != seq)
            }
            _ => {}
        }
    }
    for seq in activities {
        let Some(exec) = tx.execution_by_seq(&old.run_id, seq)? else {
            continue;
        };
        let new = rules::new_record(
            exec.activity_id,
            exec.activity_type,
            exec.input,
            exec.options,
            now,
        );
        rules::schedule(tx, fx, of_run(new, run, seq))?;
    }
    for (seq, due_at) in timers {
        let due_at = due_at.max(now);
        set_timer(tx, fx, run.key, WorkflowTimerKind::Timer, seq, due_at)?;
    }
    Ok(())
}

/// A signal to deliver: its name, payload and sender.
#[derive(Clone)]
pub(crate) struct SignalIn {
    pub(crate) name: String,
    pub(crate) input: Payload,
    pub(crate) identity: String,
}

impl SignalIn {
    fn event(self) -> EventKind {
        EventKind::WorkflowSignaled {
            signal_name: self.name,
            input: self.input,
            identity: self.identity,
        }
    }
}

/// Signals a running run (docs/semantics.md §3.1): `WorkflowSignaled` is
/// delivered as any resolution event (buffered while a task runs, else
/// appended with a task scheduled). A closed run refuses it. Answers the run.
pub(crate) fn signal(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    workflow: &WorkflowRef,
    signal: SignalIn,
    now: i64,
) -> Result<WorkflowRef, ProtocolError> {
    let mut run = find_run(tx, workflow)?;
    if run.state.is_final() {
        return Err(ProtocolError::AlreadyClosed {
            what: format!(
                "workflow `{}` run `{}` (signal `{}`)",
                run.workflow_id, run.run_id, signal.name
            ),
            reason: ClosedReason::WorkflowClosed(run.state),
        });
    }
    if deliver_to(tx, fx, &mut run, now, signal.event())? {
        tx.update_run(&run)?;
    }
    Ok(WorkflowRef::run(run.workflow_id, run.run_id))
}

/// Signal-with-start (docs/semantics.md §3.1): signals the running run of the
/// workflow id, or starts a run and signals it, in the caller's transaction.
pub(crate) fn signal_with_start(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    new: NewRun,
    signal: SignalIn,
    now: i64,
) -> Result<WorkflowRef, ProtocolError> {
    let latest = WorkflowRef::latest(new.workflow_id.clone());
    let running = tx
        .latest_run(&new.workflow_id)?
        .is_some_and(|run| run.state == WorkflowState::Running);
    if !running {
        start(tx, fx, new, now)?;
    }
    self::signal(tx, fx, &latest, signal, now)
}

/// Describes a run.
pub(crate) fn describe(run: &RunRecord) -> WorkflowDescription {
    let mut d = WorkflowDescription::new(
        &run.workflow_id,
        &run.run_id,
        &run.workflow_type,
        &run.task_queue,
        run.state,
        from_millis(run.started_at),
    );
    d.close_time = run.closed_at.map(from_millis);
    d.cancel_requested = run.cancel_requested;
    d.history_length = run.history_length;
    d.outcome = run.outcome.clone();
    d.task_failures = run.task_failures;
    d
}

/// Sets the deadlines of the run's timeouts in its description.
pub(crate) fn describe_deadlines(
    tx: &mut dyn Tx,
    run: &RunRecord,
    description: &mut WorkflowDescription,
) -> Result<(), ProtocolError> {
    let timeouts = run_timeouts(tx, run)?;
    description.run_deadline = timeouts
        .run
        .map(|timeout| from_millis(run.started_at.saturating_add(ms(timeout))));
    description.execution_deadline = timeouts.execution_deadline;
    Ok(())
}

/// The message of the run's latest `WorkflowTaskFailed`, when its latest tasks
/// failed; read from the end of its history.
pub(crate) fn last_task_failure(
    tx: &mut dyn Tx,
    run: &RunRecord,
) -> Result<Option<String>, ProtocolError> {
    if run.task_failures == 0 {
        return Ok(None);
    }
    let latest = |events: Vec<HistoryEvent>| {
        events.into_iter().rev().find_map(|e| match e.kind {
            EventKind::WorkflowTaskFailed { message } => Some(message),
            _ => None,
        })
    };
    // A failure is followed by the events buffered meanwhile and the next task's.
    let tail = tx.history_after(run.key, run.history_length.saturating_sub(16))?;
    match latest(tail) {
        Some(message) => Ok(Some(message)),
        None => Ok(latest(tx.history(run.key)?)),
    }
}

/// Runs, newest first, as the protocol answers them; the limit is bounded to
/// [`MAX_LIST_WORKFLOWS_LIMIT`].
pub(crate) fn list(
    tx: &mut dyn Tx,
    request: &ListWorkflowsRequest,
) -> Result<Vec<WorkflowSummary>, ProtocolError> {
    let limit = request.limit.min(MAX_LIST_WORKFLOWS_LIMIT);
    let runs = tx.list_runs(request, limit)?;
    Ok(runs
        .iter()
        .map(|run| {
            WorkflowSummary::new(
                &run.workflow_id,
                &run.run_id,
                &run.workflow_type,
                &run.task_queue,
                run.state,
                from_millis(run.started_at),
            )
            .with_close_time(run.closed_at.map(from_millis))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_backoff_doubles_per_failure_up_to_the_maximum() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(600));
        let delays: Vec<u64> = (1..=12)
            .map(|n| task_backoff(initial, max, n).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(task_backoff(initial, max, u32::MAX), max);
    }
}
