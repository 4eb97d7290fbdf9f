//! Typed signals and queries end to end (docs/semantics.md §3.1): the real
//! engine (in-memory SQLite or PostgreSQL, virtual clock unless said) and
//! real workers, in-process or over gRPC.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use activity_core::{
    activity, workflow,
    workflow::{select, Either, EventKind, HistoryEvent, WorkflowCallError},
    ActivityError, Client, ProtocolError, State, WorkflowContext, WorkflowError,
};
use activity_engine::VirtualClock;
use activity_test_support as support;
use activity_worker::{ShutdownHandle, Worker, WorkerReport};
use support::TestEngine;
use tokio::sync::Notify;

/// What the workflows' code saw, shared with every worker of a test.
#[derive(Default)]
struct Probe {
    held: Mutex<u32>,
    released: AtomicBool,
    gate: Notify,
}

/// A local activity that holds the workflow task open until the test
/// releases it (the first time; later runs return at once).
#[activity(start_to_close = "1h")]
async fn hold(probe: State<Probe>) -> Result<(), ActivityError> {
    *probe.held.lock().unwrap() += 1;
    if !probe.released.load(Ordering::SeqCst) {
        probe.gate.notified().await;
    }
    Ok(())
}

/// Collects `item` signals until `close`; `items` answers what it collected.
#[workflow(
    signals(item = String, close = ()),
    queries(items = Vec<String>, unanswered = u32)
)]
async fn collector(ctx: WorkflowContext) -> Result<Vec<String>, WorkflowError> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = seen.clone();
    ctx.on_query(collector::items, move || answer.lock().unwrap().clone());
    let items = ctx.signal(collector::item);
    let close = ctx.signal(collector::close);
    loop {
        match select(items.recv(), close.recv()).await {
            Either::Left((item, _)) => seen.lock().unwrap().push(item?),
            Either::Right((closed, _)) => {
                closed?;
                break;
            }
        }
    }
    let all = seen.lock().unwrap().clone();
    Ok(all)
}

/// Waits for one `item`, holds its task open with a local activity, then
/// returns every item it has received by then.
#[workflow(signals(item = u32))]
async fn first_then_rest(ctx: WorkflowContext) -> Result<Vec<u32>, WorkflowError> {
    let items = ctx.signal(first_then_rest::item);
    let mut got = vec![items.recv().await?];
    hold::call(&ctx.local()).await?;
    while let Some(item) = items.try_recv() {
        got.push(item?);
    }
    Ok(got)
}

/// Like `first_then_rest`, but hands what it received on to a new run by
/// continue-as-new; the new run returns it.
#[workflow(signals(item = u32))]
async fn carries_on(ctx: WorkflowContext, carried: Vec<u32>) -> Result<Vec<u32>, WorkflowError> {
    if !carried.is_empty() {
        return Ok(carried);
    }
    let items = ctx.signal(carries_on::item);
    let mut got = vec![items.recv().await?];
    hold::call(&ctx.local()).await?;
    while let Some(item) = items.try_recv() {
        got.push(item?);
    }
    carries_on::continue_as_new(&ctx, got).await
}

/// Returns every item received by its first task (the race test).
#[workflow(signals(item = u32))]
async fn quick(ctx: WorkflowContext) -> Result<Vec<u32>, WorkflowError> {
    let items = ctx.signal(quick::item);
    let mut got = vec![items.recv().await?];
    while let Some(item) = items.try_recv() {
        got.push(item?);
    }
    Ok(got)
}

/// Sends `item` then `close` to the collector `target`; answers the refusal
/// of a signal to `missing`, if any.
#[workflow]
async fn sender(
    ctx: WorkflowContext,
    target: String,
    item: String,
    missing: String,
) -> Result<String, WorkflowError> {
    ctx.signal_workflow(collector::item, target.clone(), item)
        .await?;
    let refused = match ctx
        .signal_workflow(collector::item, missing, "x".into())
        .await
    {
        Ok(()) => "accepted".to_owned(),
        Err(err) => err.to_string(),
    };
    ctx.signal_workflow(collector::close, target, ()).await?;
    Ok(refused)
}

struct Setup {
    engine: TestEngine,
    client: Client,
    probe: Arc<Probe>,
}

type Running = (ShutdownHandle, tokio::task::JoinHandle<WorkerReport>);

async fn setup_with(config: activity_engine::EngineConfig) -> Setup {
    let engine = TestEngine::open(config).await;
    let client = Client::new(engine.protocol()).with_task_queue("signals");
    Setup {
        engine,
        client,
        probe: Arc::new(Probe::default()),
    }
}

/// The virtual clock; workflow tasks may stay open an hour (a held local
/// activity must not time its task out).
async fn setup() -> Setup {
    setup_with(
        support::engine_config()
            .with_clock(Arc::new(VirtualClock::new()))
            .with_workflow_task_timeout(Duration::from_secs(3600)),
    )
    .await
}

impl Setup {
    fn worker(&self, name: &str) -> Worker {
        Worker::builder(self.engine.protocol())
            .task_queue("signals")
            .identity(name)
            .poll_wait(Duration::from_secs(60))
            .shared_state(self.probe.clone())
            .build()
            .expect("worker builds")
    }

    fn spawn(&self, name: &str) -> Running {
        self.run(self.worker(name))
    }

    /// A worker that keeps no instance: it replays for every task and query.
    fn spawn_replaying(&self, name: &str) -> Running {
        self.run(
            Worker::builder(self.engine.protocol())
                .task_queue("signals")
                .identity(name)
                .workflow_cache_size(0)
                .shared_state(self.probe.clone())
                .build()
                .expect("worker builds"),
        )
    }

    fn run(&self, worker: Worker) -> Running {
        let handle = worker.shutdown_handle();
        (
            handle,
            tokio::spawn(worker.run_until(std::future::pending())),
        )
    }
}

async fn stop((handle, running): Running) {
    handle.shutdown();
    running.await.expect("worker task");
}

fn signals(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkflowSignaled {
                signal_name, input, ..
            } => Some(format!("{signal_name} {}", input.to_json_value().unwrap())),
            _ => None,
        })
        .collect()
}

fn task_failures(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkflowTaskFailed { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Sends `item` 1, waits until the task that saw it is held open by its local
/// activity, sends 2, releases the task and waits for the result: the close
/// (`close`) of that task is refused once and a new task delivers 2, so the
/// result is `[1, 2]`. Answers the history of the handle's run.
async fn signal_twice_across_a_held_close<W>(
    s: &Setup,
    handle: &activity_core::workflow::WorkflowHandle<W>,
    item: activity_core::workflow::Signal<W, u32>,
    close: &str,
) -> Vec<HistoryEvent>
where
    W: activity_core::WorkflowDefinition<Output = Vec<u32>>,
{
    handle.signal(item, 1).await.unwrap();
    // The task that saw signal 1 is held open by its local activity.
    while *s.probe.held.lock().unwrap() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.signal(item, 2).await.unwrap();
    s.probe.released.store(true, Ordering::SeqCst);
    s.probe.gate.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the run completes")
        .unwrap();
    assert_eq!(
        result,
        [1, 2],
        "the signal that arrived during the task is seen"
    );
    let history = handle.history().await.unwrap();
    let failures = task_failures(&history);
    assert_eq!(failures.len(), 1, "{history:#?}");
    let refused = format!("{close} refused: 1 signal(s) arrived while the task ran (`item`)");
    assert!(failures[0].starts_with(&refused), "{}", failures[0]);
    history
}

/// Starts `collector` as `id`, sends it `items` and waits until its code saw them.
async fn collecting(
    s: &Setup,
    id: &str,
    items: &[&str],
) -> activity_core::workflow::WorkflowHandle<collector> {
    let handle = collector::start(&s.client).workflow_id(id).await.unwrap();
    for item in items {
        handle
            .signal(collector::item, (*item).to_owned())
            .await
            .unwrap();
    }
    until_seen(&handle).await;
    handle
}

/// Waits (virtual time) until the run's history has a completed task after
/// its last signal: the code has seen every signal sent so far.
async fn until_seen(handle: &activity_core::workflow::WorkflowHandle<collector>) {
    let mut history = Vec::new();
    for _ in 0..1000 {
        history = handle.history().await.unwrap();
        let last_signal = history
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::WorkflowSignaled { .. }));
        let last_completed = history
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. }));
        if last_completed > last_signal {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the code never saw the signals sent: {history:#?}");
}

#[tokio::test(start_paused = true)]
async fn signals_reach_the_code_in_arrival_order_and_are_recorded_in_the_history() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = collector::start(&s.client)
        .workflow_id("collect-order")
        .await
        .unwrap();
    for item in ["a", "b", "c"] {
        handle
            .signal(collector::item, item.to_owned())
            .await
            .unwrap();
    }
    let signaled = handle.signal(collector::close, ()).await.unwrap();
    assert_eq!(signaled.run_id, handle.workflow().run_id);
    let result = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the run completes")
        .unwrap();
    assert_eq!(result, ["a", "b", "c"]);
    let history = handle.history().await.unwrap();
    assert_eq!(
        signals(&history),
        ["item \"a\"", "item \"b\"", "item \"c\"", "close null"]
    );
    assert!(task_failures(&history).is_empty(), "{history:#?}");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_worker_replays_a_signal_stream_whose_worker_stopped_midway() {
    let s = setup().await;
    let first = s.spawn("first");
    let handle = collector::start(&s.client)
        .workflow_id("collect-restart")
        .await
        .unwrap();
    handle.signal(collector::item, "a".into()).await.unwrap();
    handle.signal(collector::item, "b".into()).await.unwrap();
    until_seen(&handle).await;
    stop(first).await;
    // Sent while no worker runs: recorded, delivered after the replay.
    handle.signal(collector::item, "c".into()).await.unwrap();
    let second = s.spawn("second");
    until_seen(&handle).await;
    handle.signal(collector::item, "d".into()).await.unwrap();
    handle.signal(collector::close, ()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the run completes")
        .unwrap();
    assert_eq!(result, ["a", "b", "c", "d"], "each signal once, in order");
    let history = handle.history().await.unwrap();
    assert!(task_failures(&history).is_empty(), "{history:#?}");
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn a_close_with_signals_the_code_has_not_seen_is_refused_and_a_new_task_delivers_them() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = first_then_rest::start(&s.client)
        .workflow_id("race-close")
        .await
        .unwrap();
    signal_twice_across_a_held_close(&s, &handle, first_then_rest::item, "CompleteWorkflow").await;
    let description = handle.describe().await.unwrap();
    assert_eq!(
        description.task_failures, 0,
        "a refused close is no failure of the code"
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn signal_with_start_starts_the_run_once_and_signals_the_running_one() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let first = collector::start(&s.client)
        .workflow_id("collect-sws")
        .with_signal(collector::item, "a".into())
        .await
        .unwrap();
    let second = collector::start(&s.client)
        .workflow_id("collect-sws")
        .with_signal(collector::item, "b".into())
        .await
        .unwrap();
    assert_eq!(
        first.workflow(),
        second.workflow(),
        "the second call signals the running run"
    );
    second.signal(collector::close, ()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(600), first.result())
        .await
        .expect("the run completes")
        .unwrap();
    assert_eq!(result, ["a", "b"]);
    let history = first.history().await.unwrap();
    assert!(matches!(history[0].kind, EventKind::WorkflowStarted { .. }));
    assert_eq!(signals(&history)[0], "item \"a\"");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_closed_run_is_refused_naming_the_run() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = collector::start(&s.client)
        .workflow_id("collect-closed")
        .await
        .unwrap();
    handle.signal(collector::close, ()).await.unwrap();
    handle.result().await.unwrap();
    let err = handle
        .signal(collector::item, "late".into())
        .await
        .unwrap_err();
    match err {
        WorkflowCallError::Protocol(ProtocolError::AlreadyClosed { what, .. }) => {
            assert!(
                what.contains("collect-closed") && what.contains("`item`"),
                "{what}"
            )
        }
        other => panic!("expected AlreadyClosed, got {other:?}"),
    }
    stop(worker).await;
}

/// Real clock: signals sent while the run completes are either seen by its
/// code or refused to their sender, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_racing_the_completion_is_seen_or_refused_never_lost() {
    let s = setup_with(support::engine_config()).await;
    let worker = s.spawn("racer");
    for round in 0..20 {
        let handle = quick::start(&s.client)
            .workflow_id(format!("quick-{round}"))
            .await
            .unwrap();
        let mut accepted = Vec::new();
        for item in 0..6u32 {
            match handle.signal(quick::item, item).await {
                Ok(_) => accepted.push(item),
                Err(WorkflowCallError::Protocol(ProtocolError::AlreadyClosed { .. })) => break,
                Err(other) => panic!("unexpected error: {other:?}"),
            }
            if round % 2 == 1 {
                tokio::task::yield_now().await;
            }
        }
        let result = tokio::time::timeout(Duration::from_secs(30), handle.result())
            .await
            .expect("the run completes")
            .unwrap();
        assert_eq!(
            result, accepted,
            "round {round}: every accepted signal was seen"
        );
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_query_is_answered_from_the_cached_instance_and_writes_nothing() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = collecting(&s, "query-cached", &["a", "b"]).await;
    let before = handle.history().await.unwrap();
    let items: Vec<String> = handle.query(collector::items).await.unwrap();
    assert_eq!(items, ["a", "b"]);
    assert_eq!(
        handle.history().await.unwrap(),
        before,
        "a query writes nothing"
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_query_whose_worker_is_gone_is_answered_by_another_worker_replaying_the_history() {
    let s = setup().await;
    let first = s.spawn("first");
    let handle = collecting(&s, "query-replay", &["a", "b"]).await;
    stop(first).await;
    // A worker that keeps no instance replays for every query.
    let second = s.spawn_replaying("second");
    let before = handle.history().await.unwrap();
    assert_eq!(handle.query(collector::items).await.unwrap(), ["a", "b"]);
    handle.signal(collector::item, "c".into()).await.unwrap();
    until_seen(&handle).await;
    assert_eq!(
        handle.query(collector::items).await.unwrap(),
        ["a", "b", "c"]
    );
    let after = handle.history().await.unwrap();
    assert_eq!(
        after.len(),
        before.len() + 4,
        "only the signal and its task were written: {after:#?}"
    );
    handle.signal(collector::close, ()).await.unwrap();
    handle.result().await.unwrap();
    assert_eq!(
        handle.query(collector::items).await.unwrap(),
        ["a", "b", "c"],
        "a closed run is queried by replay"
    );
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn a_query_nobody_answers_fails_after_its_bounded_wait_naming_the_queue() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = collecting(&s, "query-nobody", &["a"]).await;
    stop(worker).await;
    let started = tokio::time::Instant::now();
    let err = handle
        .query_within(collector::items, Duration::from_secs(5))
        .await
        .unwrap_err();
    match err {
        WorkflowCallError::Protocol(ProtocolError::Unavailable { message }) => assert!(
            message.contains("no worker answered query `items`")
                && message.contains("task queue `signals`"),
            "{message}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_query_the_code_registered_no_handler_for_is_refused_listing_the_handlers() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = collecting(&s, "query-unknown", &["a"]).await;
    let err = handle.query(collector::unanswered).await.unwrap_err();
    match err {
        WorkflowCallError::Protocol(ProtocolError::InvalidArgument { field, message }) => {
            assert_eq!(field, "query_name");
            assert!(message.contains("it registered: [items]"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_workflow_signals_another_once_even_when_replayed_and_learns_of_a_refusal() {
    let s = setup().await;
    // Keeps no instance: every task replays the signals sent before.
    let worker = s.spawn_replaying("replaying");
    let target = collecting(&s, "collect-from-workflow", &["a"]).await;
    let handle = sender::start(
        &s.client,
        "collect-from-workflow".into(),
        "from sender".into(),
        "nobody-has-this-id".into(),
    )
    .workflow_id("sender-1")
    .await
    .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(600), handle.result())
        .await
        .expect("the sender completes")
        .unwrap();
    assert!(
        refused.contains("not found: workflow `nobody-has-this-id`"),
        "{refused}"
    );
    let result = tokio::time::timeout(Duration::from_secs(600), target.result())
        .await
        .expect("the collector completes")
        .unwrap();
    assert_eq!(result, ["a", "from sender"]);
    let history = target.history().await.unwrap();
    let identities: Vec<String> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkflowSignaled { identity, .. } => Some(identity.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(identities.len(), 3, "sent once each: {history:#?}");
    assert!(
        identities[1].starts_with("workflow `sender-1` run"),
        "{identities:?}"
    );
    let sent = handle.history().await.unwrap();
    let commands = sent
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ExternalWorkflowSignaled { .. }))
        .count();
    assert_eq!(commands, 3);
    assert!(task_failures(&sent).is_empty(), "{sent:#?}");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_continue_as_new_with_signals_the_code_has_not_seen_is_refused_and_they_are_carried_on() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = carries_on::start(&s.client, Vec::new())
        .workflow_id("race-continue")
        .await
        .unwrap();
    let history =
        signal_twice_across_a_held_close(&s, &handle, carries_on::item, "ContinueAsNew").await;
    assert!(
        matches!(
            history.last().map(|e| &e.kind),
            Some(EventKind::WorkflowContinuedAsNew { .. })
        ),
        "{history:#?}"
    );
    stop(worker).await;
}

/// docs/semantics.md §3.1: a query to a run whose code has not run yet (no
/// workflow task completed) waits, within its bound, for the first task, and
/// is answered from the state it leaves.
#[tokio::test(start_paused = true)]
async fn a_query_before_the_first_workflow_task_is_answered_once_the_code_has_run() {
    let s = setup().await;
    let handle = collector::start(&s.client)
        .workflow_id("query-early")
        .await
        .unwrap();
    let asked = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.query(collector::items).await })
    };
    // No worker yet: the query waits for the first task, then for an answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = s.spawn("late");
    let items: Vec<String> = asked.await.unwrap().unwrap();
    assert!(items.is_empty(), "{items:?}");
    stop(worker).await;
}
