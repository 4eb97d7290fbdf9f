use activity_core::{activity, ActivityError};

#[activity(start_to_close = "thirty seconds", heartbeat = "1500us", schedule_to_start = "5 parsecs")]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
