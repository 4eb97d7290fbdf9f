use activity_core::{workflow, WorkflowContext, WorkflowError};

#[derive(Debug)]
enum CountError {
    Negative,
}

impl From<CountError> for WorkflowError {
    fn from(err: CountError) -> Self {
        WorkflowError::application("CountError", format!("{err:?}"))
    }
}

#[workflow]
async fn countdown(ctx: WorkflowContext, n: u32, label: String) -> Result<String, WorkflowError> {
    if n == 0 {
        return Ok(label);
    }
    countdown::continue_as_new(&ctx, n - 1, label).await
}

// A workflow with its own error type continues as new the same way.
#[workflow]
async fn checked(ctx: WorkflowContext, n: i64) -> Result<u32, CountError> {
    if n < 0 {
        return Err(CountError::Negative);
    }
    if n == 0 {
        return Ok(0);
    }
    ctx.continue_as_new::<checked, _>((n - 1,)).await
}

fn main() {}
