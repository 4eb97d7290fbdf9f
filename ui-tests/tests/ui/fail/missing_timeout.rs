use activity_core::{activity, ActivityError, Client, TestActivityEnvironment};

#[activity]
async fn charge(cents: u64) -> Result<u64, ActivityError> {
    Ok(cents)
}

async fn from_a_client(client: &Client) {
    let _ = client.start(charge::call(client, 100)).await;
}

fn main() {
    let env = TestActivityEnvironment::new();
    let _call = async { charge::call(&env, 100).await };
    let _ = from_a_client;
}
