//! Child workflows: a parent fans out to one typed child workflow per
//! warehouse, each with its own id and history, and combines their results.
//! A child's result (or failure) reaches the parent typed; both histories
//! record the children (docs/semantics.md §3.1).
//!
//! `cargo run -p activity-examples --bin child_workflows`

mod logs;

use activity_core::{
    activity, workflow,
    workflow::{join_all, EventKind, ParentClosePolicy, WorkflowRef},
    ActivityError, Client, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use serde::{Deserialize, Serialize};

/// What one warehouse holds of an item.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Stock {
    warehouse: String,
    units: u32,
}

/// Counts the units of `item` in `warehouse` (a stand-in for a real lookup).
#[activity(start_to_close = "30s")]
async fn count_units(warehouse: String, item: String) -> Result<u32, ActivityError> {
    Ok((warehouse.len() as u32 * 7 + item.len() as u32 * 3) % 20)
}

/// The child: one warehouse's stock of `item`, in its own run and history.
#[workflow]
async fn warehouse_stock(
    ctx: WorkflowContext,
    warehouse: String,
    item: String,
) -> Result<Stock, WorkflowError> {
    let units = count_units::call(&ctx, warehouse.clone(), item).await?;
    Ok(Stock { warehouse, units })
}

/// The parent: one child per warehouse, all at once; answers the total and
/// the warehouse holding the most.
#[workflow]
async fn inventory(
    ctx: WorkflowContext,
    item: String,
    warehouses: Vec<String>,
) -> Result<(u32, String), WorkflowError> {
    let children = warehouses.iter().map(|w| {
        // Typed like an activity stub: the arguments and the result are checked
        // by the compiler. Each child gets an id of its own; should this run
        // close first, its children are cancelled rather than terminated.
        warehouse_stock::child(&ctx, w.clone(), item.clone())
            .workflow_id(format!("{}-{w}", ctx.info().workflow_id))
            .parent_close_policy(ParentClosePolicy::RequestCancel)
    });
    let mut stocks = Vec::new();
    for stock in join_all(children).await {
        stocks.push(stock?);
    }
    let total = stocks.iter().map(|s| s.units).sum();
    let most = stocks
        .iter()
        .max_by_key(|s| s.units)
        .map(|s| s.warehouse.clone())
        .unwrap_or_default();
    Ok((total, most))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logs::init();
    let dir = std::env::temp_dir().join(format!("child-workflows-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let worker = Worker::builder(engine.protocol())
        .task_queue("inventory")
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let client = Client::new(engine.protocol()).with_task_queue("inventory");

    let warehouses = ["lyon", "porto", "gdansk"].map(String::from).to_vec();
    let handle = inventory::start(&client, "bolts".to_owned(), warehouses)
        .workflow_id("inventory-bolts")
        .await?;
    let (total, most) = handle.result().await?;
    println!("bolts: {total} units in all, most in {most}");

    // The parent's history names each child and how it ended.
    for event in handle.history().await? {
        match event.kind {
            EventKind::ChildWorkflowStarted {
                seq,
                workflow_id,
                run_id,
            } => println!("parent: child {seq} `{workflow_id}` started as run {run_id}"),
            EventKind::ChildWorkflowCompleted { seq, .. } => {
                println!("parent: child {seq} completed")
            }
            _ => {}
        }
    }
    // Each child's history starts by naming its parent.
    for warehouse in ["lyon", "porto", "gdansk"] {
        let id = format!("inventory-bolts-{warehouse}");
        let history = engine
            .protocol()
            .workflow_history(WorkflowRef::latest(&id))
            .await?;
        if let Some(EventKind::WorkflowStarted {
            parent: Some(parent),
            ..
        }) = history.first().map(|e| &e.kind)
        {
            println!(
                "child `{id}`: {} events, started by `{}` (command {})",
                history.len(),
                parent.workflow_id,
                parent.seq
            );
        }
    }

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
