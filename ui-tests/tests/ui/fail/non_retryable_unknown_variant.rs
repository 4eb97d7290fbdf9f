use activity_core::{activity, ActivityError};

#[derive(Debug, thiserror::Error, ActivityError)]
enum ChargeError {
    #[error("declined")]
    Declined,
}

#[derive(Debug)]
enum PlainError {
    Fatal,
}

#[activity(start_to_close = "1s", retry(non_retryable = [ChargeError::Decliend, PlainError::Fatal]))]
async fn charge(cents: u64) -> Result<u64, ChargeError> {
    let _ = PlainError::Fatal;
    Ok(cents)
}

fn main() {}
