use activity_core::workflow::{join_all, ChildWorkflowOptions, ParentClosePolicy};
use activity_core::{workflow, WorkflowContext, WorkflowError};

#[workflow]
async fn charge(ctx: WorkflowContext, cents: u64, card: String) -> Result<String, WorkflowError> {
    let _ = ctx;
    Ok(format!("{card}: {cents}"))
}

#[workflow]
async fn order(ctx: WorkflowContext, cents: Vec<u64>) -> Result<Vec<String>, WorkflowError> {
    // Awaited: started, then its typed result.
    let first: String = charge::child(&ctx, 1, "visa".to_owned()).await?;
    // Started for a handle, with options.
    let handle = charge::child(&ctx, 2, "amex".to_owned())
        .workflow_id("charge-2")
        .task_queue("payments")
        .parent_close_policy(ParentClosePolicy::Abandon)
        .start()
        .await?;
    let second: String = handle.result().await?;
    // The context's form, all options at once.
    let options = ChildWorkflowOptions::new().parent_close_policy(ParentClosePolicy::RequestCancel);
    let third = ctx
        .child::<charge>((3, "visa".to_owned()))
        .options(options)
        .await?;
    // Fanned out.
    let mut all: Vec<String> = join_all(cents.into_iter().map(|c| charge::child(&ctx, c, "visa".into())))
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    all.extend([first, second, third]);
    Ok(all)
}

fn main() {}
