//! The worker: pollers that hold a slot before they poll, attempts that run the
//! registered function under a span, report their outcome, and a graceful shutdown.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, SystemTime},
};

use activity_core::{
    context::CancelHandle,
    failure::error_types,
    protocol::{
        ActivityProtocol, ActivityTask, ActivityTypeInfo, PollActivityTaskRequest, ProtocolError,
        TaskTarget, WorkerRegistration,
    },
    workflow::PollWorkflowTaskRequest,
    ActivityContext, ActivityError, ApplicationFailure, CancelReason, Registry, RegistryError,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::{AbortHandle, JoinSet},
    time::Instant,
};
use tracing::Instrument;

use crate::{
    heartbeat::{send_heartbeats, PendingHeartbeat, DEFAULT_HEARTBEAT_INTERVAL},
    options::WorkerOptions,
    rate::RateLimiter,
    shutdown::{shutdown_signal, ShutdownHandle},
    trace,
    workflow::WorkflowExecutor,
};

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The activity set is invalid (duplicate names, missing shared state).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The options are invalid.
    #[error("invalid worker options: {}", .0.join("; "))]
    InvalidOptions(Vec<String>),
    /// The workflow set is invalid (duplicate names).
    #[error("invalid workflow registry:\n  - {0}")]
    Workflows(String),
}

/// Builds a [`Worker`]: by default it serves every `#[activity]` and every
/// `#[workflow]` of the program, on the task queues given (at least one).
///
/// The defaults (see [`WorkerOptions`] for each):
///
/// | setting | default |
/// |---|---|
/// | [`max_concurrent_activities`](Self::max_concurrent_activities) | 100 |
/// | [`max_activities_per_second`](Self::max_activities_per_second) | unlimited |
/// | [`max_task_queue_activities_per_second`](Self::max_task_queue_activities_per_second) | the queue's setting, unchanged |
/// | [`max_concurrent_workflow_tasks`](Self::max_concurrent_workflow_tasks) | 10 |
/// | [`workflow_cache_size`](Self::workflow_cache_size) | 1,000 runs (0: replay every task) |
/// | [`pollers_per_queue`](Self::pollers_per_queue) | 2 |
/// | [`poll_wait`](Self::poll_wait) | 60 s |
/// | [`identity`](Self::identity) | `worker-<pid>@<host>` |
/// | [`graceful_shutdown_period`](Self::graceful_shutdown_period) | 10 s |
///
/// [`build`](Self::build) checks the options and the activity set: two
/// activities (or workflows) with one name, a `State<T>` nobody provides, a
/// name given to [`only`](Self::only) that no activity has, are errors naming them.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use activity_core::{activity, ActivityError, State};
/// use activity_engine::{Engine, EngineConfig};
/// use activity_worker::Worker;
///
/// struct Mailer {
///     from: String,
/// }
///
/// #[activity(start_to_close = "30s")]
/// async fn send(mailer: State<Mailer>, to: String) -> Result<String, ActivityError> {
///     Ok(format!("{} -> {to}", mailer.from))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let engine = Engine::open(EngineConfig::in_memory()).await?;
/// let worker = Worker::builder(engine.protocol())
///     .task_queue("mail")
///     .task_queue("mail-eu")
///     .max_concurrent_activities(20)
///     .max_activities_per_second(10.0)
///     .identity("mailer-1")
///     .graceful_shutdown_period(Duration::from_secs(30))
///     .shared_state(Arc::new(Mailer { from: "shop@example.org".into() }))
///     .build()?;
/// assert_eq!(worker.options().max_concurrent_workflow_tasks, 10);
/// assert!(worker.registry().get("send").is_some());
///
/// // Without the state `send` needs, the worker does not start.
/// let err = Worker::builder(engine.protocol()).task_queue("mail").build().unwrap_err();
/// assert!(err.to_string().contains("takes `State<"), "{err}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct WorkerBuilder {
    protocol: Arc<dyn ActivityProtocol>,
    options: WorkerOptions,
    registry: activity_core::registry::RegistryBuilder,
}

impl WorkerBuilder {
    /// Polls `task_queue` (call again to poll several).
    pub fn task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.options.task_queues.push(task_queue.into());
        self
    }

    /// Sets `max_concurrent_activities`.
    pub fn max_concurrent_activities(mut self, slots: usize) -> Self {
        self.options.max_concurrent_activities = slots;
        self
    }

    /// Sets `max_activities_per_second` (this worker).
    pub fn max_activities_per_second(mut self, rate: f64) -> Self {
        self.options.max_activities_per_second = Some(rate);
        self
    }

    /// Sets `max_task_queue_activities_per_second` (all workers of the queues,
    /// enforced by the engine).
    pub fn max_task_queue_activities_per_second(mut self, rate: f64) -> Self {
        self.options.max_task_queue_activities_per_second = Some(rate);
        self
    }

    /// Sets the number of concurrent long polls per task queue.
    pub fn pollers_per_queue(mut self, pollers: usize) -> Self {
        self.options.pollers_per_queue = pollers;
        self
    }

    /// Sets how long one long poll waits.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.options.poll_wait = wait;
        self
    }

    /// Sets the worker's identity.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.options.identity = identity.into();
        self
    }

    /// Sets the number of workflow tasks run at once.
    pub fn max_concurrent_workflow_tasks(mut self, tasks: usize) -> Self {
        self.options.max_concurrent_workflow_tasks = tasks;
        self
    }

    /// Sets how many workflow instances stay in memory between tasks (0: none,
    /// every task replays its history).
    pub fn workflow_cache_size(mut self, instances: usize) -> Self {
        self.options.workflow_cache_size = instances;
        self
    }

    /// Sets the graceful shutdown period.
    pub fn graceful_shutdown_period(mut self, period: Duration) -> Self {
        self.options.graceful_shutdown_period = period;
        self
    }

    /// Provides shared state to activities that take `State<T>`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.registry = self.registry.state(value);
        self
    }

    /// Provides shared state of type `T` that the caller keeps a handle to.
    pub fn shared_state<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.registry = self.registry.shared_state(value);
        self
    }

    /// Serves only the named activities.
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.registry = self.registry.only(names);
        self
    }

    /// Does not serve the named activity.
    pub fn exclude(mut self, name: impl Into<String>) -> Self {
        self.registry = self.registry.exclude(name);
        self
    }

    /// Checks the options and the activity set (duplicate names, missing state).
    pub fn build(self) -> Result<Worker, WorkerError> {
        let problems = self.options.check();
        if !problems.is_empty() {
            return Err(WorkerError::InvalidOptions(problems));
        }
        let registry = self.registry.build()?;
        let workflows = WorkflowExecutor::new(registry.clone(), self.options.workflow_cache_size)
            .map_err(WorkerError::Workflows)?;
        Ok(Worker {
            shared: Arc::new(Shared {
                workflows,
                workflow_slots: Arc::new(Semaphore::new(
                    self.options.max_concurrent_workflow_tasks,
                )),
                protocol: self.protocol,
                registry,
                rate: self.options.max_activities_per_second.map(RateLimiter::new),
                slots: Arc::new(Semaphore::new(self.options.max_concurrent_activities)),
                running: Mutex::default(),
                next_attempt: AtomicU64::new(0),
                stats: Stats::default(),
                options: self.options,
            }),
            shutdown: ShutdownHandle::new(),
        })
    }
}

/// What a worker did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Attempts received.
    pub started: u64,
    /// Attempts reported completed.
    pub completed: u64,
    /// Attempts reported failed (panics and attempts ended by the shutdown included).
    pub failed: u64,
    /// Attempts reported canceled (after a cancel request, or a timeout).
    pub canceled: u64,
    /// Attempts left for asynchronous completion.
    pub pending: u64,
    /// Attempts abandoned at shutdown because they ignored cancellation.
    pub abandoned: u64,
}

#[derive(Default)]
struct Stats {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    canceled: AtomicU64,
    pending: AtomicU64,
    abandoned: AtomicU64,
}

impl Stats {
    fn report(&self) -> WorkerReport {
        WorkerReport {
            started: self.started.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            canceled: self.canceled.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
    }
}

struct Running {
    cancel: CancelHandle,
    abort: Option<AbortHandle>,
}

struct Shared {
    protocol: Arc<dyn ActivityProtocol>,
    workflows: WorkflowExecutor,
    workflow_slots: Arc<Semaphore>,
    registry: Registry,
    options: WorkerOptions,
    rate: Option<RateLimiter>,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<u64, Running>>,
    next_attempt: AtomicU64,
    stats: Stats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls task queues and runs the activities it receives. See the crate docs.
pub struct Worker {
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("options", &self.shared.options)
            .field(
                "activities",
                &self.shared.registry.names().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder of a worker talking to `protocol` (the embedded engine or a server).
    pub fn builder(protocol: Arc<dyn ActivityProtocol>) -> WorkerBuilder {
        WorkerBuilder {
            protocol,
            options: WorkerOptions::default(),
            registry: Registry::builder(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &WorkerOptions {
        &self.shared.options
    }

    /// The activities served, with their schemas.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Number of workflow instances in the cache.
    pub fn cached_workflows(&self) -> usize {
        self.shared.workflows.cached()
    }

    /// Evicts every cached workflow instance (their next tasks replay history).
    pub fn evict_workflows(&self) {
        self.shared.workflows.evict_all();
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn run(self) -> WorkerReport {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `signal` resolves (or the shutdown handle is used), then shuts
    /// down gracefully: polling stops, running activities get the grace period to
    /// finish, then they are cancelled with reason "worker shutting down". An
    /// attempt that then stops (or is abandoned) is reported as the retryable
    /// failure `WorkerShutdown`, with its unsent heartbeat details, and the engine
    /// retries it at once on another worker (docs/semantics.md §1.3): a shutdown
    /// never cancels an execution.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> WorkerReport {
        let shared = self.shared.clone();
        tracing::info!(
            identity = %shared.options.identity,
            task_queues = ?shared.options.task_queues,
            activities = shared.registry.len(),
            "worker started"
        );
        register(&shared).await;
        let mut pollers = JoinSet::new();
        for queue in &shared.options.task_queues {
            for _ in 0..shared.options.pollers_per_queue {
                pollers.spawn(poll_loop(shared.clone(), queue.clone()));
                if shared.workflows.has_workflows() {
                    pollers.spawn(workflow_poll_loop(shared.clone(), queue.clone()));
                }
            }
            if shared.workflows.has_workflows() {
                pollers.spawn(query_poll_loop(shared.clone(), queue.clone()));
            }
        }
        tokio::select! {
            () = signal => self.shutdown.shutdown(),
            () = self.shutdown.requested() => {}
        }
        pollers.abort_all();
        while pollers.join_next().await.is_some() {}
        self.drain().await;
        let report = shared.stats.report();
        tracing::info!(?report, "worker stopped");
        report
    }

    /// Waits for running attempts: the grace period, then cancellation, then as
    /// long again before abandoning them.
    async fn drain(&self) {
        let shared = &self.shared;
        let all = u32::try_from(shared.options.max_concurrent_activities).unwrap_or(u32::MAX);
        let grace = shared.options.graceful_shutdown_period;
        let idle = || shared.slots.clone().acquire_many_owned(all);
        let workflow_slots =
            u32::try_from(shared.options.max_concurrent_workflow_tasks).unwrap_or(u32::MAX);
        let workflows_idle = shared
            .workflow_slots
            .clone()
            .acquire_many_owned(workflow_slots);
        let both_idle = async { tokio::join!(idle(), workflows_idle) };
        if tokio::time::timeout(grace, both_idle).await.is_ok() {
            return;
        }
        let cancelled = {
            let running = lock(&shared.running);
            for attempt in running.values() {
                attempt.cancel.cancel(CancelReason::WorkerShutdown);
            }
            running.len()
        };
        tracing::info!(cancelled, "grace period over: cancelled running activities");
        if tokio::time::timeout(grace, idle()).await.is_ok() {
            return;
        }
        let abandoned: Vec<AbortHandle> = lock(&shared.running)
            .values()
            .filter_map(|r| r.abort.clone())
            .collect();
        tracing::warn!(
            abandoned = abandoned.len(),
            "activities ignored cancellation: abandoning them"
        );
        for abort in abandoned {
            abort.abort();
        }
        // Aborted attempts report their failure before releasing their slot.
        let _ = tokio::time::timeout(grace, idle()).await;
    }
}

/// Tells the engine which activity types (with their schemas) and workflow types
/// this worker serves on its task queues. An engine that does not offer it is
/// fine; another failure is logged and the worker runs anyway.
async fn register(shared: &Shared) {
    let activities = shared
        .registry
        .describe()
        .iter()
        .map(ActivityTypeInfo::from)
        .collect();
    let registration = WorkerRegistration::new(
        shared.options.identity.clone(),
        shared.options.task_queues.clone(),
    )
    .with_activities(activities)
    .with_workflows(shared.workflows.names());
    match shared.protocol.register_worker(registration).await {
        Ok(()) => tracing::debug!("worker types registered"),
        Err(err) => tracing::warn!(error = %err, "registering the worker's types failed"),
    }
}

/// How many slots one poll may fill: the poller's fair share of all slots (so a
/// long poll on an idle queue never holds the slots another queue's pollers
/// need), one when the worker's own rate spaces every start.
fn tasks_per_poll(options: &WorkerOptions, rate_limited: bool) -> usize {
    if rate_limited {
        return 1;
    }
    let pollers = options.pollers_per_queue * options.task_queues.len();
    (options.max_concurrent_activities / pollers.max(1)).clamp(1, MAX_TASKS_PER_POLL)
}

/// The most tasks one poll asks for.
const MAX_TASKS_PER_POLL: usize = 64;

async fn poll_loop(shared: Arc<Shared>, queue: String) {
    let mut backoff = Duration::from_millis(100);
    let batch = tasks_per_poll(&shared.options, shared.rate.is_some());
    loop {
        let Ok(mut permit) = shared.slots.clone().acquire_owned().await else {
            return;
        };
        // Take more of the slots free right now, never waiting for them.
        let more = shared.slots.available_permits().min(batch - 1);
        if more > 0 {
            if let Ok(extra) = shared.slots.clone().try_acquire_many_owned(more as u32) {
                permit.merge(extra);
            }
        }
        if let Some(rate) = &shared.rate {
            rate.acquire().await;
        }
        let mut request =
            PollActivityTaskRequest::new(queue.clone(), shared.options.identity.clone())
                .with_wait(shared.options.poll_wait);
        if let Some(rate) = shared.options.max_task_queue_activities_per_second {
            request = request.with_task_queue_rate_limit(rate);
        }
        let max_tasks = permit.num_permits();
        let polled = Instant::now();
        let answer = shared
            .protocol
            .poll_activity_tasks(request, max_tasks)
            .await;
        record_poll("activity", &queue, polled, answer.as_ref().map(Vec::len));
        match answer {
            Ok(tasks) if !tasks.is_empty() => {
                backoff = Duration::from_millis(100);
                for task in tasks {
                    // An engine never answers more than asked; if one did, the
                    // extra attempts wait for their start-to-close timeout.
                    let Some(one) = permit.split(1) else {
                        tracing::error!(activity_id = %task.info.activity_id, "the engine answered more tasks than asked; attempt left to time out");
                        continue;
                    };
                    start_attempt(shared.clone(), task, one);
                }
            }
            Ok(_) => {
                if let Some(rate) = &shared.rate {
                    rate.refund().await;
                }
            }
            Err(err) => {
                if let Some(rate) = &shared.rate {
                    rate.refund().await;
                }
                drop(permit);
                tracing::warn!(%err, queue = %queue, retry_in = ?backoff, "poll failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn workflow_poll_loop(shared: Arc<Shared>, queue: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Ok(permit) = shared.workflow_slots.clone().acquire_owned().await else {
            return;
        };
        let request = PollWorkflowTaskRequest::new(queue.clone(), shared.options.identity.clone())
            .with_wait(shared.options.poll_wait);
        let polled = Instant::now();
        let answer = shared.protocol.poll_workflow_task(request).await;
        record_poll(
            "workflow",
            &queue,
            polled,
            answer.as_ref().map(|task| usize::from(task.is_some())),
        );
        match answer {
            Ok(Some(task)) => {
                backoff = Duration::from_millis(100);
                let shared = shared.clone();
                let span = tracing::info_span!(
                    "workflow_task",
                    workflow_type = %task.workflow_type,
                    workflow_id = %task.workflow_id,
                    run_id = %task.run_id,
                    task_queue = %queue,
                );
                let traced = trace::Span::workflow_task(&task, &queue);
                tokio::spawn(
                    async move {
                        let token = task.task_token.clone();
                        let ran = traced
                            .around(shared.workflows.run_task(task, &*shared.protocol))
                            .await;
                        let failed = ran.as_ref().err().map(ToString::to_string);
                        let answer = match ran {
                            Ok(commands) => {
                                // Its activities are traced under this task.
                                let commands = traced.stamp(commands);
                                with_retries(|| {
                                    shared
                                        .protocol
                                        .complete_workflow_task(token.clone(), commands.clone())
                                })
                                .await
                            }
                            Err(err) => {
                                tracing::error!(%err, "workflow task failed");
                                with_retries(|| {
                                    shared
                                        .protocol
                                        .fail_workflow_task(token.clone(), err.to_string())
                                })
                                .await
                            }
                        };
                        let refused = answer.as_ref().err().map(ToString::to_string);
                        if let Err(err) = answer {
                            tracing::warn!(%err, "workflow task answer not accepted");
                        }
                        traced.end(failed.or(refused));
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Ok(None) => {}
            Err(err) => {
                drop(permit);
                tracing::warn!(%err, queue = %queue, retry_in = ?backoff, "workflow poll failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Polls the queue's queries and answers each (docs/semantics.md §3.1), from
/// a cached instance or by replay; queries take no workflow task slot.
async fn query_poll_loop(shared: Arc<Shared>, queue: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let request = PollWorkflowTaskRequest::new(queue.clone(), shared.options.identity.clone())
            .with_wait(shared.options.poll_wait);
        match shared.protocol.poll_workflow_query(request).await {
            Ok(Some(query)) => {
                backoff = Duration::from_millis(100);
                let shared = shared.clone();
                let span = tracing::info_span!(
                    "workflow_query",
                    workflow_type = %query.workflow_type,
                    workflow_id = %query.workflow_id,
                    run_id = %query.run_id,
                    query = %query.query_name,
                );
                tokio::spawn(
                    async move {
                        let answer = shared.workflows.answer_query(&query).await;
                        if let Err(err) = shared
                            .protocol
                            .answer_workflow_query(query.query_id.clone(), answer)
                            .await
                        {
                            tracing::debug!(%err, "query answer not taken");
                        }
                    }
                    .instrument(span),
                );
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, queue = %queue, retry_in = ?backoff, "query poll failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Records one poll's latency (the metrics of the crate docs).
fn record_poll(
    kind: &'static str,
    queue: &str,
    since: Instant,
    tasks: Result<usize, &ProtocolError>,
) {
    let result = match tasks {
        Ok(0) => "empty",
        Ok(_) => "task",
        Err(_) => "error",
    };
    metrics::histogram!(
        "activity_worker_poll_seconds",
        "kind" => kind,
        "task_queue" => queue.to_owned(),
        "result" => result,
    )
    .record(since.elapsed().as_secs_f64());
}

fn start_attempt(shared: Arc<Shared>, task: ActivityTask, permit: OwnedSemaphorePermit) {
    shared.stats.started.fetch_add(1, Ordering::Relaxed);
    let slots_used = metrics::gauge!(
        "activity_worker_slots_used",
        "worker" => shared.options.identity.clone(),
    );
    slots_used.increment(1);
    let began = Instant::now();
    let id = shared.next_attempt.fetch_add(1, Ordering::Relaxed);
    let pending = Arc::new(PendingHeartbeat::default());
    let (ctx, cancel) = ActivityContext::new(
        task.info.clone(),
        task.last_heartbeat_details.clone(),
        Some(pending.clone()),
    );
    lock(&shared.running).insert(
        id,
        Running {
            cancel: cancel.clone(),
            abort: None,
        },
    );
    let info = &task.info;
    let span = tracing::info_span!(
        "activity",
        activity_type = %info.activity_type,
        activity_id = %info.activity_id,
        attempt = info.attempt,
        task_queue = %info.task_queue,
        workflow_id = info.workflow_id.as_deref().unwrap_or(""),
    );
    let traced = trace::Span::attempt(&task);
    let activity = shared
        .registry
        .invoke(&info.activity_type, ctx, &task.input);
    let body = tokio::spawn(traced.around(activity).instrument(span.clone()));
    if let Some(running) = lock(&shared.running).get_mut(&id) {
        running.abort = Some(body.abort_handle());
    }
    let supervisor = async move {
        let interval = task
            .info
            .heartbeat_timeout
            .map(|timeout| timeout.mul_f64(0.8))
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL);
        let heartbeats = tokio::spawn(send_heartbeats(
            shared.protocol.clone(),
            task.task_token.clone(),
            pending.clone(),
            interval,
            task.info.heartbeat_timeout,
            cancel.clone(),
            began,
        ));
        let deadline = local_deadline(&task);
        let timer = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                if let Some(deadline) = deadline {
                    tokio::time::sleep_until(deadline).await;
                    cancel.cancel(CancelReason::TimedOut);
                }
            }
        });
        let outcome = match body.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => {
                let message = panic_message(join.into_panic());
                tracing::error!(%message, "activity panicked");
                Err(ActivityError::Application(ApplicationFailure::new(
                    error_types::PANIC,
                    format!("activity panicked: {message}"),
                )))
            }
            Err(_) => Err(ActivityError::Application(worker_shutdown(
                "the worker shut down and the activity did not stop when cancelled",
            ))),
        };
        // An attempt ended by this worker's shutdown is not canceled: it is a
        // retryable failure, retried at once elsewhere (docs/semantics.md §1.3).
        let outcome = match outcome {
            Err(ActivityError::Canceled(_))
                if cancel.reason() == Some(CancelReason::WorkerShutdown) =>
            {
                Err(ActivityError::Application(worker_shutdown(
                    "the worker shut down before the activity finished",
                )))
            }
            other => other,
        };
        heartbeats.abort();
        timer.abort();
        let label = match &outcome {
            Ok(_) => "completed",
            Err(ActivityError::Canceled(_)) => "canceled",
            Err(ActivityError::ResultPending) => "pending",
            Err(_) => "failed",
        };
        metrics::histogram!(
            "activity_worker_activity_seconds",
            "activity_type" => task.info.activity_type.clone(),
            "task_queue" => task.info.task_queue.clone(),
            "outcome" => label,
        )
        .record(began.elapsed().as_secs_f64());
        traced.outcome(label);
        let error = match &outcome {
            Err(ActivityError::Application(failure)) => {
                Some(format!("{}: {}", failure.error_type, failure.message))
            }
            _ => None,
        };
        report(&shared, &task, outcome, &pending).await;
        traced.end(error);
        lock(&shared.running).remove(&id);
        slots_used.decrement(1);
        drop(permit);
    };
    tokio::spawn(supervisor.instrument(span));
}

/// The retryable failure of an attempt ended by its worker's shutdown: retried
/// at once (no backoff), on another worker.
fn worker_shutdown(message: &str) -> ApplicationFailure {
    ApplicationFailure::new(error_types::WORKER_SHUTDOWN, message)
        .with_next_retry_delay(Duration::ZERO)
}

/// When the attempt's start-to-close deadline passes, on this worker's clock: the
/// remaining time is measured from the engine's start time, so clock skew between
/// the worker and the engine does not matter.
fn local_deadline(task: &ActivityTask) -> Option<Instant> {
    let deadline: SystemTime = task.info.deadline?;
    let remaining = deadline
        .duration_since(task.info.started_time)
        .unwrap_or(Duration::ZERO);
    Some(Instant::now() + remaining)
}

pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

async fn report(
    shared: &Shared,
    task: &ActivityTask,
    outcome: Result<activity_core::Payload, ActivityError>,
    pending: &PendingHeartbeat,
) {
    let target = || TaskTarget::Token(task.task_token.clone());
    let protocol = &shared.protocol;
    let (counter, result) = match outcome {
        Ok(result) => (
            &shared.stats.completed,
            with_retries(|| protocol.complete_activity(target(), result.clone())).await,
        ),
        Err(ActivityError::Application(failure)) => {
            // Unsent progress goes with the failure, so the next attempt sees it.
            let details = pending.take().flatten();
            tracing::info!(error_type = %failure.error_type, message = %failure.message, "activity failed");
            (
                &shared.stats.failed,
                with_retries(|| protocol.fail_activity(target(), failure.clone(), details.clone()))
                    .await,
            )
        }
        Err(ActivityError::Canceled(canceled)) => {
            // Unsent progress first, so the next attempt sees it (if the
            // engine decides the attempt timed out, or the request is retried).
            if let Some(details) = pending.take() {
                let sent = with_retries(|| async {
                    protocol
                        .record_heartbeat(target(), details.clone())
                        .await
                        .map(|_| ())
                })
                .await;
                if let Err(err) = sent {
                    tracing::debug!(%err, "last heartbeat details not recorded");
                }
            }
            (
                &shared.stats.canceled,
                with_retries(|| protocol.report_canceled(target(), canceled.details.clone())).await,
            )
        }
        Err(ActivityError::ResultPending) => {
            tracing::debug!("activity result pending: it will be completed by task token");
            (&shared.stats.pending, Ok(()))
        }
        Err(other) => (
            &shared.stats.failed,
            Err(ProtocolError::Internal {
                message: format!("unexpected activity outcome: {other}"),
            }),
        ),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Err(err) = result {
        match err {
            ProtocolError::AlreadyClosed { .. } | ProtocolError::NotFound { .. } => {
                tracing::info!(%err, "outcome not accepted: the attempt is no longer current")
            }
            ProtocolError::FailedPrecondition { .. } => {
                tracing::info!(%err, "outcome not accepted: the engine decides how the attempt ends")
            }
            other => tracing::error!(err = %other, "outcome could not be reported"),
        }
    }
}

/// Sends a report again while the engine answers "unavailable" (about a minute in all).
async fn with_retries<'a, F, Fut>(mut send: F) -> Result<(), ProtocolError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProtocolError>> + 'a,
{
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        match send().await {
            Err(err) if err.is_retryable() && tries < 12 => {
                tries += 1;
                tracing::warn!(%err, retry_in = ?delay, "report failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}
