use activity_core::activity;

#[activity]
async fn charge(cents: u64) -> u64 {
    cents
}

#[activity]
async fn notify(to: String) {
    let _ = to;
}

fn main() {}
