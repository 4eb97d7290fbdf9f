use std::cell::Cell;

use activity_core::{activity, ActivityError, State};

// Shared state is used by many attempts at once, on many threads.
#[activity(start_to_close = "1s")]
async fn count(counter: State<Cell<u64>>) -> Result<u64, ActivityError> {
    counter.set(counter.get() + 1);
    Ok(counter.get())
}

fn main() {}
