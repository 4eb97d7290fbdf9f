//! Crash test of several nodes (docs/semantics.md §5): 10 workflows × 1,000
//! activities (in waves of 25) run through three `activity-server serve --db
//! postgres://…?schema=…` processes on one database schema, with three worker
//! processes, each connected to all three nodes (its own first). Every node is
//! killed with SIGKILL at least once at random moments (four kills in all,
//! each node restarted on its port), and one worker once (restarted). At the
//! end every workflow has completed, every activity has exactly one
//! `ActivityScheduled` and one `ActivityCompleted` in its run's history, no
//! attempt ran twice, only attempts the engine recorded ran, and every
//! completion a node acknowledged is the one recorded (the accounting of
//! `crash_kill9`, shared in `process_support/crash.rs`).
//!
//! Runs only on PostgreSQL (`ACTIVITY_TEST_STORE=postgres`, or a URL in
//! `ACTIVITY_TEST_DATABASE_URL`); otherwise it says so and passes. Its schema,
//! `activity_test_<pid>_nodes`, is dropped at the end.
//!
//! Bounded: usually 3–4 minutes on 2 cores shared with other builds (40–60
//! activities a second; one run in four was slower, see docs/BENCHMARKS.md);
//! every wait has a deadline (7 minutes for the whole run).

#[path = "process_support/crash.rs"]
mod crash;
mod process_support;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use activity_core::{ActivityProtocol, Client};
use activity_remote::RemoteProtocol;
use crash::*;
use process_support::*;

const NODES: usize = 3;
const WORKERS: usize = 3;
const WORKFLOWS: u32 = 10;
const PER_WORKFLOW: u32 = 1_000;
/// Node kills: each node once, in a random order, then one more at random.
const NODE_KILLS: usize = NODES + 1;
/// The whole run (after the start) must end within this.
const DEADLINE: Duration = Duration::from_secs(420);
/// Each worker process; three of them share the work.
const WORKER: WorkerShape = WorkerShape {
    max_concurrent_activities: 100,
    pollers_per_queue: 8,
};

fn main() {
    crash::main(
        "nothing_is_lost_when_nodes_and_a_worker_are_killed",
        WORKER,
        || Box::pin(nothing_is_lost_when_nodes_and_a_worker_are_killed()),
    );
}

/// Whether a PostgreSQL database was given to the tests.
fn database() -> Option<String> {
    let given = activity_test_support::postgres()
        || std::env::var_os("ACTIVITY_TEST_DATABASE_URL").is_some();
    given.then(activity_test_support::database_url)
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Runs `f` with a connection to the database at `url`, on a thread of its
/// own (the synchronous client must not run on the async runtime).
fn on_database<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
        f(&mut client)
    })
    .join()
    .expect("the database thread")
}

/// The node URLs in the order worker `i` tries them: its own node first.
fn rotated(urls: &[String], i: usize) -> Vec<String> {
    (0..urls.len())
        .map(|k| urls[(i + k) % urls.len()].clone())
        .collect()
}

async fn nothing_is_lost_when_nodes_and_a_worker_are_killed() {
    let Some(database) = database() else {
        eprintln!(
            "skipped: needs PostgreSQL (ACTIVITY_TEST_STORE=postgres; URL from \
             ACTIVITY_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    let schema = format!("activity_test_{}_nodes", std::process::id());
    let url = with_param(&database, &format!("schema={schema}"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("runs.log");
    let mut random = Random::from_time("crash_nodes");
    eprintln!(
        "{NODES} nodes on schema {schema}, {WORKERS} workers, {WORKFLOWS} workflows × {PER_WORKFLOW} activities"
    );

    let mut nodes: Vec<ServerProcess> = (0..NODES)
        .map(|n| ServerProcess::start_postgres(&url, &dir.path().join(format!("node{n}")), &[]))
        .collect();
    let urls: Vec<String> = nodes.iter().map(ServerProcess::url).collect();
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|i| start_worker(&rotated(&urls, i), &log))
        .collect();
    let protocol: Arc<dyn ActivityProtocol> = Arc::new(
        bounded("connect", RemoteProtocol::connect(endpoints(&urls)))
            .await
            .expect("connects"),
    );
    let client = Client::new(protocol.clone()).with_task_queue(QUEUE);
    let workflows: Vec<String> = (0..WORKFLOWS).map(|w| format!("nodes-{w}")).collect();
    for workflow_id in &workflows {
        bounded(
            "a workflow start",
            crash_fan_out::start(&client, PER_WORKFLOW).workflow_id(workflow_id.clone()),
        )
        .await
        .expect("the workflow starts");
    }
    let started = Instant::now();
    let total = u64::from(WORKFLOWS * PER_WORKFLOW);

    // Chaos: kill nodes at random points of the run (by body runs so far,
    // between 5% and 85%), each node at least once, down for up to 0.5 s
    // before it restarts; one worker once between the first two node kills.
    let mut victims: Vec<usize> = (0..NODES).collect();
    for i in (1..NODES).rev() {
        victims.swap(i, random.below(i as u64 + 1) as usize);
    }
    victims.push(random.below(NODES as u64) as usize);
    let mut targets: Vec<u64> = (0..NODE_KILLS)
        .map(|_| total / 20 + random.below(total * 4 / 5))
        .collect();
    targets.sort_unstable();
    let worker_target = targets[0] + random.below(targets[1] - targets[0] + 1);
    let worker_victim = random.below(WORKERS as u64) as usize;
    let mut worker_killed = false;
    let kill_worker = |workers: &mut Vec<_>| {
        eprintln!(
            "kill -9 worker {worker_victim} after {}/{total} body runs ({:?})",
            progress(&log),
            started.elapsed()
        );
        let worker: &mut process_support::SelfChild = &mut workers[worker_victim];
        worker.kill9();
        *worker = start_worker(&rotated(&urls, worker_victim), &log);
    };
    for (kill, (target, victim)) in targets.iter().zip(&victims).enumerate() {
        let deadline = Instant::now() + Duration::from_secs(90);
        while progress(&log) < *target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if !worker_killed && kill > 0 && progress(&log) >= worker_target {
                kill_worker(&mut workers);
                worker_killed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(random.below(20))).await;
        eprintln!(
            "kill -9 node {victim} (#{}) after {}/{total} body runs ({:?})",
            kill + 1,
            progress(&log),
            started.elapsed()
        );
        let node = &mut nodes[*victim];
        node.kill9();
        tokio::time::sleep(Duration::from_millis(random.below(500))).await;
        node.restart();
    }
    if !worker_killed {
        kill_worker(&mut workers);
    }

    let until = started + DEADLINE;
    for workflow_id in &workflows {
        wait_completed(&*protocol, workflow_id, PER_WORKFLOW, until).await;
    }
    eprintln!(
        "all {total} activities completed in {:?}",
        started.elapsed()
    );

    // Every activity is scheduled once and its outcome recorded once.
    let scheduled = check_histories(&*protocol, &workflows, PER_WORKFLOW).await;

    // The engine's record of attempts, read from the schema once every
    // process is down.
    drop(workers);
    for node in &mut nodes {
        node.kill9();
    }
    drop(client);
    drop(protocol);
    let query = format!(
        "SELECT COALESCE(workflow_id, ''), activity_id, attempt, state FROM \"{schema}\".executions"
    );
    let attempts: Attempts = on_database(&database, move |client| {
        client
            .query(&query, &[])
            .expect("the executions")
            .iter()
            .map(|row| {
                let attempt: i64 = row.get(2);
                (
                    (row.get(0), row.get(1)),
                    (
                        u32::try_from(attempt).expect("an attempt number"),
                        row.get(3),
                    ),
                )
            })
            .collect::<HashMap<_, _>>()
    });

    // Body runs: at least one per activity, at most one per attempt, only
    // attempts the engine recorded; acknowledged completions are the recorded ones.
    let reruns = check_runs(&scheduled, &attempts, &log);
    eprintln!(
        "{} body runs for {total} activities ({reruns} re-runs of attempts started but not recorded complete), {:?} in all",
        scheduled.len() + reruns,
        started.elapsed()
    );
    let drop_schema = format!("DROP SCHEMA \"{schema}\" CASCADE");
    on_database(&database, move |client| {
        client
            .batch_execute(&drop_schema)
            .expect("the schema is dropped")
    });
}
