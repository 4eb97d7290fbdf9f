//! `activity-server serve` as a real process: a worker and a client in this
//! test talk to it over gRPC on loopback (standalone activity, workflow), it
//! survives SIGKILL mid-workflow (restarted on the same file and port, the
//! worker reconnects by itself, every activity ran once), it shuts down
//! gracefully on SIGTERM, its bearer-token auth refuses calls without the token,
//! and it serves the dashboard and `/metrics` over HTTP/1.1 on its port (or on
//! `--http ADDR`).

mod process_support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use activity_core::{
    activity, workflow,
    workflow::{EventKind, WorkflowOutcome, WorkflowRef, WorkflowState},
    ActivityError, ActivityProtocol, Client, Payload, ProtocolError, State, WorkflowContext,
    WorkflowError,
};
use activity_remote::RemoteConfig;
use activity_worker::{ShutdownHandle, Worker, WorkerReport};
use process_support::*;
use tokio::{sync::Notify, task::JoinHandle};

const QUEUE: &str = "process-q";

/// Counts activity bodies; holds `held` until the test opens the gate.
#[derive(Default)]
struct Probe {
    runs: Mutex<HashMap<String, usize>>,
    gate: Notify,
}

impl Probe {
    fn ran(&self, what: String) {
        *self.runs.lock().unwrap().entry(what).or_default() += 1;
    }

    fn count(&self, what: &str) -> usize {
        self.runs.lock().unwrap().get(what).copied().unwrap_or(0)
    }
}

/// Upper-cases its input.
#[activity(start_to_close = "30s")]
async fn shout(probe: State<Probe>, text: String) -> Result<String, ActivityError> {
    probe.ran(format!("shout {text}"));
    Ok(text.to_uppercase())
}

/// Waits for the test's gate.
#[activity(start_to_close = "1m")]
async fn held(probe: State<Probe>, name: String) -> Result<String, ActivityError> {
    probe.ran(format!("held {name}"));
    probe.gate.notified().await;
    Ok(format!("{name} released"))
}

/// Three activities in a row, the middle one held.
#[workflow]
async fn relay(ctx: WorkflowContext, name: String) -> Result<Vec<String>, WorkflowError> {
    let one = shout::call(&ctx, format!("{name} one")).await?;
    let two = held::call(&ctx, name.clone()).await?;
    let three = shout::call(&ctx, format!("{name} three")).await?;
    Ok(vec![one, two, three])
}

struct RunningWorker {
    handle: ShutdownHandle,
    task: JoinHandle<WorkerReport>,
}

impl RunningWorker {
    fn start(protocol: Arc<dyn ActivityProtocol>, probe: Arc<Probe>) -> RunningWorker {
        let worker = Worker::builder(protocol)
            .task_queue(QUEUE)
            .identity("process-test-worker")
            .poll_wait(Duration::from_secs(2))
            .graceful_shutdown_period(Duration::from_millis(200))
            .shared_state(probe)
            .build()
            .expect("the worker builds");
        let handle = worker.shutdown_handle();
        let task = tokio::spawn(worker.run_until(std::future::pending()));
        RunningWorker { handle, task }
    }

    async fn stop(self) -> WorkerReport {
        self.handle.shutdown();
        bounded("the worker's shutdown", self.task)
            .await
            .expect("the worker task")
    }
}

/// Waits (bounded) for the run's outcome, retrying while the server is
/// unreachable (it may be restarting).
async fn outcome(protocol: &dyn ActivityProtocol, workflow_id: &str) -> WorkflowOutcome {
    bounded("the workflow's outcome", async {
        loop {
            match protocol
                .wait_workflow_outcome(WorkflowRef::latest(workflow_id), Duration::from_secs(2))
                .await
            {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => {}
                Err(err) if err.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("waiting for the outcome failed: {err}"),
            }
        }
    })
    .await
}

fn completed(outcome: WorkflowOutcome) -> Vec<String> {
    match outcome {
        WorkflowOutcome::Completed(result) => result.decode().expect("a list of strings"),
        other => panic!("the workflow did not complete: {other:?}"),
    }
}

fn json(value: impl serde::Serialize) -> Payload {
    Payload::json(&value).expect("serializable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_an_activity_and_a_workflow_through_the_served_binary_which_stops_on_sigterm()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(&dir.path().join("engine.db"), &[]);
    let probe = Arc::new(Probe::default());
    let worker = RunningWorker::start(server.remote().await, probe.clone());
    let remote = server.remote().await;
    let client = Client::new(remote.clone()).with_task_queue(QUEUE);

    // A standalone activity, typed, end to end.
    let text = bounded(
        "the standalone activity",
        shout::call(&client, "standalone".into()).activity_id("standalone-1"),
    )
    .await
    .expect("the activity completes");
    assert_eq!(text, "STANDALONE");

    // A workflow, typed, end to end.
    probe.gate.notify_one();
    let handle = bounded(
        "the start",
        relay::start(&client, "ada".into()).workflow_id("relay-1"),
    )
    .await
    .expect("the workflow starts");
    let result = bounded("the workflow", handle.result())
        .await
        .expect("the workflow completes");
    assert_eq!(result, ["ADA ONE", "ada released", "ADA THREE"]);

    let description = handle.describe().await.expect("described");
    assert_eq!(description.state, WorkflowState::Completed);
    assert_eq!(description.workflow_type, "relay");
    assert_eq!(description.task_queue, QUEUE);
    let history = handle.history().await.expect("the history");
    assert_eq!(description.history_length, history.len() as u64);
    assert!(matches!(
        &history[0].kind,
        EventKind::WorkflowStarted { workflow_type, input, .. }
            if workflow_type == "relay" && *input == vec![json("ada")]
    ));
    let scheduled: Vec<&str> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityScheduled { activity_type, .. } => Some(activity_type.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(scheduled, ["shout", "held", "shout"]);
    assert!(matches!(
        &history.last().expect("events").kind,
        EventKind::WorkflowCompleted { result } if *result == json(["ADA ONE", "ada released", "ADA THREE"])
    ));

    // SIGTERM with the worker still long-polling: the server stops accepting,
    // closes the engine (which ends the polls) and exits cleanly.
    let status = server.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("engine closed"), "{log}");
    let report = worker.stop().await;
    assert_eq!(report.completed, 4, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_workflow_restarts_on_its_file_and_the_workflow_finishes_each_activity_once(
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(&dir.path().join("engine.db"), &[]);
    let probe = Arc::new(Probe::default());
    // The worker's remote protocol outlives the server process: it reconnects.
    let worker = RunningWorker::start(server.remote().await, probe.clone());
    let client = Client::new(server.remote().await).with_task_queue(QUEUE);
    bounded(
        "the start",
        relay::start(&client, "crash".into()).workflow_id("relay-crash"),
    )
    .await
    .expect("the workflow starts");
    eventually("the held activity to start", || {
        probe.count("held crash") == 1
    })
    .await;
    assert_eq!(probe.count("shout crash one"), 1);

    server.kill9();
    // The held activity finishes while the server is down: the worker keeps
    // reporting its result until the server is back.
    probe.gate.notify_one();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.restart();

    let fresh = server.remote().await;
    let result = completed(outcome(&*fresh, "relay-crash").await);
    assert_eq!(result, ["CRASH ONE", "crash released", "CRASH THREE"]);
    for activity in ["shout crash one", "held crash", "shout crash three"] {
        assert_eq!(probe.count(activity), 1, "{activity} ran more than once");
    }
    let history = fresh
        .workflow_history(WorkflowRef::latest("relay-crash"))
        .await
        .expect("the history survives");
    let completions = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ActivityCompleted { .. }))
        .count();
    assert_eq!(completions, 3, "{history:#?}");
    let report = worker.stop().await;
    assert_eq!(report.completed, 3, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_a_call_without_it_is_refused_and_with_it_served_within_the_size_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(
        &dir.path().join("engine.db"),
        &["--token", "s3cret", "--max-request-bytes", "4096"],
    );

    let anonymous = server.remote().await;
    let refused = anonymous
        .describe_task_queue(QUEUE.into())
        .await
        .expect_err("no token");
    assert!(
        matches!(&refused, ProtocolError::InvalidArgument { field, .. } if field == "authorization"),
        "{refused:?}"
    );
    let wrong = server
        .remote_with(RemoteConfig::new(server.url()).with_bearer_token("guess"))
        .await;
    assert!(wrong
        .describe_workflow(WorkflowRef::latest("any"))
        .await
        .is_err_and(|e| e.to_string().contains("does not match")));

    let authorized = server
        .remote_with(RemoteConfig::new(server.url()).with_bearer_token("s3cret"))
        .await;
    let queue = authorized
        .describe_task_queue(QUEUE.into())
        .await
        .expect("served");
    assert_eq!(queue.name, QUEUE);
    assert!(matches!(
        authorized
            .describe_workflow(WorkflowRef::latest("any"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));
}

/// One HTTP/1.1 GET on loopback, answered as (status line, whole answer).
fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    // A server that does not speak HTTP/1.1 on this port may reset the connection
    // before the request is written: that is an answer too (an empty status line).
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .is_err()
    {
        return (String::new(), String::new());
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or("").to_owned();
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_metrics_are_served_on_the_grpc_port_or_on_their_own_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    // On the gRPC port by default, next to the gRPC service.
    let server = ServerProcess::start(&dir.path().join("one.db"), &["--token", "s3cret"]);
    let (status, page) = http_get(server.addr, "/workflows", None);
    assert!(status.ends_with("401 Unauthorized"), "{status}");
    assert!(page.contains("Log in"), "{page}");
    let (status, metrics) = http_get(server.addr, "/metrics", Some("s3cret"));
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    let remote = server
        .remote_with(RemoteConfig::new(server.url()).with_bearer_token("s3cret"))
        .await;
    assert!(remote
        .list_task_queues()
        .await
        .expect("gRPC too")
        .is_empty());

    // On an address of its own with --http: the gRPC port then speaks HTTP/2 only.
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let server = ServerProcess::start(&dir.path().join("two.db"), &["--http", &http.to_string()]);
    let (status, page) = http_get(http, "/workflows", None);
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(page.contains("<h1>Workflows</h1>"), "{page}");
    let (status, _) = http_get(server.addr, "/workflows", None);
    assert!(!status.contains("200"), "{status}");
    assert!(
        server.log().contains(&format!("url=http://{http}/")),
        "{}",
        server.log()
    );
}
