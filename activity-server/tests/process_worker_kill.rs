//! Process test: a worker process is killed with SIGKILL in the middle of a
//! heartbeating activity; the engine (`activity-server serve`, a child process
//! on loopback) times the attempt out on its heartbeat timeout and retries it;
//! a second worker process runs attempt 2, which resumes from the last
//! heartbeat details the first attempt recorded, and completes the execution.
//!
//! The worker children are this test binary itself, run with `KILL_WORKER_URL`
//! and `KILL_RUN_LOG` set. Every body step appends one line to the run log with
//! one `write` on an `O_APPEND` file, so the log survives the SIGKILL.
//!
//! Bounded: about 5–10 s; every wait has a deadline, every child is killed on drop.

mod process_support;

use process_support::SelfChild;

use std::{
    fs::OpenOptions,
    io::Write,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use activity_core::{
    activity, protocol::ExecutionState, ActivityContext, ActivityError, Client, Failure,
    TimeoutKind,
};
use activity_remote::{RemoteConfig, RemoteProtocol};
use activity_worker::Worker;
use process_support::*;

const QUEUE: &str = "worker-kill-q";
/// The steps of the activity (about 100 ms each).
const STEPS: u32 = 40;
/// Worker A is killed once attempt 1 has logged at least this step.
const KILL_AT: u32 = 5;
/// Every wait of this test is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

/// Where the worker child appends one line per step.
static RUN_LOG: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Processes steps `1..=steps`, resuming after the step of the last heartbeat
/// details of a previous attempt. A short heartbeat timeout, a long
/// start-to-close: a lost attempt is detected by its missing heartbeats.
#[activity(
    start_to_close = "1h",
    heartbeat = "1s",
    retry(initial_interval = "100ms", maximum_interval = "500ms")
)]
async fn kill_steps(ctx: ActivityContext, steps: u32) -> Result<String, ActivityError> {
    let attempt = ctx.info().attempt;
    let pid = std::process::id();
    let done: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
    append(&format!("begin attempt {attempt} after {done} pid {pid}\n"));
    for step in done + 1..=steps {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Logged before the heartbeat: recorded details never exceed a logged step.
        append(&format!("attempt {attempt} step {step} pid {pid}\n"));
        ctx.heartbeat(&step)?;
    }
    Ok(format!(
        "{steps} steps, attempt {attempt} resumed after {done}"
    ))
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

/// The worker child: runs a worker on the server at `url` until killed.
async fn worker_child(url: String, log: String) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("the run log opens");
    RUN_LOG.set(Mutex::new(file)).expect("set once");
    let protocol = RemoteProtocol::connect(RemoteConfig::new(url))
        .await
        .expect("connects");
    let worker = Worker::builder(Arc::new(protocol))
        .task_queue(QUEUE)
        .identity(format!("kill-worker-{}", std::process::id()))
        .poll_wait(Duration::from_secs(1))
        .build()
        .expect("the worker builds");
    worker.run_until(std::future::pending()).await;
}

/// The worker child process (this binary with `KILL_WORKER_URL` set);
/// SIGKILLed on drop.
fn start_worker(url: &str, log: &Path) -> SelfChild {
    SelfChild::start(&[
        ("KILL_WORKER_URL", url.as_ref()),
        ("KILL_RUN_LOG", log.as_os_str()),
    ])
}

/// One line of the run log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// An attempt began, after the step of the last heartbeat details (0: none).
    Begin { attempt: u32, after: u32, pid: u32 },
    /// An attempt finished a step.
    Step { attempt: u32, step: u32, pid: u32 },
}

impl Line {
    fn pid(self) -> u32 {
        match self {
            Line::Begin { pid, .. } | Line::Step { pid, .. } => pid,
        }
    }
}

fn read_log(log: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let number = |s: &str| -> u32 { s.parse().expect("a number in the run log") };
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["begin", "attempt", a, "after", d, "pid", p] => Line::Begin {
                    attempt: number(a),
                    after: number(d),
                    pid: number(p),
                },
                ["attempt", a, "step", s, "pid", p] => Line::Step {
                    attempt: number(a),
                    step: number(s),
                    pid: number(p),
                },
                _ => panic!("a torn line in the run log: {line:?}"),
            }
        })
        .collect()
}

/// Awaits `future` for at most [`WAIT`].
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// This test target has no harness (`harness = false`): the same binary is the
/// test, and, started with `KILL_WORKER_URL` and `KILL_RUN_LOG`, the worker
/// processes it starts and kills.
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let (Ok(url), Ok(log)) = (
        std::env::var("KILL_WORKER_URL"),
        std::env::var("KILL_RUN_LOG"),
    ) {
        runtime.block_on(worker_child(url, log));
        return;
    }
    let name = "a_killed_workers_attempt_times_out_on_heartbeat_and_resumes_on_another";
    println!("running 1 test\ntest {name} ...");
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| {
        runtime.block_on(a_killed_workers_attempt_times_out_on_heartbeat_and_resumes_on_another())
    });
    match outcome {
        Ok(()) => println!(
            "test {name} ... ok ({:?})\n\nprocess test: 1 passed, 0 failed",
            started.elapsed()
        ),
        Err(_) => {
            println!("test {name} ... FAILED\n\nprocess test: 0 passed, 1 failed");
            std::process::exit(101);
        }
    }
}

async fn a_killed_workers_attempt_times_out_on_heartbeat_and_resumes_on_another() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("engine.db");
    let log = dir.path().join("runs.log");

    let server = ServerProcess::start(&db, &[]);
    assert!(server.addr.ip().is_loopback());
    let mut worker_a = start_worker(&server.url(), &log);
    let pid_a = worker_a.pid();
    let client = Client::new(server.remote().await).with_task_queue(QUEUE);
    let handle = within("the start", client.start(kill_steps::call(&client, STEPS)))
        .await
        .expect("the activity starts");

    // Attempt 1 runs on worker A; kill it mid-activity.
    within("attempt 1 reaching the kill step", async {
        loop {
            let reached = read_log(&log).iter().any(
                |line| matches!(line, Line::Step { attempt: 1, step, .. } if *step >= KILL_AT),
            );
            if reached {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    worker_a.kill9();
    let before_kill = read_log(&log);
    eprintln!("kill -9 worker A after {} log lines", before_kill.len());
    assert_eq!(
        before_kill.first(),
        Some(&Line::Begin {
            attempt: 1,
            after: 0,
            pid: pid_a
        }),
        "attempt 1 began on worker A from scratch: {before_kill:?}"
    );
    let mut last_a_step = 0;
    for (i, line) in before_kill.iter().enumerate().skip(1) {
        let expected = Line::Step {
            attempt: 1,
            step: i as u32,
            pid: pid_a,
        };
        assert_eq!(*line, expected, "attempt 1 ran its steps in order on A");
        last_a_step = i as u32;
    }
    assert!((KILL_AT..STEPS).contains(&last_a_step), "{last_a_step}");

    // Worker B takes over once the engine times attempt 1 out on its heartbeat.
    let worker_b = start_worker(&server.url(), &log);
    let pid_b = worker_b.pid();
    let result = within("the result", handle.result())
        .await
        .expect("the activity completes");

    let lines = read_log(&log);
    let (killed, after_kill) = lines.split_at(before_kill.len());
    assert_eq!(
        killed,
        before_kill.as_slice(),
        "the log was only appended to"
    );
    assert!(
        after_kill.iter().all(|line| line.pid() != pid_a),
        "worker A ran after the kill: {after_kill:?}"
    );
    let Some(&Line::Begin {
        attempt: 2,
        after: details,
        pid,
    }) = after_kill.first()
    else {
        panic!("attempt 2 did not begin after the kill: {after_kill:?}");
    };
    assert_eq!(pid, pid_b, "attempt 2 ran on worker B");
    assert!(
        (1..=last_a_step).contains(&details),
        "attempt 2 resumed after step {details}, attempt 1 logged up to step {last_a_step}"
    );
    let steps: Vec<Line> = (details + 1..=STEPS)
        .map(|step| Line::Step {
            attempt: 2,
            step,
            pid: pid_b,
        })
        .collect();
    assert_eq!(
        &after_kill[1..],
        steps.as_slice(),
        "attempt 2 ran steps {}..={STEPS} on B, and nothing else ran",
        details + 1
    );
    assert_eq!(
        result,
        format!("{STEPS} steps, attempt 2 resumed after {details}")
    );

    let description = within("the description", handle.describe())
        .await
        .expect("described");
    assert_eq!(description.attempt, 2, "{description:?}");
    assert_eq!(
        description.state,
        ExecutionState::Completed,
        "{description:?}"
    );
    assert!(
        matches!(
            &description.last_failure,
            Some(Failure::Timeout(t)) if t.kind == TimeoutKind::Heartbeat
        ),
        "attempt 1 failed on its heartbeat timeout: {:?}",
        description.last_failure
    );
    eprintln!(
        "attempt 1 logged step {last_a_step} on A (pid {pid_a}); attempt 2 resumed after step {details} on B (pid {pid_b}); last failure: {:?}",
        description.last_failure.as_ref().map(ToString::to_string)
    );
    drop(worker_b);
}
