//! Several engine nodes on one PostgreSQL database (SEMANTICS 5): each attempt
//! is handed to at most one worker across all nodes, whichever node the
//! worker polls. Runs with `ACTIVITY_TEST_STORE=postgres` (see
//! `activity_test_support`); on SQLite there is one engine per store and
//! nothing to test here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use activity_core::{
    options::ActivityOptions,
    payload::Payload,
    protocol::{
        ExecutionRef, ExecutionState, PollActivityTaskRequest, ScheduleActivityRequest, TaskTarget,
    },
    ActivityProtocol,
};
use activity_engine::Engine;

const ATTEMPTS: usize = 5_000;

/// Activity id -> (node, poller, attempt) of every hand-off of it.
type Handed = HashMap<String, Vec<(usize, usize, u32)>>;
const POLLERS_PER_NODE: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_hand_the_same_attempt_to_two_workers() {
    if !activity_test_support::postgres() {
        eprintln!("skipped: runs with ACTIVITY_TEST_STORE=postgres");
        return;
    }
    // One database (schema), two nodes.
    let config = activity_test_support::engine_config();
    let a = Engine::open(config.clone()).await.expect("node A opens");
    let b = Engine::open(config).await.expect("node B opens");
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
