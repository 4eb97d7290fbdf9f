//! The rules of docs/semantics.md §1 and §2, as synchronous functions on one store
//! transaction (the workflow rules of docs/semantics.md §3 are in `workflows`). Every function here runs inside [`crate::store::run`]: what it
//! writes is committed before the engine answers, or not at all.
//!
//! In-memory side effects (waking long polls, outcome waiters, the timer loop) are
//! collected in [`Effects`] and applied by the engine only after the commit.

use std::time::Duration;

use activity_core::{
    clock::{duration_millis, from_millis},
    context::{ActivityInfo, TaskToken},
    failure::{
        ActivityFailure, ApplicationFailure, CanceledFailure, Failure, RetryState, TimeoutFailure,
        TimeoutKind,
    },
    options::ValidatedOptions,
    payload::Payload,
    protocol::{
        ActivityTask, ClosedReason, ExecutionDescription, ExecutionOutcome, ExecutionRef,
        ExecutionState, ListExecutionsRequest, PollerInfo, ProtocolError, TaskQueueDescription,
        TaskTarget, MAX_LIST_EXECUTIONS_LIMIT, MAX_LIST_TASK_QUEUES,
    },
    workflow::{WorkflowState, WorkflowTask},
};
use tokio::sync::oneshot;

use super::{
    metrics::{ActivityEvent, Event, WorkflowEvent},
    workflows,
};
use crate::{
    store::{ExecutionRecord, QueueRecord, RunRecord, StoreError, TimerKind, TimerRecord, Tx},
    token::{TokenError, TokenSigner},
};

/// Scope of standalone activities (a workflow run's id scopes its activities).
pub(crate) const STANDALONE_SCOPE: &str = "";

/// In-memory wake-ups to send once the transaction is committed.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Queues whose pollers should look again, with the number of attempts that
    /// became dispatchable on each (that many pollers are woken, not all).
    pub(crate) queues: Vec<(String, usize)>,
    /// Executions that became final (keys and their scoped ids).
    pub(crate) closed: Vec<String>,
    /// Earliest timer set in this transaction.
    pub(crate) earliest_timer: Option<i64>,
    /// Queues whose workflow task pollers should look again.
    pub(crate) workflow_queues: Vec<String>,
    /// Workflow runs that closed (their run ids).
    pub(crate) runs_closed: Vec<String>,
    /// Attempts started for a waiting poller, sent to it once committed.
    pub(crate) handoffs: Vec<(oneshot::Sender<Vec<ActivityTask>>, Vec<ActivityTask>)>,
    /// Workflow tasks started for a waiting poller, sent to it once committed.
    pub(crate) workflow_handoffs: Vec<(oneshot::Sender<WorkflowTask>, WorkflowTask)>,
    /// What to count once committed.
    pub(crate) metrics: Vec<Event>,
    /// The history limits the workflow rules apply (from the engine's config).
    pub(crate) history: workflows::HistoryLimits,
}

impl Effects {
    /// One attempt became dispatchable on `queue`.
    pub(crate) fn wake_queue(&mut self, queue: &str) {
        match self.queues.iter_mut().find(|(q, _)| q == queue) {
            Some((_, count)) => *count += 1,
            None => self.queues.push((queue.to_owned(), 1)),
        }
    }

    pub(crate) fn wake_workflow_queue(&mut self, queue: &str) {
        if !self.workflow_queues.iter().any(|q| q == queue) {
            self.workflow_queues.push(queue.to_owned());
        }
    }

    pub(crate) fn timer_set(&mut self, due: i64) {
        self.earliest_timer = Some(self.earliest_timer.map_or(due, |t| t.min(due)));
    }

    /// Counts `what` happening to `run` once committed.
    pub(crate) fn count_run(&mut self, run: &RunRecord, what: WorkflowEvent) {
        self.metrics.push(Event::Workflow {
            what,
            workflow_type: run.workflow_type.clone(),
            task_queue: run.task_queue.clone(),
        });
    }

    /// Counts `what` happening to `exec` once committed.
    pub(crate) fn count(&mut self, exec: &ExecutionRecord, what: ActivityEvent) {
        self.metrics.push(Event::Activity {
            what,
            activity_type: exec.activity_type.clone(),
            task_queue: exec.task_queue.clone(),
        });
    }
}

/// The key outcome waiters are registered under.
pub(crate) fn waiter_key(scope: &str, activity_id: &str) -> String {
    format!("{scope}\u{0}{activity_id}")
}

impl From<StoreError> for ProtocolError {
    fn from(err: StoreError) -> Self {
        if err.is_retryable() {
            ProtocolError::Unavailable {
                message: err.to_string(),
            }
        } else {
            ProtocolError::Internal {
                message: err.to_string(),
            }
        }
    }
}

pub(crate) fn set_timer(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &ExecutionRecord,
    kind: TimerKind,
    due_at: i64,
) -> Result<(), StoreError> {
    tx.set_timer(&TimerRecord {
        execution_key: exec.key,
        kind,
        attempt: exec.attempt,
        due_at,
    })?;
    fx.timer_set(due_at);
    Ok(())
}

pub(crate) fn ms(d: Duration) -> i64 {
    duration_millis(d)
}

/// The scope of an execution reference: `""` for a standalone activity, the run
/// id for an activity of a workflow run (the latest run of the workflow id when
/// the reference names no run).
pub(crate) fn scope_of(tx: &mut dyn Tx, execution: &ExecutionRef) -> Result<String, ProtocolError> {
    let run = match (&execution.workflow_id, &execution.workflow_run_id) {
        (None, None) => return Ok(STANDALONE_SCOPE.to_owned()),
        (workflow_id, Some(run_id)) => tx
            .run_by_id(run_id)?
            .filter(|run| workflow_id.as_ref().is_none_or(|w| *w == run.workflow_id)),
        (Some(workflow_id), None) => tx.latest_run(workflow_id)?,
    };
    run.map(|run| run.run_id)
        .ok_or_else(|| ProtocolError::NotFound {
            what: format!("the workflow run of {execution}"),
        })
}

/// A new execution: SCHEDULED, attempt 1, with its timers.
pub(crate) fn schedule(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    mut exec: ExecutionRecord,
) -> Result<ExecutionRecord, ProtocolError> {
    if let Some(existing) = tx.execution_by_id(&exec.scope, &exec.activity_id)? {
        return Err(ProtocolError::AlreadyExists {
            what: format!(
                "{} (state {}, attempt {})",
                describe_ref(&existing),
                existing.state,
                existing.attempt
            ),
        });
    }
    exec.key = tx.insert_execution(&exec)?;
    let now = exec.scheduled_at;
    if let Some(total) = exec.options.schedule_to_close {
        set_timer(
            tx,
            fx,
            &exec,
            TimerKind::ScheduleToClose,
            now.saturating_add(ms(total)),
        )?;
    }
    if let Some(wait) = exec.options.schedule_to_start {
        set_timer(
            tx,
            fx,
            &exec,
            TimerKind::ScheduleToStart,
            now.saturating_add(ms(wait)),
        )?;
    }
    if tx.queue(&exec.task_queue)?.is_none() {
        tx.put_queue(&QueueRecord {
            name: exec.task_queue.clone(),
            rate_limit: None,
            bucket_tokens: 0.0,
            bucket_at: now,
        })?;
    }
    fx.wake_queue(&exec.task_queue);
    fx.count(&exec, ActivityEvent::Scheduled);
    Ok(exec)
}

/// What a claim found.
pub(crate) enum Claim {
    /// One or more attempts (oldest first), now STARTED by the poller.
    Tasks(Vec<ActivityTask>),
    /// Nothing dispatchable; the earliest time something will be (backoff), if any.
    Empty(Option<i64>),
    /// The queue's rate limit allows the next dispatch at this time.
    RateLimited(i64),
}

/// Refills the queue's token bucket to `now`; burst = max(1, rate).
fn refill(queue: &mut QueueRecord, now: i64) {
    if let Some(rate) = queue.rate_limit {
        let elapsed = now.saturating_sub(queue.bucket_at).max(0) as f64 / 1000.0;
        queue.bucket_tokens = (queue.bucket_tokens + elapsed * rate).min(rate.max(1.0));
    }
    queue.bucket_at = now;
}

/// A claim of several attempts stops adding more once their payloads reach this
/// size, so one poll's answer stays well under any message limit.
const CLAIM_BYTES: usize = 4 * 1024 * 1024;

/// Who claims work: a poller of a task queue, and how much it takes at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Poller<'a> {
    pub(crate) task_queue: &'a str,
    pub(crate) identity: &'a str,
    /// The most tasks one claim hands over (at least one is always allowed).
    pub(crate) max: usize,
}

/// Claims up to `poller.max` of the oldest dispatchable attempts of its queue (at
/// least one), within the queue's rate limit, in the same transaction that starts
/// them.
pub(crate) fn claim(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    poller: &Poller<'_>,
    rate_limit: Option<f64>,
    now: i64,
) -> Result<Claim, ProtocolError> {
    let Poller {
        task_queue,
        identity,
        max,
    } = *poller;
    let stored = tx.queue(task_queue)?;
    // A queue without a rate limit has no bucket to keep: its row is written
    // only when it is new or gets a limit (one write less per claim).
    let unlimited = stored.as_ref().is_some_and(|q| q.rate_limit.is_none()) && rate_limit.is_none();
    let mut queue = stored.unwrap_or_else(|| QueueRecord {
        name: task_queue.to_owned(),
        rate_limit: None,
        bucket_tokens: 0.0,
        bucket_at: now,
    });
    refill(&mut queue, now);
    if let Some(rate) = rate_limit {
        if queue.rate_limit != Some(rate) {
            queue.rate_limit = Some(rate);
            queue.bucket_tokens = queue.bucket_tokens.min(rate.max(1.0));
        }
    }
    tx.touch_poller(task_queue, identity, now)?;
    let mut tasks = Vec::new();
    let mut bytes = 0;
    let mut workflow_types = Vec::new();
    let outcome = loop {
        if tasks.len() >= max.max(1) || bytes >= CLAIM_BYTES {
            break None;
        }
        if let Some(rate) = queue.rate_limit {
            if queue.bucket_tokens < 1.0 {
                let missing = 1.0 - queue.bucket_tokens;
                let wait_ms = ((missing / rate) * 1000.0).ceil().max(1.0) as i64;
                break Some(Claim::RateLimited(now.saturating_add(wait_ms)));
            }
        }
        let Some(exec) = tx.next_dispatchable(task_queue, now)? else {
            break Some(Claim::Empty(tx.next_dispatch_time(task_queue, now)?));
        };
        if queue.rate_limit.is_some() {
            queue.bucket_tokens -= 1.0;
        }
        let task = start_attempt(tx, fx, signer, exec, identity, &mut workflow_types, now)?;
        bytes += task.input.iter().map(Payload::len).sum::<usize>()
            + task.last_heartbeat_details.as_ref().map_or(0, Payload::len);
        tasks.push(task);
    };
    if !unlimited {
        tx.put_queue(&queue)?;
    }
    Ok(match outcome {
        Some(empty) if tasks.is_empty() => empty,
        _ => Claim::Tasks(tasks),
    })
}

/// Starts one claimed attempt for `identity` and builds its task.
/// `workflow_types` remembers the type of each run seen in this claim.
fn start_attempt(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    mut exec: ExecutionRecord,
    identity: &str,
    workflow_types: &mut Vec<(String, Option<String>)>,
    now: i64,
) -> Result<ActivityTask, ProtocolError> {
    exec.state = ExecutionState::Started;
    exec.started_at = Some(now);
    exec.worker_identity = Some(identity.to_owned());
    let waited_ms = now.saturating_sub(exec.attempt_scheduled_at);
    fx.count(&exec, ActivityEvent::Started { waited_ms });
    // These timers exist only with a schedule-to-start bound, and only for a
    // retry (its backoff): two statements less per claim otherwise.
    if exec.options.schedule_to_start.is_some() {
        tx.clear_timer(exec.key, TimerKind::ScheduleToStart)?;
    }
    if exec.attempt > 1 {
        tx.clear_timer(exec.key, TimerKind::Dispatch)?;
    }
    set_timer(
        tx,
        fx,
        &exec,
        TimerKind::StartToClose,
        now.saturating_add(ms(exec.options.start_to_close)),
    )?;
    if let Some(hb) = exec.options.heartbeat_timeout {
        set_timer(
            tx,
            fx,
            &exec,
            TimerKind::Heartbeat,
            now.saturating_add(ms(hb)),
        )?;
    }
    tx.update_execution(&exec)?;

    let token = signer.sign(exec.key, exec.attempt);
    let mut info = ActivityInfo::new(&exec.activity_type, &exec.activity_id, &exec.task_queue);
    info.attempt = exec.attempt;
    info.workflow_id = exec.workflow_id.clone();
    info.workflow_run_id = exec.workflow_run_id.clone();
    if let Some(run_id) = &exec.workflow_run_id {
        info.workflow_type = match workflow_types.iter().find(|(id, _)| id == run_id) {
            Some((_, known)) => known.clone(),
            None => {
                let found = tx.run_by_id(run_id)?.map(|run| run.workflow_type);
                workflow_types.push((run_id.clone(), found.clone()));
                found
            }
        };
    }
    info.scheduled_time = from_millis(exec.scheduled_at);
    info.current_attempt_scheduled_time = from_millis(exec.attempt_scheduled_at);
    info.started_time = from_millis(now);
    let attempt_deadline = now.saturating_add(ms(exec.options.start_to_close));
    let deadline = match exec.options.schedule_to_close {
        Some(total) => attempt_deadline.min(exec.scheduled_at.saturating_add(ms(total))),
        None => attempt_deadline,
    };
    info.deadline = Some(from_millis(deadline));
    info.heartbeat_timeout = exec.options.heartbeat_timeout;
    info.task_token = token.clone();
    Ok(
        ActivityTask::new(token, info, exec.input, exec.heartbeat_details)
            .with_trace_context(exec.trace_context),
    )
}

fn describe_ref(exec: &ExecutionRecord) -> String {
    match (&exec.workflow_id, &exec.workflow_run_id) {
        (Some(workflow_id), Some(run_id)) => format!(
            "activity `{}` of workflow `{workflow_id}` run `{run_id}`",
            exec.activity_id
        ),
        _ => format!("standalone activity `{}`", exec.activity_id),
    }
}

/// The execution whose current, STARTED attempt `target` designates.
pub(crate) fn started_attempt(
    tx: &mut dyn Tx,
    signer: &TokenSigner,
    target: &TaskTarget,
) -> Result<ExecutionRecord, ProtocolError> {
    match target {
        TaskTarget::Token(token) => {
            let (key, attempt) = verify(signer, token)?;
            let exec = tx.execution(key)?.ok_or_else(|| ProtocolError::NotFound {
                what: format!("the execution of task token {}", short(token)),
            })?;
            let what = format!("attempt {attempt} of {}", describe_ref(&exec));
            if exec.state.is_final() {
                return Err(ProtocolError::AlreadyClosed {
                    what,
                    reason: final_reason(&exec),
                });
            }
            if attempt < exec.attempt {
                let timed_out = match &exec.last_failure {
                    Some(Failure::Timeout(t)) if attempt + 1 == exec.attempt => Some(t.kind),
                    _ => None,
                };
                return Err(ProtocolError::AlreadyClosed {
                    what,
                    reason: timed_out.map_or(
                        ClosedReason::AttemptSuperseded,
                        ClosedReason::AttemptTimedOut,
                    ),
                });
            }
            if attempt > exec.attempt || exec.state != ExecutionState::Started {
                return Err(ProtocolError::NotFound { what });
            }
            Ok(exec)
        }
        TaskTarget::Execution(execution) => {
            let scope = scope_of(tx, execution)?;
            let exec = tx
                .execution_by_id(&scope, &execution.activity_id)?
                .ok_or_else(|| ProtocolError::NotFound {
                    what: execution.to_string(),
                })?;
            if exec.state.is_final() {
                return Err(ProtocolError::AlreadyClosed {
                    what: describe_ref(&exec),
                    reason: final_reason(&exec),
                });
            }
            if exec.state != ExecutionState::Started {
                return Err(ProtocolError::NotFound {
                    what: format!(
                        "a started attempt of {} (it is {}, attempt {})",
                        describe_ref(&exec),
                        exec.state,
                        exec.attempt
                    ),
                });
            }
            Ok(exec)
        }
    }
}

/// Why the final execution `exec` takes no more reports: its workflow run
/// closed (§1.5), or it is final in its state.
fn final_reason(exec: &ExecutionRecord) -> ClosedReason {
    match &exec.last_failure {
        Some(Failure::Canceled(CanceledFailure {
            workflow_closed: Some(run_state),
            ..
        })) => ClosedReason::WorkflowClosed(*run_state),
        _ => ClosedReason::ExecutionClosed(exec.state),
    }
}

/// The timeout that the engine's own deadlines say the started attempt of
/// `exec` has reached at `now`, from its recorded start and last recorded
/// heartbeat (docs/semantics.md §1.4), even when its timer has not fired yet.
fn overdue(exec: &ExecutionRecord, now: i64) -> Option<TimeoutKind> {
    let started = exec.started_at?;
    if now >= started.saturating_add(ms(exec.options.start_to_close)) {
        return Some(TimeoutKind::StartToClose);
    }
    let heartbeat_timeout = exec.options.heartbeat_timeout?;
    // The heartbeat time is kept across attempts: this attempt's start counts too.
    let last_beat = exec.last_heartbeat_at.map_or(started, |at| at.max(started));
    (now >= last_beat.saturating_add(ms(heartbeat_timeout))).then_some(TimeoutKind::Heartbeat)
}

/// What a worker reports of its attempt.
#[derive(Clone, Copy)]
pub(crate) enum Report<'a> {
    Completed(&'a Payload),
    Failed(&'a ApplicationFailure),
    Canceled(&'a Option<Payload>),
}

/// Like [`started_attempt`], but a report that repeats, by the attempt's own
/// token, exactly what that attempt already reported answers `Ok(None)`:
/// success, changing nothing. A worker or client whose first answer was lost (a
/// node died after committing it) sends the same report again, to any node
/// (SEMANTICS 1.2, 5); any other report of a closed attempt is still refused.
pub(crate) fn attempt_to_report(
    tx: &mut dyn Tx,
    signer: &TokenSigner,
    target: &TaskTarget,
    report: Report<'_>,
) -> Result<Option<ExecutionRecord>, ProtocolError> {
    let refused = match started_attempt(tx, signer, target) {
        Err(refused @ ProtocolError::AlreadyClosed { .. }) => refused,
        other => return other.map(Some),
    };
    let TaskTarget::Token(token) = target else {
        return Err(refused);
    };
    let (key, attempt) = verify(signer, token)?;
    let Some(exec) = tx.execution(key)? else {
        return Err(refused);
    };
    let repeated = match report {
        Report::Completed(result) => {
            exec.state == ExecutionState::Completed
                && exec.attempt == attempt
                && exec.result.as_ref() == Some(result)
        }
        Report::Canceled(details) => {
            exec.state == ExecutionState::Canceled
                && exec.attempt == attempt
                && matches!(&exec.last_failure, Some(Failure::Canceled(c)) if &c.details == details)
        }
        Report::Failed(failure) => {
            // Retried (the next attempt waits, not yet handed out) or final,
            // with this failure.
            let retried = exec.attempt == attempt + 1 && exec.state == ExecutionState::Scheduled;
            let failed_for_good = exec.attempt == attempt && exec.state == ExecutionState::Failed;
            (retried || failed_for_good)
                && matches!(&exec.last_failure, Some(Failure::Application(f)) if f == failure)
        }
    };
    if repeated {
        Ok(None)
    } else {
        Err(refused)
    }
}

fn short(token: &TaskToken) -> String {
    let hex = token.to_hex();
    if hex.len() > 16 {
        format!("{}…", &hex[..16])
    } else {
        hex
    }
}

fn verify(signer: &TokenSigner, token: &TaskToken) -> Result<(i64, u32), ProtocolError> {
    signer
        .verify(token)
        .map_err(|e: TokenError| ProtocolError::InvalidToken {
            reason: e.to_string(),
        })
}

/// Records a heartbeat; answers whether cancellation was requested.
pub(crate) fn heartbeat(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    target: &TaskTarget,
    details: Option<Payload>,
    now: i64,
) -> Result<bool, ProtocolError> {
    let mut exec = started_attempt(tx, signer, target)?;
    if details.is_some() {
        exec.heartbeat_details = details;
    }
    exec.last_heartbeat_at = Some(now);
    if let Some(hb) = exec.options.heartbeat_timeout {
        set_timer(
            tx,
            fx,
            &exec,
            TimerKind::Heartbeat,
            now.saturating_add(ms(hb)),
        )?;
    }
    tx.update_execution(&exec)?;
    Ok(exec.cancel_requested)
}

/// Counts the end of `exec`'s attempt if it was started.
fn attempt_ended(fx: &mut Effects, exec: &ExecutionRecord, now: i64) {
    if let (ExecutionState::Started, Some(started)) = (exec.state, exec.started_at) {
        let ran_ms = now.saturating_sub(started);
        fx.count(exec, ActivityEvent::AttemptEnded { ran_ms });
    }
}

/// Makes the execution final; an activity of a workflow run reports its outcome
/// to the run's history in the same transaction (so exactly once).
fn close(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &mut ExecutionRecord,
    state: ExecutionState,
    now: i64,
) -> Result<(), ProtocolError> {
    attempt_ended(fx, exec, now);
    match state {
        ExecutionState::Completed => fx.count(exec, ActivityEvent::Completed),
        ExecutionState::Failed => fx.count(exec, ActivityEvent::Failed),
        ExecutionState::Canceled => fx.count(exec, ActivityEvent::Canceled),
        // Timeouts are counted where they fire, by kind.
        _ => {}
    }
    exec.state = state;
    exec.closed_at = Some(now);
    tx.clear_timers(exec.key)?;
    tx.update_execution(exec)?;
    fx.closed.push(waiter_key(&exec.scope, &exec.activity_id));
    workflows::activity_closed(tx, fx, exec, now)
}

/// Completes the started attempt `exec` (from [`started_attempt`]): COMPLETED
/// with its result.
pub(crate) fn complete_started(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    mut exec: ExecutionRecord,
    result: Payload,
    now: i64,
) -> Result<(), ProtocolError> {
    exec.result = Some(result);
    exec.retry_state = None;
    close(tx, fx, &mut exec, ExecutionState::Completed, now)
}

/// Acknowledges cancellation of the started attempt: CANCELED, after a cancel
/// request only (docs/semantics.md §1.4). Without one, an attempt past its
/// deadline ends in that timeout (and the retry decision runs); any other such
/// report is refused and changes nothing.
pub(crate) fn canceled(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    target: &TaskTarget,
    details: Option<Payload>,
    now: i64,
) -> Result<(), ProtocolError> {
    let Some(mut exec) = attempt_to_report(tx, signer, target, Report::Canceled(&details))? else {
        return Ok(());
    };
    if !exec.cancel_requested {
        return match overdue(&exec, now) {
            Some(kind) => time_out(tx, fx, &mut exec, kind, now),
            None => Err(ProtocolError::FailedPrecondition {
                what: format!("attempt {} of {}", exec.attempt, describe_ref(&exec)),
                message: "no cancellation was requested: report its result or a failure \
                          (a worker shutting down reports the retryable failure `WorkerShutdown`)"
                    .to_owned(),
            }),
        };
    }
    exec.last_failure = Some(Failure::Canceled(CanceledFailure::new(details)));
    exec.retry_state = Some(RetryState::CancelRequested);
    close(tx, fx, &mut exec, ExecutionState::Canceled, now)
}

/// Fails the started attempt with an application failure: retry or close.
pub(crate) fn fail(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    signer: &TokenSigner,
    target: &TaskTarget,
    failure: ApplicationFailure,
    last_heartbeat_details: Option<Payload>,
    now: i64,
) -> Result<(), ProtocolError> {
    let Some(mut exec) = attempt_to_report(tx, signer, target, Report::Failed(&failure))? else {
        return Ok(());
    };
    if last_heartbeat_details.is_some() {
        exec.heartbeat_details = last_heartbeat_details;
    }
    attempt_failed(tx, fx, &mut exec, Failure::Application(failure), now)
}

/// Times out the started attempt of `exec` (`kind`: start-to-close or
/// heartbeat) with the last recorded heartbeat details, then runs the retry
/// decision.
fn time_out(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &mut ExecutionRecord,
    kind: TimeoutKind,
    now: i64,
) -> Result<(), ProtocolError> {
    tracing::debug!(activity_id = %exec.activity_id, attempt = exec.attempt, ?kind, "attempt timed out");
    fx.count(exec, ActivityEvent::TimedOut(kind));
    let failure = Failure::Timeout(TimeoutFailure::new(kind, exec.heartbeat_details.clone()));
    attempt_failed(tx, fx, exec, failure, now)
}

/// The retry decision of docs/semantics.md §1.3 for a failed or timed-out started attempt.
/// A timeout keeps the previous attempt's failure as its cause.
fn attempt_failed(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &mut ExecutionRecord,
    failure: Failure,
    now: i64,
) -> Result<(), ProtocolError> {
    let failure = match (failure, exec.last_failure.take()) {
        (Failure::Timeout(timeout), Some(previous)) => {
            Failure::Timeout(timeout.with_cause(previous))
        }
        (failure, _) => failure,
    };
    let policy = &exec.options.retry_policy;
    let decision = if exec.cancel_requested {
        Err(RetryState::CancelRequested)
    } else {
        match &failure {
            Failure::Application(a)
                if a.non_retryable || policy.is_non_retryable_type(&a.error_type) =>
            {
                Err(RetryState::NonRetryableFailure)
            }
            _ if policy.attempts_exhausted(exec.attempt) => Err(RetryState::MaximumAttemptsReached),
            other => {
                let delay = match other {
                    Failure::Application(a) => a.next_retry_delay,
                    _ => None,
                }
                .unwrap_or_else(|| policy.backoff(exec.attempt));
                let next_start = now.saturating_add(ms(delay));
                match exec.options.schedule_to_close {
                    Some(total) if next_start >= exec.scheduled_at.saturating_add(ms(total)) => {
                        Err(RetryState::Timeout)
                    }
                    _ => Ok(next_start),
                }
            }
        }
    };
    match decision {
        Ok(next_start) => {
            attempt_ended(fx, exec, now);
            fx.count(exec, ActivityEvent::Retried);
            for kind in [
                TimerKind::StartToClose,
                TimerKind::Heartbeat,
                TimerKind::ScheduleToStart,
                TimerKind::Dispatch,
            ] {
                tx.clear_timer(exec.key, kind)?;
            }
            exec.attempt += 1;
            exec.state = ExecutionState::Scheduled;
            exec.attempt_scheduled_at = next_start;
            exec.started_at = None;
            exec.worker_identity = None;
            exec.last_failure = Some(failure);
            tx.update_execution(exec)?;
            if next_start > now {
                set_timer(tx, fx, exec, TimerKind::Dispatch, next_start)?;
            } else {
                fx.wake_queue(&exec.task_queue);
            }
            if let Some(wait) = exec.options.schedule_to_start {
                set_timer(
                    tx,
                    fx,
                    exec,
                    TimerKind::ScheduleToStart,
                    next_start.saturating_add(ms(wait)),
                )?;
            }
            Ok(())
        }
        Err(retry_state) => {
            let state = match failure {
                Failure::Timeout(_) => ExecutionState::TimedOut,
                Failure::Canceled(_) => ExecutionState::Canceled,
                _ => ExecutionState::Failed,
            };
            exec.last_failure = Some(failure);
            exec.retry_state = Some(retry_state);
            close(tx, fx, exec, state, now)
        }
    }
}

/// Requests cancellation; answers the state after the request.
pub(crate) fn request_cancel(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    execution: &ExecutionRef,
    now: i64,
) -> Result<ExecutionState, ProtocolError> {
    let exec = find(tx, execution)?;
    cancel_execution(tx, fx, exec, now)
}

/// Requests cancellation of `exec` (docs/semantics.md §1.5): a SCHEDULED execution becomes
/// CANCELED at once, a STARTED one is told through its heartbeat answers.
/// Answers the state after the request; refuses a final execution.
pub(crate) fn cancel_execution(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    mut exec: ExecutionRecord,
    now: i64,
) -> Result<ExecutionState, ProtocolError> {
    match exec.state {
        state if state.is_final() => Err(ProtocolError::AlreadyClosed {
            what: describe_ref(&exec),
            reason: ClosedReason::ExecutionClosed(state),
        }),
        ExecutionState::Scheduled => {
            exec.cancel_requested = true;
            // Attempt 1 still waiting: no worker ever started it (§1.5).
            let mut canceled = CanceledFailure::default();
            canceled.not_started = exec.attempt == 1;
            exec.last_failure = Some(Failure::Canceled(canceled));
            exec.retry_state = Some(RetryState::CancelRequested);
            close(tx, fx, &mut exec, ExecutionState::Canceled, now)?;
            Ok(ExecutionState::Canceled)
        }
        state => {
            if !exec.cancel_requested {
                exec.cancel_requested = true;
                tx.update_execution(&exec)?;
            }
            Ok(state)
        }
    }
}

/// Closes `exec`, not final, because the workflow run that scheduled it closed
/// in `run_state` (docs/semantics.md §1.5): CANCELED without a cancel request
/// (`cancel_requested` stays as it was), retry state `WorkflowClosed`. Its
/// running attempt learns it from its next heartbeat answer.
pub(crate) fn close_for_closed_run(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    mut exec: ExecutionRecord,
    run_state: WorkflowState,
    now: i64,
) -> Result<(), ProtocolError> {
    let mut canceled = CanceledFailure::default();
    canceled.not_started = exec.state == ExecutionState::Scheduled && exec.attempt == 1;
    canceled.workflow_closed = Some(run_state);
    exec.last_failure = Some(Failure::Canceled(canceled));
    exec.retry_state = Some(RetryState::WorkflowClosed);
    close(tx, fx, &mut exec, ExecutionState::Canceled, now)
}

/// The execution `execution` designates.
pub(crate) fn find(
    tx: &mut dyn Tx,
    execution: &ExecutionRef,
) -> Result<ExecutionRecord, ProtocolError> {
    let scope = scope_of(tx, execution)?;
    tx.execution_by_id(&scope, &execution.activity_id)?
        .ok_or_else(|| ProtocolError::NotFound {
            what: execution.to_string(),
        })
}

/// The outcome of a final execution.
///
/// Every transition to a final state records the result (COMPLETED) or the
/// failure and retry state (the others); the fallbacks below only matter for rows
/// written by hand, and keep a reader from panicking on them.
pub(crate) fn outcome(exec: &ExecutionRecord) -> Option<ExecutionOutcome> {
    match exec.state {
        ExecutionState::Completed => Some(ExecutionOutcome::Completed(
            exec.result.clone().unwrap_or_else(|| Payload {
                encoding: Default::default(),
                data: b"null".as_slice().into(),
            }),
        )),
        state if state.is_final() => Some(ExecutionOutcome::Failed(ActivityFailure::new(
            &exec.activity_type,
            &exec.activity_id,
            exec.attempt,
            exec.retry_state.unwrap_or(RetryState::NonRetryableFailure),
            exec.last_failure
                .clone()
                .unwrap_or_else(|| Failure::Canceled(CanceledFailure::default())),
        ))),
        _ => None,
    }
}

/// Describes an execution.
pub(crate) fn describe(exec: &ExecutionRecord) -> ExecutionDescription {
    let mut execution = ExecutionRef::standalone(&exec.activity_id);
    execution.workflow_id = exec.workflow_id.clone();
    execution.workflow_run_id = exec.workflow_run_id.clone();
    let mut d = ExecutionDescription::new(
        execution,
        &exec.activity_type,
        exec.state,
        exec.attempt,
        exec.options.clone(),
        from_millis(exec.scheduled_at),
    );
    d.current_attempt_scheduled_time = from_millis(exec.attempt_scheduled_at);
    d.started_time = exec.started_at.map(from_millis);
    d.worker_identity = exec.worker_identity.clone();
    d.last_heartbeat_time = exec.last_heartbeat_at.map(from_millis);
    d.heartbeat_details = exec.heartbeat_details.clone();
    d.last_failure = exec.last_failure.clone();
    d.retry_state = exec.retry_state;
    d.cancel_requested = exec.cancel_requested;
    d.close_time = exec.closed_at.map(from_millis);
    d.outcome = outcome(exec);
    d
}

/// Describes a task queue.
pub(crate) fn describe_queue(
    tx: &mut dyn Tx,
    name: &str,
    now: i64,
    poller_retention: Duration,
) -> Result<TaskQueueDescription, ProtocolError> {
    let (backlog, dispatchable) = tx.backlog(name, now)?;
    let pollers = tx
        .pollers(name, now.saturating_sub(ms(poller_retention)))?
        .into_iter()
        .map(|(identity, at)| PollerInfo::new(identity, from_millis(at)))
        .collect();
    let rate_limit = tx.queue(name)?.and_then(|q| q.rate_limit);
    let mut d = TaskQueueDescription::new(name);
    d.backlog = backlog;
    d.dispatchable = dispatchable;
    d.pollers = pollers;
    d.rate_limit = rate_limit;
    Ok(d)
}

/// Describes every task queue the store knows of, by name.
pub(crate) fn list_queues(
    tx: &mut dyn Tx,
    now: i64,
    poller_retention: Duration,
) -> Result<Vec<TaskQueueDescription>, ProtocolError> {
    tx.task_queue_names(MAX_LIST_TASK_QUEUES)?
        .iter()
        .map(|name| describe_queue(tx, name, now, poller_retention))
        .collect()
}

/// Describes the executions that match `request`, newest first.
pub(crate) fn list_executions(
    tx: &mut dyn Tx,
    request: &ListExecutionsRequest,
) -> Result<Vec<ExecutionDescription>, ProtocolError> {
    let limit = request.limit.min(MAX_LIST_EXECUTIONS_LIMIT);
    Ok(tx
        .list_executions(request, limit)?
        .iter()
        .map(describe)
        .collect())
}

/// Fires the timers due at `now` (at most `limit` of executions and `limit` of
/// workflow runs); answers the larger of the two counts (when it reaches `limit`,
/// more may be due) and the next due time.
pub(crate) fn fire_due_timers(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    now: i64,
    limit: usize,
) -> Result<(usize, Option<i64>), ProtocolError> {
    let due = tx.due_timers(now, limit)?;
    for timer in &due {
        tx.clear_timer(timer.execution_key, timer.kind)?;
        let Some(mut exec) = tx.execution(timer.execution_key)? else {
            continue;
        };
        fire(tx, fx, &mut exec, timer, now)?;
    }
    let workflow_due = tx.due_workflow_timers(now, limit)?;
    for timer in &workflow_due {
        workflows::fire_timer(tx, fx, timer, now)?;
    }
    Ok((due.len().max(workflow_due.len()), tx.next_timer_due()?))
}

fn fire(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    exec: &mut ExecutionRecord,
    timer: &TimerRecord,
    now: i64,
) -> Result<(), ProtocolError> {
    if exec.state.is_final() {
        return Ok(());
    }
    let current = timer.attempt == exec.attempt;
    let timeout = |kind, exec: &ExecutionRecord| {
        Failure::Timeout(TimeoutFailure::new(kind, exec.heartbeat_details.clone()))
    };
    match timer.kind {
        TimerKind::ScheduleToClose => {
            fx.count(exec, ActivityEvent::TimedOut(TimeoutKind::ScheduleToClose));
            exec.last_failure = Some(timeout(TimeoutKind::ScheduleToClose, exec));
            exec.retry_state = Some(RetryState::Timeout);
            tracing::debug!(activity_id = %exec.activity_id, "schedule-to-close timeout");
            close(tx, fx, exec, ExecutionState::TimedOut, now)?;
        }
        TimerKind::ScheduleToStart if current && exec.state == ExecutionState::Scheduled => {
            fx.count(exec, ActivityEvent::TimedOut(TimeoutKind::ScheduleToStart));
            exec.last_failure = Some(timeout(TimeoutKind::ScheduleToStart, exec));
            exec.retry_state = Some(RetryState::Timeout);
            tracing::debug!(activity_id = %exec.activity_id, attempt = exec.attempt, "schedule-to-start timeout");
            close(tx, fx, exec, ExecutionState::TimedOut, now)?;
        }
        TimerKind::StartToClose | TimerKind::Heartbeat
            if current && exec.state == ExecutionState::Started =>
        {
            let kind = if timer.kind == TimerKind::Heartbeat {
                TimeoutKind::Heartbeat
            } else {
                TimeoutKind::StartToClose
            };
            time_out(tx, fx, exec, kind, now)?;
        }
        TimerKind::Dispatch if current && exec.state == ExecutionState::Scheduled => {
            fx.wake_queue(&exec.task_queue);
        }
        _ => {}
    }
    Ok(())
}

/// A new SCHEDULED record for attempt 1.
pub(crate) fn new_record(
    activity_id: String,
    activity_type: String,
    input: Vec<Payload>,
    options: ValidatedOptions,
    now: i64,
) -> ExecutionRecord {
    ExecutionRecord {
        key: 0,
        scope: STANDALONE_SCOPE.to_owned(),
        activity_id,
        workflow_id: None,
        workflow_run_id: None,
        workflow_seq: None,
        activity_type,
        task_queue: options.task_queue.clone(),
        input,
        options,
        state: ExecutionState::Scheduled,
        attempt: 1,
        scheduled_at: now,
        attempt_scheduled_at: now,
        started_at: None,
        worker_identity: None,
        heartbeat_details: None,
        last_heartbeat_at: None,
        cancel_requested: false,
        last_failure: None,
        retry_state: None,
        result: None,
        closed_at: None,
        trace_context: None,
    }
}
