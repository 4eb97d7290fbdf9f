use activity_core::{activity, ActivityError};

struct Card {
    number: String,
}

#[activity]
async fn charge(card: Card, cents: u64) -> Result<u64, ActivityError> {
    let _ = card.number;
    Ok(cents)
}

fn main() {}
