use activity_core::{activity, ActivityError};

#[activity(name, start_to_close)]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(start_to_close = "1s", task_queue = payments, crate = "not a path!")]
async fn refund(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
