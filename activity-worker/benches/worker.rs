//! Hot paths of the worker with no I/O: the workflow executor's activation of a
//! run with many activities pending, and a throttled `ctx.heartbeat` call.
//!
//! `cargo bench -p activity-worker --bench worker`
//!
//! The activations go through the executor the worker's pollers use (history
//! events applied to a cached instance, the code polled until it blocks, its
//! commands collected); the protocol, which a cached instance never calls, is an
//! in-memory engine.

use std::{sync::Arc, time::SystemTime};

use activity_core::{
    activity,
    workflow::{join_all, EventKind, HistoryEvent, WorkflowTask},
    ActivityContext, ActivityError, ActivityInfo, ActivityProtocol, Payload, Registry, TaskToken,
    WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::__bench::{heartbeat_sink, WorkflowExecutor};

fn main() {
    divan::main();
}

#[activity(start_to_close = "5m")]
async fn noop() -> Result<(), ActivityError> {
    Ok(())
}

#[activity_core::workflow]
async fn bench_fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let results = join_all((0..n).map(|_| noop::call(&ctx))).await;
    for result in results {
        result?;
    }
    Ok(n)
}

const IDENTITY: &str = "bench-worker";

/// One run of `bench_fan_out` in an executor's cache, and its history so far.
struct Run {
    executor: WorkflowExecutor,
    next_event: u64,
}

impl Run {
    fn task(&mut self, kinds: Vec<EventKind>) -> WorkflowTask {
        let history = kinds
            .into_iter()
            .map(|kind| {
                self.next_event += 1;
                HistoryEvent::new(self.next_event, SystemTime::UNIX_EPOCH, kind)
            })
            .collect();
        WorkflowTask::new(
            TaskToken::from_bytes(Vec::new()),
            "bench".into(),
            "bench-run".into(),
            "bench_fan_out".into(),
            history,
        )
    }

    /// A new run's first task: it schedules `n` activities.
    fn first(n: u32) -> (Self, WorkflowTask) {
        let mut run = Run {
            executor: WorkflowExecutor::new(
                Registry::from_inventory().expect("activities registered"),
                16,
            )
            .expect("workflows registered"),
            next_event: 0,
        };
        let task = run.task(vec![
            EventKind::WorkflowStarted {
                workflow_type: "bench_fan_out".into(),
                task_queue: "bench".into(),
                input: vec![Payload::json(&n).unwrap()],
                timeouts: Default::default(),
                original_run_id: None,
                parent: None,
            },
            EventKind::WorkflowTaskScheduled,
            started(),
        ]);
        (run, task)
    }

    /// The next task after one was answered: activity `seq` completed (after the
    /// first task, its `n` schedule events come first).
    fn completion(&mut self, scheduled: u32, seq: u32) -> WorkflowTask {
        let mut kinds = vec![EventKind::WorkflowTaskCompleted {
            identity: IDENTITY.into(),
        }];
        kinds.extend((1..=scheduled).map(|seq| EventKind::ActivityScheduled {
            seq,
            activity_id: seq.to_string(),
            activity_type: "noop".into(),
        }));
        kinds.extend([
            EventKind::ActivityCompleted {
                seq,
                result: Payload::json(&()).unwrap(),
            },
            EventKind::WorkflowTaskScheduled,
            started(),
        ]);
        self.task(kinds)
    }
}

fn started() -> EventKind {
    EventKind::WorkflowTaskStarted {
        identity: IDENTITY.into(),
    }
}

fn runtime() -> (tokio::runtime::Runtime, Arc<dyn ActivityProtocol>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = runtime
        .block_on(Engine::open(EngineConfig::in_memory()))
        .unwrap();
    let protocol = engine.protocol();
    (runtime, protocol)
}

/// The first activation of a fan-out: the code starts `n` activities and the
/// executor collects `n` schedule commands.
#[divan::bench(args = [10, 1000])]
fn first_activation_scheduling(bencher: divan::Bencher<'_, '_>, n: u32) {
    let (runtime, protocol) = runtime();
    bencher
        .with_inputs(|| Run::first(n))
        .bench_local_values(|(run, task)| {
            let commands = runtime
                .block_on(run.executor.run_task(task, protocol.as_ref()))
                .unwrap();
            assert_eq!(commands.len(), n as usize);
            run
        });
}

/// A cached run with `n` activities scheduled and one completed
/// (`second_task`: the task after the first, which carries the `n` schedule
/// events too).
fn pending_run(
    runtime: &tokio::runtime::Runtime,
    protocol: &dyn ActivityProtocol,
    n: u32,
    second_task: bool,
) -> (Run, WorkflowTask) {
    let (mut run, first) = Run::first(n);
    let commands = runtime
        .block_on(run.executor.run_task(first, protocol))
        .unwrap();
    assert_eq!(commands.len(), n as usize);
    let second = run.completion(n, 1);
    if second_task {
        return (run, second);
    }
    let commands = runtime
        .block_on(run.executor.run_task(second, protocol))
        .unwrap();
    assert!(commands.is_empty(), "still waiting: {commands:?}");
    let third = run.completion(0, 2);
    (run, third)
}

/// The task after the first, with its `n` schedule events and one completion:
/// the executor applies them and polls the code, blocked on the other n − 1.
#[divan::bench(args = [10, 1000])]
fn second_task_with_pending_activities(bencher: divan::Bencher<'_, '_>, n: u32) {
    let (runtime, protocol) = runtime();
    bencher
        .with_inputs(|| pending_run(&runtime, protocol.as_ref(), n, true))
        .bench_local_values(|(run, task)| {
            let commands = runtime
                .block_on(run.executor.run_task(task, protocol.as_ref()))
                .unwrap();
            assert!(commands.is_empty(), "still waiting: {commands:?}");
            run
        });
}

/// One more completion delivered to a cached run with `n` activities pending
/// (a task of four events): the executor applies it and polls the code, which
/// stays blocked on the other activities.
#[divan::bench(args = [10, 1000])]
fn activation_with_pending_activities(bencher: divan::Bencher<'_, '_>, n: u32) {
    let (runtime, protocol) = runtime();
    bencher
        .with_inputs(|| pending_run(&runtime, protocol.as_ref(), n, false))
        .bench_local_values(|(run, task)| {
            let commands = runtime
                .block_on(run.executor.run_task(task, protocol.as_ref()))
                .unwrap();
            assert!(commands.is_empty(), "still waiting: {commands:?}");
            run
        });
}

fn heartbeat_context() -> ActivityContext {
    let info = ActivityInfo::new("copy", "copy-1", "bench");
    ActivityContext::new(info, None, Some(heartbeat_sink())).0
}

/// `ctx.heartbeat(&progress)` between two sends: the details are serialized and
/// stored as the latest, the sender is woken (and would wait out its interval).
#[divan::bench]
fn throttled_heartbeat_with_details(bencher: divan::Bencher<'_, '_>) {
    let ctx = heartbeat_context();
    let mut done = 0_u64;
    bencher.bench_local(|| {
        done += 1;
        ctx.heartbeat(divan::black_box(&done)).unwrap();
    });
}

/// `ctx.heartbeat_empty()` between two sends.
#[divan::bench]
fn throttled_heartbeat_empty(bencher: divan::Bencher<'_, '_>) {
    let ctx = heartbeat_context();
    bencher.bench_local(|| ctx.heartbeat_empty().unwrap());
}
