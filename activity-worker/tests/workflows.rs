//! Workflows end to end: the real engine (in-memory SQLite, virtual clock) and
//! real workers, docs/semantics.md §3 and §1.5/§1.7 from the caller's side.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use activity_core::{
    activity, workflow,
    workflow::{select, Either, EventKind, LocalActivityOutcome, WorkflowCallError, WorkflowState},
    ActivityContext, ActivityError, ActivityProtocol, CancellationType, Client, Failure,
    ProtocolError, State, WorkflowContext, WorkflowError,
};
use activity_engine::VirtualClock;

use activity_test_support as support;
use activity_worker::{ShutdownHandle, Worker, WorkerReport};
use support::TestEngine;
use tokio::{sync::Notify, time::Instant};

/// Counts activity bodies and opens gates, shared with every worker.
#[derive(Default)]
struct Probe {
    runs: Mutex<Vec<String>>,
    gate: Notify,
    cleaned_up: AtomicU32,
}

impl Probe {
    fn ran(&self, what: impl Into<String>) {
        self.runs.lock().unwrap().push(what.into());
    }

    fn count(&self, what: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == what)
            .count()
    }
}

#[activity(start_to_close = "1m")]
async fn step(probe: State<Probe>, name: String) -> Result<String, ActivityError> {
    probe.ran(name.clone());
    Ok(format!("{name} done"))
}

/// Waits until the test opens the gate.
#[activity(start_to_close = "1h")]
async fn gated(probe: State<Probe>, name: String) -> Result<String, ActivityError> {
    probe.ran(name.clone());
    probe.gate.notified().await;
    Ok(format!("{name} done"))
}

#[activity(start_to_close = "1m")]
async fn slow(probe: State<Probe>, millis: u64) -> Result<String, ActivityError> {
    probe.ran("slow");
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok("slow done".into())
}

/// Heartbeats until cancelled, then acknowledges.
#[activity(start_to_close = "1h", heartbeat = "2s")]
async fn until_cancelled(ctx: ActivityContext, probe: State<Probe>) -> Result<(), ActivityError> {
    probe.ran("until_cancelled");
    loop {
        ctx.heartbeat(&())?;
        tokio::select! {
            reason = ctx.cancelled() => {
                probe.cleaned_up.fetch_add(1, Ordering::SeqCst);
                return Err(ActivityError::canceled_with(&reason.to_string())?);
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[activity(start_to_close = "10s")]
async fn local_count(probe: State<Probe>, n: u32) -> Result<u32, ActivityError> {
    probe.ran("local_count");
    Ok(n + 1)
}

#[workflow]
async fn three_steps(ctx: WorkflowContext) -> Result<Vec<String>, WorkflowError> {
    let a = step::call(&ctx, "one".into()).task_queue(ACTS).await?;
    let b = gated::call(&ctx, "two".into()).task_queue(ACTS).await?;
    let c = step::call(&ctx, "three".into()).task_queue(ACTS).await?;
    Ok(vec![a, b, c])
}

#[workflow]
async fn race(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    let timer = ctx.sleep(Duration::from_secs(5));
    let activity = slow::call(&ctx, 1_000).task_queue(ACTS);
    let winner = match select(activity, timer).await {
        Either::Left((result, _timer)) => format!("activity: {}", result?),
        Either::Right((_fired, _activity)) => "timer".to_owned(),
    };
    let after = gated::call(&ctx, format!("after {winner}"))
        .task_queue(ACTS)
        .await?;
    Ok(after)
}

#[workflow]
async fn nap(ctx: WorkflowContext, hours: u64) -> Result<u64, WorkflowError> {
    let before = ctx.now();
    ctx.sleep(Duration::from_secs(hours * 3600)).await;
    let slept = ctx.now().duration_since(before).unwrap_or_default();
    Ok(slept.as_secs())
}

#[workflow]
async fn with_local(ctx: WorkflowContext) -> Result<u32, WorkflowError> {
    let n = local_count::call(&ctx.local(), 41).await?;
    gated::call(&ctx, "after local".into())
        .task_queue(ACTS)
        .await?;
    Ok(n)
}

/// Fails its first attempt; the retry policy waits an hour before the second.
#[activity(
    start_to_close = "10s",
    retry(initial_interval = "1h", maximum_attempts = 3)
)]
async fn flaky_local(ctx: ActivityContext, probe: State<Probe>) -> Result<u32, ActivityError> {
    let attempt = ctx.info().attempt;
    probe.ran(format!("flaky_local attempt {attempt}"));
    if attempt == 1 {
        return Err(ActivityError::retryable("first attempt fails"));
    }
    Ok(attempt)
}

#[workflow]
async fn with_flaky_local(ctx: WorkflowContext) -> Result<(u32, u64), WorkflowError> {
    let before = ctx.now();
    let attempt = flaky_local::call(&ctx.local()).await?;
    let waited = ctx.now().duration_since(before).unwrap_or_default();
    Ok((attempt, waited.as_secs()))
}

#[workflow]
async fn cancellable(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    until_cancelled::call(&ctx).await?;
    Ok(())
}

#[workflow]
async fn cancel_activity(ctx: WorkflowContext, wait: bool) -> Result<String, WorkflowError> {
    let kind = if wait {
        CancellationType::WaitCancellationCompleted
    } else {
        CancellationType::TryCancel
    };
    let running =
        std::future::IntoFuture::into_future(until_cancelled::call(&ctx).cancellation_type(kind));
    ctx.sleep(Duration::from_secs(3)).await;
    running.cancel();
    match running.await {
        Err(activity_core::ActivityCallError::Failed(failure)) => match failure.cause {
            Failure::Canceled(_) => Ok("canceled".into()),
            other => Ok(format!("failed: {other}")),
        },
        other => Ok(format!("unexpected: {other:?}")),
    }
}

/// Heartbeats until cancelled, recording the reason it was given.
#[activity(start_to_close = "1h", heartbeat = "2s")]
async fn records_its_reason(
    ctx: ActivityContext,
    probe: State<Probe>,
    name: String,
) -> Result<(), ActivityError> {
    probe.ran(format!("{name} started"));
    loop {
        ctx.heartbeat(&())?;
        tokio::select! {
            reason = ctx.cancelled() => {
                probe.ran(format!("{name}: {reason}"));
                return Err(ActivityError::canceled_with(&reason.to_string())?);
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Starts a `TryCancel` and an `Abandon` activity, and returns while they run.
#[workflow]
async fn returns_while_activities_run(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _try_cancel = std::future::IntoFuture::into_future(
        records_its_reason::call(&ctx, "try-cancel".into())
            .task_queue(ACTS)
            .cancellation_type(CancellationType::TryCancel),
    );
    let _abandon = std::future::IntoFuture::into_future(
        records_its_reason::call(&ctx, "abandon".into())
            .task_queue(ACTS)
            .cancellation_type(CancellationType::Abandon),
    );
    ctx.sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// Cancels, waiting for the outcome, an activity on a queue nobody polls:
/// answers whether the canceled error says it never started.
#[workflow]
async fn cancels_before_it_starts(ctx: WorkflowContext) -> Result<bool, WorkflowError> {
    let waiting = std::future::IntoFuture::into_future(
        step::call(&ctx, "never".into())
            .task_queue("nobody-polls-this")
            .cancellation_type(CancellationType::WaitCancellationCompleted),
    );
    ctx.sleep(Duration::from_secs(1)).await;
    waiting.cancel();
    match waiting.await {
        Err(activity_core::ActivityCallError::Failed(failure)) => match failure.cause {
            Failure::Canceled(canceled) => Ok(canceled.not_started),
            _ => Ok(false),
        },
        _ => Ok(false),
    }
}

/// How many times `counted_steps` started from its first line.
static COUNTED_STEPS_STARTS: AtomicU32 = AtomicU32::new(0);

/// Three activities one after the other: four workflow tasks.
#[workflow]
async fn counted_steps(ctx: WorkflowContext, tag: String) -> Result<Vec<String>, WorkflowError> {
    COUNTED_STEPS_STARTS.fetch_add(1, Ordering::SeqCst);
    let mut done = Vec::new();
    for n in 1..=3 {
        done.push(
            step::call(&ctx, format!("{tag} {n}"))
                .task_queue(ACTS)
                .await?,
        );
    }
    Ok(done)
}

/// The queue of the activity worker that lives through a whole test, while
/// workflow workers come and go.
const ACTS: &str = "acts";

/// Which code version `evolving` runs (the test flips it to simulate a deploy).
static EVOLVING_VERSION: AtomicU32 = AtomicU32::new(1);

#[workflow]
async fn evolving(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    if EVOLVING_VERSION.load(Ordering::SeqCst) == 1 {
        step::call(&ctx, "v1".into()).task_queue(ACTS).await?;
    } else {
        ctx.sleep(Duration::from_secs(1)).await;
    }
    Ok(gated::call(&ctx, "evolving".into())
        .task_queue(ACTS)
        .await?)
}

struct Setup {
    engine: TestEngine,
    client: Client,
    probe: Arc<Probe>,
    _activities: (ShutdownHandle, tokio::task::JoinHandle<WorkerReport>),
}

async fn setup() -> Setup {
    setup_with(activity_test_support::engine_config().with_clock(Arc::new(VirtualClock::new())))
        .await
}

async fn setup_with(config: activity_engine::EngineConfig) -> Setup {
    let engine = TestEngine::open(config).await;
    let client = Client::new(engine.protocol()).with_task_queue("main");
    let probe = Arc::new(Probe::default());
    let activities = Worker::builder(engine.protocol())
        .task_queue(ACTS)
        .identity("activities")
        .poll_wait(Duration::from_secs(60))
        .shared_state(probe.clone())
        .build()
        .expect("worker builds");
    let handle = activities.shutdown_handle();
    let running = tokio::spawn(activities.run_until(std::future::pending()));
    Setup {
        engine,
        client,
        probe,
        _activities: (handle, running),
    }
}

impl Setup {
    fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.engine.protocol()
    }

    fn worker(&self, name: &str) -> Worker {
        Worker::builder(self.protocol())
            .task_queue("main")
            .identity(name)
            .poll_wait(Duration::from_secs(60))
            .shared_state(self.probe.clone())
            .build()
            .expect("worker builds")
    }

    fn spawn(&self, name: &str) -> (ShutdownHandle, tokio::task::JoinHandle<WorkerReport>) {
        let worker = self.worker(name);
        let handle = worker.shutdown_handle();
        (
            handle,
            tokio::spawn(worker.run_until(std::future::pending())),
        )
    }

    async fn wait_for_run(&self, what: &str, times: usize) {
        while self.probe.count(what) < times {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `count` executions of `activity_type` were closed because their run
/// closed in `state`: CANCELED, retry state WorkflowClosed, no cancel request
/// (docs/semantics.md §1.5).
async fn assert_closed_with_their_run(
    s: &Setup,
    activity_type: &str,
    count: usize,
    state: WorkflowState,
) {
    let mut request = activity_core::protocol::ListExecutionsRequest::new();
    request.activity_type = Some(activity_type.into());
    let executions = s
        .protocol()
        .list_activity_executions(request)
        .await
        .unwrap();
    assert_eq!(executions.len(), count, "{executions:?}");
    for d in executions {
        assert!(!d.cancel_requested, "no cancel request is recorded: {d:?}");
        assert_eq!(d.state, activity_core::protocol::ExecutionState::Canceled);
        assert_eq!(
            d.retry_state,
            Some(activity_core::RetryState::WorkflowClosed)
        );
        let Some(Failure::Canceled(canceled)) = &d.last_failure else {
            panic!("{d:?}")
        };
        assert_eq!(canceled.workflow_closed, Some(state), "{d:?}");
    }
}

/// No workflow task of the run failed (nondeterminism, a guard, a panic).
fn assert_no_task_failed(history: &[activity_core::workflow::HistoryEvent]) {
    assert!(
        !history
            .iter()
            .any(|e| matches!(e.kind, EventKind::WorkflowTaskFailed { .. })),
        "no workflow task failed: {history:#?}"
    );
}

async fn stop(
    (handle, running): (ShutdownHandle, tokio::task::JoinHandle<WorkerReport>),
) -> WorkerReport {
    handle.shutdown();
    running.await.expect("worker task")
}

/// Runs `three_steps` on a worker named `first` until its second activity, stops
/// that worker (its cached instance goes with it), lets a worker named `second`
/// finish the run, and checks each activity ran once and nothing was scheduled
/// twice or failed on the way.
async fn finish_on_a_successor(first: &str, second: &str) {
    let s = setup().await;
    let before = s.spawn(first);
    let handle = three_steps::start(&s.client)
        .workflow_id(format!("order-{first}-{second}"))
        .await
        .unwrap();
    s.wait_for_run("two", 1).await;
    stop(before).await;
    let after = s.spawn(second);
    s.probe.gate.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the run completes within 10 virtual minutes (no failing workflow tasks)")
        .unwrap();
    assert_eq!(result, ["one done", "two done", "three done"]);
    for name in ["one", "two", "three"] {
        assert_eq!(s.probe.count(name), 1, "activity `{name}` ran once");
    }
    let history = handle.history().await.unwrap();
    let count = |pred: fn(&EventKind) -> bool| history.iter().filter(|e| pred(&e.kind)).count();
    let scheduled = count(|k| matches!(k, EventKind::ActivityScheduled { .. }));
    assert_eq!(scheduled, 3, "replay scheduled nothing twice: {history:#?}");
    let failed = count(|k| matches!(k, EventKind::WorkflowTaskFailed { .. }));
    assert_eq!(failed, 0, "no workflow task failed: {history:#?}");
    stop(after).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_worker_replays_a_workflow_whose_worker_died_and_runs_each_activity_once() {
    finish_on_a_successor("first", "second").await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_worker_with_the_same_identity_fetches_the_history_it_lacks() {
    // The successor has the same identity but an empty cache: the engine sends it
    // only the events after the task its predecessor ran, and it fetches the rest.
    finish_on_a_successor("same", "same").await;
}

#[tokio::test(start_paused = true)]
async fn select_resolves_the_same_way_on_replay() {
    let s = setup().await;
    let first = s.spawn("first");
    let handle = race::start(&s.client).await.unwrap();
    s.wait_for_run("after activity: slow done", 1).await;
    // Let the losing timer fire while the workflow waits, then replay elsewhere.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop(first).await;
    let second = s.spawn("second");
    s.probe.gate.notify_one();
    assert_eq!(
        handle.result().await.unwrap(),
        "after activity: slow done done"
    );
    assert_no_task_failed(&handle.history().await.unwrap());
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn timers_run_on_the_virtual_clock() {
    let s = setup().await;
    let worker = s.spawn("w");
    let began = Instant::now();
    let real = std::time::Instant::now();
    let slept = nap::start(&s.client, 5)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(slept, 5 * 3600, "workflow time moved by the timer");
    assert!(began.elapsed() >= Duration::from_secs(5 * 3600));
    assert!(
        real.elapsed() < Duration::from_secs(20),
        "five hours took {:?}",
        real.elapsed()
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_local_activity_is_recorded_and_not_run_again_on_replay() {
    let s = setup().await;
    let first = s.spawn("first");
    let handle = with_local::start(&s.client).await.unwrap();
    s.wait_for_run("after local", 1).await;
    stop(first).await;
    let second = s.spawn("second");
    s.probe.gate.notify_one();
    assert_eq!(handle.result().await.unwrap(), 42);
    assert_eq!(
        s.probe.count("local_count"),
        1,
        "the local activity ran once"
    );
    let history = handle.history().await.unwrap();
    let recorded: Vec<_> = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LocalActivityRecorded { .. }))
        .collect();
    assert_eq!(recorded.len(), 1, "{history:#?}");
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn a_long_local_activity_backoff_is_a_durable_timer_that_survives_its_worker() {
    let s = setup().await;
    let first = s.spawn("first");
    let handle = with_flaky_local::start(&s.client).await.unwrap();
    s.wait_for_run("flaky_local attempt 1", 1).await;
    // The hour of backoff is recorded, not slept in the worker: the first task is
    // answered (its worker can go away) and a timer holds the retry.
    let history = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let history = handle.history().await.unwrap();
            if history
                .iter()
                .any(|e| matches!(e.kind, EventKind::TimerStarted { .. }))
            {
                return history;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a backoff timer is started within 10 virtual minutes");
    let backoff = history.iter().find_map(|e| match &e.kind {
        EventKind::LocalActivityRecorded {
            outcome:
                LocalActivityOutcome::Backoff {
                    attempt, backoff, ..
                },
            ..
        } => Some((*attempt, *backoff)),
        _ => None,
    });
    assert_eq!(
        backoff,
        Some((1, Duration::from_secs(3600))),
        "{history:#?}"
    );
    stop(first).await;

    let second = s.spawn("second");
    let (attempt, waited) = tokio::time::timeout(Duration::from_secs(4 * 3600), handle.result())
        .await
        .expect("the retry runs after the timer")
        .unwrap();
    assert_eq!(attempt, 2);
    assert!(waited >= 3600, "the workflow saw the hour pass: {waited} s");
    assert_eq!(
        s.probe.count("flaky_local attempt 1"),
        1,
        "not run again on replay"
    );
    assert_eq!(s.probe.count("flaky_local attempt 2"), 1);
    let history = handle.history().await.unwrap();
    let names: Vec<_> = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::LocalActivityRecorded { .. }
                    | EventKind::TimerStarted { .. }
                    | EventKind::TimerFired { .. }
            )
        })
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        names,
        [
            "LocalActivityRecorded",
            "TimerStarted",
            "TimerFired",
            "LocalActivityRecorded"
        ]
    );
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn a_cached_run_retries_its_local_activity_when_the_backoff_timer_fires() {
    let s = setup().await;
    let worker = s.spawn("only");
    let handle = with_flaky_local::start(&s.client).await.unwrap();
    let (attempt, waited) = tokio::time::timeout(Duration::from_secs(4 * 3600), handle.result())
        .await
        .expect("the retry runs after the timer")
        .unwrap();
    assert_eq!((attempt, waited >= 3600), (2, true));
    assert_eq!(s.probe.count("flaky_local attempt 1"), 1);
    assert_eq!(s.probe.count("flaky_local attempt 2"), 1);
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_second_run_with_a_running_workflow_id_is_refused() {
    let s = setup().await;
    three_steps::start(&s.client)
        .workflow_id("unique")
        .await
        .unwrap();
    let err = three_steps::start(&s.client)
        .workflow_id("unique")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkflowCallError::Protocol(ProtocolError::AlreadyExists { .. })
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn nondeterministic_code_fails_the_task_not_the_workflow_and_resumes_when_fixed() {
    let s = setup().await;
    EVOLVING_VERSION.store(1, Ordering::SeqCst);
    let first = s.spawn("first");
    let handle = evolving::start(&s.client).await.unwrap();
    s.wait_for_run("evolving", 1).await;
    stop(first).await;
    // A deploy changes the code: it now starts a timer where history has an activity.
    EVOLVING_VERSION.store(2, Ordering::SeqCst);
    let broken = s.spawn("broken");
    s.probe.gate.notify_one();
    let failure = first_task_failure(&handle).await;
    assert!(failure.contains("nondeterminism"), "{failure}");
    assert!(
        failure.contains("ActivityScheduled(seq 1, `step`)"),
        "names the expected event: {failure}"
    );
    assert!(
        failure.contains("StartTimer(seq 1"),
        "names the command found: {failure}"
    );
    assert_eq!(
        handle.describe().await.unwrap().state,
        WorkflowState::Running
    );
    stop(broken).await;
    // The fix is deployed: the retried task replays and the workflow completes.
    EVOLVING_VERSION.store(1, Ordering::SeqCst);
    let fixed = s.spawn("fixed");
    assert_eq!(handle.result().await.unwrap(), "evolving done");
    stop(fixed).await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_workflow_reaches_its_running_activities() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = cancellable::start(&s.client).await.unwrap();
    s.wait_for_run("until_cancelled", 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.cancel().await.unwrap();
    let err = handle.result().await.unwrap_err();
    assert!(matches!(err, WorkflowCallError::Canceled), "{err}");
    assert_eq!(
        s.probe.cleaned_up.load(Ordering::SeqCst),
        1,
        "the activity cleaned up"
    );
    let description = handle.describe().await.unwrap();
    assert_eq!(description.state, WorkflowState::Canceled);
    assert!(description.cancel_requested);
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn try_cancel_resolves_at_once_and_wait_cancellation_completed_waits_for_the_activity() {
    let s = setup().await;
    let worker = s.spawn("w");
    for wait in [false, true] {
        let handle = cancel_activity::start(&s.client, wait).await.unwrap();
        assert_eq!(handle.result().await.unwrap(), "canceled");
        let history = handle.history().await.unwrap();
        let position =
            |pred: &dyn Fn(&EventKind) -> bool| history.iter().position(|e| pred(&e.kind));
        let activity_closed = position(&|k| matches!(k, EventKind::ActivityFailed { .. }));
        let workflow_closed =
            position(&|k| matches!(k, EventKind::WorkflowCompleted { .. })).unwrap();
        if wait {
            let closed = activity_closed.expect("the activity acknowledged");
            assert!(
                closed < workflow_closed,
                "waited for the acknowledgement: {history:#?}"
            );
        } else {
            assert!(
                activity_closed.is_none_or(|closed| closed > workflow_closed),
                "did not wait: {history:#?}"
            );
        }
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn the_typed_client_describes_and_lists_the_history_of_a_run() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = three_steps::start(&s.client)
        .workflow_id("described")
        .await
        .unwrap();
    s.wait_for_run("two", 1).await;
    let running = handle.describe().await.unwrap();
    assert_eq!(running.workflow_id, "described");
    assert_eq!(running.workflow_type, "three_steps");
    assert_eq!(running.state, WorkflowState::Running);
    s.probe.gate.notify_one();
    handle.result().await.unwrap();
    let done = handle.describe().await.unwrap();
    assert_eq!(done.state, WorkflowState::Completed);
    let history = handle.history().await.unwrap();
    assert!(matches!(history[0].kind, EventKind::WorkflowStarted { .. }));
    assert!(matches!(
        history.last().unwrap().kind,
        EventKind::WorkflowCompleted { .. }
    ));
    assert_eq!(done.history_length, history.len() as u64);
    for (i, event) in history.iter().enumerate() {
        assert_eq!(event.event_id, i as u64 + 1, "event ids have no gaps");
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_cache_of_zero_replays_the_history_on_every_task_and_one_of_a_thousand_does_not() {
    let s = setup().await;
    for (cache, starts) in [(0, 4), (1000, 1)] {
        let worker = Worker::builder(s.protocol())
            .task_queue("main")
            .identity(format!("cache-{cache}"))
            .workflow_cache_size(cache)
            .shared_state(s.probe.clone())
            .build()
            .expect("worker builds");
        let handle = worker.shutdown_handle();
        let running = tokio::spawn(worker.run_until(std::future::pending()));
        COUNTED_STEPS_STARTS.store(0, Ordering::SeqCst);
        let tag = format!("cache {cache}");
        let run = counted_steps::start(&s.client, tag.clone()).await.unwrap();
        let result = run.result().await.unwrap();
        assert_eq!(result.len(), 3);
        assert_eq!(
            COUNTED_STEPS_STARTS.load(Ordering::SeqCst),
            starts,
            "with a cache of {cache}, the workflow function started {starts} time(s) for its four tasks"
        );
        for n in 1..=3 {
            assert_eq!(
                s.probe.count(&format!("{tag} {n}")),
                1,
                "each activity ran once"
            );
        }
        let history = run.history().await.unwrap();
        assert!(
            !history
                .iter()
                .any(|e| matches!(e.kind, EventKind::WorkflowTaskFailed { .. })),
            "every replay matched its history: {history:#?}"
        );
        stop((handle, running)).await;
    }
}

// ---------------------------------------------------------------- determinism guard

#[workflow]
async fn real_sleep(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    step::call(&ctx, "before the real sleep".into())
        .task_queue(ACTS)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[workflow]
async fn tokio_channel(ctx: WorkflowContext) -> Result<Option<u32>, WorkflowError> {
    let (_sender, mut receiver) = tokio::sync::mpsc::channel::<u32>(1);
    let _ = ctx;
    Ok(receiver.recv().await)
}

#[workflow]
async fn spawned_task(ctx: WorkflowContext) -> Result<u32, WorkflowError> {
    let _ = ctx;
    tokio::spawn(async { 5 })
        .await
        .map_err(|e| WorkflowError::application("Join", e))
}

/// Waits on a context timer and a real sleep together: the timer drives it.
#[workflow]
async fn timer_beside_real_sleep(ctx: WorkflowContext) -> Result<bool, WorkflowError> {
    let real = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
    Ok(
        match select(ctx.sleep(Duration::from_secs(60)), real).await {
            Either::Left((fired, _)) => fired,
            Either::Right(_) => false,
        },
    )
}

#[workflow]
async fn panics(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = ctx;
    panic!("the order book is inconsistent");
}

/// The first `WorkflowTaskFailed` message of the run, once there is one.
async fn first_task_failure<W: activity_core::WorkflowDefinition>(
    handle: &activity_core::WorkflowHandle<W>,
) -> String {
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let history = handle.history().await.unwrap();
            if let Some(message) = history.iter().find_map(|e| match &e.kind {
                EventKind::WorkflowTaskFailed { message } => Some(message.clone()),
                _ => None,
            }) {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a workflow task fails within 10 virtual minutes")
}

#[tokio::test(start_paused = true)]
async fn awaiting_a_future_not_driven_by_the_context_fails_the_task_with_a_named_error() {
    let s = setup().await;
    let worker = s.spawn("w");
    let sleeping = real_sleep::start(&s.client).await.unwrap();
    let channel = tokio_channel::start(&s.client).await.unwrap();
    let spawned = spawned_task::start(&s.client).await.unwrap();
    for (workflow, message) in [
        ("real_sleep", first_task_failure(&sleeping).await),
        ("tokio_channel", first_task_failure(&channel).await),
        ("spawned_task", first_task_failure(&spawned).await),
    ] {
        assert!(
            message.contains(&format!("workflow `{workflow}`"))
                && message.contains("awaited a future not driven by WorkflowContext")
                && message.contains("use ctx.sleep"),
            "{message}"
        );
    }
    // The activity before the real sleep ran once; the workflows are not failed.
    assert_eq!(s.probe.count("before the real sleep"), 1);
    for state in [
        sleeping.describe().await.unwrap().state,
        channel.describe().await.unwrap().state,
        spawned.describe().await.unwrap().state,
    ] {
        assert_eq!(state, WorkflowState::Running);
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_context_future_beside_a_foreign_one_keeps_the_workflow_going() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = timer_beside_real_sleep::start(&s.client).await.unwrap();
    assert!(handle.result().await.unwrap(), "the context timer won");
    assert_no_task_failed(&handle.history().await.unwrap());
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_workflow_fails_its_task_not_the_run_and_the_worker_goes_on() {
    let s = setup().await;
    let worker = s.spawn("w");
    let broken = panics::start(&s.client).await.unwrap();
    let message = first_task_failure(&broken).await;
    assert!(
        message.contains("workflow `panics`") && message.contains("the order book is inconsistent"),
        "{message}"
    );
    assert_eq!(
        broken.describe().await.unwrap().state,
        WorkflowState::Running
    );
    // The same worker still runs other workflows.
    let fine = nap::start(&s.client, 1).await.unwrap();
    assert_eq!(fine.result().await.unwrap(), 3600);
    stop(worker).await;
}

// ---------------------------------------------------------------- replay-aware logger

#[workflow]
async fn logged(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let log = ctx.logger();
    log.info("logged: begin");
    step::call(&ctx, "logged one".into())
        .task_queue(ACTS)
        .await?;
    log.info(format_args!("logged: after {}", "one"));
    gated::call(&ctx, "logged two".into())
        .task_queue(ACTS)
        .await?;
    log.warn("logged: after two");
    Ok(())
}

/// Collects the messages of `tracing` events with target `workflow`.
#[derive(Clone, Default)]
struct WorkflowLines(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WorkflowLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if event.metadata().target() == "workflow" {
            let mut message = Message(None);
            event.record(&mut message);
            self.0.lock().unwrap().extend(message.0);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_workflow_logger_does_not_repeat_lines_on_replay() {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = WorkflowLines::default();
    // The test's runtime runs every task on this thread.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let s = setup().await;
    let first = s.spawn("first");
    let handle = logged::start(&s.client).await.unwrap();
    s.wait_for_run("logged two", 1).await;
    stop(first).await;
    // Another worker replays the two activations the first one ran.
    let second = s.spawn("second");
    s.probe.gate.notify_one();
    handle.result().await.unwrap();
    assert_eq!(
        *lines.0.lock().unwrap(),
        ["logged: begin", "logged: after one", "logged: after two"]
    );
    stop(second).await;
}

// ---------------------------------------------------------------- terminate

#[workflow]
async fn terminated_midway(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = until_cancelled::call(&ctx).await;
    step::call(&ctx, "after the termination".into())
        .task_queue(ACTS)
        .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_terminated_run_closes_at_once_its_activity_stops_and_no_code_runs() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = terminated_midway::start(&s.client).await.unwrap();
    s.wait_for_run("until_cancelled", 1).await;
    let state = handle.terminate("the operator says so").await.unwrap();
    assert_eq!(state, WorkflowState::Terminated);
    let err = handle.result().await.unwrap_err();
    assert!(
        matches!(&err, WorkflowCallError::Terminated { reason } if reason == "the operator says so"),
        "{err}"
    );
    // The running activity is cancelled and cleans up.
    tokio::time::timeout(Duration::from_secs(60), async {
        while s.probe.cleaned_up.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the activity's context is cancelled within a virtual minute");
    // No workflow code ran after the termination, and none will.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(s.probe.count("after the termination"), 0);
    let history = handle.history().await.unwrap();
    match &history.last().unwrap().kind {
        EventKind::WorkflowTerminated { reason, identity } => {
            assert_eq!(reason, "the operator says so");
            assert!(identity.starts_with("client-"), "{identity}");
        }
        other => panic!("the history ends with {other:?}"),
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_of_a_type_no_worker_has_shows_why_in_describe_and_can_be_terminated() {
    let s = setup().await;
    let worker = s.spawn("w");
    let protocol = s.protocol();
    let run = protocol
        .start_workflow(activity_core::workflow::StartWorkflowRequest::new(
            "ghost",
            "not_deployed",
            "main",
            vec![],
        ))
        .await
        .unwrap();
    let described = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let d = protocol.describe_workflow(run.clone()).await.unwrap();
            if d.task_failures > 0 {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the task fails within 10 virtual minutes");
    let message = described.last_task_failure.unwrap_or_default();
    assert!(
        message.contains("workflow type `not_deployed` is not registered")
            && message.contains("three_steps")
            && message.contains("terminated_midway"),
        "the message lists the types the worker has: {message}"
    );
    assert_eq!(described.state, WorkflowState::Running);
    let state = protocol
        .terminate_workflow(run.clone(), "not deployed".into(), "test".into())
        .await
        .unwrap();
    assert_eq!(state, WorkflowState::Terminated);
    assert_eq!(
        protocol.describe_workflow(run).await.unwrap().state,
        WorkflowState::Terminated
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn s1_5_a_run_returning_while_its_activities_run_closes_them_with_workflow_closed_and_no_request(
) {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = returns_while_activities_run::start(&s.client)
        .await
        .unwrap();
    handle.result().await.unwrap();
    for name in ["try-cancel", "abandon"] {
        s.wait_for_run(&format!("{name}: workflow closed"), 1).await;
        assert_eq!(s.probe.count(&format!("{name}: cancellation requested")), 0);
    }
    assert_closed_with_their_run(&s, "records_its_reason", 2, WorkflowState::Completed).await;
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn s1_5_a_wait_cancellation_completed_caller_learns_the_activity_never_started() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = cancels_before_it_starts::start(&s.client).await.unwrap();
    assert!(
        handle.result().await.unwrap(),
        "the canceled error says it never started"
    );
    stop(worker).await;
}

// ---------------------------------------------------------- continue-as-new

/// Runs one activity per run and continues as new until `left` is 0; the
/// result counts the runs and names the last activity's result.
#[workflow]
async fn looping(ctx: WorkflowContext, left: u32, runs: u32) -> Result<String, WorkflowError> {
    let done = step::call(&ctx, format!("loop {left}"))
        .task_queue(ACTS)
        .await?;
    if left == 0 {
        return Ok(format!("{} runs, last: {done}", runs + 1));
    }
    looping::continue_as_new(&ctx, left - 1, runs + 1).await
}

/// Leaves an activity running (nobody polls its queue) and continues as new
/// once; the second run completes.
#[workflow]
async fn continues_with_an_open_activity(
    ctx: WorkflowContext,
    again: bool,
) -> Result<u32, WorkflowError> {
    if !again {
        return Ok(2);
    }
    let _open = std::future::IntoFuture::into_future(
        step::call(&ctx, "never".into()).task_queue("nobody-polls-this"),
    );
    ctx.sleep(Duration::from_secs(1)).await;
    ctx.continue_as_new::<continues_with_an_open_activity, _>((false,))
        .await
}

#[tokio::test(start_paused = true)]
async fn s3_1_a_workflow_continued_as_new_a_hundred_times_reaches_a_handle_started_before_it() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = looping::start(&s.client, 99, 0)
        .workflow_id("looping")
        .await
        .unwrap();
    let first = handle.workflow().clone();
    let result = tokio::time::timeout(Duration::from_secs(3600), handle.result())
        .await
        .expect("the chain completes within a virtual hour")
        .unwrap();
    assert_eq!(result, "100 runs, last: loop 0 done");
    for n in 0..100 {
        assert_eq!(s.probe.count(&format!("loop {n}")), 1, "run {n} ran once");
    }
    // Follow the chain run by run: each closed as ContinuedAsNew naming the
    // next, each history as small as the first.
    let protocol = s.protocol();
    let mut run = first;
    let mut lengths = Vec::new();
    let last = loop {
        let d = protocol.describe_workflow(run.clone()).await.unwrap();
        let history = protocol.workflow_history(run.clone()).await.unwrap();
        assert_no_task_failed(&history);
        assert_eq!(d.history_length, history.len() as u64);
        lengths.push(d.history_length);
        match d.outcome {
            Some(activity_core::workflow::WorkflowOutcome::ContinuedAsNew { new_run_id }) => {
                assert_eq!(d.state, WorkflowState::ContinuedAsNew);
                match &history.last().unwrap().kind {
                    EventKind::WorkflowContinuedAsNew {
                        new_run_id: named,
                        input,
                    } => {
                        assert_eq!(named, &new_run_id);
                        assert_eq!(input.len(), 2, "{input:?}");
                    }
                    other => panic!("the history ends with {other:?}"),
                }
                run = activity_core::workflow::WorkflowRef::run("looping", new_run_id);
            }
            other => break (d.state, other),
        }
    };
    assert_eq!(last.0, WorkflowState::Completed, "{:?}", last.1);
    assert_eq!(lengths.len(), 100, "100 runs: {lengths:?}");
    assert!(
        lengths.iter().all(|&n| n == lengths[0]),
        "no run's history grows: {lengths:?}"
    );
    assert!(lengths[0] <= 12, "{lengths:?}");
    // The latest run of the id is the last one; waiting on it answers the result.
    let latest = protocol
        .wait_workflow_outcome(
            activity_core::workflow::WorkflowRef::latest("looping"),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            latest,
            Some(activity_core::workflow::WorkflowOutcome::Completed(_))
        ),
        "{latest:?}"
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn s3_1_waiting_on_the_latest_run_follows_a_continue_as_new_to_the_final_outcome() {
    let s = setup().await;
    let worker = s.spawn("w");
    let handle = continues_with_an_open_activity::start(&s.client, true)
        .workflow_id("continues")
        .await
        .unwrap();
    let first = handle.workflow().clone();
    // Started before the run continues: the wait follows it to the new run.
    let outcome = s
        .protocol()
        .wait_workflow_outcome(
            activity_core::workflow::WorkflowRef::latest("continues"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let Some(activity_core::workflow::WorkflowOutcome::Completed(result)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(result.decode::<u32>().unwrap(), 2);
    assert_eq!(handle.result().await.unwrap(), 2);
    let d = s.protocol().describe_workflow(first).await.unwrap();
    assert_eq!(d.state, WorkflowState::ContinuedAsNew);
    // The old run's open activity was closed as for any closing run.
    assert_closed_with_their_run(&s, "step", 1, WorkflowState::ContinuedAsNew).await;
    stop(worker).await;
}

/// Real clock: waits on the latest run started while the chain continues as
/// new (before, between and after its runs) all reach the final result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_1_waits_on_the_latest_run_racing_continue_as_new_all_reach_the_final_result() {
    let s = setup_with(activity_test_support::engine_config()).await;
    let worker = s.spawn("racer");
    for round in 0..20 {
        let id = format!("looping-{round}");
        let handle = looping::start(&s.client, 5, 0)
            .workflow_id(id.clone())
            .await
            .unwrap();
        let mut waits = Vec::new();
        for n in 0..8 {
            let protocol = s.protocol();
            let latest = activity_core::workflow::WorkflowRef::latest(id.clone());
            waits.push(tokio::spawn(async move {
                for _ in 0..n * (round % 4) {
                    tokio::task::yield_now().await;
                }
                protocol
                    .wait_workflow_outcome(latest, Duration::from_secs(30))
                    .await
            }));
        }
        let result = tokio::time::timeout(Duration::from_secs(30), handle.result())
            .await
            .expect("the chain completes")
            .unwrap();
        assert_eq!(result, "6 runs, last: loop 0 done");
        for wait in waits {
            let outcome = wait.await.unwrap().unwrap();
            let Some(activity_core::workflow::WorkflowOutcome::Completed(payload)) = outcome else {
                panic!("round {round}: {outcome:?}")
            };
            assert_eq!(payload.decode::<String>().unwrap(), result);
        }
    }
    stop(worker).await;
}

/// Which code version `redeployed` runs (its own switch: tests run at once).
static REDEPLOYED_VERSION: AtomicU32 = AtomicU32::new(1);

/// Version 1 waits on a gated activity after its first step; version 2
/// sleeps and runs another step there instead.
#[workflow]
async fn redeployed(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    let lucky = ctx.random_u64() % 1000;
    step::call(&ctx, format!("first step {lucky}"))
        .task_queue(ACTS)
        .await?;
    if REDEPLOYED_VERSION.load(Ordering::SeqCst) == 1 {
        return Ok(gated::call(&ctx, "v1 second".into())
            .task_queue(ACTS)
            .await?);
    }
    ctx.sleep(Duration::from_secs(1)).await;
    let second = step::call(&ctx, "v2 second".into())
        .task_queue(ACTS)
        .await?;
    Ok(format!("{second} after {lucky}"))
}

/// docs/semantics.md §3.1: after a deploy whose code fails a run's tasks with
/// nondeterminism, a reset to the task where the new code departs from the
/// history lets the new code redo that task and finish; the old run is
/// terminated naming the reset, and its handle follows to the new run.
#[tokio::test(start_paused = true)]
async fn a_reset_after_a_nondeterministic_deploy_lets_the_new_code_finish_the_run() {
    let s = setup().await;
    REDEPLOYED_VERSION.store(1, Ordering::SeqCst);
    let v1 = s.spawn("v1");
    let handle = redeployed::start(&s.client)
        .workflow_id("redeployed-1")
        .await
        .unwrap();
    s.wait_for_run("v1 second", 1).await;
    stop(v1).await;
    let first_step = s
        .probe
        .runs
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.starts_with("first step "))
        .cloned()
        .expect("the first step ran");
    let lucky = first_step.trim_start_matches("first step ").to_owned();
    // The deploy: version 2 departs from the history at the second task.
    REDEPLOYED_VERSION.store(2, Ordering::SeqCst);
    let v2 = s.spawn("v2");
    s.probe.gate.notify_one();
    let failure = first_task_failure(&handle).await;
    assert!(failure.contains("nondeterminism"), "{failure}");
    let history = handle.history().await.unwrap();
    let completed: Vec<u64> = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. }))
        .map(|e| e.event_id)
        .collect();
    assert_eq!(completed.len(), 2, "{history:#?}");
    // An event that is not a WorkflowTaskCompleted is refused, naming the choices.
    let err = handle.reset(1, "wrong event").await.unwrap_err();
    let choices = format!("one of [{}, {}]", completed[0], completed[1]);
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, message }
            if field == "to_event" && message.contains("WorkflowStarted") && message.contains(&choices)),
        "{err:?}"
    );
    let reset = handle
        .reset(completed[1], "deploy 2 changed the second step")
        .await
        .unwrap();
    assert_ne!(reset.workflow().run_id, handle.workflow().run_id);
    // The old handle follows to the new run, which the new code finishes.
    let result = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the reset run completes")
        .unwrap();
    // The replayed code drew the random value the history was written with.
    assert_eq!(result, format!("v2 second done after {lucky}"));
    assert_eq!(
        s.probe.count(&first_step),
        1,
        "resolved before the reset point"
    );
    let old = handle.describe().await.unwrap();
    assert_eq!(old.state, WorkflowState::Terminated);
    let Some(activity_core::workflow::WorkflowOutcome::Terminated { reason, new_run_id }) =
        old.outcome
    else {
        panic!("{old:?}")
    };
    assert_eq!(new_run_id, reset.workflow().run_id);
    assert!(
        reason.contains(&format!("reset to event {}", completed[1]))
            && reason.contains("deploy 2 changed the second step"),
        "{reason}"
    );
    // The new run: the old history before that task's answer, the reset
    // recorded as the task's failure, then the new code's commands.
    let new_history = reset.history().await.unwrap();
    let cut = (completed[1] - 1) as usize;
    assert_eq!(
        new_history[1..cut]
            .iter()
            .map(|e| &e.kind)
            .collect::<Vec<_>>(),
        history[1..cut].iter().map(|e| &e.kind).collect::<Vec<_>>()
    );
    let EventKind::WorkflowTaskFailed { message } = &new_history[cut].kind else {
        panic!("{:#?}", new_history[cut])
    };
    assert!(
        message.contains("reset to event")
            && message.contains(handle.workflow().run_id.as_deref().unwrap())
            && message.contains("deploy 2 changed the second step"),
        "{message}"
    );
    assert!(new_history
        .iter()
        .any(|e| matches!(e.kind, EventKind::TimerStarted { .. })));
    assert_eq!(
        reset.describe().await.unwrap().state,
        WorkflowState::Completed
    );
    stop(v2).await;
}

/// docs/semantics.md §3: the typed start sets the run and execution
/// timeouts and the id-reuse policy; a run that times out fails its
/// `result()` with `TimedOut`, and its id is then reused as the policy says.
#[tokio::test(start_paused = true)]
async fn the_typed_start_sets_timeouts_and_the_id_reuse_policy() {
    use activity_core::workflow::{WorkflowIdReusePolicy, WorkflowTimeout};
    let s = setup().await;
    let worker = s.spawn("w");
    let t0 = Instant::now();
    let handle = nap::start(&s.client, 5)
        .workflow_id("nap-timed")
        .run_timeout(Duration::from_secs(3600))
        .execution_timeout(Duration::from_secs(7200))
        .await
        .unwrap();
    let err = handle.result().await.unwrap_err();
    assert!(
        matches!(
            err,
            WorkflowCallError::TimedOut {
                timeout: WorkflowTimeout::Run
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "workflow timed out: run timeout");
    assert_eq!(t0.elapsed().as_secs(), 3600);
    let refused = nap::start(&s.client, 1)
        .workflow_id("nap-timed")
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, WorkflowCallError::Protocol(ProtocolError::AlreadyExists { what })
            if what.contains("TIMED_OUT") && what.contains("RejectDuplicate")),
        "{refused}"
    );
    // A timed-out run did not complete successfully: FailedOnly reuses the id.
    let again = nap::start(&s.client, 1)
        .workflow_id("nap-timed")
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicateFailedOnly)
        .await
        .unwrap();
    assert_eq!(again.result().await.unwrap(), 3600);
    // An execution timeout shorter than the run timeout is refused, naming it.
    let invalid = nap::start(&s.client, 1)
        .run_timeout(Duration::from_secs(60))
        .execution_timeout(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(&invalid, WorkflowCallError::Protocol(ProtocolError::InvalidArgument { field, .. })
            if field == "execution_timeout"),
        "{invalid}"
    );
    stop(worker).await;
}
