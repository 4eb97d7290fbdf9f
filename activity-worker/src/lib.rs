//! The worker of typed, durable activities.
//!
//! A [`Worker`] talks to the engine only through
//! [`ActivityProtocol`](activity_core::ActivityProtocol) (the embedded engine or a
//! remote server alike). By default it serves every `#[activity]` of the program
//! (collected through `inventory`), checked at build time: two activities with one
//! name, or a missing `State<T>`, are errors naming them.
//!
//! ```no_run
//! use activity_engine::{Engine, EngineConfig};
//! use activity_worker::Worker;
//!
//! struct DbPool;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::file("activities.sqlite")).await?;
//! let worker = Worker::builder(engine.protocol())
//!     .task_queue("payments")
//!     .max_concurrent_activities(50)
//!     .state(DbPool)
//!     .build()?;
//! let report = worker.run().await; // until Ctrl-C or SIGTERM, then graceful shutdown
//! println!("{report:?}");
//! # Ok(()) }
//! ```
//!
//! - **Flow control**: a poller takes an execution slot before it polls, so
//!   in-flight activities never exceed `max_concurrent_activities` and nothing is
//!   buffered in the worker; `max_activities_per_second` is a token bucket per worker;
//!   `max_task_queue_activities_per_second` is sent to the engine, which enforces it
//!   across all workers of the queue.
//! - **Attempts** run in their own task under a `tracing` span (activity type, id,
//!   attempt, task queue, workflow id). A panic fails the attempt with type `Panic`
//!   and the worker goes on; an unregistered type fails with `ActivityNotRegistered`
//!   listing the registered ones; undecodable input fails non-retryably, naming the
//!   argument.
//! - **Heartbeats** are throttled (see `heartbeat.rs`): the first is sent at once,
//!   then at most one per 0.8 × heartbeat timeout (30 s without one), always the
//!   latest details, and unsent details go with a failure report.
//! - **Cancellation** reaches the activity's context with its reason: requested
//!   (heartbeat answer), timed out (the engine refused a heartbeat of a timed-out
//!   attempt, or the attempt's own deadline passed on the worker's clock), execution
//!   closed, or worker shutting down.
//! - **Asynchronous completion**: an activity that returns
//!   `ActivityError::ResultPending` frees its slot; the worker reports nothing.
//! - **Graceful shutdown**: polling stops, running activities get
//!   `graceful_shutdown_period` to finish, then are cancelled with reason "worker
//!   shutting down" and their outcomes reported. [`shutdown_signal`] wires Ctrl-C
//!   and SIGTERM. Time is tokio's, so tests run it on a paused (virtual) clock.
//! - **Logs** go through `tracing` and **metrics** through the `metrics` facade:
//!   a worker inside an application prints and records nothing until the
//!   application installs a subscriber (e.g. `tracing_subscriber::fmt().init()`)
//!   or a recorder (e.g. `activity_dashboard::prometheus_recorder()`, or any
//!   `metrics` exporter). The metrics:
//!
//!   | name | kind | labels | what |
//!   |---|---|---|---|
//!   | `activity_worker_slots_used` | gauge | `worker` | activity slots taken by running attempts |
//!   | `activity_worker_poll_seconds` | histogram | `kind` (`activity`, `workflow`), `task_queue`, `result` (`task`, `empty`, `error`) | one poll, from request to answer |
//!   | `activity_worker_activity_seconds` | histogram | `activity_type`, `task_queue`, `outcome` (`completed`, `failed`, `canceled`, `pending`) | one attempt's body, on this worker |

mod heartbeat;
mod options;
mod rate;
mod shutdown;
mod trace;
mod worker;
mod workflow;

pub use options::WorkerOptions;
pub use shutdown::{shutdown_signal, ShutdownHandle};
pub use worker::{Worker, WorkerBuilder, WorkerError, WorkerReport};

/// Entry points for the crate's benchmarks (`cargo bench -p activity-worker`): the
/// workflow executor and the heartbeat throttler's sink, which the worker keeps to
/// itself. Not part of the API: no stability, no semver.
#[doc(hidden)]
pub mod __bench {
    use std::sync::Arc;

    use activity_core::{
        context::HeartbeatSink,
        workflow::{Command, WorkflowTask},
        ActivityProtocol, Registry,
    };

    /// The worker's workflow executor, with an instance cache of `capacity` runs.
    pub struct WorkflowExecutor(crate::workflow::WorkflowExecutor);

    impl WorkflowExecutor {
        /// Every workflow registered in the program; `registry` for local activities.
        pub fn new(registry: Registry, capacity: usize) -> Result<Self, String> {
            crate::workflow::WorkflowExecutor::new(registry, capacity).map(Self)
        }

        /// Runs one workflow task: the commands, or why the task failed.
        pub async fn run_task(
            &self,
            task: WorkflowTask,
            protocol: &dyn ActivityProtocol,
        ) -> Result<Vec<Command>, String> {
            self.0
                .run_task(task, protocol)
                .await
                .map_err(|e| e.to_string())
        }
    }

    /// The sink `ctx.heartbeat` writes to in a worker (the throttler's side of it;
    /// nothing sends here).
    pub fn heartbeat_sink() -> Arc<dyn HeartbeatSink> {
        Arc::new(crate::heartbeat::PendingHeartbeat::default())
    }
}
