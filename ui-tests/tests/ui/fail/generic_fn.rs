use activity_core::{activity, ActivityError};

#[activity]
async fn store<T>(value: T) -> Result<(), ActivityError> {
    let _ = value;
    Ok(())
}

fn main() {}
