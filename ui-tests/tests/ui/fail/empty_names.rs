use activity_core::{activity, workflow, ActivityError, WorkflowContext, WorkflowError};

#[activity(name = "", start_to_close = "1s")]
async fn unnamed(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(task_queue = "  ", start_to_close = "1s")]
async fn nowhere(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[workflow(name = " ")]
async fn anonymous(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
