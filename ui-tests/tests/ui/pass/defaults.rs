use std::time::Duration;

use activity_core::{activity, ActivityContext, ActivityDefinition, ActivityError};

#[activity(
    start_to_close = "30s",
    schedule_to_close = "1h 30m",
    schedule_to_start = "5m",
    heartbeat = "250ms",
    task_queue = "media",
    retry(
        initial_interval = "1s",
        backoff_coefficient = 2,
        maximum_interval = "1m",
        maximum_attempts = 10,
        non_retryable = ["Corrupt"]
    )
)]
async fn transcode(ctx: ActivityContext, path: String) -> Result<String, ActivityError> {
    ctx.heartbeat(&path)?;
    Ok(path)
}

fn main() {
    let options = <transcode as ActivityDefinition>::default_options();
    assert_eq!(options.schedule_to_close, Some(Duration::from_secs(5400)));
    assert_eq!(options.heartbeat_timeout, Some(Duration::from_millis(250)));
    assert_eq!(options.retry.backoff_coefficient, Some(2.0));
    assert_eq!(options.retry.non_retryable_error_types, ["Corrupt"]);
}
