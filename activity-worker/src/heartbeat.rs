//! Heartbeat throttling (docs/semantics.md §1.4): `ctx.heartbeat(…)` only stores the latest
//! details and wakes a sender; the sender sends the first heartbeat at once, then
//! at most one per interval (0.8 × heartbeat timeout, or 30 s without one), always
//! with the latest details. Unsent details are taken for the failure report, or
//! sent before a cancellation is reported.
//!
//! The early "timed out" notice counts from what the engine recorded: the
//! answer to the last heartbeat it took (or the attempt's start), never from the
//! last `ctx.heartbeat()` call, so it never comes before the engine's deadline.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use activity_core::{
    context::{CancelHandle, HeartbeatSink},
    protocol::{ActivityProtocol, TaskTarget},
    CancelReason, Payload, TaskToken,
};
use tokio::{sync::Notify, time::Instant};

/// The interval of throttled heartbeats without a heartbeat timeout.
pub(crate) const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// The latest heartbeat of one attempt that was not sent yet.
#[derive(Default)]
pub(crate) struct PendingHeartbeat {
    latest: Mutex<Option<Option<Payload>>>,
    wake: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HeartbeatSink for PendingHeartbeat {
    fn record(&self, details: Option<Payload>) {
        *lock(&self.latest) = Some(details);
        self.wake.notify_one();
    }
}

impl PendingHeartbeat {
    /// Takes the unsent heartbeat, if any (`Some(None)`: one without details).
    pub(crate) fn take(&self) -> Option<Option<Payload>> {
        lock(&self.latest).take()
    }

    /// Puts back details that could not be sent, unless newer ones are waiting.
    fn restore(&self, details: Option<Payload>) {
        let mut latest = lock(&self.latest);
        if latest.is_none() {
            *latest = Some(details);
            self.wake.notify_one();
        }
    }
}

/// Sends the heartbeats of one attempt until aborted; cancels the activity's
/// context when the engine says so, or when the attempt's heartbeat timeout has
/// passed since the engine last took one (the engine times the attempt out then).
/// `started` is when this worker received the attempt, after the engine started it.
pub(crate) async fn send_heartbeats(
    protocol: Arc<dyn ActivityProtocol>,
    token: TaskToken,
    pending: Arc<PendingHeartbeat>,
    interval: Duration,
    heartbeat_timeout: Option<Duration>,
    cancel: CancelHandle,
    started: Instant,
) {
    let mut last_sent: Option<Instant> = None;
    // When the engine's answer to the last heartbeat it recorded came back: it
    // recorded it no later than that, so its deadline is no later than this + timeout.
    let mut last_taken = started;
    loop {
        let silent_until = heartbeat_timeout.map(|timeout| last_taken + timeout);
        tokio::select! {
            () = pending.wake.notified() => {}
            () = sleep_until_opt(silent_until) => {
                // The engine has taken no heartbeat within the timeout: it times
                // the attempt out (at the latest now).
                cancel.cancel(CancelReason::TimedOut);
                return;
            }
        }
        if let Some(last) = last_sent {
            let next = last + interval;
            // Throttled, but never past the notice: the send waits no longer than that.
            match silent_until {
                Some(until) if until <= next => {
                    tokio::time::sleep_until(until).await;
                    cancel.cancel(CancelReason::TimedOut);
                    return;
                }
                _ => tokio::time::sleep_until(next).await,
            }
        }
        let Some(details) = pending.take() else {
            continue;
        };
        last_sent = Some(Instant::now());
        match protocol
            .record_heartbeat(TaskTarget::Token(token.clone()), details.clone())
            .await
        {
            Ok(answer) => {
                last_taken = Instant::now();
                if let Some(reason) = answer.cancel_reason() {
                    cancel.cancel(reason);
                }
            }
            Err(err) => match err.cancel_reason() {
                Some(reason) => {
                    tracing::debug!(%err, "heartbeat refused: cancelling the activity");
                    cancel.cancel(reason);
                    return;
                }
                None if err.is_retryable() => {
                    // The engine is unreachable (e.g. restarting): keep these details
                    // for the next send unless newer ones arrived meanwhile.
                    tracing::warn!(%err, "heartbeat not recorded; it will be sent again");
                    pending.restore(details);
                }
                None => tracing::warn!(%err, "heartbeat not recorded"),
            },
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
