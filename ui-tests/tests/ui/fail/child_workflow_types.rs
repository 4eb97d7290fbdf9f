use activity_core::{workflow, WorkflowContext, WorkflowError};

#[workflow]
async fn charge(ctx: WorkflowContext, cents: u64, card: String) -> Result<String, WorkflowError> {
    let _ = ctx;
    Ok(format!("{card}: {cents}"))
}

#[workflow]
async fn order(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    // The child takes a u64 then a String: the arguments are swapped.
    let first = charge::child(&ctx, "visa".to_owned(), 100).await?;
    // The tuple of the context's form must match the child's arguments too.
    let second = ctx.child::<charge>((100, 7)).await?;
    // The child's result is a String, not a number.
    let third: u64 = charge::child(&ctx, 5, "amex".to_owned()).await?;
    Ok(format!("{first} {second} {third}"))
}

fn main() {}
