//! End-to-end behaviour of the worker with the real in-process engine (in-memory
//! SQLite) on a virtual clock: docs/semantics.md §1.4, §1.5, §1.6 and §2 on the worker's side.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use activity_core::{
    activity,
    definition::BoxFuture,
    protocol::{
        ActivityProtocol, ActivityTypeInfo, ExecutionOutcome, ExecutionState, ProtocolError,
        ProtocolRequest, ProtocolResponse, ScheduleActivityRequest, TypeKind,
    },
    ActivityContext, ActivityError, ActivityOptions, CancelReason, Client, Failure, Payload,
    RetryOptions, RetryState, State, TimeoutKind,
};
use activity_engine::VirtualClock;

use activity_test_support as support;
use activity_worker::{Worker, WorkerBuilder, WorkerReport};
use support::TestEngine;
use tokio::time::Instant;

/// What the test activities record, injected as shared state into every worker.
#[derive(Default)]
struct Probe {
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    starts: Mutex<Vec<Instant>>,
    attempts_from: Mutex<Vec<(u32, u32)>>,
    cleaned_up: AtomicU32,
}

/// The name of the worker running an activity (routing tests).
struct WorkerName {
    name: &'static str,
}

#[activity(start_to_close = "1m")]
async fn slow_step(probe: State<Probe>, n: u32) -> Result<u32, ActivityError> {
    let now = probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    probe.max_in_flight.fetch_max(now, Ordering::SeqCst);
    probe.starts.lock().unwrap().push(Instant::now());
    tokio::time::sleep(Duration::from_millis(50)).await;
    probe.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(n)
}

/// Heartbeats `beats` times over about 20 s, then fails for good: the last
/// details must reach the engine with the failure.
#[activity(start_to_close = "1h", heartbeat = "10s")]
async fn chatty(ctx: ActivityContext, beats: u32) -> Result<(), ActivityError> {
    for i in 1..=beats {
        ctx.heartbeat(&i)?;
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Err(ActivityError::non_retryable("Done", "heartbeats sent"))
}

/// Loops until cancelled, heartbeating; cleans up and reports the reason.
#[activity(start_to_close = "1h", heartbeat = "5s")]
async fn until_cancelled(ctx: ActivityContext, probe: State<Probe>) -> Result<(), ActivityError> {
    loop {
        ctx.heartbeat(&())?;
        tokio::select! {
            reason = ctx.cancelled() => {
                probe.cleaned_up.fetch_add(1, Ordering::SeqCst);
                return Err(ActivityError::canceled_with(&reason.to_string())?);
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Counts to 10, one heartbeat per step; attempt 1 stops heartbeating after 5 and
/// hangs, so its heartbeat times out and attempt 2 resumes from the details.
#[activity(
    start_to_close = "1h",
    heartbeat = "2s",
    retry(initial_interval = "1s")
)]
async fn resumable(ctx: ActivityContext, probe: State<Probe>) -> Result<u32, ActivityError> {
    let start: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
    probe
        .attempts_from
        .lock()
        .unwrap()
        .push((ctx.info().attempt, start));
    for step in start + 1..=10 {
        if ctx.info().attempt == 1 && step == 6 {
            ctx.cancelled().await;
            return Err(ActivityError::retryable("gave up after the timeout"));
        }
        ctx.heartbeat(&step)?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(10)
}

/// Heartbeats once, then works on without heartbeating.
#[activity(start_to_close = "1h")]
async fn beat_once(ctx: ActivityContext) -> Result<(), ActivityError> {
    ctx.heartbeat(&7u32)?;
    tokio::time::sleep(Duration::from_secs(40)).await;
    Ok(())
}

#[activity(start_to_close = "10s", retry(maximum_attempts = 1))]
async fn explode(n: u32) -> Result<u32, ActivityError> {
    if n > 0 {
        panic!("boom at {n}");
    }
    Ok(n)
}

#[activity(start_to_close = "10s")]
async fn whoami(name: State<WorkerName>) -> Result<String, ActivityError> {
    Ok(name.name.to_owned())
}

#[activity(start_to_close = "1h")]
async fn finishes_in_time() -> Result<String, ActivityError> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok("done".to_owned())
}

/// Hands its task token out and returns "result pending".
#[activity(start_to_close = "1h")]
async fn completes_later(
    ctx: ActivityContext,
    tokens: State<TokenBox>,
) -> Result<u32, ActivityError> {
    *tokens.token.lock().unwrap() = Some(ctx.task_token().clone());
    Err(ActivityError::result_pending())
}

/// Heartbeats 1, 2, 3 at 0.0 / 0.2 / 0.4 s, then stalls: no more heartbeats, but
/// it honours cancellation. A later attempt returns the details it resumes from.
#[activity(
    start_to_close = "10s",
    heartbeat = "1s",
    retry(initial_interval = "100ms")
)]
async fn stalls(ctx: ActivityContext) -> Result<u32, ActivityError> {
    if ctx.info().attempt > 1 {
        return Ok(ctx.last_heartbeat_details()?.unwrap_or(0));
    }
    for n in 1..=3u32 {
        ctx.heartbeat(&n)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reason = ctx.cancelled().await;
    Err(ActivityError::canceled_with(&reason.to_string())?)
}

/// Sleeps 3 s, honouring cancellation: every attempt overruns its start-to-close.
#[activity(
    start_to_close = "1s",
    retry(initial_interval = "100ms", maximum_attempts = 2)
)]
async fn overruns(ctx: ActivityContext) -> Result<(), ActivityError> {
    tokio::select! {
        reason = ctx.cancelled() => Err(ActivityError::canceled_with(&reason.to_string())?),
        () = tokio::time::sleep(Duration::from_secs(3)) => Ok(()),
    }
}

/// Attempt 1 heartbeats its progress every second until cancelled; a later
/// attempt returns the progress it resumes from.
#[activity(start_to_close = "1h", heartbeat = "10s", retry(maximum_attempts = 3))]
async fn resumes_elsewhere(
    ctx: ActivityContext,
    probe: State<Probe>,
) -> Result<u32, ActivityError> {
    if ctx.info().attempt > 1 {
        return Ok(ctx.last_heartbeat_details()?.unwrap_or(0));
    }
    let mut progress = 0u32;
    loop {
        progress += 1;
        ctx.heartbeat(&progress)?;
        tokio::select! {
            reason = ctx.cancelled() => {
                probe.cleaned_up.fetch_add(1, Ordering::SeqCst);
                return Err(ActivityError::canceled_with(&reason.to_string())?);
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[derive(Default)]
struct TokenBox {
    token: Mutex<Option<activity_core::TaskToken>>,
}

async fn engine() -> TestEngine {
    TestEngine::open(
        activity_test_support::engine_config().with_clock(Arc::new(VirtualClock::new())),
    )
    .await
}

fn worker(protocol: Arc<dyn ActivityProtocol>, probe: &Arc<Probe>, queue: &str) -> WorkerBuilder {
    Worker::builder(protocol)
        .task_queue(queue)
        .identity(format!("test-worker-{queue}"))
        .poll_wait(Duration::from_secs(60))
        .shared_state(probe.clone())
        .state(WorkerName { name: "default" })
        .state(TokenBox::default())
}

fn spawn(
    worker: Worker,
) -> (
    activity_worker::ShutdownHandle,
    tokio::task::JoinHandle<WorkerReport>,
) {
    let handle = worker.shutdown_handle();
    (
        handle,
        tokio::spawn(worker.run_until(std::future::pending())),
    )
}

/// The engine's protocol, counting the heartbeats that reach it.
struct CountingProtocol {
    inner: Arc<dyn ActivityProtocol>,
    heartbeats: AtomicU64,
    /// Heartbeats answered "unavailable" (the engine restarting) before the rest go through.
    unavailable_heartbeats: AtomicU32,
}

impl ActivityProtocol for CountingProtocol {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        if let ProtocolRequest::RecordHeartbeat { .. } = request {
            self.heartbeats.fetch_add(1, Ordering::SeqCst);
            let down = self
                .unavailable_heartbeats
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if down {
                return Box::pin(std::future::ready(Err(ProtocolError::Unavailable {
                    message: "the engine is restarting".into(),
                })));
            }
        }
        self.inner.call(request)
    }
}

fn failure_of(err: activity_core::ActivityCallError) -> activity_core::ActivityFailure {
    match err.failure() {
        Some(failure) => failure.clone(),
        None => panic!("expected an activity failure, got {err}"),
    }
}

#[tokio::test(start_paused = true)]
async fn in_flight_activities_never_exceed_max_concurrent_activities() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("slots");
    let mut handles = Vec::new();
    for n in 0..200 {
        handles.push(client.start(slow_step::call(&client, n)).await.unwrap());
    }
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "slots")
            .max_concurrent_activities(4)
            .pollers_per_queue(8)
            .build()
            .unwrap(),
    );
    for (n, handle) in handles.iter().enumerate() {
        assert_eq!(handle.result().await.unwrap(), n as u32);
    }
    shutdown.shutdown();
    let report = running.await.unwrap();
    assert_eq!(report.completed, 200);
    assert_eq!(
        probe.max_in_flight.load(Ordering::SeqCst),
        4,
        "slots used fully, never more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_workers_rate_is_never_exceeded() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("rated");
    let mut handles = Vec::new();
    for n in 0..30 {
        handles.push(client.start(slow_step::call(&client, n)).await.unwrap());
    }
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "rated")
            .max_activities_per_second(10.0)
            .max_concurrent_activities(50)
            .build()
            .unwrap(),
    );
    for handle in &handles {
        handle.result().await.unwrap();
    }
    shutdown.shutdown();
    running.await.unwrap();
    let mut starts = probe.starts.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 30);
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(99),
            "two starts {gap:?} apart at 10/s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_queues_global_rate_holds_across_two_workers() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("global");
    let mut handles = Vec::new();
    for n in 0..40 {
        handles.push(client.start(slow_step::call(&client, n)).await.unwrap());
    }
    let rate = 10.0;
    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            spawn(
                worker(engine.protocol(), &probe, "global")
                    .identity(name)
                    .max_task_queue_activities_per_second(rate)
                    .max_concurrent_activities(20)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    for handle in &handles {
        handle.result().await.unwrap();
    }
    let mut reports = Vec::new();
    for (shutdown, running) in workers {
        shutdown.shutdown();
        reports.push(running.await.unwrap());
    }
    assert!(
        reports.iter().all(|r| r.completed > 0),
        "both workers served: {reports:?}"
    );
    let mut starts = probe.starts.lock().unwrap().clone();
    starts.sort();
    // A bucket of `rate` tokens: at most rate + burst starts in any one-second window,
    // and the whole run cannot go faster than the rate after the burst.
    for (i, first) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .take_while(|t| **t - *first < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 2 * rate as usize,
            "{in_window} starts within one second"
        );
    }
    let span = *starts.last().unwrap() - starts[0];
    assert!(
        span >= Duration::from_millis(2_900),
        "40 starts at 10/s took only {span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeats_are_throttled_and_the_latest_details_are_stored() {
    let engine = engine().await;
    let counting = Arc::new(CountingProtocol {
        inner: engine.protocol(),
        heartbeats: AtomicU64::new(0),
        unavailable_heartbeats: AtomicU32::new(0),
    });
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("chatty");
    let handle = client.start(chatty::call(&client, 10_000)).await.unwrap();
    let (shutdown, running) = spawn(worker(counting.clone(), &probe, "chatty").build().unwrap());
    let failure = failure_of(handle.result().await.unwrap_err());
    assert_eq!(failure.application().unwrap().error_type, "Done");
    shutdown.shutdown();
    running.await.unwrap();
    let sent = counting.heartbeats.load(Ordering::SeqCst);
    // 10,000 calls over ~20 s with an 8 s throttle interval: the first at once,
    // then about one per 8 s.
    assert!(
        (1..=4).contains(&sent),
        "{sent} heartbeats reached the engine"
    );
    let description = handle.describe().await.unwrap();
    let details: u32 = description.heartbeat_details.unwrap().decode().unwrap();
    assert_eq!(
        details, 10_000,
        "unsent details are flushed with the failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_request_reaches_the_running_activity_which_reports_canceled() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("cancel");
    let (shutdown, running) = spawn(worker(engine.protocol(), &probe, "cancel").build().unwrap());
    let handle = client
        .start(until_cancelled::call(&client).activity_id("long-one"))
        .await
        .unwrap();
    while handle.describe().await.unwrap().state != ExecutionState::Started {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    handle.cancel().await.unwrap();
    let failure = failure_of(handle.result().await.unwrap_err());
    assert_eq!(failure.retry_state, RetryState::CancelRequested);
    let Failure::Canceled(canceled) = &failure.cause else {
        panic!("{failure}")
    };
    let reason: String = canceled.details.as_ref().unwrap().decode().unwrap();
    assert_eq!(reason, CancelReason::Requested.to_string());
    assert_eq!(probe.cleaned_up.load(Ordering::SeqCst), 1);
    shutdown.shutdown();
    assert_eq!(running.await.unwrap().canceled, 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_heartbeat_timeout_the_retry_resumes_from_the_last_details() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("resume");
    let (shutdown, running) = spawn(worker(engine.protocol(), &probe, "resume").build().unwrap());
    let result = resumable::call(&client).await.unwrap();
    assert_eq!(result, 10);
    assert_eq!(*probe.attempts_from.lock().unwrap(), [(1, 0), (2, 5)]);
    shutdown.shutdown();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panic_fails_only_that_attempt_and_the_worker_goes_on() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("panics");
    let (shutdown, running) = spawn(worker(engine.protocol(), &probe, "panics").build().unwrap());
    let failure = failure_of(explode::call(&client, 7).await.unwrap_err());
    let app = failure.application().unwrap();
    assert_eq!(app.error_type, "Panic");
    assert!(app.message.contains("boom at 7"), "{}", app.message);
    assert!(!app.non_retryable, "a panic is retryable");
    assert_eq!(failure.retry_state, RetryState::MaximumAttemptsReached);
    assert_eq!(explode::call(&client, 0).await.unwrap(), 0);
    shutdown.shutdown();
    let report = running.await.unwrap();
    assert_eq!((report.failed, report.completed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_unregistered_type_fails_the_attempt_listing_the_registered_types() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "unknown")
            .build()
            .unwrap(),
    );
    let protocol = engine.protocol();
    let options = ActivityOptions::new()
        .start_to_close(Duration::from_secs(5))
        .task_queue("unknown")
        .retry(RetryOptions::new().maximum_attempts(1));
    let scheduled = protocol
        .schedule_activity(ScheduleActivityRequest::new(
            "no_such_activity",
            vec![],
            options,
        ))
        .await
        .unwrap();
    let outcome = loop {
        if let Some(outcome) = protocol
            .wait_outcome(scheduled.execution.clone(), Duration::from_secs(30))
            .await
            .unwrap()
        {
            break outcome;
        }
    };
    let ExecutionOutcome::Failed(failure) = outcome else {
        panic!("{outcome:?}")
    };
    let app = failure.application().unwrap();
    assert_eq!(app.error_type, "ActivityNotRegistered");
    assert!(!app.non_retryable, "another worker may have it");
    assert!(
        app.message.contains("`no_such_activity`"),
        "{}",
        app.message
    );
    assert!(app.message.contains("slow_step"), "{}", app.message);
    shutdown.shutdown();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn undecodable_input_fails_non_retryably_naming_the_argument() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let protocol = engine.protocol();
    let options = ActivityOptions::new()
        .start_to_close(Duration::from_secs(5))
        .task_queue("decode");
    // Scheduled before the worker starts: once it registered its types, the
    // engine would refuse this input against `slow_step`'s schema.
    let scheduled = protocol
        .schedule_activity(ScheduleActivityRequest::new(
            "slow_step",
            vec![Payload::json("seven").unwrap()],
            options,
        ))
        .await
        .unwrap();
    let (shutdown, running) = spawn(worker(engine.protocol(), &probe, "decode").build().unwrap());
    let client = Client::new(engine.protocol());
    let failure = failure_of(
        client
            .handle::<slow_step>(scheduled.execution)
            .result()
            .await
            .unwrap_err(),
    );
    assert_eq!(failure.attempts, 1, "decode errors are not retried");
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    let app = failure.application().unwrap();
    assert_eq!(app.error_type, "PayloadDecode");
    assert!(
        app.message
            .contains("argument 1 (`n`) of activity `slow_step`"),
        "{}",
        app.message
    );
    shutdown.shutdown();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_activity_runs_only_on_the_queue_it_was_sent_to() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let workers: Vec<_> = [("host-a", "A"), ("host-b", "B")]
        .into_iter()
        .map(|(queue, name)| {
            spawn(
                worker(engine.protocol(), &probe, queue)
                    .state(WorkerName { name })
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let client = Client::new(engine.protocol());
    for _ in 0..5 {
        assert_eq!(
            whoami::call(&client).task_queue("host-a").await.unwrap(),
            "A"
        );
        assert_eq!(
            whoami::call(&client).task_queue("host-b").await.unwrap(),
            "B"
        );
    }
    for (shutdown, running) in workers {
        shutdown.shutdown();
        assert_eq!(running.await.unwrap().completed, 5);
    }
}

#[tokio::test(start_paused = true)]
async fn result_pending_frees_the_slot_and_the_token_completes_it_later() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let tokens = Arc::new(TokenBox::default());
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "async")
            .shared_state(tokens.clone())
            .max_concurrent_activities(1)
            .build()
            .unwrap(),
    );
    let client = Client::new(engine.protocol()).with_task_queue("async");
    let handle = client.start(completes_later::call(&client)).await.unwrap();
    let token = loop {
        if let Some(token) = tokens.token.lock().unwrap().clone() {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The only slot is free again: another activity runs meanwhile.
    assert_eq!(slow_step::call(&client, 3).await.unwrap(), 3);
    assert_eq!(
        handle.describe().await.unwrap().state,
        ExecutionState::Started
    );
    client
        .async_completion::<completes_later>(token)
        .complete(&42)
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), 42);
    shutdown.shutdown();
    let report = running.await.unwrap();
    assert_eq!((report.pending, report.completed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_lets_one_finish_and_hands_the_other_back_as_a_retryable_failure() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("shutdown");
    let quick = client.start(finishes_in_time::call(&client)).await.unwrap();
    let stubborn = client.start(until_cancelled::call(&client)).await.unwrap();
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "shutdown")
            .graceful_shutdown_period(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    while stubborn.describe().await.unwrap().state != ExecutionState::Started
        || quick.describe().await.unwrap().state != ExecutionState::Started
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let began = Instant::now();
    shutdown.shutdown();
    let report = running.await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(10),
        "the grace period was granted: {took:?}"
    );
    assert!(
        took < Duration::from_secs(12),
        "then the rest was cancelled: {took:?}"
    );
    assert_eq!(quick.result().await.unwrap(), "done");
    // Cancelled with the shutdown reason, the stubborn one is not canceled: its
    // attempt failed retryably and the next one waits for another worker, now.
    assert_eq!(probe.cleaned_up.load(Ordering::SeqCst), 1);
    // (Over gRPC a poll of the stopped worker still under way may claim the
    // retry: its client gives it back, which a paused clock does not wait for.)
    let d = stubborn.describe().await.unwrap();
    assert!(!d.state.is_final(), "{d:?}");
    assert_eq!((d.attempt, d.cancel_requested), (2, false), "{d:?}");
    let Some(Failure::Application(failure)) = &d.last_failure else {
        panic!("{d:?}")
    };
    assert_eq!(failure.error_type, "WorkerShutdown");
    assert_eq!(
        (report.completed, report.failed, report.canceled),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_worker_options_are_refused_naming_them() {
    let engine = engine().await;
    let err = Worker::builder(engine.protocol())
        .max_concurrent_activities(0)
        .max_activities_per_second(-1.0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no task queue"), "{err}");
    assert!(
        err.contains("`max_concurrent_activities` must be at least 1"),
        "{err}"
    );
    assert!(
        err.contains("`max_activities_per_second` must be a positive number"),
        "{err}"
    );
    let err = Worker::builder(engine.protocol())
        .task_queue("q")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes `State<"),
        "missing state is reported at start: {err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_worker_registers_its_types_with_their_schemas_on_each_queue() {
    let engine = engine().await;
    let probe = Arc::new(Probe::default());
    let worker = worker(engine.protocol(), &probe, "types-a")
        .task_queue("types-b")
        .build()
        .unwrap();
    let expected: Vec<ActivityTypeInfo> = worker
        .registry()
        .describe()
        .iter()
        .map(ActivityTypeInfo::from)
        .collect();
    assert!(expected.iter().any(|a| a.name == "slow_step"));
    let protocol = engine.protocol();
    assert_eq!(protocol.list_types().await.unwrap(), vec![]);
    let (shutdown, running) = spawn(worker);
    let mut types = Vec::new();
    for _ in 0..100 {
        types = protocol.list_types().await.unwrap();
        if !types.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(types.len(), 2 * expected.len(), "{types:#?}");
    for queue in ["types-a", "types-b"] {
        for info in &expected {
            let found = types
                .iter()
                .find(|t| t.name == info.name && t.task_queue == queue)
                .unwrap_or_else(|| panic!("`{}` on `{queue}` is registered", info.name));
            assert_eq!(found.kind, TypeKind::Activity);
            assert_eq!(found.last_identity, "test-worker-types-a");
            assert_eq!(found.arguments, info.arguments);
            assert_eq!(found.input_schema.as_ref(), Some(&info.input_schema));
            assert_eq!(found.output_schema.as_ref(), Some(&info.output_schema));
        }
    }
    // The engine now refuses input that does not fit a registered schema.
    let err = protocol
        .schedule_activity(ScheduleActivityRequest::new(
            "slow_step",
            vec![Payload::json("seven").unwrap()],
            ActivityOptions::new()
                .start_to_close(Duration::from_secs(5))
                .task_queue("types-b"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "input[0] (`n`)"),
        "{err:?}"
    );
    shutdown.shutdown();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_the_engine_could_not_take_is_sent_again() {
    let engine = engine().await;
    let counting = Arc::new(CountingProtocol {
        inner: engine.protocol(),
        heartbeats: AtomicU64::new(0),
        unavailable_heartbeats: AtomicU32::new(1),
    });
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("flaky");
    let (shutdown, running) = spawn(worker(counting.clone(), &probe, "flaky").build().unwrap());
    let handle = client.start(beat_once::call(&client)).await.unwrap();
    handle.result().await.unwrap();
    let details: u32 = handle
        .describe()
        .await
        .unwrap()
        .heartbeat_details
        .expect("the details reached the engine on the second send")
        .decode()
        .unwrap();
    assert_eq!(details, 7);
    assert_eq!(
        counting.heartbeats.load(Ordering::SeqCst),
        2,
        "sent, refused, sent again"
    );
    shutdown.shutdown();
    running.await.unwrap();
}

/// Runs `calls` concurrent calls of one activity (ids `prefix-0`, …) through
/// `client`; answers their outcomes in id order.
async fn concurrently<T, F, Fut>(
    calls: usize,
    prefix: &str,
    call: F,
) -> Vec<Result<T, activity_core::ActivityCallError>>
where
    T: Send + 'static,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, activity_core::ActivityCallError>> + Send + 'static,
{
    let running: Vec<_> = (0..calls)
        .map(|i| tokio::spawn(call(format!("{prefix}-{i}"))))
        .collect();
    let mut outcomes = Vec::new();
    for one in running {
        outcomes.push(one.await.unwrap());
    }
    outcomes
}

/// The real engine on the real clock (a new store each time).
async fn real_clock_engine() -> TestEngine {
    TestEngine::open(activity_test_support::engine_config()).await
}

/// 20 concurrent calls of `stalls` with `maximum_attempts`, on the real clock:
/// their outcomes, and the worker's report.
async fn stalled_runs(
    maximum_attempts: u32,
) -> (
    Vec<Result<u32, activity_core::ActivityCallError>>,
    WorkerReport,
) {
    let engine = real_clock_engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("stalls");
    let (shutdown, running) = spawn(worker(engine.protocol(), &probe, "stalls").build().unwrap());
    let outcomes = concurrently(20, "stall", |id| {
        let client = client.clone();
        async move {
            stalls::call(&client)
                .activity_id(id)
                .retry(RetryOptions::new().maximum_attempts(maximum_attempts))
                .await
        }
    })
    .await;
    shutdown.shutdown();
    (outcomes, running.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_4_a_stalled_attempt_is_timed_out_by_the_engine_and_attempt_2_resumes_from_the_recorded_details(
) {
    let (outcomes, report) = stalled_runs(2).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(resumed) => assert_eq!(resumed, 3, "run {i}: attempt 2 sees the last details"),
            Err(err) => panic!("run {i}: {err}"),
        }
    }
    assert_eq!(report.completed, 20, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_4_a_stalled_attempt_without_a_retry_fails_with_the_heartbeat_timeout_and_its_details() {
    let (outcomes, _) = stalled_runs(1).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let failure = failure_of(outcome.unwrap_err());
        assert_eq!(
            (failure.attempts, failure.retry_state),
            (1, RetryState::MaximumAttemptsReached),
            "run {i}: {failure}"
        );
        let Failure::Timeout(timeout) = &failure.cause else {
            panic!("run {i}: {failure}")
        };
        assert_eq!(timeout.kind, TimeoutKind::Heartbeat, "run {i}");
        let details: u32 = timeout
            .last_heartbeat_details
            .as_ref()
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(details, 3, "run {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_4_start_to_close_is_decided_by_the_engine_every_overrun_times_out_and_is_retried() {
    let engine = real_clock_engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("overruns");
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "overruns")
            .build()
            .unwrap(),
    );
    let outcomes = concurrently(20, "overrun", |id| {
        let client = client.clone();
        async move { overruns::call(&client).activity_id(id).await }
    })
    .await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let failure = failure_of(outcome.unwrap_err());
        assert_eq!(
            (failure.attempts, failure.retry_state),
            (2, RetryState::MaximumAttemptsReached),
            "run {i}: {failure}"
        );
        let Failure::Timeout(last) = &failure.cause else {
            panic!("run {i}: {failure}")
        };
        assert_eq!(last.kind, TimeoutKind::StartToClose, "run {i}");
        assert!(
            matches!(last.cause.as_deref(), Some(Failure::Timeout(first)) if first.kind == TimeoutKind::StartToClose),
            "run {i}: the first attempt's timeout is the cause: {last:?}"
        );
        let d = engine
            .protocol()
            .describe_execution(activity_core::protocol::ExecutionRef::standalone(format!(
                "overrun-{i}"
            )))
            .await
            .unwrap();
        assert_eq!(d.state, ExecutionState::TimedOut, "run {i}");
    }
    shutdown.shutdown();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_workers_shutdown_hands_running_attempts_to_the_next_worker_at_once() {
    let engine = real_clock_engine().await;
    let probe = Arc::new(Probe::default());
    let client = Client::new(engine.protocol()).with_task_queue("handover");
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(
            client
                .start(resumes_elsewhere::call(&client).activity_id(format!("handover-{i}")))
                .await
                .unwrap(),
        );
    }
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "handover")
            .identity("first")
            .graceful_shutdown_period(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    for handle in &handles {
        while handle.describe().await.unwrap().state != ExecutionState::Started {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.shutdown();
    let report = running.await.unwrap();
    assert_eq!((report.failed, report.canceled), (5, 0), "{report:?}");
    assert_eq!(probe.cleaned_up.load(Ordering::SeqCst), 5);
    for handle in &handles {
        let d = handle.describe().await.unwrap();
        assert!(!d.state.is_final(), "the execution stays open: {d:?}");
        assert_eq!((d.attempt, d.cancel_requested), (2, false), "{d:?}");
        assert!(
            matches!(&d.last_failure, Some(Failure::Application(f)) if f.error_type == "WorkerShutdown"),
            "{d:?}"
        );
    }
    let began = Instant::now();
    let (shutdown, running) = spawn(
        worker(engine.protocol(), &probe, "handover")
            .identity("second")
            .build()
            .unwrap(),
    );
    for handle in &handles {
        let resumed = handle.result().await.unwrap();
        assert!(
            resumed >= 3,
            "attempt 2 resumes from the last details: {resumed}"
        );
    }
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "promptly, not after a timeout: {took:?}"
    );
    shutdown.shutdown();
    assert_eq!(running.await.unwrap().completed, 5);
}
