use activity_core::{activity, ActivityError};

#[activity(start_to_close = "1s", heartbeat_timeout = "10s", retry(max_attempts = 3))]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(colour = "blue")]
async fn paint(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
