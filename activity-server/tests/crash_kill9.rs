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
//! The worker child is this test binary itself, run with `CRASH_WORKER_URL` set
//! (test `crash_worker_child`, which does nothing without it). Each body run
//! appends `workflow_id activity_id attempt` to a log file with one `write`.
//!
//! Bounded: about 20–60 s on 2 cores; every wait has a deadline.

mod process_support;

use process_support::SelfChild;

use std::{
    collections::{BTreeMap, HashMap},
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use activity_core::{
    activity,
    definition::BoxFuture,
    protocol::{ProtocolError, ProtocolRequest, ProtocolResponse, TaskTarget},
    workflow,
    workflow::{join_all, EventKind, WorkflowOutcome, WorkflowRef},
    ActivityContext, ActivityError, ActivityProtocol, Client, WorkflowContext, WorkflowError,
};
use activity_remote::{RemoteConfig, RemoteProtocol};
use activity_worker::Worker;
use process_support::*;

const QUEUE: &str = "crash-q";
const WORKFLOWS: u32 = 10;
const PER_WORKFLOW: u32 = 1_000;
const SERVER_KILLS: usize = 3;
/// The whole run (after the start) must end within this.
const DEADLINE: Duration = Duration::from_secs(150);

/// Where the worker child appends one line per body run.
static RUN_LOG: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// A no-op that records that it ran. A short start-to-close so that attempts
/// lost with a killed worker are retried soon.
#[activity(
    start_to_close = "4s",
    retry(initial_interval = "100ms", maximum_interval = "500ms")
)]
async fn crash_noop(ctx: ActivityContext) -> Result<(), ActivityError> {
    let info = ctx.info();
    let line = format!(
        "run {} {} {} {}\n",
        info.workflow_id.as_deref().unwrap_or("-"),
        info.activity_id,
        info.attempt,
        ctx.task_token().to_hex()
    );
    append(&line);
    Ok(())
}

fn append(line: &str) {
    if let Some(log) = RUN_LOG.get() {
        // One write(2) on an O_APPEND file: it survives a SIGKILL of this process.
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(line.as_bytes())
            .expect("the run log is writable");
    }
}

/// The worker's connection, logging `ack <token>` for every completion the
/// server acknowledged: an acknowledged completion must be the recorded one.
struct Acks(RemoteProtocol);

impl ActivityProtocol for Acks {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        let token = match &request {
            ProtocolRequest::CompleteActivity {
                target: TaskTarget::Token(token),
                ..
            } => Some(token.to_hex()),
            _ => None,
        };
        let call = self.0.call(request);
        Box::pin(async move {
            let answer = call.await?;
            if let Some(token) = token {
                append(&format!("ack {token}\n"));
            }
            Ok(answer)
        })
    }
}

/// Starts `n` activities at once and awaits them all.
/// Runs `n` activities in waves of [`WAVE`]: many workflow tasks, each answered
/// while pollers wait, so kills also land while the engine hands new attempts
/// and workflow tasks to waiting pollers.
#[workflow]
async fn crash_fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let mut done = 0;
    while done < n {
        let wave = WAVE.min(n - done);
        for result in join_all((0..wave).map(|_| crash_noop::call(&ctx))).await {
            result?;
        }
        done += wave;
    }
    Ok(n)
}

/// Activities a workflow starts at once.
const WAVE: u32 = 25;

/// The worker child: runs a worker on the server at `url` until killed.
async fn crash_worker_child(url: String, log: String) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("the run log opens");
    RUN_LOG.set(Mutex::new(file)).expect("set once");
    let protocol = RemoteProtocol::connect(RemoteConfig::new(url))
        .await
        .expect("connects");
    let worker = Worker::builder(std::sync::Arc::new(Acks(protocol)))
        .task_queue(QUEUE)
        .identity(format!("crash-worker-{}", std::process::id()))
        .max_concurrent_activities(200)
        .pollers_per_queue(16)
        .poll_wait(Duration::from_secs(2))
        .build()
        .expect("the worker builds");
    println!("crash worker ready");
    worker.run_until(std::future::pending()).await;
}

/// The worker child process (this binary with `CRASH_WORKER_URL` set);
/// SIGKILLed on drop.
fn start_worker(url: &str, log: &Path) -> SelfChild {
    SelfChild::start(&[
        ("CRASH_WORKER_URL", url.as_ref()),
        ("CRASH_RUN_LOG", log.as_os_str()),
    ])
}

/// A small PRNG seeded from the time (printed, so a failure can be replayed by eye).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the worker processes logged.
#[derive(Default)]
struct RunLog {
    /// (workflow id, activity id) → attempts whose body ran.
    runs: HashMap<(String, String), Vec<u32>>,
    /// Task token → (workflow id, activity id, attempt) of each body run.
    tokens: HashMap<String, (String, String, u32)>,
    /// Tokens whose completion the server acknowledged.
    acked: Vec<String>,
}

impl RunLog {
    fn read(log: &Path) -> RunLog {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut out = RunLog::default();
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["run", w, a, n, token] => {
                    let attempt: u32 = n.parse().expect("an attempt number");
                    out.runs
                        .entry(((*w).to_owned(), (*a).to_owned()))
                        .or_default()
                        .push(attempt);
                    out.tokens.insert(
                        (*token).to_owned(),
                        ((*w).to_owned(), (*a).to_owned(), attempt),
                    );
                }
                ["ack", token] => out.acked.push((*token).to_owned()),
                _ => panic!("a torn line in the run log: {line:?}"),
            }
        }
        out
    }

    fn count(&self) -> usize {
        self.runs.values().map(Vec::len).sum()
    }
}

async fn wait_completed(protocol: &dyn ActivityProtocol, workflow_id: &str, until: Instant) {
    loop {
        assert!(
            Instant::now() < until,
            "workflow {workflow_id} did not complete in time"
        );
        match protocol
            .wait_workflow_outcome(WorkflowRef::latest(workflow_id), Duration::from_secs(2))
            .await
        {
            Ok(Some(WorkflowOutcome::Completed(result))) => {
                let n: u32 = result.decode().expect("a count");
                assert_eq!(n, PER_WORKFLOW);
                return;
            }
            Ok(Some(other)) => panic!("workflow {workflow_id} ended {other:?}"),
            Ok(None) => {}
            Err(err) if err.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("waiting for {workflow_id} failed: {err}"),
        }
    }
}

/// This test target has no harness (`harness = false`): the same binary is the
/// test, and, started with `CRASH_WORKER_URL` and `CRASH_RUN_LOG`, the worker
/// process it kills.
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let (Ok(url), Ok(log)) = (
        std::env::var("CRASH_WORKER_URL"),
        std::env::var("CRASH_RUN_LOG"),
    ) {
        runtime.block_on(crash_worker_child(url, log));
        return;
    }
    let name = "nothing_is_lost_when_server_and_worker_are_killed";
    println!("running 1 test\ntest {name} ...");
    let outcome = std::panic::catch_unwind(|| {
        runtime.block_on(nothing_is_lost_when_server_and_worker_are_killed())
    });
    match outcome {
        Ok(()) => println!("test {name} ... ok\n\ncrash test: 1 passed, 0 failed"),
        Err(_) => {
            println!("test {name} ... FAILED\n\ncrash test: 0 passed, 1 failed");
            std::process::exit(101);
        }
    }
}

async fn nothing_is_lost_when_server_and_worker_are_killed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db: PathBuf = dir.path().join("engine.db");
    let log = dir.path().join("runs.log");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut random = Random(seed);

    let mut server = ServerProcess::start(&db, &[]);
    let mut worker = start_worker(&server.url(), &log);
    let client = Client::new(server.remote().await).with_task_queue(QUEUE);
    for w in 0..WORKFLOWS {
        bounded(
            "a workflow start",
            crash_fan_out::start(&client, PER_WORKFLOW).workflow_id(format!("crash-{w}")),
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
    let progress = || RunLog::read(&log).count() as u64;
    for (kill, target) in targets.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress() < *target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if !worker_killed && kill > 0 && progress() >= worker_target {
                eprintln!("kill -9 worker after {}/{total} body runs", progress());
                worker.kill9();
                worker = start_worker(&server.url(), &log);
                worker_killed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(random.below(20))).await;
        eprintln!(
            "kill -9 server #{} after {}/{total} body runs",
            kill + 1,
            progress()
        );
        server.restart();
    }
    if !worker_killed {
        eprintln!("kill -9 worker after {}/{total} body runs", progress());
        worker.kill9();
        worker = start_worker(&server.url(), &log);
    }

    let until = started + DEADLINE;
    let protocol = server.remote().await;
    for w in 0..WORKFLOWS {
        wait_completed(&*protocol, &format!("crash-{w}"), until).await;
    }
    eprintln!(
        "all {total} activities completed in {:?}",
        started.elapsed()
    );

    // Every activity's outcome is recorded exactly once in its run's history.
    let mut scheduled: BTreeMap<(String, u32), String> = BTreeMap::new();
    for w in 0..WORKFLOWS {
        let workflow_id = format!("crash-{w}");
        let history = bounded(
            "a history",
            protocol.workflow_history(WorkflowRef::latest(&workflow_id)),
        )
        .await
        .expect("the history");
        let mut completed: HashMap<u32, usize> = HashMap::new();
        for event in &history {
            match &event.kind {
                EventKind::ActivityScheduled {
                    seq, activity_id, ..
                } => {
                    let before = scheduled.insert((workflow_id.clone(), *seq), activity_id.clone());
                    assert!(before.is_none(), "{workflow_id}: seq {seq} scheduled twice");
                }
                EventKind::ActivityCompleted { seq, .. } => {
                    *completed.entry(*seq).or_default() += 1
                }
                EventKind::ActivityFailed { seq, .. } => {
                    panic!("{workflow_id}: activity seq {seq} failed: {event:?}")
                }
                _ => {}
            }
        }
        assert_eq!(completed.len(), PER_WORKFLOW as usize, "{workflow_id}");
        for (seq, count) in completed {
            assert_eq!(count, 1, "{workflow_id}: seq {seq} completed {count} times");
        }
    }
    assert_eq!(scheduled.len() as u64, total);

    // The engine's record of attempts, read from the file once the server is down.
    worker.kill9();
    server.kill9();
    drop(protocol);
    drop(client);
    let conn = rusqlite::Connection::open(&db).expect("the database opens");
    let mut attempts: HashMap<(String, String), (u32, String)> = HashMap::new();
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
    assert_eq!(attempts.len() as u64, total, "one execution per activity");

    // Body runs: at least one per activity; at most one per attempt (an attempt
    // is handed to one worker, and a recorded start is never handed out again);
    // only attempts the engine recorded, the last of which completed.
    let log = RunLog::read(&log);
    let runs = &log.runs;
    let mut reruns = 0;
    for ((workflow_id, seq), activity_id) in &scheduled {
        let key = (workflow_id.clone(), activity_id.clone());
        let (last, state) = attempts
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} has no execution"));
        assert_eq!(state, "COMPLETED", "{key:?}");
        let ran = runs.get(&key).map(Vec::as_slice).unwrap_or_default();
        assert!(
            !ran.is_empty(),
            "{workflow_id} seq {seq}: completed, but its body never ran"
        );
        let mut sorted = ran.to_vec();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "{workflow_id} seq {seq}: attempt {} ran twice (an acknowledged start was lost and the attempt handed out again): runs {ran:?}",
                pair[0]
            );
        }
        let max = *sorted.last().expect("not empty");
        assert!(
            max <= *last,
            "{workflow_id} seq {seq}: attempt {max} ran, but the engine recorded only {last} attempts"
        );
        reruns += ran.len() - 1;
    }
    assert_eq!(
        log.count(),
        scheduled.len() + reruns,
        "runs of unknown activities"
    );
    // A completion the server acknowledged is the one it recorded: that
    // attempt is the execution's last, and it completed.
    for token in &log.acked {
        let (workflow_id, activity_id, attempt) = log
            .tokens
            .get(token)
            .unwrap_or_else(|| panic!("ack of a token no body ran with: {token}"));
        let key = (workflow_id.clone(), activity_id.clone());
        let (last, state) = &attempts[&key];
        assert!(
            attempt == last && state == "COMPLETED",
            "{workflow_id} activity {activity_id}: the completion of attempt {attempt} was acknowledged, but the engine recorded {last} attempts ({state}): an acknowledged completion was lost"
        );
    }
    assert!(!log.acked.is_empty(), "no completion was acknowledged");
    eprintln!(
        "{} body runs for {total} activities ({reruns} re-runs of attempts started but not recorded complete), {:?} in all",
        scheduled.len() + reruns,
        started.elapsed()
    );
}
