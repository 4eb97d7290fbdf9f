use activity_core::{workflow, State, WorkflowContext, WorkflowError};

struct Db;

#[workflow]
async fn no_context(order: u64) -> Result<u64, WorkflowError> {
    Ok(order)
}

#[workflow]
async fn with_state(ctx: WorkflowContext, db: State<Db>) -> Result<(), WorkflowError> {
    let _ = (ctx, db);
    Ok(())
}

#[workflow(start_to_close = "1s")]
async fn with_options(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
