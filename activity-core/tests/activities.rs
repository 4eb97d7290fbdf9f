//! Behaviour of `#[activity]` and `#[derive(ActivityError)]`: the generated
//! definitions, registration, schemas, stubs and the test environment, run for real.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use activity_core::{
    activity, registry::RegistryProblem, ActivityCallError, ActivityContext, ActivityDefinition,
    ActivityError, ActivityOptions, CancelReason, ErrorTypes, Failure, Payload, Registry,
    RetryOptions, RetryState, State, TestActivityEnvironment,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Card {
    number: String,
    holder: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Receipt {
    id: String,
    cents: u64,
}

#[derive(Debug, thiserror::Error, activity_core::ActivityError)]
enum ChargeError {
    #[error("card {0} declined")]
    #[activity_error(non_retryable)]
    Declined(String),
    #[error("gateway unavailable")]
    GatewayDown,
    #[error("fraud suspected")]
    #[activity_error(type = "payments.Fraud", non_retryable)]
    Fraud { score: u32 },
}

/// Charges a card.
#[activity(
    start_to_close = "30s",
    schedule_to_close = "5m",
    heartbeat = "10s",
    task_queue = "payments",
    retry(
        initial_interval = "250ms",
        backoff_coefficient = 1.5,
        maximum_interval = "1m",
        maximum_attempts = 5,
        non_retryable = [ChargeError::Declined, ChargeError::Fraud, "Other"]
    )
)]
async fn charge(ctx: ActivityContext, card: Card, cents: u64) -> Result<Receipt, ChargeError> {
    if card.number.starts_with('0') {
        return Err(ChargeError::Declined(card.number));
    }
    if card.number.starts_with('9') {
        return Err(ChargeError::Fraud { score: 99 });
    }
    if ctx.info().attempt < 2 && card.number.starts_with('5') {
        return Err(ChargeError::GatewayDown);
    }
    Ok(Receipt {
        id: format!("{}-{}", ctx.info().activity_id, card.holder),
        cents,
    })
}

#[activity(name = "billing.refund")]
async fn refund_renamed(receipt: Receipt) -> Result<u64, ActivityError> {
    Ok(receipt.cents)
}

#[activity]
async fn no_arguments() -> Result<(), ActivityError> {
    Ok(())
}

/// Counts in steps, heartbeating each one, resuming from the last heartbeat.
#[activity(heartbeat = "1s", start_to_close = "1h")]
async fn count_to(ctx: ActivityContext, target: u32) -> Result<u32, ActivityError> {
    let mut n: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
    while n < target {
        n += 1;
        ctx.heartbeat(&n)?;
        tokio::task::yield_now().await;
    }
    Ok(n)
}

/// Waits until cancelled, then reports the reason as a cancellation detail.
#[activity(start_to_close = "1h")]
async fn wait_for_cancel(ctx: ActivityContext) -> Result<(), ActivityError> {
    let reason = ctx.cancelled().await;
    Err(ActivityError::canceled_with(&reason.to_string())?)
}

/// Shared state: a fake database connection pool and a counter.
struct Db {
    prefix: String,
    queries: AtomicU32,
}

struct Metrics {
    label: &'static str,
}

#[activity(start_to_close = "1s")]
async fn lookup(
    db: State<Db>,
    metrics: State<Metrics>,
    key: String,
) -> Result<String, ActivityError> {
    db.queries.fetch_add(1, Ordering::SeqCst);
    Ok(format!("{}:{}:{key}", db.prefix, metrics.label))
}

#[activity(start_to_close = "1s")]
async fn many(
    a: u8,
    b: i64,
    c: String,
    d: Vec<u32>,
    e: Option<bool>,
    f: (u8, u8),
) -> Result<String, ActivityError> {
    Ok(format!("{a}{b}{c}{d:?}{e:?}{f:?}"))
}

fn env() -> TestActivityEnvironment {
    TestActivityEnvironment::new()
}

fn card(number: &str) -> Card {
    Card {
        number: number.into(),
        holder: "ada".into(),
    }
}

#[tokio::test]
async fn the_function_stays_plain_and_callable_directly() {
    let env = env();
    let receipt = charge(env.context(), card("4242"), 125).await.unwrap();
    assert_eq!(
        receipt,
        Receipt {
            id: "test-activity-id-ada".into(),
            cents: 125
        }
    );
    assert_eq!(refund_renamed(receipt).await.unwrap(), 125);
    no_arguments().await.unwrap();
}

#[test]
fn the_marker_type_carries_name_arguments_and_defaults() {
    assert_eq!(<charge as ActivityDefinition>::NAME, "charge");
    assert_eq!(charge::NAME, "charge");
    assert_eq!(<charge as ActivityDefinition>::ARGUMENTS, ["card", "cents"]);
    assert_eq!(refund_renamed::NAME, "billing.refund");
    let defaults = <charge as ActivityDefinition>::default_options();
    let expected = ActivityOptions::new()
        .start_to_close(Duration::from_secs(30))
        .schedule_to_close(Duration::from_secs(300))
        .heartbeat_timeout(Duration::from_secs(10))
        .task_queue("payments")
        .retry(
            RetryOptions::new()
                .initial_interval(Duration::from_millis(250))
                .backoff_coefficient(1.5)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(5)
                .non_retryable("Declined")
                .non_retryable("payments.Fraud")
                .non_retryable("Other"),
        );
    assert_eq!(defaults, expected);
    assert_eq!(
        <no_arguments as ActivityDefinition>::default_options(),
        ActivityOptions::new()
    );
}

#[test]
fn the_registry_lists_every_activity_with_schemas_and_defaults() {
    let registry = Registry::builder()
        .state(Db {
            prefix: "db".into(),
            queries: AtomicU32::new(0),
        })
        .state(Metrics { label: "m" })
        .build()
        .unwrap();
    let names: Vec<_> = registry.names().collect();
    assert_eq!(
        names,
        [
            "billing.refund",
            "charge",
            "count_to",
            "lookup",
            "many",
            "no_arguments",
            "wait_for_cancel"
        ]
    );
    let described = registry.describe();
    let charge = described.iter().find(|d| d.name == "charge").unwrap();
    assert_eq!(charge.arguments, ["card", "cents"]);
    assert!(charge.location.file.ends_with("activities.rs"));
    assert_eq!(
        charge.default_options.task_queue.as_deref(),
        Some("payments")
    );
    let input = &charge.input_schema;
    assert_eq!(input["type"], "array");
    assert_eq!(input["minItems"], 2);
    assert_eq!(input["maxItems"], 2);
    assert_eq!(input["prefixItems"][0]["title"], "card");
    assert_eq!(input["prefixItems"][1]["title"], "cents");
    assert_eq!(input["prefixItems"][1]["type"], "integer");
    // The card is a $ref into $defs, which carry its fields.
    let card_ref = input["prefixItems"][0]["$ref"].as_str().unwrap();
    let card_def = &input["$defs"][card_ref.trim_start_matches("#/$defs/")];
    assert!(card_def["properties"]["number"].is_object(), "{input:#}");
    let output = &charge.output_schema;
    let receipt_ref = output["$ref"].as_str().unwrap();
    assert!(
        output["$defs"][receipt_ref.trim_start_matches("#/$defs/")]["properties"]["cents"]
            .is_object()
    );
    let none = described.iter().find(|d| d.name == "no_arguments").unwrap();
    assert_eq!(none.input_schema["maxItems"], 0);
    assert_eq!(none.output_schema["type"], "null");
}

#[test]
fn a_missing_shared_state_is_reported_at_build_naming_activity_and_type() {
    let err = Registry::builder()
        .state(Metrics { label: "m" })
        .build()
        .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let RegistryProblem::MissingState {
        activity,
        type_name,
    } = &err.problems[0]
    else {
        panic!("{err}")
    };
    assert_eq!(*activity, "lookup");
    assert!(type_name.ends_with("Db"));
    assert!(err.to_string().contains("takes `State<"), "{err}");
}

#[test]
fn the_registry_can_be_restricted() {
    let registry = Registry::builder()
        .only(["charge", "many"])
        .build()
        .unwrap();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["charge", "many"]);
    let registry = Registry::builder().exclude("lookup").build().unwrap();
    assert!(registry.get("lookup").is_none());
    let err = Registry::builder().only(["nope"]).build().unwrap_err();
    assert!(
        err.to_string().contains("no activity named `nope`"),
        "{err}"
    );
}

#[tokio::test]
async fn the_typed_stub_runs_the_activity_through_payloads() {
    let env = env();
    let receipt: Receipt = charge::call(&env, card("4242"), 99)
        .activity_id("pay-1")
        .await
        .unwrap();
    assert_eq!(receipt.id, "pay-1-ada");
    let text = many::call(&env, 1, -2, "c".into(), vec![3], Some(true), (4, 5))
        .start_to_close(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(text, "1-2c[3]Some(true)(4, 5)");
}

#[tokio::test]
async fn call_site_options_are_validated_with_errors_naming_the_field() {
    let env = env();
    // `no_arguments` declares no timeout, so a call whose run-time options have
    // none is refused (one that sets no options at all does not compile).
    let err = no_arguments::call(&env)
        .options(ActivityOptions::new())
        .await
        .unwrap_err();
    let ActivityCallError::InvalidOptions(options) = err else {
        panic!("{err}")
    };
    assert_eq!(options.problems[0].field, "start_to_close");
    let err = charge::call(&env, card("4242"), 1)
        .start_to_close(Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`start_to_close` must be greater than zero"),
        "{err}"
    );
}

#[tokio::test]
async fn user_error_variants_carry_their_type_and_retryability() {
    assert_eq!(ChargeError::GatewayDown.error_type(), "GatewayDown");
    assert_eq!(
        ChargeError::Fraud { score: 1 }.error_type(),
        "payments.Fraud"
    );
    assert_eq!(
        ChargeError::VARIANTS
            .iter()
            .map(|v| (v.variant, v.non_retryable))
            .collect::<Vec<_>>(),
        [("Declined", true), ("GatewayDown", false), ("Fraud", true)]
    );
    let env = env();
    let err = env.execute::<charge>((card("0000"), 5)).await.unwrap_err();
    let ActivityError::Application(failure) = err else {
        panic!("{err}")
    };
    assert_eq!(failure.error_type, "Declined");
    assert_eq!(failure.message, "card 0000 declined");
    assert!(failure.non_retryable);

    let err = env.execute::<charge>((card("5555"), 5)).await.unwrap_err();
    let ActivityError::Application(failure) = err else {
        panic!("{err}")
    };
    assert_eq!(failure.error_type, "GatewayDown");
    assert!(!failure.non_retryable);

    // Through a stub the caller sees the failure of SEMANTICS 4.
    let err = charge::call(&env, card("9999"), 5).await.unwrap_err();
    let failure = err.failure().unwrap();
    assert_eq!(failure.activity_type, "charge");
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    assert_eq!(failure.application().unwrap().error_type, "payments.Fraud");
}

#[tokio::test]
async fn info_is_readable_and_configurable() {
    let env = env().with_info(|info| {
        info.attempt = 2;
        info.workflow_id = Some("wf-1".into());
    });
    assert_eq!(env.context().info().attempt, 2);
    // Attempt 2 of a card starting with 5 succeeds.
    let receipt = env.execute::<charge>((card("5555"), 7)).await.unwrap();
    assert_eq!(receipt.cents, 7);
    assert_eq!(env.context().info().workflow_id.as_deref(), Some("wf-1"));
}

#[tokio::test]
async fn heartbeats_are_recorded_typed_and_resume_from_seeded_details() {
    let env = env();
    assert_eq!(env.execute::<count_to>((3,)).await.unwrap(), 3);
    assert_eq!(env.heartbeats::<u32>().unwrap(), [1, 2, 3]);
    assert_eq!(env.last_heartbeat::<u32>().unwrap(), Some(3));

    let resumed = TestActivityEnvironment::new().with_last_heartbeat_details(&7u32);
    assert_eq!(count_to(resumed.context(), 10).await.unwrap(), 10);
    assert_eq!(resumed.heartbeats::<u32>().unwrap(), [8, 9, 10]);
}

#[tokio::test]
async fn cancellation_reaches_the_activity_with_its_reason() {
    let env = env();
    let ctx = env.context();
    let running = tokio::spawn(wait_for_cancel(ctx.clone()));
    tokio::task::yield_now().await;
    assert!(!ctx.is_cancelled());
    env.cancel(CancelReason::WorkerShutdown);
    let err = running.await.unwrap().unwrap_err();
    let ActivityError::Canceled(canceled) = err else {
        panic!("{err}")
    };
    let reason: String = canceled.details.unwrap().decode().unwrap();
    assert_eq!(reason, "worker shutting down");
    assert_eq!(ctx.cancel_reason(), Some(CancelReason::WorkerShutdown));
    // A context made after the cancel is born cancelled.
    assert!(env.context().is_cancelled());

    // Through a stub, the caller sees a CanceledError.
    let err = wait_for_cancel::call(&env).await.unwrap_err();
    let failure = err.failure().unwrap();
    assert_eq!(failure.retry_state, RetryState::CancelRequested);
    assert!(matches!(failure.cause, Failure::Canceled(_)));
}

#[tokio::test]
async fn shared_state_is_injected_without_globals() {
    let env = env()
        .with_state(Db {
            prefix: "pg".into(),
            queries: AtomicU32::new(0),
        })
        .with_state(Metrics { label: "eu" });
    assert_eq!(lookup::call(&env, "k1".into()).await.unwrap(), "pg:eu:k1");
    assert_eq!(
        env.execute::<lookup>(("k2".into(),)).await.unwrap(),
        "pg:eu:k2"
    );
    // Called directly, the state is passed like any argument.
    let db = State::new(Db {
        prefix: "direct".into(),
        queries: AtomicU32::new(0),
    });
    let out = lookup(db.clone(), State::new(Metrics { label: "x" }), "k".into())
        .await
        .unwrap();
    assert_eq!(out, "direct:x:k");
    assert_eq!(db.queries.load(Ordering::SeqCst), 1);

    // Without the state, the attempt fails non-retryably, naming the type.
    let err = TestActivityEnvironment::new()
        .execute::<lookup>(("k".into(),))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MissingState"), "{err}");
    assert!(err.to_string().contains("Db"), "{err}");
}

#[tokio::test]
async fn malformed_payloads_fail_non_retryably_naming_the_argument() {
    let env = env();
    let input = [
        Payload::json(&card("1")).unwrap(),
        Payload::json("not a number").unwrap(),
    ];
    let err = env.execute_payloads("charge", &input).await.unwrap_err();
    let ActivityError::Application(failure) = err else {
        panic!("{err}")
    };
    assert_eq!(failure.error_type, "PayloadDecode");
    assert!(failure.non_retryable);
    assert!(
        failure
            .message
            .contains("argument 2 (`cents`) of activity `charge`"),
        "{}",
        failure.message
    );
    let err = env
        .execute_payloads("charge", &input[..1])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("takes 2 argument(s) (card, cents)"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unregistered_type_fails_listing_the_registered_ones() {
    let env = env();
    let err = env.execute_payloads("chrage", &[]).await.unwrap_err();
    let ActivityError::Application(failure) = err else {
        panic!("{err}")
    };
    assert_eq!(failure.error_type, "ActivityNotRegistered");
    assert!(!failure.non_retryable, "another worker may have it");
    assert!(failure.message.contains("`chrage`"), "{}", failure.message);
    assert!(
        failure.message.contains("charge, count_to"),
        "{}",
        failure.message
    );
}
