//! The context an activity runs with: its info, heartbeats, and cancellation.

use std::{fmt, sync::Arc, time::Duration, time::SystemTime};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    failure::{error_types, ActivityError},
    payload::{Payload, PayloadError},
};

/// Identifies one attempt of one execution. Opaque to everyone but the engine,
/// which authenticates it, so it cannot be forged or altered.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskToken(Vec<u8>);

impl TaskToken {
    /// Wraps the bytes of a token (as issued by the engine).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TaskToken(bytes)
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token as lowercase hex, the form tools print and accept.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the hex form; `None` when it is not even-length hex.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .map(TaskToken)
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskToken({})", self.to_hex())
    }
}

/// What an activity knows about the attempt it is running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityInfo {
    /// The activity id (unique within its workflow run, or namespace if standalone).
    pub activity_id: String,
    /// The activity type name.
    pub activity_type: String,
    /// The task queue the attempt was dispatched on.
    pub task_queue: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The calling workflow's id; `None` for a standalone activity.
    pub workflow_id: Option<String>,
    /// The calling workflow's run id; `None` for a standalone activity.
    pub workflow_run_id: Option<String>,
    /// The calling workflow's type; `None` for a standalone activity.
    pub workflow_type: Option<String>,
    /// When the execution was first scheduled.
    pub scheduled_time: SystemTime,
    /// When this attempt became dispatchable.
    pub current_attempt_scheduled_time: SystemTime,
    /// When this attempt was started by a worker.
    pub started_time: SystemTime,
    /// When this attempt will time out (the earlier of start-to-close and schedule-to-close).
    pub deadline: Option<SystemTime>,
    /// The heartbeat timeout, if any.
    pub heartbeat_timeout: Option<Duration>,
    /// Whether this is a local activity (run in the workflow's worker, no heartbeats).
    pub is_local: bool,
    /// This attempt's token, for asynchronous completion or heartbeats from elsewhere.
    pub task_token: TaskToken,
}

impl ActivityInfo {
    /// Info for attempt 1 of a standalone execution, started now.
    pub fn new(
        activity_type: impl Into<String>,
        activity_id: impl Into<String>,
        task_queue: impl Into<String>,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            activity_id: activity_id.into(),
            activity_type: activity_type.into(),
            task_queue: task_queue.into(),
            attempt: 1,
            workflow_id: None,
            workflow_run_id: None,
            workflow_type: None,
            scheduled_time: now,
            current_attempt_scheduled_time: now,
            started_time: now,
            deadline: None,
            heartbeat_timeout: None,
            is_local: false,
            task_token: TaskToken::from_bytes(Vec::new()),
        }
    }
}

/// Why an activity's context was cancelled (docs/semantics.md §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// The caller requested cancellation.
    Requested,
    /// The engine timed out this attempt; its result will not be accepted.
    TimedOut,
    /// The execution is no longer running (it is final, or a later attempt exists).
    ExecutionClosed,
    /// The workflow run that scheduled the activity closed (completed, failed,
    /// was canceled, terminated or continued as new); this is not a cancel request.
    WorkflowClosed,
    /// The worker is shutting down and its grace period ended.
    WorkerShutdown,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::Requested => "cancellation requested",
            CancelReason::TimedOut => "timed out",
            CancelReason::ExecutionClosed => "execution closed",
            CancelReason::WorkflowClosed => "workflow closed",
            CancelReason::WorkerShutdown => "worker shutting down",
        })
    }
}

/// Where an activity's heartbeats go (the worker's throttler, or the test environment).
///
/// `record` must not block: it hands the details over and returns.
pub trait HeartbeatSink: Send + Sync + 'static {
    /// Records the latest heartbeat details of the attempt.
    fn record(&self, details: Option<Payload>);
}

/// A heartbeat could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeartbeatError {
    /// Local activities run inside the workflow's worker and cannot heartbeat.
    #[error("`heartbeat` is not available in a local activity (activity `{activity_type}`): local activities are short and are not heartbeat-tracked; run it as a regular activity to report progress")]
    LocalActivity {
        /// The activity type.
        activity_type: String,
    },
    /// The details could not be serialized.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl From<HeartbeatError> for ActivityError {
    fn from(err: HeartbeatError) -> Self {
        match err {
            HeartbeatError::Payload(p) => p.into(),
            other => ActivityError::non_retryable(error_types::HEARTBEAT, other),
        }
    }
}

struct Inner {
    info: ActivityInfo,
    last_heartbeat_details: Option<Payload>,
    heartbeats: Option<Arc<dyn HeartbeatSink>>,
    cancel: watch::Receiver<Option<CancelReason>>,
}

/// The context of one running attempt, the optional first parameter of an activity.
///
/// It tells the activity about its attempt ([`info`](Self::info): ids, attempt
/// number, deadline, task token), records heartbeats ([`heartbeat`](Self::heartbeat),
/// throttled by the worker: docs/semantics.md §1.4), gives the previous attempt's
/// last details ([`last_heartbeat_details`](Self::last_heartbeat_details)), and says
/// when and why the attempt is cancelled ([`cancelled`](Self::cancelled),
/// [`cancel_reason`](Self::cancel_reason): docs/semantics.md §1.5). Cheap to clone;
/// clones share the attempt.
///
/// ```
/// use std::time::Duration;
/// use activity_core::{activity, ActivityContext, ActivityError, CancelReason, TestActivityEnvironment};
///
/// /// Copies `files` files, resuming after the last one a previous attempt copied,
/// /// and stops cleanly when cancelled.
/// #[activity(start_to_close = "1h", heartbeat = "30s")]
/// async fn copy(ctx: ActivityContext, files: u32) -> Result<u32, ActivityError> {
///     let mut done: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
///     while done < files {
///         tokio::select! {
///             reason = ctx.cancelled() => {
///                 // Clean up, then acknowledge (with details the caller sees).
///                 return Err(ActivityError::canceled_with(&format!("{reason} after {done}"))?);
///             }
///             () = tokio::time::sleep(Duration::from_millis(1)) => {} // copy one file
///         }
///         done += 1;
///         ctx.heartbeat(&done)?;
///     }
///     Ok(ctx.info().attempt)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let env = TestActivityEnvironment::new().with_last_heartbeat_details(&8_u32);
/// assert_eq!(copy::call(&env, 10).await.unwrap(), 1);
/// assert_eq!(env.heartbeats::<u32>().unwrap(), [9, 10]);
///
/// let cancelled = TestActivityEnvironment::new();
/// cancelled.cancel(CancelReason::Requested);
/// let err = copy::call(&cancelled, 10).await.unwrap_err();
/// assert!(matches!(err.failure().unwrap().cause, activity_core::Failure::Canceled(_)));
/// # }
/// ```
#[derive(Clone)]
pub struct ActivityContext {
    inner: Arc<Inner>,
}

impl fmt::Debug for ActivityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityContext")
            .field("info", &self.inner.info)
            .field("cancel_reason", &self.cancel_reason())
            .finish_non_exhaustive()
    }
}

/// Cancels the context it was created with. Held by whoever runs the attempt.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    sender: Arc<watch::Sender<Option<CancelReason>>>,
}

impl CancelHandle {
    /// Cancels the attempt's context with `reason`. The first reason stays.
    pub fn cancel(&self, reason: CancelReason) {
        self.sender.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason given, if cancelled.
    pub fn reason(&self) -> Option<CancelReason> {
        *self.sender.borrow()
    }
}

impl ActivityContext {
    /// A context for one attempt, and the handle that cancels it.
    ///
    /// `heartbeats` is `None` for a local activity, whose heartbeats are errors.
    pub fn new(
        info: ActivityInfo,
        last_heartbeat_details: Option<Payload>,
        heartbeats: Option<Arc<dyn HeartbeatSink>>,
    ) -> (Self, CancelHandle) {
        let (sender, receiver) = watch::channel(None);
        let ctx = ActivityContext {
            inner: Arc::new(Inner {
                info,
                last_heartbeat_details,
                heartbeats,
                cancel: receiver,
            }),
        };
        (
            ctx,
            CancelHandle {
                sender: Arc::new(sender),
            },
        )
    }

    /// The attempt's info.
    pub fn info(&self) -> &ActivityInfo {
        &self.inner.info
    }

    /// This attempt's task token, for completion from elsewhere (docs/semantics.md §1.6).
    pub fn task_token(&self) -> &TaskToken {
        &self.inner.info.task_token
    }

    /// Records liveness and progress. Never blocks: the worker sends the latest
    /// details at most once per 0.8 × heartbeat timeout.
    ///
    /// Fails in a local activity, and when `details` cannot be serialized.
    pub fn heartbeat<T: Serialize + ?Sized>(&self, details: &T) -> Result<(), HeartbeatError> {
        let sink = self.sink()?;
        sink.record(Some(Payload::json(details)?));
        Ok(())
    }

    /// Records liveness without details.
    pub fn heartbeat_empty(&self) -> Result<(), HeartbeatError> {
        self.sink()?.record(None);
        Ok(())
    }

    fn sink(&self) -> Result<&Arc<dyn HeartbeatSink>, HeartbeatError> {
        self.inner
            .heartbeats
            .as_ref()
            .ok_or_else(|| HeartbeatError::LocalActivity {
                activity_type: self.inner.info.activity_type.clone(),
            })
    }

    /// The details of the last heartbeat of a previous attempt, typed.
    pub fn last_heartbeat_details<T: DeserializeOwned>(&self) -> Result<Option<T>, PayloadError> {
        self.inner
            .last_heartbeat_details
            .as_ref()
            .map(|p| p.decode_as("last heartbeat details"))
            .transpose()
    }

    /// The raw last heartbeat details of a previous attempt.
    pub fn last_heartbeat_payload(&self) -> Option<&Payload> {
        self.inner.last_heartbeat_details.as_ref()
    }

    /// Whether the context has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.borrow().is_some()
    }

    /// Why the context was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        *self.inner.cancel.borrow()
    }

    /// Resolves when the context is cancelled, with the reason. Pending forever if
    /// the attempt ends without cancellation.
    pub async fn cancelled(&self) -> CancelReason {
        let mut receiver = self.inner.cancel.clone();
        let reason = receiver
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| *r);
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_token_hex_round_trips_and_rejects_garbage() {
        let token = TaskToken::from_bytes(vec![0, 1, 0xab, 0xff]);
        assert_eq!(token.to_hex(), "0001abff");
        assert_eq!(TaskToken::from_hex("0001abff"), Some(token));
        assert_eq!(TaskToken::from_hex("abc"), None);
        assert_eq!(TaskToken::from_hex("zz"), None);
    }

    #[tokio::test]
    async fn first_cancel_reason_wins_and_wakes_waiters() {
        let (ctx, handle) = ActivityContext::new(ActivityInfo::new("t", "id", "q"), None, None);
        assert!(!ctx.is_cancelled());
        let waiter = tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.cancelled().await }
        });
        handle.cancel(CancelReason::TimedOut);
        handle.cancel(CancelReason::Requested);
        assert_eq!(waiter.await.unwrap(), CancelReason::TimedOut);
        assert_eq!(ctx.cancel_reason(), Some(CancelReason::TimedOut));
        drop(handle);
        assert_eq!(ctx.cancelled().await, CancelReason::TimedOut);
    }

    #[test]
    fn heartbeat_in_a_local_activity_is_an_error() {
        let mut info = ActivityInfo::new("resize", "id", "q");
        info.is_local = true;
        let (ctx, _handle) = ActivityContext::new(info, None, None);
        let err = ctx.heartbeat(&1).unwrap_err().to_string();
        assert!(err.contains("local activity (activity `resize`)"), "{err}");
    }
}
