use activity_core::{activity, workflow, ActivityContext, ActivityError, WorkflowContext, WorkflowError};

#[activity(start_to_close = "1s")]
async fn charge(ctx: &ActivityContext, cents: u64) -> Result<u64, ActivityError> {
    let _ = ctx;
    Ok(cents)
}

#[workflow]
async fn checkout(ctx: &WorkflowContext, cents: u64) -> Result<u64, WorkflowError> {
    let _ = ctx;
    Ok(cents)
}

fn main() {}
