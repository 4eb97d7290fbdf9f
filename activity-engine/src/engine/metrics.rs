//! The engine's metrics, through the [`metrics`] facade: they go to whatever
//! recorder the process installed (the dashboard's `/metrics` installs a
//! Prometheus one), and cost next to nothing without one.
//!
//! Only what was committed is counted: a rule notes its events in the
//! transaction's effects, and they are recorded
//! once the transaction is committed (a refused or rolled-back request counts
//! nothing). Latencies are measured on the engine's clock.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `activity_scheduled_total` | counter | `activity_type`, `task_queue` | executions scheduled |
//! | `activity_started_total` | counter | `activity_type`, `task_queue` | attempts started |
//! | `activity_completed_total` | counter | `activity_type`, `task_queue` | executions completed |
//! | `activity_failed_total` | counter | `activity_type`, `task_queue` | executions that ended FAILED |
//! | `activity_timed_out_total` | counter | `activity_type`, `task_queue`, `timeout` | timeouts: an attempt's `start_to_close` or `heartbeat` (retried or not), an execution's `schedule_to_start` or `schedule_to_close` |
//! | `activity_canceled_total` | counter | `activity_type`, `task_queue` | executions that ended CANCELED |
//! | `activity_retried_total` | counter | `activity_type`, `task_queue` | failed or timed-out attempts followed by another |
//! | `activity_released_total` | counter | `activity_type`, `task_queue` | started attempts put back in their queue because their poller was gone before it received them |
//! | `activity_schedule_to_start_seconds` | histogram | `activity_type`, `task_queue` | from an attempt becoming dispatchable to its start |
//! | `activity_attempt_seconds` | histogram | `activity_type`, `task_queue` | from an attempt's start to its end (any outcome) |
//! | `activity_workflow_started_total` | counter | `workflow_type`, `task_queue` | runs started |
//! | `activity_workflow_closed_total` | counter | `workflow_type`, `task_queue`, `outcome` | runs closed, by final state: `completed`, `failed`, `canceled`, `terminated`, … |
//! | `activity_workflow_task_total` | counter | `workflow_type`, `task_queue`, `outcome` | workflow tasks ended: `completed`, `failed`, `timed_out` |
//! | `activity_workflow_task_seconds` | histogram | `workflow_type`, `task_queue` | from a workflow task being scheduled to its completion |
//! | `activity_store_commit_seconds` | histogram | — | one store transaction, from its start to its commit (real time) |
//! | `activity_store_batch_jobs` | histogram | — | requests committed together in one transaction |
//! | `activity_store_conflicts_total` | counter | `reason` | PostgreSQL: jobs rolled back on a lock conflict with another transaction (`lock_timeout`, `deadlock`, `serialization`) and run again |
//!
//! Gauges of the task queues (`activity_task_queue_backlog`, `activity_task_queue_dispatchable`,
//! `activity_task_queue_pollers`, by `task_queue`) are read from the store when
//! scraped, by the dashboard's `/metrics`.

use activity_core::{failure::TimeoutKind, workflow::WorkflowState};

/// What a committed transaction did, to count.
#[derive(Debug)]
pub(crate) enum Event {
    /// A change of an activity execution.
    Activity {
        what: ActivityEvent,
        activity_type: String,
        task_queue: String,
    },
    /// A change of a workflow run or task.
    Workflow {
        what: WorkflowEvent,
        workflow_type: String,
        task_queue: String,
    },
}

#[derive(Debug)]
pub(crate) enum ActivityEvent {
    Scheduled,
    /// Started, after waiting this long (ms) since it became dispatchable.
    Started {
        waited_ms: i64,
    },
    Completed,
    Failed,
    Canceled,
    TimedOut(TimeoutKind),
    Retried,
    /// A started attempt went back to its queue: its poller was gone.
    Released,
    /// A started attempt ended after running this long (ms).
    AttemptEnded {
        ran_ms: i64,
    },
}

#[derive(Debug)]
pub(crate) enum WorkflowEvent {
    Started,
    Closed(WorkflowState),
    /// A task completed, this long (ms) after it was scheduled.
    TaskCompleted {
        latency_ms: i64,
    },
    TaskFailed,
    TaskTimedOut,
}

fn timeout_label(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::StartToClose => "start_to_close",
        TimeoutKind::ScheduleToStart => "schedule_to_start",
        TimeoutKind::ScheduleToClose => "schedule_to_close",
        TimeoutKind::Heartbeat => "heartbeat",
    }
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// Records what a committed transaction did.
pub(crate) fn record(events: Vec<Event>) {
    for event in events {
        match event {
            Event::Activity {
                what,
                activity_type,
                task_queue,
            } => {
                let labels = [("activity_type", activity_type), ("task_queue", task_queue)];
                match what {
                    ActivityEvent::Scheduled => {
                        metrics::counter!("activity_scheduled_total", &labels).increment(1)
                    }
                    ActivityEvent::Started { waited_ms } => {
                        metrics::counter!("activity_started_total", &labels).increment(1);
                        metrics::histogram!("activity_schedule_to_start_seconds", &labels)
                            .record(seconds(waited_ms));
                    }
                    ActivityEvent::Completed => {
                        metrics::counter!("activity_completed_total", &labels).increment(1)
                    }
                    ActivityEvent::Failed => {
                        metrics::counter!("activity_failed_total", &labels).increment(1)
                    }
                    ActivityEvent::Canceled => {
                        metrics::counter!("activity_canceled_total", &labels).increment(1)
                    }
                    ActivityEvent::Retried => {
                        metrics::counter!("activity_retried_total", &labels).increment(1)
                    }
                    ActivityEvent::Released => {
                        metrics::counter!("activity_released_total", &labels).increment(1)
                    }
                    ActivityEvent::TimedOut(kind) => {
                        let [activity_type, task_queue] = labels;
                        metrics::counter!(
                            "activity_timed_out_total",
                            &[
                                activity_type,
                                task_queue,
                                ("timeout", timeout_label(kind).to_owned())
                            ]
                        )
                        .increment(1)
                    }
                    ActivityEvent::AttemptEnded { ran_ms } => {
                        metrics::histogram!("activity_attempt_seconds", &labels)
                            .record(seconds(ran_ms))
                    }
                }
            }
            Event::Workflow {
                what,
                workflow_type,
                task_queue,
            } => {
                let labels = [("workflow_type", workflow_type), ("task_queue", task_queue)];
                let with_outcome = |outcome: String| {
                    let [workflow_type, task_queue] = labels.clone();
                    [workflow_type, task_queue, ("outcome", outcome)]
                };
                match what {
                    WorkflowEvent::Started => {
                        metrics::counter!("activity_workflow_started_total", &labels).increment(1)
                    }
                    WorkflowEvent::Closed(state) => metrics::counter!(
                        "activity_workflow_closed_total",
                        &with_outcome(state.as_str().to_ascii_lowercase())
                    )
                    .increment(1),
                    WorkflowEvent::TaskCompleted { latency_ms } => {
                        metrics::counter!(
                            "activity_workflow_task_total",
                            &with_outcome("completed".to_owned())
                        )
                        .increment(1);
                        metrics::histogram!("activity_workflow_task_seconds", &labels)
                            .record(seconds(latency_ms));
                    }
                    WorkflowEvent::TaskFailed => metrics::counter!(
                        "activity_workflow_task_total",
                        &with_outcome("failed".to_owned())
                    )
                    .increment(1),
                    WorkflowEvent::TaskTimedOut => metrics::counter!(
                        "activity_workflow_task_total",
                        &with_outcome("timed_out".to_owned())
                    )
                    .increment(1),
                }
            }
        }
    }
}
