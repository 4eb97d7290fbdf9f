use activity_core::{activity, ActivityError};

#[activity(
    start_to_close = "30 sec",
    schedule_to_close = "0s",
    heartbeat = 10,
    retry(initial_interval = "10s", maximum_interval = "1s", backoff_coefficient = 0.5)
)]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
