use activity_core::{workflow, WorkflowContext};

#[derive(Debug)]
struct CheckoutError;

#[workflow]
async fn checkout(ctx: WorkflowContext, cents: u64) -> Result<u64, CheckoutError> {
    let _ = ctx;
    Ok(cents)
}

fn main() {}
