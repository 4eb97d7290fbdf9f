//! Quickstart: three typed activities, called through their generated stubs.
//!
//! Run it with `cargo run -p activity-examples --bin quickstart`.
//!
//! The engine and worker are not part of the project yet, so this example runs the
//! activities in-process with the `TestActivityEnvironment` (the same path a worker
//! takes: arguments are serialized one payload each, decoded, passed to the
//! function, and the result is serialized back). When the embedded engine lands,
//! the same stubs are awaited from a workflow instead.

use std::time::Duration;

use activity_core::{
    activity, ActivityCallError, ActivityContext, ActivityError, CancelReason, Registry, State,
    TestActivityEnvironment,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order line.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
struct Item {
    sku: String,
    quantity: u32,
}

/// What `charge` returns.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Receipt {
    transaction: String,
    cents: u64,
}

/// Errors of `charge`: each variant is an error type; `Declined` is never retried.
#[derive(Debug, thiserror::Error, activity_core::ActivityError)]
enum ChargeError {
    #[error("card ending in {0} was declined")]
    #[activity_error(non_retryable)]
    Declined(String),
    #[error("the payment gateway did not answer")]
    GatewayTimeout,
}

/// Shared state: in a real program, an HTTP client or a database pool.
struct PaymentGateway {
    name: &'static str,
}

/// Reserves stock for every item; returns how many units were reserved.
#[activity(start_to_close = "10s", retry(maximum_attempts = 3))]
async fn reserve(items: Vec<Item>) -> Result<u32, ActivityError> {
    Ok(items.iter().map(|i| i.quantity).sum())
}

/// Charges a card through the shared payment gateway.
#[activity(start_to_close = "30s", retry(non_retryable = [ChargeError::Declined]))]
async fn charge(
    ctx: ActivityContext,
    gateway: State<PaymentGateway>,
    card: String,
    cents: u64,
) -> Result<Receipt, ChargeError> {
    if card.ends_with("0000") {
        return Err(ChargeError::Declined(card[card.len() - 4..].to_owned()));
    }
    if cents == 0 {
        return Err(ChargeError::GatewayTimeout);
    }
    Ok(Receipt {
        transaction: format!("{}-{}", gateway.name, ctx.info().activity_id),
        cents,
    })
}

/// Packs items one by one, heartbeating progress so a retry resumes where it stopped.
#[activity(start_to_close = "1h", heartbeat = "30s")]
async fn pack(ctx: ActivityContext, items: Vec<Item>) -> Result<usize, ActivityError> {
    let done: usize = ctx.last_heartbeat_details()?.unwrap_or(0);
    for packed in done..items.len() {
        if ctx.is_cancelled() {
            return Err(ActivityError::canceled());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        ctx.heartbeat(&(packed + 1))?;
    }
    Ok(items.len())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every #[activity] registered itself; a worker checks the set at start.
    let registry = Registry::builder()
        .state(PaymentGateway { name: "acme-pay" })
        .build()?;
    println!("Registered activities:");
    for activity in registry.describe() {
        println!(
            "  {:<8} ({}) defined at {}",
            activity.name,
            activity.arguments.join(", "),
            activity.location
        );
    }

    let env = TestActivityEnvironment::new().with_state(PaymentGateway { name: "acme-pay" });
    let items = vec![
        Item {
            sku: "mug".into(),
            quantity: 2,
        },
        Item {
            sku: "tea".into(),
            quantity: 3,
        },
    ];

    // Typed stubs: wrong argument types or result types do not compile.
    let reserved: u32 = reserve::call(&env, items.clone()).await?;
    println!("\nreserve -> {reserved} units");

    let receipt: Receipt = charge::call(&env, "4242424242424242".into(), 1_250)
        .activity_id("order-17-charge")
        .await?;
    println!("charge  -> {receipt:?}");

    match charge::call(&env, "4000000000000000".into(), 1_250).await {
        Err(ActivityCallError::Failed(failure)) => println!(
            "charge  -> failed as expected: {} (retry state {:?})",
            failure.cause, failure.retry_state
        ),
        other => return Err(format!("expected a declined card, got {other:?}").into()),
    }

    let packed = pack::call(&env, items.clone()).await?;
    println!(
        "pack    -> {packed} items, heartbeats recorded: {:?}",
        env.heartbeats::<usize>()?
    );

    // A retry resumes from the last heartbeat of the previous attempt.
    let retry = TestActivityEnvironment::new()
        .with_info(|info| info.attempt = 2)
        .with_last_heartbeat_details(&1usize);
    pack(retry.context(), items).await?;
    println!(
        "pack    -> attempt 2 resumed after item 1, heartbeats: {:?}",
        retry.heartbeats::<usize>()?
    );

    // Cancellation reaches the activity with a reason.
    let cancelled = TestActivityEnvironment::new();
    cancelled.cancel(CancelReason::Requested);
    let outcome = pack(
        cancelled.context(),
        vec![Item {
            sku: "pot".into(),
            quantity: 1,
        }],
    )
    .await;
    println!("pack    -> after a cancel request: {outcome:?}");
    Ok(())
}
