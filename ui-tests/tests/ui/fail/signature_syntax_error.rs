use activity_core::{activity, ActivityError};

// A signature that does not parse is reported once, where it is.
#[activity(start_to_close = "1s")]
async fn charge(cents u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
