//! Continue-as-new: a workflow that processes a stream of batches forever
//! would grow one history without end. This one processes one batch per run
//! and continues as new with its running total, so each run's history stays
//! small; the client's handle, taken before the first run, follows the chain
//! to the final result.
//!
//! `cargo run -p activity-examples --bin continue_as_new`

mod logs;

use activity_core::{
    activity, workflow, workflow::WorkflowRef, ActivityError, Client, WorkflowContext,
    WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;

/// Processes batch `batch`: answers how many items it held.
#[activity(start_to_close = "30s")]
async fn process_batch(batch: u32) -> Result<u64, ActivityError> {
    Ok(u64::from(batch % 7) + 1)
}

/// Processes batches `batch..batches` one run at a time; answers the total.
#[workflow]
async fn batches(
    ctx: WorkflowContext,
    batch: u32,
    batches: u32,
    total: u64,
) -> Result<u64, WorkflowError> {
    let items = process_batch::call(&ctx, batch).await?;
    let total = total + items;
    if batch + 1 == batches {
        return Ok(total);
    }
    // This run ends here; a new run of the same workflow id takes over.
    batches::continue_as_new(&ctx, batch + 1, batches, total).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logs::init();
    let dir = std::env::temp_dir().join(format!("continue-as-new-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let worker = Worker::builder(engine.protocol())
        .task_queue("batches")
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let client = Client::new(engine.protocol()).with_task_queue("batches");

    let handle = batches::start(&client, 0, 10, 0)
        .workflow_id("nightly-batches")
        .await?;
    println!("total of 10 batches: {}", handle.result().await?);

    // The chain, run by run: each closed as ContinuedAsNew, naming the next.
    let mut run = handle.workflow().clone();
    loop {
        let d = engine.protocol().describe_workflow(run.clone()).await?;
        println!(
            "run {}: {} with {} history events",
            d.run_id, d.state, d.history_length
        );
        match d.outcome {
            Some(activity_core::workflow::WorkflowOutcome::ContinuedAsNew { new_run_id }) => {
                run = WorkflowRef::run("nightly-batches", new_run_id);
            }
            _ => break,
        }
    }

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
