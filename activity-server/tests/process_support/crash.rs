//! What the crash tests share (docs/semantics.md §5): the workflow they run
//! (activities in waves), the worker process they kill, the log its activity
//! bodies and acknowledged completions leave, and the exactly-once accounting
//! once every workflow has completed.
//!
//! A crash test's binary has no harness: [`main`] runs the test, or, started
//! with `CRASH_WORKER_URLS` and `CRASH_RUN_LOG` ([`start_worker`]), the worker
//! process the test kills. Each body run appends `run <workflow id>
//! <activity id> <attempt> <token>` to the log file with one `write`, and each
//! completion the server acknowledged `ack <token>`.
//!
//! Included by the crash tests only (`#[path]`): the activity and the workflow
//! it defines would otherwise be registered by every process test's workers.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{BTreeMap, HashMap},
    fs::OpenOptions,
    io::Write,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use activity_core::{
    activity,
    definition::BoxFuture,
    protocol::{ProtocolError, ProtocolRequest, ProtocolResponse, TaskTarget},
    workflow,
    workflow::{join_all, EventKind, WorkflowOutcome, WorkflowRef},
    ActivityContext, ActivityError, ActivityProtocol, WorkflowContext, WorkflowError,
};
use activity_remote::{RemoteConfig, RemoteProtocol};
use activity_worker::Worker;

use crate::process_support::{bounded, SelfChild};

/// The task queue of the crash workflows and activities.
pub const QUEUE: &str = "crash-q";
/// Activities a workflow starts at once.
pub const WAVE: u32 = 25;

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

/// Runs `n` activities in waves of [`WAVE`]: many workflow tasks, each answered
/// while pollers wait, so kills also land while the engine hands new attempts
/// and workflow tasks to waiting pollers.
#[workflow]
pub async fn crash_fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
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

/// What one worker process takes.
#[derive(Clone, Copy, Debug)]
pub struct WorkerShape {
    pub max_concurrent_activities: usize,
    pub pollers_per_queue: usize,
}

/// `urls` as one client configuration: the first one first, the others when
/// it cannot be reached.
pub fn endpoints(urls: &[String]) -> RemoteConfig {
    let mut config = RemoteConfig::new(urls[0].clone());
    for url in &urls[1..] {
        config = config.with_endpoint(url.clone());
    }
    config
}

/// The worker child: runs a worker on the servers at `urls` until killed.
async fn worker_child(urls: Vec<String>, log: String, shape: WorkerShape) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("the run log opens");
    RUN_LOG.set(Mutex::new(file)).expect("set once");
    let protocol = RemoteProtocol::connect(endpoints(&urls))
        .await
        .expect("connects");
    let worker = Worker::builder(Arc::new(Acks(protocol)))
        .task_queue(QUEUE)
        .identity(format!("crash-worker-{}", std::process::id()))
        .max_concurrent_activities(shape.max_concurrent_activities)
        .pollers_per_queue(shape.pollers_per_queue)
        .poll_wait(Duration::from_secs(2))
        .build()
        .expect("the worker builds");
    println!("crash worker ready");
    worker.run_until(std::future::pending()).await;
}

/// The worker child process (this binary with `CRASH_WORKER_URLS` set), on
/// the servers at `urls` (comma-free URLs, tried in this order); SIGKILLed on
/// drop.
pub fn start_worker(urls: &[String], log: &Path) -> SelfChild {
    let urls = urls.join(",");
    SelfChild::start(&[
        ("CRASH_WORKER_URLS", urls.as_ref()),
        ("CRASH_RUN_LOG", log.as_os_str()),
    ])
}

/// The body of a crash test's `main` (its target has `harness = false`): the
/// worker child when started as one, else the test `name`, reported as the
/// test harness would (exit code 101 on failure).
pub fn main(name: &str, shape: WorkerShape, test: impl FnOnce() -> BoxFuture<'static, ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let (Ok(urls), Ok(log)) = (
        std::env::var("CRASH_WORKER_URLS"),
        std::env::var("CRASH_RUN_LOG"),
    ) {
        let urls = urls.split(',').map(str::to_owned).collect();
        runtime.block_on(worker_child(urls, log, shape));
        return;
    }
    println!("running 1 test\ntest {name} ...");
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(test())));
    match outcome {
        Ok(()) => println!("test {name} ... ok\n\ncrash test: 1 passed, 0 failed"),
        Err(_) => {
            println!("test {name} ... FAILED\n\ncrash test: 0 passed, 1 failed");
            std::process::exit(101);
        }
    }
}

/// A small PRNG seeded from the time (printed, so a failure can be replayed by eye).
pub struct Random(pub u64);

impl Random {
    /// Seeded from the clock; the seed is printed.
    pub fn from_time(what: &str) -> Random {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64
            | 1;
        eprintln!("{what} seed {seed}");
        Random(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the worker processes logged.
#[derive(Default)]
pub struct RunLog {
    /// (workflow id, activity id) → attempts whose body ran.
    pub runs: HashMap<(String, String), Vec<u32>>,
    /// Task token → (workflow id, activity id, attempt) of each body run.
    pub tokens: HashMap<String, (String, String, u32)>,
    /// Tokens whose completion the server acknowledged.
    pub acked: Vec<String>,
}

impl RunLog {
    pub fn read(log: &Path) -> RunLog {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // A line still being appended (a write that crosses a page can be
        // seen in part) counts once it is whole.
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        let mut out = RunLog::default();
        for line in whole.lines() {
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

    /// Body runs so far.
    pub fn count(&self) -> usize {
        self.runs.values().map(Vec::len).sum()
    }
}

/// Waits until `workflow_id` completed with `expected`, failing after `until`.
pub async fn wait_completed(
    protocol: &dyn ActivityProtocol,
    workflow_id: &str,
    expected: u32,
    until: Instant,
) {
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
                assert_eq!(n, expected);
                return;
            }
            Ok(Some(other)) => panic!("workflow {workflow_id} ended {other:?}"),
            Ok(None) => {}
            Err(err) if err.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("waiting for {workflow_id} failed: {err}"),
        }
    }
}

/// Checks that each of `workflows` scheduled `per_workflow` activities, each
/// once, and recorded one `ActivityCompleted` for each (and no failure).
/// Returns (workflow id, seq) → activity id of every activity.
pub async fn check_histories(
    protocol: &dyn ActivityProtocol,
    workflows: &[String],
    per_workflow: u32,
) -> BTreeMap<(String, u32), String> {
    let mut scheduled: BTreeMap<(String, u32), String> = BTreeMap::new();
    for workflow_id in workflows {
        let history = bounded(
            "a history",
            protocol.workflow_history(WorkflowRef::latest(workflow_id)),
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
        assert_eq!(completed.len(), per_workflow as usize, "{workflow_id}");
        for (seq, count) in completed {
            assert_eq!(count, 1, "{workflow_id}: seq {seq} completed {count} times");
        }
    }
    assert_eq!(
        scheduled.len(),
        workflows.len() * per_workflow as usize,
        "every activity scheduled once"
    );
    scheduled
}

/// The engine's record of one execution: its last attempt and its state.
pub type Attempts = HashMap<(String, String), (u32, String)>;

/// Checks the body runs the workers logged against the engine's record
/// (`attempts`, read from the store once the servers are down): every
/// scheduled activity completed and its body ran at least once; no attempt
/// ran twice (an attempt is handed to one worker, and a recorded start is never
/// handed out again); only attempts the engine recorded ran; every completion
/// the server acknowledged is the recorded one. Returns the re-runs (attempts
/// started but not recorded complete, followed by a later attempt).
pub fn check_runs(
    scheduled: &BTreeMap<(String, u32), String>,
    attempts: &Attempts,
    log: &Path,
) -> usize {
    assert_eq!(
        attempts.len(),
        scheduled.len(),
        "one execution per activity"
    );
    let log = RunLog::read(log);
    let mut reruns = 0;
    for ((workflow_id, seq), activity_id) in scheduled {
        let key = (workflow_id.clone(), activity_id.clone());
        let (last, state) = attempts
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} has no execution"));
        assert_eq!(state, "COMPLETED", "{key:?}");
        let ran = log.runs.get(&key).map(Vec::as_slice).unwrap_or_default();
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
    reruns
}

/// Body runs logged so far.
pub fn progress(log: &Path) -> u64 {
    RunLog::read(log).count() as u64
}
