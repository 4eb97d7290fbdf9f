//! Time, injected.
//!
//! The engine (and later the worker) never reads the system clock directly: it asks
//! a [`Clock`] for the current wall time and for a future that resolves at a given
//! wall time. Production uses the system clock; tests use a virtual clock that
//! jumps to the next timer when nothing else can progress, so a test of a one-hour
//! timeout takes milliseconds.
//!
//! This crate only defines the trait (it has no timer of its own: it depends on
//! tokio's `sync` feature only). The implementations live with the runtimes that
//! can sleep, e.g. `activity_engine::clock::{SystemClock, VirtualClock}`.
//!
//! All durations of the model have millisecond resolution; [`to_millis`] and
//! [`from_millis`] convert wall times to and from the milliseconds since the Unix
//! epoch that stores and wire formats keep.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::definition::BoxFuture;

/// A source of wall time that can also wait until a wall time.
///
/// Object-safe: engines hold an `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall time.
    fn now(&self) -> SystemTime;

    /// A future that resolves once [`Clock::now`] is at or after `deadline`
    /// (at once if it already is).
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;

    /// A future that resolves after `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self.now() + duration;
        self.sleep_until(deadline)
    }
}

/// Milliseconds since the Unix epoch (negative before it), saturating.
pub fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis())
            .map(|ms| -ms)
            .unwrap_or(i64::MIN),
    }
}

/// The wall time `millis` milliseconds after the Unix epoch.
pub fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_on_both_sides_of_the_epoch() {
        for ms in [0_i64, 1, 1_700_000_000_123, -5_000] {
            assert_eq!(to_millis(from_millis(ms)), ms);
        }
        assert_eq!(duration_millis(Duration::from_secs(3)), 3_000);
        assert_eq!(duration_millis(Duration::MAX), i64::MAX);
    }
}
