//! What the behaviour suites of every crate share.
//!
//! The store the suites run on: in-memory SQLite (and SQLite files where a
//! test reopens its store) by default, or PostgreSQL with
//! `ACTIVITY_TEST_STORE=postgres` (URL from `ACTIVITY_TEST_DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`), each test in its own
//! schema: [`engine_config`] and [`durable_config`].
//!
//! The connection the behaviour suites use: the engine in-process by default, or
//! the same engine behind the gRPC service on loopback when
//! `ACTIVITY_TEST_TRANSPORT=remote` (CI runs the suites both ways).
//!
//! The suites run on tokio's paused clock, which jumps to the next timer whenever
//! the runtime is idle, and a call waiting on a socket looks idle. Over gRPC each
//! call therefore holds the clock still until it is answered (a blocking task in
//! flight stops auto-advance), so that the network takes no virtual time, as
//! in-process calls do. Long polls wait *for* time to pass, so they are not held
//! while they wait; but once the engine answers one, the clock is held (from the
//! service's side) until the caller has received the answer.

pub mod otlp;
pub mod wire;

use std::{
    collections::VecDeque,
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use activity_core::{
    definition::BoxFuture,
    protocol::{ProtocolRequest, ProtocolResponse},
    ActivityProtocol, ProtocolError,
};
use activity_engine::{store::postgres::PostgresConfig, Engine, EngineConfig, StoreLocation};
use activity_remote::{ActivityService, RemoteConfig, RemoteProtocol, ServerLimits};

/// Whether the suites run on PostgreSQL.
pub fn postgres() -> bool {
    std::env::var("ACTIVITY_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// The PostgreSQL database the suites use.
pub fn database_url() -> String {
    std::env::var("ACTIVITY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL schema name of this test process, `activity_test_<pid>_<what>`.
fn schema_name(what: &str) -> String {
    static CLEANED: std::sync::Once = std::sync::Once::new();
    CLEANED.call_once(drop_stale_schemas);
    format!("activity_test_{}_{what}", std::process::id())
}

/// Drops the schemas of test processes that are gone (a durable schema, or
/// one of a process that was killed, outlives its process).
fn drop_stale_schemas() {
    let url = database_url();
    let cleaned = std::thread::spawn(move || -> Result<(), postgres::Error> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let schemas: Vec<String> = client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'activity\\_test\\_%'",
                &[],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for schema in schemas {
            let pid = schema.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))?;
            }
        }
        Ok(())
    })
    .join();
    if let Ok(Err(err)) = cleaned {
        panic!("cannot reach the test database {}: {err}", database_url());
    }
}

/// A fresh store for one test: in-memory SQLite, or on PostgreSQL a schema of
/// its own, dropped when its engine closes.
pub fn engine_config() -> EngineConfig {
    if !postgres() {
        return EngineConfig::in_memory();
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    EngineConfig::in_memory().with_store(StoreLocation::Postgres(
        PostgresConfig::new(database_url())
            .with_schema(schema_name(&n.to_string()))
            .with_connections(2)
            .temporary(true),
    ))
}

/// A store that outlives its engine, for tests that reopen it: the SQLite file
/// at `path`, or on PostgreSQL a schema named after `path` (dropped by the
/// next test process once this one is gone).
pub fn durable_config(path: &std::path::Path) -> EngineConfig {
    if !postgres() {
        return EngineConfig::file(path);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    EngineConfig::in_memory().with_store(StoreLocation::Postgres(
        PostgresConfig::new(database_url())
            .with_schema(schema_name(&format!("d{hash:016x}")))
            .with_connections(2),
    ))
}

/// Whether the suites run over gRPC.
pub fn remote() -> bool {
    std::env::var("ACTIVITY_TEST_TRANSPORT").is_ok_and(|t| t == "remote")
}

/// A connection to `engine`: in-process, or a `RemoteProtocol` to a gRPC service
/// serving it on 127.0.0.1 (one service per engine, started on first use).
pub async fn connect(engine: &Engine) -> Arc<dyn ActivityProtocol> {
    if !remote() {
        return engine.protocol();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("bound address");
    let holds = Holds::default();
    // The server's network timers (keepalive pings, idle connections) run on
    // the paused clock too, which jumps past a ping's answer while the runtime
    // waits on the socket: put them beyond any virtual time a test reaches.
    let never = Duration::from_secs(10 * 365 * 24 * 3600);
    let limits = ServerLimits::default()
        .with_keepalive_interval(never)
        .with_idle_timeout(never);
    let service = ActivityService::new(Arc::new(ClockGuard {
        inner: engine.protocol(),
        holds: holds.clone(),
        side: Side::Service,
    }))
    .with_limits(limits);
    tokio::spawn(async move {
        if let Err(err) = service.serve(listener, std::future::pending()).await {
            panic!("the test gRPC service stopped: {err}");
        }
    });
    // Transport deadlines run on the paused clock too, where long polls legitimately
    // span virtual hours: give calls a deadline no test reaches.
    let config = RemoteConfig::new(format!("http://{address}"))
        .with_call_timeout(Duration::from_secs(365 * 24 * 3600));
    let remote = RemoteProtocol::connect(config)
        .await
        .expect("connects to the loopback service");
    Arc::new(ClockGuard {
        inner: Arc::new(remote),
        holds,
        side: Side::Client,
    })
}

/// Clock holds of long-poll answers sent and not yet received. Every answer is
/// held from the moment the engine gives it until the caller has it; holds are
/// interchangeable, so they are a queue. A hold whose answer never arrives (a call
/// dropped by its caller) lapses after a short real time.
#[derive(Clone, Default)]
struct Holds(Arc<Mutex<VecDeque<mpsc::Sender<()>>>>);

impl Holds {
    fn hold(&self) {
        let (release, wait) = mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = wait.recv_timeout(std::time::Duration::from_millis(200));
        });
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(release);
    }

    fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    }
}

/// Which end of the loopback connection a [`ClockGuard`] wraps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The engine as the gRPC service sees it: long-poll answers hold the clock
    /// from the moment they are given.
    Service,
    /// The suites' connection: calls take no virtual time, and a long-poll answer
    /// releases the hold its service side took.
    Client,
}

/// Keeps the paused clock still while the network works (see the module docs).
struct ClockGuard {
    inner: Arc<dyn ActivityProtocol>,
    holds: Holds,
    side: Side,
}

impl ClockGuard {
    /// A call that does not wait for time to pass.
    fn short<'a, T: Send + 'a>(&self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        if self.side == Side::Service {
            return call;
        }
        Box::pin(async move {
            let (release, wait) = mpsc::channel::<()>();
            let holder = tokio::task::spawn_blocking(move || {
                let _ = wait.recv();
            });
            let answer = call.await;
            drop(release);
            let _ = holder.await;
            answer
        })
    }

    /// A long poll: not held while it waits; its answer is held in transit.
    fn long<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        Box::pin(async move {
            let answer = call.await;
            match self.side {
                Side::Service => self.holds.hold(),
                Side::Client => self.holds.release(),
            }
            answer
        })
    }
}

impl ActivityProtocol for ClockGuard {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        let long = request.operation().is_long_poll();
        let call = self.inner.call(request);
        if long {
            self.long(call)
        } else {
            self.short(call)
        }
    }
}

/// An engine and the connection the suites reach it through.
pub struct TestEngine {
    /// The engine (kept open while the suite runs).
    _engine: Engine,
    protocol: Arc<dyn ActivityProtocol>,
}

impl TestEngine {
    /// Opens `config` and connects to it as [`connect`] does.
    pub async fn open(config: EngineConfig) -> Self {
        let engine = Engine::open(config).await.expect("engine opens");
        let protocol = connect(&engine).await;
        Self {
            _engine: engine,
            protocol,
        }
    }

    /// The connection: what workers and clients are built from.
    pub fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.protocol.clone()
    }
}
