//! A long activity reports its progress with heartbeats; it fails half-way, and
//! the retry resumes from the last recorded progress instead of starting over.
//!
//! `cargo run -p activity-examples --bin heartbeat_progress`

use std::time::Duration;

use activity_core::{activity, ActivityContext, ActivityError, Client};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;

/// Processes `chunks` chunks. Attempt 1 "crashes" after chunk 6.
#[activity(
    start_to_close = "1m",
    heartbeat = "2s",
    retry(initial_interval = "100ms")
)]
async fn transcode(ctx: ActivityContext, chunks: u32) -> Result<String, ActivityError> {
    let attempt = ctx.info().attempt;
    // The last chunk a previous attempt finished, if any.
    let done: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
    println!("attempt {attempt}: starting after chunk {done}");
    for chunk in done + 1..=chunks {
        tokio::time::sleep(Duration::from_millis(20)).await; // the real work
        ctx.heartbeat(&chunk)?;
        println!("attempt {attempt}: chunk {chunk}/{chunks}");
        if attempt == 1 && chunk == 6 {
            return Err(ActivityError::retryable("the encoder crashed"));
        }
    }
    Ok(format!("{chunks} chunks transcoded in {attempt} attempts"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("heartbeat-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let worker = Worker::builder(engine.protocol())
        .task_queue("media")
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    // A standalone activity: no workflow needed to run one durably.
    let client = Client::new(engine.protocol()).with_task_queue("media");
    let handle = client.start(transcode::call(&client, 10)).await?;
    let summary = handle.result().await?;
    println!("result: {summary}");
    let description = handle.describe().await?;
    println!(
        "attempts: {}, last progress the engine stored (heartbeats are throttled): {:?}",
        description.attempt,
        description.heartbeat_details.map(|d| d.decode::<u32>())
    );

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
