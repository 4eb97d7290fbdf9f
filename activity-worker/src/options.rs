//! Worker options and their defaults.

use std::time::Duration;

/// How a worker polls and runs activities. Build with [`WorkerBuilder`](crate::WorkerBuilder).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// The task queues polled (at least one).
    pub task_queues: Vec<String>,
    /// Most activities running at once (default 100). A poll is issued only when
    /// a slot is free, so nothing is buffered inside the worker.
    pub max_concurrent_activities: usize,
    /// Most activities this worker starts per second (default unlimited).
    pub max_activities_per_second: Option<f64>,
    /// The task queues' global rate, enforced by the engine across all workers
    /// (default: leave the queue's setting as it is).
    pub max_task_queue_activities_per_second: Option<f64>,
    /// Workflow tasks run at once (default 10).
    pub max_concurrent_workflow_tasks: usize,
    /// Workflow instances kept in memory between tasks (default 1000); an evicted
    /// run replays its history on its next task.
    pub workflow_cache_size: usize,
    /// Concurrent long polls per task queue (default 2; never more than free slots).
    /// One poll takes up to its share of the free slots at once
    /// (`max_concurrent_activities / (pollers_per_queue × queues)`, at most 64;
    /// one when `max_activities_per_second` is set).
    pub pollers_per_queue: usize,
    /// How long one long poll waits before it is issued again (default 60 s).
    pub poll_wait: Duration,
    /// Who this worker is, in the engine's records (default `worker-<pid>@<host>`).
    pub identity: String,
    /// How long running activities may take to finish once shutdown starts, before
    /// they are cancelled with reason "worker shutting down" (default 10 s). After
    /// the cancellation they get as long again to report, then they are abandoned
    /// (their attempts fail with a retryable `WorkerShutdown` failure).
    pub graceful_shutdown_period: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        Self {
            task_queues: Vec::new(),
            max_concurrent_activities: 100,
            max_activities_per_second: None,
            max_task_queue_activities_per_second: None,
            max_concurrent_workflow_tasks: 10,
            workflow_cache_size: 1000,
            pollers_per_queue: 2,
            poll_wait: Duration::from_secs(60),
            identity: format!("worker-{}@{host}", std::process::id()),
            graceful_shutdown_period: Duration::from_secs(10),
        }
    }
}

impl WorkerOptions {
    pub(crate) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.task_queues.is_empty() {
            problems.push("no task queue: add one with `.task_queue(\"name\")`".to_owned());
        }
        if self.task_queues.iter().any(|q| q.trim().is_empty()) {
            problems.push("a task queue name is empty".to_owned());
        }
        if self.max_concurrent_activities == 0 {
            problems.push("`max_concurrent_activities` must be at least 1".to_owned());
        }
        if self.max_concurrent_workflow_tasks == 0 {
            problems.push("`max_concurrent_workflow_tasks` must be at least 1".to_owned());
        }
        if self.pollers_per_queue == 0 {
            problems.push("`pollers_per_queue` must be at least 1".to_owned());
        }
        for (name, rate) in [
            ("max_activities_per_second", self.max_activities_per_second),
            (
                "max_task_queue_activities_per_second",
                self.max_task_queue_activities_per_second,
            ),
        ] {
            if let Some(rate) = rate {
                if !(rate > 0.0 && rate.is_finite()) {
                    problems.push(format!("`{name}` must be a positive number, got {rate}"));
                }
            }
        }
        if self.poll_wait.is_zero() {
            problems.push("`poll_wait` must be greater than zero".to_owned());
        }
        problems
    }
}
