use activity_core::{activity, workflow};

#[activity(start_to_close = "1s")]
struct Charge {
    cents: u64,
}

#[workflow]
const CHECKOUT: u32 = 1;

fn main() {}
