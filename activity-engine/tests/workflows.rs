//! Workflows on the engine (docs/semantics.md §3, §1.5 and §1.7 from the engine's side): the
//! real engine on SQLite with a virtual clock; the test plays the workflow worker
//! and the activity worker through the protocol.

mod common;

use std::{path::PathBuf, sync::Arc, time::Duration};

use activity_core::{
    context::TaskToken,
    failure::{ApplicationFailure, Failure, RetryState},
    options::{ActivityOptions, RetryOptions},
    protocol::{
        ClosedReason, ExecutionRef, ExecutionScope, ExecutionState, ListExecutionsRequest,
        ProtocolError, TaskTarget,
    },
    workflow::{
        Command, EventKind, HistoryEvent, ListWorkflowsRequest, LocalActivityOutcome,
        PollWorkflowTaskRequest, StartWorkflowRequest, WorkflowFailure, WorkflowOutcome,
        WorkflowRef, WorkflowState, WorkflowTask, WorkflowTimeout,
    },
    ActivityFailure,
};
use activity_engine::VirtualClock;
use common::*;

// ---------------------------------------------------------------- helpers

fn stc(s: u64) -> ActivityOptions {
    ActivityOptions::new().start_to_close(secs(s))
}

fn start_request(id: &str) -> StartWorkflowRequest {
    StartWorkflowRequest::new(id, "order", QUEUE, vec![json(id)])
}

async fn start(env: &Env, id: &str) -> WorkflowRef {
    env.protocol
        .start_workflow(start_request(id))
        .await
        .expect("start succeeds")
}

/// Polls for a workflow task and gives it with its whole history (a task for the
/// identity that ran the run's previous task carries only the new events; these
/// tests read whole histories, `only_new_events_go_to_the_worker_of_the_previous_task`
/// the partial ones).
async fn poll_wf(env: &Env, identity: &str, wait: Duration) -> Option<WorkflowTask> {
    let mut task = poll_wf_as_sent(env, identity, wait).await?;
    if task.history.first().is_some_and(|e| e.event_id > 1) {
        let last = task.history.last().unwrap().event_id;
        let mut whole = env
            .protocol
            .workflow_history(WorkflowRef::run(&task.workflow_id, &task.run_id))
            .await
            .unwrap();
        whole.retain(|e| e.event_id <= last);
        task.history = whole;
    }
    Some(task)
}

async fn poll_wf_as_sent(env: &Env, identity: &str, wait: Duration) -> Option<WorkflowTask> {
    env.protocol
        .poll_workflow_task(PollWorkflowTaskRequest::new(QUEUE, identity).with_wait(wait))
        .await
        .expect("workflow poll succeeds")
}

/// Polls until a workflow task arrives (virtual time skips ahead).
async fn next_wf(env: &Env, identity: &str) -> WorkflowTask {
    for _ in 0..1000 {
        if let Some(task) = poll_wf(env, identity, secs(60)).await {
            return task;
        }
    }
    panic!("no workflow task arrived within 1000 polls");
}

async fn complete_wf(env: &Env, task: &WorkflowTask, commands: Vec<Command>) {
    env.protocol
        .complete_workflow_task(task.task_token.clone(), commands)
        .await
        .expect("workflow task completion accepted");
}

async fn history(env: &Env, run: &WorkflowRef) -> Vec<HistoryEvent> {
    env.protocol
        .workflow_history(run.clone())
        .await
        .expect("history")
}

fn names(history: &[HistoryEvent]) -> Vec<&'static str> {
    history.iter().map(|e| e.kind.name()).collect()
}

fn count(history: &[HistoryEvent], pred: impl Fn(&EventKind) -> bool) -> usize {
    history.iter().filter(|e| pred(&e.kind)).count()
}

fn schedule(seq: u32, id: &str, options: ActivityOptions) -> Command {
    Command::ScheduleActivity {
        seq,
        activity_id: id.into(),
        activity_type: "greet".into(),
        input: vec![json(id)],
        options,
        trace_context: None,
    }
}

fn activity_ref(run: &WorkflowRef, id: &str) -> ExecutionRef {
    let mut execution = ExecutionRef::standalone(id);
    execution.workflow_id = Some(run.workflow_id.clone());
    execution.workflow_run_id = run.run_id.clone();
    execution
}

fn activity_failed(history: &[HistoryEvent], seq: u32) -> ActivityFailure {
    history
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ActivityFailed { seq: s, failure } if *s == seq => Some(failure.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ActivityFailed(seq {seq}) in {:#?}", names(history)))
}

fn assert_ids_without_gaps(history: &[HistoryEvent]) {
    for (i, event) in history.iter().enumerate() {
        assert_eq!(event.event_id, i as u64 + 1, "{:?}", names(history));
    }
}

/// Starts `id` and answers its first task with `commands`.
async fn started_with(env: &Env, id: &str, commands: Vec<Command>) -> WorkflowRef {
    let run = start(env, id).await;
    let task = next_wf(env, "w").await;
    complete_wf(env, &task, commands).await;
    run
}

// ---------------------------------------------------------------- runs and tasks

#[tokio::test(start_paused = true)]
async fn a_started_workflow_gets_a_task_whose_history_ends_with_its_start() {
    let env = Env::new().await;
    let run = start(&env, "order-1").await;
    assert_eq!(run.workflow_id, "order-1");
    let run_id = run.run_id.clone().expect("the answer names the run");
    let task = poll_wf(&env, "w1", secs(0)).await.expect("a task");
    assert_eq!(
        (
            task.workflow_id.as_str(),
            task.run_id.as_str(),
            task.workflow_type.as_str()
        ),
        ("order-1", run_id.as_str(), "order")
    );
    assert_eq!(
        names(&task.history),
        [
            "WorkflowStarted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_ids_without_gaps(&task.history);
    assert_eq!(
        task.history[0].kind,
        EventKind::WorkflowStarted {
            workflow_type: "order".into(),
            task_queue: QUEUE.into(),
            input: vec![json("order-1")],
            timeouts: Default::default(),
            original_run_id: None,
            parent: None,
        }
    );
    assert_eq!(
        task.history[2].kind,
        EventKind::WorkflowTaskStarted {
            identity: "w1".into()
        }
    );
    // At most one task per run: nothing more to take.
    assert!(poll_wf(&env, "w2", secs(0)).await.is_none());
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Running);
    assert_eq!(d.run_id, run_id);
    assert_eq!(d.history_length, 3);
    assert_eq!(d.outcome, None);
    assert_eq!(history(&env, &run).await, task.history);
}

#[tokio::test(start_paused = true)]
async fn a_running_workflow_id_is_refused_and_may_be_reused_once_closed() {
    let env = Env::new().await;
    let first = start(&env, "dup").await;
    let err = env
        .protocol
        .start_workflow(start_request("dup"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::AlreadyExists { what } if what.contains("`dup`")),
        "{err:?}"
    );
    let task = next_wf(&env, "w").await;
    assert_eq!(
        count(&task.history, |k| matches!(
            k,
            EventKind::WorkflowStarted { .. }
        )),
        1
    );
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow {
            result: json("first"),
        }],
    )
    .await;
    let second = start(&env, "dup").await;
    assert_ne!(first.run_id, second.run_id);
    // The latest run is the new one; the first is still there by its run id.
    let latest = env
        .protocol
        .describe_workflow(WorkflowRef::latest("dup"))
        .await
        .unwrap();
    assert_eq!(Some(latest.run_id), second.run_id);
    assert_eq!(latest.state, WorkflowState::Running);
    let old = env.protocol.describe_workflow(first.clone()).await.unwrap();
    assert_eq!(old.state, WorkflowState::Completed);
    assert_eq!(old.outcome, Some(WorkflowOutcome::Completed(json("first"))));
    // A run id must belong to the workflow id named with it.
    let err = env
        .protocol
        .describe_workflow(WorkflowRef::run("other", first.run_id.clone().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_activity_runs_for_the_run_and_its_result_comes_back_in_a_new_task() {
    let env = Env::new().await;
    let run = start(&env, "order-2").await;
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![schedule(1, "charge", stc(10))]).await;
    let h = history(&env, &run).await;
    assert_eq!(
        names(&h)[3..],
        ["WorkflowTaskCompleted", "ActivityScheduled"]
    );
    assert_eq!(
        h[4].kind,
        EventKind::ActivityScheduled {
            seq: 1,
            activity_id: "charge".into(),
            activity_type: "greet".into(),
        }
    );
    // No task while the code waits.
    assert!(poll_wf(&env, "w", secs(0)).await.is_none());

    // The activity is dispatched on the run's queue (the default), with the run's ids.
    let activity = env.poll_now().await.expect("the activity task");
    let info = &activity.info;
    assert_eq!(info.activity_id, "charge");
    assert_eq!(info.task_queue, QUEUE);
    assert_eq!(info.workflow_id.as_deref(), Some("order-2"));
    assert_eq!(info.workflow_run_id, run.run_id);
    assert_eq!(info.workflow_type.as_deref(), Some("order"));
    assert_eq!(activity.input, vec![json("charge")]);
    let d = env
        .protocol
        .describe_execution(activity_ref(&run, "charge"))
        .await
        .unwrap();
    assert_eq!(d.state, ExecutionState::Started);
    assert_eq!(d.execution, activity_ref(&run, "charge"));
    // The latest run of the workflow id finds it too.
    let mut by_latest = ExecutionRef::standalone("charge");
    by_latest.workflow_id = Some("order-2".into());
    assert_eq!(
        env.protocol
            .describe_execution(by_latest)
            .await
            .unwrap()
            .state,
        ExecutionState::Started
    );
    // It is not a standalone activity.
    assert!(matches!(
        env.protocol
            .describe_execution(ExecutionRef::standalone("charge"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));

    env.complete(&activity, "charged").await.unwrap();
    let task = next_wf(&env, "w").await;
    assert_eq!(
        names(&task.history)[5..],
        [
            "ActivityCompleted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_eq!(
        task.history[5].kind,
        EventKind::ActivityCompleted {
            seq: 1,
            result: json("charged"),
        }
    );
    assert_ids_without_gaps(&task.history);
    // The activity's own outcome is there too, by its workflow reference.
    let outcome = env
        .protocol
        .wait_outcome(activity_ref(&run, "charge"), secs(1))
        .await
        .unwrap();
    assert!(outcome.is_some());
}

#[tokio::test(start_paused = true)]
async fn an_activity_failure_reaches_the_workflow_with_the_semantics_4_failure() {
    let env = Env::new().await;
    let options = stc(10).retry(
        RetryOptions::new()
            .maximum_attempts(2)
            .initial_interval(secs(1)),
    );
    let run = started_with(&env, "order-3", vec![schedule(7, "ship", options)]).await;
    for attempt in 1..=2 {
        let activity = env.next_task().await;
        assert_eq!(activity.info.attempt, attempt);
        env.protocol
            .fail_activity(
                token(&activity),
                ApplicationFailure::new("NoTruck", "no truck today"),
                None,
            )
            .await
            .unwrap();
    }
    let task = next_wf(&env, "w").await;
    let failure = activity_failed(&task.history, 7);
    assert_eq!(failure.activity_type, "greet");
    assert_eq!(failure.activity_id, "ship");
    assert_eq!(failure.attempts, 2);
    assert_eq!(failure.retry_state, RetryState::MaximumAttemptsReached);
    match &failure.cause {
        Failure::Application(a) => {
            assert_eq!(a.error_type, "NoTruck");
            assert_eq!(a.message, "no truck today");
        }
        other => panic!("expected the application failure, got {other:?}"),
    }
    // Exactly one outcome event, between the tasks.
    assert_eq!(
        count(&task.history, |k| matches!(
            k,
            EventKind::ActivityFailed { .. }
        )),
        1
    );
    let _ = run;
}

#[tokio::test(start_paused = true)]
async fn an_activity_timeout_reaches_the_workflow_as_timed_out() {
    let env = Env::new().await;
    let options = stc(5).retry(RetryOptions::new().maximum_attempts(1));
    started_with(&env, "order-t", vec![schedule(1, "slow", options)]).await;
    let _abandoned = env.next_task().await;
    let task = next_wf(&env, "w").await;
    let failure = activity_failed(&task.history, 1);
    assert!(
        matches!(&failure.cause, Failure::Timeout(t) if t.kind == activity_core::failure::TimeoutKind::StartToClose),
        "{failure:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_activity_options_fail_that_activity_for_the_workflow_not_the_task() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "order-4",
        vec![
            schedule(1, "no-timeout", ActivityOptions::new()),
            schedule(2, "ok", stc(10)),
            schedule(3, "ok", stc(10)),
        ],
    )
    .await;
    let task = next_wf(&env, "w").await;
    // Command events first, in order, then the refusals, then the new task.
    assert_eq!(
        names(&task.history)[3..],
        [
            "WorkflowTaskCompleted",
            "ActivityScheduled",
            "ActivityScheduled",
            "ActivityScheduled",
            "ActivityFailed",
            "ActivityFailed",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    let invalid = activity_failed(&task.history, 1);
    match &invalid.cause {
        Failure::Application(a) => {
            assert_eq!(a.error_type, "InvalidOptions");
            assert!(a.non_retryable);
            assert!(a.message.contains("start_to_close"), "{}", a.message);
        }
        other => panic!("expected an application failure, got {other:?}"),
    }
    let reused = activity_failed(&task.history, 3);
    match &reused.cause {
        Failure::Application(a) => {
            assert_eq!(a.error_type, "ActivityIdReused");
            assert!(a.message.contains("`ok`"), "{}", a.message);
        }
        other => panic!("expected an application failure, got {other:?}"),
    }
    // Only the valid activity was scheduled.
    let activity = env.poll_now().await.expect("seq 2");
    assert_eq!(activity.info.activity_id, "ok");
    assert!(env.poll_now().await.is_none());
    assert_eq!(
        env.protocol.describe_workflow(run).await.unwrap().state,
        WorkflowState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn timers_fire_on_the_virtual_clock_and_cancelled_ones_never_do() {
    let env = Env::new().await;
    let t0 = env.now();
    let run = started_with(
        &env,
        "sleeper",
        vec![
            Command::StartTimer {
                seq: 1,
                duration: Duration::from_millis(3_600_000),
            },
            Command::StartTimer {
                seq: 2,
                duration: Duration::from_secs(7200),
            },
        ],
    )
    .await;
    let task = next_wf(&env, "w").await;
    assert_eq!(env.secs_since(t0), 3600.0);
    assert_eq!(
        names(&task.history)[3..],
        [
            "WorkflowTaskCompleted",
            "TimerStarted",
            "TimerStarted",
            "TimerFired",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_eq!(task.history[6].kind, EventKind::TimerFired { seq: 1 });
    complete_wf(&env, &task, vec![Command::CancelTimer { seq: 2 }]).await;
    // Three hours later: timer 2 never fired, no task came.
    assert!(poll_wf(&env, "w", secs(3 * 3600)).await.is_none());
    let h = history(&env, &run).await;
    assert_eq!(
        names(&h)[h.len() - 2..],
        ["WorkflowTaskCompleted", "TimerCanceled"]
    );
    assert_eq!(count(&h, |k| matches!(k, EventKind::TimerFired { .. })), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timer_that_fires_while_a_task_runs_and_is_cancelled_by_it_is_not_delivered() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "racer",
        vec![
            Command::StartTimer {
                seq: 1,
                duration: secs(5),
            },
            schedule(1, "quick", stc(60)),
        ],
    )
    .await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "done").await.unwrap();
    let task = next_wf(&env, "w").await;
    // The timer fires while the task is started: buffered, not in this history.
    tokio::time::sleep(secs(6)).await;
    assert_eq!(history(&env, &run).await, task.history);
    complete_wf(&env, &task, vec![Command::CancelTimer { seq: 1 }]).await;
    let h = history(&env, &run).await;
    assert_eq!(count(&h, |k| matches!(k, EventKind::TimerFired { .. })), 0);
    assert_eq!(names(&h).last(), Some(&"TimerCanceled"));
    assert!(poll_wf(&env, "w", secs(60)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn events_that_arrive_during_a_started_task_follow_its_answer() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "busy",
        vec![schedule(1, "a", stc(60)), schedule(2, "b", stc(60))],
    )
    .await;
    let a = env.poll_now().await.unwrap();
    let b = env.poll_now().await.unwrap();
    env.complete(&a, "A").await.unwrap();
    let task = next_wf(&env, "w").await;
    assert_eq!(names(&task.history).last(), Some(&"WorkflowTaskStarted"));
    // `b` completes while the task is in the worker's hands.
    env.complete(&b, "B").await.unwrap();
    assert_eq!(history(&env, &run).await, task.history);
    complete_wf(
        &env,
        &task,
        vec![Command::RecordLocalActivity {
            seq: 1,
            activity_type: "local".into(),
            outcome: LocalActivityOutcome::Completed(json(1)),
        }],
    )
    .await;
    let next = next_wf(&env, "w").await;
    let tail = &names(&next.history)[task.history.len()..];
    assert_eq!(
        tail,
        [
            "WorkflowTaskCompleted",
            "LocalActivityRecorded",
            "ActivityCompleted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_ids_without_gaps(&next.history);
}

// ---------------------------------------------------------------- task timeouts, failures, tokens

#[tokio::test(start_paused = true)]
async fn a_workflow_task_that_times_out_goes_to_another_worker() {
    let env = Env::new().await;
    let run = start(&env, "lost").await;
    let t0 = env.now();
    let lost = poll_wf(&env, "w1", secs(0)).await.unwrap();
    // w1 never answers; w2 gets the task again once the 10 s timeout passes.
    let task = poll_wf(&env, "w2", secs(60)).await.expect("rescheduled");
    assert_eq!(env.secs_since(t0), 10.0);
    assert_eq!(
        names(&task.history),
        [
            "WorkflowStarted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted",
            "WorkflowTaskTimedOut",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_eq!(
        task.history[5].kind,
        EventKind::WorkflowTaskStarted {
            identity: "w2".into()
        }
    );
    // The late answer of w1 is refused and changes nothing.
    let err = env
        .protocol
        .complete_workflow_task(
            lost.task_token.clone(),
            vec![Command::CompleteWorkflow { result: json(1) }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::AttemptSuperseded,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(history(&env, &run).await, task.history);
    complete_wf(&env, &task, vec![]).await;
    assert_eq!(
        env.protocol.describe_workflow(run).await.unwrap().state,
        WorkflowState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn the_workflow_task_timeout_is_configurable() {
    let env = Env::with_config(
        activity_test_support::engine_config().with_workflow_task_timeout(secs(3)),
    )
    .await;
    start(&env, "short").await;
    let t0 = env.now();
    let _lost = poll_wf(&env, "w1", secs(0)).await.unwrap();
    poll_wf(&env, "w2", secs(60)).await.expect("rescheduled");
    assert_eq!(env.secs_since(t0), 3.0);
}

#[tokio::test(start_paused = true)]
async fn stale_and_foreign_tokens_are_refused_without_effect() {
    let env = Env::new().await;
    let run = start(&env, "tokens").await;
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![schedule(1, "x", stc(60))]).await;
    let before = history(&env, &run).await;
    // A second answer with the same token.
    let err = env
        .protocol
        .complete_workflow_task(task.task_token.clone(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::AlreadyClosed { .. }),
        "{err:?}"
    );
    let err = env
        .protocol
        .fail_workflow_task(task.task_token.clone(), "late".into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::AlreadyClosed { .. }),
        "{err:?}"
    );
    // An activity token is no workflow token, and the reverse.
    let activity = env.poll_now().await.unwrap();
    let err = env
        .protocol
        .complete_workflow_task(activity.task_token.clone(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidToken { reason } if reason.contains("activity task")),
        "{err:?}"
    );
    let err = env
        .protocol
        .complete_activity(TaskTarget::Token(task.task_token.clone()), json("no"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidToken { reason } if reason.contains("workflow task")),
        "{err:?}"
    );
    // Forged or altered.
    let mut bytes = task.task_token.as_bytes().to_vec();
    bytes[5] ^= 1;
    let err = env
        .protocol
        .complete_workflow_task(TaskToken::from_bytes(bytes), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::InvalidToken { .. }), "{err:?}");
    assert_eq!(history(&env, &run).await, before);
    assert_eq!(
        env.describe_execution_state(&run, "x").await,
        ExecutionState::Started
    );
    // Once the run is closed, even the current task's token is refused.
    env.complete(&activity, "X").await.unwrap();
    let task = next_wf(&env, "w").await;
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow { result: json(0) }],
    )
    .await;
    let err = env
        .protocol
        .complete_workflow_task(task.task_token.clone(), vec![])
        .await
        .unwrap_err();
    assert_run_completed_refusal(&err);
}

#[tokio::test(start_paused = true)]
async fn a_failed_workflow_task_comes_back_after_a_growing_backoff_and_the_run_goes_on() {
    let env = Env::new().await;
    let run = start(&env, "broken").await;
    let mut task = next_wf(&env, "w").await;
    for (failure, backoff) in [(1, 1.0), (2, 2.0), (3, 4.0)] {
        env.protocol
            .fail_workflow_task(
                task.task_token.clone(),
                format!("nondeterminism #{failure}"),
            )
            .await
            .unwrap();
        let h = history(&env, &run).await;
        assert_eq!(
            h.last().map(|e| &e.kind),
            Some(&EventKind::WorkflowTaskFailed {
                message: format!("nondeterminism #{failure}")
            })
        );
        let failed_at = env.now();
        // Not before the backoff ends.
        assert!(poll_wf(&env, "w", Duration::from_millis(900))
            .await
            .is_none());
        task = next_wf(&env, "w").await;
        assert_eq!(
            env.secs_since(failed_at),
            backoff,
            "after failure {failure}"
        );
        assert_eq!(
            names(&task.history)[task.history.len() - 3..],
            [
                "WorkflowTaskFailed",
                "WorkflowTaskScheduled",
                "WorkflowTaskStarted"
            ]
        );
        assert_eq!(
            env.protocol
                .describe_workflow(run.clone())
                .await
                .unwrap()
                .state,
            WorkflowState::Running,
            "the run is not failed"
        );
    }
    // Fixed code answers; a later failure starts the backoff from 1 s again.
    complete_wf(
        &env,
        &task,
        vec![Command::StartTimer {
            seq: 1,
            duration: secs(1),
        }],
    )
    .await;
    let task = next_wf(&env, "w").await;
    env.protocol
        .fail_workflow_task(task.task_token.clone(), "again".into())
        .await
        .unwrap();
    let failed_at = env.now();
    next_wf(&env, "w").await;
    assert_eq!(env.secs_since(failed_at), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_resolution_during_a_backoff_is_recorded_and_waits_for_the_backoff() {
    let env = Env::new().await;
    let run = started_with(&env, "patient", vec![schedule(1, "a", stc(60))]).await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "A").await.unwrap();
    let task = next_wf(&env, "w").await;
    env.protocol
        .fail_workflow_task(task.task_token.clone(), "bug".into())
        .await
        .unwrap();
    let failed_at = env.now();
    env.protocol
        .request_cancel_workflow(run.clone())
        .await
        .unwrap();
    let task = next_wf(&env, "w").await;
    assert_eq!(env.secs_since(failed_at), 1.0);
    assert_eq!(
        names(&task.history)[task.history.len() - 4..],
        [
            "WorkflowTaskFailed",
            "WorkflowCancelRequested",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
}

// ---------------------------------------------------------------- closing and cancelling

#[tokio::test(start_paused = true)]
async fn completing_the_workflow_closes_the_run_and_what_it_left_running() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "closing",
        vec![
            schedule(1, "running", stc(600)),
            schedule(2, "queued", stc(600)),
            Command::StartTimer {
                seq: 1,
                duration: secs(5),
            },
            Command::StartTimer {
                seq: 2,
                duration: secs(3600),
            },
        ],
    )
    .await;
    let running = env.poll_now().await.unwrap();
    assert_eq!(running.info.activity_id, "running");
    // Someone waits for the outcome before the run closes.
    let waiter = {
        let protocol = env.protocol.clone();
        let run = run.clone();
        tokio::spawn(async move { protocol.wait_workflow_outcome(run, secs(3600)).await })
    };
    let task = next_wf(&env, "w").await; // timer 1 fired
    let closed_at = env.now();
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow {
            result: json("shipped"),
        }],
    )
    .await;
    let outcome = waiter.await.unwrap().unwrap();
    assert_eq!(outcome, Some(WorkflowOutcome::Completed(json("shipped"))));
    assert_eq!(env.now(), closed_at, "the waiter was woken by the close");
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Completed);
    assert_eq!(d.close_time, Some(closed_at));
    assert_eq!(d.outcome, Some(WorkflowOutcome::Completed(json("shipped"))));
    let h = history(&env, &run).await;
    assert_eq!(d.history_length, h.len() as u64);
    assert_eq!(names(&h).last(), Some(&"WorkflowCompleted"));

    // Both activities are closed without a cancel request (docs/semantics.md
    // §1.5): the started one's heartbeat says its run closed, the queued one is
    // never dispatched.
    let err = env
        .protocol
        .record_heartbeat(token(&running), None)
        .await
        .unwrap_err();
    assert_run_completed_refusal(&err);
    assert_eq!(
        err.cancel_reason(),
        Some(activity_core::CancelReason::WorkflowClosed)
    );
    assert_eq!(
        env.describe_execution_state(&run, "queued").await,
        ExecutionState::Canceled
    );
    assert!(env.poll_now().await.is_none());
    // The run never changes again: a late outcome (refused), timer 2, cancel requests.
    assert!(env.complete(&running, "late").await.is_err());
    tokio::time::sleep(secs(7200)).await;
    assert_eq!(
        env.protocol
            .request_cancel_workflow(run.clone())
            .await
            .unwrap(),
        WorkflowState::Completed
    );
    assert_eq!(history(&env, &run).await, h);
    assert!(poll_wf(&env, "w", secs(0)).await.is_none());
    assert_eq!(
        env.protocol
            .wait_workflow_outcome(WorkflowRef::latest("closing"), secs(0))
            .await
            .unwrap(),
        Some(WorkflowOutcome::Completed(json("shipped")))
    );
}

#[tokio::test(start_paused = true)]
async fn runs_are_listed_newest_first_filtered_by_state_type_and_id_limited_and_paged() {
    let env = Env::new().await;
    let ids = |runs: &[activity_core::workflow::WorkflowSummary]| -> Vec<String> {
        runs.iter().map(|r| r.workflow_id.clone()).collect()
    };
    let list = |request: ListWorkflowsRequest| {
        let protocol = env.protocol.clone();
        async move { protocol.list_workflows(request).await.expect("list") }
    };
    assert!(list(ListWorkflowsRequest::new()).await.is_empty());

    // "done" (completed), then "broken" (failed), then "open" (running, type
    // "invoice"), each started a second after the previous one.
    let done = start(&env, "done").await;
    let task = next_wf(&env, "w").await;
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow { result: json(1) }],
    )
    .await;
    tokio::time::sleep(secs(1)).await;
    start(&env, "broken").await;
    let task = next_wf(&env, "w").await;
    let failure = WorkflowFailure::Application(ApplicationFailure::new("Bad", "no"));
    complete_wf(&env, &task, vec![Command::FailWorkflow { failure }]).await;
    tokio::time::sleep(secs(1)).await;
    let open = env
        .protocol
        .start_workflow(StartWorkflowRequest::new("open", "invoice", QUEUE, vec![]))
        .await
        .unwrap();

    let all = list(ListWorkflowsRequest::new()).await;
    assert_eq!(ids(&all), ["open", "broken", "done"]);
    assert!(all.windows(2).all(|w| w[0].start_time > w[1].start_time));
    let newest = &all[0];
    assert_eq!(Some(&newest.run_id), open.run_id.as_ref());
    assert_eq!(
        (
            newest.workflow_type.as_str(),
            newest.task_queue.as_str(),
            newest.state,
            newest.close_time
        ),
        ("invoice", QUEUE, WorkflowState::Running, None)
    );
    let d = env.protocol.describe_workflow(done).await.unwrap();
    assert_eq!(all[2].start_time, d.start_time);
    assert_eq!(all[2].close_time, d.close_time);
    assert!(all[2].close_time.is_some());

    let by_state = |state| list(ListWorkflowsRequest::new().with_state(state));
    assert_eq!(ids(&by_state(WorkflowState::Completed).await), ["done"]);
    assert_eq!(ids(&by_state(WorkflowState::Failed).await), ["broken"]);
    assert_eq!(ids(&by_state(WorkflowState::Running).await), ["open"]);
    assert!(by_state(WorkflowState::Canceled).await.is_empty());
    let orders = ListWorkflowsRequest::new().with_workflow_type("order");
    assert_eq!(ids(&list(orders.clone()).await), ["broken", "done"]);
    assert_eq!(
        ids(&list(orders.with_state(WorkflowState::Completed)).await),
        ["done"]
    );
    assert!(list(ListWorkflowsRequest::new().with_workflow_type("nope"))
        .await
        .is_empty());
    assert_eq!(
        ids(&list(ListWorkflowsRequest::new().with_limit(2)).await),
        ["open", "broken"]
    );
    assert!(list(ListWorkflowsRequest::new().with_limit(0))
        .await
        .is_empty());
    // A limit above the bound is bounded, not refused.
    assert_eq!(
        list(ListWorkflowsRequest::new().with_limit(u32::MAX))
            .await
            .len(),
        3
    );
    // Pages: the second page of two starts after the first.
    assert_eq!(
        ids(&list(ListWorkflowsRequest::new().with_limit(2).with_offset(2)).await),
        ["done"]
    );
    assert!(list(ListWorkflowsRequest::new().with_offset(3))
        .await
        .is_empty());
    // By the start of the workflow id (a prefix, not a pattern: `%` and `_`
    // are plain characters).
    let by_id = |prefix: &str| list(ListWorkflowsRequest::new().with_workflow_id_prefix(prefix));
    assert_eq!(ids(&by_id("do").await), ["done"]);
    assert_eq!(ids(&by_id("open").await), ["open"]);
    assert!(by_id("one").await.is_empty());
    assert!(by_id("%").await.is_empty());
    assert_eq!(
        ids(&list(
            ListWorkflowsRequest::new()
                .with_workflow_id_prefix("b")
                .with_state(WorkflowState::Failed)
        )
        .await),
        ["broken"]
    );
}

#[tokio::test(start_paused = true)]
async fn failing_the_workflow_records_the_failure_as_its_outcome() {
    let env = Env::new().await;
    let run = start(&env, "doomed").await;
    let task = next_wf(&env, "w").await;
    let failure = WorkflowFailure::Application(ApplicationFailure::new("OutOfStock", "none left"));
    complete_wf(
        &env,
        &task,
        vec![Command::FailWorkflow {
            failure: failure.clone(),
        }],
    )
    .await;
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Failed);
    assert_eq!(d.outcome, Some(WorkflowOutcome::Failed(failure)));
}

#[tokio::test(start_paused = true)]
async fn commands_after_the_closing_one_are_refused_and_nothing_is_recorded() {
    let env = Env::new().await;
    let run = start(&env, "sloppy").await;
    let task = next_wf(&env, "w").await;
    let err = env
        .protocol
        .complete_workflow_task(
            task.task_token.clone(),
            vec![
                Command::CompleteWorkflow { result: json(1) },
                schedule(1, "after", stc(10)),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "commands"),
        "{err:?}"
    );
    assert_eq!(history(&env, &run).await, task.history);
    // The task is still the worker's to answer.
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow { result: json(1) }],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_workflow_records_it_cancels_its_activities_and_schedules_a_task() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "cancel-me",
        vec![
            schedule(1, "running", stc(600)),
            schedule(2, "queued", stc(600)),
        ],
    )
    .await;
    let running = env.poll_now().await.unwrap();
    let state = env
        .protocol
        .request_cancel_workflow(WorkflowRef::latest("cancel-me"))
        .await
        .unwrap();
    assert_eq!(state, WorkflowState::Running);
    // Asking twice records it once.
    env.protocol
        .request_cancel_workflow(run.clone())
        .await
        .unwrap();
    let task = next_wf(&env, "w").await;
    let tail = &names(&task.history)[6..];
    assert_eq!(
        tail,
        [
            "WorkflowCancelRequested",
            "WorkflowTaskScheduled",
            "ActivityFailed",
            "WorkflowTaskStarted"
        ]
    );
    let queued = activity_failed(&task.history, 2);
    assert_eq!(queued.retry_state, RetryState::CancelRequested);
    assert!(matches!(queued.cause, Failure::Canceled(_)), "{queued:?}");
    assert!(
        env.protocol
            .record_heartbeat(token(&running), None)
            .await
            .unwrap()
            .cancel_requested
    );
    assert!(
        env.protocol
            .describe_workflow(run.clone())
            .await
            .unwrap()
            .cancel_requested
    );
    // The running activity acknowledges; the code then cancels the run.
    env.protocol
        .report_canceled(token(&running), None)
        .await
        .unwrap();
    complete_wf(&env, &task, vec![]).await;
    let task = next_wf(&env, "w").await;
    let acknowledged = activity_failed(&task.history, 1);
    assert!(matches!(acknowledged.cause, Failure::Canceled(_)));
    complete_wf(&env, &task, vec![Command::CancelWorkflow]).await;
    assert_eq!(
        env.protocol
            .request_cancel_workflow(run.clone())
            .await
            .unwrap(),
        WorkflowState::Canceled
    );
    assert_eq!(
        env.protocol
            .wait_workflow_outcome(run.clone(), secs(1))
            .await
            .unwrap(),
        Some(WorkflowOutcome::Canceled)
    );
    let h = history(&env, &run).await;
    assert_eq!(
        count(&h, |k| matches!(k, EventKind::WorkflowCancelRequested)),
        1
    );
    let err = env
        .protocol
        .request_cancel_workflow(WorkflowRef::latest("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn terminating_a_run_closes_it_at_once_with_who_and_why_and_no_code_runs() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "doomed",
        vec![
            schedule(1, "running", stc(600)),
            schedule(2, "queued", stc(600)),
            Command::StartTimer {
                seq: 1,
                duration: secs(60),
            },
        ],
    )
    .await;
    let running = env.poll_now().await.unwrap();
    env.complete(&running, "done").await.unwrap();
    // A task is in a worker's hands when the run is terminated.
    let in_flight = next_wf(&env, "w").await;
    let waiter = {
        let protocol = env.protocol.clone();
        let run = run.clone();
        tokio::spawn(async move { protocol.wait_workflow_outcome(run, secs(3600)).await })
    };
    let state = env
        .protocol
        .terminate_workflow(
            WorkflowRef::latest("doomed"),
            "bad deploy".into(),
            "ops@host".into(),
        )
        .await
        .unwrap();
    assert_eq!(state, WorkflowState::Terminated);
    let reason = || "bad deploy".to_owned();
    assert_eq!(
        waiter.await.unwrap().unwrap(),
        Some(WorkflowOutcome::terminated(reason()))
    );
    let h = history(&env, &run).await;
    assert_eq!(
        h.last().map(|e| &e.kind),
        Some(&EventKind::WorkflowTerminated {
            reason: reason(),
            identity: "ops@host".into(),
        })
    );
    assert_ids_without_gaps(&h);
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    assert_eq!(d.outcome, Some(WorkflowOutcome::terminated(reason())));
    assert!(d.close_time.is_some());
    // No workflow code runs any more: the started task's answer is refused.
    let err = env
        .protocol
        .complete_workflow_task(
            in_flight.task_token.clone(),
            vec![Command::CompleteWorkflow { result: json(1) }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::AlreadyClosed { .. }),
        "{err:?}"
    );
    // The queued activity is canceled and never dispatched; the timer never fires.
    assert_eq!(
        env.describe_execution_state(&run, "queued").await,
        ExecutionState::Canceled
    );
    assert!(env.poll_now().await.is_none());
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(history(&env, &run).await, h);
    assert!(poll_wf(&env, "w", secs(0)).await.is_none());
    // Terminating a closed run leaves it as it is, and says how it closed.
    let err = env
        .protocol
        .terminate_workflow(run.clone(), "again".into(), "ops@host".into())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::AlreadyClosed {
            what: format!("workflow `doomed` run `{}`", run.run_id.clone().unwrap()),
            reason: ClosedReason::WorkflowClosed(WorkflowState::Terminated),
        }
    );
    assert_eq!(history(&env, &run).await, h);
    let err = env
        .protocol
        .terminate_workflow(WorkflowRef::latest("nobody"), "x".into(), "y".into())
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
    // The id may be reused at once.
    let again = start(&env, "doomed").await;
    assert_ne!(again.run_id, run.run_id);
}

#[tokio::test(start_paused = true)]
async fn terminating_a_run_tells_its_started_activity_to_stop() {
    let env = Env::new().await;
    let run = started_with(&env, "stop-it", vec![schedule(1, "long", stc(600))]).await;
    let long = env.poll_now().await.unwrap();
    env.protocol
        .terminate_workflow(run.clone(), "stuck".into(), "ops@host".into())
        .await
        .unwrap();
    // Its next heartbeat tells the attempt to stop, and its late result
    // changes nothing in the closed run.
    let told = match env.protocol.record_heartbeat(token(&long), None).await {
        Ok(answer) => answer.cancel_requested,
        Err(err) => err.cancel_reason().is_some(),
    };
    assert!(told, "the started attempt is told to stop");
    let h = history(&env, &run).await;
    let _ = env.complete(&long, "late").await;
    assert_eq!(history(&env, &run).await, h);
}

#[tokio::test(start_paused = true)]
async fn describe_shows_the_failing_tasks_count_and_latest_message() {
    let env = Env::new().await;
    let run = start(&env, "failing").await;
    for attempt in 1..=2 {
        let task = next_wf(&env, "w").await;
        env.protocol
            .fail_workflow_task(task.task_token.clone(), format!("broken {attempt}"))
            .await
            .unwrap();
    }
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.task_failures, 2);
    assert_eq!(d.last_task_failure.as_deref(), Some("broken 2"));
    // A completed task clears them.
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![]).await;
    let d = env.protocol.describe_workflow(run).await.unwrap();
    assert_eq!((d.task_failures, d.last_task_failure), (0, None));
}

#[tokio::test(start_paused = true)]
async fn a_workflow_cancels_one_activity_by_its_seq() {
    let env = Env::new().await;
    let run = started_with(
        &env,
        "selective",
        vec![schedule(1, "keep", stc(600)), schedule(2, "drop", stc(600))],
    )
    .await;
    let keep = env.poll_now().await.unwrap();
    env.complete(&keep, "kept").await.unwrap();
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![Command::RequestCancelActivity { seq: 2 }]).await;
    let task = next_wf(&env, "w").await;
    let tail = &names(&task.history)[task.history.len() - 5..];
    assert_eq!(
        tail,
        [
            "WorkflowTaskCompleted",
            "ActivityCancelRequested",
            "ActivityFailed",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert!(matches!(
        activity_failed(&task.history, 2).cause,
        Failure::Canceled(_)
    ));
    assert_eq!(
        env.describe_execution_state(&run, "drop").await,
        ExecutionState::Canceled
    );
    assert!(env.poll_now().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_for_a_workflow_outcome_ends_empty_while_it_runs() {
    let env = Env::new().await;
    let run = start(&env, "slowpoke").await;
    let t0 = env.now();
    assert_eq!(
        env.protocol
            .wait_workflow_outcome(run, secs(30))
            .await
            .unwrap(),
        None
    );
    assert_eq!(env.secs_since(t0), 30.0);
    let err = env
        .protocol
        .wait_workflow_outcome(WorkflowRef::latest("nobody"), secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
}

// ---------------------------------------------------------------- limits and bad input

#[tokio::test(start_paused = true)]
async fn payload_limits_apply_to_workflow_input_and_command_payloads() {
    let env =
        Env::with_config(activity_test_support::engine_config().with_max_payload_size(64)).await;
    let big = json("x".repeat(100));
    let err = env
        .protocol
        .start_workflow(StartWorkflowRequest::new(
            "big",
            "order",
            QUEUE,
            vec![big.clone()],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::PayloadTooLarge { what, .. } if what.contains("workflow `order`")),
        "{err:?}"
    );
    assert!(matches!(
        env.protocol
            .describe_workflow(WorkflowRef::latest("big"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));
    let run = start(&env, "small").await;
    let task = next_wf(&env, "w").await;
    let mut command = schedule(4, "a", stc(10));
    if let Command::ScheduleActivity { input, .. } = &mut command {
        *input = vec![big.clone()];
    }
    for (command, named) in [
        (command, "(seq 4)"),
        (
            Command::CompleteWorkflow {
                result: big.clone(),
            },
            "workflow result",
        ),
        (
            Command::RecordLocalActivity {
                seq: 1,
                activity_type: "local".into(),
                outcome: LocalActivityOutcome::Completed(big.clone()),
            },
            "local activity `local`",
        ),
    ] {
        let err = env
            .protocol
            .complete_workflow_task(task.task_token.clone(), vec![command])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProtocolError::PayloadTooLarge { what, .. } if what.contains(named)),
            "{err:?}"
        );
    }
    assert_eq!(history(&env, &run).await, task.history);
    let err = env
        .protocol
        .start_workflow(StartWorkflowRequest::new("", "order", QUEUE, vec![]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "workflow_id"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- restarts

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

#[tokio::test(start_paused = true)]
async fn a_run_resumes_after_a_restart_with_its_task_timer_and_activities() {
    let db = Db::new();
    let env = db.open().await;
    let run = start(&env, "durable").await;
    let task = next_wf(&env, "w1").await;
    complete_wf(
        &env,
        &task,
        vec![
            schedule(1, "long", stc(600)),
            schedule(
                2,
                "doomed",
                stc(5).retry(RetryOptions::new().maximum_attempts(1)),
            ),
            schedule(3, "quick", stc(600)),
            Command::StartTimer {
                seq: 1,
                duration: secs(3600),
            },
        ],
    )
    .await;
    let long = env.poll_now().await.unwrap();
    let _doomed = env.poll_now().await.unwrap();
    let quick = env.poll_now().await.unwrap();
    env.complete(&quick, "Q").await.unwrap();
    // A started task, a pending timer, two running activities: the engine stops.
    let started = next_wf(&env, "w1").await;
    let before = history(&env, &run).await;
    assert_eq!(before, started.history);
    let t0 = env.now();

    let env = db.reopen(env).await;
    assert_eq!(history(&env, &run).await, before, "history intact");
    // Tokens survive: the long activity completes while the task is started.
    env.complete(&long, "L").await.unwrap();
    assert_eq!(history(&env, &run).await, before);
    // The lost task times out and goes to another worker, with what happened meanwhile.
    let task = next_wf(&env, "w2").await;
    assert_eq!(env.secs_since(t0), 10.0);
    assert_eq!(task.history[..before.len()], before[..]);
    assert_eq!(
        names(&task.history)[before.len()..],
        [
            "WorkflowTaskTimedOut",
            "ActivityCompleted",
            "ActivityFailed",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_ids_without_gaps(&task.history);
    // The superseded task's answer is refused, after a restart too.
    let env = db.reopen(env).await;
    assert!(matches!(
        env.protocol
            .complete_workflow_task(started.task_token.clone(), vec![])
            .await,
        Err(ProtocolError::AlreadyClosed { .. })
    ));
    complete_wf(&env, &task, vec![]).await;
    let env = db.reopen(env).await;
    // The timer fires at its time, across the restarts.
    let task = next_wf(&env, "w2").await;
    assert_eq!(env.secs_since(t0), 3600.0);
    assert_eq!(names(&task.history)[task.history.len() - 3], "TimerFired");
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow { result: json("ok") }],
    )
    .await;
    let env = db.reopen(env).await;
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.outcome, Some(WorkflowOutcome::Completed(json("ok"))));
    let h = history(&env, &run).await;
    assert_ids_without_gaps(&h);
    for seq in 1..=3 {
        let outcomes = count(
            &h,
            |k| matches!(k, EventKind::ActivityCompleted { seq: s, .. } | EventKind::ActivityFailed { seq: s, .. } if *s == seq),
        );
        assert_eq!(outcomes, 1, "seq {seq}: {:?}", names(&h));
    }
    // A second completion of a recorded activity is refused and appends nothing.
    assert!(env.complete(&long, "again").await.is_err());
    assert_eq!(history(&env, &run).await, h);
}

#[tokio::test(start_paused = true)]
async fn a_failed_tasks_backoff_and_a_cancel_request_survive_a_restart() {
    let db = Db::new();
    let env = db.open().await;
    let run = started_with(&env, "restarted", vec![schedule(1, "a", stc(600))]).await;
    let activity = env.poll_now().await.unwrap();
    let task = {
        env.complete(&activity, "A").await.unwrap();
        next_wf(&env, "w").await
    };
    env.protocol
        .fail_workflow_task(task.task_token.clone(), "bug".into())
        .await
        .unwrap();
    let failed_at = env.now();
    let env = db.reopen(env).await;
    let task = next_wf(&env, "w").await;
    assert_eq!(env.secs_since(failed_at), 1.0);
    complete_wf(&env, &task, vec![schedule(2, "b", stc(600))]).await;
    let b = env.poll_now().await.unwrap();
    env.protocol
        .request_cancel_workflow(run.clone())
        .await
        .unwrap();
    let env = db.reopen(env).await;
    let beat = env
        .protocol
        .record_heartbeat(token(&b), None)
        .await
        .unwrap();
    assert!(beat.cancel_requested);
    let task = next_wf(&env, "w").await;
    assert_eq!(
        count(&task.history, |k| matches!(
            k,
            EventKind::WorkflowCancelRequested
        )),
        1
    );
    assert_eq!(
        count(&task.history, |k| matches!(
            k,
            EventKind::ActivityCompleted { .. }
        )),
        1
    );
    assert_ids_without_gaps(&task.history);
}

// ---------------------------------------------------------------- helpers on Env

trait EnvExt {
    async fn describe_execution_state(&self, run: &WorkflowRef, id: &str) -> ExecutionState;
}

impl EnvExt for Env {
    async fn describe_execution_state(&self, run: &WorkflowRef, id: &str) -> ExecutionState {
        self.protocol
            .describe_execution(activity_ref(run, id))
            .await
            .expect("describe succeeds")
            .state
    }
}

#[tokio::test(start_paused = true)]
async fn only_new_events_go_to_the_worker_of_the_previous_task() {
    let env = Env::new().await;
    let run = start(&env, "sticky").await;
    let first = poll_wf_as_sent(&env, "w1", secs(60)).await.unwrap();
    assert_eq!(
        first.history.first().unwrap().event_id,
        1,
        "the first task carries everything"
    );
    complete_wf(&env, &first, vec![schedule(1, "a", stc(10))]).await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "done").await.unwrap();

    // The same worker again: only what followed its task's WorkflowTaskStarted (3).
    let second = poll_wf_as_sent(&env, "w1", secs(60)).await.unwrap();
    assert_eq!(second.history.first().unwrap().event_id, 4);
    assert_eq!(
        names(&second.history),
        [
            "WorkflowTaskCompleted",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    assert_eq!(second.history, history(&env, &run).await[3..]);
    complete_wf(&env, &second, vec![schedule(2, "b", stc(10))]).await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "done").await.unwrap();

    // Another worker gets the whole history, and so does the first one after it.
    let third = poll_wf_as_sent(&env, "w2", secs(60)).await.unwrap();
    assert_eq!(third.history, history(&env, &run).await);
    complete_wf(&env, &third, vec![schedule(3, "c", stc(10))]).await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "done").await.unwrap();
    let fourth = poll_wf_as_sent(&env, "w1", secs(60)).await.unwrap();
    assert_eq!(fourth.history, history(&env, &run).await);
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_the_next_task_carries_the_whole_history_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.sqlite");
    let clock = Arc::new(VirtualClock::new());
    let env = Env::file(&path, clock.clone()).await;
    let run = start(&env, "sticky-restart").await;
    let first = poll_wf_as_sent(&env, "w1", secs(60)).await.unwrap();
    complete_wf(&env, &first, vec![schedule(1, "a", stc(10))]).await;
    let activity = env.poll_now().await.unwrap();
    env.complete(&activity, "done").await.unwrap();
    env.engine.close().await;
    drop(env);

    let env = Env::file(&path, clock).await;
    let second = poll_wf_as_sent(&env, "w1", secs(60)).await.unwrap();
    assert_eq!(second.history, history(&env, &run).await);
}

#[tokio::test(start_paused = true)]
async fn activity_executions_are_listed_newest_first_standalone_and_of_runs_filtered_and_paged() {
    let env = Env::new().await;
    env.schedule("alone", stc(10)).await.unwrap();
    let run = started_with(
        &env,
        "order-1",
        vec![
            schedule(1, "charge", stc(10)),
            schedule(2, "ship", stc(10).task_queue("shipping")),
        ],
    )
    .await;
    let task = env.poll_now().await.expect("an attempt on the main queue");
    assert_eq!(task.info.activity_id, "alone");
    env.complete(&task, "done").await.unwrap();

    let list = |request: ListExecutionsRequest| {
        let protocol = env.protocol.clone();
        async move {
            protocol
                .list_activity_executions(request)
                .await
                .expect("list")
                .into_iter()
                .map(|d| (d.execution.activity_id, d.state))
                .collect::<Vec<_>>()
        }
    };
    let all = list(ListExecutionsRequest::new()).await;
    assert_eq!(
        all,
        [
            ("ship".to_owned(), ExecutionState::Scheduled),
            ("charge".to_owned(), ExecutionState::Scheduled),
            ("alone".to_owned(), ExecutionState::Completed),
        ]
    );
    let of_run = list(
        ListExecutionsRequest::new()
            .with_scope(ExecutionScope::WorkflowRun(run.run_id.clone().unwrap())),
    )
    .await;
    assert_eq!(of_run, all[..2]);
    let standalone =
        list(ListExecutionsRequest::new().with_scope(ExecutionScope::Standalone)).await;
    assert_eq!(standalone, all[2..]);
    assert_eq!(
        list(ListExecutionsRequest::new().with_state(ExecutionState::Completed)).await,
        all[2..]
    );
    assert_eq!(
        list(ListExecutionsRequest::new().with_task_queue("shipping")).await,
        all[..1]
    );
    assert_eq!(
        list(ListExecutionsRequest::new().with_activity_type("nope")).await,
        []
    );
    assert_eq!(
        list(ListExecutionsRequest::new().with_limit(1).with_offset(1)).await,
        all[1..2]
    );
    assert_eq!(
        list(
            ListExecutionsRequest::new()
                .with_scope(ExecutionScope::WorkflowRun("no-such-run".into()))
        )
        .await,
        []
    );

    // Each entry is the execution's whole description, the workflow's ids included.
    let described = env
        .protocol
        .list_activity_executions(ListExecutionsRequest::new().with_limit(2))
        .await
        .unwrap();
    assert_eq!(
        described[1],
        env.protocol
            .describe_execution(activity_ref(&run, "charge"))
            .await
            .unwrap()
    );
    assert_eq!(
        described[1].execution.workflow_id.as_deref(),
        Some("order-1")
    );

    // Every queue with something on it is listed, by name, with its backlog.
    let queues = env.protocol.list_task_queues().await.unwrap();
    let summary: Vec<_> = queues
        .iter()
        .map(|q| (q.name.as_str(), q.backlog, q.pollers.len()))
        .collect();
    assert_eq!(summary, [(QUEUE, 1, 1), ("shipping", 1, 0)]);
    assert_eq!(queues[0].pollers[0].identity, "test-worker");
}

/// `err` refuses a call because the workflow run completed.
fn assert_run_completed_refusal(err: &ProtocolError) {
    assert!(
        matches!(
            err,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::WorkflowClosed(WorkflowState::Completed),
                ..
            }
        ),
        "{err:?}"
    );
}

// ------------------------------------------- history limits and retention (§3.2)

/// Drives `id` one activity per workflow task (each activity's result `size`
/// bytes of text) until the run closes or `max` activities ran; answers how
/// many ran. Tasks are taken as sent (only the new events after the first).
async fn one_activity_per_task(env: &Env, id: &str, size: usize, max: u32) -> u32 {
    let run = start(env, id).await;
    let result = "x".repeat(size);
    for seq in 1..=max {
        let Some(task) = poll_wf_as_sent(env, "w", secs(0)).await else {
            return seq - 1;
        };
        let command = schedule(seq, &format!("a{seq}"), stc(10));
        complete_wf(env, &task, vec![command]).await;
        let state = env.protocol.describe_workflow(run.clone()).await.unwrap();
        if state.state.is_final() {
            return seq;
        }
        let activity = env.next_task().await;
        env.complete(&activity, &result).await.unwrap();
    }
    max
}

fn terminated_reason(d: &activity_core::workflow::WorkflowDescription) -> String {
    match &d.outcome {
        Some(WorkflowOutcome::Terminated { reason, .. }) => reason.clone(),
        other => panic!("not terminated: {other:?}"),
    }
}

fn warnings(history: &[HistoryEvent]) -> Vec<(u64, u64, u64)> {
    history
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::HistorySizeWarning { events, bytes, .. } => {
                Some((e.event_id, events, bytes))
            }
            _ => None,
        })
        .collect()
}

/// docs/semantics.md §3.2: a history that reaches the warning threshold gets
/// one `HistorySizeWarning`; one that passes the event limit is terminated
/// with a reason naming the limit and what to do, and stays readable.
#[tokio::test(start_paused = true)]
async fn a_history_past_its_event_limit_is_terminated_after_one_warning() {
    let config = activity_test_support::engine_config()
        .with_history_limit(40, 1 << 30)
        .with_history_warning(20, 1 << 30);
    let env = Env::with_config(config).await;
    let ran = one_activity_per_task(&env, "long", 10, 100).await;
    assert!(ran < 100, "the run was never closed");
    let run = WorkflowRef::latest("long");
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    let reason = terminated_reason(&d);
    assert!(
        reason.contains("history limit (40 events")
            && reason.contains("split the work into child runs or smaller results"),
        "{reason}"
    );
    let h = history(&env, &run).await;
    assert_ids_without_gaps(&h);
    assert!(h.len() as u64 <= 40 + 3, "{} events", h.len());
    let warned = warnings(&h);
    assert_eq!(warned.len(), 1, "{:?}", names(&h));
    let (at, events, _) = warned[0];
    assert!((20..25).contains(&events) && at == events + 1, "{warned:?}");
    match &h.last().unwrap().kind {
        EventKind::WorkflowTerminated {
            reason: r,
            identity,
        } => {
            assert_eq!(r, &reason);
            assert!(identity.contains("history limit"), "{identity}");
        }
        other => panic!("last event {other:?}"),
    }
    // Closed for good: no task, the activity left over is not running.
    assert!(poll_wf(&env, "w", secs(0)).await.is_none());
    assert!(env.poll_now().await.is_none());
}

/// docs/semantics.md §3.2: the same with the byte limit: large results pass
/// it after a few activities, the run is terminated naming the byte limit.
#[tokio::test(start_paused = true)]
async fn a_history_past_its_byte_limit_is_terminated_after_one_warning() {
    let config = activity_test_support::engine_config()
        .with_history_limit(10_000, 64 * 1024)
        .with_history_warning(10_000, 32 * 1024);
    let env = Env::with_config(config).await;
    let ran = one_activity_per_task(&env, "large", 10 * 1024, 100).await;
    assert!((5..=8).contains(&ran), "{ran} activities ran");
    let run = WorkflowRef::latest("large");
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    let reason = terminated_reason(&d);
    assert!(reason.contains("65536 bytes"), "{reason}");
    let h = history(&env, &run).await;
    let warned = warnings(&h);
    assert_eq!(warned.len(), 1, "{:?}", names(&h));
    assert!((32 * 1024..48 * 1024).contains(&warned[0].2), "{warned:?}");
}

/// The probe: results of ~4 MiB each (within the payload limit) with the
/// default limits. The run is terminated past 50 MiB instead of growing out of
/// what one gRPC message carries (64 MiB), and its whole history still reads
/// in one answer, over gRPC too.
#[tokio::test(start_paused = true)]
async fn a_history_of_large_results_stops_at_the_default_limit_and_stays_readable() {
    let env = Env::new().await;
    let ran = one_activity_per_task(&env, "huge", 4 * 1024 * 1024 - 1024, 20).await;
    assert!(ran < 20, "all 20 results went into the history");
    let run = WorkflowRef::latest("huge");
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    let h = history(&env, &run).await;
    assert_eq!(h.len() as u64, d.history_length);
    assert_eq!(warnings(&h).len(), 1);
}

/// docs/semantics.md §3.2: what closed longer ago than the retention is
/// deleted (the run, its history, its activities; a standalone activity);
/// open runs and recently closed ones stay.
#[tokio::test(start_paused = true)]
async fn closed_runs_and_executions_are_deleted_after_the_retention() {
    let config = activity_test_support::engine_config().with_retention(secs(3600));
    let env = Env::with_config(config).await;
    let old = started_with(&env, "old", vec![schedule(1, "a1", stc(10))]).await;
    let activity = env.next_task().await;
    env.complete(&activity, "done").await.unwrap();
    let closing = next_wf(&env, "w").await;
    let close = Command::CompleteWorkflow { result: json(1) };
    complete_wf(&env, &closing, vec![close]).await;
    env.schedule("solo", stc(10)).await.unwrap();
    let solo = env.next_task().await;
    env.complete(&solo, "done").await.unwrap();
    let open = started_with(&env, "open", vec![]).await;

    tokio::time::sleep(secs(40 * 60)).await;
    let recent = started_with(
        &env,
        "recent",
        vec![Command::CompleteWorkflow { result: json(2) }],
    )
    .await;
    // Past the retention of what closed first, and one collection period (12 min).
    tokio::time::sleep(secs(33 * 60)).await;

    let gone =
        |err: ProtocolError| assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
    gone(
        env.protocol
            .describe_workflow(old.clone())
            .await
            .unwrap_err(),
    );
    gone(
        env.protocol
            .workflow_history(old.clone())
            .await
            .unwrap_err(),
    );
    gone(
        env.protocol
            .describe_execution(activity_ref(&old, "a1"))
            .await
            .unwrap_err(),
    );
    gone(
        env.protocol
            .describe_execution(ExecutionRef::standalone("solo"))
            .await
            .unwrap_err(),
    );
    let d = env.protocol.describe_workflow(open.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::Running);
    assert_eq!(history(&env, &open).await.len() as u64, d.history_length);
    let d = env
        .protocol
        .describe_workflow(recent.clone())
        .await
        .unwrap();
    assert_eq!(d.state, WorkflowState::Completed);
    assert!(!history(&env, &recent).await.is_empty());

    // The recent one goes in its turn; the open run stays, and carries on.
    tokio::time::sleep(secs(3600)).await;
    gone(env.protocol.describe_workflow(recent).await.unwrap_err());
    env.protocol
        .terminate_workflow(open.clone(), "done".into(), "test".into())
        .await
        .unwrap();
    // The id of a deleted run may be used again.
    start(&env, "old").await;
}

/// docs/semantics.md §3.2: under a steady workload (standalone activities
/// and runs closing all the time) the stored rows stop growing once the
/// retention has passed: deletion keeps up, in batches.
#[tokio::test(start_paused = true)]
async fn a_steady_workload_keeps_a_steady_number_of_rows() {
    let config = activity_test_support::engine_config().with_retention(secs(30 * 60));
    let env = Env::with_config(config).await;
    const PER_ROUND: usize = 50;
    let mut kept = Vec::new();
    for round in 0..9 {
        for i in 0..PER_ROUND {
            let id = format!("r{round}-{i}");
            env.schedule(&id, stc(10)).await.unwrap();
            env.protocol
                .request_cancel(ExecutionRef::standalone(&id))
                .await
                .unwrap();
        }
        let id = format!("wf{round}");
        started_with(
            &env,
            &id,
            vec![Command::CompleteWorkflow { result: json(0) }],
        )
        .await;
        tokio::time::sleep(secs(10 * 60)).await;
        let executions = env
            .protocol
            .list_activity_executions(ListExecutionsRequest::new().with_limit(10_000))
            .await
            .unwrap()
            .len();
        let runs = env
            .protocol
            .list_workflows(ListWorkflowsRequest::new().with_limit(1_000))
            .await
            .unwrap()
            .len();
        kept.push((executions, runs));
    }
    // A round is kept for 30 to 36 min (retention plus one period): at most
    // four rounds at a time.
    for (executions, runs) in &kept[4..] {
        assert!(*executions <= 4 * PER_ROUND && *runs <= 4, "{kept:?}");
    }
    assert!(kept[2].0 == 3 * PER_ROUND, "{kept:?}");
}

/// docs/semantics.md §3.2: a history reads in pages: the events after one,
/// as many as fit in the size asked for (at least one), none after the last.
#[tokio::test(start_paused = true)]
async fn a_history_reads_in_pages_of_the_size_asked_for() {
    let env = Env::new().await;
    assert_eq!(one_activity_per_task(&env, "paged", 10 * 1024, 5).await, 5);
    let run = WorkflowRef::latest("paged");
    let whole = history(&env, &run).await;
    let stored = |e: &HistoryEvent| activity_core::codec::to_vec(&e.kind).unwrap().len() as u64;
    for max_bytes in [0, 25 * 1024, u64::MAX] {
        let (mut read, mut pages) = (Vec::new(), 0);
        loop {
            let after = read.last().map_or(0, |e: &HistoryEvent| e.event_id);
            let page = env
                .protocol
                .workflow_history_page(run.clone(), after, max_bytes)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            let bytes: u64 = page.iter().map(stored).sum();
            assert!(
                page.len() == 1 || bytes <= max_bytes,
                "{bytes} > {max_bytes}"
            );
            pages += 1;
            read.extend(page);
        }
        assert_eq!(read, whole, "max_bytes {max_bytes}");
        let (fewest, most) = match max_bytes {
            0 => (whole.len(), whole.len()),
            u64::MAX => (1, 1),
            _ => (3, whole.len() - 1),
        };
        assert!(
            (fewest..=most).contains(&pages),
            "{pages} pages of {max_bytes}"
        );
    }
    let err = env
        .protocol
        .workflow_history_page(WorkflowRef::latest("nobody"), 0, 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
}

/// docs/semantics.md §3.2: a workflow task does not grow with its history: a
/// history past 4 MiB goes as its last events only (ending with the task's
/// `WorkflowTaskStarted`), and the rest reads from the history.
#[tokio::test(start_paused = true)]
async fn a_task_of_a_large_history_carries_only_its_last_events() {
    let env = Env::new().await;
    let run = start(&env, "wide").await;
    let result = "x".repeat(1536 * 1024);
    let stored = |e: &HistoryEvent| activity_core::codec::to_vec(&e.kind).unwrap().len() as u64;
    for seq in 1..=5_u32 {
        // A worker of its own each time: no task carries only new events.
        let identity = format!("w{seq}");
        let task = poll_wf_as_sent(&env, &identity, secs(0))
            .await
            .expect("a task");
        let whole = history(&env, &run).await;
        let bytes: u64 = whole.iter().map(stored).sum();
        let first = task.history[0].event_id;
        if bytes <= 4 * 1024 * 1024 {
            assert_eq!(task.history, whole, "task {seq}: {bytes} bytes go whole");
        } else {
            assert!(first > 1, "task {seq}: {bytes} bytes went whole");
            let carried: u64 = task.history.iter().map(stored).sum();
            assert!(carried <= 4 * 1024 * 1024, "{carried} bytes carried");
            assert_eq!(task.history[..], whole[first as usize - 1..]);
        }
        assert!(matches!(
            task.history.last().map(|e| &e.kind),
            Some(EventKind::WorkflowTaskStarted { identity: who }) if *who == identity
        ));
        let command = schedule(seq, &format!("a{seq}"), stc(10));
        complete_wf(&env, &task, vec![command]).await;
        let activity = env.next_task().await;
        env.complete(&activity, &result).await.unwrap();
    }
}

/// docs/semantics.md §3.2, on the real clock: the collector deletes runs and
/// activities while others start, run and close next to it; nothing fails,
/// what closed longer ago than the retention is gone, the open run stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_while_runs_start_and_close_on_the_real_clock() {
    let config = activity_test_support::engine_config().with_retention(Duration::from_secs(1));
    let env = Env::with_config(config).await;
    let open = start(&env, "open").await;
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![]).await;
    let began = std::time::Instant::now();
    let mut closed = 0;
    while began.elapsed() < Duration::from_secs(3) {
        let id = format!("run-{closed}");
        let run = start(&env, &id).await;
        let task = next_wf(&env, "w").await;
        assert_eq!(task.workflow_id, id);
        let close = Command::CompleteWorkflow { result: json(1) };
        complete_wf(&env, &task, vec![close]).await;
        env.schedule(&id, stc(10)).await.unwrap();
        let activity = env.next_task().await;
        env.complete(&activity, "done").await.unwrap();
        assert_eq!(
            env.protocol.describe_workflow(run).await.unwrap().state,
            WorkflowState::Completed,
            "a run is not deleted before the retention"
        );
        closed += 1;
    }
    assert!(closed > 10, "{closed} runs");
    // The retention (1 s), one collection period (1 s) and some slack.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let runs = env
        .protocol
        .list_workflows(ListWorkflowsRequest::new().with_limit(1000))
        .await
        .unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.workflow_id.as_str()).collect();
    assert_eq!(ids, ["open"], "of {closed} closed runs");
    let left = env
        .protocol
        .list_activity_executions(ListExecutionsRequest::new().with_limit(1000))
        .await
        .unwrap();
    assert!(left.is_empty(), "{} executions left", left.len());
    let d = env.protocol.describe_workflow(open).await.unwrap();
    assert_eq!(d.state, WorkflowState::Running);
}

/// docs/semantics.md §4: a payload whose encoding says JSON but whose bytes do
/// not parse is refused where a workflow brings it (its input, a command of
/// its task's answer), naming the field, and nothing is recorded.
#[tokio::test(start_paused = true)]
async fn a_workflow_payload_that_says_json_but_does_not_parse_is_refused_naming_it() {
    let env = Env::new().await;
    let err = env
        .protocol
        .start_workflow(StartWorkflowRequest::new(
            "bad",
            "order",
            QUEUE,
            vec![json(1), malformed_json()],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "input[1]"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(matches!(
        env.protocol
            .describe_workflow(WorkflowRef::latest("bad"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));

    let run = start(&env, "good").await;
    let task = poll_wf(&env, "w", secs(0)).await.unwrap();
    let before = history(&env, &run).await.len();
    let mut bad = schedule(1, "a1", stc(10));
    if let Command::ScheduleActivity { input, .. } = &mut bad {
        input.push(malformed_json());
    }
    let err = env
        .protocol
        .complete_workflow_task(
            task.task_token.clone(),
            vec![schedule(2, "a2", stc(10)), bad],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "commands[1].input[1]"),
        "{err:?}"
    );
    let err = env
        .protocol
        .complete_workflow_task(
            task.task_token.clone(),
            vec![Command::CompleteWorkflow {
                result: malformed_json(),
            }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "commands[0].result"),
        "{err:?}"
    );
    assert_eq!(history(&env, &run).await.len(), before, "nothing recorded");
    // The task still takes a valid answer.
    complete_wf(&env, &task, vec![schedule(1, "a1", stc(10))]).await;
    assert!(names(&history(&env, &run).await).contains(&"ActivityScheduled"));
}

// ---------------------------------------------------------- continue-as-new

#[tokio::test(start_paused = true)]
async fn continue_as_new_closes_the_run_and_starts_the_next_with_a_fresh_history_at_once() {
    let env = Env::new().await;
    let old = start(&env, "chain").await;
    let task = next_wf(&env, "w").await;
    // A timer and an activity left open by the run that continues.
    complete_wf(
        &env,
        &task,
        vec![
            schedule(1, "a1", stc(10)),
            Command::StartTimer {
                seq: 1,
                duration: secs(5),
            },
            Command::ContinueAsNew {
                input: vec![json("next")],
            },
        ],
    )
    .await;
    let d = env.protocol.describe_workflow(old.clone()).await.unwrap();
    assert_eq!(d.state, WorkflowState::ContinuedAsNew);
    let Some(WorkflowOutcome::ContinuedAsNew { new_run_id }) = d.outcome else {
        panic!("{d:?}")
    };
    let old_history = history(&env, &old).await;
    assert_eq!(
        old_history.last().map(|e| &e.kind),
        Some(&EventKind::WorkflowContinuedAsNew {
            new_run_id: new_run_id.clone(),
            input: vec![json("next")],
        })
    );
    // The new run is the latest of the id, with its start and first task only.
    let latest = env
        .protocol
        .describe_workflow(WorkflowRef::latest("chain"))
        .await
        .unwrap();
    assert_eq!(latest.run_id, new_run_id);
    assert_eq!(latest.state, WorkflowState::Running);
    let new = WorkflowRef::run("chain", &new_run_id);
    let new_history = history(&env, &new).await;
    assert_eq!(
        names(&new_history),
        ["WorkflowStarted", "WorkflowTaskScheduled"]
    );
    assert!(matches!(
        &new_history[0].kind,
        EventKind::WorkflowStarted { workflow_type, task_queue, input, parent: None, .. }
            if workflow_type == "order" && task_queue == QUEUE && input == &vec![json("next")]
    ));
    // The old run's task token is refused; its timer fires into nothing.
    let late = env
        .protocol
        .complete_workflow_task(task.task_token.clone(), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::WorkflowClosed(WorkflowState::ContinuedAsNew),
                ..
            }
        ),
        "{late:?}"
    );
    let next = next_wf(&env, "w").await;
    assert_eq!(next.run_id, new_run_id);
    // A continue-as-new that is not the last command is refused, nothing recorded.
    let refused = env
        .protocol
        .complete_workflow_task(
            next.task_token.clone(),
            vec![
                Command::ContinueAsNew { input: vec![] },
                Command::StartTimer {
                    seq: 1,
                    duration: secs(1),
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("ContinueAsNew must be the last command"),
        "{refused}"
    );
    assert_eq!(history(&env, &new).await.len(), 3);
    tokio::time::sleep(secs(10)).await;
    assert_eq!(
        history(&env, &old).await,
        old_history,
        "the old run never changes"
    );
}

/// docs/semantics.md §3.1: the code registers its query handlers when it
/// runs, so a query to a run that has completed no workflow task is handed to
/// a worker only once the first task completed (within the query's wait).
#[tokio::test(start_paused = true)]
async fn a_query_is_handed_out_only_after_the_runs_first_task_completed() {
    use activity_core::workflow::QueryAnswer;
    let env = Env::new().await;
    let run = start(&env, "early").await;
    let task = poll_wf(&env, "w", secs(0)).await.unwrap();
    let asked = {
        let protocol = env.protocol.clone();
        let run = run.clone();
        tokio::spawn(async move {
            protocol
                .query_workflow(run, "status".into(), secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let poll = || {
        env.protocol
            .poll_workflow_query(PollWorkflowTaskRequest::new(QUEUE, "w").with_wait(secs(0)))
    };
    assert!(
        poll().await.unwrap().is_none(),
        "handed out while the first task runs"
    );
    complete_wf(&env, &task, vec![schedule(1, "a1", stc(10))]).await;
    let query = loop {
        if let Some(query) = poll().await.unwrap() {
            break query;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(names(&query.history).contains(&"WorkflowTaskCompleted"));
    env.protocol
        .answer_workflow_query(query.query_id, QueryAnswer::Answered(json("ready")))
        .await
        .unwrap();
    assert_eq!(asked.await.unwrap().unwrap(), json("ready"));
}

// ---------------------------------------------------------------- start options

/// Completing `task` of a run that closed `state` meanwhile is refused.
async fn assert_late_answer_refused(env: &Env, task: &WorkflowTask, state: WorkflowState) {
    let err = env
        .protocol
        .complete_workflow_task(
            task.task_token.clone(),
            vec![Command::CompleteWorkflow { result: json(1) }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::AlreadyClosed { reason: ClosedReason::WorkflowClosed(s), .. } if *s == state),
        "{err:?}"
    );
}

fn timed(id: &str, run: Option<u64>, execution: Option<u64>) -> StartWorkflowRequest {
    let mut request = start_request(id);
    request.run_timeout = run.map(secs);
    request.execution_timeout = execution.map(secs);
    request
}

/// docs/semantics.md §3: a run that reaches its run timeout is closed
/// TIMED_OUT by the engine's timer, through the common close: its activities
/// are told the workflow closed, its timers dropped, a task in a worker's
/// hands refused.
#[tokio::test(start_paused = true)]
async fn a_run_that_reaches_its_run_timeout_is_closed_timed_out_with_what_it_left_running() {
    let env = Env::new().await;
    let t0 = env.now();
    let run = env
        .protocol
        .start_workflow(timed("slow", Some(60), None))
        .await
        .unwrap();
    let task = next_wf(&env, "w").await;
    complete_wf(
        &env,
        &task,
        vec![
            schedule(1, "queued", stc(600)),
            Command::StartTimer {
                seq: 1,
                duration: secs(3600),
            },
        ],
    )
    .await;
    let outcome = env
        .protocol
        .wait_workflow_outcome(run.clone(), secs(3600))
        .await
        .unwrap();
    assert_eq!(
        env.secs_since(t0),
        60.0,
        "closed when its run timeout ended"
    );
    let timed_out = WorkflowOutcome::TimedOut {
        timeout: WorkflowTimeout::Run,
    };
    assert_eq!(outcome, Some(timed_out.clone()));
    let h = history(&env, &run).await;
    assert_eq!(
        h.last().map(|e| &e.kind),
        Some(&EventKind::WorkflowTimedOut {
            timeout: WorkflowTimeout::Run
        })
    );
    assert_ids_without_gaps(&h);
    let d = env.protocol.describe_workflow(run.clone()).await.unwrap();
    assert_eq!(
        (d.state, d.outcome),
        (WorkflowState::TimedOut, Some(timed_out))
    );
    assert_eq!(
        env.describe_execution_state(&run, "queued").await,
        ExecutionState::Canceled
    );
    assert!(env.poll_now().await.is_none());
    tokio::time::sleep(secs(7200)).await;
    assert_eq!(history(&env, &run).await, h, "the timer was dropped");
    assert!(poll_wf(&env, "w", secs(0)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_task_in_a_workers_hands_when_the_run_times_out_is_refused() {
    let env = Env::new().await;
    let run = env
        .protocol
        .start_workflow(timed("busy", Some(5), None))
        .await
        .unwrap();
    let task = next_wf(&env, "w").await;
    tokio::time::sleep(secs(6)).await;
    assert_late_answer_refused(&env, &task, WorkflowState::TimedOut).await;
    let h = history(&env, &run).await;
    assert_eq!(
        names(&h),
        [
            "WorkflowStarted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted",
            "WorkflowTimedOut"
        ]
    );
}

/// docs/semantics.md §3: the execution timeout runs across continue-as-new:
/// each run gets the run timeout anew, the chain's deadline is carried.
#[tokio::test(start_paused = true)]
async fn the_execution_timeout_is_carried_across_continue_as_new() {
    let env = Env::new().await;
    let t0 = env.now();
    let first = env
        .protocol
        .start_workflow(timed("chain-t", Some(60), Some(100)))
        .await
        .unwrap();
    let task = next_wf(&env, "w").await;
    complete_wf(
        &env,
        &task,
        vec![Command::StartTimer {
            seq: 1,
            duration: secs(50),
        }],
    )
    .await;
    let task = next_wf(&env, "w").await;
    assert_eq!(env.secs_since(t0), 50.0);
    complete_wf(
        &env,
        &task,
        vec![Command::ContinueAsNew {
            input: vec![json("next")],
        }],
    )
    .await;
    let d = env.protocol.describe_workflow(first).await.unwrap();
    let Some(WorkflowOutcome::ContinuedAsNew { new_run_id }) = d.outcome else {
        panic!("{d:?}")
    };
    let second = WorkflowRef::run("chain-t", &new_run_id);
    let started = history(&env, &second).await.remove(0).kind;
    let EventKind::WorkflowStarted { timeouts, .. } = started else {
        panic!("{started:?}")
    };
    assert_eq!(
        (
            timeouts.run,
            timeouts.execution,
            timeouts.execution_deadline
        ),
        (Some(secs(60)), Some(secs(100)), Some(t0 + secs(100)))
    );
    // Its run timeout would end at 110 s; the chain's deadline, at 100 s.
    let d = env.protocol.describe_workflow(second).await.unwrap();
    assert_eq!(
        (d.run_deadline, d.execution_deadline),
        (Some(t0 + secs(110)), Some(t0 + secs(100)))
    );
    let outcome = env
        .protocol
        .wait_workflow_outcome(WorkflowRef::latest("chain-t"), secs(3600))
        .await
        .unwrap();
    assert_eq!(env.secs_since(t0), 100.0);
    assert_eq!(
        outcome,
        Some(WorkflowOutcome::TimedOut {
            timeout: WorkflowTimeout::Execution
        })
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_timeouts_are_refused_naming_the_field() {
    let env = Env::new().await;
    for (request, field, says) in [
        (timed("t", Some(0), None), "run_timeout", "more than zero"),
        (
            timed("t", None, Some(0)),
            "execution_timeout",
            "more than zero",
        ),
        (
            timed("t", Some(60), Some(30)),
            "execution_timeout",
            "less than run_timeout",
        ),
    ] {
        let err = env.protocol.start_workflow(request).await.unwrap_err();
        assert!(
            matches!(&err, ProtocolError::InvalidArgument { field: f, message }
                if f == field && message.contains(says)),
            "{err:?}"
        );
    }
    assert!(env
        .protocol
        .list_workflows(ListWorkflowsRequest::new())
        .await
        .unwrap()
        .is_empty());
}

/// docs/semantics.md §3: the id-reuse policy says whether a closed id may
/// start again; a running run always refuses.
#[tokio::test(start_paused = true)]
async fn the_id_reuse_policy_decides_whether_a_closed_id_starts_again() {
    use activity_core::workflow::WorkflowIdReusePolicy as Policy;
    let env = Env::new().await;
    let with = |id: &str, policy| start_request(id).with_id_reuse_policy(policy);
    let refused = |err: &ProtocolError, policy: &str| {
        assert!(
            matches!(err, ProtocolError::AlreadyExists { what }
                if what.contains(policy) && what.contains("closed")),
            "{err:?}"
        );
    };
    // Completed: only AllowDuplicate starts again.
    let done = started_with(
        &env,
        "done",
        vec![Command::CompleteWorkflow { result: json(1) }],
    )
    .await;
    for policy in [Policy::RejectDuplicate, Policy::AllowDuplicateFailedOnly] {
        let err = env
            .protocol
            .start_workflow(with("done", policy))
            .await
            .unwrap_err();
        refused(&err, policy.as_str());
    }
    let again = env
        .protocol
        .start_workflow(with("done", Policy::AllowDuplicate))
        .await
        .unwrap();
    assert_ne!(again.run_id, done.run_id);
    // A running run refuses whatever the policy.
    let err = env
        .protocol
        .start_workflow(with("done", Policy::AllowDuplicate))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::AlreadyExists { what } if what.contains("is running")),
        "{err:?}"
    );
    // Terminated (not successful): AllowDuplicateFailedOnly starts again,
    // RejectDuplicate does not.
    let broken = start(&env, "broken").await;
    env.protocol
        .terminate_workflow(broken, "stop".into(), "test".into())
        .await
        .unwrap();
    let err = env
        .protocol
        .start_workflow(with("broken", Policy::RejectDuplicate))
        .await
        .unwrap_err();
    refused(&err, "RejectDuplicate");
    env.protocol
        .start_workflow(with("broken", Policy::AllowDuplicateFailedOnly))
        .await
        .unwrap();
}

// ---------------------------------------------------------------- reset

async fn signal(env: &Env, id: &str, name: &str) {
    env.protocol
        .signal_workflow(
            WorkflowRef::latest(id),
            name.into(),
            json(name),
            "test".into(),
        )
        .await
        .expect("signal recorded");
}

fn signal_names(history: &[HistoryEvent]) -> Vec<&str> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkflowSignaled { signal_name, .. } => Some(signal_name.as_str()),
            _ => None,
        })
        .collect()
}

/// docs/semantics.md §3.1: a reset terminates the running run, copies its
/// history up to the chosen task, records the reset as that task's failure,
/// re-applies the signals received after it (buffered ones too), schedules
/// again what was open there and nothing the old run did later.
#[tokio::test(start_paused = true)]
async fn a_reset_copies_the_history_to_the_task_reapplies_later_signals_and_reopens_what_was_open()
{
    let env = Env::new().await;
    let t0 = env.now();
    let old = started_with(
        &env,
        "rs",
        vec![
            schedule(1, "a1", stc(600)),
            Command::StartTimer {
                seq: 1,
                duration: secs(100),
            },
        ],
    )
    .await;
    signal(&env, "rs", "early").await;
    let second = next_wf(&env, "w").await;
    complete_wf(&env, &second, vec![schedule(2, "a2", stc(600))]).await;
    let reset_to = history(&env, &old).await.len() as u64 - 1;
    signal(&env, "rs", "late").await;
    let in_flight = next_wf(&env, "w").await;
    signal(&env, "rs", "buffered").await;
    let old_history = history(&env, &old).await;
    assert_eq!(
        old_history[reset_to as usize - 1].kind.name(),
        "WorkflowTaskCompleted"
    );

    let new = env
        .protocol
        .reset_workflow(
            WorkflowRef::latest("rs"),
            reset_to,
            "redo the second task".into(),
            "ops@host".into(),
        )
        .await
        .unwrap();
    assert_ne!(new.run_id, old.run_id);
    // The old run: terminated naming the reset and the new run.
    let d = env.protocol.describe_workflow(old.clone()).await.unwrap();
    let Some(WorkflowOutcome::Terminated { reason, new_run_id }) = d.outcome else {
        panic!("{d:?}")
    };
    assert_eq!(new_run_id, new.run_id);
    assert!(
        reason.contains(&format!(
            "reset to event {reset_to} by ops@host: redo the second task"
        )),
        "{reason}"
    );
    assert_late_answer_refused(&env, &in_flight, WorkflowState::Terminated).await;
    // The new run: the copy, the reset, the later signals in order, a task.
    let h = history(&env, &new).await;
    let cut = reset_to as usize - 1;
    assert_eq!(
        h[1..cut].iter().map(|e| &e.kind).collect::<Vec<_>>(),
        old_history[1..cut]
            .iter()
            .map(|e| &e.kind)
            .collect::<Vec<_>>()
    );
    // Its start names the run whose id seeds the copied history's random values.
    assert!(
        matches!(&h[0].kind, EventKind::WorkflowStarted { original_run_id, .. }
            if original_run_id == &old.run_id),
        "{:?}",
        h[0]
    );
    assert_eq!(
        names(&h[cut..]),
        [
            "WorkflowTaskFailed",
            "WorkflowSignaled",
            "WorkflowSignaled",
            "WorkflowTaskScheduled"
        ]
    );
    assert_eq!(signal_names(&h), ["early", "late", "buffered"]);
    assert_ids_without_gaps(&h);
    // What was open at the reset point is scheduled again; a2, scheduled
    // later by the old run, is not.
    assert_eq!(
        env.describe_execution_state(&new, "a1").await,
        ExecutionState::Scheduled
    );
    assert_eq!(
        env.describe_execution_state(&old, "a1").await,
        ExecutionState::Canceled
    );
    let a2 = env
        .protocol
        .describe_execution(activity_ref(&new, "a2"))
        .await
        .unwrap_err();
    assert!(matches!(a2, ProtocolError::NotFound { .. }), "{a2:?}");
    // The handle of the old run follows to the new one.
    let task = next_wf(&env, "w").await;
    assert_eq!(Some(&task.run_id), new.run_id.as_ref());
    complete_wf(&env, &task, vec![]).await;
    let task = next_wf(&env, "w").await;
    assert_eq!(env.secs_since(t0), 100.0, "the timer fires when it was due");
    assert_eq!(
        task.history.last().map(|e| e.kind.name()),
        Some("WorkflowTaskStarted")
    );
    assert!(task
        .history
        .iter()
        .any(|e| e.kind == EventKind::TimerFired { seq: 1 }));
    complete_wf(
        &env,
        &task,
        vec![Command::CompleteWorkflow {
            result: json("reset done"),
        }],
    )
    .await;
    assert_eq!(
        env.protocol
            .wait_workflow_outcome(WorkflowRef::latest("rs"), secs(1))
            .await
            .unwrap(),
        Some(WorkflowOutcome::Completed(json("reset done")))
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_to_an_event_that_is_not_a_completed_task_is_refused_listing_the_choices() {
    let env = Env::new().await;
    let run = start(&env, "rz").await;
    let err = env
        .protocol
        .reset_workflow(run.clone(), 2, "x".into(), "ops".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, message }
            if field == "to_event" && message.contains("event 2 is WorkflowTaskScheduled")
                && message.contains("no workflow task of it completed")),
        "{err:?}"
    );
    let task = next_wf(&env, "w").await;
    complete_wf(&env, &task, vec![schedule(1, "a1", stc(60))]).await;
    for (to, says) in [(5, "event 5 is ActivityScheduled"), (99, "has no event 99")] {
        let err = env
            .protocol
            .reset_workflow(run.clone(), to, "x".into(), "ops".into())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProtocolError::InvalidArgument { field, message }
                if field == "to_event" && message.contains(says) && message.contains("one of [4]")),
            "{err:?}"
        );
    }
    let d = env.protocol.describe_workflow(run).await.unwrap();
    assert_eq!(d.state, WorkflowState::Running, "nothing changed");
}
