use activity_core::{activity, ActivityError};

#[activity]
fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
