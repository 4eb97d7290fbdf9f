use activity_core::{activity, ActivityError};

#[activity(start_to_close = "1s")]
async fn describe(item: impl serde::Serialize) -> Result<String, ActivityError> {
    let _ = item;
    Ok(String::new())
}

fn main() {}
