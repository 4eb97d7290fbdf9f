use activity_core::{activity, ActivityContext, ActivityError, TestActivityEnvironment};

#[activity(start_to_close = "1s")]
async fn ping(ctx: ActivityContext) -> Result<String, ActivityError> {
    Ok(ctx.info().activity_type.clone())
}

fn main() {
    let env = TestActivityEnvironment::new();
    let _call = async {
        let pong: String = ping::call(&env).await.unwrap();
        pong
    };
}
