use activity_core::{workflow, Client, WorkflowContext, WorkflowError};

#[workflow(signals(approve = String))]
async fn approval(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    ctx.signal(approval::approve).recv().await
}

async fn send(client: Client) {
    let handle = approval::start(&client).await.unwrap();
    // `approve` carries a String.
    handle.signal(approval::approve, 42_u32).await.unwrap();
}

fn main() {
    let _ = send;
}
