use activity_core::{workflow, WorkflowContext, WorkflowError};

struct Shop;

impl Shop {
    #[workflow]
    async fn checkout(&self, ctx: WorkflowContext) -> Result<(), WorkflowError> {
        let _ = ctx;
        Ok(())
    }
}

#[workflow]
fn not_async(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = ctx;
    Ok(())
}

#[workflow]
async fn generic<T: Send + 'static>(ctx: WorkflowContext, value: T) -> Result<(), WorkflowError> {
    let _ = (ctx, value);
    Ok(())
}

#[workflow]
async fn no_result(ctx: WorkflowContext) -> u64 {
    let _ = ctx;
    1
}

fn main() {}
