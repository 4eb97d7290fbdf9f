use activity_core::{activity, ActivityError};

#[activity]
async fn charge(&self, cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

fn main() {}
