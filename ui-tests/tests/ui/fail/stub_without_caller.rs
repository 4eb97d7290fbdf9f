use std::sync::Arc;

use activity_core::{activity, workflow, ActivityContext, ActivityError, ActivityProtocol, WorkflowContext, WorkflowError};

#[activity(start_to_close = "1s")]
async fn charge(card: String, cents: u64) -> Result<u64, ActivityError> {
    let _ = card;
    Ok(cents)
}

// The engine's protocol is not a caller: a `Client` over it is.
async fn with_the_protocol(protocol: Arc<dyn ActivityProtocol>) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(charge::call(&*protocol, "4242".to_owned(), 100).await?)
}

// An activity's context is not a caller.
#[activity(start_to_close = "1s")]
async fn outer(ctx: ActivityContext, cents: u64) -> Result<u64, ActivityError> {
    charge::call(&ctx, "4242".to_owned(), cents).await.map_err(ActivityError::retryable)
}

#[workflow]
async fn checkout(ctx: WorkflowContext, cents: u64) -> Result<u64, WorkflowError> {
    Ok(charge::call(&ctx, "4242".to_owned(), cents).await?)
}

async fn start_with_the_protocol(protocol: Arc<dyn ActivityProtocol>) {
    let _ = checkout::start(&protocol, 100).await;
}

fn main() {
    let _ = (with_the_protocol, start_with_the_protocol);
}
