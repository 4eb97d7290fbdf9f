mod payments {
    use activity_core::{activity, ActivityError};

    /// Documented activities keep their docs and visibility.
    #[activity(start_to_close = "1s")]
    pub async fn refund(cents: u64) -> Result<u64, ActivityError> {
        Ok(cents)
    }

    #[activity(start_to_close = "1s")]
    pub(crate) async fn audit(entry: String) -> Result<(), ActivityError> {
        let _ = entry;
        Ok(())
    }
}

use activity_core::TestActivityEnvironment;
use payments::refund;

fn main() {
    let env = TestActivityEnvironment::new();
    let _a = async { refund::call(&env, 5).await };
    let _b = async { payments::audit::call(&env, "x".to_owned()).await };
    let _plain = payments::refund(5);
}
