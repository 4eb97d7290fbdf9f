use activity_core::{activity, ActivityError, TestActivityEnvironment};

#[activity(start_to_close = "1s")]
async fn charge(card: String, cents: u64) -> Result<u64, ActivityError> {
    let _ = card;
    Ok(cents)
}

fn main() {
    let env = TestActivityEnvironment::new();
    let _call = async { charge::call(&env, "4242".to_owned(), 100, true).await };
}
