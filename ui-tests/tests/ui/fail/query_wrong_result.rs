use activity_core::{workflow, Client, WorkflowContext, WorkflowError};

#[workflow(queries(status = String))]
async fn approval(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    ctx.on_query(approval::status, || "waiting".to_owned());
    Ok(())
}

async fn ask(client: Client) {
    let handle = approval::start(&client).await.unwrap();
    // `status` answers a String.
    let status: u32 = handle.query(approval::status).await.unwrap();
    let _ = status;
}

fn main() {
    let _ = ask;
}
