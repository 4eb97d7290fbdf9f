use activity_core::{activity, ActivityError, TestActivityEnvironment};

#[activity(start_to_close = "1s")]
async fn double(n: u64) -> Result<u64, ActivityError> {
    Ok(n * 2)
}

fn main() {
    let env = TestActivityEnvironment::new();
    let _direct = double(21);
    let _call = async { double::call(&env, 21).await };
}
