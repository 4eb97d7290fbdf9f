//! Registered types: workers tell the engine which types they serve (with their
//! JSON Schemas); standalone inputs and results of registered activity types are
//! validated against them, and refused with the field named; unregistered types
//! are not validated.

mod common;

use activity_core::{
    activity,
    payload::Payload,
    protocol::{
        ActivityTypeInfo, ExecutionOutcome, ExecutionRef, ExecutionState, ProtocolError,
        RegisteredType, ScheduleActivityRequest, TaskTarget, TypeKind, WorkerRegistration,
    },
    ActivityError, ActivityOptions, Registry,
};
use common::*;
use serde_json::json;

/// Charges a card.
#[activity(start_to_close = "10s")]
async fn charge(card: String, cents: u64) -> Result<String, ActivityError> {
    Ok(format!("charged {cents} to {card}"))
}

fn charge_info() -> ActivityTypeInfo {
    let registry = Registry::builder().only(["charge"]).build().unwrap();
    ActivityTypeInfo::from(&registry.describe()[0])
}

async fn register(env: &Env, identity: &str, queues: &[&str]) -> Result<(), ProtocolError> {
    env.protocol
        .register_worker(
            WorkerRegistration::new(identity, queues.iter().map(|q| (*q).to_owned()).collect())
                .with_activities(vec![charge_info()])
                .with_workflows(vec!["order".into()]),
        )
        .await
}

fn options(queue: &str) -> ActivityOptions {
    ActivityOptions::new()
        .start_to_close(secs(10))
        .task_queue(queue)
}

async fn schedule_charge(
    env: &Env,
    id: &str,
    queue: &str,
    input: Vec<Payload>,
) -> Result<(), ProtocolError> {
    env.protocol
        .schedule_activity(
            ScheduleActivityRequest::new("charge", input, options(queue)).with_activity_id(id),
        )
        .await
        .map(drop)
}

fn json_payload(value: serde_json::Value) -> Payload {
    Payload::json(&value).unwrap()
}

fn invalid_argument(err: ProtocolError) -> (String, String) {
    match err {
        ProtocolError::InvalidArgument { field, message } => (field, message),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn registered_types_are_listed_per_task_queue_and_upserted() {
    let env = Env::new().await;
    assert_eq!(env.protocol.list_types().await.unwrap(), vec![]);
    register(&env, "w1", &[QUEUE, "other"]).await.unwrap();
    register(&env, "w2", &[QUEUE]).await.unwrap();
    let types = env.protocol.list_types().await.unwrap();
    let keys: Vec<(TypeKind, &str, &str, &str)> = types
        .iter()
        .map(|t| {
            (
                t.kind,
                t.name.as_str(),
                t.task_queue.as_str(),
                t.last_identity.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (TypeKind::Activity, "charge", "main", "w2"),
            (TypeKind::Activity, "charge", "other", "w1"),
            (TypeKind::Workflow, "order", "main", "w2"),
            (TypeKind::Workflow, "order", "other", "w1"),
        ]
    );
    let info = charge_info();
    let charge: &RegisteredType = &types[0];
    assert_eq!(charge.arguments, ["card", "cents"]);
    assert_eq!(charge.input_schema.as_ref(), Some(&info.input_schema));
    assert_eq!(charge.output_schema.as_ref(), Some(&info.output_schema));
    assert_eq!(charge.last_registered_time, env.now());
    assert_eq!(types[2].input_schema, None);
    assert!(types[2].arguments.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_registration_with_a_broken_schema_is_refused_naming_it() {
    let env = Env::new().await;
    let mut info = charge_info();
    info.output_schema = json!({"type": 12});
    let err = env
        .protocol
        .register_worker(
            WorkerRegistration::new("w1", vec![QUEUE.into()]).with_activities(vec![info]),
        )
        .await
        .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "activities[0].output_schema");
    assert!(message.contains("not a valid JSON Schema"), "{message}");
    assert_eq!(env.protocol.list_types().await.unwrap(), vec![]);
}

#[tokio::test(start_paused = true)]
async fn bad_input_of_a_registered_type_is_refused_naming_the_argument() {
    let env = Env::new().await;
    register(&env, "w1", &[QUEUE]).await.unwrap();
    let err = schedule_charge(
        &env,
        "bad",
        QUEUE,
        vec![json_payload(json!("4111")), json_payload(json!("ten"))],
    )
    .await
    .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "input[1] (`cents`)");
    assert!(message.contains("\"ten\""), "{message}");
    assert!(message.contains("integer"), "{message}");
    assert!(message.contains("`/1`"), "{message}");
    // Nothing was scheduled.
    let err = env
        .protocol
        .describe_execution(ExecutionRef::standalone("bad"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::NotFound { .. }), "{err:?}");
    assert!(env.poll_now().await.is_none());

    // A missing argument is the input's fault as a whole.
    let err = schedule_charge(&env, "short", QUEUE, vec![json_payload(json!("4111"))])
        .await
        .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "input");
    assert!(message.contains("charge"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn good_input_is_accepted_and_a_bad_result_is_refused_without_effect() {
    let env = Env::new().await;
    register(&env, "w1", &[QUEUE]).await.unwrap();
    schedule_charge(
        &env,
        "good",
        QUEUE,
        vec![json_payload(json!("4111")), json_payload(json!(1000))],
    )
    .await
    .unwrap();
    let task = env.next_task().await;
    assert_eq!(task.info.activity_id, "good");

    let err = env
        .protocol
        .complete_activity(
            TaskTarget::Token(task.task_token.clone()),
            json_payload(json!(5)),
        )
        .await
        .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "result");
    assert!(message.contains("string"), "{message}");
    let description = env.describe("good").await;
    assert_eq!(description.state, ExecutionState::Started);
    assert_eq!(description.outcome, None);

    env.protocol
        .complete_activity(
            TaskTarget::Token(task.task_token),
            json_payload(json!("charged")),
        )
        .await
        .unwrap();
    assert_eq!(
        env.outcome("good").await,
        ExecutionOutcome::Completed(json_payload(json!("charged")))
    );
}

#[tokio::test(start_paused = true)]
async fn unregistered_types_and_queues_are_not_validated() {
    let env = Env::new().await;
    register(&env, "w1", &[QUEUE]).await.unwrap();
    // `greet` is not registered: any input goes.
    env.protocol
        .schedule_activity(
            ScheduleActivityRequest::new("greet", vec![json_payload(json!(42))], options(QUEUE))
                .with_activity_id("greet-number"),
        )
        .await
        .unwrap();
    // `charge` is registered on `main` only.
    schedule_charge(
        &env,
        "elsewhere",
        "elsewhere",
        vec![json_payload(json!(1)), json_payload(json!("ten"))],
    )
    .await
    .unwrap();
    let task = env.poll_on("elsewhere", secs(0)).await.expect("a task");
    env.protocol
        .complete_activity(TaskTarget::Token(task.task_token), json_payload(json!(5)))
        .await
        .unwrap();
    assert_eq!(
        env.outcome("elsewhere").await,
        ExecutionOutcome::Completed(json_payload(json!(5)))
    );
}

/// Payloads of 64 KiB and more are validated before the transaction, outside
/// the store's writer (docs/semantics.md §3.2, "Fairness"): the same answers
/// as for small ones, and a stale token is still refused for what it is.
#[tokio::test(start_paused = true)]
async fn large_inputs_and_results_are_validated_as_small_ones_are() {
    let env = Env::new().await;
    register(&env, "w1", &[QUEUE]).await.unwrap();
    let card = "4".repeat(100 * 1024);
    let err = schedule_charge(
        &env,
        "bad",
        QUEUE,
        vec![json_payload(json!(card)), json_payload(json!("ten"))],
    )
    .await
    .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "input[1] (`cents`)");
    assert!(message.contains("integer"), "{message}");
    assert!(env.poll_now().await.is_none());

    schedule_charge(
        &env,
        "good",
        QUEUE,
        vec![json_payload(json!(card)), json_payload(json!(1000))],
    )
    .await
    .unwrap();
    let task = env.next_task().await;
    assert_eq!(task.info.activity_id, "good");
    let numbers: Vec<u32> = (0..30_000).collect();
    let err = env
        .protocol
        .complete_activity(
            TaskTarget::Token(task.task_token.clone()),
            json_payload(json!(numbers)),
        )
        .await
        .unwrap_err();
    let (field, message) = invalid_argument(err);
    assert_eq!(field, "result");
    // The offending value is quoted in part: the answer stays small.
    assert!(message.contains("is not of type \"string\""), "{message}");
    assert!(message.contains("bytes left out"), "{message}");
    assert!(message.len() < 1024, "{}", message.len());
    assert_eq!(env.describe("good").await.state, ExecutionState::Started);

    let receipt = json_payload(json!("r".repeat(100 * 1024)));
    env.protocol
        .complete_activity(TaskTarget::Token(task.task_token.clone()), receipt.clone())
        .await
        .unwrap();
    assert_eq!(
        env.outcome("good").await,
        ExecutionOutcome::Completed(receipt.clone())
    );
    // The same answer again is accepted (a retry whose answer was lost);
    // another one is refused for the attempt being over, not for its schema.
    env.protocol
        .complete_activity(TaskTarget::Token(task.task_token.clone()), receipt)
        .await
        .unwrap();
    let err = env
        .protocol
        .complete_activity(
            TaskTarget::Token(task.task_token),
            json_payload(json!(numbers)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::AlreadyClosed { .. }),
        "{err:?}"
    );
}
