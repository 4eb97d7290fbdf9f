//! Approval: an order waits for a typed `approve` signal; a query shows its
//! status while it waits; a durable timer escalates it to a manager when
//! nobody approves in time, and the manager's approval arrives as a signal too.
//!
//! `cargo run -p activity-examples --bin approval`

mod logs;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use activity_core::{
    activity, workflow,
    workflow::{select, Either},
    ActivityError, Client, WorkflowContext, WorkflowError,
};
use activity_engine::{Engine, EngineConfig};
use activity_worker::Worker;
use serde::{Deserialize, Serialize};

/// Who approved, and why.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Approval {
    by: String,
    note: String,
}

/// What the `status` query answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
enum Status {
    WaitingForApproval,
    Escalated { to: String },
    Approved { by: String },
}

/// Tells a manager that an order waits for them.
#[activity(start_to_close = "30s")]
async fn notify_manager(order: String) -> Result<String, ActivityError> {
    println!("activity: order {order} escalated to the manager");
    Ok("manager@example.com".into())
}

/// Waits for `approve`; after `escalate_after_ms` without one, escalates and
/// waits for the manager's.
#[workflow(signals(approve = Approval), queries(status = Status))]
async fn order_approval(
    ctx: WorkflowContext,
    order: String,
    escalate_after_ms: u64,
) -> Result<String, WorkflowError> {
    let status = Arc::new(Mutex::new(Status::WaitingForApproval));
    let answer = status.clone();
    ctx.on_query(order_approval::status, move || {
        answer
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Status::WaitingForApproval)
    });
    let set = |value: Status| {
        if let Ok(mut current) = status.lock() {
            *current = value;
        }
    };
    let approvals = ctx.signal(order_approval::approve);
    let deadline = ctx.sleep(Duration::from_millis(escalate_after_ms));
    let approval = match select(approvals.recv(), deadline).await {
        Either::Left((approval, _)) => approval?,
        Either::Right((_, _)) => {
            let manager = notify_manager::call(&ctx, order.clone()).await?;
            set(Status::Escalated { to: manager });
            approvals.recv().await?
        }
    };
    set(Status::Approved {
        by: approval.by.clone(),
    });
    Ok(format!(
        "order {order} approved by {} ({})",
        approval.by, approval.note
    ))
}

/// Queries `handle` until its status is `wanted` (the workflow's worker
/// answers as soon as its code has reached it).
async fn wait_for_status(
    handle: &activity_core::workflow::WorkflowHandle<order_approval>,
    wanted: fn(&Status) -> bool,
) -> anyhow::Result<Status> {
    for _ in 0..200 {
        let status = handle.query(order_approval::status).await?;
        if wanted(&status) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the order never reached the expected status")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logs::init();
    let dir = std::env::temp_dir().join(format!("approval-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::file(dir.join("engine.sqlite"))).await?;
    let worker = Worker::builder(engine.protocol())
        .task_queue("orders")
        .build()?;
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let client = Client::new(engine.protocol()).with_task_queue("orders");

    // Approved in time: a signal from the client.
    let quick = order_approval::start(&client, "A-1".into(), 60_000)
        .workflow_id("order-A-1")
        .await?;
    let status = wait_for_status(&quick, |s| *s == Status::WaitingForApproval).await?;
    println!("order A-1: {status:?}");
    quick
        .signal(
            order_approval::approve,
            Approval {
                by: "ann".into(),
                note: "looks good".into(),
            },
        )
        .await?;
    println!("{}", quick.result().await?);

    // Nobody approves within 300 ms: the timer escalates it.
    let slow = order_approval::start(&client, "B-2".into(), 300)
        .workflow_id("order-B-2")
        .await?;
    let status = wait_for_status(&slow, |s| matches!(s, Status::Escalated { .. })).await?;
    println!("order B-2: {status:?}");
    slow.signal(
        order_approval::approve,
        Approval {
            by: "the manager".into(),
            note: "escalated".into(),
        },
    )
    .await?;
    println!("{}", slow.result().await?);
    println!(
        "order B-2 after it closed: {:?}",
        slow.query(order_approval::status).await?
    );

    shutdown.shutdown();
    running.await?;
    engine.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
