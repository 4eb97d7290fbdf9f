//! Restart tests (docs/semantics.md §5): close the engine at points in the life of an
//! execution, reopen the same SQLite file, and find backlog, timers, heartbeat
//! details, tokens and outcomes intact. Virtual time goes on across the restart.

mod common;

use std::{path::PathBuf, sync::Arc};

use activity_core::{
    failure::{ApplicationFailure, Failure, RetryState, TimeoutKind},
    options::{ActivityOptions, RetryOptions},
    protocol::{
        ClosedReason, ExecutionOutcome, ExecutionState, PollActivityTaskRequest, ProtocolError,
    },
};
use activity_engine::{Engine, VirtualClock};
use common::*;

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<VirtualClock>,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.db");
        Db {
            _dir: dir,
            path,
            clock: Arc::new(VirtualClock::new()),
        }
    }

    async fn open(&self) -> Env {
        Env::file(&self.path, self.clock.clone()).await
    }

    async fn reopen(&self, env: Env) -> Env {
        env.engine.close().await;
        self.open().await
    }
}

fn stc(s: u64) -> ActivityOptions {
    ActivityOptions::new().start_to_close(secs(s))
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_the_backlog_in_fifo_order_and_the_queue_settings() {
    let db = Db::new();
    let env = db.open().await;
    for id in ["a", "b", "c"] {
        env.schedule(id, stc(10)).await.unwrap();
    }
    env.protocol
        .poll_activity_task(
            PollActivityTaskRequest::new("other", "w")
                .with_wait(secs(0))
                .with_task_queue_rate_limit(5.0),
        )
        .await
        .unwrap();
    let env = db.reopen(env).await;
    let q = env
        .protocol
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!(q.backlog, 3);
    let other = env
        .protocol
        .describe_task_queue("other".into())
        .await
        .unwrap();
    assert_eq!(other.rate_limit, Some(5.0));
    let mut ids = Vec::new();
    while let Some(task) = env.poll_now().await {
        ids.push(task.info.activity_id);
    }
    assert_eq!(ids, ["a", "b", "c"]);
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_fires_a_timer_that_came_due_while_the_engine_was_down_at_once() {
    let db = Db::new();
    let env = db.open().await;
    env.schedule("a", stc(10).schedule_to_start(secs(60)))
        .await
        .unwrap();
    let t0 = env.now();
    env.engine.close().await;
    tokio::time::advance(secs(120)).await; // down for two minutes
    let env = db.open().await;
    let ExecutionOutcome::Failed(failure) = env.outcome("a").await else {
        panic!("expected a timeout")
    };
    assert!(
        matches!(&failure.cause, Failure::Timeout(t) if t.kind == TimeoutKind::ScheduleToStart)
    );
    assert_eq!(failure.retry_state, RetryState::Timeout);
    assert_eq!(env.secs_since(t0), 120.0, "fired on reopen, not later");
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_the_timers_of_a_started_attempt_at_their_time() {
    let db = Db::new();
    let env = db.open().await;
    env.schedule("a", stc(600).retry(RetryOptions::new().maximum_attempts(1)))
        .await
        .unwrap();
    let _task = env.poll_now().await.unwrap();
    let started = env.now();
    let env = db.reopen(env).await;
    let ExecutionOutcome::Failed(failure) = env.outcome("a").await else {
        panic!("expected a timeout")
    };
    assert!(matches!(&failure.cause, Failure::Timeout(t) if t.kind == TimeoutKind::StartToClose));
    assert_eq!(env.secs_since(started), 600.0);
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_heartbeat_details_for_the_next_attempt_and_the_timeout_error() {
    let db = Db::new();
    let env = db.open().await;
    env.schedule("a", stc(300).heartbeat_timeout(secs(10)))
        .await
        .unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .record_heartbeat(token(&task), Some(json("page 7")))
        .await
        .unwrap();
    let env = db.reopen(env).await;
    let next = env.next_task().await;
    assert_eq!(next.info.attempt, 2);
    assert_eq!(next.last_heartbeat_details, Some(json("page 7")));
    let d = env.describe("a").await;
    let Some(Failure::Timeout(timeout)) = d.last_failure else {
        panic!("{:?}", d.last_failure)
    };
    assert_eq!(timeout.kind, TimeoutKind::Heartbeat);
    assert_eq!(timeout.last_heartbeat_details, Some(json("page 7")));
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_tokens_valid_and_the_retry_backoff_timer() {
    let db = Db::new();
    let env = db.open().await;
    env.schedule(
        "a",
        stc(60).retry(RetryOptions::new().initial_interval(secs(30))),
    )
    .await
    .unwrap();
    let first = env.poll_now().await.unwrap();
    let env = db.reopen(env).await;
    // The token issued before the restart still authenticates.
    env.protocol
        .fail_activity(token(&first), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    let failed_at = env.now();
    let env = db.reopen(env).await;
    let second = env.next_task().await;
    assert_eq!(second.info.attempt, 2);
    assert_eq!(env.secs_since(failed_at), 30.0);
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_outcomes_and_never_records_a_second_one() {
    let db = Db::new();
    let env = db.open().await;
    env.schedule("a", stc(60)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.complete(&task, "result").await.unwrap();
    let env = db.reopen(env).await;
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("result"))
    );
    let err = env.complete(&task, "again").await.unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::AlreadyClosed {
            reason: ClosedReason::ExecutionClosed(ExecutionState::Completed),
            ..
        }
    ));
    let handle = env
        .client
        .handle::<greet>(activity_core::ExecutionRef::standalone("a"));
    assert_eq!(handle.result().await.unwrap(), "result");
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_a_file_serves_one_engine_at_a_time_and_tokens_of_another_store_are_refused() {
    let db = Db::new();
    let env = db.open().await;
    let second =
        Engine::open(activity_test_support::durable_config(&db.path).with_clock(db.clock.clone()))
            .await;
    if activity_test_support::postgres() {
        // A shared database serves any number of engine nodes (SEMANTICS 5).
        second.expect("a second node opens on the same database");
    } else {
        let err = second.expect_err("the file is locked by the first engine");
        assert!(err.is_retryable(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "the database file `{}` is locked: another engine has it open",
                db.path.display()
            )),
            "{text}"
        );
        assert!(!text.contains("Unavailable("), "no Debug form: {text}");
    }

    env.schedule("a", stc(60)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let other = Db::new().open().await;
    other.schedule("a", stc(60)).await.unwrap();
    let _ = other.poll_now().await.unwrap();
    let err = other.complete(&task, "x").await.unwrap_err();
    assert!(matches!(err, ProtocolError::InvalidToken { .. }), "{err:?}");
    env.engine.close().await;
    other.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_after_close_the_engine_answers_unavailable() {
    let db = Db::new();
    let env = db.open().await;
    env.engine.close().await;
    let err = env.schedule("a", stc(60)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let env = db.open().await;
    env.schedule("a", stc(60)).await.unwrap();
    env.engine.close().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_the_trace_context_of_runs_and_executions() {
    let db = Db::new();
    let env = db.open().await;
    let run_context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let activity_context = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
    env.protocol
        .schedule_activity(
            activity_core::protocol::ScheduleActivityRequest::new(
                "greet",
                vec![json("Ada")],
                stc(10).task_queue(QUEUE),
            )
            .with_trace_context(activity_context),
        )
        .await
        .unwrap();
    env.protocol
        .start_workflow(
            activity_core::workflow::StartWorkflowRequest::new("w", "flow", "flows", vec![])
                .with_trace_context(run_context),
        )
        .await
        .unwrap();
    let env = db.reopen(env).await;
    // Docs/semantics.md §5.1: an attempt after the restart continues the trace.
    let task = env.poll_now().await.expect("the attempt");
    assert_eq!(task.trace_context.as_deref(), Some(activity_context));
    let workflow_task = env
        .protocol
        .poll_workflow_task(
            activity_core::workflow::PollWorkflowTaskRequest::new("flows", "w").with_wait(secs(0)),
        )
        .await
        .unwrap()
        .expect("the run's first task");
    assert_eq!(workflow_task.trace_context.as_deref(), Some(run_context));
}
