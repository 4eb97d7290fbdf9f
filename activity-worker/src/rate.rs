//! A token bucket on tokio's clock (virtual in tests), for the per-worker rate.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Hands out permits at most `rate` per second, spaced at least `1 / rate` apart
/// (a bucket of one token), so the rate holds over any window.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub(crate) fn new(per_second: f64) -> Self {
        let burst = 1.0;
        Self {
            per_second,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// Waits for a permit and takes it.
    pub(crate) async fn acquire(&self) {
        let mut bucket = self.state.lock().await;
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return;
            }
            let missing = (1.0 - bucket.tokens) / self.per_second;
            // Holding the lock while sleeping keeps waiters in FIFO order.
            tokio::time::sleep(Duration::from_secs_f64(missing)).await;
        }
    }

    /// Gives back a permit that was not used (a poll that returned nothing).
    pub(crate) async fn refund(&self) {
        let mut bucket = self.state.lock().await;
        bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn permits_are_spaced_by_the_rate() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        // One at once, then 29 more spaced 100 ms apart.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(2_890), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2_950), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refund_returns_the_permit() {
        let limiter = RateLimiter::new(1.0);
        limiter.acquire().await;
        limiter.refund().await;
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
