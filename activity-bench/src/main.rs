//! `activity-bench`: measures the engine, the worker and workflows end to end.
//!
//! ```text
//! cargo run --release -p activity-bench -- [--runs 3] [--n 1000] [--pollers 2]
//!     [--mode embedded|remote|both] [--only fanout,sequential]
//!     [--store postgres://USER@HOST/DB] [--nodes K] [--workflows W]
//! ```
//!
//! With `--store`, the engine keeps its state in that PostgreSQL database (a
//! fresh schema per run, dropped after it) instead of a SQLite file; with
//! `--nodes K` (remote mode), K server processes share it, and the benchmark
//! runs one worker connected to each (the client talks to the first).
//!
//! Every scenario runs on an engine with a **file-backed** SQLite store (every
//! acknowledged change committed before the answer), in a fresh temporary
//! directory per run, in two modes: **embedded** (engine, worker and client in
//! this process) and **remote** (the engine served over gRPC by a child process,
//! this very binary started with `serve`; worker and client here, on loopback).
//! It prints progress on stderr, then a table (median and min–max over the runs)
//! and one JSON line per scenario on stdout.
//!
//! `--workflows W` sets how many workflows share the second fan-out (`fanout10`:
//! W workflows × N/W activities each; 10 by default), e.g. `--workflows 100 --n
//! 10000` for 100 × 100.
//!
//! Besides its own figures (activities/s, latencies), every scenario that runs
//! activities reports what it cost (module `usage`):
//!
//! - `cpu_ms_per_activity`: user + system CPU of every process involved, per
//!   activity: this process (client and worker, and the engine when embedded),
//!   each server child (`server1`…), and on PostgreSQL every `postgres` process of
//!   the machine; each one's share under `cpu_ms_per_activity_by_process`;
//! - `peak_rss_kib`: each process's peak resident memory during the scenario;
//! - `bytes_per_in_flight_activity` (fan-outs and standalone, where all N are
//!   outstanding at once): the growth of the peak RSS over the start, summed over
//!   this process and the servers, per activity in flight;
//! - `pg_commits_per_activity` (on PostgreSQL): the database's `xact_commit`
//!   delta in `pg_stat_database` (read after the engine closed its connections),
//!   per activity, the engine's start and stop included;
//! - `load_average_1m` at the start of the run (the machine may be shared).
//!
//! In a JSON line, a metric is `{"median", "min", "max"}` over the runs, and the
//! per-process ones are objects by process: `"peak_rss_kib": {"bench": {…},
//! "server1": {…}}`.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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
use activity_dashboard::Dashboard;
use activity_engine::{store::postgres::PostgresConfig, Engine, EngineConfig, StoreLocation};
use activity_remote::{ActivityService, RemoteProtocol};
use activity_worker::{ShutdownHandle, Worker, WorkerReport};

mod usage;
use usage::{Meter, Process};

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

/// Where the engine runs relative to the worker and client.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// In this process.
    Embedded,
    /// In a child process, over gRPC on loopback.
    Remote,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Remote => "remote",
        }
    }
}

struct Options {
    runs: usize,
    n: u32,
    only: Option<Vec<String>>,
    pollers: usize,
    modes: Vec<Mode>,
    store: Option<String>,
    nodes: usize,
    workflows: u32,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        runs: 3,
        n: 1000,
        only: None,
        pollers: 2,
        modes: vec![Mode::Embedded, Mode::Remote],
        store: None,
        nodes: 1,
        workflows: 10,
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
            "--store" => options.store = Some(value("--store")?),
            "--nodes" => {
                options.nodes = value("--nodes")?
                    .parse()
                    .map_err(|e| format!("--nodes: {e}"))?
            }
            "--workflows" => {
                options.workflows = value("--workflows")?
                    .parse()
                    .map_err(|e| format!("--workflows: {e}"))?;
                if options.workflows == 0 {
                    return Err("--workflows: must be at least 1".into());
                }
            }
            "--n" => options.n = value("--n")?.parse().map_err(|e| format!("--n: {e}"))?,
            "--mode" => {
                options.modes = match value("--mode")?.as_str() {
                    "embedded" => vec![Mode::Embedded],
                    "remote" => vec![Mode::Remote],
                    "both" => vec![Mode::Embedded, Mode::Remote],
                    other => {
                        return Err(format!(
                            "--mode: `{other}` is not one of embedded, remote, both"
                        ))
                    }
                }
            }
            "--only" => {
                options.only = Some(value("--only")?.split(',').map(str::to_owned).collect())
            }
            "--help" | "-h" => {
                return Err("usage: activity-bench [--runs N] [--n N] [--pollers N] [--mode embedded|remote|both] [--only a,b] [--store postgres://…] [--nodes K] [--workflows W]\nscenarios: fanout, fanout10, sequential, standalone, local, heartbeat, recovery".into())
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(options)
}

/// The engine of one run: in this process, or a server child process.
enum Backend {
    Embedded(Engine),
    Remote {
        servers: Vec<ServerChild>,
        /// One connection per server for the workers.
        protocols: Vec<Arc<dyn ActivityProtocol>>,
        /// The client's own connection to the first server, as a client and a
        /// worker have in separate processes: calls waiting for results never
        /// take the streams the worker's polls and completions need (a server
        /// allows a bounded number of calls in flight per connection: 1,000
        /// standalone result waits on the worker's connection stalled it until
        /// their long polls ended, a minute later).
        client: Arc<dyn ActivityProtocol>,
    },
}

/// One engine on a file in a fresh directory, with a worker.
struct Bench {
    dir: PathBuf,
    target: Target,
    backend: Backend,
    stamps: Arc<Stamps>,
    workers: Vec<(ShutdownHandle, tokio::task::JoinHandle<WorkerReport>)>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);
/// Activity pollers per queue of the benchmark's worker (`--pollers`).
static POLLERS: AtomicU64 = AtomicU64::new(2);
/// The PostgreSQL database of `--store`, if any.
static STORE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
/// Server processes in remote mode (`--nodes`).
static NODES: AtomicU64 = AtomicU64::new(1);

/// Where one run's engine keeps its state: a SQLite file, or a PostgreSQL schema.
#[derive(Clone)]
struct Target {
    db: String,
    schema: Option<String>,
}

impl Target {
    fn new(dir: &Path) -> Self {
        match STORE.get().cloned().flatten() {
            Some(url) => Target {
                db: url,
                schema: Some(format!(
                    "activity_bench_{}_{}",
                    std::process::id(),
                    DIRS.fetch_add(1, Ordering::Relaxed)
                )),
            },
            None => Target {
                db: dir.join("engine.sqlite").display().to_string(),
                schema: None,
            },
        }
    }

    fn config(&self) -> EngineConfig {
        match &self.schema {
            Some(schema) => EngineConfig::postgres(self.db.clone()).with_store(
                StoreLocation::Postgres(PostgresConfig::new(self.db.clone()).with_schema(schema)),
            ),
            None => EngineConfig::file(&self.db),
        }
    }

    /// Transactions committed in the PostgreSQL database so far
    /// (`pg_stat_database.xact_commit`); `None` on SQLite or when unreadable.
    async fn commits(&self) -> Option<f64> {
        self.schema.as_ref()?;
        let url = self.db.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<i64, postgres::Error> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            let row = client.query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )?;
            row.try_get(0)
        })
        .await;
        match read {
            Ok(Ok(commits)) => Some(commits as f64),
            Ok(Err(err)) => {
                eprintln!("cannot read pg_stat_database: {err}");
                None
            }
            Err(_) => None,
        }
    }

    /// Drops the run's schema.
    async fn remove(&self) {
        let Some(schema) = self.schema.clone() else {
            return;
        };
        let url = self.db.clone();
        let dropped = tokio::task::spawn_blocking(move || -> Result<(), postgres::Error> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        })
        .await;
        if let Ok(Err(err)) = dropped {
            eprintln!("cannot drop the benchmark's schema: {err}");
        }
    }
}

impl Bench {
    async fn open(mode: Mode) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!(
            "activity-bench-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let target = Target::new(&dir);
        let backend = match mode {
            Mode::Embedded => Backend::Embedded(Engine::open(target.config()).await?),
            Mode::Remote => {
                let mut servers = Vec::new();
                let mut protocols = Vec::new();
                for _ in 0..NODES.load(Ordering::Relaxed).max(1) {
                    let server = ServerChild::start(&target)?;
                    protocols.push(server.connect().await?);
                    servers.push(server);
                }
                let client = servers[0].connect().await?;
                Backend::Remote {
                    servers,
                    protocols,
                    client,
                }
            }
        };
        Ok(Self {
            dir,
            target,
            backend,
            stamps: Arc::default(),
            workers: Vec::new(),
        })
    }

    fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        match &self.backend {
            Backend::Embedded(engine) => engine.protocol(),
            Backend::Remote { client, .. } => client.clone(),
        }
    }

    fn client(&self) -> Client {
        Client::new(self.protocol()).with_task_queue("bench")
    }

    /// One worker per server (one in embedded mode).
    fn start_worker(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let protocols = match &self.backend {
            Backend::Embedded(engine) => vec![engine.protocol()],
            Backend::Remote { protocols, .. } => protocols.clone(),
        };
        for protocol in protocols {
            let worker = Worker::builder(protocol)
                .task_queue("bench")
                .max_concurrent_activities(200)
                .max_concurrent_workflow_tasks(4)
                .pollers_per_queue(POLLERS.load(Ordering::Relaxed).max(1) as usize)
                .shared_state(self.stamps.clone())
                .build()?;
            let handle = worker.shutdown_handle();
            self.workers.push((
                handle,
                tokio::spawn(worker.run_until(std::future::pending())),
            ));
        }
        Ok(())
    }

    /// Stops the worker and the engine; the directory stays (see [`Bench::close`]).
    async fn stop(&mut self) {
        let began = Instant::now();
        for (handle, running) in std::mem::take(&mut self.workers) {
            handle.shutdown();
            let _ = running.await;
        }
        let workers = began.elapsed();
        match &mut self.backend {
            Backend::Embedded(engine) => engine.close().await,
            Backend::Remote { servers, .. } => servers.iter_mut().for_each(ServerChild::stop),
        }
        let engine = began.elapsed() - workers;
        if workers + engine > Duration::from_secs(1) {
            eprintln!("   slow stop: workers {workers:?}, engine {engine:?}");
        }
    }

    async fn close(mut self) {
        self.stop().await;
        self.target.remove().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Starts measuring what the scenario costs (see [`Bench::finish`]).
    async fn meter(&self) -> Measuring {
        let mut processes = vec![Process {
            label: "bench".into(),
            pid: None,
        }];
        if let Backend::Remote { servers, .. } = &self.backend {
            for (i, server) in servers.iter().enumerate() {
                processes.push(Process {
                    label: format!("server{}", i + 1),
                    pid: Some(server.child.id()),
                });
            }
        }
        Measuring {
            load: usage::load_average(),
            commits: self.target.commits().await,
            meter: Meter::start(processes, self.target.schema.is_some()),
        }
    }

    /// Closes the bench and adds the costs of the `activities` run since `meter`
    /// (of which `in_flight` were outstanding at once) to `sample`.
    async fn finish(
        self,
        measuring: Measuring,
        activities: u32,
        in_flight: Option<u32>,
        mut sample: Sample,
    ) -> Sample {
        // Before the servers stop: their peak RSS is read from /proc.
        sample.extend(measuring.meter.finish(activities, in_flight));
        sample.insert("load_average_1m".into(), measuring.load);
        let target = self.target.clone();
        self.close().await;
        if let Some(before) = measuring.commits {
            // A backend reports its counters when it exits: the engine has closed
            // its connections (a stopped server's exited with it).
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(after) = target.commits().await {
                sample.insert(
                    "pg_commits_per_activity".into(),
                    (after - before) / f64::from(activities.max(1)),
                );
            }
        }
        sample
    }
}

/// What [`Bench::meter`] sampled at the start of a scenario.
struct Measuring {
    load: f64,
    commits: Option<f64>,
    meter: Meter,
}

/// `activity-bench serve DB [SCHEMA]`: the engine on `DB` (a SQLite file, or a
/// PostgreSQL URL and schema), served over gRPC on a free loopback port until
/// standard input closes. Prints `listening on ADDR` first.
async fn serve_child(target: Target) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::open(target.config()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    let (closed, stdin_closed) = tokio::sync::watch::channel(false);
    tokio::task::spawn_blocking(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = closed.send(true);
    });
    // As `activity-server serve` does after its shutdown grace: closing the
    // engine ends the long polls still in flight (a worker's 60 s polls), so
    // the server's drain does not wait for them.
    tokio::spawn({
        let (engine, mut stdin_closed) = (engine.clone(), stdin_closed.clone());
        async move {
            let _ = stdin_closed.wait_for(|closed| *closed).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            engine.close().await;
        }
    });
    // Served as `activity-server serve` serves it: the dashboard on the same port.
    let mut service = ActivityService::new(engine.protocol());
    if std::env::var_os("BENCH_NO_DASHBOARD").is_none() {
        service = service.with_http_routes(Dashboard::new(engine.protocol()).router()?);
    }
    let mut shutdown = stdin_closed;
    service
        .serve(listener, async move {
            let _ = shutdown.wait_for(|closed| *closed).await;
        })
        .await?;
    engine.close().await;
    Ok(())
}

/// A `serve` child process; it stops when its standard input closes.
struct ServerChild {
    child: Child,
    url: String,
    /// From spawning the process to its "listening" line.
    started_in: Duration,
}

impl ServerChild {
    fn start(target: &Target) -> Result<Self, Box<dyn std::error::Error>> {
        let began = Instant::now();
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg(&target.db)
            .args(&target.schema)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the server's stdout is not piped")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            return Err(format!("the server child did not start: it printed {line:?}").into());
        };
        Ok(Self {
            url: format!("http://{addr}"),
            child,
            started_in: began.elapsed(),
        })
    }

    async fn connect(&self) -> Result<Arc<dyn ActivityProtocol>, Box<dyn std::error::Error>> {
        Ok(Arc::new(RemoteProtocol::connect(self.url.clone()).await?))
    }

    fn rss_kib(&self) -> f64 {
        usage::status_kib(Some(self.child.id()), "VmRSS:")
    }

    /// Closes its standard input (a graceful stop) and waits for it to exit.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one run of one scenario measured.
type Sample = BTreeMap<String, f64>;

fn sample<const N: usize>(figures: [(&str, f64); N]) -> Sample {
    figures
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

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

async fn fanout(mode: Mode, workflows: u32, n: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open(mode).await?;
    bench.start_worker()?;
    let client = bench.client();
    let measuring = bench.meter().await;
    let start = Instant::now();
    let per_workflow = n / workflows;
    let mut handles = Vec::new();
    for _ in 0..workflows {
        handles.push(fan_out::start(&client, per_workflow).await?);
    }
    for handle in handles {
        handle.result().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = per_workflow * workflows;
    let figures = sample([("activities_per_s", f64::from(total) / secs)]);
    Ok(bench.finish(measuring, total, Some(total), figures).await)
}

async fn sequential_latency(
    mode: Mode,
    n: u32,
    local: bool,
) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open(mode).await?;
    bench.start_worker()?;
    let client = bench.client();
    let measuring = bench.meter().await;
    let start = Instant::now();
    if local {
        local_sequential::start(&client, n).await?.result().await?;
    } else {
        sequential::start(&client, n).await?.result().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let gaps = gaps_ms(&bench.stamps.take());
    let figures = sample([
        ("p50_ms", percentile(&gaps, 50.0)),
        ("p99_ms", percentile(&gaps, 99.0)),
        ("activities_per_s", f64::from(n) / secs),
    ]);
    Ok(bench.finish(measuring, n, None, figures).await)
}

async fn standalone(mode: Mode, n: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open(mode).await?;
    bench.start_worker()?;
    let client = bench.client();
    let measuring = bench.meter().await;
    let start = Instant::now();
    // Started all at once: concurrent schedules share commits.
    let starts = join_all((0..n).map(|_| client.start(noop::call(&client)))).await;
    let handles: Vec<_> = starts.into_iter().collect::<Result<_, _>>()?;
    for result in join_all(handles.iter().map(|h| h.result())).await {
        result?;
    }
    let secs = start.elapsed().as_secs_f64();
    let figures = sample([("activities_per_s", f64::from(n) / secs)]);
    Ok(bench.finish(measuring, n, Some(n), figures).await)
}

async fn heartbeat(mode: Mode) -> Result<Sample, Box<dyn std::error::Error>> {
    let mut bench = Bench::open(mode).await?;
    bench.start_worker()?;
    let client = bench.client();
    let calls = 1_000_000;
    let handle = client.start(heartbeat_loop::call(&client, calls)).await?;
    let ns_per_call = handle.result().await?;
    bench.close().await;
    Ok(sample([("ns_per_call", ns_per_call)]))
}

fn rss_kib() -> f64 {
    usage::status_kib(None, "VmRSS:")
}

async fn recovery(mode: Mode, backlog: u32) -> Result<Sample, Box<dyn std::error::Error>> {
    // A remote engine's growth is measured against a server on an empty store.
    let empty_server_kib = match mode {
        Mode::Embedded => 0.0,
        Mode::Remote => {
            let empty = Bench::open(mode).await?;
            first_dispatch(&empty.protocol(), Duration::ZERO).await?;
            let kib = match &empty.backend {
                Backend::Remote { servers, .. } => servers[0].rss_kib(),
                Backend::Embedded(_) => unreachable!("opened in remote mode"),
            };
            empty.close().await;
            kib
        }
    };
    let mut bench = Bench::open(mode).await?;
    let target = bench.target.clone();
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
    drop(protocol);
    bench.stop().await;
    let wait = Duration::from_secs(10);
    let (reopened, dispatched, grown_kib) = match mode {
        Mode::Embedded => {
            let rss_before = rss_kib();
            let start = Instant::now();
            let engine = Engine::open(target.config()).await?;
            let reopened = start.elapsed();
            first_dispatch(&engine.protocol(), wait).await?;
            let dispatched = start.elapsed();
            let grown = rss_kib() - rss_before;
            engine.close().await;
            (reopened, dispatched, grown)
        }
        Mode::Remote => {
            let start = Instant::now();
            let mut server = ServerChild::start(&target)?;
            let reopened = server.started_in;
            first_dispatch(&server.connect().await?, wait).await?;
            let dispatched = start.elapsed();
            let grown = server.rss_kib() - empty_server_kib;
            server.stop();
            (reopened, dispatched, grown)
        }
    };
    bench.close().await;
    Ok(sample([
        ("reopen_ms", reopened.as_secs_f64() * 1000.0),
        ("first_dispatch_ms", dispatched.as_secs_f64() * 1000.0),
        (
            "engine_bytes_per_backlogged",
            grown_kib.max(0.0) * 1024.0 / f64::from(backlog),
        ),
    ]))
}

/// Polls the recovery queue once; an error if nothing was dispatched within `wait`
/// (a zero wait only checks the engine answers).
async fn first_dispatch(
    protocol: &Arc<dyn ActivityProtocol>,
    wait: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let task = protocol
        .poll_activity_task(PollActivityTaskRequest::new("recovery", "bench").with_wait(wait))
        .await?;
    if task.is_none() && !wait.is_zero() {
        return Err("no task dispatched after the restart".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("serve") {
        let db = args
            .next()
            .ok_or("usage: activity-bench serve DB [SCHEMA]")?;
        return serve_child(Target {
            db,
            schema: args.next(),
        })
        .await;
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let n = options.n;
    POLLERS.store(options.pollers as u64, Ordering::Relaxed);
    NODES.store(options.nodes as u64, Ordering::Relaxed);
    let _ = STORE.set(options.store.clone());
    let scenarios: Vec<(&'static str, String)> = vec![
        ("fanout", format!("fan-out 1 x {n}")),
        (
            "fanout10",
            format!("fan-out {} x {}", options.workflows, n / options.workflows),
        ),
        ("sequential", "sequential 500".into()),
        ("standalone", format!("standalone {n}")),
        ("local", "local sequential 500".into()),
        ("heartbeat", "heartbeat 1,000,000 calls".into()),
        ("recovery", "recovery 100,000 backlog".into()),
    ];
    let mut results: Vec<(String, Mode, Vec<Sample>)> = Vec::new();
    for &mode in &options.modes {
        for (key, title) in &scenarios {
            if let Some(only) = &options.only {
                if !only.iter().any(|o| o == key) {
                    continue;
                }
            }
            let mut samples = Vec::new();
            for run in 1..=options.runs {
                eprintln!("== {title} ({}): run {run}/{}", mode.name(), options.runs);
                let sample = match *key {
                    "fanout" => fanout(mode, 1, n).await?,
                    "fanout10" => fanout(mode, options.workflows, n).await?,
                    "sequential" => sequential_latency(mode, 500, false).await?,
                    "standalone" => standalone(mode, n).await?,
                    "local" => sequential_latency(mode, 500, true).await?,
                    "heartbeat" => heartbeat(mode).await?,
                    "recovery" => recovery(mode, 100_000).await?,
                    _ => unreachable!("scenario keys are listed above"),
                };
                eprintln!("   {sample:?}");
                samples.push(sample);
            }
            results.push((title.clone(), mode, samples));
        }
    }
    let mut lines = Vec::new();
    match &options.store {
        Some(url) => println!(
            "\nstore: PostgreSQL ({}), {} node(s) in remote mode",
            activity_engine::store::postgres::redacted(url),
            options.nodes
        ),
        None => println!("\nstore: SQLite file"),
    }
    println!("\n| scenario | mode | metric | median | min | max |");
    println!("|---|---|---|---|---|---|");
    for (title, mode, samples) in &results {
        let Some(first) = samples.first() else {
            continue;
        };
        let mut json = serde_json::Map::new();
        json.insert("scenario".into(), title.clone().into());
        json.insert("mode".into(), mode.name().into());
        json.insert("runs".into(), samples.len().into());
        for metric in first.keys() {
            let mut values: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.get(metric).copied())
                .collect();
            if values.is_empty() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            let median = percentile(&values, 50.0);
            let (min, max) = (values[0], values[values.len() - 1]);
            println!(
                "| {title} | {} | {metric} | {median:.3} | {min:.3} | {max:.3} |",
                mode.name()
            );
            let figure = serde_json::json!({ "median": median, "min": min, "max": max });
            // `group/process`: one object per group, by process.
            match metric.split_once('/') {
                Some((group, process)) => {
                    if let serde_json::Value::Object(by_process) = json
                        .entry(group)
                        .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    {
                        by_process.insert(process.to_owned(), figure);
                    }
                }
                None => {
                    json.insert(metric.clone(), figure);
                }
            }
        }
        lines.push(serde_json::Value::Object(json));
    }
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
