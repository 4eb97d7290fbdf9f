//! Crash test (docs/semantics.md §5): 10 workflows × 1,000 activities (in waves of 25) run through
//! `activity-server serve` (a child process) and a worker in another child
//! process, both on loopback, while the server is killed with SIGKILL at random
//! moments (3 times, restarted on the same file and port) and the worker once
//! (restarted). At the end every workflow has completed, every activity has
//! exactly one `ActivityCompleted` in its run's history, and every activity body
//! ran at least once and at most once per attempt, only for attempts the engine
//! recorded (re-runs only for attempts whose start was recorded but whose
//! completion was not: those are followed by a later attempt).
//!
//! The worker child is this test binary itself (see `process_support/crash.rs`,
//! which also holds the workflow and the accounting shared with `crash_nodes`).
//!
//! Bounded: about 20–60 s on 2 cores; every wait has a deadline.

#[path = "process_support/crash.rs"]
mod crash;
mod process_support;

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use activity_core::Client;
use crash::*;
use process_support::*;

const WORKFLOWS: u32 = 10;
const PER_WORKFLOW: u32 = 1_000;
const SERVER_KILLS: usize = 3;
/// The whole run (after the start) must end within this.
const DEADLINE: Duration = Duration::from_secs(150);
/// The worker process: one, taking many attempts at once.
const WORKER: WorkerShape = WorkerShape {
    max_concurrent_activities: 200,
    pollers_per_queue: 16,
};

fn main() {
    crash::main(
        "nothing_is_lost_when_server_and_worker_are_killed",
        WORKER,
        || Box::pin(nothing_is_lost_when_server_and_worker_are_killed()),
    );
}

async fn nothing_is_lost_when_server_and_worker_are_killed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db: PathBuf = dir.path().join("engine.db");
    let log = dir.path().join("runs.log");
    let mut random = Random::from_time("crash test");

    let mut server = ServerProcess::start(&db, &[]);
    let mut worker = start_worker(&[server.url()], &log);
    let client = Client::new(server.remote().await).with_task_queue(QUEUE);
    let workflows: Vec<String> = (0..WORKFLOWS).map(|w| format!("crash-{w}")).collect();
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

    // Chaos: kill the server at random points of the run (by body runs so far,
    // between 5% and 85%), the worker once between the first two server kills.
    let mut targets: Vec<u64> = (0..SERVER_KILLS)
        .map(|_| total / 20 + random.below(total * 4 / 5))
        .collect();
    targets.sort_unstable();
    let worker_target = targets[0] + random.below(targets[1] - targets[0] + 1);
    let mut worker_killed = false;
    for (kill, target) in targets.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress(&log) < *target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if !worker_killed && kill > 0 && progress(&log) >= worker_target {
                eprintln!("kill -9 worker after {}/{total} body runs", progress(&log));
                worker.kill9();
                worker = start_worker(&[server.url()], &log);
                worker_killed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(random.below(20))).await;
        eprintln!(
            "kill -9 server #{} after {}/{total} body runs",
            kill + 1,
            progress(&log)
        );
        server.restart();
    }
    if !worker_killed {
        eprintln!("kill -9 worker after {}/{total} body runs", progress(&log));
        worker.kill9();
        worker = start_worker(&[server.url()], &log);
    }

    let until = started + DEADLINE;
    let protocol = server.remote().await;
    for workflow_id in &workflows {
        wait_completed(&*protocol, workflow_id, PER_WORKFLOW, until).await;
    }
    eprintln!(
        "all {total} activities completed in {:?}",
        started.elapsed()
    );

    // Every activity's outcome is recorded exactly once in its run's history.
    let scheduled = check_histories(&*protocol, &workflows, PER_WORKFLOW).await;

    // The engine's record of attempts, read from the file once the server is down.
    worker.kill9();
    server.kill9();
    drop(protocol);
    drop(client);
    let conn = rusqlite::Connection::open(&db).expect("the database opens");
    let mut attempts: Attempts = HashMap::new();
    let mut statement = conn
        .prepare("SELECT workflow_id, activity_id, attempt, state FROM executions")
        .expect("a query");
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .expect("rows");
    for row in rows {
        let (workflow_id, activity_id, attempt, state) = row.expect("a row");
        attempts.insert((workflow_id, activity_id), (attempt, state));
    }

    // Body runs: at least one per activity, at most one per attempt, only
    // attempts the engine recorded; acknowledged completions are the recorded ones.
    let reruns = check_runs(&scheduled, &attempts, &log);
    eprintln!(
        "{} body runs for {total} activities ({reruns} re-runs of attempts started but not recorded complete), {:?} in all",
        scheduled.len() + reruns,
        started.elapsed()
    );
}
