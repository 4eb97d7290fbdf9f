use activity_core::{activity, ActivityError};

#[activity(
    start_to_close = "1s",
    retry(backoff_coefficient = "2", maximum_attempts = 5000000000)
)]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(start_to_close = "1s", retry(maximum_attempts = 2.5))]
async fn refund(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
