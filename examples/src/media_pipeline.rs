//! Host routing: download, process and upload must run on the same host (the file
//! is on its disk). Each worker also listens on a queue of its own; the workflow
//! asks any worker for its queue, then pins the three steps to it. When a step
//! fails, the workflow retries the whole sequence, possibly on another host (the
//! pattern from Temporal's documentation).
//!
//! `cargo run -p activity-examples --bin media_pipeline`

use std::sync::atomic::{AtomicU32, Ordering};

use activity_core::{
    activity, workflow, ActivityError, Client, State, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;

/// This worker's host.
struct Host {
    name: String,
    /// Fails the first processing on this host, to show the retry.
    failures_left: AtomicU32,
}

/// Answers the calling worker's own queue (runs on the shared queue).
#[activity(start_to_close = "5s")]
async fn claim_host(host: State<Host>) -> Result<String, ActivityError> {
    Ok(format!("host-{}", host.name))
}

#[activity(start_to_close = "30s", retry(maximum_attempts = 1))]
async fn download(host: State<Host>, url: String) -> Result<String, ActivityError> {
    println!("[{}] downloading {url}", host.name);
    Ok(format!(
        "/tmp/{}/{}",
        host.name,
        url.rsplit('/').next().unwrap_or("file")
    ))
}

#[activity(start_to_close = "30s", retry(maximum_attempts = 1))]
async fn process(host: State<Host>, path: String) -> Result<String, ActivityError> {
    if host
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        println!("[{}] processing {path}: the disk filled up", host.name);
        return Err(ActivityError::retryable("disk full"));
    }
    println!("[{}] processing {path}", host.name);
    Ok(format!("{path}.processed"))
}

#[activity(start_to_close = "30s", retry(maximum_attempts = 1))]
async fn upload(host: State<Host>, path: String) -> Result<String, ActivityError> {
    println!("[{}] uploading {path}", host.name);
    Ok(format!(
        "s3://media/{}",
        path.rsplit('/').next().unwrap_or("file")
    ))
}

/// Runs the three steps on one host; retries the whole sequence up to 3 times.
#[workflow]
async fn pipeline(ctx: WorkflowContext, url: String) -> Result<String, WorkflowError> {
    let mut last_error = None;
    for attempt in 1..=3 {
        let host_queue = claim_host::call(&ctx).await?;
        let on_host = async {
            let file = download::call(&ctx, url.clone())
                .task_queue(&host_queue)
                .await?;
            let processed = process::call(&ctx, file).task_queue(&host_queue).await?;
            upload::call(&ctx, processed).task_queue(&host_queue).await
        };
        match on_host.await {
            Ok(location) => return Ok(format!("{location} (attempt {attempt}, {host_queue})")),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .map(WorkflowError::from)
        .unwrap_or(WorkflowError::Canceled))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("media-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let mut workers = Vec::new();
    for name in ["a", "b"] {
        // Each worker polls the shared queue and its own host queue.
        let worker = Worker::builder(engine.protocol())
            .task_queue("media")
            .task_queue(format!("host-{name}"))
            .identity(format!("worker-{name}"))
            .state(Host {
                name: name.into(),
                failures_left: AtomicU32::new(1),
            })
            .build()?;
        let shutdown = worker.shutdown_handle();
        workers.push((
            shutdown,
            tokio::spawn(worker.run_until(std::future::pending())),
        ));
    }

    let client = Client::new(engine.protocol()).with_task_queue("media");
    let location = pipeline::start(&client, "https://example.org/cat.mp4".into())
        .await?
        .result()
        .await?;
    println!("uploaded to {location}");

    for (shutdown, running) in workers {
        shutdown.shutdown();
        running.await?;
    }
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
