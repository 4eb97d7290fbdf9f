//! The workflow context and its deterministic futures, and [`RunDriver`], the
//! handle the worker's executor uses to feed history into a run.
//!
//! All state of a run lives behind one mutex shared by the context, the futures
//! it creates and the driver. Futures resolve only when the driver applies an
//! event (or a local activity's outcome); each keeps the waker of its last poll
//! and is woken then, so combinators (`join_all`, `select`) re-poll exactly the
//! futures that changed, in a deterministic order.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime},
};

use crate::{
    caller::{ActivityCaller, ActivityRequest},
    definition::ActivityDefinition,
    failure::{ActivityCallError, ActivityFailure, CanceledFailure, Failure, RetryState},
    options::{ActivityOptions, CancellationType, ValidatedOptions},
    payload::{ActivityInput, Payload},
    protocol::ProtocolError,
};

use super::history::{Command, LocalActivityOutcome};

/// What a workflow knows about its run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkflowInfo {
    /// The workflow id.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
    /// The workflow type.
    pub workflow_type: String,
    /// The run's task queue.
    pub task_queue: String,
}

impl WorkflowInfo {
    /// Builds info.
    pub fn new(
        workflow_id: impl Into<String>,
        run_id: impl Into<String>,
        workflow_type: impl Into<String>,
        task_queue: impl Into<String>,
    ) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            workflow_type: workflow_type.into(),
            task_queue: task_queue.into(),
        }
    }
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: None,
            waker: None,
        }
    }
}

/// Every slot and watcher keeps the count of futures waiting on the context
/// (`RunState::waiting`) up to date: a workflow whose future is pending while
/// that count is zero waits on something the context does not drive (the
/// determinism guard, SEMANTICS 3.1).
impl<T> Slot<T> {
    fn resolve(&mut self, value: T, waiting: &mut usize) -> bool {
        if self.value.is_some() {
            return false;
        }
        self.value = Some(value);
        if let Some(waker) = self.waker.take() {
            *waiting -= 1;
            waker.wake();
        }
        true
    }

    fn poll(&mut self, cx: &mut Context<'_>, waiting: &mut usize) -> Poll<T>
    where
        T: Clone,
    {
        match &self.value {
            Some(value) => Poll::Ready(value.clone()),
            None => {
                if self.waker.replace(cx.waker().clone()).is_none() {
                    *waiting += 1;
                }
                Poll::Pending
            }
        }
    }

    /// The future of this slot is gone: nobody waits on it any more.
    fn forget(&mut self, waiting: &mut usize) {
        if self.waker.take().is_some() {
            *waiting -= 1;
        }
    }

    fn is_resolved(&self) -> bool {
        self.value.is_some()
    }
}

/// The wakers of the futures waiting for one condition (a cancel request, the
/// next signal of a name), by future.
#[derive(Default)]
struct Watchers {
    wakers: HashMap<u64, Waker>,
}

impl Watchers {
    fn watch(&mut self, id: u64, cx: &Context<'_>, waiting: &mut usize) {
        if self.wakers.insert(id, cx.waker().clone()).is_none() {
            *waiting += 1;
        }
    }

    fn forget(&mut self, id: u64, waiting: &mut usize) {
        if self.wakers.remove(&id).is_some() {
            *waiting -= 1;
        }
    }

    fn wake_all(&mut self, waiting: &mut usize) {
        for (_, waker) in self.wakers.drain() {
            *waiting -= 1;
            waker.wake();
        }
    }
}

/// A local activity the code asked for, to be run by the worker.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LocalActivityRequest {
    /// Sequence number.
    pub seq: u32,
    /// The activity type.
    pub activity_type: String,
    /// The serialized arguments.
    pub input: Vec<Payload>,
    /// The validated options.
    pub options: ValidatedOptions,
    /// The first attempt to run (later than 1 after a durable backoff).
    pub attempt: u32,
    /// Time already spent since the code asked for it (workflow time), counted
    /// against `schedule_to_close`.
    pub elapsed: Duration,
}

/// SplitMix64: a tiny deterministic generator, seeded from the run id.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct RunState {
    info: WorkflowInfo,
    now: SystemTime,
    rng: Rng,
    /// Whether the code runs an activation that history already recorded.
    replaying: bool,
    /// Futures of the context that wait (registered a waker) right now.
    waiting: usize,
    /// Ids of futures that wait through [`Watchers`].
    next_watch: u64,
    cancel_requested: bool,
    cancel_watchers: Watchers,
    next_activity: u32,
    next_timer: u32,
    next_local: u32,
    commands: Vec<Command>,
    activities: HashMap<u32, Slot<Result<Payload, ActivityFailure>>>,
    activity_meta: HashMap<u32, (String, String)>,
    timers: HashMap<u32, Slot<bool>>,
    locals: HashMap<u32, Slot<LocalActivityOutcome>>,
    local_requests: Vec<LocalActivityRequest>,
    /// Outcomes found in history, per local activity, oldest first.
    recorded_locals: HashMap<u32, VecDeque<LocalActivityOutcome>>,
    /// Local activities not resolved yet: their request and when it was made.
    local_pending: HashMap<u32, (LocalActivityRequest, SystemTime)>,
    /// Durable backoff timers (by timer seq) and the local activity each retries.
    local_backoffs: HashMap<u32, u32>,
}

/// The context of a workflow run: activities (through their stubs), local
/// activities, timers, time, randomness, cancellation. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowContext {
    state: Arc<Mutex<RunState>>,
}

impl fmt::Debug for WorkflowContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowContext")
            .field("info", &self.lock().info)
            .finish_non_exhaustive()
    }
}

fn seed(run_id: &str) -> u64 {
    // FNV-1a: stable across platforms and releases, unlike std's hasher.
    run_id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl WorkflowContext {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's info.
    pub fn info(&self) -> WorkflowInfo {
        self.lock().info.clone()
    }

    /// The current time, deterministically: the start time of the current
    /// workflow task, the same on replay.
    pub fn now(&self) -> SystemTime {
        self.lock().now
    }

    /// A deterministic random number (the same sequence on replay).
    pub fn random_u64(&self) -> u64 {
        self.lock().rng.next()
    }

    /// A deterministic version-4 UUID.
    pub fn uuid(&self) -> String {
        let (a, b) = {
            let mut state = self.lock();
            (state.rng.next(), state.rng.next())
        };
        let bytes = ((u128::from(a) << 64) | u128::from(b)).to_be_bytes();
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Whether cancellation of the run was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.lock().cancel_requested
    }

    /// Resolves when cancellation of the run is requested.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            id: self.watch_id(),
            ctx: self.clone(),
        }
    }

    /// Whether the code is replaying an activation that history already
    /// recorded (after a worker restart or a cache eviction), rather than
    /// running for the first time. Side effects meant to happen once (a log
    /// line, a metric) check it; [`logger`](Self::logger) does.
    pub fn is_replaying(&self) -> bool {
        self.lock().replaying
    }

    /// A logger whose lines are emitted once per run, not again on each replay:
    /// `ctx.logger().info(format_args!("charged {cents}"))`. Lines are `tracing`
    /// events with target `workflow`, inside the worker's `workflow_task` span
    /// (workflow type, id and run id).
    pub fn logger(&self) -> WorkflowLogger {
        WorkflowLogger { ctx: self.clone() }
    }

    /// A future of slot `seq` (of the map `slots` picks) is dropped: it no
    /// longer waits.
    fn forget<T>(
        &self,
        seq: u32,
        slots: impl FnOnce(&mut RunState) -> (&mut HashMap<u32, Slot<T>>, &mut usize),
    ) {
        let mut guard = self.lock();
        let (slots, waiting) = slots(&mut guard);
        if let Some(slot) = slots.get_mut(&seq) {
            slot.forget(waiting);
        }
    }

    fn watch_id(&self) -> u64 {
        let mut state = self.lock();
        state.next_watch += 1;
        state.next_watch
    }

    /// A durable timer: resolves after `duration` of workflow time.
    pub fn sleep(&self, duration: Duration) -> Timer {
        let mut state = self.lock();
        state.next_timer += 1;
        let seq = state.next_timer;
        state.commands.push(Command::StartTimer { seq, duration });
        state.timers.insert(seq, Slot::default());
        Timer {
            ctx: self.clone(),
            seq,
        }
    }

    /// The caller of local activities: `resize::call(&ctx.local(), …)`.
    pub fn local(&self) -> LocalActivities {
        LocalActivities { ctx: self.clone() }
    }
}

/// A durable timer of a workflow.
#[must_use = "a timer does nothing unless awaited"]
pub struct Timer {
    ctx: WorkflowContext,
    seq: u32,
}

impl Timer {
    /// Cancels the timer if it has not fired; awaiting it then resolves at once.
    pub fn cancel(&self) {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        let fired = state.timers.get(&self.seq).is_some_and(Slot::is_resolved);
        if !fired {
            state.commands.push(Command::CancelTimer { seq: self.seq });
            if let Some(slot) = state.timers.get_mut(&self.seq) {
                slot.resolve(false, &mut state.waiting);
            }
        }
    }
}

impl Future for Timer {
    /// `true` if the timer fired, `false` if it was cancelled.
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        match state.timers.get_mut(&self.seq) {
            Some(slot) => slot.poll(cx, &mut state.waiting),
            None => Poll::Ready(false),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.ctx
            .forget(self.seq, |s| (&mut s.timers, &mut s.waiting));
    }
}

/// The future of [`WorkflowContext::cancelled`]: resolves when cancellation
/// of the run is requested.
#[must_use = "a cancellation future does nothing unless awaited"]
pub struct Cancelled {
    ctx: WorkflowContext,
    id: u64,
}

impl Future for Cancelled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        if state.cancel_requested {
            state.cancel_watchers.forget(self.id, &mut state.waiting);
            return Poll::Ready(());
        }
        state.cancel_watchers.watch(self.id, cx, &mut state.waiting);
        Poll::Pending
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        state.cancel_watchers.forget(self.id, &mut state.waiting);
    }
}

/// The replay-aware logger of a workflow ([`WorkflowContext::logger`]): each
/// method emits a `tracing` event with target `workflow` while the code runs
/// for the first time, and nothing while it replays.
#[derive(Clone, Debug)]
pub struct WorkflowLogger {
    ctx: WorkflowContext,
}

macro_rules! log_levels {
    ($($(#[$doc:meta])* $name:ident => $level:ident;)*) => {
        impl WorkflowLogger {
            $(
                $(#[$doc])*
                pub fn $name(&self, message: impl fmt::Display) {
                    if !self.ctx.is_replaying() {
                        tracing::event!(target: "workflow", tracing::Level::$level, "{message}");
                    }
                }
            )*
        }
    };
}

log_levels! {
    /// Logs at level ERROR, unless replaying.
    error => ERROR;
    /// Logs at level WARN, unless replaying.
    warn => WARN;
    /// Logs at level INFO, unless replaying.
    info => INFO;
    /// Logs at level DEBUG, unless replaying.
    debug => DEBUG;
    /// Logs at level TRACE, unless replaying.
    trace => TRACE;
}

/// The future of an activity called from a workflow. `cancel()` requests its
/// cancellation according to its cancellation type (SEMANTICS 1.5).
#[must_use = "an activity call does nothing unless awaited"]
pub struct WorkflowActivity<A: ActivityDefinition> {
    ctx: WorkflowContext,
    seq: Option<u32>,
    early: Option<ActivityCallError>,
    cancellation_type: CancellationType,
    _activity: PhantomData<fn() -> A>,
}

impl<A: ActivityDefinition> WorkflowActivity<A> {
    /// Requests cancellation: `TryCancel` resolves the call with a canceled error at
    /// once, `WaitCancellationCompleted` when the activity acknowledges, `Abandon`
    /// sends no request and resolves at once.
    pub fn cancel(&self) {
        let Some(seq) = self.seq else {
            return;
        };
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        if state.activities.get(&seq).is_some_and(Slot::is_resolved) {
            return;
        }
        if self.cancellation_type != CancellationType::Abandon {
            state.commands.push(Command::RequestCancelActivity { seq });
        }
        if self.cancellation_type != CancellationType::WaitCancellationCompleted {
            let (activity_type, activity_id) =
                state.activity_meta.get(&seq).cloned().unwrap_or_default();
            let failure = ActivityFailure::new(
                activity_type,
                activity_id,
                0,
                RetryState::CancelRequested,
                Failure::Canceled(CanceledFailure::default()),
            );
            if let Some(slot) = state.activities.get_mut(&seq) {
                slot.resolve(Err(failure), &mut state.waiting);
            }
        }
    }
}

impl<A: ActivityDefinition> Future for WorkflowActivity<A> {
    type Output = Result<A::Output, ActivityCallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(err) = self.early.take() {
            return Poll::Ready(Err(err));
        }
        let Some(seq) = self.seq else {
            return Poll::Ready(Err(internal(
                "an activity future was polled after it completed",
            )));
        };
        let outcome = {
            let mut guard = self.ctx.lock();
            let state = &mut *guard;
            match state.activities.get_mut(&seq) {
                Some(slot) => slot.poll(cx, &mut state.waiting),
                None => return Poll::Ready(Err(unknown_seq("activity", seq))),
            }
        };
        outcome.map(|result| match result {
            Ok(payload) => Ok(payload.decode_as(&format!("result of activity `{}`", A::NAME))?),
            Err(failure) => Err(ActivityCallError::Failed(failure)),
        })
    }
}

impl<A: ActivityDefinition> Unpin for WorkflowActivity<A> {}

impl<A: ActivityDefinition> Drop for WorkflowActivity<A> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            self.ctx
                .forget(seq, |s| (&mut s.activities, &mut s.waiting));
        }
    }
}

fn internal(message: impl Into<String>) -> ActivityCallError {
    ActivityCallError::Protocol(ProtocolError::Internal {
        message: message.into(),
    })
}

fn unknown_seq(what: &str, seq: u32) -> ActivityCallError {
    internal(format!("the workflow context has no {what} with seq {seq}"))
}

impl ActivityCaller for WorkflowContext {
    type Call<'a, A: ActivityDefinition> = WorkflowActivity<A>;

    fn call_activity<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> WorkflowActivity<A> {
        let mut future = WorkflowActivity {
            ctx: self.clone(),
            seq: None,
            early: None,
            cancellation_type: request.cancellation_type,
            _activity: PhantomData,
        };
        let mut state = self.lock();
        let options = request.effective_options();
        let checked = options
            .validate(Some(&state.info.task_queue))
            .map_err(ActivityCallError::from)
            .and_then(|_| request.input.to_payloads().map_err(ActivityCallError::from));
        let input = match checked {
            Ok(input) => input,
            Err(err) => {
                future.early = Some(err);
                return future;
            }
        };
        state.next_activity += 1;
        let seq = state.next_activity;
        let activity_id = request
            .activity_id
            .clone()
            .unwrap_or_else(|| seq.to_string());
        let options = with_queue(options, &state.info.task_queue);
        state.commands.push(Command::ScheduleActivity {
            seq,
            activity_id: activity_id.clone(),
            activity_type: A::NAME.to_owned(),
            input,
            options,
        });
        state.activities.insert(seq, Slot::default());
        state
            .activity_meta
            .insert(seq, (A::NAME.to_owned(), activity_id));
        future.seq = Some(seq);
        future
    }
}

fn with_queue(options: ActivityOptions, queue: &str) -> ActivityOptions {
    if options.task_queue.is_some() {
        options
    } else {
        options.task_queue(queue)
    }
}

/// Calls activities as local activities (SEMANTICS 1.7): run by the worker that
/// runs the workflow, recorded in history before the workflow sees the outcome,
/// never run again on replay. Failed attempts are retried by the worker with the
/// retry policy; a backoff longer than 2 s is recorded and waited on a durable
/// timer (the workflow task ends; the next attempt runs when the timer fires, on
/// whichever worker then runs the workflow), not in the worker's memory.
#[derive(Clone, Debug)]
pub struct LocalActivities {
    ctx: WorkflowContext,
}

/// The future of a local activity.
#[must_use = "a local activity does nothing unless awaited"]
pub struct LocalActivity<A: ActivityDefinition> {
    ctx: WorkflowContext,
    seq: Option<u32>,
    early: Option<ActivityCallError>,
    _activity: PhantomData<fn() -> A>,
}

impl<A: ActivityDefinition> Unpin for LocalActivity<A> {}

impl<A: ActivityDefinition> Drop for LocalActivity<A> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            self.ctx.forget(seq, |s| (&mut s.locals, &mut s.waiting));
        }
    }
}

impl<A: ActivityDefinition> Future for LocalActivity<A> {
    type Output = Result<A::Output, ActivityCallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(err) = self.early.take() {
            return Poll::Ready(Err(err));
        }
        let Some(seq) = self.seq else {
            return Poll::Ready(Err(internal(
                "a local activity future was polled after it completed",
            )));
        };
        let outcome = {
            let mut guard = self.ctx.lock();
            let state = &mut *guard;
            match state.locals.get_mut(&seq) {
                Some(slot) => slot.poll(cx, &mut state.waiting),
                None => return Poll::Ready(Err(unknown_seq("local activity", seq))),
            }
        };
        outcome.map(|outcome| match outcome {
            LocalActivityOutcome::Completed(payload) => {
                Ok(payload.decode_as(&format!("result of local activity `{}`", A::NAME))?)
            }
            LocalActivityOutcome::Failed(failure) => Err(ActivityCallError::Failed(failure)),
            // `resolve_local` never resolves a slot with a backoff.
            LocalActivityOutcome::Backoff { failure, .. } => {
                Err(ActivityCallError::Failed(ActivityFailure::new(
                    A::NAME,
                    format!("local-{seq}"),
                    0,
                    RetryState::Timeout,
                    failure,
                )))
            }
        })
    }
}

impl ActivityCaller for LocalActivities {
    type Call<'a, A: ActivityDefinition> = LocalActivity<A>;

    fn call_activity<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> LocalActivity<A> {
        let mut future = LocalActivity {
            ctx: self.ctx.clone(),
            seq: None,
            early: None,
            _activity: PhantomData,
        };
        let mut state = self.ctx.lock();
        // A local activity runs in this worker: its queue is irrelevant.
        let options = with_queue(request.effective_options(), &state.info.task_queue);
        let checked = options
            .validate(None)
            .map_err(ActivityCallError::from)
            .and_then(|validated| {
                request
                    .input
                    .to_payloads()
                    .map(|input| (validated, input))
                    .map_err(ActivityCallError::from)
            });
        let (validated, input) = match checked {
            Ok(found) => found,
            Err(err) => {
                future.early = Some(err);
                return future;
            }
        };
        state.next_local += 1;
        let seq = state.next_local;
        // The executor runs it, or on replay takes its outcome from history.
        let request = LocalActivityRequest {
            seq,
            activity_type: A::NAME.to_owned(),
            input,
            options: validated,
            attempt: 1,
            elapsed: Duration::ZERO,
        };
        let now = state.now;
        state.local_pending.insert(seq, (request.clone(), now));
        state.local_requests.push(request);
        state.locals.insert(seq, Slot::default());
        future.seq = Some(seq);
        future
    }
}

/// Drives one run: the worker's executor applies history events and local
/// activity outcomes through it, and collects the commands the code produced.
pub struct RunDriver {
    ctx: WorkflowContext,
}

impl fmt::Debug for RunDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunDriver").field("ctx", &self.ctx).finish()
    }
}

impl RunDriver {
    /// A new run's context and its driver, with `now` as the current time.
    pub fn new(info: WorkflowInfo, now: SystemTime) -> Self {
        let rng = Rng(seed(&info.run_id));
        Self {
            ctx: WorkflowContext {
                state: Arc::new(Mutex::new(RunState {
                    info,
                    now,
                    rng,
                    replaying: false,
                    waiting: 0,
                    next_watch: 0,
                    cancel_requested: false,
                    cancel_watchers: Watchers::default(),
                    next_activity: 0,
                    next_timer: 0,
                    next_local: 0,
                    commands: Vec::new(),
                    activities: HashMap::new(),
                    activity_meta: HashMap::new(),
                    timers: HashMap::new(),
                    locals: HashMap::new(),
                    local_requests: Vec::new(),
                    recorded_locals: HashMap::new(),
                    local_pending: HashMap::new(),
                    local_backoffs: HashMap::new(),
                })),
            },
        }
    }

    /// The context to give the workflow function.
    pub fn context(&self) -> WorkflowContext {
        self.ctx.clone()
    }

    /// Sets the current workflow time (the start of the current workflow task).
    pub fn set_now(&self, now: SystemTime) {
        self.ctx.lock().now = now;
    }

    /// Resolves activity `seq` (completed, or its final failure). Returns whether
    /// it was still pending.
    pub fn resolve_activity(&self, seq: u32, outcome: Result<Payload, ActivityFailure>) -> bool {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        state
            .activities
            .get_mut(&seq)
            .is_some_and(|slot| slot.resolve(outcome, &mut state.waiting))
    }

    /// Fires timer `seq`. A local activity's backoff timer asks the executor for
    /// its next attempt.
    pub fn fire_timer(&self, seq: u32) -> bool {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        if let Some(local) = state.local_backoffs.remove(&seq) {
            let now = state.now;
            if let Some((request, asked_at)) = state.local_pending.get_mut(&local) {
                let mut retry = request.clone();
                retry.elapsed = now.duration_since(*asked_at).unwrap_or_default();
                state.local_requests.push(retry);
                return true;
            }
            return false;
        }
        state
            .timers
            .get_mut(&seq)
            .is_some_and(|slot| slot.resolve(true, &mut state.waiting))
    }

    /// Marks the run cancel-requested.
    pub fn request_cancel(&self) {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        state.cancel_requested = true;
        state.cancel_watchers.wake_all(&mut state.waiting);
    }

    /// Sets whether the code now runs an activation that history already
    /// recorded ([`WorkflowContext::is_replaying`]).
    pub fn set_replaying(&self, replaying: bool) {
        self.ctx.lock().replaying = replaying;
    }

    /// Whether some future of the context waits to be woken (an activity, a
    /// timer, a local activity, a signal, a cancel request, …). A run whose
    /// code is pending while this is `false` waits on something the context
    /// does not drive, and would never be woken.
    pub fn waits_on_context(&self) -> bool {
        self.ctx.lock().waiting > 0
    }

    /// Remembers a local activity outcome found in history, so that the
    /// executor resolves it without running the function again.
    pub fn preload_local_outcome(&self, seq: u32, outcome: LocalActivityOutcome) {
        self.ctx
            .lock()
            .recorded_locals
            .entry(seq)
            .or_default()
            .push_back(outcome);
    }

    /// The next outcome of local activity `seq` recorded in history, if any
    /// (taken): a backoff, or its final outcome.
    pub fn take_recorded_local(&self, seq: u32) -> Option<LocalActivityOutcome> {
        let mut state = self.ctx.lock();
        let recorded = state.recorded_locals.get_mut(&seq)?;
        let outcome = recorded.pop_front();
        if recorded.is_empty() {
            state.recorded_locals.remove(&seq);
        }
        outcome
    }

    /// Whether cancellation of the run was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.ctx.is_cancel_requested()
    }

    /// The local activities the code asked for since the last call.
    pub fn take_local_requests(&self) -> Vec<LocalActivityRequest> {
        std::mem::take(&mut self.ctx.lock().local_requests)
    }

    /// Resolves local activity `seq` with the outcome the worker got, and records
    /// the command that writes it to history.
    ///
    /// A [`LocalActivityOutcome::Backoff`] resolves nothing: it is recorded with
    /// a durable timer, and when the timer fires the executor is asked for the
    /// next attempt ([`take_local_requests`](Self::take_local_requests)).
    pub fn resolve_local(&self, seq: u32, activity_type: &str, outcome: LocalActivityOutcome) {
        let mut guard = self.ctx.lock();
        let state = &mut *guard;
        state.commands.push(Command::RecordLocalActivity {
            seq,
            activity_type: activity_type.to_owned(),
            outcome: outcome.clone(),
        });
        if let LocalActivityOutcome::Backoff {
            attempt, backoff, ..
        } = outcome
        {
            if let Some((request, _)) = state.local_pending.get_mut(&seq) {
                request.attempt = attempt.saturating_add(1);
            }
            state.next_timer += 1;
            let timer = state.next_timer;
            state.local_backoffs.insert(timer, seq);
            state.commands.push(Command::StartTimer {
                seq: timer,
                duration: backoff,
            });
            return;
        }
        state.local_pending.remove(&seq);
        if let Some(slot) = state.locals.get_mut(&seq) {
            slot.resolve(outcome, &mut state.waiting);
        }
    }

    /// The commands produced since the last call, in order.
    pub fn take_commands(&self) -> Vec<Command> {
        std::mem::take(&mut self.ctx.lock().commands)
    }

    /// Adds a command produced by the executor itself (the run's completion).
    pub fn push_command(&self, command: Command) {
        self.ctx.lock().commands.push(command);
    }
}
