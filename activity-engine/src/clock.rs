//! Clocks for the engine: [`SystemClock`] and the [`VirtualClock`] of tests.
//!
//! The virtual clock is tokio's own clock read as wall time: `now` is a fixed
//! epoch base plus the time elapsed on tokio's clock since the clock was made.
//! In a runtime with paused time (`#[tokio::test(start_paused = true)]`), tokio
//! auto-advances its clock to the next pending timer whenever every task is
//! waiting; the engine's durable timers, long polls and backoffs all sleep on this
//! clock, so a test of a one-hour timeout jumps straight to the hour.
//!
//! Store requests run on tokio's blocking pool, and a paused clock does not
//! auto-advance while a blocking task is in flight: time cannot skip past a timer
//! while the store is still answering (see `store::sqlite`). Tests may also move
//! time explicitly with `tokio::time::advance`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use activity_core::{clock::Clock, definition::BoxFuture};

/// The system's wall clock; sleeps with tokio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Wall time driven by tokio's clock, for time-skipping tests. See the
/// [module docs](self).
///
/// Give it to the engine (`EngineConfig::with_clock`) in a runtime whose clock is
/// paused (`#[tokio::test(start_paused = true)]`): every timeout, backoff and timer
/// then jumps to its due time as soon as everything else waits.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use activity_core::{activity, clock::Clock, ActivityError, Client, Failure, TimeoutKind};
/// use activity_engine::{Engine, EngineConfig, VirtualClock};
/// use activity_worker::Worker;
///
/// /// Never finishes in time.
/// #[activity(start_to_close = "1h", retry(maximum_attempts = 2, initial_interval = "10m"))]
/// async fn stuck() -> Result<(), ActivityError> {
///     tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
///     Ok(())
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?;
/// # runtime.block_on(async {
/// let clock = Arc::new(VirtualClock::new());
/// let engine = Engine::open(EngineConfig::in_memory().with_clock(clock.clone())).await?;
/// let worker = Worker::builder(engine.protocol()).task_queue("q").build()?;
/// let stop = worker.shutdown_handle();
/// let running = tokio::spawn(worker.run_until(std::future::pending()));
/// let client = Client::new(engine.protocol()).with_task_queue("q");
///
/// let began = clock.now();
/// let err = stuck::call(&client).await.unwrap_err();
/// let failure = err.failure().expect("timed out");
/// assert!(matches!(&failure.cause, Failure::Timeout(t) if t.kind == TimeoutKind::StartToClose));
/// assert_eq!(failure.attempts, 2);
/// // Two one-hour attempts and a ten-minute backoff, in virtual time.
/// assert!(clock.now().duration_since(began)? >= Duration::from_secs(2 * 3600 + 600));
/// stop.shutdown();
/// running.await?;
/// # Ok::<_, anyhow::Error>(())
/// # })
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl VirtualClock {
    /// 2025-01-01T00:00:00Z, the default start of virtual time.
    pub const DEFAULT_BASE: Duration = Duration::from_secs(1_735_689_600);

    /// A virtual clock that reads [`VirtualClock::DEFAULT_BASE`] now.
    pub fn new() -> Self {
        Self::starting_at(UNIX_EPOCH + Self::DEFAULT_BASE)
    }

    /// A virtual clock that reads `base` now.
    pub fn starting_at(base: SystemTime) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let offset = deadline.duration_since(self.base).unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep_until(self.start + offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn virtual_time_jumps_to_the_next_sleep() {
        let clock = VirtualClock::new();
        let t0 = clock.now();
        clock.sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            clock.now().duration_since(t0).unwrap(),
            Duration::from_secs(3600)
        );
        clock.sleep_until(t0).await; // in the past: at once
        assert_eq!(
            clock.now().duration_since(t0).unwrap(),
            Duration::from_secs(3600)
        );
    }
}
