use activity_core::activity;

#[derive(Debug)]
enum ChargeError {
    Declined,
}

#[activity]
async fn charge(cents: u64) -> Result<u64, ChargeError> {
    if cents == 0 {
        return Err(ChargeError::Declined);
    }
    Ok(cents)
}

fn main() {}
