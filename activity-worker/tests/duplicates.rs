//! A worker refuses to start when two activities share a name, naming both.

use std::sync::Arc;

use activity_core::{activity, ActivityError};
use activity_engine::VirtualClock;

use activity_test_support as support;
use activity_worker::{Worker, WorkerError};
use support::TestEngine;

mod v1 {
    use super::*;

    #[activity(name = "resize")]
    pub(crate) async fn resize_image(width: u32) -> Result<u32, ActivityError> {
        Ok(width)
    }
}

mod v2 {
    use super::*;

    #[activity(name = "resize")]
    pub(crate) async fn resize_video(width: u32, height: u32) -> Result<u32, ActivityError> {
        Ok(width * height)
    }
}

#[tokio::test(start_paused = true)]
async fn two_activities_with_one_name_stop_the_worker_at_start() {
    let engine = TestEngine::open(
        activity_test_support::engine_config().with_clock(Arc::new(VirtualClock::new())),
    )
    .await;
    let err = Worker::builder(engine.protocol())
        .task_queue("media")
        .build()
        .unwrap_err();
    assert!(matches!(err, WorkerError::Registry(_)));
    let message = err.to_string();
    assert!(
        message.contains("two activities are named `resize`"),
        "{message}"
    );
    assert!(
        message.contains("tests/duplicates.rs:15 (duplicates::v1)"),
        "{message}"
    );
    assert!(
        message.contains("tests/duplicates.rs:24 (duplicates::v2)"),
        "{message}"
    );
}
