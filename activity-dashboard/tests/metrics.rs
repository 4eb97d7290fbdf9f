//! `/metrics` after a known workload, on the real engine and worker (in-process,
//! or over gRPC with `ACTIVITY_TEST_TRANSPORT=remote`): every count is exact.
//! The recorder is the process's, so this test's series are told apart by
//! task queues of their own.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use activity_core::{
    activity,
    options::ActivityOptions,
    protocol::{ExecutionRef, ScheduleActivityRequest},
    workflow,
    workflow::{EventKind, WorkflowRef},
    ActivityError, Client, Payload, WorkflowContext, WorkflowError,
};
use activity_dashboard::Dashboard;
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

const QUEUE: &str = "metrics-test-q";
const IDLE: &str = "metrics-test-idle-q";

#[activity(start_to_close = "10s")]
async fn steady(name: String) -> Result<String, ActivityError> {
    Ok(name)
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt, then succeeds.
#[activity(start_to_close = "10s", retry(initial_interval = "10ms"))]
async fn flaky() -> Result<u32, ActivityError> {
    match FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) {
        0 => Err(ActivityError::retryable("first attempt fails")),
        n => Ok(n),
    }
}

#[workflow]
async fn metered(ctx: WorkflowContext) -> Result<u32, WorkflowError> {
    steady::call(&ctx, "a".into()).await?;
    steady::call(&ctx, "b".into()).await?;
    Ok(flaky::call(&ctx).await?)
}

/// One sample line of the text format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("`key=value`");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect()
}

/// The value of the one series `name` with exactly these labels; 0 if absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<_> = samples
        .iter()
        .filter(|(n, l, _)| n == name && *l == wanted)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice: {found:?}");
    found.first().map_or(0.0, |(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_the_engine_and_the_worker_did() {
    let engine = Engine::open(EngineConfig::in_memory()).await.unwrap();
    let protocol = activity_test_support::connect(&engine).await;
    let router = Dashboard::new(protocol.clone()).router().unwrap();
    let worker = Worker::builder(protocol.clone())
        .task_queue(QUEUE)
        .identity("metrics-worker")
        .poll_wait(Duration::from_millis(500))
        .build()
        .unwrap();
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let client = Client::new(protocol.clone()).with_task_queue(QUEUE);

    // The workload: a workflow of two steady activities and a flaky one
    // (retried once), a standalone steady one; on a queue nobody polls, one
    // that times out waiting, one canceled, one left waiting.
    let handle = metered::start(&client)
        .workflow_id("metered-1")
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), handle.result())
            .await
            .expect("the workflow finishes")
            .unwrap(),
        1
    );
    assert_eq!(
        steady::call(&client, "c".into()).await.unwrap(),
        "c",
        "the standalone one"
    );
    let idle = |id: &str, options: ActivityOptions| {
        let protocol = protocol.clone();
        let request = ScheduleActivityRequest::new(
            "idle_type",
            vec![Payload::json(&id).unwrap()],
            options.task_queue(IDLE),
        )
        .with_activity_id(id);
        async move { protocol.schedule_activity(request).await.unwrap() }
    };
    let stc = ActivityOptions::new().start_to_close(Duration::from_secs(10));
    idle(
        "starved",
        stc.clone().schedule_to_start(Duration::from_millis(50)),
    )
    .await;
    idle("canceled", stc.clone()).await;
    protocol
        .request_cancel(ExecutionRef::standalone("canceled"))
        .await
        .unwrap();
    idle("waiting", stc).await;
    let starved = loop {
        let d = protocol
            .describe_execution(ExecutionRef::standalone("starved"))
            .await
            .unwrap();
        if d.state.is_final() {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(starved.state, activity_core::ExecutionState::TimedOut);
    let history = protocol
        .workflow_history(WorkflowRef::latest("metered-1"))
        .await
        .unwrap();
    let tasks_completed = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. }))
        .count() as f64;

    let response = router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let samples = parse(&text);
    let steady_labels = [("activity_type", "steady"), ("task_queue", QUEUE)];
    let flaky_labels = [("activity_type", "flaky"), ("task_queue", QUEUE)];
    let idle_labels = [("activity_type", "idle_type"), ("task_queue", IDLE)];
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    assert_eq!(v("activity_scheduled_total", &steady_labels), 3.0, "{text}");
    assert_eq!(v("activity_started_total", &steady_labels), 3.0);
    assert_eq!(v("activity_completed_total", &steady_labels), 3.0);
    assert_eq!(v("activity_attempt_seconds_count", &steady_labels), 3.0);
    assert_eq!(
        v("activity_schedule_to_start_seconds_count", &steady_labels),
        3.0
    );
    assert_eq!(v("activity_scheduled_total", &flaky_labels), 1.0);
    assert_eq!(v("activity_started_total", &flaky_labels), 2.0);
    assert_eq!(v("activity_retried_total", &flaky_labels), 1.0);
    assert_eq!(v("activity_completed_total", &flaky_labels), 1.0);
    assert_eq!(v("activity_failed_total", &flaky_labels), 0.0);
    assert_eq!(v("activity_attempt_seconds_count", &flaky_labels), 2.0);
    assert_eq!(v("activity_scheduled_total", &idle_labels), 3.0);
    assert_eq!(v("activity_started_total", &idle_labels), 0.0);
    assert_eq!(v("activity_canceled_total", &idle_labels), 1.0);
    let mut timed_out = idle_labels.to_vec();
    timed_out.push(("timeout", "schedule_to_start"));
    assert_eq!(v("activity_timed_out_total", &timed_out), 1.0);

    let run = [("workflow_type", "metered"), ("task_queue", QUEUE)];
    assert_eq!(v("activity_workflow_started_total", &run), 1.0);
    let mut closed = run.to_vec();
    closed.push(("outcome", "completed"));
    assert_eq!(v("activity_workflow_closed_total", &closed), 1.0);
    assert!(
        tasks_completed >= 4.0,
        "one task per activity result and the first"
    );
    assert_eq!(v("activity_workflow_task_total", &closed), tasks_completed);
    assert_eq!(
        v("activity_workflow_task_seconds_count", &run),
        tasks_completed
    );

    // The worker's side.
    let body = |activity_type: &str, outcome: &str| {
        v(
            "activity_worker_activity_seconds_count",
            &[
                ("activity_type", activity_type),
                ("task_queue", QUEUE),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(body("steady", "completed"), 3.0);
    assert_eq!(body("flaky", "failed"), 1.0);
    assert_eq!(body("flaky", "completed"), 1.0);
    assert_eq!(
        v(
            "activity_worker_slots_used",
            &[("worker", "metrics-worker")]
        ),
        0.0
    );
    assert!(samples
        .iter()
        .any(|(n, l, _)| n == "activity_worker_poll_seconds_count"
            && l.get("task_queue").map(String::as_str) == Some(QUEUE)));

    // The queues' gauges, read at the scrape.
    assert_eq!(
        v("activity_task_queue_backlog", &[("task_queue", IDLE)]),
        1.0
    );
    assert_eq!(
        v("activity_task_queue_dispatchable", &[("task_queue", IDLE)]),
        1.0
    );
    assert_eq!(
        v("activity_task_queue_pollers", &[("task_queue", IDLE)]),
        0.0
    );
    assert_eq!(
        v("activity_task_queue_pollers", &[("task_queue", QUEUE)]),
        1.0
    );
    assert_eq!(
        v("activity_task_queue_backlog", &[("task_queue", QUEUE)]),
        0.0
    );
    // The store's own histograms have samples (shared by every engine here).
    assert!(v("activity_store_commit_seconds_count", &[]) > 0.0);
    assert!(v("activity_store_batch_jobs_count", &[]) > 0.0);

    shutdown.shutdown();
    running.await.unwrap();
}
