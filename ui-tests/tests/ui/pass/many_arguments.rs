use std::collections::BTreeMap;

use activity_core::{activity, ActivityContext, ActivityError, TestActivityEnvironment};

#[activity(start_to_close = "1s")]
async fn sixteen(
    _ctx: ActivityContext,
    a: u8, b: u16, c: u32, d: u64, e: i8, f: i16, g: i32, h: i64,
    i: String, j: Vec<u8>, k: Option<String>, l: BTreeMap<String, u32>,
    m: (u8, bool), n: bool, o: f64, p: char,
) -> Result<(), ActivityError> {
    let _ = (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p);
    Ok(())
}

fn main() {
    let env = TestActivityEnvironment::new();
    let _call = async {
        sixteen::call(
            &env, 1, 2, 3, 4, 5, 6, 7, 8, "i".into(), vec![9], None, BTreeMap::new(),
            (1, true), false, 1.5, 'p',
        )
        .await
    };
}
