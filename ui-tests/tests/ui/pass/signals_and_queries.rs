use activity_core::{
    workflow,
    workflow::{select, Either},
    Client, WorkflowContext, WorkflowError,
};

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Approval {
    by: String,
}

#[workflow(signals(approve = Approval, reject = String), queries(status = String))]
pub async fn approval(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    ctx.on_query(approval::status, || "waiting".to_owned());
    let (approvals, rejections) = (ctx.signal(approval::approve), ctx.signal(approval::reject));
    match select(approvals.recv(), rejections.recv()).await {
        Either::Left((approved, _)) => Ok(approved?.by),
        Either::Right((reason, _)) => Err(WorkflowError::application("Rejected", reason?)),
    }
}

async fn drive(client: Client) -> Result<(), activity_core::workflow::WorkflowCallError> {
    let handle = approval::start(&client)
        .workflow_id("order-1")
        .with_signal(approval::reject, "too late".to_owned())
        .await?;
    handle.signal(approval::approve, Approval { by: "ann".into() }).await?;
    let status: String = handle.query(approval::status).await?;
    let _ = status;
    Ok(())
}

fn main() {
    let _ = drive;
}
