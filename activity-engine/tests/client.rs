//! Standalone activities through the typed client: generated stubs run against
//! the real engine; a minimal worker loop (poll, run the registered function,
//! report) plays the worker through the protocol.

mod common;

use std::sync::Arc;

use activity_core::{
    activity,
    context::{ActivityContext, HeartbeatSink},
    definition::StateMap,
    failure::{Failure, RetryState},
    payload::Payload,
    protocol::{ExecutionState, PollActivityTaskRequest, ProtocolError, TaskTarget},
    registry::registered_activities,
    ActivityCallError, ActivityError, ActivityOptions, ActivityProtocol, Client,
};
use activity_engine::{store::sqlite::SqliteStore, Engine, EngineConfig};
use common::*;

/// Succeeds on attempt `succeed_on`.
#[activity(start_to_close = "10s", retry(initial_interval = "2s"))]
async fn flaky(ctx: ActivityContext, succeed_on: u32) -> Result<u32, ActivityError> {
    let attempt = ctx.info().attempt;
    if attempt < succeed_on {
        Err(ActivityError::retryable(format!(
            "attempt {attempt} is too early"
        )))
    } else {
        Ok(attempt)
    }
}

/// Always refuses.
#[activity(start_to_close = "10s")]
async fn refuse(reason: String) -> Result<(), ActivityError> {
    Err(ActivityError::non_retryable("Refused", reason))
}

/// Declares no timeout.
#[activity]
async fn bare() -> Result<(), ActivityError> {
    Ok(())
}

struct Ignore;
impl HeartbeatSink for Ignore {
    fn record(&self, _details: Option<Payload>) {}
}

/// Runs tasks of `QUEUE` with the registered functions until `count` are done.
fn spawn_worker(protocol: Arc<dyn ActivityProtocol>, count: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut done = 0;
        while done < count {
            let Some(task) = protocol
                .poll_activity_task(
                    PollActivityTaskRequest::new(QUEUE, "mini-worker").with_wait(secs(60)),
                )
                .await
                .unwrap()
            else {
                continue;
            };
            let registration = registered_activities()
                .find(|r| r.name() == task.info.activity_type)
                .expect("a registered activity");
            let (ctx, _cancel) = ActivityContext::new(
                task.info.clone(),
                task.last_heartbeat_details.clone(),
                Some(Arc::new(Ignore)),
            );
            let target = TaskTarget::Token(task.task_token.clone());
            let reported = match registration
                .invoke(ctx, &StateMap::new(), &task.input)
                .await
            {
                Ok(result) => protocol.complete_activity(target, result).await,
                Err(ActivityError::Application(failure)) => {
                    protocol.fail_activity(target, failure, None).await
                }
                Err(ActivityError::Canceled(c)) => {
                    protocol.report_canceled(target, c.details).await
                }
                Err(other) => panic!("unexpected {other:?}"),
            };
            reported.unwrap();
            done += 1;
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_stub_runs_a_standalone_activity_and_awaits_its_typed_result() {
    let env = Env::new().await;
    let worker = spawn_worker(env.protocol.clone(), 1);
    let text: String = greet::call(&env.client, "Ada".into()).await.unwrap();
    assert_eq!(text, "Hello, Ada!");
    worker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retries_happen_behind_the_typed_call() {
    let env = Env::new().await;
    let worker = spawn_worker(env.protocol.clone(), 3);
    let t0 = env.now();
    let attempt: u32 = flaky::call(&env.client, 3).await.unwrap();
    assert_eq!(attempt, 3);
    assert_eq!(env.secs_since(t0), 6.0, "backoffs of 2 s then 4 s");
    worker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn start_gives_a_typed_handle_with_id_result_and_describe() {
    let env = Env::new().await;
    let handle = env
        .client
        .start(greet::call(&env.client, "Bob".into()).activity_id("greet-bob"))
        .await
        .unwrap();
    assert_eq!(handle.activity_id(), "greet-bob");
    assert_eq!(
        handle.describe().await.unwrap().state,
        ExecutionState::Scheduled
    );
    let worker = spawn_worker(env.protocol.clone(), 1);
    let text: String = handle.result().await.unwrap();
    assert_eq!(text, "Hello, Bob!");
    assert_eq!(
        handle.describe().await.unwrap().state,
        ExecutionState::Completed
    );
    worker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancel_through_the_handle_resolves_the_result_with_a_canceled_failure() {
    let env = Env::new().await;
    let handle = env
        .client
        .start(greet::call(&env.client, "Eve".into()).activity_id("c"))
        .await
        .unwrap();
    assert_eq!(handle.cancel().await.unwrap(), ExecutionState::Canceled);
    let err = handle.result().await.unwrap_err();
    let failure = err.failure().expect("a failure");
    assert!(matches!(failure.cause, Failure::Canceled(_)));
    assert_eq!(failure.retry_state, RetryState::CancelRequested);
}

#[tokio::test(start_paused = true)]
async fn a_failed_activity_surfaces_type_id_attempts_retry_state_and_cause() {
    let env = Env::new().await;
    let worker = spawn_worker(env.protocol.clone(), 1);
    let err = refuse::call(&env.client, "no".into())
        .activity_id("r")
        .await
        .unwrap_err();
    let failure = err.failure().expect("a failure");
    assert_eq!(failure.activity_type, "refuse");
    assert_eq!(failure.activity_id, "r");
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    assert_eq!(failure.application().unwrap().error_type, "Refused");
    worker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_typed() {
    let env = Env::new().await;
    // No timeout declared anywhere, and none in the options given at run time:
    // invalid options, nothing scheduled. (Without run-time options the call
    // does not compile: ui-tests `missing_timeout`.)
    let err = bare::call(&env.client)
        .options(ActivityOptions::new())
        .activity_id("b")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ActivityCallError::InvalidOptions(_)),
        "{err:?}"
    );
    // No task queue anywhere.
    let no_queue = Client::new(env.protocol.clone());
    let err = greet::call(&no_queue, "x".into()).await.unwrap_err();
    let ActivityCallError::InvalidOptions(options) = err else {
        panic!("{err:?}")
    };
    assert_eq!(options.problems[0].field, "task_queue");
    // A duplicate id.
    env.client
        .start(greet::call(&env.client, "x".into()).activity_id("dup"))
        .await
        .unwrap();
    let err = env
        .client
        .start(greet::call(&env.client, "y".into()).activity_id("dup"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ActivityCallError::Protocol(ProtocolError::AlreadyExists { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_share_transactions() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let engine = Engine::open_with_store(
        store.clone(),
        EngineConfig::in_memory().with_clock(Arc::new(activity_engine::VirtualClock::new())),
    )
    .await
    .unwrap();
    let client = Client::new(engine.protocol()).with_task_queue(QUEUE);
    let before = store.stats();
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        starts.spawn(async move {
            client
                .start(greet::call(&client, format!("n{i}")).activity_id(format!("g{i}")))
                .await
                .map(drop)
        });
    }
    while let Some(started) = starts.join_next().await {
        started.unwrap().unwrap();
    }
    let after = store.stats();
    let jobs = after.jobs - before.jobs;
    let transactions = after.transactions - before.transactions;
    assert!(jobs >= 200, "{jobs}");
    assert!(
        transactions < jobs,
        "group commit: {transactions} transactions for {jobs} jobs"
    );
    let q = engine
        .protocol()
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!(q.backlog, 200);
    engine.close().await;
}
