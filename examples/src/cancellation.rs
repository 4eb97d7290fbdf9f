//! Cancellation: a workflow gives a long activity a deadline of its own, then
//! cancels it; the activity learns it through its heartbeats, cleans up, and
//! acknowledges.
//!
//! `cargo run -p activity-examples --bin cancellation`

use std::{future::IntoFuture, time::Duration};

use activity_core::{
    activity, workflow,
    workflow::{select, Either},
    ActivityContext, ActivityError, CancellationType, Client, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;

/// Copies files until done or cancelled; removes its partial output when cancelled.
#[activity(start_to_close = "1h", heartbeat = "500ms")]
async fn copy_files(ctx: ActivityContext, files: u32) -> Result<u32, ActivityError> {
    for copied in 0..files {
        ctx.heartbeat(&copied)?;
        tokio::select! {
            reason = ctx.cancelled() => {
                println!("activity: cancelled ({reason}) after {copied} files: removing partial copies");
                return Err(ActivityError::canceled_with(&copied)?);
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(files)
}

/// Copies with a time budget; past it, cancels the copy and waits for its cleanup.
#[workflow]
async fn backup(ctx: WorkflowContext, files: u32, budget_ms: u64) -> Result<String, WorkflowError> {
    let copy = copy_files::call(&ctx, files)
        .cancellation_type(CancellationType::WaitCancellationCompleted)
        .into_future();
    let budget = ctx.sleep(Duration::from_millis(budget_ms));
    match select(copy, budget).await {
        Either::Left((copied, _)) => Ok(format!("copied all {} files", copied?)),
        Either::Right((_, copy)) => {
            copy.cancel();
            match copy.await {
                Ok(copied) => Ok(format!("finished anyway: {copied} files")),
                Err(err) => Ok(format!("over budget, copy cancelled: {err}")),
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cancellation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let worker = Worker::builder(engine.protocol())
        .task_queue("backups")
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let client = Client::new(engine.protocol()).with_task_queue("backups");
    let quick = backup::start(&client, 3, 5_000).await?.result().await?;
    println!("small backup: {quick}");
    let slow = backup::start(&client, 1_000, 700).await?.result().await?;
    println!("large backup: {slow}");

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
