//! The virtual clock: time skips to the next timer only when nothing else can
//! progress, never while the store is answering a request.

mod common;

use std::time::Duration;

use activity_core::{options::ActivityOptions, protocol::ExecutionState, Clock};
use common::*;

#[tokio::test(start_paused = true)]
async fn virtual_time_does_not_advance_while_a_store_request_is_in_flight() {
    let env = Env::new().await;
    env.schedule(
        "a",
        ActivityOptions::new()
            .start_to_close(secs(3600))
            .heartbeat_timeout(secs(10)),
    )
    .await
    .unwrap();
    let task = env.poll_now().await.unwrap();
    for i in 0..50 {
        // The heartbeat deadline is 1 ms away: an idle runtime would jump to it.
        env.clock.sleep(Duration::from_millis(9_999)).await;
        let before = env.now();
        env.protocol
            .record_heartbeat(token(&task), Some(json(i)))
            .await
            .unwrap();
        assert_eq!(env.now(), before, "time moved during heartbeat {i}");
    }
    let d = env.describe("a").await;
    assert_eq!((d.state, d.attempt), (ExecutionState::Started, 1));
    assert_eq!(d.heartbeat_details, Some(json(49)));
}

#[tokio::test(start_paused = true)]
async fn virtual_time_jumps_to_the_next_timer_when_everything_waits() {
    let env = Env::new().await;
    env.schedule(
        "a",
        ActivityOptions::new().schedule_to_close(secs(24 * 3600)),
    )
    .await
    .unwrap();
    let t0 = env.now();
    let real = std::time::Instant::now();
    let _ = env.outcome("a").await;
    assert_eq!(env.secs_since(t0), 24.0 * 3600.0);
    assert!(real.elapsed() < Duration::from_secs(10));
}
