use activity_core::{workflow, WorkflowContext, WorkflowError};

#[workflow]
async fn countdown(ctx: WorkflowContext, n: u32, label: String) -> Result<String, WorkflowError> {
    if n == 0 {
        return Ok(label);
    }
    // The workflow takes a u32 then a String: the arguments are swapped.
    countdown::continue_as_new(&ctx, label, n - 1).await
}

#[workflow]
async fn ticker(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    // The tuple of the context's form must match the workflow's arguments too.
    ctx.continue_as_new::<ticker, _>(("one",)).await
}

fn main() {}
