use activity_core::{workflow, WorkflowContext, WorkflowError};

#[workflow(signals(approve = String, approve = u32, start = ()), queries(approve = u32), signals)]
async fn approval(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
