use activity_core::{activity, workflow, ActivityError, WorkflowContext, WorkflowError};

// A typo in the body is reported where it is, by the compiler, and the
// activity's stub still exists (no error about `charge::call`).
#[activity(start_to_close = "1s")]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    let doubled = cents * 2
    Ok(doubled)
}

#[workflow]
async fn checkout(ctx: WorkflowContext, cents: u64) -> Result<u64, WorkflowError> {
    Ok(charge::call(&ctx, cents).await?)
}

fn main() {}
