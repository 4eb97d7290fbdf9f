//! The protocol through gRPC: the real engine behind `ActivityService` on a
//! loopback port, driven through `RemoteProtocol` (and the typed client).

mod common;

use std::{sync::Arc, time::Instant};

use activity_core::{
    activity,
    context::HeartbeatSink,
    failure::{ActivityFailure, ApplicationFailure, Failure, RetryState, TimeoutKind},
    options::{ActivityOptions, RetryOptions},
    protocol::{
        ClosedReason, ExecutionOutcome, ExecutionRef, ExecutionState, PollActivityTaskRequest,
        ProtocolError, TaskTarget,
    },
    ActivityCallError, ActivityContext, ActivityError, ActivityProtocol, Client, Payload, Registry,
    TaskToken,
};
use activity_engine::EngineConfig;
use activity_remote::{proto, RemoteConfig, RemoteProtocol};
use common::*;
use tokio::sync::mpsc;

/// Greets someone, reporting progress.
#[activity(
    start_to_close = "30s",
    retry(initial_interval = "10ms", maximum_attempts = 3)
)]
async fn remote_greet(ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    ctx.heartbeat(&format!("greeting {name}"))?;
    if name == "nobody" {
        return Err(ActivityError::non_retryable("NoOne", "nobody to greet"));
    }
    Ok(format!("Hello, {name}!"))
}

/// Forwards heartbeats to the mini worker below, which sends the latest one.
struct ChannelSink(mpsc::UnboundedSender<Option<Payload>>);

impl HeartbeatSink for ChannelSink {
    fn record(&self, details: Option<Payload>) {
        let _ = self.0.send(details);
    }
}

/// A minimal worker over any protocol: polls, runs the registered activity,
/// sends its latest heartbeat, then completes or fails the attempt.
async fn work_one(protocol: &dyn ActivityProtocol) -> TaskToken {
    let registry = Registry::from_inventory().expect("registry");
    let task = next_task(protocol).await;
    let (sender, mut heartbeats) = mpsc::unbounded_channel();
    let (ctx, _cancel) = ActivityContext::new(
        task.info.clone(),
        task.last_heartbeat_details.clone(),
        Some(Arc::new(ChannelSink(sender))),
    );
    let result = registry
        .invoke(&task.info.activity_type, ctx, &task.input)
        .await;
    let mut latest = None;
    while let Ok(details) = heartbeats.try_recv() {
        latest = details;
    }
    let target = TaskTarget::Token(task.task_token.clone());
    if latest.is_some() {
        let answer = protocol
            .record_heartbeat(target.clone(), latest)
            .await
            .expect("heartbeat recorded");
        assert!(!answer.cancel_requested);
    }
    match result {
        Ok(payload) => protocol.complete_activity(target, payload).await,
        Err(error) => match error.into_failure() {
            Some(Failure::Application(failure)) => {
                protocol.fail_activity(target, failure, None).await
            }
            other => panic!("unexpected activity error {other:?}"),
        },
    }
    .expect("result recorded");
    task.task_token
}

#[tokio::test]
async fn a_typed_stub_runs_remotely_through_schedule_poll_heartbeat_complete() {
    let served = Served::start().await;
    // The one-line switch: a remote protocol in place of `engine.protocol()`.
    let client_side: Arc<dyn ActivityProtocol> = Arc::new(
        RemoteProtocol::connect(served.url())
            .await
            .expect("connects"),
    );
    let client = Client::new(client_side.clone()).with_task_queue(QUEUE);
    let worker_side = served.remote().await;

    let worker = tokio::spawn(async move { work_one(&*worker_side).await });
    let text: String = bounded(
        "the typed call",
        remote_greet::call(&client, "Ada".into()).activity_id("greet-ada"),
    )
    .await
    .expect("the activity completes");
    assert_eq!(text, "Hello, Ada!");
    bounded("the worker", worker).await.expect("worker ran");

    let description = client_side
        .describe_execution(ExecutionRef::standalone("greet-ada"))
        .await
        .expect("described");
    assert_eq!(description.state, ExecutionState::Completed);
    assert_eq!(description.activity_type, "remote_greet");
    assert_eq!(description.attempt, 1);
    assert_eq!(
        description.worker_identity.as_deref(),
        Some("remote-test-worker")
    );
    assert_eq!(description.heartbeat_details, Some(json("greeting Ada")));
    assert_eq!(description.options.start_to_close, secs(30));
    assert_eq!(description.options.task_queue, QUEUE);
    assert_eq!(description.options.retry_policy.maximum_attempts, 3);
    assert_eq!(
        description.options.retry_policy.initial_interval,
        millis(10)
    );
    assert!(description.started_time.is_some() && description.close_time.is_some());
    assert_eq!(
        description.outcome,
        Some(ExecutionOutcome::Completed(json("Hello, Ada!")))
    );
    // The remote answer is the engine's answer, field for field.
    let in_process = served
        .engine
        .protocol()
        .describe_execution(ExecutionRef::standalone("greet-ada"))
        .await
        .expect("described in-process");
    assert_eq!(description, in_process);
}

#[tokio::test]
async fn a_non_retryable_failure_reaches_the_typed_caller_with_every_field() {
    let served = Served::start().await;
    let client = Client::new(served.remote().await).with_task_queue(QUEUE);
    let worker_side = served.remote().await;
    let worker = tokio::spawn(async move { work_one(&*worker_side).await });
    let err = bounded(
        "the typed call",
        remote_greet::call(&client, "nobody".into()).activity_id("greet-nobody"),
    )
    .await
    .expect_err("the activity fails");
    bounded("the worker", worker).await.expect("worker ran");
    let ActivityCallError::Failed(failure) = err else {
        panic!("expected an execution failure, got {err:?}")
    };
    assert_eq!(failure.activity_type, "remote_greet");
    assert_eq!(failure.activity_id, "greet-nobody");
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    let cause = failure.application().expect("an application failure");
    assert_eq!(cause.error_type, "NoOne");
    assert_eq!(cause.message, "nobody to greet");
    assert!(cause.non_retryable);
}

#[tokio::test]
async fn a_failed_attempt_is_retried_with_the_flushed_details_and_then_completes() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let options = options().retry(
        RetryOptions::new()
            .initial_interval(secs(60))
            .maximum_attempts(3),
    );
    schedule(&*remote, "retry-me", options)
        .await
        .expect("scheduled");

    let first = next_task(&*remote).await;
    assert_eq!(first.info.attempt, 1);
    assert_eq!(first.input, vec![json("retry-me")]);
    assert!(first.info.started_time >= first.info.scheduled_time);
    let failure = ApplicationFailure::new("Flaky", "try again")
        .with_details(json(serde_json_value(7)))
        .with_next_retry_delay(millis(20));
    remote
        .fail_activity(
            TaskTarget::Token(first.task_token.clone()),
            failure.clone(),
            Some(json("halfway")),
        )
        .await
        .expect("failure recorded");

    // The failure's own delay (20 ms) wins over the 60 s backoff.
    let second = next_task(&*remote).await;
    assert_eq!(second.info.attempt, 2);
    assert_eq!(second.last_heartbeat_details, Some(json("halfway")));
    let description = remote
        .describe_execution(ExecutionRef::standalone("retry-me"))
        .await
        .expect("described");
    assert_eq!(description.state, ExecutionState::Started);
    assert_eq!(
        description.last_failure,
        Some(Failure::Application(failure))
    );

    // The first attempt's token is stale now.
    let stale = remote
        .complete_activity(TaskTarget::Token(first.task_token), json("late"))
        .await
        .expect_err("stale token refused");
    assert!(
        matches!(
            &stale,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::AttemptSuperseded,
                ..
            }
        ),
        "{stale:?}"
    );

    remote
        .complete_activity(TaskTarget::Token(second.task_token), json("done"))
        .await
        .expect("completed");
    assert_eq!(
        outcome(&*remote, "retry-me").await,
        ExecutionOutcome::Completed(json("done"))
    );
}

fn serde_json_value(n: u32) -> std::collections::BTreeMap<String, u32> {
    [("code".to_owned(), n)].into_iter().collect()
}

#[tokio::test]
async fn cancel_before_start_and_while_started() {
    let served = Served::start().await;
    let remote = served.remote().await;

    schedule(&*remote, "cancel-early", options())
        .await
        .expect("scheduled");
    let state = remote
        .request_cancel(ExecutionRef::standalone("cancel-early"))
        .await
        .expect("cancel requested");
    assert_eq!(state, ExecutionState::Canceled);
    let ExecutionOutcome::Failed(failure) = outcome(&*remote, "cancel-early").await else {
        panic!("a canceled execution has a failure")
    };
    assert!(matches!(failure.cause, Failure::Canceled(_)), "{failure:?}");
    assert_eq!(failure.retry_state, RetryState::CancelRequested);

    schedule(&*remote, "cancel-late", options())
        .await
        .expect("scheduled");
    let task = next_task(&*remote).await;
    let state = remote
        .request_cancel(ExecutionRef::standalone("cancel-late"))
        .await
        .expect("cancel requested");
    assert_eq!(state, ExecutionState::Started);
    let answer = remote
        .record_heartbeat(TaskTarget::Token(task.task_token.clone()), None)
        .await
        .expect("heartbeat");
    assert!(answer.cancel_requested);
    remote
        .report_canceled(TaskTarget::Token(task.task_token), Some(json("cleaned up")))
        .await
        .expect("cancel acknowledged");
    let ExecutionOutcome::Failed(failure) = outcome(&*remote, "cancel-late").await else {
        panic!("a canceled execution has a failure")
    };
    let Failure::Canceled(canceled) = &failure.cause else {
        panic!("cause is not a cancellation: {failure:?}")
    };
    assert_eq!(canceled.details, Some(json("cleaned up")));
    let description = remote
        .describe_execution(ExecutionRef::standalone("cancel-late"))
        .await
        .expect("described");
    assert_eq!(description.state, ExecutionState::Canceled);
    assert!(description.cancel_requested);
}

#[tokio::test]
async fn long_polls_pass_the_wait_through() {
    let served = Served::start().await;
    let remote = served.remote().await;

    // An empty queue: the poll waits (about) the time asked, then answers None.
    let started = Instant::now();
    let none = remote
        .poll_activity_task(PollActivityTaskRequest::new(QUEUE, "w").with_wait(millis(300)))
        .await
        .expect("poll");
    assert!(none.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= millis(250) && waited < secs(5),
        "waited {waited:?}"
    );

    // A waiting poll is woken by a schedule.
    let poller = {
        let remote = remote.clone();
        tokio::spawn(async move {
            remote
                .poll_activity_task(PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(5)))
                .await
        })
    };
    tokio::time::sleep(millis(50)).await;
    schedule(&*remote, "wake", options())
        .await
        .expect("scheduled");
    let task = bounded("the woken poll", poller)
        .await
        .expect("poll task")
        .expect("poll")
        .expect("a task");
    assert_eq!(task.info.activity_id, "wake");

    // wait_outcome: None while running, woken by the completion.
    let none = remote
        .wait_outcome(ExecutionRef::standalone("wake"), millis(100))
        .await
        .expect("wait");
    assert_eq!(none, None);
    let waiter = {
        let remote = remote.clone();
        tokio::spawn(async move {
            remote
                .wait_outcome(ExecutionRef::standalone("wake"), secs(5))
                .await
        })
    };
    tokio::time::sleep(millis(50)).await;
    remote
        .complete_activity(TaskTarget::Token(task.task_token), json("awake"))
        .await
        .expect("completed");
    let outcome = bounded("the woken wait", waiter)
        .await
        .expect("wait task")
        .expect("wait");
    assert_eq!(outcome, Some(ExecutionOutcome::Completed(json("awake"))));

    // The queue description crosses the wire too.
    let queue = remote
        .describe_task_queue(QUEUE.to_owned())
        .await
        .expect("described");
    assert_eq!(queue.name, QUEUE);
    assert_eq!(queue.backlog, 0);
    assert!(queue.pollers.iter().any(|p| p.identity == "w"), "{queue:?}");
}

/// The same refused call, remote and in-process, gives the same error.
async fn same_error<F>(served: &Served, remote: &dyn ActivityProtocol, call: F) -> ProtocolError
where
    F: for<'a> Fn(
        &'a dyn ActivityProtocol,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), ProtocolError>> + Send + 'a>,
    >,
{
    let remote_error = call(remote).await.expect_err("refused remotely");
    let local = served.engine.protocol();
    let local_error = call(&*local).await.expect_err("refused in-process");
    assert_eq!(remote_error, local_error);
    remote_error
}

#[tokio::test]
async fn every_protocol_error_round_trips_exactly() {
    let served =
        Served::start_with(EngineConfig::in_memory().with_max_payload_size(1024), |s| s).await;
    let remote = served.remote().await;

    // InvalidOptions naming the field; nothing is scheduled.
    let err = schedule(
        &*remote,
        "bad-options",
        ActivityOptions::new().task_queue(QUEUE),
    )
    .await
    .expect_err("refused");
    let ProtocolError::InvalidOptions(invalid) = &err else {
        panic!("expected InvalidOptions, got {err:?}")
    };
    assert_eq!(invalid.problems[0].field, "start_to_close");
    assert!(err.to_string().contains("schedule_to_close"), "{err}");
    let zero = schedule(&*remote, "zero", options_with_zero_heartbeat())
        .await
        .expect_err("refused");
    assert!(
        matches!(&zero, ProtocolError::InvalidOptions(o) if o.problems.iter().any(|p| p.field == "heartbeat_timeout")),
        "{zero:?}"
    );

    // NotFound.
    let err = same_error(&served, &*remote, |p| {
        Box::pin(async move {
            p.describe_execution(ExecutionRef::standalone("bad-options"))
                .await
                .map(drop)
        })
    })
    .await;
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");

    // PayloadTooLarge, from the engine's payload limit.
    let big = "x".repeat(2000);
    let err = remote
        .schedule_activity(
            activity_core::protocol::ScheduleActivityRequest::new(
                "remote_greet",
                vec![json(&big)],
                options(),
            )
            .with_activity_id("big"),
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ProtocolError::PayloadTooLarge { limit: 1024, .. }),
        "{err:?}"
    );

    // AlreadyExists.
    schedule(&*remote, "twice", options())
        .await
        .expect("scheduled");
    let err = schedule(&*remote, "twice", options())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ProtocolError::AlreadyExists { .. }),
        "{err:?}"
    );

    // InvalidToken.
    let err = same_error(&served, &*remote, |p| {
        Box::pin(p.complete_activity(
            TaskTarget::Token(TaskToken::from_bytes(b"forged".to_vec())),
            json(1),
        ))
    })
    .await;
    assert!(matches!(err, ProtocolError::InvalidToken { .. }), "{err:?}");

    // InvalidArgument.
    let err = same_error(&served, &*remote, |p| {
        Box::pin(async move { p.describe_task_queue(String::new()).await.map(drop) })
    })
    .await;
    assert!(
        matches!(err, ProtocolError::InvalidArgument { .. }),
        "{err:?}"
    );

    // AlreadyClosed(ExecutionClosed(Completed)): a second completion.
    let task = next_task(&*remote).await;
    let token = TaskTarget::Token(task.task_token.clone());
    remote
        .complete_activity(token.clone(), json("once"))
        .await
        .expect("completed");
    let stale = token.clone();
    let err = same_error(&served, &*remote, move |p| {
        let stale = stale.clone();
        Box::pin(async move { p.record_heartbeat(stale, None).await.map(drop) })
    })
    .await;
    let ProtocolError::AlreadyClosed { what, reason } = &err else {
        panic!("expected AlreadyClosed, got {err:?}")
    };
    assert_eq!(
        *reason,
        ClosedReason::ExecutionClosed(ExecutionState::Completed)
    );
    assert!(what.contains("twice"), "{what}");
    assert_eq!(
        err.cancel_reason(),
        Some(activity_core::CancelReason::ExecutionClosed)
    );

    // Unavailable, from an engine that closed (the service still runs).
    served.engine.close().await;
    let err = remote
        .describe_execution(ExecutionRef::standalone("twice"))
        .await
        .expect_err("engine closed");
    assert!(err.is_retryable(), "{err:?}");
}

fn options_with_zero_heartbeat() -> ActivityOptions {
    options().heartbeat_timeout(millis(0))
}

#[tokio::test]
async fn a_timed_out_attempt_is_refused_with_the_timeout_as_reason() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let options = options().heartbeat_timeout(millis(100)).retry(
        RetryOptions::new()
            .initial_interval(secs(60))
            .maximum_attempts(5),
    );
    schedule(&*remote, "hb", options).await.expect("scheduled");
    let task = next_task(&*remote).await;
    assert_eq!(task.info.heartbeat_timeout, Some(millis(100)));

    // No heartbeat: the engine times the attempt out and schedules attempt 2.
    bounded("the heartbeat timeout", async {
        loop {
            let d = remote
                .describe_execution(ExecutionRef::standalone("hb"))
                .await
                .expect("described");
            if d.attempt == 2 {
                let Some(Failure::Timeout(timeout)) = &d.last_failure else {
                    panic!("attempt 1 did not time out: {d:?}")
                };
                assert_eq!(timeout.kind, TimeoutKind::Heartbeat);
                break;
            }
            tokio::time::sleep(millis(20)).await;
        }
    })
    .await;
    let err = remote
        .record_heartbeat(TaskTarget::Token(task.task_token), Some(json("late")))
        .await
        .expect_err("the attempt timed out");
    assert!(
        matches!(
            err,
            ProtocolError::AlreadyClosed {
                reason: ClosedReason::AttemptTimedOut(TimeoutKind::Heartbeat),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.cancel_reason(),
        Some(activity_core::CancelReason::TimedOut)
    );
}

#[tokio::test]
async fn an_outcome_failure_keeps_its_timeout_cause() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let options = options()
        .start_to_close(millis(100))
        .retry(RetryOptions::new().maximum_attempts(1));
    schedule(&*remote, "slow", options)
        .await
        .expect("scheduled");
    let _task = next_task(&*remote).await;
    let ExecutionOutcome::Failed(failure) = outcome(&*remote, "slow").await else {
        panic!("the attempt should time out")
    };
    let expected = ActivityFailure::new(
        "remote_greet",
        "slow",
        1,
        RetryState::MaximumAttemptsReached,
        failure.cause.clone(),
    );
    assert_eq!(failure, expected);
    let Failure::Timeout(timeout) = &failure.cause else {
        panic!("cause is not a timeout: {failure:?}")
    };
    assert_eq!(timeout.kind, TimeoutKind::StartToClose);
}

#[tokio::test]
async fn with_auth_on_requests_without_or_with_a_wrong_token_are_refused() {
    let served =
        Served::start_with(EngineConfig::in_memory(), |s| s.with_bearer_token("s3cret")).await;

    // Without a token: refused, and the message says what to set.
    let anonymous = served.connect(RemoteConfig::new(served.url())).await;
    let err = schedule(&anonymous, "anon", options())
        .await
        .expect_err("refused");
    let ProtocolError::InvalidArgument { field, message } = &err else {
        panic!("expected a refusal on `authorization`, got {err:?}")
    };
    assert_eq!(field, "authorization");
    assert!(message.contains("with_bearer_token"), "{message}");
    assert!(!err.is_retryable());

    // The raw gRPC status is UNAUTHENTICATED.
    let mut raw = proto::activity_protocol_client::ActivityProtocolClient::connect(served.url())
        .await
        .expect("raw client");
    let status = raw
        .describe_task_queue(proto::DescribeTaskQueueRequest {
            task_queue: QUEUE.into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    // A wrong token: refused.
    let wrong = served
        .connect(RemoteConfig::new(served.url()).with_bearer_token("guess"))
        .await;
    let err = wrong
        .describe_task_queue(QUEUE.into())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, message } if field == "authorization" && message.contains("does not match")),
        "{err:?}"
    );

    // Nothing was scheduled by the refused calls.
    let local = served.engine.protocol();
    assert!(matches!(
        local
            .describe_execution(ExecutionRef::standalone("anon"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));

    // The right token: served.
    let trusted = served
        .connect(RemoteConfig::new(served.url()).with_bearer_token("s3cret"))
        .await;
    schedule(&trusted, "trusted", options())
        .await
        .expect("scheduled");
    let description = trusted
        .describe_execution(ExecutionRef::standalone("trusted"))
        .await
        .expect("described");
    assert_eq!(description.state, ExecutionState::Scheduled);
}

#[tokio::test]
async fn an_oversized_grpc_message_is_refused_clearly_and_has_no_effect() {
    let served = Served::start_with(EngineConfig::in_memory(), |s| {
        s.with_max_request_size(64 * 1024)
    })
    .await;
    let remote = served.remote().await;
    let big = "y".repeat(100 * 1024);
    let err = remote
        .schedule_activity(
            activity_core::protocol::ScheduleActivityRequest::new(
                "remote_greet",
                vec![json(&big)],
                options(),
            )
            .with_activity_id("huge"),
        )
        .await
        .expect_err("refused");
    let ProtocolError::PayloadTooLarge { what, size, limit } = &err else {
        panic!("expected PayloadTooLarge, got {err:?}")
    };
    assert_eq!(*limit, 64 * 1024);
    assert!(*size > 100 * 1024, "{size}");
    assert!(what.contains("ScheduleActivity"), "{what}");
    assert!(err.to_string().contains("65536"), "{err}");
    assert!(!err.is_retryable());

    // No effect, and the connection still serves.
    let missing = remote
        .describe_execution(ExecutionRef::standalone("huge"))
        .await
        .expect_err("nothing scheduled");
    assert!(
        matches!(missing, ProtocolError::NotFound { .. }),
        "{missing:?}"
    );
    schedule(&*remote, "small", options())
        .await
        .expect("a small request is served");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_retryable() {
    // A port nobody listens on: bind, note it, close.
    let addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{addr}");
    let err = RemoteProtocol::connect(url.as_str())
        .await
        .expect_err("nobody listens");
    assert!(err.is_retryable(), "{err}");

    let lazy: Arc<dyn ActivityProtocol> =
        Arc::new(RemoteProtocol::connect_lazy(url.as_str()).expect("a valid endpoint"));
    let err = bounded(
        "a refused call",
        lazy.describe_execution(ExecutionRef::standalone("x")),
    )
    .await
    .expect_err("nobody listens");
    assert!(
        matches!(&err, ProtocolError::Unavailable { message } if message.contains(&url)),
        "{err:?}"
    );

    // Setup errors are reported at once and are not retryable.
    let bad = RemoteProtocol::connect_lazy("not a url").expect_err("invalid");
    assert!(!bad.is_retryable());
    let bad = RemoteProtocol::connect_lazy(RemoteConfig::new(url).with_bearer_token("a\nb"))
        .expect_err("invalid token");
    assert!(!bad.is_retryable(), "{bad}");
}

#[tokio::test]
async fn a_server_restart_on_the_same_port_is_survived() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("activities.db");
    let served = Served::start_with(EngineConfig::file(&db), |s| s).await;
    let addr = served.addr;
    let remote = served.remote().await;
    schedule(&*remote, "durable", options())
        .await
        .expect("scheduled");

    served.stop().await;

    // While down: every call is Unavailable, and retryable.
    for _ in 0..3 {
        let err = bounded(
            "a call while down",
            remote.describe_execution(ExecutionRef::standalone("durable")),
        )
        .await
        .expect_err("the server is down");
        assert!(
            matches!(&err, ProtocolError::Unavailable { message } if message.contains("DescribeExecution") && message.contains(&addr.to_string())),
            "{err:?}"
        );
    }

    // Back on the same port, on the same file.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the port");
    let served = Served::start_on(listener, EngineConfig::file(&db), |s| s).await;

    // The same RemoteProtocol reconnects by itself (a caller retries Unavailable).
    let description = bounded("the reconnection", async {
        loop {
            match remote
                .describe_execution(ExecutionRef::standalone("durable"))
                .await
            {
                Ok(description) => return description,
                Err(err) if err.is_retryable() => tokio::time::sleep(millis(20)).await,
                Err(err) => panic!("not retryable: {err:?}"),
            }
        }
    })
    .await;
    assert_eq!(description.state, ExecutionState::Scheduled);

    let task = next_task(&*remote).await;
    assert_eq!(task.info.activity_id, "durable");
    remote
        .complete_activity(TaskTarget::Token(task.task_token), json("survived"))
        .await
        .expect("completed");
    assert_eq!(
        outcome(&*remote, "durable").await,
        ExecutionOutcome::Completed(json("survived"))
    );
    served.stop().await;
}

#[tokio::test]
async fn a_malformed_request_is_refused_naming_the_field_and_the_server_keeps_serving() {
    let served = Served::start().await;
    let mut raw = proto::activity_protocol_client::ActivityProtocolClient::connect(served.url())
        .await
        .expect("raw client");
    let status = raw
        .complete_activity(proto::CompleteActivityRequest {
            target: None,
            result: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("`target`"),
        "{}",
        status.message()
    );

    let status = raw
        .poll_activity_tasks(proto::PollActivityTasksRequest {
            request: Some(proto::PollActivityTaskRequest {
                task_queue: QUEUE.into(),
                identity: "w".into(),
                wait: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
                rest: Default::default(),
            }),
            max_tasks: 1,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("`request.wait`") && status.message().contains("non-negative"),
        "{}",
        status.message()
    );

    // Model bytes that do not decode are refused naming the field, and change
    // nothing.
    let status = raw
        .fail_activity(proto::FailActivityRequest {
            target: Some(proto::TaskTarget {
                target: Some(proto::task_target::Target::Execution(proto::ExecutionRef {
                    activity_id: "garbled".into(),
                    workflow_id: None,
                    workflow_run_id: None,
                })),
            }),
            failure: vec![0xc1, 0xff, 0x00].into(),
            last_heartbeat_details: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("`failure`") && status.message().contains("ApplicationFailure"),
        "{}",
        status.message()
    );
    let status = raw
        .describe_task_queue(proto::DescribeTaskQueueRequest {
            task_queue: QUEUE.into(),
        })
        .await
        .expect("still serving")
        .into_inner();
    let queue: activity_core::protocol::TaskQueueDescription =
        activity_core::codec::from_slice(&status.description).expect("model bytes");
    assert_eq!(queue.name, QUEUE);

    let remote = served.remote().await;
    schedule(&*remote, "after-garbage", options())
        .await
        .expect("still serving");
}

/// Ten thousand calls in flight at once on one connection (a worker's polls and
/// completions, a client awaiting many results) are all served: the server does
/// not take the burst of small messages for a flood and close the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_on_one_connection_are_all_answered() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let calls = (0..10_000).map(|i| {
        let remote = remote.clone();
        tokio::spawn(async move {
            remote
                .describe_execution(ExecutionRef::standalone(format!("missing-{i}")))
                .await
        })
    });
    let answers = bounded(
        "10,000 concurrent calls",
        activity_core::workflow::join_all(calls),
    )
    .await;
    for answer in answers {
        match answer.expect("call task") {
            Err(ProtocolError::NotFound { .. }) => {}
            other => panic!("expected NotFound from the engine, got {other:?}"),
        }
    }
    served.stop().await;
}
