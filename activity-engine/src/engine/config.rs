//! How an engine is opened: where its store lives, its clock, its limits
//! ([`EngineConfig`]), and why opening can fail ([`EngineError`]).

use std::{path::PathBuf, sync::Arc, time::Duration};

use activity_core::clock::Clock;

use crate::{
    clock::SystemClock,
    store::{postgres::PostgresConfig, StoreError},
};

/// Where the engine keeps its state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreLocation {
    /// A SQLite file (created if missing).
    File(PathBuf),
    /// A fresh in-memory SQLite database (tests; lost on close).
    Memory,
    /// A PostgreSQL database, shared by any number of engine nodes.
    Postgres(PostgresConfig),
}

/// How to open an engine.
///
/// | field | default |
/// |---|---|
/// | `store` | a fresh in-memory SQLite database ([`EngineConfig::file`]: a file, created if missing) |
/// | `clock` | the system clock ([`SystemClock`]; tests: [`VirtualClock`](crate::VirtualClock)) |
/// | `max_payload_size` | 4 MiB |
/// | `max_poll_wait` | 60 s |
/// | `poller_retention` | 5 min |
/// | `timer_batch` | 256 |
/// | `max_timer_sleep` | none |
/// | `max_outcome_wait` | 10 min |
/// | `workflow_task_timeout` | 10 s |
/// | `workflow_task_retry_initial_interval` / `_maximum_interval` | 1 s / 10 min |
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use activity_engine::{Engine, EngineConfig, VirtualClock};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let dir = std::env::temp_dir().join(format!("engine-config-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let durable = EngineConfig::file(dir.join("engine.sqlite"))
///     .with_max_payload_size(1024 * 1024)
///     .with_workflow_task_timeout(Duration::from_secs(30));
/// let engine = Engine::open(durable).await?;
/// engine.close().await;
/// std::fs::remove_dir_all(dir)?;
///
/// // Tests: in memory, with a clock that skips ahead (see `VirtualClock`).
/// let test = EngineConfig::in_memory().with_clock(Arc::new(VirtualClock::new()));
/// assert_eq!(test.max_payload_size, EngineConfig::DEFAULT_MAX_PAYLOAD_SIZE);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Where the state is kept.
    pub store: StoreLocation,
    /// The clock (inject a virtual one in tests).
    pub clock: Arc<dyn Clock>,
    /// Largest accepted payload (input in all, result, details), in bytes.
    pub max_payload_size: usize,
    /// Longest wait of one long poll (poll requests asking for more get this).
    pub max_poll_wait: Duration,
    /// How long a poller stays listed among a queue's recent pollers.
    pub poller_retention: Duration,
    /// Most timers fired in one transaction.
    pub timer_batch: usize,
    /// Longest sleep of the timer loop between two reads of the timer rows;
    /// `None` (the default) sleeps until the earliest row. A store shared by
    /// several engine nodes sets it (or delivers wake-ups between nodes), since a
    /// node does not see the timers other nodes set.
    pub max_timer_sleep: Option<Duration>,
    /// Longest wait of a long poll or an outcome wait between two reads of
    /// the store; `None` (the default) waits for this engine's own wake-ups.
    /// A store shared by several nodes sets it: a wake-up from another node
    /// may be lost, and no correctness depends on one.
    pub store_recheck: Option<Duration>,
    /// Longest wait of one `wait_outcome` (or `wait_workflow_outcome`) call.
    pub max_outcome_wait: Duration,
    /// How long a worker has to answer a workflow task it took; then the task
    /// times out and is scheduled again for another worker.
    pub workflow_task_timeout: Duration,
    /// Backoff before the task that follows a failed workflow task; doubles per
    /// consecutive failure.
    pub workflow_task_retry_initial_interval: Duration,
    /// Longest backoff between failed workflow tasks.
    pub workflow_task_retry_maximum_interval: Duration,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("max_payload_size", &self.max_payload_size)
            .field("max_poll_wait", &self.max_poll_wait)
            .field("workflow_task_timeout", &self.workflow_task_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            store: StoreLocation::Memory,
            clock: Arc::new(SystemClock),
            max_payload_size: Self::DEFAULT_MAX_PAYLOAD_SIZE,
            max_poll_wait: Duration::from_secs(60),
            poller_retention: Duration::from_secs(300),
            timer_batch: 256,
            max_timer_sleep: None,
            store_recheck: None,
            max_outcome_wait: Duration::from_secs(600),
            workflow_task_timeout: Duration::from_secs(10),
            workflow_task_retry_initial_interval: Duration::from_secs(1),
            workflow_task_retry_maximum_interval: Duration::from_secs(600),
        }
    }
}

impl EngineConfig {
    /// Default payload size limit: 4 MiB.
    pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 4 * 1024 * 1024;

    /// An in-memory store (for tests).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A SQLite file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            store: StoreLocation::File(path.into()),
            ..Self::default()
        }
    }

    /// A PostgreSQL database (`postgres://user[:password]@host[:port]/database`,
    /// tables in the schema `?schema=NAME` names, `public` without it; see
    /// [`PostgresConfig`]), shared by every node opened on it: timers and
    /// polls re-read the store at least every second, whatever other nodes
    /// committed.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), activity_engine::EngineError> {
    /// use activity_engine::{Engine, EngineConfig};
    /// let engine = Engine::open(EngineConfig::postgres("postgres://postgres@127.0.0.1/app")).await?;
    /// # Ok(()) }
    /// ```
    pub fn postgres(url: impl Into<String>) -> Self {
        Self {
            store: StoreLocation::Postgres(PostgresConfig::new(url)),
            max_timer_sleep: Some(Duration::from_secs(1)),
            store_recheck: Some(Duration::from_secs(1)),
            ..Self::default()
        }
    }

    /// Sets where the state is kept (the other settings stay).
    pub fn with_store(mut self, store: StoreLocation) -> Self {
        self.store = store;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the payload size limit in bytes.
    pub fn with_max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }

    /// Sets the longest wait of one long poll.
    pub fn with_max_poll_wait(mut self, wait: Duration) -> Self {
        self.max_poll_wait = wait;
        self
    }

    /// Sets the workflow task timeout.
    pub fn with_workflow_task_timeout(mut self, timeout: Duration) -> Self {
        self.workflow_task_timeout = timeout;
        self
    }

    /// Sets the backoff after a failed workflow task (`initial`, doubling per
    /// consecutive failure up to `maximum`).
    pub fn with_workflow_task_retry(mut self, initial: Duration, maximum: Duration) -> Self {
        self.workflow_task_retry_initial_interval = initial;
        self.workflow_task_retry_maximum_interval = maximum;
        self
    }
}

/// The engine could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store could not be opened or read; retryable when the store says so
    /// ([`StoreError::is_retryable`]). Its message is part of this one (so it
    /// is not also given as the error's source, which would print it twice).
    #[error("cannot open the store: {0}")]
    Store(StoreError),
    /// The configuration is invalid. Not retryable.
    #[error("invalid engine configuration: `{field}` {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        message: String,
    },
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        EngineError::Store(err)
    }
}

impl EngineError {
    /// Whether opening again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.is_retryable())
    }
}
