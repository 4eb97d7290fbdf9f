use activity_core::{activity, ActivityError};

#[activity(start_to_close = "1s")]
async unsafe fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[activity(start_to_close = "1s")]
const fn refund(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
