//! The engine: durable activity executions on an authoritative store.
//!
//! [`Engine`] implements [`ActivityProtocol`] in-process. Every call runs its rule
//! (module `rules`) in one store transaction and answers after the commit, so
//! whatever the engine acknowledged survives a crash (docs/semantics.md §5); what lives in
//! memory only wakes waiters sooner:
//!
//! - **Dispatch.** The store is the queue: a poll claims the oldest dispatchable
//!   SCHEDULED attempt of its queue (FIFO by the time it became dispatchable) and
//!   starts it in the same transaction, so each attempt goes to at most one worker.
//!   A poll that finds nothing waits on the queue's in-memory notifier (woken after
//!   a commit that made something dispatchable) or until the next backoff ends,
//!   bounded by the poll's wait.
//! - **Timers.** Every deadline (schedule-to-close, schedule-to-start,
//!   start-to-close, heartbeat, end of a retry backoff) is a timer row. One task
//!   sleeps on the injected [`Clock`] until the earliest row is due, fires what is
//!   due in a transaction (each firing re-checks the execution's state and attempt,
//!   so a stale timer does nothing), and re-reads the rows; a commit that sets an
//!   earlier timer wakes it. On open it starts from the rows: timers that came due
//!   while the engine was down fire at once.
//! - **Rate limits.** A queue's global rate limit
//!   (`max_task_queue_activities_per_second`, set by the latest poll that gives
//!   one) is a token bucket kept in the queue's row and updated in the claiming
//!   transaction: shared by all pollers, and by all engine nodes once a shared
//!   database backs them. The bucket starts empty and holds at most
//!   `max(1, rate)` tokens, so no window of one second sees more than `rate + 1`
//!   dispatches, across restarts too.
//! - **Tokens.** HMAC-authenticated (module `token`), key kept in the store.
//! - **Lifecycle.** [`Engine::close`] stops the timer loop and closes the store;
//!   dropping every clone of an engine does the same, later. An attempt started
//!   for a poll whose caller went away before receiving it goes back to its
//!   queue at once, keeping its number (module `orphans`); one that reached a
//!   worker which then crashed ends by its start-to-close (or heartbeat) timeout
//!   and the retry policy applies (docs/semantics.md §1.3).
//! - **Several nodes.** Nothing above depends on this process's memory for
//!   correctness: notifications only shorten waits (a poll re-reads the store at
//!   the end of its wait, or when the next backoff ends), and
//!   [`EngineConfig::max_timer_sleep`] bounds how long a node can miss timers set
//!   by another. See [`crate::store`] for what a shared PostgreSQL store adds.
//!
//! - **Workflows.** A workflow run is a row with an append-only history
//!   (module `workflows`). Its workflow tasks are dispatched per task queue like
//!   activity attempts (FIFO by the time the task was scheduled, claimed in the
//!   transaction that records `WorkflowTaskStarted`); their timeouts, backoffs
//!   and the workflows' own timers are timer rows fired by the same loop. An
//!   activity of a run reports its final outcome to the run's history in the
//!   transaction that makes it final, so exactly once.
//!
//! - **Registered types.** Workers register the types they serve, with their JSON
//!   Schemas (module `types`): rows per kind, type and task queue. Scheduling a
//!   standalone activity of a registered type checks its input, and completing an
//!   attempt checks its result, in the same transaction as the rule, against
//!   validators compiled once per schema.
//!
//! Clocks: the engine reads time only from its [`Clock`]; tests inject
//! [`VirtualClock`](crate::clock::VirtualClock) and skip through timeouts.

mod collector;
mod config;
mod effects;
pub mod metrics;
mod notifiers;
mod orphans;
mod queries;
mod rules;
mod runs;
mod types;
mod waiters;
mod workflows;

use std::{
    pin::Pin,
    sync::{atomic::AtomicI64, Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use activity_core::{
    clock::{from_millis, to_millis, Clock},
    definition::BoxFuture,
    failure::ApplicationFailure,
    payload::{Encoding, Payload},
    protocol::{
        ActivityProtocol, ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef,
        ExecutionState, HeartbeatResponse, ListExecutionsRequest, PollActivityTaskRequest,
        ProtocolError, ProtocolRequest, ProtocolResponse, RegisteredType, ScheduleActivityRequest,
        ScheduleActivityResponse, TaskQueueDescription, TaskTarget, WorkerRegistration,
    },
    workflow::{
        HistoryEvent, ListWorkflowsRequest, WorkflowDescription, WorkflowRef, WorkflowState,
        WorkflowSummary, WorkflowTask, MAX_HISTORY_PAGE_EVENTS,
    },
};
use tokio::sync::{futures::Notified, oneshot, watch, Notify};
use tracing::Instrument;

use crate::{
    store::{
        self, postgres::PostgresStore, sqlite::SqliteStore, HistoryPage, Store, StoreError, Tx,
    },
    token::{TokenSigner, KEY_LEN},
};

pub use config::{EngineConfig, EngineError, StoreLocation};
use effects::{other_nodes, timer_loop, wakeups};
use notifiers::{Notifiers, Topic};
use rules::{Claim, Effects, Poller};
use waiters::Waiters;

const MAX_ID_LEN: usize = 1000;
/// The most attempts one poll starts: bounds a claim's transaction and answer.
const MAX_TASKS_PER_POLL: usize = 256;

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// Pollers and outcome waiters, woken after the commits that concern them.
    notifiers: Notifiers,
    timer_wake: Arc<Notify>,
    /// The due time the timer loop sleeps until (`i64::MAX` when none): a commit
    /// that sets an earlier timer wakes it.
    armed_at: AtomicI64,
    shutdown: watch::Sender<bool>,
    timer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Compiled JSON Schemas of registered types.
    validators: Arc<types::Validators>,
    /// Pollers waiting for work (eager dispatch), and the token signer.
    dispatch: Arc<Dispatch>,
    /// Queries waiting for a worker's answer (in memory only).
    queries: queries::Queries,
}

/// Hands work to waiting pollers in the transaction that makes it dispatchable;
/// holds what claims need (the token signer, which signs every token).
struct Dispatch {
    activities: Waiters<Vec<ActivityTask>>,
    workflows: Waiters<WorkflowTask>,
    sticky: workflows::StickyRuns,
    signer: TokenSigner,
    workflow_task_timeout: Duration,
}

impl Dispatch {
    /// Starts, for the pollers waiting on them, the attempts and workflow tasks
    /// this transaction made dispatchable. Each is sent to its poller once the
    /// transaction is committed (`Effects::handoffs`); the pollers still woken
    /// are those for the work left.
    fn hand_off(&self, tx: &mut dyn Tx, fx: &mut Effects, now: i64) -> Result<(), ProtocolError> {
        for i in 0..fx.queues.len() {
            let (queue, mut count) = fx.queues[i].clone();
            while count > 0 {
                let Some(waiter) = self.activities.take(&queue) else {
                    break;
                };
                let poller = Poller {
                    task_queue: &queue,
                    identity: &waiter.identity,
                    max: waiter.max,
                };
                let claim = rules::claim(tx, fx, &self.signer, &poller, None, now)?;
                match claim {
                    Claim::Tasks(tasks) => {
                        count = count.saturating_sub(tasks.len());
                        fx.handoffs.push((waiter.sender, tasks));
                    }
                    Claim::Empty(_) | Claim::RateLimited(_) => {
                        self.activities.put_back(&queue, waiter);
                        break;
                    }
                }
            }
            fx.queues[i].1 = count;
        }
        for i in 0..fx.workflow_queues.len() {
            let queue = fx.workflow_queues[i].clone();
            while let Some(waiter) = self.workflows.take(&queue) {
                let claim = workflows::claim(tx, fx, self, &queue, &waiter.identity, now)?;
                match claim {
                    Some(task) => fx.workflow_handoffs.push((waiter.sender, task)),
                    None => {
                        self.workflows.put_back(&queue, waiter);
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps of notifiers stay valid if a holder panicked.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The in-process engine. Cheap to clone; clones share the engine.
///
/// [`Engine::open`] opens it on its store and starts its timer loop;
/// [`Engine::protocol`] is what workers and clients talk to (the same protocol an
/// `activity-server` serves over gRPC); [`Engine::close`] stops it. Everything it
/// acknowledges is committed first (docs/semantics.md §5), so a crash loses
/// nothing acknowledged: open the same file again and the backlog, timers and
/// outcomes are there. One engine serves a file at a time; opening a file another
/// engine holds fails at once, naming the file.
///
/// ```
/// use activity_core::{activity, ActivityError, Client};
/// use activity_engine::{Engine, EngineConfig};
/// use activity_worker::Worker;
///
/// #[activity(start_to_close = "5s")]
/// async fn double(n: u64) -> Result<u64, ActivityError> {
///     Ok(n * 2)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let path = std::env::temp_dir().join(format!("engine-doc-{}.sqlite", std::process::id()));
/// let engine = Engine::open(EngineConfig::file(&path)).await?;
/// // A second engine on the same file is refused, naming it.
/// let second = Engine::open(EngineConfig::file(&path)).await.unwrap_err();
/// assert!(second.to_string().contains("is locked: another engine has it open"));
///
/// let worker = Worker::builder(engine.protocol()).task_queue("math").build()?;
/// let stop = worker.shutdown_handle();
/// let running = tokio::spawn(worker.run_until(std::future::pending()));
/// let client = Client::new(engine.protocol()).with_task_queue("math");
/// assert_eq!(double::call(&client, 21).await?, 42);
/// stop.shutdown();
/// running.await?;
/// engine.close().await;
/// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    fn from_inner(inner: Arc<Inner>) -> Engine {
        Engine { inner }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the engine on the configured store and starts its timer loop.
    /// Must be called within a tokio runtime.
    pub async fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let store: Arc<dyn Store> = match &config.store {
            StoreLocation::File(path) => {
                let path = path.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || SqliteStore::open(path))
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))??,
                )
            }
            StoreLocation::Memory => Arc::new(SqliteStore::in_memory()?),
            StoreLocation::Postgres(postgres) => {
                let postgres = postgres.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || PostgresStore::open(&postgres))
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))??,
                )
            }
        };
        Self::open_with_store(store, config).await
    }

    /// Opens the engine on an already open store (another backend, or a shared one).
    pub async fn open_with_store(
        store: Arc<dyn Store>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        if config.max_payload_size == 0 {
            return Err(EngineError::Config {
                field: "max_payload_size",
                message: "must be greater than zero".into(),
            });
        }
        if config.timer_batch == 0 {
            return Err(EngineError::Config {
                field: "timer_batch",
                message: "must be greater than zero".into(),
            });
        }
        for (field, value) in [
            ("workflow_task_timeout", config.workflow_task_timeout),
            (
                "workflow_task_retry_initial_interval",
                config.workflow_task_retry_initial_interval,
            ),
        ] {
            if value.is_zero() {
                return Err(EngineError::Config {
                    field,
                    message: "must be greater than zero".into(),
                });
            }
        }
        if config.retention.is_zero() {
            return Err(EngineError::Config {
                field: "retention",
                message: "must be greater than zero (closed runs would be deleted at once)".into(),
            });
        }
        for (field, value, max_field, max) in [
            (
                "history_warn_events",
                config.history_warn_events,
                "history_max_events",
                config.history_max_events,
            ),
            (
                "history_warn_bytes",
                config.history_warn_bytes,
                "history_max_bytes",
                config.history_max_bytes,
            ),
        ] {
            if value == 0 || max == 0 {
                return Err(EngineError::Config {
                    field: if max == 0 { max_field } else { field },
                    message: "must be greater than zero".into(),
                });
            }
            if value > max {
                return Err(EngineError::Config {
                    field,
                    message: format!("({value}) must be at most `{max_field}` ({max})"),
                });
            }
        }
        if config.workflow_task_retry_maximum_interval < config.workflow_task_retry_initial_interval
        {
            return Err(EngineError::Config {
                field: "workflow_task_retry_maximum_interval",
                message: "must be at least `workflow_task_retry_initial_interval`".into(),
            });
        }
        let key = store::run(
            &*store,
            |tx: &mut dyn Tx| -> Result<[u8; KEY_LEN], StoreError> {
                // The first engine on the store makes the key; every other
                // one (another node of a shared database) reads it.
                let candidate = TokenSigner::generate_key()?;
                let bytes = tx.meta_get_or_put("task_token_key", &candidate)?;
                <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "the task-token key is {} bytes, expected {KEY_LEN}",
                        bytes.len()
                    ))
                })
            },
        )
        .await?;
        let (shutdown, _) = watch::channel(false);
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                clock: config.clock.clone(),
                notifiers: Notifiers::default(),
                timer_wake: Arc::new(Notify::new()),
                armed_at: AtomicI64::new(i64::MAX),
                shutdown,
                timer_task: Mutex::new(None),
                validators: Arc::default(),
                dispatch: Arc::new(Dispatch {
                    activities: Waiters::default(),
                    workflows: Waiters::default(),
                    sticky: workflows::StickyRuns::default(),
                    signer: TokenSigner::new(key),
                    workflow_task_timeout: config.workflow_task_timeout,
                }),
                queries: queries::Queries::default(),
                config,
            }),
        };
        let task = tokio::spawn(timer_loop(Arc::downgrade(&engine.inner)));
        *lock(&engine.inner.timer_task) = Some(task);
        tokio::spawn(collector::collector_loop(Arc::downgrade(&engine.inner)));
        let weak = Arc::downgrade(&engine.inner);
        (engine.inner.dispatch.activities).on_unreceived(move |tasks: Vec<ActivityTask>| {
            if let Some(inner) = weak.upgrade() {
                let orphaned = orphans::orphans(&inner.dispatch.signer, &tasks);
                Engine::from_inner(inner).release_orphans(orphaned);
            }
        });
        if let Some(received) = engine.inner.store.wakeups() {
            tokio::spawn(other_nodes(Arc::downgrade(&engine.inner), received));
        }
        Ok(engine)
    }

    /// The engine as a shareable protocol object.
    pub fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        Arc::new(self.clone())
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Stops the timer loop, ends waiting polls (with `Unavailable`), and closes
    /// the store. What was acknowledged is already committed; later calls fail
    /// with `Unavailable`.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        let task = lock(&self.inner.timer_task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.store.close().await;
    }

    fn now_ms(&self) -> i64 {
        to_millis(self.inner.clock.now())
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl Fn(&mut dyn Tx, &mut Effects) -> Result<R, ProtocolError> + Send + 'static,
    ) -> Result<R, ProtocolError> {
        if *self.inner.shutdown.borrow() {
            return Err(closed());
        }
        let dispatch = self.inner.dispatch.clone();
        let now = self.now_ms();
        let shared = self.inner.store.is_shared();
        let history = workflows::HistoryLimits::of(&self.inner.config);
        let (result, effects) = store::run(&*self.inner.store, move |tx: &mut dyn Tx| {
            let mut effects = Effects {
                history,
                ..Effects::default()
            };
            let result = f(tx, &mut effects)?;
            dispatch.hand_off(tx, &mut effects, now)?;
            if shared {
                tx.publish(wakeups(&effects));
            }
            Ok::<_, ProtocolError>((result, effects))
        })
        .await?;
        let orphaned = self.inner.apply(effects);
        self.release_orphans(orphaned);
        Ok(result)
    }

    /// Runs a rule that only reads: on a shared store it locks no rows, so
    /// claims (which skip locked rows) do not pass over what it looks at.
    async fn read<R: Send + 'static>(
        &self,
        f: impl Fn(&mut dyn Tx) -> Result<R, ProtocolError> + Send + 'static,
    ) -> Result<R, ProtocolError> {
        self.run(move |tx, _| {
            tx.reads_only();
            f(tx)
        })
        .await
    }

    fn check_payload(
        &self,
        what: impl FnOnce() -> String,
        size: usize,
    ) -> Result<(), ProtocolError> {
        let limit = self.inner.config.max_payload_size;
        if size > limit {
            return Err(ProtocolError::PayloadTooLarge {
                what: what(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// Refuses a payload whose encoding says JSON but whose bytes do not parse
    /// as JSON (nothing is stored): `field` names it in the error.
    fn check_json(field: &str, payload: &Payload) -> Result<(), ProtocolError> {
        if payload.encoding != Encoding::Json {
            return Ok(());
        }
        match serde_json::from_slice::<serde::de::IgnoredAny>(&payload.data) {
            Ok(_) => Ok(()),
            Err(err) => Err(ProtocolError::invalid_argument(
                field,
                format!(
                    "is not valid JSON although its encoding is `{}`: {err} \
                     (encode values with `Payload::json`)",
                    payload.encoding.as_str()
                ),
            )),
        }
    }

    async fn schedule(
        &self,
        request: ScheduleActivityRequest,
    ) -> Result<ScheduleActivityResponse, ProtocolError> {
        check_name("activity_type", &request.activity_type)?;
        if let Some(id) = &request.activity_id {
            check_name("activity_id", id)?;
        }
        check_trace_context("trace_context", request.trace_context.as_deref())?;
        let options = request.options.validate(None)?;
        check_name("task_queue", &options.task_queue)?;
        let size = request.input.iter().map(Payload::len).sum();
        self.check_payload(
            || format!("the input of activity `{}`", request.activity_type),
            size,
        )?;
        for (n, argument) in request.input.iter().enumerate() {
            Self::check_json(&format!("input[{n}]"), argument)?;
        }
        let activity_id = match request.activity_id {
            Some(id) => id,
            None => random_id()?,
        };
        let now = self.now_ms();
        let mut record = rules::new_record(
            activity_id,
            request.activity_type,
            request.input,
            options,
            now,
        );
        record.trace_context = request.trace_context;
        let validators = self.inner.validators.clone();
        let (checked, record) = if size >= types::CHECK_OUTSIDE_BYTES {
            // A large input is validated outside the store's writer.
            let registration = self.read({
                let record = record.clone();
                move |tx| types::registration(tx, &record)
            });
            match types::Checked::input(validators.clone(), registration.await?, record.clone())
                .await
            {
                Some((checked, record)) => {
                    checked.outcome_now()?;
                    (Some(checked), record)
                }
                None => (None, record),
            }
        } else {
            (None, record)
        };
        let exec = self
            .run(move |tx, fx| {
                types::check_input(tx, &validators, &record, checked.as_ref())?;
                rules::schedule(tx, fx, record.clone())
            })
            .await?;
        tracing::debug!(activity_id = %exec.activity_id, activity_type = %exec.activity_type, task_queue = %exec.task_queue, "scheduled");
        Ok(ScheduleActivityResponse::new(
            ExecutionRef::standalone(exec.activity_id),
            exec.options,
        ))
    }

    async fn poll(
        &self,
        request: PollActivityTaskRequest,
        max: usize,
    ) -> Result<Vec<ActivityTask>, ProtocolError> {
        check_name("task_queue", &request.task_queue)?;
        check_identity(&request.identity)?;
        if let Some(rate) = request.max_task_queue_activities_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ProtocolError::invalid_argument(
                    "max_task_queue_activities_per_second",
                    format!("must be a finite number greater than zero, got {rate}"),
                ));
            }
        }
        let identity = if request.identity.is_empty() {
            "unknown".to_owned()
        } else {
            request.identity
        };
        let wait = request.wait.min(self.inner.config.max_poll_wait);
        let deadline = self.inner.clock.now() + wait;
        let notify = (self.inner.notifiers).subscribe(Topic::ActivityQueue, &request.task_queue);
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut rate = request.max_task_queue_activities_per_second;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.inner.clock.now();
            let now_ms = to_millis(now);
            let (queue, who) = (request.task_queue.clone(), identity.clone());
            let signer = self.inner.dispatch.signer.clone();
            let rate_now = rate.take();
            let claim = self
                .run_claim(move |tx, fx| {
                    let poller = Poller {
                        task_queue: &queue,
                        identity: &who,
                        max,
                    };
                    rules::claim(tx, fx, &signer, &poller, rate_now, now_ms)
                })
                .await?;
            let next = match claim {
                Claim::Tasks(tasks) => {
                    for task in &tasks {
                        tracing::debug!(activity_id = %task.info.activity_id, attempt = task.info.attempt, worker = %identity, "attempt started");
                    }
                    return Ok(tasks);
                }
                Claim::Empty(next) => next,
                Claim::RateLimited(next) => Some(next),
            };
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = self
                .inner
                .recheck(next.map_or(deadline, |n| from_millis(n).min(deadline)));
            let waiters = &self.inner.dispatch.activities;
            let poller = Poller {
                task_queue: &request.task_queue,
                identity: &identity,
                max,
            };
            let handed = self
                .await_work(waiters, &poller, notified, wake, &mut shutdown)
                .await?;
            if let Some(tasks) = handed {
                return Ok(tasks);
            }
        }
    }

    /// Runs a claim in a task of its own, so that a poll that stops waiting (its
    /// caller gave up) while the claim commits does not lose what it claimed: the
    /// attempts go back to their queue (module `orphans`).
    async fn run_claim(
        &self,
        claim: impl Fn(&mut dyn Tx, &mut Effects) -> Result<Claim, ProtocolError> + Send + 'static,
    ) -> Result<Claim, ProtocolError> {
        /// Gives back, when the poll is dropped, a claim sent but not taken.
        struct Answered {
            receiver: oneshot::Receiver<Result<Claim, ProtocolError>>,
            engine: Engine,
        }
        impl Drop for Answered {
            fn drop(&mut self) {
                self.receiver.close();
                if let Ok(Ok(Claim::Tasks(tasks))) = self.receiver.try_recv() {
                    let signer = &self.engine.inner.dispatch.signer;
                    self.engine
                        .release_orphans(orphans::orphans(signer, &tasks));
                }
            }
        }
        let (answer, receiver) = oneshot::channel();
        let engine = self.clone();
        tokio::spawn(async move {
            let claimed = engine.run(claim).await;
            if let Err(Ok(Claim::Tasks(tasks))) = answer.send(claimed) {
                let signer = &engine.inner.dispatch.signer;
                engine.release_orphans(orphans::orphans(signer, &tasks));
            }
        });
        let mut answered = Answered {
            receiver,
            engine: self.clone(),
        };
        (&mut answered.receiver)
            .await
            .unwrap_or_else(|_| Err(closed()))
    }

    /// Waits in line on `queue` (eager dispatch) until work is handed over, the
    /// queue is notified, `wake` passes or the engine closes. `Some` is the work
    /// handed over; `None`: look at the store again.
    async fn await_work<T>(
        &self,
        waiters: &Waiters<T>,
        poller: &Poller<'_>,
        notified: Pin<&mut Notified<'_>>,
        wake: SystemTime,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<T>, ProtocolError> {
        let mut place = waiters.register(poller.task_queue, poller.identity, poller.max);
        tokio::select! {
            handed = place.handed() => return Ok(handed),
            _ = notified => {}
            _ = self.inner.clock.sleep_until(wake) => {}
            _ = shutdown.wait_for(|closed| *closed) => return Err(closed()),
        }
        // A transaction may have taken this poller already: its answer counts.
        Ok(place.leave().await)
    }

    async fn wait(
        &self,
        execution: ExecutionRef,
        wait: Duration,
    ) -> Result<Option<ExecutionOutcome>, ProtocolError> {
        let target = execution.clone();
        let scope = self.read(move |tx| rules::scope_of(tx, &target)).await?;
        let key = rules::waiter_key(&scope, &execution.activity_id);
        let notify = (self.inner.notifiers).subscribe(Topic::ActivityOutcome, &key);
        let deadline = self.inner.clock.now() + wait.min(self.inner.config.max_outcome_wait);
        let mut shutdown = self.inner.shutdown.subscribe();
        let result = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (scope, id) = (scope.clone(), execution.activity_id.clone());
            let what = execution.to_string();
            let found = self
                .read(move |tx| {
                    let exec = tx
                        .execution_by_id(&scope, &id)?
                        .ok_or_else(|| ProtocolError::NotFound { what: what.clone() })?;
                    Ok(rules::outcome(&exec))
                })
                .await;
            match found {
                Ok(Some(outcome)) => break Ok(Some(outcome)),
                Err(e) => break Err(e),
                Ok(None) if self.inner.clock.now() >= deadline => break Ok(None),
                Ok(None) => {}
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = self.inner.clock.sleep_until(self.inner.recheck(deadline)) => {}
                _ = shutdown.wait_for(|closed| *closed) => break Err(closed()),
            }
        };
        result
    }
}

/// Registered types (module `types`).
impl Engine {
    async fn register(&self, registration: WorkerRegistration) -> Result<(), ProtocolError> {
        check_identity(&registration.identity)?;
        for (i, queue) in registration.task_queues.iter().enumerate() {
            check_name(&format!("task_queues[{i}]"), queue)?;
        }
        for (i, activity) in registration.activities.iter().enumerate() {
            check_name(&format!("activities[{i}].name"), &activity.name)?;
        }
        for (i, workflow) in registration.workflows.iter().enumerate() {
            check_name(&format!("workflows[{i}]"), workflow)?;
        }
        self.check_payload(
            || "the worker registration".into(),
            json_size(&registration),
        )?;
        let records = types::records(&self.inner.validators, &registration, self.now_ms())?;
        let count = records.len();
        self.run(move |tx, _| {
            for record in &records {
                tx.put_registered_type(record)?;
            }
            Ok(())
        })
        .await?;
        tracing::debug!(identity = %registration.identity, types = count, "worker registered");
        Ok(())
    }
}

fn json_size<T: serde::Serialize>(value: &T) -> usize {
    // Serializing plain data to a Vec does not fail; count it as too large if it did.
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn closed() -> ProtocolError {
    ProtocolError::Unavailable {
        message: "the engine is closed".into(),
    }
}

fn check_name(field: &str, value: &str) -> Result<(), ProtocolError> {
    if value.trim().is_empty() {
        return Err(ProtocolError::invalid_argument(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ProtocolError::invalid_argument(
            field,
            format!("must be at most {MAX_ID_LEN} bytes, got {}", value.len()),
        ));
    }
    Ok(())
}

/// A trace context must be a W3C `traceparent` of version 00
/// (docs/semantics.md §5.1): `00-` 32 hex digits (the trace id) `-` 16 (the
/// parent span id) `-` 2 (the flags), lowercase.
pub(crate) fn check_trace_context(field: &str, value: Option<&str>) -> Result<(), ProtocolError> {
    let Some(value) = value else { return Ok(()) };
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    if valid {
        return Ok(());
    }
    let shown: String = value.chars().take(80).collect();
    Err(ProtocolError::invalid_argument(
        field,
        format!(
            "`{shown}` is not a W3C traceparent: give `00-<trace id: 32 lowercase hex \
             digits>-<parent span id: 16>-<flags: 2>` (ids not all zero), or none"
        ),
    ))
}

fn check_identity(identity: &str) -> Result<(), ProtocolError> {
    if identity.len() > MAX_ID_LEN {
        return Err(ProtocolError::invalid_argument(
            "identity",
            format!("must be at most {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

fn random_id() -> Result<String, ProtocolError> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ProtocolError::Unavailable {
        message: format!("no randomness for an activity id: {e}"),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A short label of a target for spans: the token's first bytes, or the id.
fn target_label(target: &TaskTarget) -> String {
    match target {
        TaskTarget::Token(token) => {
            let hex = token.to_hex();
            format!("token:{}", hex.get(..16).unwrap_or(&hex))
        }
        TaskTarget::Execution(execution) => execution.to_string(),
    }
}

fn details_size(details: &Option<Payload>) -> usize {
    details.as_ref().map_or(0, Payload::len)
}

/// The operations whose bodies are not elsewhere: each runs its rule in one
/// store transaction.
impl Engine {
    async fn heartbeat(
        &self,
        target: TaskTarget,
        details: Option<Payload>,
    ) -> Result<HeartbeatResponse, ProtocolError> {
        self.check_payload(|| "the heartbeat details".into(), details_size(&details))?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        let cancel = self
            .run(move |tx, fx| rules::heartbeat(tx, fx, &signer, &target, details.clone(), now))
            .await?;
        Ok(HeartbeatResponse::new(cancel))
    }

    async fn complete(&self, target: TaskTarget, result: Payload) -> Result<(), ProtocolError> {
        self.check_payload(|| "the result".into(), result.len())?;
        Self::check_json("result", &result)?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        let validators = self.inner.validators.clone();
        let checked = if result.len() >= types::CHECK_OUTSIDE_BYTES {
            // A large result is parsed and validated outside the store's writer.
            let registration = self.read({
                let (signer, target) = (signer.clone(), target.clone());
                move |tx| match rules::started_attempt(tx, &signer, &target) {
                    Ok(exec) => types::registration(tx, &exec),
                    // Refused below, in the transaction, with its reason.
                    Err(_) => Ok(None),
                }
            });
            let checked =
                types::Checked::result(validators.clone(), registration.await?, result.clone())
                    .await;
            if let Some(checked) = &checked {
                checked.outcome_now()?;
            }
            checked
        } else {
            None
        };
        self.run(move |tx, fx| {
            let report = rules::Report::Completed(&result);
            let Some(exec) = rules::attempt_to_report(tx, &signer, &target, report)? else {
                return Ok(());
            };
            types::check_result(tx, &validators, &exec, &result, checked.as_ref())?;
            rules::complete_started(tx, fx, exec, result.clone(), now)
        })
        .await
    }

    async fn fail(
        &self,
        target: TaskTarget,
        failure: ApplicationFailure,
        last_heartbeat_details: Option<Payload>,
    ) -> Result<(), ProtocolError> {
        let size =
            failure.message.len() + failure.error_type.len() + details_size(&failure.details);
        self.check_payload(|| "the failure (message and details)".into(), size)?;
        self.check_payload(
            || "the last heartbeat details".into(),
            details_size(&last_heartbeat_details),
        )?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        self.run(move |tx, fx| {
            rules::fail(
                tx,
                fx,
                &signer,
                &target,
                failure.clone(),
                last_heartbeat_details.clone(),
                now,
            )
        })
        .await
    }

    async fn canceled(
        &self,
        target: TaskTarget,
        details: Option<Payload>,
    ) -> Result<(), ProtocolError> {
        self.check_payload(|| "the cancellation details".into(), details_size(&details))?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        self.run(move |tx, fx| rules::canceled(tx, fx, &signer, &target, details.clone(), now))
            .await
    }

    async fn cancel(&self, execution: ExecutionRef) -> Result<ExecutionState, ProtocolError> {
        let now = self.now_ms();
        self.run(move |tx, fx| rules::request_cancel(tx, fx, &execution, now))
            .await
    }

    async fn describe(
        &self,
        execution: ExecutionRef,
    ) -> Result<ExecutionDescription, ProtocolError> {
        self.read(move |tx| rules::find(tx, &execution).map(|e| rules::describe(&e)))
            .await
    }

    async fn describe_queue(
        &self,
        task_queue: String,
    ) -> Result<TaskQueueDescription, ProtocolError> {
        check_name("task_queue", &task_queue)?;
        let now = self.now_ms();
        let retention = self.inner.config.poller_retention;
        self.read(move |tx| rules::describe_queue(tx, &task_queue, now, retention))
            .await
    }

    async fn list_queues(&self) -> Result<Vec<TaskQueueDescription>, ProtocolError> {
        let now = self.now_ms();
        let retention = self.inner.config.poller_retention;
        self.run(move |tx, _| rules::list_queues(tx, now, retention))
            .await
    }

    async fn list_executions(
        &self,
        request: ListExecutionsRequest,
    ) -> Result<Vec<ExecutionDescription>, ProtocolError> {
        self.run(move |tx, _| rules::list_executions(tx, &request))
            .await
    }

    async fn cancel_run(&self, workflow: WorkflowRef) -> Result<WorkflowState, ProtocolError> {
        let now = self.now_ms();
        self.run(move |tx, fx| workflows::request_cancel(tx, fx, &workflow, now))
            .await
    }

    async fn terminate_run(
        &self,
        workflow: WorkflowRef,
        reason: String,
        identity: String,
    ) -> Result<WorkflowState, ProtocolError> {
        check_identity(&identity)?;
        self.check_payload(|| "the termination reason".into(), reason.len())?;
        let now = self.now_ms();
        self.run(move |tx, fx| {
            workflows::terminate(tx, fx, &workflow, reason.clone(), identity.clone(), now)
        })
        .await
    }

    async fn describe_run(
        &self,
        workflow: WorkflowRef,
    ) -> Result<WorkflowDescription, ProtocolError> {
        self.read(move |tx| {
            let run = workflows::find_run(tx, &workflow)?;
            let mut description = workflows::describe(&run);
            description.last_task_failure = workflows::last_task_failure(tx, &run)?;
            workflows::describe_deadlines(tx, &run, &mut description)?;
            Ok(description)
        })
        .await
    }

    async fn history(&self, workflow: WorkflowRef) -> Result<Vec<HistoryEvent>, ProtocolError> {
        self.read(move |tx| {
            let run = workflows::find_run(tx, &workflow)?;
            Ok(tx.history(run.key)?)
        })
        .await
    }

    async fn history_page(
        &self,
        workflow: WorkflowRef,
        after: u64,
        max_bytes: u64,
    ) -> Result<Vec<HistoryEvent>, ProtocolError> {
        self.read(move |tx| {
            let run = workflows::find_run(tx, &workflow)?;
            let page = HistoryPage {
                after,
                max_events: MAX_HISTORY_PAGE_EVENTS,
                max_bytes,
            };
            Ok(tx.history_page(run.key, page)?)
        })
        .await
    }

    async fn list_runs(
        &self,
        request: ListWorkflowsRequest,
    ) -> Result<Vec<WorkflowSummary>, ProtocolError> {
        self.read(move |tx| workflows::list(tx, &request)).await
    }

    async fn types(&self) -> Result<Vec<RegisteredType>, ProtocolError> {
        self.read(types::list).await
    }
}

/// Boxes an operation's future, answering with `respond` and traced in `span`.
fn answer<'a, T: 'a>(
    span: tracing::Span,
    call: impl std::future::Future<Output = Result<T, ProtocolError>> + Send + 'a,
    respond: fn(T) -> ProtocolResponse,
) -> BoxFuture<'a, Result<ProtocolResponse, ProtocolError>> {
    Box::pin(async move { call.await.map(respond) }.instrument(span))
}

impl ActivityProtocol for Engine {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        use tracing::debug_span as span;
        use ProtocolRequest as Rq;
        use ProtocolResponse as Rs;
        match request {
            Rq::ScheduleActivity { request } => answer(
                span!("schedule_activity", activity_type = %request.activity_type, activity_id = request.activity_id.as_deref().unwrap_or("")),
                self.schedule(request),
                Rs::ScheduleActivity,
            ),
            Rq::PollActivityTasks { request, max_tasks } => answer(
                span!("poll_activity_tasks", task_queue = %request.task_queue, identity = %request.identity, max_tasks),
                self.poll(request, max_tasks.clamp(1, MAX_TASKS_PER_POLL)),
                Rs::PollActivityTasks,
            ),
            Rq::RecordHeartbeat { target, details } => answer(
                span!("record_heartbeat", target = %target_label(&target)),
                self.heartbeat(target, details),
                Rs::RecordHeartbeat,
            ),
            Rq::CompleteActivity { target, result } => answer(
                span!("complete_activity", target = %target_label(&target)),
                self.complete(target, result),
                Rs::CompleteActivity,
            ),
            Rq::FailActivity {
                target,
                failure,
                last_heartbeat_details,
            } => answer(
                span!("fail_activity", target = %target_label(&target)),
                self.fail(target, failure, last_heartbeat_details),
                Rs::FailActivity,
            ),
            Rq::ReportCanceled { target, details } => answer(
                span!("report_canceled", target = %target_label(&target)),
                self.canceled(target, details),
                Rs::ReportCanceled,
            ),
            Rq::ReleaseActivityTasks { tokens } => answer(
                span!("release_activity_tasks", count = tokens.len()),
                self.release_tasks(tokens),
                Rs::ReleaseActivityTasks,
            ),
            Rq::RequestCancel { execution } => answer(
                span!("request_cancel", execution = %execution),
                self.cancel(execution),
                Rs::RequestCancel,
            ),
            Rq::DescribeExecution { execution } => answer(
                span!("describe_execution", execution = %execution),
                self.describe(execution),
                Rs::DescribeExecution,
            ),
            Rq::WaitOutcome { execution, wait } => answer(
                span!("wait_outcome", execution = %execution),
                self.wait(execution, wait),
                Rs::WaitOutcome,
            ),
            Rq::ListActivityExecutions { request } => answer(
                span!("list_activity_executions"),
                self.list_executions(request),
                Rs::ListActivityExecutions,
            ),
            Rq::ListTaskQueues {} => answer(
                span!("list_task_queues"),
                self.list_queues(),
                Rs::ListTaskQueues,
            ),
            Rq::DescribeTaskQueue { task_queue } => answer(
                span!("describe_task_queue", task_queue = %task_queue),
                self.describe_queue(task_queue),
                Rs::DescribeTaskQueue,
            ),
            Rq::StartWorkflow { request } => answer(
                span!("start_workflow", workflow_id = %request.workflow_id, workflow_type = %request.workflow_type),
                self.start_run(request),
                Rs::StartWorkflow,
            ),
            Rq::PollWorkflowTask { request } => answer(
                span!("poll_workflow_task", task_queue = %request.task_queue, identity = %request.identity),
                self.poll_workflow(request),
                Rs::PollWorkflowTask,
            ),
            Rq::CompleteWorkflowTask { token, commands } => answer(
                span!("complete_workflow_task", target = %target_label(&TaskTarget::Token(token.clone())), commands = commands.len()),
                self.complete_workflow(token, commands),
                Rs::CompleteWorkflowTask,
            ),
            Rq::FailWorkflowTask { token, message } => answer(
                span!("fail_workflow_task", target = %target_label(&TaskTarget::Token(token.clone()))),
                self.fail_workflow(token, message),
                Rs::FailWorkflowTask,
            ),
            Rq::RequestCancelWorkflow { workflow } => answer(
                span!("request_cancel_workflow", workflow = %workflow),
                self.cancel_run(workflow),
                Rs::RequestCancelWorkflow,
            ),
            Rq::TerminateWorkflow {
                workflow,
                reason,
                identity,
            } => answer(
                span!("terminate_workflow", workflow = %workflow, identity = %identity),
                self.terminate_run(workflow, reason, identity),
                Rs::TerminateWorkflow,
            ),
            Rq::ResetWorkflow {
                workflow,
                to_event,
                reason,
                identity,
            } => answer(
                span!("reset_workflow", workflow = %workflow, to_event, identity = %identity),
                self.reset_run(workflow, to_event, reason, identity),
                Rs::ResetWorkflow,
            ),
            Rq::SignalWorkflow {
                workflow,
                signal_name,
                input,
                identity,
            } => answer(
                span!("signal_workflow", workflow = %workflow, signal = %signal_name),
                self.signal_run(workflow, signal_name, input, identity),
                Rs::SignalWorkflow,
            ),
            Rq::SignalWithStartWorkflow {
                request,
                signal_name,
                input,
                identity,
            } => answer(
                span!("signal_with_start_workflow", workflow_id = %request.workflow_id, signal = %signal_name),
                self.signal_with_start_run(request, signal_name, input, identity),
                Rs::SignalWithStartWorkflow,
            ),
            Rq::QueryWorkflow {
                workflow,
                query_name,
                wait,
            } => answer(
                span!("query_workflow", workflow = %workflow, query = %query_name),
                self.query_run(workflow, query_name, wait),
                Rs::QueryWorkflow,
            ),
            Rq::PollWorkflowQuery { request } => answer(
                span!("poll_workflow_query", task_queue = %request.task_queue, identity = %request.identity),
                self.poll_query(request),
                Rs::PollWorkflowQuery,
            ),
            Rq::AnswerWorkflowQuery {
                query_id,
                answer: reply,
            } => answer(
                span!("answer_workflow_query", query_id = %query_id),
                self.answer_query(query_id, reply),
                Rs::AnswerWorkflowQuery,
            ),
            Rq::DescribeWorkflow { workflow } => answer(
                span!("describe_workflow", workflow = %workflow),
                self.describe_run(workflow),
                Rs::DescribeWorkflow,
            ),
            Rq::WorkflowHistory { workflow } => answer(
                span!("workflow_history", workflow = %workflow),
                self.history(workflow),
                Rs::WorkflowHistory,
            ),
            Rq::WorkflowHistoryPage {
                workflow,
                after,
                max_bytes,
            } => answer(
                span!("workflow_history_page", workflow = %workflow, after, max_bytes),
                self.history_page(workflow, after, max_bytes),
                Rs::WorkflowHistoryPage,
            ),
            Rq::WaitWorkflowOutcome { workflow, wait } => answer(
                span!("wait_workflow_outcome", workflow = %workflow),
                self.wait_run(workflow, wait),
                Rs::WaitWorkflowOutcome,
            ),
            Rq::ListWorkflows { request } => answer(
                span!("list_workflows"),
                self.list_runs(request),
                Rs::ListWorkflows,
            ),
            Rq::RegisterWorker { registration } => answer(
                span!("register_worker", identity = %registration.identity, activities = registration.activities.len(), workflows = registration.workflows.len()),
                self.register(registration),
                Rs::RegisterWorker,
            ),
            Rq::ListTypes {} => answer(span!("list_types"), self.types(), Rs::ListTypes),
        }
    }
}
