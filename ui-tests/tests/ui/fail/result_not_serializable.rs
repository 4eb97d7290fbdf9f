use activity_core::{activity, ActivityError};

struct Receipt;

#[activity]
async fn charge(cents: u64) -> Result<Receipt, ActivityError> {
    let _ = cents;
    Ok(Receipt)
}

fn main() {}
