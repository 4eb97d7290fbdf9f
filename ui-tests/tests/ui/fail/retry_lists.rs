use activity_core::{activity, ActivityError};

#[activity(start_to_close = "1s", retry = 3)]
async fn flat(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(start_to_close = "1s", retry(non_retryable = "CardDeclined"))]
async fn one_type(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(start_to_close = "1s", retry(non_retryable = [42, Declined, ""]))]
async fn odd_entries(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
