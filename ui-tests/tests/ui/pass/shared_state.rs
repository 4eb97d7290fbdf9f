use std::sync::Mutex;

use activity_core::{activity, ActivityContext, ActivityError, State, TestActivityEnvironment};

struct Pool {
    rows: Mutex<Vec<String>>,
}

#[activity(start_to_close = "5s")]
async fn insert(_ctx: ActivityContext, pool: State<Pool>, row: String) -> Result<usize, ActivityError> {
    let mut rows = pool.rows.lock().unwrap();
    rows.push(row);
    Ok(rows.len())
}

fn main() {
    let env = TestActivityEnvironment::new().with_state(Pool { rows: Mutex::new(Vec::new()) });
    // The stub takes only the serialized arguments: the state comes from the worker.
    let _call = async { insert::call(&env, "row".to_owned()).await };
}
