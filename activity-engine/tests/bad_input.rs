//! Bad input is answered with clear errors and leaves stored state unchanged:
//! invalid options, oversized payloads and option lists, malformed, altered and stale tokens,
//! second completions, unknown ids, invalid request fields.

mod common;

use std::time::Duration;

use activity_core::{
    failure::ApplicationFailure,
    options::{ActivityOptions, RetryOptions, MAX_NAME_LEN, MAX_NON_RETRYABLE_ERROR_TYPES},
    payload::Payload,
    protocol::{
        ClosedReason, ExecutionRef, ExecutionState, PollActivityTaskRequest, ProtocolError,
        ScheduleActivityRequest, TaskTarget,
    },
    TaskToken,
};
use activity_engine::EngineConfig;
use common::*;

fn stc(s: u64) -> ActivityOptions {
    ActivityOptions::new().start_to_close(secs(s))
}

#[tokio::test(start_paused = true)]
async fn invalid_options_list_every_broken_rule_and_schedule_nothing() {
    let env = Env::new().await;
    let err = env
        .schedule(
            "a",
            ActivityOptions::new().heartbeat_timeout(secs(0)).retry(
                RetryOptions::new()
                    .initial_interval(secs(10))
                    .maximum_interval(secs(1)),
            ),
        )
        .await
        .unwrap_err();
    let ProtocolError::InvalidOptions(options) = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<_> = options.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "heartbeat_timeout",
            "start_to_close",
            "retry.maximum_interval"
        ]
    );
    assert!(!err.is_retryable());
    let err = env
        .protocol
        .schedule_activity(ScheduleActivityRequest::new("greet", vec![], stc(1)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`task_queue` must be set"),
        "{err}"
    );
    assert!(matches!(
        env.protocol
            .describe_execution(ExecutionRef::standalone("a"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));
    assert_eq!(
        env.protocol
            .describe_task_queue(QUEUE.into())
            .await
            .unwrap()
            .backlog,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_option_lists_and_names_are_refused_naming_the_field() {
    let env = Env::new().await;
    let problems = |err: ProtocolError| match err {
        ProtocolError::InvalidOptions(options) => options
            .problems
            .into_iter()
            .map(|p| (p.field, p.rule))
            .collect::<Vec<_>>(),
        other => panic!("expected InvalidOptions, got {other:?}"),
    };
    let mut retry = RetryOptions::new();
    for n in 0..=MAX_NON_RETRYABLE_ERROR_TYPES {
        retry = retry.non_retryable(format!("Error{n}"));
    }
    let err = env.schedule("many", stc(1).retry(retry)).await.unwrap_err();
    assert_eq!(
        problems(err),
        [(
            "retry.non_retryable_error_types".to_owned(),
            "must list at most 100 error types, got 101".to_owned()
        )]
    );
    let long = "E".repeat(MAX_NAME_LEN + 1);
    let err = env
        .schedule(
            "long",
            stc(1).retry(RetryOptions::new().non_retryable(long)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        problems(err),
        [(
            "retry.non_retryable_error_types[0]".to_owned(),
            "must be at most 1000 bytes, got 1001".to_owned()
        )]
    );
    let err = env
        .protocol
        .schedule_activity(
            ScheduleActivityRequest::new("greet", vec![], stc(1).task_queue("q".repeat(1001)))
                .with_activity_id("queue"),
        )
        .await
        .unwrap_err();
    assert_eq!(problems(err)[0].0, "task_queue");
    for id in ["many", "long", "queue"] {
        assert!(
            matches!(
                env.protocol
                    .describe_execution(ExecutionRef::standalone(id))
                    .await,
                Err(ProtocolError::NotFound { .. })
            ),
            "`{id}` was not scheduled"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn oversized_payloads_are_refused_naming_the_limit_and_the_size() {
    assert_eq!(EngineConfig::default().max_payload_size, 4 * 1024 * 1024);
    let env =
        Env::with_config(activity_test_support::engine_config().with_max_payload_size(1024)).await;
    let big = Payload::json(&"x".repeat(2000)).unwrap();
    let err = env
        .protocol
        .schedule_activity(
            ScheduleActivityRequest::new("greet", vec![big.clone()], stc(10).task_queue(QUEUE))
                .with_activity_id("big"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::PayloadTooLarge {
            what: "the input of activity `greet`".into(),
            size: 2002,
            limit: 1024
        }
    );
    assert!(
        err.to_string()
            .contains("2002 bytes, over the limit of 1024 bytes"),
        "{err}"
    );
    assert!(env
        .protocol
        .describe_execution(ExecutionRef::standalone("big"))
        .await
        .is_err());

    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.protocol
        .record_heartbeat(token(&task), Some(json("small")))
        .await
        .unwrap();
    let before = env.describe("a").await;
    for err in [
        env.protocol
            .complete_activity(token(&task), big.clone())
            .await
            .unwrap_err(),
        env.protocol
            .record_heartbeat(token(&task), Some(big.clone()))
            .await
            .unwrap_err(),
        env.protocol
            .fail_activity(
                token(&task),
                ApplicationFailure::new("E", "x").with_details(big.clone()),
                None,
            )
            .await
            .unwrap_err(),
        env.protocol
            .fail_activity(
                token(&task),
                ApplicationFailure::new("E", "x"),
                Some(big.clone()),
            )
            .await
            .unwrap_err(),
        env.protocol
            .report_canceled(token(&task), Some(big.clone()))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(err, ProtocolError::PayloadTooLarge { limit: 1024, .. }),
            "{err:?}"
        );
    }
    assert_eq!(env.describe("a").await, before, "nothing changed");
    env.complete(&task, "fits").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn malformed_and_altered_tokens_are_refused_without_effect() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let before = env.describe("a").await;

    let malformed = TaskTarget::Token(TaskToken::from_bytes(vec![1, 2, 3]));
    let err = env
        .protocol
        .complete_activity(malformed.clone(), json("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidToken { reason } if reason.contains("malformed")),
        "{err:?}"
    );
    assert!(env
        .protocol
        .record_heartbeat(malformed, None)
        .await
        .is_err());

    // Every single-bit change is caught, including one that names another attempt
    // (bytes 9..13) or another execution (bytes 1..9).
    let bytes = task.task_token.as_bytes().to_vec();
    for i in [0, 1, 8, 12, 13, bytes.len() - 1] {
        let mut altered = bytes.clone();
        altered[i] ^= 0x01;
        let err = env
            .protocol
            .complete_activity(TaskTarget::Token(TaskToken::from_bytes(altered)), json("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProtocolError::InvalidToken { .. }),
            "byte {i}: {err:?}"
        );
    }
    assert_eq!(env.describe("a").await, before);
    env.complete(&task, "genuine").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_token_of_an_earlier_attempt_is_refused_without_effect() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let first = env.poll_now().await.unwrap();
    env.protocol
        .fail_activity(token(&first), ApplicationFailure::new("E", "x"), None)
        .await
        .unwrap();
    let _second = env.next_task().await;
    let before = env.describe("a").await;
    for err in [
        env.complete(&first, "old").await.unwrap_err(),
        env.protocol
            .fail_activity(token(&first), ApplicationFailure::new("E", "x"), None)
            .await
            .unwrap_err(),
        env.protocol
            .report_canceled(token(&first), None)
            .await
            .unwrap_err(),
    ] {
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
        assert!(
            err.to_string()
                .contains("attempt 1 of standalone activity `a`"),
            "{err}"
        );
    }
    assert_eq!(env.describe("a").await, before);
}

#[tokio::test(start_paused = true)]
async fn completing_a_closed_execution_twice_is_refused_and_keeps_the_first_outcome() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.complete(&task, "first").await.unwrap();
    let before = env.describe("a").await;
    let by_token = env.complete(&task, "second").await.unwrap_err();
    let by_id = env
        .protocol
        .complete_activity(by_id("a"), json("third"))
        .await
        .unwrap_err();
    for err in [by_token, by_id] {
        assert!(
            matches!(
                err,
                ProtocolError::AlreadyClosed {
                    reason: ClosedReason::ExecutionClosed(ExecutionState::Completed),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }
    assert_eq!(env.describe("a").await, before);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_execution_id_is_not_found_everywhere() {
    let env = Env::new().await;
    let nobody = ExecutionRef::standalone("nobody");
    let errors = [
        env.protocol
            .describe_execution(nobody.clone())
            .await
            .map(drop)
            .unwrap_err(),
        env.protocol
            .request_cancel(nobody.clone())
            .await
            .map(drop)
            .unwrap_err(),
        env.protocol
            .wait_outcome(nobody.clone(), secs(1))
            .await
            .map(drop)
            .unwrap_err(),
        env.protocol
            .complete_activity(by_id("nobody"), json(1))
            .await
            .unwrap_err(),
        env.protocol
            .record_heartbeat(by_id("nobody"), None)
            .await
            .map(drop)
            .unwrap_err(),
        env.protocol
            .fail_activity(by_id("nobody"), ApplicationFailure::new("E", "x"), None)
            .await
            .unwrap_err(),
        env.protocol
            .report_canceled(by_id("nobody"), None)
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(&err, ProtocolError::NotFound { what } if what.contains("`nobody`")),
            "{err:?}"
        );
    }
    // A known execution that has no started attempt cannot be completed by id.
    env.schedule("waiting", stc(10)).await.unwrap();
    let err = env
        .protocol
        .complete_activity(by_id("waiting"), json(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("it is SCHEDULED, attempt 1"),
        "{err}"
    );
    assert_eq!(
        env.describe("waiting").await.state,
        ExecutionState::Scheduled
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_activity_id_is_refused_and_the_first_execution_is_untouched() {
    let env = Env::new().await;
    env.schedule("a", stc(10)).await.unwrap();
    let before = env.describe("a").await;
    let err = env.schedule("a", stc(99)).await.unwrap_err();
    assert!(
        matches!(&err, ProtocolError::AlreadyExists { what } if what.contains("`a`")),
        "{err:?}"
    );
    assert_eq!(env.describe("a").await, before);
    assert_eq!(
        env.protocol
            .describe_task_queue(QUEUE.into())
            .await
            .unwrap()
            .backlog,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_request_fields_are_named() {
    let env = Env::new().await;
    let field = |err: ProtocolError| match err {
        ProtocolError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let schedule = |ty: &str, id: &str| {
        ScheduleActivityRequest::new(ty, vec![], stc(1).task_queue(QUEUE)).with_activity_id(id)
    };
    assert_eq!(
        field(
            env.protocol
                .schedule_activity(schedule("", "a"))
                .await
                .unwrap_err()
        ),
        "activity_type"
    );
    assert_eq!(
        field(
            env.protocol
                .schedule_activity(schedule("t", " "))
                .await
                .unwrap_err()
        ),
        "activity_id"
    );
    assert_eq!(
        field(
            env.protocol
                .schedule_activity(schedule("t", &"x".repeat(2000)))
                .await
                .unwrap_err()
        ),
        "activity_id"
    );
    let poll = |queue: &str| PollActivityTaskRequest::new(queue, "w").with_wait(secs(0));
    assert_eq!(
        field(env.protocol.poll_activity_task(poll("")).await.unwrap_err()),
        "task_queue"
    );
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = env
            .protocol
            .poll_activity_task(poll(QUEUE).with_task_queue_rate_limit(rate))
            .await
            .unwrap_err();
        assert_eq!(field(err), "max_task_queue_activities_per_second");
    }
    // An activity of a workflow that does not exist: not found (and not the
    // standalone activity `a`).
    let mut of_workflow = ExecutionRef::standalone("a");
    of_workflow.workflow_id = Some("wf".into());
    let err = env
        .protocol
        .describe_execution(of_workflow)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::NotFound { what } if what.contains("`wf`")),
        "{err:?}"
    );
    // The engine still works after all of that.
    env.schedule("ok", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    env.complete(&task, "fine").await.unwrap();
}

/// docs/semantics.md §2: polls on ever new queue names (a careless client) leave
/// nothing behind once the poller retention has passed: pollers expire, and a
/// queue row that keeps nothing (no rate limit, no poller) goes with them, in
/// batches. A queue's rate limit, and a queue still polled, stay.
#[tokio::test(start_paused = true)]
async fn a_payload_that_says_json_but_does_not_parse_is_refused_naming_it_and_nothing_is_stored() {
    let env = Env::new().await;
    let err = env
        .protocol
        .schedule_activity(
            ScheduleActivityRequest::new(
                "greet",
                vec![json("ok"), malformed_json()],
                stc(10).task_queue(QUEUE),
            )
            .with_activity_id("bad-input"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "input[1]"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(matches!(
        env.protocol
            .describe_execution(ExecutionRef::standalone("bad-input"))
            .await,
        Err(ProtocolError::NotFound { .. })
    ));

    env.schedule("a", stc(10)).await.unwrap();
    let task = env.poll_now().await.unwrap();
    let err = env
        .protocol
        .complete_activity(token(&task), malformed_json())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "result"),
        "{err:?}"
    );
    let d = env.describe("a").await;
    assert_eq!((d.state, d.outcome), (ExecutionState::Started, None));
    // The attempt still takes a valid result.
    env.complete(&task, "fine").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn polls_on_many_queue_names_leave_nothing_behind_after_the_poller_retention() {
    let env = Env::new().await;
    const NAMES: usize = 1_500;
    for i in 0..NAMES {
        env.poll_on(&format!("once-{i}"), Duration::ZERO).await;
    }
    let limited = PollActivityTaskRequest::new("limited", "w")
        .with_wait(Duration::ZERO)
        .with_task_queue_rate_limit(5.0);
    env.protocol.poll_activity_task(limited).await.unwrap();
    let listed = env.protocol.list_task_queues().await.unwrap();
    assert_eq!(listed.len(), 1_000, "more names than one list shows");

    // Past the retention (5 min) and one collection period (1 min), with `main`
    // polled now and then meanwhile.
    for _ in 0..7 {
        tokio::time::sleep(secs(60)).await;
        env.poll_on(QUEUE, Duration::ZERO).await;
    }
    tokio::time::sleep(secs(61)).await;
    env.poll_on(QUEUE, Duration::ZERO).await;

    let mut names: Vec<String> = env
        .protocol
        .list_task_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["limited", QUEUE],
        "only what keeps something is left"
    );
    let limited = env
        .protocol
        .describe_task_queue("limited".into())
        .await
        .unwrap();
    assert_eq!(limited.rate_limit, Some(5.0), "the setting survives");
    assert!(limited.pollers.is_empty(), "its poller expired");
}

/// docs/semantics.md §3.2: history limits and a retention that cannot work are
/// refused when the engine opens, naming the field and the rule.
#[tokio::test]
async fn history_limits_and_retention_that_cannot_work_are_refused_at_open() {
    let base = EngineConfig::in_memory;
    for (config, field, rule) in [
        (
            base().with_retention(Duration::ZERO),
            "retention",
            "must be greater than zero",
        ),
        (
            base().with_history_limit(0, 1024),
            "history_max_events",
            "must be greater than zero",
        ),
        (
            base().with_history_warning(10, 0),
            "history_warn_bytes",
            "must be greater than zero",
        ),
        (
            base()
                .with_history_limit(100, 1024)
                .with_history_warning(200, 512),
            "history_warn_events",
            "(200) must be at most `history_max_events` (100)",
        ),
    ] {
        let err = activity_engine::Engine::open(config).await.unwrap_err();
        assert!(
            matches!(&err, activity_engine::EngineError::Config { field: f, message }
                if *f == field && message.contains(rule)),
            "{field}: {err}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test(start_paused = true)]
async fn a_trace_context_that_is_not_a_traceparent_is_refused_and_a_valid_one_reaches_every_attempt(
) {
    let env = Env::new().await;
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = |trace: &str| {
        ScheduleActivityRequest::new("greet", vec![json("Ada")], stc(10).task_queue(QUEUE))
            .with_trace_context(trace)
    };
    for bad in [
        "",
        "traceparent",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ] {
        let err = env
            .protocol
            .schedule_activity(request(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "trace_context"),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("W3C traceparent"), "{err}");
        let start = activity_core::workflow::StartWorkflowRequest::new("w", "flow", QUEUE, vec![])
            .with_trace_context(bad);
        let err = env.protocol.start_workflow(start).await.unwrap_err();
        assert!(err.to_string().contains("trace_context"), "{err}");
    }
    let nothing = env
        .protocol
        .list_activity_executions(activity_core::protocol::ListExecutionsRequest::new())
        .await
        .unwrap();
    assert!(nothing.is_empty(), "nothing was stored: {nothing:?}");

    // A valid one is stored with the execution and handed out with each attempt.
    let retried = stc(10)
        .task_queue(QUEUE)
        .retry(RetryOptions::new().initial_interval(secs(1)));
    env.protocol
        .schedule_activity(
            ScheduleActivityRequest::new("greet", vec![json("Ada")], retried)
                .with_trace_context(valid),
        )
        .await
        .unwrap();
    let first = env.poll(secs(1)).await.expect("attempt 1");
    assert_eq!(first.trace_context.as_deref(), Some(valid));
    env.protocol
        .fail_activity(
            TaskTarget::Token(first.task_token),
            ApplicationFailure::new("Busy", "try again"),
            None,
        )
        .await
        .unwrap();
    let second = env.poll(secs(5)).await.expect("attempt 2");
    assert_eq!(second.info.attempt, 2);
    assert_eq!(second.trace_context.as_deref(), Some(valid));
}
