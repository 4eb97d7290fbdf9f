//! Heartbeat throttling (docs/semantics.md §1.4): `ctx.heartbeat(…)` only stores the latest
//! details and wakes a sender; the sender sends the first heartbeat at once, then
//! at most one per interval (0.8 × heartbeat timeout, or 30 s without one), always
//! with the latest details. Unsent details are taken for the failure report.

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
    last_recorded: Mutex<Option<Instant>>,
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
        *lock(&self.last_recorded) = Some(Instant::now());
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

    fn last_recorded(&self) -> Option<Instant> {
        *lock(&self.last_recorded)
    }
}

/// Sends the heartbeats of one attempt until aborted; cancels the activity's
/// context when the engine says so, or when the attempt's heartbeat timeout passes
/// without a heartbeat (the engine times the attempt out then too).
pub(crate) async fn send_heartbeats(
    protocol: Arc<dyn ActivityProtocol>,
    token: TaskToken,
    pending: Arc<PendingHeartbeat>,
    interval: Duration,
    heartbeat_timeout: Option<Duration>,
    cancel: CancelHandle,
) {
    let started = Instant::now();
    let mut last_sent: Option<Instant> = None;
    loop {
        let silent_until =
            heartbeat_timeout.map(|timeout| pending.last_recorded().unwrap_or(started) + timeout);
        tokio::select! {
            () = pending.wake.notified() => {}
            () = sleep_until_opt(silent_until) => {
                // No heartbeat within the timeout: the engine times the attempt out.
                if pending.last_recorded().unwrap_or(started) + heartbeat_timeout.unwrap_or_default()
                    <= Instant::now()
                {
                    cancel.cancel(CancelReason::TimedOut);
                    return;
                }
                continue;
            }
        }
        if let Some(last) = last_sent {
            tokio::time::sleep_until(last + interval).await;
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
