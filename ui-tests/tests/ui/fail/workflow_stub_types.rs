use activity_core::{activity, workflow, ActivityError, Client, WorkflowContext, WorkflowError};

#[activity(start_to_close = "1s")]
async fn count(text: String) -> Result<u64, ActivityError> {
    Ok(text.len() as u64)
}

#[workflow]
async fn words(ctx: WorkflowContext, text: String) -> Result<String, WorkflowError> {
    // The activity returns a u64, not a String.
    let n: String = count::call(&ctx, text).await?;
    Ok(n)
}

fn main() {
    let _start = |client: Client| async move {
        // The workflow takes a String, not a number.
        let _ = words::start(&client, 42).await;
    };
}
