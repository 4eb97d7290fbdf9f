//! Shared helpers: the real engine on an in-memory (or temp-file) SQLite store
//! with a virtual clock, and a test that plays the worker through the protocol.
#![allow(dead_code, unreachable_pub)]

use std::{path::Path, sync::Arc, time::Duration, time::SystemTime};

use activity_core::{
    activity,
    options::ActivityOptions,
    payload::Payload,
    protocol::{
        ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef,
        PollActivityTaskRequest, ProtocolError, ScheduleActivityRequest, TaskTarget,
    },
    ActivityError, ActivityProtocol, Client, Clock,
};
use activity_engine::{Engine, EngineConfig, VirtualClock};

/// The suites' connection: in-process, or over gRPC with `ACTIVITY_TEST_TRANSPORT=remote`.
use activity_test_support as support;

pub const QUEUE: &str = "main";

/// Greets someone.
#[activity(start_to_close = "10s")]
pub async fn greet(name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello, {name}!"))
}

pub struct Env {
    pub engine: Engine,
    pub clock: Arc<VirtualClock>,
    pub protocol: Arc<dyn ActivityProtocol>,
    pub client: Client,
}

impl Env {
    /// The real engine on an in-memory store with a virtual clock.
    pub async fn new() -> Env {
        Self::with_config(activity_test_support::engine_config()).await
    }

    pub async fn with_config(config: EngineConfig) -> Env {
        Self::open(config, Arc::new(VirtualClock::new())).await
    }

    /// The engine on `path`, keeping `clock` (virtual time goes on across restarts).
    pub async fn file(path: &Path, clock: Arc<VirtualClock>) -> Env {
        Self::open(activity_test_support::durable_config(path), clock).await
    }

    async fn open(config: EngineConfig, clock: Arc<VirtualClock>) -> Env {
        let engine = Engine::open(config.with_clock(clock.clone()))
            .await
            .expect("engine opens");
        let protocol = support::connect(&engine).await;
        let client = Client::new(protocol.clone()).with_task_queue(QUEUE);
        Env {
            engine,
            clock,
            protocol,
            client,
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Virtual seconds since `t0`.
    pub fn secs_since(&self, t0: SystemTime) -> f64 {
        self.now().duration_since(t0).unwrap().as_secs_f64()
    }

    pub async fn schedule(&self, id: &str, options: ActivityOptions) -> Result<(), ProtocolError> {
        self.protocol
            .schedule_activity(
                ScheduleActivityRequest::new(
                    "greet",
                    vec![Payload::json(id).unwrap()],
                    options.task_queue(QUEUE),
                )
                .with_activity_id(id),
            )
            .await
            .map(drop)
    }

    /// Polls `QUEUE` without waiting.
    pub async fn poll_now(&self) -> Option<ActivityTask> {
        self.poll_on(QUEUE, Duration::ZERO).await
    }

    /// Polls `QUEUE`, waiting up to `wait` (virtual time).
    pub async fn poll(&self, wait: Duration) -> Option<ActivityTask> {
        self.poll_on(QUEUE, wait).await
    }

    pub async fn poll_on(&self, queue: &str, wait: Duration) -> Option<ActivityTask> {
        self.protocol
            .poll_activity_task(PollActivityTaskRequest::new(queue, "test-worker").with_wait(wait))
            .await
            .expect("poll succeeds")
    }

    /// Polls until a task arrives (time skips ahead).
    pub async fn next_task(&self) -> ActivityTask {
        for _ in 0..1000 {
            if let Some(task) = self.poll(Duration::from_secs(60)).await {
                return task;
            }
        }
        panic!("no task arrived within 1000 polls");
    }

    pub async fn describe(&self, id: &str) -> ExecutionDescription {
        self.protocol
            .describe_execution(ExecutionRef::standalone(id))
            .await
            .expect("describe succeeds")
    }

    /// Waits (virtual time) for the outcome.
    pub async fn outcome(&self, id: &str) -> ExecutionOutcome {
        for _ in 0..1000 {
            if let Some(outcome) = self
                .protocol
                .wait_outcome(ExecutionRef::standalone(id), Duration::from_secs(3600))
                .await
                .expect("wait succeeds")
            {
                return outcome;
            }
        }
        panic!("no outcome within 1000 hours");
    }

    pub async fn complete(&self, task: &ActivityTask, value: &str) -> Result<(), ProtocolError> {
        self.protocol
            .complete_activity(
                TaskTarget::Token(task.task_token.clone()),
                Payload::json(value).unwrap(),
            )
            .await
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn json(value: impl serde::Serialize) -> Payload {
    Payload::json(&value).unwrap()
}

/// A payload whose encoding says JSON but whose bytes do not parse.
pub fn malformed_json() -> Payload {
    let mut payload = json(0);
    payload.data = b"{oops".as_slice().into();
    payload
}

pub fn token(task: &ActivityTask) -> TaskTarget {
    TaskTarget::Token(task.task_token.clone())
}

pub fn by_id(id: &str) -> TaskTarget {
    TaskTarget::Execution(ExecutionRef::standalone(id))
}
