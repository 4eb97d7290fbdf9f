use std::time::Duration;

use activity_core::{activity, ActivityError, ActivityOptions, TestActivityEnvironment};

// No close timeout declared: every call sets one, or passes options checked at run time.
#[activity]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let env = TestActivityEnvironment::new();
    let a = charge::call(&env, 1).start_to_close(Duration::from_secs(1)).await.unwrap();
    let b = charge::call(&env, 2)
        .task_queue("q")
        .schedule_to_close(Duration::from_secs(5))
        .await
        .unwrap();
    let c = charge::call(&env, 3)
        .options(ActivityOptions::new().start_to_close(Duration::from_secs(1)))
        .await
        .unwrap();
    // Options known only at run time are validated then.
    let refused = charge::call(&env, 4).options(ActivityOptions::new()).await;
    assert!(refused.is_err());
    assert_eq!((a, b, c), (1, 2, 3));
}
