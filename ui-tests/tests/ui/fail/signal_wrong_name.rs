use activity_core::{workflow, Client, WorkflowContext, WorkflowError};

#[workflow(signals(approve = String))]
async fn approval(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    ctx.signal(approval::approve).recv().await
}

async fn send(client: Client) {
    let handle = approval::start(&client).await.unwrap();
    // `reject` is not declared by `approval`.
    handle.signal(approval::reject, "no".to_owned()).await.unwrap();
}

fn main() {
    let _ = send;
}
