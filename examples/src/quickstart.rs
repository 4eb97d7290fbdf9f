//! Quickstart: a workflow calling two typed activities, on the embedded engine.
//!
//! `cargo run -p activity-examples --bin quickstart`
//!
//! Everything runs in this one process: the engine keeps its state in a SQLite
//! file, a worker polls the task queue, and a client starts the workflow and
//! waits for its typed result. Run it twice: the second run finds the first one's
//! history in the same file.

use std::path::PathBuf;

use activity_core::{
    activity, workflow, ActivityError, Client, State, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order to check out.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
struct Order {
    id: String,
    card: String,
    items: Vec<String>,
    cents: u64,
}

/// What the checkout returns.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Receipt {
    order: String,
    transaction: String,
    reserved: usize,
}

/// Errors of `charge`: each variant is an error type; `Declined` is never retried.
#[derive(Debug, thiserror::Error, activity_core::ActivityError)]
enum ChargeError {
    #[error("card ending in {0} was declined")]
    #[activity_error(non_retryable)]
    Declined(String),
}

/// Shared state for activities: in a real program, an HTTP client or a pool.
struct PaymentGateway {
    name: &'static str,
}

/// Reserves stock for every item. A plain async function, callable directly.
#[activity(start_to_close = "10s", retry(maximum_attempts = 3))]
async fn reserve(items: Vec<String>) -> Result<usize, ActivityError> {
    Ok(items.len())
}

/// Charges a card through the shared gateway.
#[activity(start_to_close = "30s", retry(non_retryable = [ChargeError::Declined]))]
async fn charge(
    gateway: State<PaymentGateway>,
    card: String,
    cents: u64,
) -> Result<String, ChargeError> {
    if card.ends_with("0000") {
        return Err(ChargeError::Declined(card[card.len() - 4..].to_owned()));
    }
    Ok(format!("{}-{cents}", gateway.name))
}

/// The workflow: durable, replayed from its history after a crash. The stubs
/// check argument and result types at compile time.
#[workflow]
async fn checkout(ctx: WorkflowContext, order: Order) -> Result<Receipt, WorkflowError> {
    let reserved = reserve::call(&ctx, order.items.clone()).await?;
    let transaction = charge::call(&ctx, order.card.clone(), order.cents).await?;
    Ok(Receipt {
        order: order.id,
        transaction,
        reserved,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = PathBuf::from("quickstart.sqlite");
    let engine = Engine::open(EngineConfig::file(&path)).await?;

    // A worker serves every #[activity] and #[workflow] of this program.
    let worker = Worker::builder(engine.protocol())
        .task_queue("quickstart")
        .state(PaymentGateway { name: "acme-pay" })
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let client = Client::new(engine.protocol()).with_task_queue("quickstart");
    let order = Order {
        id: format!("order-{}", std::process::id()),
        card: "4242424242424242".into(),
        items: vec!["mug".into(), "tea".into()],
        cents: 1_250,
    };
    let handle = checkout::start(&client, order.clone())
        .workflow_id(order.id.clone())
        .await?;
    let receipt = handle.result().await?;
    println!("checkout -> {receipt:?}");

    // A declined card fails the workflow with the activity's typed failure.
    let declined = Order {
        id: format!("{}-declined", order.id),
        card: "4000000000000000".into(),
        ..order
    };
    let outcome = checkout::start(&client, declined).await?.result().await;
    match outcome {
        Err(err) => println!("checkout -> failed as expected: {err}"),
        Ok(receipt) => anyhow::bail!("a declined card was charged: {receipt:?}"),
    }

    let history = handle.history().await?;
    println!("\nhistory of {}: {} events", receipt.order, history.len());
    for event in &history {
        println!(
            "  {:>2} {}",
            event.event_id,
            activity_core::workflow::history::describe_event(&event.kind)
        );
    }

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    let place = std::fs::canonicalize(&path).unwrap_or(path);
    println!("\nthe engine's data lives in {}", place.display());
    Ok(())
}
