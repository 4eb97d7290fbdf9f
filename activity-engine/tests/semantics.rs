//! Behaviour suite: one test (at least) per rule of docs/semantics.md §1.1–§1.6 and §2 that
//! falls to the engine, each named after its section and rule. The real engine
//! runs on an in-memory SQLite store with a virtual clock; the test plays the
//! worker through the protocol.

mod common;

use std::time::Duration;

use activity_core::{
    failure::{ApplicationFailure, Failure, RetryState, TimeoutKind},
    options::{ActivityOptions, RetryOptions},
    payload::Payload,
    protocol::{
        ActivityTask, ClosedReason, ExecutionOutcome, ExecutionRef, ExecutionState,
        PollActivityTaskRequest, ProtocolError, ScheduleActivityRequest,
    },
    CancelReason, Clock,
};
use common::*;

fn stc(s: u64) -> ActivityOptions {
    ActivityOptions::new().start_to_close(secs(s))
}

fn failed(outcome: ExecutionOutcome) -> activity_core::ActivityFailure {
    match outcome {
        ExecutionOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn timeout_kind(failure: &Failure) -> TimeoutKind {
    match failure {
        Failure::Timeout(t) => t.kind,
        other => panic!("expected a timeout, got {other:?}"),
    }
}

// ---------------------------------------------------------------- 1.1 options

#[tokio::test(start_paused = true)]
async fn s1_1_invalid_options_are_refused_naming_the_field_and_nothing_is_scheduled() {
    let env = Env::new().await;
    let err = env
        .schedule("a", ActivityOptions::new().heartbeat_timeout(secs(1)))
        .await
        .unwrap_err();
    let ProtocolError::InvalidOptions(options) = &err else {
        panic!("expected InvalidOptions, got {err:?}")
    };
    assert_eq!(options.problems[0].field, "start_to_close");
    assert!(err.to_string().contains("schedule_to_close"), "{err}");
    let err = env
        .schedule(
            "a",
            stc(1).retry(RetryOptions::new().backoff_coefficient(0.5)),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("retry.backoff_coefficient"),
        "{err}"
    );
    let err = env.schedule("a", stc(0)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("`start_to_close` must be greater than zero"),
        "{err}"
    );
    // Nothing was scheduled: the id is unknown and the queue empty.
    assert!(matches!(
        env.protocol
            .describe_execution(ExecutionRef::standalone("a"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));
    let queue = env
        .protocol
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!(queue.backlog, 0);
}

#[tokio::test(start_paused = true)]
async fn s1_1_timeouts_are_clamped_to_schedule_to_close_and_heartbeat_to_start_to_close() {
    let env = Env::new().await;
    let response = env
        .protocol
        .schedule_activity(
            ScheduleActivityRequest::new(
                "greet",
                vec![json("x")],
                ActivityOptions::new()
                    .schedule_to_close(secs(10))
                    .start_to_close(secs(30))
                    .schedule_to_start(secs(60))
                    .heartbeat_timeout(secs(90))
                    .task_queue(QUEUE),
            )
            .with_activity_id("a"),
        )
        .await
        .unwrap();
    assert_eq!(response.options.start_to_close, secs(10));
    assert_eq!(response.options.schedule_to_start, Some(secs(10)));
    assert_eq!(response.options.heartbeat_timeout, Some(secs(10)));
    let task = env.poll_now().await.unwrap();
    assert_eq!(task.info.heartbeat_timeout, Some(secs(10)));
    assert_eq!(
        task.info
            .deadline
            .unwrap()
            .duration_since(task.info.scheduled_time)
            .unwrap(),
        secs(10)
    );
}

#[tokio::test(start_paused = true)]
async fn s1_1_start_to_close_and_schedule_to_start_default_to_schedule_to_close() {
    let env = Env::new().await;
    env.schedule("a", ActivityOptions::new().schedule_to_close(secs(30)))
        .await
        .unwrap();
    let d = env.describe("a").await;
    assert_eq!(d.options.start_to_close, secs(30));
    assert_eq!(d.options.schedule_to_start, Some(secs(30)));
    let t0 = env.now();
    let failure = failed(env.outcome("a").await);
    // Both bounds fire at 30 s; the whole execution's bound is reported.
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::ScheduleToClose);
    assert_eq!(env.secs_since(t0), 30.0);
    // Started at 10 s, the attempt's own bound (30 s) would end at 40 s: the
    // execution's bound at 30 s ends it first.
    env.schedule("b", ActivityOptions::new().schedule_to_close(secs(30)))
        .await
        .unwrap();
    let t1 = env.now();
    env.clock.sleep(secs(10)).await;
    let task = env.poll_now().await.unwrap();
    assert_eq!(task.info.deadline, Some(t1 + secs(30)));
    let failure = failed(env.outcome("b").await);
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::ScheduleToClose);
    assert_eq!(env.secs_since(t1), 30.0);
}

#[tokio::test(start_paused = true)]
async fn s1_1_call_site_options_override_definition_defaults_field_by_field() {
    let env = Env::new().await;
    // `greet` declares start_to_close = 10s; the call site adds a heartbeat timeout
    // and overrides start_to_close.
    let handle = env
        .client
        .start(
            greet::call(&env.client, "Ada".into())
                .activity_id("a")
                .heartbeat_timeout(secs(3)),
        )
        .await
        .unwrap();
    let d = handle.describe().await.unwrap();
    assert_eq!(d.options.start_to_close, secs(10));
    assert_eq!(d.options.heartbeat_timeout, Some(secs(3)));
    assert_eq!(d.options.task_queue, QUEUE, "the client's default queue");
    env.client
        .start(
            greet::call(&env.client, "Bob".into())
                .activity_id("b")
                .start_to_close(secs(4)),
        )
        .await
        .unwrap();
    assert_eq!(env.describe("b").await.options.start_to_close, secs(4));
}

// ---------------------------------------------------------------- 1.2 life of an execution

#[tokio::test(start_paused = true)]
async fn s1_2_scheduled_then_started_then_completed_with_its_result() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let d = env.describe("a").await;
    assert_eq!((d.state, d.attempt), (ExecutionState::Scheduled, 1));
    let task = env.poll_now().await.unwrap();
    assert_eq!(task.info.activity_id, "a");
    assert_eq!(task.info.activity_type, "greet");
    assert_eq!(task.info.attempt, 1);
    assert_eq!(task.info.workflow_id, None);
    assert_eq!(task.input, vec![json("a")]);
    let d = env.describe("a").await;
    assert_eq!(d.state, ExecutionState::Started);
    assert_eq!(d.worker_identity.as_deref(), Some("test-worker"));
    env.complete(&task, "done").await.unwrap();
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("done"))
    );
    assert_eq!(env.describe("a").await.state, ExecutionState::Completed);
}

#[tokio::test(start_paused = true)]
async fn s1_2_schedule_to_start_timeout_ends_timed_out_and_is_never_retried() {
    let env = Env::new().await;
    env.schedule("a", stc(10).schedule_to_start(secs(5)))
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::ScheduleToStart);
    assert_eq!(failure.retry_state, RetryState::Timeout);
    assert_eq!(failure.attempts, 1);
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
    assert!(
        env.poll_now().await.is_none(),
        "a timed-out attempt is never dispatched"
    );
}

#[tokio::test(start_paused = true)]
async fn s1_2_schedule_to_close_timeout_fires_in_a_started_state_and_is_never_retried() {
    let env = Env::new().await;
    env.schedule(
        "a",
        ActivityOptions::new()
            .schedule_to_close(secs(20))
            .start_to_close(secs(15)),
    )
    .await
    .unwrap();
    let t0 = env.now();
    let task = env.poll_now().await.unwrap();
    // Attempt 1 times out after 15 s, attempt 2 starts at 16 s; the whole
    // execution times out at 20 s while attempt 2 runs.
    let task2 = env.next_task().await;
    assert_eq!(task2.info.attempt, 2);
    let failure = failed(env.outcome("a").await);
    assert_eq!(env.secs_since(t0), 20.0);
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::ScheduleToClose);
    assert_eq!(failure.retry_state, RetryState::Timeout);
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
    // The running worker learns it, with reason "timed out".
    let err = env
        .protocol
        .record_heartbeat(token(&task2), None)
        .await
        .unwrap_err();
    assert_eq!(err.cancel_reason(), Some(CancelReason::TimedOut));
    assert!(env.complete(&task, "late").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn s1_2_timeout_not_retried_ends_timed_out_with_that_timeout_as_cause() {
    let env = Env::new().await;
    env.schedule("a", stc(10).retry(RetryOptions::new().maximum_attempts(1)))
        .await
        .unwrap();
    let _task = env.poll_now().await.unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::StartToClose);
    assert_eq!(failure.retry_state, RetryState::MaximumAttemptsReached);
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn s1_2_application_failure_not_retried_ends_failed() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(
            token(&task),
            ApplicationFailure::new("Declined", "no funds").with_non_retryable(true),
            None,
        )
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(failure.activity_type, "greet");
    assert_eq!(failure.activity_id, "a");
    assert_eq!(failure.application().unwrap().error_type, "Declined");
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    assert_eq!(env.describe("a").await.state, ExecutionState::Failed);
}

#[tokio::test(start_paused = true)]
async fn s1_2_a_final_execution_never_changes_again() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.complete(&task, "first").await.unwrap();
    let before = env.describe("a").await;
    let closed = |r: Result<_, ProtocolError>| {
        matches!(
            r,
            Err(ProtocolError::AlreadyClosed {
                reason: ClosedReason::ExecutionClosed(ExecutionState::Completed),
                ..
            })
        )
    };
    assert!(closed(env.complete(&task, "second").await));
    assert!(closed(
        env.protocol
            .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
            .await
    ));
    assert!(closed(env.protocol.report_canceled(by_id("a"), None).await));
    assert!(closed(
        env.protocol
            .record_heartbeat(token(&task), Some(json(1)))
            .await
            .map(drop)
    ));
    assert!(closed(
        env.protocol
            .request_cancel(ExecutionRef::standalone("a"))
            .await
            .map(drop)
    ));
    // Timers of a final execution never fire again.
    env.clock.sleep(secs(3600)).await;
    assert_eq!(env.describe("a").await, before);
}

#[tokio::test(start_paused = true)]
async fn s1_2_each_attempt_is_handed_to_at_most_one_worker() {
    let env = Env::new().await;
    let pollers: Vec<_> = (0..4)
        .map(|i| {
            let protocol = env.protocol.clone();
            tokio::spawn(async move {
                protocol
                    .poll_activity_task(
                        PollActivityTaskRequest::new(QUEUE, format!("w{i}")).with_wait(secs(5)),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    env.schedule("a", stc(10)).await.unwrap();
    let mut got = 0;
    for p in pollers {
        got += usize::from(p.await.unwrap().is_some());
    }
    assert_eq!(got, 1);
}

#[tokio::test(start_paused = true)]
async fn s1_2_a_stale_token_is_refused_and_changes_nothing() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10).retry(RetryOptions::new().initial_interval(secs(1))),
    )
    .await
    .unwrap();
    let first = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(token(&first), ApplicationFailure::new("E", "boom"), None)
        .await
        .unwrap();
    let second = env.next_task().await;
    assert_eq!(second.info.attempt, 2);
    let before = env.describe("a").await;
    let err = env.complete(&first, "stale").await.unwrap_err();
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
    assert!(env
        .protocol
        .record_heartbeat(token(&first), Some(json("x")))
        .await
        .is_err());
    assert_eq!(env.describe("a").await, before);
    env.complete(&second, "fresh").await.unwrap();
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("fresh"))
    );
}

/// A report whose answer was lost (a node died after committing it) is sent
/// again, perhaps to another node: the same report by the same attempt's token
/// is accepted and changes nothing; any other report is still refused.
#[tokio::test(start_paused = true)]
async fn s5_a_repeated_report_of_an_attempt_is_accepted_once_recorded_and_changes_nothing() {
    let env = Env::new().await;
    env.schedule("done", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.complete(&task, "result").await.unwrap();
    let recorded = env.describe("done").await;
    env.complete(&task, "result")
        .await
        .expect("the same completion again");
    assert_eq!(env.describe("done").await, recorded);
    assert!(matches!(
        env.complete(&task, "another result").await,
        Err(ProtocolError::AlreadyClosed { .. })
    ));
    // By execution id the attempt is not known: a second completion is refused.
    assert!(env
        .protocol
        .complete_activity(by_id("done"), json("result"))
        .await
        .is_err());

    // A failure that was retried, sent again: accepted; the retry is unchanged.
    env.schedule(
        "retried",
        stc(10).retry(RetryOptions::new().initial_interval(secs(1))),
    )
    .await
    .unwrap();
    let first = env.poll_now().await.unwrap();
    let boom = ApplicationFailure::new("E", "boom");
    env.protocol
        .fail_activity(token(&first), boom.clone(), None)
        .await
        .unwrap();
    let retrying = env.describe("retried").await;
    env.protocol
        .fail_activity(token(&first), boom.clone(), None)
        .await
        .expect("the same failure again");
    assert_eq!(env.describe("retried").await, retrying);
    assert!(env
        .protocol
        .fail_activity(token(&first), ApplicationFailure::new("E", "other"), None)
        .await
        .is_err());
    let second = env.next_task().await;
    assert_eq!(second.info.attempt, 2);
    env.complete(&second, "fresh").await.unwrap();
    assert_eq!(
        env.outcome("retried").await,
        ExecutionOutcome::Completed(json("fresh"))
    );

    // A cancellation acknowledged twice.
    env.schedule("canceled", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .request_cancel(ExecutionRef::standalone("canceled"))
        .await
        .unwrap();
    env.protocol
        .report_canceled(token(&task), Some(json("cleaned up")))
        .await
        .unwrap();
    let canceled = env.describe("canceled").await;
    env.protocol
        .report_canceled(token(&task), Some(json("cleaned up")))
        .await
        .expect("the same acknowledgement again");
    assert_eq!(env.describe("canceled").await, canceled);
    assert!(env.complete(&task, "late").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn s1_2_first_valid_completion_wins() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let (a, b) = tokio::join!(
        env.complete(&task, "one"),
        env.protocol
            .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one wins: {a:?} {b:?}");
    let loser = a.as_ref().err().or(b.as_ref().err()).unwrap();
    assert!(
        matches!(loser, ProtocolError::AlreadyClosed { .. }),
        "{loser:?}"
    );
    if a.is_ok() {
        assert_eq!(
            env.outcome("a").await,
            ExecutionOutcome::Completed(json("one"))
        );
    } else {
        // The failure won: the attempt ended and a retry is scheduled.
        let d = env.describe("a").await;
        assert_eq!((d.state, d.attempt), (ExecutionState::Scheduled, 2));
    }
}

#[tokio::test(start_paused = true)]
async fn s1_2_completion_after_a_cancel_request_is_accepted_as_completion() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let state = env
        .protocol
        .request_cancel(ExecutionRef::standalone("a"))
        .await
        .unwrap();
    assert_eq!(state, ExecutionState::Started);
    env.complete(&task, "anyway").await.unwrap();
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("anyway"))
    );
}

// ---------------------------------------------------------------- 1.3 retries

#[tokio::test(start_paused = true)]
async fn s1_3_retry_delay_is_initial_interval_times_coefficient_capped_at_maximum_interval() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10).retry(
            RetryOptions::new()
                .initial_interval(secs(1))
                .backoff_coefficient(3.0)
                .maximum_interval(secs(5)),
        ),
    )
    .await
    .unwrap();
    let mut delays = Vec::new();
    let mut task = env.poll_now().await.unwrap();
    for _ in 0..3 {
        let failed_at = env.now();
        env.protocol
            .fail_activity(token(&task), ApplicationFailure::new("E", "again"), None)
            .await
            .unwrap();
        task = env.next_task().await;
        delays.push(env.secs_since(failed_at));
        assert_eq!(
            task.info
                .current_attempt_scheduled_time
                .duration_since(failed_at)
                .unwrap(),
            Duration::from_secs_f64(*delays.last().unwrap())
        );
    }
    assert_eq!(delays, [1.0, 3.0, 5.0]);
    assert_eq!(task.info.attempt, 4);
}

#[tokio::test(start_paused = true)]
async fn s1_3_maximum_attempts_counts_the_first_attempt() {
    let env = Env::new().await;
    env.schedule("a", stc(10).retry(RetryOptions::new().maximum_attempts(3)))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let task = env.next_task().await;
        assert_eq!(task.info.attempt, attempt);
        env.protocol
            .fail_activity(token(&task), ApplicationFailure::new("E", "no"), None)
            .await
            .unwrap();
    }
    let failure = failed(env.outcome("a").await);
    assert_eq!(failure.attempts, 3);
    assert_eq!(failure.retry_state, RetryState::MaximumAttemptsReached);
    assert_eq!(env.describe("a").await.state, ExecutionState::Failed);
}

#[tokio::test(start_paused = true)]
async fn s1_3_non_retryable_error_types_are_not_retried() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10).retry(RetryOptions::new().non_retryable("Fatal")),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("Fatal", "stop"), None)
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    assert_eq!(failure.attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn s1_3_next_retry_delay_of_the_failure_wins_over_the_backoff() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let failed_at = env.now();
    env.protocol
        .fail_activity(
            token(&task),
            ApplicationFailure::new("Busy", "later").with_next_retry_delay(secs(42)),
            None,
        )
        .await
        .unwrap();
    assert!(env.poll(secs(41)).await.is_none());
    let task = env.next_task().await;
    assert_eq!(env.secs_since(failed_at), 42.0);
    assert_eq!(task.info.attempt, 2);
}

#[tokio::test(start_paused = true)]
async fn s1_3_no_retry_that_would_start_after_the_schedule_to_close_deadline() {
    let env = Env::new().await;
    env.schedule(
        "a",
        ActivityOptions::new()
            .schedule_to_close(secs(100))
            .start_to_close(secs(10))
            .retry(RetryOptions::new().initial_interval(secs(60))),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    env.clock.sleep(secs(5)).await;
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "1"), None)
        .await
        .unwrap();
    // Attempt 2 at 65 s is within the bound; attempt 3 would start at 65 + 120 s.
    let task = env.next_task().await;
    assert_eq!(task.info.attempt, 2);
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "2"), None)
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(failure.retry_state, RetryState::Timeout);
    assert_eq!(failure.application().unwrap().message, "2");
    assert_eq!(env.describe("a").await.state, ExecutionState::Failed);
}

#[tokio::test(start_paused = true)]
async fn s1_3_start_to_close_timeout_is_retried_when_the_worker_vanished() {
    let env = Env::new().await;
    env.schedule("a", stc(30)).await.unwrap();
    let t0 = env.now();
    let _lost = env.poll_now().await.unwrap();
    let task = env.next_task().await;
    assert_eq!(task.info.attempt, 2);
    assert_eq!(
        env.secs_since(t0),
        31.0,
        "30 s timeout, then the 1 s default backoff"
    );
    let d = env.describe("a").await;
    assert_eq!(
        timeout_kind(d.last_failure.as_ref().unwrap()),
        TimeoutKind::StartToClose
    );
}

#[tokio::test(start_paused = true)]
async fn s1_3_heartbeat_timeout_is_retried() {
    let env = Env::new().await;
    env.schedule("a", stc(300).heartbeat_timeout(secs(10)))
        .await
        .unwrap();
    let t0 = env.now();
    let _silent = env.poll_now().await.unwrap();
    let task = env.next_task().await;
    assert_eq!(task.info.attempt, 2);
    assert_eq!(env.secs_since(t0), 11.0);
    let d = env.describe("a").await;
    assert_eq!(
        timeout_kind(d.last_failure.as_ref().unwrap()),
        TimeoutKind::Heartbeat
    );
}

// ---------------------------------------------------------------- 1.4 heartbeats

#[tokio::test(start_paused = true)]
async fn s1_4_heartbeat_details_are_stored_and_handed_to_the_next_attempt() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    assert_eq!(task.last_heartbeat_details, None);
    env.protocol
        .record_heartbeat(token(&task), Some(json(41)))
        .await
        .unwrap();
    env.protocol
        .record_heartbeat(token(&task), Some(json(42)))
        .await
        .unwrap();
    env.protocol
        .record_heartbeat(token(&task), None)
        .await
        .unwrap();
    assert_eq!(env.describe("a").await.heartbeat_details, Some(json(42)));
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    let next = env.next_task().await;
    assert_eq!(next.last_heartbeat_details, Some(json(42)));
}

#[tokio::test(start_paused = true)]
async fn s1_4_a_failure_flushes_the_latest_details_for_the_next_attempt() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .record_heartbeat(token(&task), Some(json("p1")))
        .await
        .unwrap();
    env.protocol
        .fail_activity(
            token(&task),
            ApplicationFailure::new("E", "x"),
            Some(json("p2")),
        )
        .await
        .unwrap();
    assert_eq!(
        env.next_task().await.last_heartbeat_details,
        Some(json("p2"))
    );
}

#[tokio::test(start_paused = true)]
async fn s1_4_heartbeat_timeout_error_carries_the_last_heartbeat_details() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(300)
            .heartbeat_timeout(secs(10))
            .retry(RetryOptions::new().maximum_attempts(1)),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .record_heartbeat(token(&task), Some(json("halfway")))
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    let Failure::Timeout(timeout) = &failure.cause else {
        panic!("{failure:?}")
    };
    assert_eq!(timeout.kind, TimeoutKind::Heartbeat);
    assert_eq!(timeout.last_heartbeat_details, Some(json("halfway")));
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn s1_4_heartbeats_keep_a_started_attempt_alive() {
    let env = Env::new().await;
    env.schedule("a", stc(3600).heartbeat_timeout(secs(10)))
        .await
        .unwrap();
    let task = env.poll_now().await.unwrap();
    for i in 0..30 {
        env.clock.sleep(secs(8)).await;
        let answer = env
            .protocol
            .record_heartbeat(token(&task), Some(json(i)))
            .await
            .unwrap();
        assert!(!answer.cancel_requested);
    }
    let d = env.describe("a").await;
    assert_eq!((d.state, d.attempt), (ExecutionState::Started, 1));
}

#[tokio::test(start_paused = true)]
async fn s1_4_any_process_may_heartbeat_by_token_or_by_id() {
    let env = Env::new().await;
    env.schedule("a", stc(60).heartbeat_timeout(secs(10)))
        .await
        .unwrap();
    let task = env.poll_now().await.unwrap();
    // Another process only has the token bytes (e.g. as hex).
    let elsewhere = activity_core::TaskToken::from_hex(&task.task_token.to_hex()).unwrap();
    env.protocol
        .record_heartbeat(elsewhere.into(), Some(json("from token")))
        .await
        .unwrap();
    env.protocol
        .record_heartbeat(by_id("a"), Some(json("from id")))
        .await
        .unwrap();
    let d = env.describe("a").await;
    assert_eq!(d.heartbeat_details, Some(json("from id")));
    assert!(d.last_heartbeat_time.is_some());
}

#[tokio::test(start_paused = true)]
async fn s1_4_the_heartbeat_answer_tells_when_the_engine_timed_the_attempt_out() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let _next = env.next_task().await; // attempt 1 timed out, attempt 2 started
    let err = env
        .protocol
        .record_heartbeat(token(&task), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::AttemptTimedOut(TimeoutKind::StartToClose),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.cancel_reason(), Some(CancelReason::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn s1_4_a_canceled_report_without_a_cancel_request_is_refused_and_changes_nothing() {
    let env = Env::new().await;
    env.schedule("a", stc(60).retry(RetryOptions::new().maximum_attempts(2)))
        .await
        .unwrap();
    let task = env.poll_now().await.unwrap();
    for target in [token(&task), by_id("a")] {
        let err = env
            .protocol
            .report_canceled(target, Some(json("stopping")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProtocolError::FailedPrecondition { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("no cancellation was requested"),
            "{err}"
        );
    }
    let d = env.describe("a").await;
    assert_eq!(
        (d.state, d.attempt, d.cancel_requested, d.last_failure),
        (ExecutionState::Started, 1, false, None)
    );
    // The attempt is still the worker's: its result is taken.
    env.complete(&task, "done anyway").await.unwrap();
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("done anyway"))
    );
}

#[tokio::test(start_paused = true)]
async fn s1_4_a_canceled_report_after_the_attempt_timed_out_does_not_cancel_the_execution() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10)
            .heartbeat_timeout(secs(2))
            .retry(RetryOptions::new().maximum_attempts(2)),
    )
    .await
    .unwrap();
    let first = env.poll_now().await.unwrap();
    env.protocol
        .record_heartbeat(token(&first), Some(json(3)))
        .await
        .unwrap();
    let second = env.next_task().await; // attempt 1 timed out (heartbeat)
    assert_eq!(second.info.attempt, 2);
    assert_eq!(second.last_heartbeat_details, Some(json(3)));
    let err = env
        .protocol
        .report_canceled(token(&first), None)
        .await
        .unwrap_err();
    assert_eq!(err.cancel_reason(), Some(CancelReason::TimedOut), "{err:?}");
    let d = env.describe("a").await;
    assert_eq!((d.state, d.attempt), (ExecutionState::Started, 2));
}

#[tokio::test(start_paused = true)]
async fn s1_3_a_final_timeout_carries_the_previous_attempts_failure_as_its_cause() {
    let env = Env::new().await;
    env.schedule("a", stc(10).retry(RetryOptions::new().maximum_attempts(3)))
        .await
        .unwrap();
    let first = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(
            token(&first),
            ApplicationFailure::new("Busy", "later"),
            None,
        )
        .await
        .unwrap();
    let _second = env.next_task().await; // times out (start-to-close)
    let _third = env.next_task().await; // times out too
    let failure = failed(env.outcome("a").await);
    assert_eq!(
        (failure.attempts, failure.retry_state),
        (3, RetryState::MaximumAttemptsReached)
    );
    let Failure::Timeout(last) = &failure.cause else {
        panic!("{failure:?}")
    };
    assert_eq!(last.kind, TimeoutKind::StartToClose);
    // Attempt 3's timeout nests attempt 2's, kept without its own cause.
    let Some(Failure::Timeout(previous)) = last.cause.as_deref() else {
        panic!("{last:?}")
    };
    assert_eq!(
        (previous.kind, &previous.cause),
        (TimeoutKind::StartToClose, &None)
    );
    assert_eq!(env.describe("a").await.state, ExecutionState::TimedOut);
}

// ---------------------------------------------------------------- 1.5 cancellation

#[tokio::test(start_paused = true)]
async fn s1_5_a_scheduled_execution_is_canceled_at_once_and_no_worker_sees_it() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let state = env
        .protocol
        .request_cancel(ExecutionRef::standalone("a"))
        .await
        .unwrap();
    assert_eq!(state, ExecutionState::Canceled);
    assert!(env.poll_now().await.is_none());
    let failure = failed(env.outcome("a").await);
    assert!(matches!(failure.cause, Failure::Canceled(_)));
    assert_eq!(failure.retry_state, RetryState::CancelRequested);
}

#[tokio::test(start_paused = true)]
async fn s1_5_a_started_attempt_learns_of_the_request_through_its_heartbeat_and_reports_canceled() {
    let env = Env::new().await;
    env.schedule("a", stc(60)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let answer = env
        .protocol
        .record_heartbeat(token(&task), None)
        .await
        .unwrap();
    assert!(!answer.cancel_requested);
    env.protocol
        .request_cancel(ExecutionRef::standalone("a"))
        .await
        .unwrap();
    let d = env.describe("a").await;
    assert_eq!(
        (d.state, d.cancel_requested),
        (ExecutionState::Started, true)
    );
    let answer = env
        .protocol
        .record_heartbeat(token(&task), None)
        .await
        .unwrap();
    assert_eq!(answer.cancel_reason(), Some(CancelReason::Requested));
    env.protocol
        .report_canceled(token(&task), Some(json("cleaned up")))
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    let Failure::Canceled(canceled) = &failure.cause else {
        panic!("{failure:?}")
    };
    assert_eq!(canceled.details, Some(json("cleaned up")));
    assert_eq!(env.describe("a").await.state, ExecutionState::Canceled);
}

#[tokio::test(start_paused = true)]
async fn s1_5_an_execution_waiting_in_a_retry_backoff_is_canceled_at_once() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10).retry(RetryOptions::new().initial_interval(secs(60))),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    assert_eq!(
        env.protocol
            .request_cancel(ExecutionRef::standalone("a"))
            .await
            .unwrap(),
        ExecutionState::Canceled
    );
    assert!(env.poll(secs(120)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn s1_5_canceling_an_execution_that_never_started_records_that_it_never_started() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    env.protocol
        .request_cancel(ExecutionRef::standalone("a"))
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    let Failure::Canceled(canceled) = &failure.cause else {
        panic!("{failure:?}")
    };
    assert!(canceled.not_started, "{failure:?}");
    assert!(
        failure.to_string().contains("before it started"),
        "{failure}"
    );
    // One that ran (and waits for its retry) did start.
    env.schedule("b", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    env.protocol
        .request_cancel(ExecutionRef::standalone("b"))
        .await
        .unwrap();
    let failure = failed(env.outcome("b").await);
    assert!(
        matches!(&failure.cause, Failure::Canceled(c) if !c.not_started),
        "{failure:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn s1_5_a_failure_after_a_cancel_request_is_not_retried() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .request_cancel(ExecutionRef::standalone("a"))
        .await
        .unwrap();
    env.protocol
        .fail_activity(token(&task), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    let failure = failed(env.outcome("a").await);
    assert_eq!(failure.retry_state, RetryState::CancelRequested);
    assert_eq!(failure.attempts, 1);
}

// ---------------------------------------------------------------- 1.6 asynchronous completion

#[tokio::test(start_paused = true)]
async fn s1_6_a_pending_attempt_is_completed_from_elsewhere_by_token_with_the_typed_output() {
    let env = Env::new().await;
    let handle = env
        .client
        .start(greet::call(&env.client, "Ada".into()).activity_id("a"))
        .await
        .unwrap();
    let task = env.poll_now().await.unwrap();
    // The worker returned "result pending"; another process holds the token.
    let other = activity_core::Client::new(env.engine.protocol());
    let completion = other.async_completion::<greet>(task.task_token.clone());
    completion.heartbeat(&"working").await.unwrap();
    completion
        .complete(&"Hello from elsewhere".to_owned())
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), "Hello from elsewhere");
    assert!(completion.complete(&"twice".to_owned()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn s1_6_a_pending_attempt_is_completed_or_failed_by_id() {
    let env = Env::new().await;
    env.schedule("a", stc(60)).await.unwrap();
    let _task = env.poll_now().await.unwrap();
    let completion = env
        .client
        .async_completion_by_id::<greet>(ExecutionRef::standalone("a"));
    completion
        .fail(ApplicationFailure::new("E", "retry me"))
        .await
        .unwrap();
    let task2 = env.next_task().await;
    assert_eq!(task2.info.attempt, 2);
    completion.complete(&"by id".to_owned()).await.unwrap();
    assert_eq!(
        env.outcome("a").await,
        ExecutionOutcome::Completed(json("by id"))
    );

    env.schedule("b", stc(60)).await.unwrap();
    let _task = env.poll_now().await.unwrap();
    env.protocol
        .request_cancel(ExecutionRef::standalone("b"))
        .await
        .unwrap();
    env.client
        .async_completion_by_id::<greet>(ExecutionRef::standalone("b"))
        .report_canceled::<()>(None)
        .await
        .unwrap();
    assert_eq!(env.describe("b").await.state, ExecutionState::Canceled);
}

#[tokio::test(start_paused = true)]
async fn s1_6_every_timeout_still_applies_to_a_pending_attempt() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(3600).retry(RetryOptions::new().maximum_attempts(1)),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    let t0 = env.now();
    let real = std::time::Instant::now();
    let failure = failed(env.outcome("a").await);
    assert_eq!(timeout_kind(&failure.cause), TimeoutKind::StartToClose);
    assert_eq!(env.secs_since(t0), 3600.0);
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "a one-hour timeout takes no real hour"
    );
    let err = env.complete(&task, "too late").await.unwrap_err();
    assert_eq!(err.cancel_reason(), Some(CancelReason::TimedOut));
}

// ---------------------------------------------------------------- 2 task queues and dispatch

#[tokio::test(start_paused = true)]
async fn s2_a_task_queue_exists_once_something_is_scheduled_or_polled() {
    let env = Env::new().await;
    let fresh = env
        .protocol
        .describe_task_queue("nobody".into())
        .await
        .unwrap();
    assert_eq!((fresh.backlog, fresh.pollers.len()), (0, 0));
    assert!(env.poll_on("polled", Duration::ZERO).await.is_none());
    let polled = env
        .protocol
        .describe_task_queue("polled".into())
        .await
        .unwrap();
    assert_eq!(polled.pollers[0].identity, "test-worker");
    env.schedule("a", stc(10)).await.unwrap();
    let main = env
        .protocol
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!((main.backlog, main.dispatchable), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn s2_what_is_not_picked_up_stays_backlogged() {
    let env = Env::new().await;
    for id in ["a", "b", "c"] {
        env.schedule(id, stc(10)).await.unwrap();
    }
    env.clock.sleep(secs(24 * 3600)).await;
    let q = env
        .protocol
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!(q.backlog, 3);
    assert_eq!(env.poll_now().await.unwrap().info.activity_id, "a");
}

#[tokio::test(start_paused = true)]
async fn s2_dispatch_is_fifo_by_the_time_an_attempt_became_dispatchable() {
    let env = Env::new().await;
    env.schedule(
        "a",
        stc(10).retry(RetryOptions::new().initial_interval(secs(5))),
    )
    .await
    .unwrap();
    env.schedule("b", stc(10)).await.unwrap();
    let a = env.poll_now().await.unwrap();
    assert_eq!(a.info.activity_id, "a");
    env.protocol
        .fail_activity(token(&a), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap(); // a's attempt 2 is dispatchable at +5 s
    env.clock.sleep(secs(1)).await;
    env.schedule("c", stc(10)).await.unwrap(); // dispatchable at +1 s
    env.clock.sleep(secs(9)).await;
    env.schedule("d", stc(10)).await.unwrap(); // dispatchable at +10 s
    let mut ids = Vec::new();
    for _ in 0..4 {
        let t = env.poll_now().await.unwrap();
        ids.push(format!("{}{}", t.info.activity_id, t.info.attempt));
    }
    assert_eq!(ids, ["b1", "c1", "a2", "d1"]);
}

#[tokio::test(start_paused = true)]
async fn s2_a_long_poll_waits_for_work_without_busy_looping_and_ends_empty() {
    let env = Env::new().await;
    let t0 = env.now();
    assert!(env.poll(secs(30)).await.is_none());
    assert_eq!(env.secs_since(t0), 30.0);
    let protocol = env.protocol.clone();
    let poll = tokio::spawn(async move {
        protocol
            .poll_activity_task(PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(60)))
            .await
    });
    env.clock.sleep(secs(7)).await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = poll.await.unwrap().unwrap().unwrap();
    assert_eq!(task.info.activity_id, "a");
    assert_eq!(
        env.secs_since(t0),
        37.0,
        "woken by the schedule, not by a timer"
    );
}

#[tokio::test(start_paused = true)]
async fn s2_a_worker_on_another_queue_never_sees_the_task() {
    let env = Env::new().await;
    env.protocol
        .schedule_activity(
            ScheduleActivityRequest::new("greet", vec![], stc(10).task_queue("host-1"))
                .with_activity_id("routed"),
        )
        .await
        .unwrap();
    assert!(env.poll_on("host-2", Duration::ZERO).await.is_none());
    assert!(env.poll_now().await.is_none());
    let task = env.poll_on("host-1", Duration::ZERO).await.unwrap();
    assert_eq!(
        (
            task.info.activity_id.as_str(),
            task.info.task_queue.as_str()
        ),
        ("routed", "host-1")
    );
}

#[tokio::test(start_paused = true)]
async fn s2_the_global_rate_limit_is_enforced_across_all_pollers() {
    let env = Env::new().await;
    for i in 0..6 {
        env.schedule(&format!("t{i}"), stc(10)).await.unwrap();
    }
    let t0 = env.now();
    let mut times = Vec::new();
    for i in 0..6 {
        // Two workers alternate; the limit (2 per second, burst 2) is the queue's.
        let task = env
            .protocol
            .poll_activity_task(
                PollActivityTaskRequest::new(QUEUE, format!("w{}", i % 2))
                    .with_wait(secs(60))
                    .with_task_queue_rate_limit(2.0),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.info.activity_id, format!("t{i}"));
        times.push(env.secs_since(t0));
    }
    // The bucket starts empty: one token every 0.5 s.
    assert_eq!(times, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    let q = env
        .protocol
        .describe_task_queue(QUEUE.into())
        .await
        .unwrap();
    assert_eq!(q.rate_limit, Some(2.0));
    let mut pollers: Vec<_> = q.pollers.iter().map(|p| p.identity.clone()).collect();
    pollers.sort();
    assert_eq!(pollers, ["w0", "w1"]);
}

/// Polls `QUEUE` once for up to `max` tasks, waiting up to `wait`.
async fn poll_many(env: &Env, max: usize, wait: Duration, rate: Option<f64>) -> Vec<String> {
    let mut request = PollActivityTaskRequest::new(QUEUE, "batch").with_wait(wait);
    if let Some(rate) = rate {
        request = request.with_task_queue_rate_limit(rate);
    }
    let tasks = env
        .protocol
        .poll_activity_tasks(request, max)
        .await
        .expect("poll succeeds");
    let mut ids = Vec::new();
    for task in tasks {
        assert_eq!(task.info.task_token, task.task_token);
        let described = env.describe(&task.info.activity_id).await;
        assert_eq!(described.state, ExecutionState::Started, "{described:?}");
        ids.push(task.info.activity_id);
    }
    ids
}

#[tokio::test(start_paused = true)]
async fn s2_one_poll_starts_several_attempts_oldest_first_up_to_its_maximum() {
    let env = Env::new().await;
    for id in ["a", "b", "c", "d", "e"] {
        env.schedule(id, stc(10)).await.unwrap();
    }
    assert_eq!(poll_many(&env, 3, secs(0), None).await, ["a", "b", "c"]);
    assert_eq!(poll_many(&env, 10, secs(0), None).await, ["d", "e"]);
    assert!(poll_many(&env, 10, secs(0), None).await.is_empty());
    // Zero counts as one; a long poll answers as soon as there is work.
    env.schedule("f", stc(10)).await.unwrap();
    env.schedule("g", stc(10)).await.unwrap();
    assert_eq!(poll_many(&env, 0, secs(0), None).await, ["f"]);
    let t0 = env.now();
    let protocol = env.protocol.clone();
    let waiting = tokio::spawn(async move {
        protocol
            .poll_activity_tasks(
                PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(60)),
                5,
            )
            .await
    });
    let first = waiting.await.unwrap().unwrap();
    assert_eq!(first.len(), 1, "g was ready at once");
    assert_eq!(env.secs_since(t0), 0.0);
    // Every attempt of a batch is its own: completing one leaves the others started.
    env.schedule("h", stc(10)).await.unwrap();
    env.schedule("i", stc(10)).await.unwrap();
    let batch = env
        .protocol
        .poll_activity_tasks(
            PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(0)),
            2,
        )
        .await
        .unwrap();
    env.protocol
        .complete_activity(token(&batch[1]), Payload::json("done").unwrap())
        .await
        .unwrap();
    assert_eq!(env.describe("i").await.state, ExecutionState::Completed);
    assert_eq!(env.describe("h").await.state, ExecutionState::Started);
}

#[tokio::test(start_paused = true)]
async fn s2_a_poll_for_several_attempts_stays_within_the_global_rate_limit() {
    let env = Env::new().await;
    for i in 0..6 {
        env.schedule(&format!("t{i}"), stc(10)).await.unwrap();
    }
    let t0 = env.now();
    // 2 per second, burst 2; the bucket starts empty.
    assert_eq!(poll_many(&env, 10, secs(60), Some(2.0)).await, ["t0"]);
    assert_eq!(env.secs_since(t0), 0.5);
    env.clock.sleep(secs(5)).await; // the bucket fills up to its burst of 2
    assert_eq!(poll_many(&env, 10, secs(60), Some(2.0)).await, ["t1", "t2"]);
    assert_eq!(env.secs_since(t0), 5.5);
    assert_eq!(poll_many(&env, 10, secs(60), Some(2.0)).await, ["t3"]);
    assert_eq!(env.secs_since(t0), 6.0);
}

#[tokio::test(start_paused = true)]
async fn s2_a_poll_for_several_attempts_stops_adding_once_their_inputs_reach_4_mib() {
    let env = Env::new().await;
    let big = "x".repeat(1536 * 1024); // 1.5 MiB of input each
    for id in ["a", "b", "c", "d"] {
        env.protocol
            .schedule_activity(
                ScheduleActivityRequest::new(
                    "greet",
                    vec![Payload::json(&big).unwrap()],
                    stc(10).task_queue(QUEUE),
                )
                .with_activity_id(id),
            )
            .await
            .unwrap();
    }
    // a + b = 3 MiB is under the bound, so c is added; then 4.5 MiB stops the claim.
    assert_eq!(poll_many(&env, 10, secs(0), None).await, ["a", "b", "c"]);
    assert_eq!(poll_many(&env, 10, secs(0), None).await, ["d"]);
}

#[tokio::test(start_paused = true)]
async fn s2_a_poll_that_went_away_is_handed_nothing() {
    let env = Env::new().await;
    // A poll waits (the engine would start new work for it in the scheduling
    // transaction), then its caller goes away.
    let protocol = env.protocol.clone();
    let gone = tokio::spawn(async move {
        protocol
            .poll_activity_tasks(
                PollActivityTaskRequest::new(QUEUE, "gone").with_wait(secs(60)),
                5,
            )
            .await
    });
    env.clock.sleep(secs(1)).await;
    gone.abort();
    let _ = gone.await;
    env.schedule("a", stc(10)).await.unwrap();
    assert_eq!(env.describe("a").await.state, ExecutionState::Scheduled);
    let task = env.poll_now().await.expect("the attempt is still there");
    assert_eq!(task.info.activity_id, "a");
    assert_eq!(env.describe("a").await.state, ExecutionState::Started);
}

#[tokio::test(start_paused = true)]
async fn s2_waiting_polls_are_handed_new_work_longest_waiting_first() {
    let env = Env::new().await;
    let mut polls = Vec::new();
    for who in ["first", "second"] {
        let protocol = env.protocol.clone();
        polls.push(tokio::spawn(async move {
            protocol
                .poll_activity_tasks(
                    PollActivityTaskRequest::new(QUEUE, who).with_wait(secs(60)),
                    2,
                )
                .await
                .unwrap()
        }));
        env.clock.sleep(secs(1)).await;
    }
    let t0 = env.now();
    for id in ["a", "b", "c"] {
        env.schedule(id, stc(10)).await.unwrap();
    }
    let ids = |tasks: Vec<ActivityTask>| -> Vec<String> {
        tasks.into_iter().map(|t| t.info.activity_id).collect()
    };
    let second = polls.pop().unwrap().await.unwrap();
    let first = polls.pop().unwrap().await.unwrap();
    // Each schedule is its own transaction: `first` takes a (it waited longest),
    // `second` takes b, and c goes to whichever asks again first.
    assert_eq!(ids(first), ["a"]);
    assert_eq!(ids(second), ["b"]);
    assert_eq!(
        env.secs_since(t0),
        0.0,
        "answered without waiting for a timer"
    );
    assert_eq!(env.poll_now().await.unwrap().info.activity_id, "c");
    let worker = env.describe("a").await.worker_identity;
    assert_eq!(worker.as_deref(), Some("first"));
}

/// docs/semantics.md §2: an attempt started for a poller that gave up before it
/// received it (its caller's deadline passed) goes back to its queue at once and
/// keeps its number, instead of waiting out its start-to-close timeout. Real
/// clock: impatient pollers give up after 5–60 ms while activities arrive, and one
/// patient poller takes whatever they leave; every activity reaches a poller that
/// receives it, once, at its first attempt, long before the 10-minute timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_attempts_started_for_pollers_that_gave_up_go_back_to_the_queue_at_once() {
    const N: usize = 2_000;
    let env = std::sync::Arc::new(Env::new().await);
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let log = received.clone();
    let take = move |env: std::sync::Arc<Env>,
                     tasks: Vec<activity_core::protocol::ActivityTask>| {
        let received = log.clone();
        async move {
            for task in tasks {
                received
                    .lock()
                    .unwrap()
                    .push((task.info.activity_id.clone(), task.info.attempt));
                env.complete(&task, "ok")
                    .await
                    .expect("the receiver completes it");
            }
        }
    };
    let mut pollers = Vec::new();
    for p in 0..8u64 {
        let (env, done, take) = (env.clone(), done.clone(), take.clone());
        pollers.push(tokio::spawn(async move {
            let mut patience = 5 + p * 7;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // A wait longer than the patience: the server would still be
                // waiting when the caller gives up.
                let request = PollActivityTaskRequest::new(QUEUE, format!("impatient-{p}"))
                    .with_wait(secs(2));
                let poll = env.protocol.poll_activity_tasks(request, 4);
                let gave_up = Duration::from_millis(patience);
                patience = 5 + (patience * 31 + 7) % 56;
                if let Ok(tasks) = tokio::time::timeout(gave_up, poll).await {
                    take(env.clone(), tasks.expect("poll succeeds")).await;
                }
            }
        }));
    }
    let patient = {
        let (env, done, take) = (env.clone(), done.clone(), take.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let request = PollActivityTaskRequest::new(QUEUE, "patient").with_wait(secs(1));
                let tasks = env.protocol.poll_activity_tasks(request, 16).await;
                take(env.clone(), tasks.expect("poll succeeds")).await;
            }
        })
    };

    let started = std::time::Instant::now();
    for i in 0..N {
        env.schedule(&format!("a-{i}"), stc(600)).await.unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let deadline = started + Duration::from_secs(120);
    while received.lock().unwrap().len() < N && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    patient.await.unwrap();
    for poller in pollers {
        poller.await.unwrap();
    }

    let received = received.lock().unwrap().clone();
    let mut ids: Vec<&str> = received.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        N,
        "every activity reached a poller that received it"
    );
    assert_eq!(received.len(), N, "each exactly once");
    assert!(
        received.iter().all(|(_, attempt)| *attempt == 1),
        "a released attempt keeps its number"
    );
    for i in [0, N / 2, N - 1] {
        assert_eq!(
            env.describe(&format!("a-{i}")).await.state,
            ExecutionState::Completed
        );
    }
}
