use std::{future::IntoFuture, time::Duration};

use activity_core::{
    activity, workflow, workflow::join_all, ActivityError, CancellationType, Client,
    WorkflowContext, WorkflowError,
};

#[activity(start_to_close = "10s")]
async fn charge(card: String, cents: u64) -> Result<String, ActivityError> {
    Ok(format!("{card}:{cents}"))
}

#[activity(start_to_close = "1s")]
async fn tax(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents / 10)
}

/// Charges an order: typed stubs, a local activity, a timer, a join and a cancel.
#[workflow]
async fn checkout(ctx: WorkflowContext, card: String, cents: u64) -> Result<Vec<String>, WorkflowError> {
    let tax: u64 = tax::call(&ctx.local(), cents).await?;
    ctx.sleep(Duration::from_secs(1)).await;
    let receipts = join_all((0..3).map(|i| charge::call(&ctx, card.clone(), cents + tax + i))).await;
    let slow = charge::call(&ctx, card, 0)
        .cancellation_type(CancellationType::WaitCancellationCompleted)
        .into_future();
    slow.cancel();
    let _ = slow.await;
    receipts.into_iter().map(|r| r.map_err(WorkflowError::from)).collect()
}

#[workflow(name = "billing.refund")]
async fn refund(_ctx: WorkflowContext) -> Result<(), WorkflowError> {
    Ok(())
}

fn main() {
    let _start = |client: Client| async move {
        let handle = checkout::start(&client, "4242".to_owned(), 100)
            .workflow_id("order-1")
            .await?;
        let receipts: Vec<String> = handle.result().await?;
        let _ = refund::start(&client).await?;
        Ok::<_, Box<dyn std::error::Error>>(receipts)
    };
    assert_eq!(refund::NAME, "billing.refund");
}
