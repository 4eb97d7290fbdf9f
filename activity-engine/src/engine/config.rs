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
/// | `retention` | 7 days |
/// | `history_max_events` / `history_max_bytes` | 51,200 events / 50 MiB |
/// | `history_warn_events` / `history_warn_bytes` | 10,240 events / 10 MiB |
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
    /// How long closed runs (with their histories and activity executions) and
    /// final standalone executions are kept after they closed; then they are
    /// deleted, in small batches (docs/semantics.md §3.2).
    pub retention: Duration,
    /// Most events in one run's history: a run that passes it is terminated
    /// with a reason naming the limit (docs/semantics.md §3.2).
    pub history_max_events: u64,
    /// Most bytes in one run's history (its stored events), as
    /// `history_max_events`.
    pub history_max_bytes: u64,
    /// A run's history with this many events gets a `HistorySizeWarning`
    /// event (once).
    pub history_warn_events: u64,
    /// A run's history of this many bytes gets a `HistorySizeWarning` event
    /// (once).
    pub history_warn_bytes: u64,
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
            .field("retention", &self.retention)
            .field("history_max_events", &self.history_max_events)
            .field("history_max_bytes", &self.history_max_bytes)
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
            retention: Self::DEFAULT_RETENTION,
            history_max_events: Self::DEFAULT_HISTORY_MAX_EVENTS,
            history_max_bytes: Self::DEFAULT_HISTORY_MAX_BYTES,
            history_warn_events: Self::DEFAULT_HISTORY_WARN_EVENTS,
            history_warn_bytes: Self::DEFAULT_HISTORY_WARN_BYTES,
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
    /// Default retention of closed runs and executions: 7 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Default limit of events in a history: 51,200 (Temporal's).
    pub const DEFAULT_HISTORY_MAX_EVENTS: u64 = 51_200;
    /// Default limit of a history's size: 50 MiB (Temporal's).
    pub const DEFAULT_HISTORY_MAX_BYTES: u64 = 50 * 1024 * 1024;
    /// Default warning threshold of events in a history: 10,240.
    pub const DEFAULT_HISTORY_WARN_EVENTS: u64 = 10_240;
    /// Default warning threshold of a history's size: 10 MiB.
    pub const DEFAULT_HISTORY_WARN_BYTES: u64 = 10 * 1024 * 1024;

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

    /// Sets how long closed runs and final executions are kept.
    ///
    /// ```
    /// use std::time::Duration;
    /// use activity_engine::EngineConfig;
    ///
    /// let config = EngineConfig::in_memory().with_retention(Duration::from_secs(24 * 3600));
    /// assert_eq!(config.retention, Duration::from_secs(86_400));
    /// ```
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the history limit: most events and most bytes of one run's history.
    ///
    /// ```
    /// use activity_engine::EngineConfig;
    ///
    /// let config = EngineConfig::in_memory()
    ///     .with_history_limit(1_000, 1024 * 1024)
    ///     .with_history_warning(800, 800 * 1024);
    /// assert_eq!(config.history_max_events, 1_000);
    /// assert_eq!(config.history_warn_bytes, 800 * 1024);
    /// ```
    pub fn with_history_limit(mut self, events: u64, bytes: u64) -> Self {
        self.history_max_events = events;
        self.history_max_bytes = bytes;
        self
    }

    /// Sets when a run's history gets its `HistorySizeWarning`: at this many
    /// events or bytes, whichever comes first.
    pub fn with_history_warning(mut self, events: u64, bytes: u64) -> Self {
        self.history_warn_events = events;
        self.history_warn_bytes = bytes;
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
