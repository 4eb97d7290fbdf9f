use activity_core::{activity, ActivityError};

extern "C" {
    #[activity(start_to_close = "1s")]
    fn charge(cents: u64) -> Result<u64, ActivityError>;
}

trait Payments {
    #[activity(start_to_close = "1s")]
    async fn refund(cents: u64) -> Result<u64, ActivityError>;
}

fn main() {}
