use activity_core::{activity, ActivityContext, ActivityError};

#[activity]
async fn charge(cents: u64, ctx: ActivityContext) -> Result<u64, ActivityError> {
    let _ = ctx;
    Ok(cents)
}

fn main() {}
