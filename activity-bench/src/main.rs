//! `activity-bench`: measures the engine, the worker and workflows end to end.
//!
//! ```text
//! cargo run --release -p activity-bench -- [--runs 3] [--n 1000] [--pollers 2] [--only fanout,sequential]
//! ```
//!
//! Every scenario runs on the embedded engine with a **file-backed** SQLite store
//! (every acknowledged change committed before the answer), in a fresh temporary
//! directory per run. It prints progress on stderr, then a table (median and
//! min–max over the runs) and one JSON line per scenario on stdout.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use activity_core::{
    activity,
    protocol::{PollActivityTaskRequest, ScheduleActivityRequest},
    workflow,
    workflow::join_all,
    ActivityContext, ActivityError, ActivityOptions, ActivityProtocol, Client, State,
    WorkflowContext, WorkflowError,
};
use activity_server::{Engine, EngineConfig};
use activity_worker::{ShutdownHandle, Worker, WorkerReport};

/// Start times of activity bodies, for latencies.
#[derive(Default)]
struct Stamps {
    at: Mutex<Vec<Instant>>,
}

impl Stamps {
    fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut self.at.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[activity(start_to_close = "5m")]
async fn noop() -> Result<(), ActivityError> {
    Ok(())
}

#[activity(start_to_close = "5m")]
async fn stamp(stamps: State<Stamps>) -> Result<(), ActivityError> {
    stamps
        .at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Instant::now());
    Ok(())
}

/// Calls `ctx.heartbeat` `calls` times in a tight loop; answers nanoseconds per call.
#[activity(start_to_close = "5m", heartbeat = "10s")]
async fn heartbeat_loop(ctx: ActivityContext, calls: u64) -> Result<f64, ActivityError> {
    let start = Instant::now();
    for i in 0..calls {
        ctx.heartbeat(&i)?;
    }
    Ok(start.elapsed().as_nanos() as f64 / calls as f64)
}

#[workflow]
async fn fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let results = join_all((0..n).map(|_| noop::call(&ctx))).await;
    for result in results {
        result?;
    }
    Ok(n)
}

#[workflow]
async fn sequential(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    for _ in 0..n {
        stamp::call(&ctx).await?;
    }
    Ok(n)
}

#[workflow]
async fn local_sequential(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    for _ in 0..n {
        stamp::call(&ctx.local()).await?;
    }
    Ok(n)
}

struct Options {
    runs: usize,
    n: u32,
    only: Option<Vec<String>>,
    pollers: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        runs: 3,
        n: 1000,
        only: None,
        pollers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => {
                options.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--pollers" => {
                options.pollers = value("--pollers")?
                    .parse()
                    .map_err(|e| format!("--pollers: {e}"))?
            }
            "--n" => options.n = value("--n")?.parse().map_err(|e| format!("--n: {e}"))?,
            "--only" => {
                options.only = Some(value("--only")?.split(',').map(str::to_owned).collect())
            }
            "--help" | "-h" => {
                return Err("usage: activity-bench [--runs N] [--n N] [--pollers N] [--only a,b]\nscenarios: fanout, fanout10, sequential, standalone, local, heartbeat, recovery".into())
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(options)
}

/// One engine on a file in a fresh directory, with a worker.
struct Bench {
    dir: PathBuf,
    engine: Engine,
    stamps: Arc<Stamps>,
    worker: Option<(ShutdownHandle, tokio::task::JoinHandle<WorkerReport>)>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);
/// Activity pollers per queue of the benchmark's worker (`--pollers`).
static POLLERS: AtomicU64 = AtomicU64::new(2);

impl Bench {
    async fn open() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!(
            "activity-bench-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
        Ok(Self {
            dir,
            engine,
            stamps: Arc::default(),
            worker: None,
        })
    }

    fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.engine.protocol()
    }

    fn client(&self) -> Client {
        Client::new(self.protocol()).with_task_queue("bench")
    }

    fn start_worker(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let worker = Worker::builder(self.protocol())
            .task_queue("bench")
            .max_concurrent_activities(200)
            .max_concurrent_workflow_tasks(4)
            .pollers_per_queue(POLLERS.load(Ordering::Relaxed).max(1) as usize)
            .shared_state(self.stamps.clone())
            .build()?;
        let handle = worker.shutdown_handle();
        self.worker = Some((
            handle,
            tokio::spawn(worker.run_until(std::future::pending())),
        ));
        Ok(())
    }

    async fn close(mut self) {
        if let Some((handle, running)) = self.worker.take() {
            handle.shutdown();
            let _ = running.await;
        }
        self.engine.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one run of one scenario measured.
type Sample = BTreeMap<&'static str, f64>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn gaps_ms(stamps: &[Instant]) -> Vec<f64> {
    let mut gaps: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps
}

async fn fanout(workflows: u32, n: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open().await?;
    bench.start_worker()?;
    let client = bench.client();
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workflows {
        handles.push(fan_out::start(&client, n / workflows).await?);
    }
    for handle in handles {
        handle.result().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    bench.close().await;
    Ok(Sample::from([("activities_per_s", f64::from(n) / secs)]))
}

async fn sequential_latency(n: u32, local: bool) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open().await?;
    bench.start_worker()?;
    let client = bench.client();
    let start = Instant::now();
    if local {
        local_sequential::start(&client, n).await?.result().await?;
    } else {
        sequential::start(&client, n).await?.result().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let gaps = gaps_ms(&bench.stamps.take());
    bench.close().await;
    Ok(Sample::from([
        ("p50_ms", percentile(&gaps, 50.0)),
        ("p99_ms", percentile(&gaps, 99.0)),
        ("activities_per_s", f64::from(n) / secs),
    ]))
}

async fn standalone(n: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open().await?;
    bench.start_worker()?;
    let client = bench.client();
    let start = Instant::now();
    // Started all at once: concurrent schedules share commits.
    let starts = join_all((0..n).map(|_| client.start(noop::call(&client)))).await;
    let handles: Vec<_> = starts.into_iter().collect::<Result<_, _>>()?;
    for result in join_all(handles.iter().map(|h| h.result())).await {
        result?;
    }
    let secs = start.elapsed().as_secs_f64();
    bench.close().await;
    Ok(Sample::from([("activities_per_s", f64::from(n) / secs)]))
}

async fn heartbeat() -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open().await?;
    bench.start_worker()?;
    let client = bench.client();
    let calls = 1_000_000;
    let handle = client.start(heartbeat_loop::call(&client, calls)).await?;
    let ns_per_call = handle.result().await?;
    bench.close().await;
    Ok(Sample::from([("ns_per_call", ns_per_call)]))
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

async fn recovery(backlog: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    let bench = Bench::open().await?;
    let path = bench.dir.join("engine.sqlite");
    let protocol = bench.protocol();
    let options = ActivityOptions::new()
        .start_to_close(Duration::from_secs(300))
        .task_queue("recovery");
    // Schedule the backlog with many requests in flight (they share commits).
    let mut next = 0;
    while next < backlog {
        let batch = (next..(next + 500).min(backlog)).map(|_| {
            protocol.schedule_activity(ScheduleActivityRequest::new(
                "noop",
                Vec::new(),
                options.clone(),
            ))
        });
        for result in join_all(batch).await {
            result?;
        }
        next += 500;
        if next % 20_000 == 0 {
            eprintln!("    recovery: {next}/{backlog} scheduled");
        }
    }
    bench.engine.close().await;
    drop(protocol);
    let rss_before = rss_kib();
    let start = Instant::now();
    let engine = Engine::open(EngineConfig::file(&path)).await?;
    let reopened = start.elapsed();
    let task = engine
        .protocol()
        .poll_activity_task(
            PollActivityTaskRequest::new("recovery", "bench").with_wait(Duration::from_secs(10)),
        )
        .await?;
    let first_dispatch = start.elapsed();
    if task.is_none() {
        return Err("no task dispatched after the restart".into());
    }
    let rss_after = rss_kib();
    engine.close().await;
    let _ = std::fs::remove_dir_all(&bench.dir);
    Ok(Sample::from([
        ("reopen_ms", reopened.as_secs_f64() * 1000.0),
        ("first_dispatch_ms", first_dispatch.as_secs_f64() * 1000.0),
        (
            "engine_bytes_per_backlogged",
            (rss_after - rss_before).max(0.0) * 1024.0 / f64::from(backlog),
        ),
    ]))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let n = options.n;
    POLLERS.store(options.pollers as u64, Ordering::Relaxed);
    let scenarios: Vec<(&'static str, String)> = vec![
        ("fanout", format!("fan-out 1 x {n}")),
        ("fanout10", format!("fan-out 10 x {}", n / 10)),
        ("sequential", "sequential 500".into()),
        ("standalone", format!("standalone {n}")),
        ("local", "local sequential 500".into()),
        ("heartbeat", "heartbeat 1,000,000 calls".into()),
        ("recovery", "recovery 100,000 backlog".into()),
    ];
    let mut results: Vec<(String, Vec<Sample>)> = Vec::new();
    for (key, title) in scenarios {
        if let Some(only) = &options.only {
            if !only.iter().any(|o| o == key) {
                continue;
            }
        }
        let mut samples = Vec::new();
        for run in 1..=options.runs {
            eprintln!("== {title}: run {run}/{}", options.runs);
            let sample = match key {
                "fanout" => fanout(1, n).await?,
                "fanout10" => fanout(10, n).await?,
                "sequential" => sequential_latency(500, false).await?,
                "standalone" => standalone(n).await?,
                "local" => sequential_latency(500, true).await?,
                "heartbeat" => heartbeat().await?,
                "recovery" => recovery(100_000).await?,
                _ => unreachable!("scenario keys are listed above"),
            };
            eprintln!("   {sample:?}");
            samples.push(sample);
        }
        results.push((title, samples));
    }
    let mut lines = Vec::new();
    println!("\n| scenario | metric | median | min | max |");
    println!("|---|---|---|---|---|");
    for (title, samples) in &results {
        let Some(first) = samples.first() else {
            continue;
        };
        let mut json = serde_json::Map::new();
        json.insert("scenario".into(), title.clone().into());
        json.insert("runs".into(), samples.len().into());
        for metric in first.keys() {
            let mut values: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.get(metric).copied())
                .collect();
            values.sort_by(f64::total_cmp);
            let median = percentile(&values, 50.0);
            let (min, max) = (values[0], values[values.len() - 1]);
            println!("| {title} | {metric} | {median:.3} | {min:.3} | {max:.3} |");
            json.insert(
                (*metric).to_owned(),
                serde_json::json!({ "median": median, "min": min, "max": max }),
            );
        }
        lines.push(serde_json::Value::Object(json));
    }
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
