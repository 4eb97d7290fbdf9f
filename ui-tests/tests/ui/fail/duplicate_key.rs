use activity_core::{activity, ActivityError};

#[activity(name = "charge", start_to_close = "1s", name = "charge_v2")]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
