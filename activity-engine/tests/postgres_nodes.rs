//! Several engine nodes on one PostgreSQL database (SEMANTICS 5): each attempt
//! is handed to at most one worker across all nodes, whichever node the
//! worker polls. Runs with `ACTIVITY_TEST_STORE=postgres` (see
//! `activity_test_support`); on SQLite there is one engine per store and
//! nothing to test here.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use activity_core::{
    activity,
    definition::BoxFuture,
    options::ActivityOptions,
    payload::Payload,
    protocol::{
        ExecutionRef, ExecutionState, PollActivityTaskRequest, ProtocolError, ProtocolRequest,
        ProtocolResponse, ScheduleActivityRequest, TaskTarget,
    },
    workflow,
    workflow::{join_all, EventKind, WorkflowRef},
    ActivityError, ActivityProtocol, Client, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

const ATTEMPTS: usize = 5_000;

/// Activity id -> (node, poller, attempt) of every hand-off of it.
type Handed = HashMap<String, Vec<(usize, usize, u32)>>;
const POLLERS_PER_NODE: usize = 6;

/// Two nodes on one database (a schema of the test's own), or `None` (the
/// test is skipped) when the suites do not run on PostgreSQL.
async fn two_nodes() -> Option<(Engine, Engine)> {
    if !activity_test_support::postgres() {
        eprintln!("skipped: runs with ACTIVITY_TEST_STORE=postgres");
        return None;
    }
    let config = activity_test_support::engine_config();
    let a = Engine::open(config.clone()).await.expect("node A opens");
    let b = Engine::open(config).await.expect("node B opens");
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_hand_the_same_attempt_to_two_workers() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let nodes: [Arc<dyn ActivityProtocol>; 2] = [a.protocol(), b.protocol()];

    let handed: Arc<Mutex<Handed>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut pollers = Vec::new();
    for (node, protocol) in nodes.iter().enumerate() {
        for poller in 0..POLLERS_PER_NODE {
            let (protocol, handed) = (protocol.clone(), handed.clone());
            pollers.push(tokio::spawn(async move {
                let request =
                    PollActivityTaskRequest::new("shared", format!("node{node}-poller{poller}"))
                        .with_wait(Duration::from_millis(200));
                while Instant::now() < deadline {
                    if lock(&handed).len() >= ATTEMPTS {
                        break;
                    }
                    let tasks = protocol
                        .poll_activity_tasks(request.clone(), 8)
                        .await
                        .expect("polls succeed");
                    for task in tasks {
                        lock(&handed)
                            .entry(task.info.activity_id.clone())
                            .or_default()
                            .push((node, poller, task.info.attempt));
                        protocol
                            .complete_activity(
                                TaskTarget::Token(task.task_token),
                                Payload::json(&node).unwrap(),
                            )
                            .await
                            .expect("the attempt handed here completes");
                    }
                }
            }));
        }
    }
    // Scheduled through node A, while the pollers of both claim: A's pollers
    // are handed attempts in the scheduling transactions, B's claim them from
    // the table, woken by A's notifications.
    let options = ActivityOptions::new().start_to_close(Duration::from_secs(600));
    let mut schedulers = Vec::new();
    for node in 0..2 {
        let (protocol, options) = (nodes[0].clone(), options.clone());
        schedulers.push(tokio::spawn(async move {
            let ids: Vec<String> = (0..ATTEMPTS / 2).map(|i| format!("n{node}-{i}")).collect();
            for chunk in ids.chunks(50) {
                let mut calls = tokio::task::JoinSet::new();
                for id in chunk {
                    let (protocol, options, id) = (protocol.clone(), options.clone(), id.clone());
                    calls.spawn(async move {
                        protocol
                            .schedule_activity(
                                ScheduleActivityRequest::new(
                                    "work",
                                    vec![],
                                    options.task_queue("shared"),
                                )
                                .with_activity_id(id),
                            )
                            .await
                    });
                }
                while let Some(scheduled) = calls.join_next().await {
                    scheduled.unwrap().expect("schedules succeed");
                }
            }
        }));
    }
    for s in schedulers {
        s.await.unwrap();
    }
    for p in pollers {
        p.await.unwrap();
    }
    let handed = lock(&handed).clone();
    let twice: Vec<_> = handed.iter().filter(|(_, to)| to.len() != 1).collect();
    assert!(
        twice.is_empty(),
        "attempts handed more than once: {twice:?}"
    );
    assert_eq!(handed.len(), ATTEMPTS, "every attempt was handed out once");
    let per_node = |n| handed.values().filter(|to| to[0].0 == n).count();
    eprintln!("node A handed {}, node B {}", per_node(0), per_node(1));
    assert!(per_node(0) > 0 && per_node(1) > 0, "both nodes claimed");
    // Each completed once, with the result of the node that handed it out.
    for (id, to) in handed.iter().take(200) {
        let described = nodes[1 - to[0].0]
            .describe_execution(ExecutionRef::standalone(id.clone()))
            .await
            .unwrap();
        assert_eq!(described.state, ExecutionState::Completed, "{id}");
        assert_eq!(described.attempt, 1, "{id}");
    }
    b.close().await;
    a.close().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap()
}

// ------------------------------------------------------------ shared runs

/// Activities a workflow runs at once (as the crash tests do).
const WAVE: u32 = 25;
const SHARED_WORKFLOWS: u32 = 6;
const SHARED_PER_WORKFLOW: u32 = 200;
/// Longest the whole run may take (about 15 s on 2 busy cores).
const SHARED_DEADLINE: Duration = Duration::from_secs(60);

#[activity(start_to_close = "60s")]
async fn nodes_noop() -> Result<(), ActivityError> {
    Ok(())
}

/// Runs `n` activities in waves of [`WAVE`].
#[workflow]
async fn nodes_fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let mut done = 0;
    while done < n {
        let wave = WAVE.min(n - done);
        for result in join_all((0..wave).map(|_| nodes_noop::call(&ctx))).await {
            result?;
        }
        done += wave;
    }
    Ok(n)
}

/// A node's protocol that keeps every error it answered.
struct Errors {
    inner: Arc<dyn ActivityProtocol>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ActivityProtocol for Errors {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        let what = request.operation().name();
        let call = self.inner.call(request);
        Box::pin(async move {
            let answer = call.await;
            if let Err(err) = &answer {
                lock(&self.seen).push(format!("{what}: {err}"));
            }
            answer
        })
    }
}

/// Counts the store's lock conflicts (`activity_store_conflicts_total`), by reason.
#[derive(Default)]
struct Conflicts(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Conflicts {
    fn installed() -> &'static Conflicts {
        static CONFLICTS: std::sync::OnceLock<&'static Conflicts> = std::sync::OnceLock::new();
        CONFLICTS.get_or_init(|| {
            let conflicts: &'static Conflicts = Box::leak(Box::default());
            metrics::set_global_recorder(conflicts).expect("the only recorder");
            conflicts
        })
    }

    fn counts(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<_> = lock(&self.0)
            .iter()
            .map(|(reason, n)| (reason.clone(), n.load(Ordering::Relaxed)))
            .collect();
        counts.sort();
        counts
    }
}

impl metrics::Recorder for Conflicts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != "activity_store_conflicts_total" {
            return Counter::noop();
        }
        let reason = key
            .labels()
            .find(|l| l.key() == "reason")
            .map_or_else(String::new, |l| l.value().to_owned());
        Counter::from_arc(lock(&self.0).entry(reason).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Deadlocks PostgreSQL detected in the test database so far (all its sessions).
fn deadlocks() -> i64 {
    query_one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()".into())
}

/// Two nodes whose workers complete the activities of the same runs at once:
/// their transactions lock the same runs, executions and pollers in different
/// orders (a node batches concurrent requests into one transaction). A lock
/// conflict between two nodes' batches is the store's business: it re-runs the
/// jobs it rolled back, so no caller is ever answered an error, and everything
/// completes, each activity once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sharing_runs_answer_no_errors_when_their_transactions_conflict() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut nodes: Vec<Arc<dyn ActivityProtocol>> = Vec::new();
    for engine in [&a, &b] {
        nodes.push(Arc::new(Errors {
            inner: activity_test_support::connect(engine).await,
            seen: seen.clone(),
        }));
    }
    let conflicts = Conflicts::installed();
    let deadlocks_before = deadlocks();
    let mut stops = Vec::new();
    let mut workers = Vec::new();
    for (n, protocol) in nodes.iter().enumerate() {
        let worker = Worker::builder(protocol.clone())
            .task_queue("shared-runs")
            .identity(format!("node{n}-worker"))
            .max_concurrent_activities(100)
            .pollers_per_queue(8)
            .poll_wait(Duration::from_secs(1))
            .build()
            .expect("the worker builds");
        stops.push(worker.shutdown_handle());
        workers.push(tokio::spawn(worker.run_until(std::future::pending())));
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..SHARED_WORKFLOWS {
        // Started on both nodes, alternately.
        let client = Client::new(nodes[w as usize % 2].clone()).with_task_queue("shared-runs");
        handles.push(
            nodes_fan_out::start(&client, SHARED_PER_WORKFLOW)
                .workflow_id(format!("shared-{w}"))
                .await
                .expect("the workflow starts"),
        );
    }
    for (w, handle) in handles.into_iter().enumerate() {
        let left = SHARED_DEADLINE.saturating_sub(started.elapsed());
        let result = tokio::time::timeout(left, handle.result())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "workflow shared-{w} stalled after {:?}; errors answered: {:?}",
                    started.elapsed(),
                    lock(&seen).iter().take(5).collect::<Vec<_>>()
                )
            })
            .expect("the workflow completes");
        assert_eq!(result, SHARED_PER_WORKFLOW);
    }
    let elapsed = started.elapsed();
    let errors = lock(&seen).clone();
    eprintln!(
        "{} activities of {SHARED_WORKFLOWS} runs shared by two nodes in {elapsed:?}; \
         {} deadlocks detected by PostgreSQL meanwhile (all sessions of the database); \
         jobs run again after a lock conflict: {:?}",
        SHARED_WORKFLOWS * SHARED_PER_WORKFLOW,
        deadlocks() - deadlocks_before,
        conflicts.counts()
    );
    for stop in stops {
        stop.shutdown();
    }
    for worker in workers {
        worker.await.expect("the worker ends");
    }
    assert!(
        errors.is_empty(),
        "{} calls were answered an error, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // Every activity is scheduled once and completed once.
    for w in 0..SHARED_WORKFLOWS {
        let history = nodes[0]
            .workflow_history(WorkflowRef::latest(format!("shared-{w}")))
            .await
            .expect("the history");
        let count = |kind: fn(&EventKind) -> bool| history.iter().filter(|e| kind(&e.kind)).count();
        let scheduled = count(|k| matches!(k, EventKind::ActivityScheduled { .. }));
        let completed = count(|k| matches!(k, EventKind::ActivityCompleted { .. }));
        assert_eq!(scheduled, SHARED_PER_WORKFLOW as usize, "shared-{w}");
        assert_eq!(completed, SHARED_PER_WORKFLOW as usize, "shared-{w}");
    }
    b.close().await;
    a.close().await;
}

// ------------------------------------------------------------ the URL's schema

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Runs `f` with a connection to the test database (on a thread of its own:
/// the synchronous client must not run on the async runtime).
fn on_database<T: Send + 'static>(
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = activity_test_support::database_url();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
        f(&mut client)
    })
    .join()
    .expect("the database thread")
}

/// The first column of the one row `sql` returns.
fn query_one(sql: String) -> i64 {
    on_database(move |client| client.query_one(&sql, &[]).expect(&sql).get(0))
}

/// A server given only a URL (`activity-server serve --db postgres://…`)
/// keeps its tables in the schema the URL's `schema` parameter names; an
/// empty name is refused at start, saying what to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_names_the_schema_of_the_tables() {
    if !activity_test_support::postgres() {
        eprintln!("skipped: runs with ACTIVITY_TEST_STORE=postgres");
        return;
    }
    let base = activity_test_support::database_url();
    // Named like the suites' schemas, so a run killed here leaves nothing.
    let schema = format!("activity_test_{}_url", std::process::id());
    let url = with_param(&base, &format!("schema={schema}"));
    let engine = Engine::open(EngineConfig::postgres(url))
        .await
        .expect("the engine opens");
    engine
        .protocol()
        .schedule_activity(
            ScheduleActivityRequest::new(
                "work",
                vec![],
                ActivityOptions::new()
                    .start_to_close(Duration::from_secs(60))
                    .task_queue("url-schema"),
            )
            .with_activity_id("in-its-schema"),
        )
        .await
        .expect("schedules");
    engine.close().await;
    let rows = query_one(format!(
        "SELECT count(*) FROM \"{schema}\".executions WHERE activity_id = 'in-its-schema'"
    ));
    assert_eq!(rows, 1, "the execution is in schema {schema}");
    on_database(move |client| {
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .expect("the schema is dropped")
    });

    let refused = Engine::open(EngineConfig::postgres(with_param(&base, "schema=")))
        .await
        .expect_err("an empty schema name is refused");
    let message = refused.to_string();
    assert!(
        message.contains("schema name is empty") && message.contains("?schema=NAME"),
        "{message}"
    );
}

/// docs/semantics.md §3: a run timeout is a durable timer that either node
/// may fire; each run is closed TIMED_OUT once, with one `WorkflowTimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_time_out_each_run_once() {
    use activity_core::workflow::{StartWorkflowRequest, WorkflowOutcome, WorkflowTimeout};
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let nodes: [Arc<dyn ActivityProtocol>; 2] = [a.protocol(), b.protocol()];
    let mut runs = Vec::new();
    for n in 0..20 {
        let mut request =
            StartWorkflowRequest::new(format!("timed-{n}"), "nobody_serves", "timed", vec![]);
        request.run_timeout = Some(Duration::from_millis(500));
        runs.push(nodes[n % 2].start_workflow(request).await.expect("starts"));
    }
    for (n, run) in runs.iter().enumerate() {
        let outcome = nodes[(n + 1) % 2]
            .wait_workflow_outcome(run.clone(), Duration::from_secs(30))
            .await
            .expect("waits");
        assert_eq!(
            outcome,
            Some(WorkflowOutcome::TimedOut {
                timeout: WorkflowTimeout::Run
            }),
            "{run}"
        );
    }
    // Both nodes have had time to fire the timers again: nothing more happens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for run in &runs {
        let history = nodes[0]
            .workflow_history(run.clone())
            .await
            .expect("history");
        let timed_out = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::WorkflowTimedOut { .. }))
            .count();
        assert_eq!(timed_out, 1, "{run}: {history:#?}");
        assert!(matches!(
            history.last().map(|e| &e.kind),
            Some(EventKind::WorkflowTimedOut { .. })
        ));
    }
}
