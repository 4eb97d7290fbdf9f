//! Several endpoints: two gRPC services in front of one engine (nodes of one
//! deployment share a store), a worker and a client connected to both. The node
//! they use is killed mid-run (its connections dropped, calls in flight lost):
//! they carry on through the other node; every workflow completes with its
//! result, every activity's outcome is recorded once, and no attempt ran twice.

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use activity_core::{
    activity,
    protocol::{ExecutionRef, PollActivityTaskRequest, ScheduleActivityRequest, TaskTarget},
    workflow,
    workflow::{EventKind, WorkflowRef},
    ActivityContext, ActivityError, ActivityProtocol, Client, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_remote::{ActivityService, RemoteConfig, RemoteProtocol};
use activity_worker::Worker;
use common::*;
use tokio::{net::TcpListener, task::JoinHandle};

const FAILOVER_QUEUE: &str = "failover-q";

/// A workflow id, an activity id and an attempt.
type Attempt = (String, String, u32);

/// Runs of each attempt.
static RUNS: Mutex<Option<HashMap<Attempt, usize>>> = Mutex::new(None);
static RAN: AtomicUsize = AtomicUsize::new(0);

/// Doubles `n`, slowly enough that a node dies with attempts in flight.
#[activity(start_to_close = "1s", retry(initial_interval = "20ms"))]
async fn failover_double(ctx: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    let info = ctx.info();
    let key = (
        info.workflow_id.clone().unwrap_or_default(),
        info.activity_id.clone(),
        info.attempt,
    );
    *RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default() += 1;
    RAN.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(15)).await;
    Ok(n * 2)
}

/// Ten activities, one after another.
#[workflow]
async fn failover_chain(ctx: WorkflowContext, start: u32) -> Result<u32, WorkflowError> {
    let mut total = 0;
    for i in 0..10 {
        total += failover_double::call(&ctx, start + i).await?;
    }
    Ok(total)
}

/// One node: the engine behind its own gRPC service, killed by aborting it.
struct Node {
    addr: SocketAddr,
    task: JoinHandle<Result<(), activity_remote::ServeError>>,
}

impl Node {
    async fn start(engine: &Engine) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(
            ActivityService::new(engine.protocol()).serve(listener, std::future::pending()),
        );
        Node { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and stops listening, mid-call.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_a_client_carry_on_through_the_other_node_when_theirs_dies() {
    let engine =
        Engine::open(EngineConfig::in_memory().with_workflow_task_timeout(Duration::from_secs(1)))
            .await
            .expect("engine");
    let a = Node::start(&engine).await;
    let b = Node::start(&engine).await;
    let config = RemoteConfig::new(a.url())
        .with_endpoint(b.url())
        .with_call_timeout(Duration::from_secs(2));
    let client_side = RemoteProtocol::connect(config.clone())
        .await
        .expect("connects");
    let worker_side = RemoteProtocol::connect(config.clone())
        .await
        .expect("connects");
    assert_eq!(worker_side.endpoint(), a.url());
    let remote: Arc<dyn ActivityProtocol> = Arc::new(client_side.clone());
    let worker = Worker::builder(Arc::new(worker_side.clone()) as Arc<dyn ActivityProtocol>)
        .task_queue(FAILOVER_QUEUE)
        .poll_wait(secs(2))
        .build()
        .expect("the worker builds");
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let client = Client::new(remote.clone()).with_task_queue(FAILOVER_QUEUE);
    let mut handles = Vec::new();
    for w in 0..6 {
        let handle = bounded(
            "a start",
            failover_chain::start(&client, w * 100).workflow_id(format!("chain-{w}")),
        )
        .await
        .expect("started");
        handles.push((w, handle));
    }

    // Node A dies with polls, completions and workflow tasks in flight.
    bounded("a third of the activities", async {
        while RAN.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let a_url = a.url();
    a.kill().await;
    let ran_before_the_kill = RAN.load(Ordering::SeqCst);

    for (w, handle) in handles {
        let expected: u32 = (0..10).map(|i| (w * 100 + i) * 2).sum();
        let result = tokio::time::timeout(Duration::from_secs(30), handle.result())
            .await
            .expect("the workflow finished within 30 s")
            .expect("completed");
        assert_eq!(result, expected, "chain-{w}");
    }

    // Every activity's outcome is recorded once, and no attempt ran twice.
    for w in 0..6 {
        let history = remote
            .workflow_history(WorkflowRef::latest(format!("chain-{w}")))
            .await
            .expect("history");
        let scheduled = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ActivityScheduled { .. }))
            .count();
        let completed = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ActivityCompleted { .. }))
            .count();
        assert_eq!((scheduled, completed), (10, 10), "chain-{w}");
    }
    // The work after the kill went through node B, for the worker and the client.
    assert!(RAN.load(Ordering::SeqCst) >= ran_before_the_kill + 30);
    assert_eq!(worker_side.endpoint(), b.url());
    assert_eq!(client_side.endpoint(), b.url());
    assert_ne!(a_url, b.url());
    let runs = RUNS.lock().unwrap().take().unwrap_or_default();
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts that ran twice: {twice:?}");

    shutdown.shutdown();
    bounded("the worker's shutdown", running)
        .await
        .expect("worker task");
    b.kill().await;
}

/// A completion whose answer was lost is sent again to the other node, which
/// accepts it: the result is recorded once and the caller sees success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_sent_again_through_another_node_is_accepted_once() {
    let engine = Engine::open(EngineConfig::in_memory())
        .await
        .expect("engine");
    let a = Node::start(&engine).await;
    let b = Node::start(&engine).await;
    let both = RemoteConfig::new(a.url()).with_endpoint(b.url());
    let remote: Arc<dyn ActivityProtocol> =
        Arc::new(RemoteProtocol::connect(both).await.expect("connects"));
    remote
        .schedule_activity(
            ScheduleActivityRequest::new("failover_double", vec![json(1)], options())
                .with_activity_id("once"),
        )
        .await
        .expect("scheduled");
    let task = remote
        .poll_activity_task(PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(2)))
        .await
        .expect("poll")
        .expect("a task");
    // The completion reached node A and was committed; its answer was lost.
    let a_only: Arc<dyn ActivityProtocol> = Arc::new(
        RemoteProtocol::connect(RemoteConfig::new(a.url()))
            .await
            .expect("connects"),
    );
    a_only
        .complete_activity(TaskTarget::Token(task.task_token.clone()), json(2))
        .await
        .expect("committed on A");
    a.kill().await;
    // The worker sends it again; it goes to B, which accepts it.
    remote
        .complete_activity(TaskTarget::Token(task.task_token.clone()), json(2))
        .await
        .expect("the repeat is accepted");
    let description = remote
        .describe_execution(ExecutionRef::standalone("once"))
        .await
        .expect("described through B");
    assert_eq!(
        description.outcome,
        Some(activity_core::protocol::ExecutionOutcome::Completed(json(
            2
        )))
    );
    assert_eq!(description.attempt, 1);
    b.kill().await;
}

/// A long poll waiting on a node that dies is re-issued on the next node: the
/// caller sees the task, not the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_in_flight_on_a_dying_node_is_re_issued_on_the_next() {
    let engine = Engine::open(EngineConfig::in_memory())
        .await
        .expect("engine");
    let a = Node::start(&engine).await;
    let b = Node::start(&engine).await;
    let both = RemoteProtocol::connect(RemoteConfig::new(a.url()).with_endpoint(b.url()))
        .await
        .expect("connects");
    let poller: Arc<dyn ActivityProtocol> = Arc::new(both.clone());
    let poll = tokio::spawn(async move {
        poller
            .poll_activity_task(PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(5)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "the poll waits on node A");
    a.kill().await;
    let b_only: Arc<dyn ActivityProtocol> = Arc::new(
        RemoteProtocol::connect(RemoteConfig::new(b.url()))
            .await
            .expect("connects"),
    );
    schedule(&*b_only, "after-the-kill", options())
        .await
        .expect("scheduled on B");
    let task = bounded("the re-issued poll", poll)
        .await
        .expect("poll task")
        .expect("no error reaches the caller")
        .expect("the task, through node B");
    assert_eq!(task.info.activity_id, "after-the-kill");
    assert_eq!(both.endpoint(), b.url());
    b.kill().await;
}
