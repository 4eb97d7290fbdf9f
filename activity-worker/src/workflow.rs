//! The workflow executor: runs workflow tasks, keeps instances in a bounded cache
//! between tasks, and replays the history after a crash or an eviction.
//!
//! A task carries the run's history: the whole of it, or, when this worker ran the
//! run's previous task, only the events after that task's `WorkflowTaskStarted`
//! (the first event's id tells). A cached instance continues with those events;
//! without one (evicted, restarted, another worker with the same identity) the
//! executor fetches the whole history and replays it. It applies events in order
//! to a run (a cached instance continues where it stopped). At each
//! `WorkflowTaskStarted` it runs the code until it blocks (an *activation*):
//! - a past activation (followed by `WorkflowTaskCompleted`) is replayed: the
//!   commands the code produces must match the command events recorded after it,
//!   one by one, or the task fails with an error naming the expected event and the
//!   command found (nondeterminism); the workflow itself is not failed;
//! - the last activation is the current task: its commands are the answer.
//!
//! The code runs with the context's replay flag set during past activations
//! (so its logger stays quiet), and under two guards: a panic fails the task
//! with its message, and code left pending while no future of the context waits
//! (it awaits a real sleep, I/O, a tokio channel or task) fails the task with a
//! determinism error instead of hanging (docs/semantics.md §3.1). A failed task drops
//! the instance; the run's next task replays.
//!
//! Local activities are run here, between polls of the code, and recorded as
//! commands; on replay their outcomes come from history and the functions are not
//! run again. Activities already resolved in history are never scheduled again:
//! their commands match recorded events and are not sent.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Wake, Waker},
};

use activity_core::{
    context::TaskToken,
    failure::error_types,
    workflow::{
        history::describe_event, registered_workflows, ChildWorkflowCause, Command, EventKind,
        HistoryEvent, LocalActivityOutcome, LocalActivityRequest, QueryAnswer, QueryTask,
        RunDriver, WorkflowInfo, WorkflowRef, WorkflowRegistration, WorkflowTask,
    },
    ActivityContext, ActivityError, ActivityFailure, ActivityProtocol, ApplicationFailure, Failure,
    Payload, Registry, RetryState, TimeoutFailure, TimeoutKind, WorkflowError,
};

use crate::worker::panic_message;

type RunFuture = Pin<Box<dyn Future<Output = Result<Payload, WorkflowError>> + Send>>;

/// One workflow run held in memory between tasks.
struct Instance {
    driver: RunDriver,
    future: Option<RunFuture>,
    /// History events applied so far (the id of the last one).
    applied: usize,
    /// The run's task queue (its local activities report it).
    task_queue: String,
    /// Where the `WorkflowTaskCompleted` of the last answered task must appear.
    expect_completed_at: Option<usize>,
}

/// Runs workflow tasks. Shared by the worker's workflow pollers.
pub(crate) struct WorkflowExecutor {
    workflows: HashMap<&'static str, &'static WorkflowRegistration>,
    registry: Registry,
    cache: Mutex<Cache>,
}

struct Cache {
    capacity: usize,
    instances: HashMap<String, Instance>,
    order: VecDeque<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a workflow task failed (its commands are not sent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TaskError {
    #[error("nondeterminism in workflow `{workflow_type}` (run `{run_id}`): {detail}")]
    Nondeterminism {
        workflow_type: String,
        run_id: String,
        detail: String,
    },
    /// The code waits on a future that the context does not drive (docs/semantics.md
    /// §3.1): nothing would ever wake it.
    #[error(
        "determinism error in workflow `{workflow_type}` (run `{run_id}`): it awaited a future not driven by \
         WorkflowContext (a real sleep, I/O, a tokio channel or a spawned task), which replay cannot \
         reproduce and nothing would wake: use ctx.sleep for timers, activities for I/O and \
         signals for messages from outside; the task is retried once fixed code is deployed"
    )]
    ForeignAwait {
        workflow_type: String,
        run_id: String,
    },
    /// The code panicked; the task is retried (the workflow is not failed).
    #[error("workflow `{workflow_type}` (run `{run_id}`) panicked: {message}")]
    Panicked {
        workflow_type: String,
        run_id: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl WorkflowExecutor {
    /// Every registered workflow, checked for duplicate names.
    pub(crate) fn new(registry: Registry, cache_capacity: usize) -> Result<Self, String> {
        let mut workflows: HashMap<&'static str, &'static WorkflowRegistration> = HashMap::new();
        let mut problems = Vec::new();
        let mut all: Vec<_> = registered_workflows().collect();
        all.sort_by_key(|w| (w.name(), w.location()));
        for workflow in all {
            if let Some(first) = workflows.get(workflow.name()) {
                problems.push(format!(
                    "two workflows are named `{}`: one at {}, one at {}; give one of them another name with #[workflow(name = \"…\")]",
                    workflow.name(),
                    first.location(),
                    workflow.location()
                ));
            } else {
                workflows.insert(workflow.name(), workflow);
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(Self {
            workflows,
            registry,
            cache: Mutex::new(Cache {
                capacity: cache_capacity,
                instances: HashMap::new(),
                order: VecDeque::new(),
            }),
        })
    }

    /// Whether this program has any workflow to run.
    pub(crate) fn has_workflows(&self) -> bool {
        !self.workflows.is_empty()
    }

    /// The names of the workflows it runs, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workflows.keys().map(|n| (*n).to_owned()).collect();
        names.sort();
        names
    }

    /// Number of cached instances (for tests and metrics).
    pub(crate) fn cached(&self) -> usize {
        lock(&self.cache).instances.len()
    }

    /// Forgets every cached instance: the next task of each run replays it.
    pub(crate) fn evict_all(&self) {
        let mut cache = lock(&self.cache);
        cache.instances.clear();
        cache.order.clear();
    }

    /// Answers a query (docs/semantics.md §3.1) from the run's cached instance,
    /// or else from an instance replayed up to the run's last completed
    /// workflow task (then dropped). Nothing is sent but the answer.
    pub(crate) async fn answer_query(&self, query: &QueryTask) -> QueryAnswer {
        let cached = {
            let cache = lock(&self.cache);
            cache
                .instances
                .get(&query.run_id)
                .map(|instance| answer_with(&instance.driver, &query.query_name))
        };
        if let Some(answer) = cached {
            return answer;
        }
        // Up to the commands of the last completed task: the state the code
        // had when it last answered.
        let end = query
            .history
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. }))
            .map(|at| {
                at + 1
                    + query.history[at + 1..]
                        .iter()
                        .take_while(|e| e.kind.is_command())
                        .count()
            });
        let Some(end) = end else {
            return QueryAnswer::Failed(format!(
                "the run has completed no workflow task yet, so its code has registered no query handler (query `{}`)",
                query.query_name
            ));
        };
        let task = WorkflowTask::new(
            TaskToken::from_bytes(Vec::new()),
            query.workflow_id.clone(),
            query.run_id.clone(),
            query.workflow_type.clone(),
            query.history[..end].to_vec(),
        );
        let mut instance = match self.new_instance(&task) {
            Ok(instance) => instance,
            Err(err) => return QueryAnswer::Failed(err.to_string()),
        };
        for event in &task.history {
            if let EventKind::LocalActivityRecorded { seq, outcome, .. } = &event.kind {
                instance.driver.preload_local_outcome(*seq, outcome.clone());
            }
        }
        match self.apply(&mut instance, &task, 0, true).await {
            Ok(_) => answer_with(&instance.driver, &query.query_name),
            Err(err) => QueryAnswer::Failed(format!("replaying the history failed: {err}")),
        }
    }

    /// Runs one workflow task; answers its commands. `protocol` gives the whole
    /// history when the task carries only its end and no cached instance has the
    /// rest.
    pub(crate) async fn run_task(
        &self,
        mut task: WorkflowTask,
        protocol: &dyn ActivityProtocol,
    ) -> Result<Vec<Command>, TaskError> {
        let cached = {
            let mut cache = lock(&self.cache);
            cache.order.retain(|id| id != &task.run_id);
            cache.instances.remove(&task.run_id)
        };
        // Events before `task.history` (0: it is the whole history).
        let mut base = task.history.first().map_or(0, |e| {
            usize::try_from(e.event_id)
                .unwrap_or(usize::MAX)
                .saturating_sub(1)
        });
        let mut instance = match cached.filter(|i| i.continues(base, &task.history)) {
            Some(instance) => instance,
            None => {
                if base > 0 {
                    task.history = whole_history(&task, protocol).await?;
                    base = 0;
                }
                self.new_instance(&task)?
            }
        };
        let history = &task.history;
        let mut from = instance.applied - base;
        if instance.expect_completed_at.is_some() {
            // A cached instance's own last answer: its local activity records are
            // already applied (a backoff taken again would never run the retry).
            if let Some(EventKind::WorkflowTaskCompleted { .. }) =
                history.get(from).map(|e| &e.kind)
            {
                from += 1;
                while history.get(from).is_some_and(|e| e.kind.is_command()) {
                    from += 1;
                }
            }
        }
        for event in &history[from..] {
            if let EventKind::LocalActivityRecorded { seq, outcome, .. } = &event.kind {
                instance.driver.preload_local_outcome(*seq, outcome.clone());
            }
        }
        let commands = self.apply(&mut instance, &task, base, false).await?;
        instance.applied = base + task.history.len();
        instance.expect_completed_at = Some(instance.applied);
        // A run still going stays cached, unless the cache holds nothing (then
        // every task replays the history from the start).
        let mut cache = lock(&self.cache);
        if instance.future.is_some() && cache.capacity > 0 {
            while cache.instances.len() >= cache.capacity {
                match cache.order.pop_front() {
                    Some(oldest) => {
                        cache.instances.remove(&oldest);
                    }
                    None => break,
                }
            }
            cache.order.push_back(task.run_id.clone());
            cache.instances.insert(task.run_id.clone(), instance);
        }
        Ok(commands)
    }

    fn new_instance(&self, task: &WorkflowTask) -> Result<Instance, TaskError> {
        let Some(first) = task.history.first() else {
            return Err(TaskError::Invalid(
                "the workflow task has an empty history".into(),
            ));
        };
        let EventKind::WorkflowStarted {
            workflow_type,
            task_queue,
            input,
            original_run_id,
            parent,
            ..
        } = &first.kind
        else {
            return Err(TaskError::Invalid(format!(
                "history starts with {} instead of WorkflowStarted",
                first.kind.name()
            )));
        };
        let Some(registration) = self.workflows.get(workflow_type.as_str()) else {
            let mut known: Vec<_> = self.workflows.keys().copied().collect();
            known.sort_unstable();
            return Err(TaskError::Invalid(format!(
                "workflow type `{workflow_type}` is not registered on this worker; registered types: [{}]",
                known.join(", ")
            )));
        };
        let driver = RunDriver::new(
            WorkflowInfo::new(
                task.workflow_id.clone(),
                task.run_id.clone(),
                workflow_type.clone(),
                task_queue.clone(),
            )
            .with_original_run_id(original_run_id.clone())
            .with_parent(parent.clone()),
            first.time,
        );
        let future = registration.start(driver.context(), input);
        Ok(Instance {
            driver,
            future: Some(future),
            applied: 1,
            task_queue: task_queue.clone(),
            expect_completed_at: None,
        })
    }

    /// Applies the events not applied yet; replays past activations and runs the
    /// current one.
    ///
    /// `for_query`: the history ends after a completed task's commands (a
    /// query's replay), not with a task's `WorkflowTaskStarted`.
    async fn apply(
        &self,
        instance: &mut Instance,
        task: &WorkflowTask,
        base: usize,
        for_query: bool,
    ) -> Result<Vec<Command>, TaskError> {
        let history = &task.history;
        let mut index = instance.applied - base;
        while index < history.len() {
            let event = &history[index];
            match &event.kind {
                EventKind::ActivityCompleted { seq, result } => {
                    instance.driver.resolve_activity(*seq, Ok(result.clone()));
                }
                EventKind::ActivityFailed { seq, failure } => {
                    instance.driver.resolve_activity(*seq, Err(failure.clone()));
                }
                EventKind::TimerFired { seq } => {
                    instance.driver.fire_timer(*seq);
                }
                EventKind::WorkflowCancelRequested => instance.driver.request_cancel(),
                EventKind::WorkflowSignaled {
                    signal_name, input, ..
                } => instance.driver.signal(signal_name, input.clone()),
                EventKind::ExternalSignalResolved { seq, error } => {
                    instance.driver.resolve_external_signal(*seq, error.clone());
                }
                EventKind::ChildWorkflowStarted { seq, run_id, .. } => {
                    instance.driver.child_started(*seq, run_id);
                }
                EventKind::StartChildWorkflowFailed { seq, message, .. } => {
                    instance.driver.child_start_failed(*seq, message);
                }
                EventKind::ChildWorkflowCompleted { seq, result } => {
                    instance.driver.child_closed(*seq, Ok(result.clone()));
                }
                EventKind::ChildWorkflowFailed { seq, failure } => {
                    let cause = ChildWorkflowCause::Failed(Box::new(failure.clone()));
                    instance.driver.child_closed(*seq, Err(cause));
                }
                EventKind::ChildWorkflowCanceled { seq } => {
                    instance
                        .driver
                        .child_closed(*seq, Err(ChildWorkflowCause::Canceled));
                }
                EventKind::ChildWorkflowTerminated { seq, reason } => {
                    let cause = ChildWorkflowCause::Terminated {
                        reason: reason.clone(),
                    };
                    instance.driver.child_closed(*seq, Err(cause));
                }
                EventKind::ChildWorkflowTimedOut { seq, timeout } => {
                    let cause = ChildWorkflowCause::TimedOut { timeout: *timeout };
                    instance.driver.child_closed(*seq, Err(cause));
                }
                EventKind::WorkflowTaskStarted { .. } => {
                    instance.driver.set_now(event.time);
                    match history.get(index + 1).map(|e| &e.kind) {
                        None => return self.activate(instance, task, false).await,
                        Some(EventKind::WorkflowTaskCompleted { .. }) => {
                            let produced = self.activate(instance, task, true).await?;
                            let recorded: Vec<&HistoryEvent> = history[index + 2..]
                                .iter()
                                .take_while(|e| e.kind.is_command())
                                .collect();
                            check_replay(task, &produced, &recorded)?;
                            index += 2 + recorded.len();
                            continue;
                        }
                        // That attempt's answer was lost: its commands were never recorded.
                        Some(_) => {}
                    }
                }
                _ => {}
            }
            index += 1;
        }
        if for_query {
            return Ok(Vec::new());
        }
        Err(TaskError::Invalid(
            "the history does not end with the task's WorkflowTaskStarted".into(),
        ))
    }

    /// Runs the code until it blocks, running (or, on replay, taking from history)
    /// the local activities it asks for. Returns the commands produced.
    async fn activate(
        &self,
        instance: &mut Instance,
        task: &WorkflowTask,
        replay: bool,
    ) -> Result<Vec<Command>, TaskError> {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        instance.driver.set_replaying(replay);
        loop {
            if let Some(future) = instance.future.as_mut() {
                if flag.0.swap(false, Ordering::SeqCst) {
                    let mut cx = Context::from_waker(&waker);
                    let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
                    let polled = match polled {
                        Ok(polled) => polled,
                        Err(panic) => {
                            instance.future = None;
                            return Err(TaskError::Panicked {
                                workflow_type: task.workflow_type.clone(),
                                run_id: task.run_id.clone(),
                                message: panic_message(panic),
                            });
                        }
                    };
                    if let Some(input) = instance.driver.take_continue_as_new() {
                        // The code continued as new: the run ends here.
                        instance.future = None;
                        let command = match input {
                            Ok(input) => Command::ContinueAsNew { input },
                            Err(err) => Command::FailWorkflow {
                                failure: WorkflowError::from(err).into_failure(),
                            },
                        };
                        instance.driver.push_command(command);
                    } else if let Poll::Ready(outcome) = polled {
                        instance.future = None;
                        let command = match outcome {
                            Ok(result) => Command::CompleteWorkflow { result },
                            Err(err)
                                if err.is_canceled() && instance.driver.is_cancel_requested() =>
                            {
                                Command::CancelWorkflow
                            }
                            Err(err) => Command::FailWorkflow {
                                failure: err.into_failure(),
                            },
                        };
                        instance.driver.push_command(command);
                    }
                }
            }
            let requests = instance.driver.take_local_requests();
            if requests.is_empty() {
                if instance.future.is_none() {
                    break;
                }
                if !flag.0.load(Ordering::SeqCst) {
                    // Pending, and nothing of the context will wake it.
                    if !instance.driver.waits_on_context() {
                        instance.future = None;
                        return Err(TaskError::ForeignAwait {
                            workflow_type: task.workflow_type.clone(),
                            run_id: task.run_id.clone(),
                        });
                    }
                    break;
                }
                continue;
            }
            for request in requests {
                let outcome = match instance.driver.take_recorded_local(request.seq) {
                    Some(outcome) => outcome,
                    None if replay => {
                        return Err(TaskError::Nondeterminism {
                            workflow_type: task.workflow_type.clone(),
                            run_id: task.run_id.clone(),
                            detail: format!(
                                "the code ran local activity `{}` (seq {}) where the history has no record of it",
                                request.activity_type, request.seq
                            ),
                        })
                    }
                    None => self.run_local(task, &instance.task_queue, &request).await,
                };
                instance
                    .driver
                    .resolve_local(request.seq, &request.activity_type, outcome);
            }
        }
        Ok(instance.driver.take_commands())
    }

    /// Runs a local activity in this worker, with its retry policy (docs/semantics.md §1.7).
    async fn run_local(
        &self,
        task: &WorkflowTask,
        task_queue: &str,
        request: &LocalActivityRequest,
    ) -> LocalActivityOutcome {
        let options = &request.options;
        let started = tokio::time::Instant::now();
        // Time spent before (durable backoffs) counts against schedule-to-close.
        let deadline = options
            .schedule_to_close
            .map(|total| started + total.saturating_sub(request.elapsed));
        let mut attempt = request.attempt.max(1);
        loop {
            let mut info = activity_core::ActivityInfo::new(
                request.activity_type.clone(),
                format!("local-{}", request.seq),
                task_queue,
            );
            info.attempt = attempt;
            info.is_local = true;
            info.workflow_id = Some(task.workflow_id.clone());
            info.workflow_run_id = Some(task.run_id.clone());
            info.workflow_type = Some(task.workflow_type.clone());
            let (ctx, _cancel) = ActivityContext::new(info, None, None);
            let run = self
                .registry
                .invoke(&request.activity_type, ctx, &request.input);
            let limit = match deadline {
                Some(deadline) => options
                    .start_to_close
                    .min(deadline.saturating_duration_since(tokio::time::Instant::now())),
                None => options.start_to_close,
            };
            let failure = match tokio::time::timeout(limit, run).await {
                Ok(Ok(result)) => return LocalActivityOutcome::Completed(result),
                Ok(Err(ActivityError::Application(mut failure))) => {
                    if failure.error_type == error_types::ACTIVITY_NOT_REGISTERED {
                        // No other worker runs this worker's local activities.
                        failure.non_retryable = true;
                    }
                    Failure::Application(failure)
                }
                Ok(Err(other)) => match other.into_failure() {
                    Some(failure) => failure,
                    None => Failure::Application(
                        ApplicationFailure::new(
                            "ResultPending",
                            "a local activity cannot complete asynchronously",
                        )
                        .with_non_retryable(true),
                    ),
                },
                Err(_) => Failure::Timeout(TimeoutFailure::new(
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        TimeoutKind::ScheduleToClose
                    } else {
                        TimeoutKind::StartToClose
                    },
                    None,
                )),
            };
            let policy = &options.retry_policy;
            let (retry_state, give_up) = match &failure {
                Failure::Application(a)
                    if a.non_retryable || policy.is_non_retryable_type(&a.error_type) =>
                {
                    (RetryState::NonRetryableFailure, true)
                }
                Failure::Canceled(_) => (RetryState::CancelRequested, true),
                Failure::Timeout(t) if t.kind == TimeoutKind::ScheduleToClose => {
                    (RetryState::Timeout, true)
                }
                _ if policy.attempts_exhausted(attempt) => {
                    (RetryState::MaximumAttemptsReached, true)
                }
                _ => (RetryState::Timeout, false),
            };
            let delay = match &failure {
                Failure::Application(a) => a.next_retry_delay.unwrap_or(policy.backoff(attempt)),
                _ => policy.backoff(attempt),
            };
            let too_late = deadline.is_some_and(|d| tokio::time::Instant::now() + delay >= d);
            if give_up || too_late {
                let retry_state = if give_up {
                    retry_state
                } else {
                    RetryState::Timeout
                };
                return LocalActivityOutcome::Failed(ActivityFailure::new(
                    request.activity_type.clone(),
                    format!("local-{}", request.seq),
                    attempt,
                    retry_state,
                    failure,
                ));
            }
            if delay > INLINE_BACKOFF_LIMIT {
                // Too long to wait inside this workflow task: a durable timer.
                return LocalActivityOutcome::Backoff {
                    attempt,
                    failure,
                    backoff: delay,
                };
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The longest retry backoff of a local activity waited inside a workflow task;
/// a longer one is recorded and waited on a durable timer (docs/semantics.md §1.7), so the
/// workflow task ends well within its timeout and nothing waits in memory.
pub(crate) const INLINE_BACKOFF_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer of the query handler `name` of a run's code.
fn answer_with(driver: &RunDriver, name: &str) -> QueryAnswer {
    match catch_unwind(AssertUnwindSafe(|| driver.answer_query(name))) {
        Ok(Some(Ok(payload))) => QueryAnswer::Answered(payload),
        Ok(Some(Err(err))) => QueryAnswer::Failed(err.to_string()),
        Ok(None) => QueryAnswer::Unknown(format!(
            "the workflow's code registered no handler of that name (it registered: [{}]); declare it with #[workflow(queries({name} = Type))] and register it with ctx.on_query",
            driver.query_names().join(", ")
        )),
        Err(panic) => QueryAnswer::Failed(format!(
            "the query handler panicked: {}",
            panic_message(panic)
        )),
    }
}

/// The whole history of the task's run, up to the task's last event.
async fn whole_history(
    task: &WorkflowTask,
    protocol: &dyn ActivityProtocol,
) -> Result<Vec<HistoryEvent>, TaskError> {
    let last = task.history.last().map_or(0, |e| e.event_id);
    let mut history = protocol
        .workflow_history(WorkflowRef::run(&task.workflow_id, &task.run_id))
        .await
        .map_err(|err| {
            TaskError::Invalid(format!(
                "the task carries history from event {} on and this worker has not cached the run; fetching the whole history failed: {err}",
                task.history.first().map_or(0, |e| e.event_id)
            ))
        })?;
    history.truncate(usize::try_from(last).unwrap_or(usize::MAX));
    if history.last().map(|e| e.event_id) != Some(last) {
        return Err(TaskError::Invalid(format!(
            "the run's history has {} events; the task ends at event {last}",
            history.len()
        )));
    }
    Ok(history)
}

impl Instance {
    /// Whether the cached instance can go on with `history` (which follows `base`
    /// earlier events): the history extends what it applied, and the task it
    /// answered last was recorded.
    fn continues(&self, base: usize, history: &[HistoryEvent]) -> bool {
        if self.applied < base || self.applied > base + history.len() || self.future.is_none() {
            return false;
        }
        match self.expect_completed_at {
            Some(at) => matches!(
                at.checked_sub(base)
                    .and_then(|at| history.get(at))
                    .map(|e| &e.kind),
                Some(EventKind::WorkflowTaskCompleted { .. })
            ),
            None => true,
        }
    }
}

fn check_replay(
    task: &WorkflowTask,
    produced: &[Command],
    recorded: &[&HistoryEvent],
) -> Result<(), TaskError> {
    let mismatch = |detail: String| TaskError::Nondeterminism {
        workflow_type: task.workflow_type.clone(),
        run_id: task.run_id.clone(),
        detail,
    };
    for (k, command) in produced.iter().enumerate() {
        match recorded.get(k) {
            Some(event) if command.matches(&event.kind) => {}
            Some(event) => {
                return Err(mismatch(format!(
                    "history has event {} {} where the code produced {}",
                    event.event_id,
                    describe_event(&event.kind),
                    command.describe()
                )))
            }
            None => {
                return Err(mismatch(format!(
                    "the code produced {} that the history does not have",
                    command.describe()
                )))
            }
        }
    }
    if let Some(event) = recorded.get(produced.len()) {
        return Err(mismatch(format!(
            "history has event {} {} where the code produced no command",
            event.event_id,
            describe_event(&event.kind)
        )));
    }
    Ok(())
}

/// The waker of a run's root future: records that something was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}
