//! Asynchronous completion: an activity hands its task token to another system
//! and returns "result pending"; that system completes it later, by token. The
//! completion handle is typed by the activity's result.
//!
//! `cargo run -p activity-examples --bin async_completion`

use activity_core::{activity, ActivityContext, ActivityError, Client, State, TaskToken};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use tokio::sync::mpsc;

/// Where approval requests go: in a real program, a queue read by a human-facing app.
struct ApprovalInbox {
    requests: mpsc::UnboundedSender<(TaskToken, String)>,
}

/// Asks a human to approve an expense; the answer comes later, from elsewhere.
#[activity(start_to_close = "1h")]
async fn request_approval(
    ctx: ActivityContext,
    inbox: State<ApprovalInbox>,
    expense: String,
) -> Result<bool, ActivityError> {
    let token = ctx.task_token().clone();
    println!(
        "activity: asking for approval of {expense:?}, token {}",
        token.to_hex()
    );
    inbox
        .requests
        .send((token, expense))
        .map_err(|_| ActivityError::retryable("the approval inbox is closed"))?;
    // The worker frees this slot and reports nothing: the token completes it.
    Err(ActivityError::result_pending())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("async-completion-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let (sender, mut inbox) = mpsc::unbounded_channel();
    let worker = Worker::builder(engine.protocol())
        .task_queue("approvals")
        .state(ApprovalInbox { requests: sender })
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let client = Client::new(engine.protocol()).with_task_queue("approvals");
    let handle = client
        .start(request_approval::call(
            &client,
            "team dinner, 180 EUR".into(),
        ))
        .await?;

    // Another task (it could be another process, holding only the token) answers.
    let approver = {
        let client = client.clone();
        tokio::spawn(async move {
            let (token, expense) = inbox.recv().await.expect("a request arrives");
            println!("approver: approving {expense:?}");
            // `complete` takes the activity's result type: `&bool` here.
            client
                .async_completion::<request_approval>(token)
                .complete(&true)
                .await
        })
    };
    approver.await??;
    let approved: bool = handle.result().await?;
    println!("result: approved = {approved}");

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
