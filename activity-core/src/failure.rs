//! Failures: what an activity returns when it does not succeed ([`ActivityError`]),
//! what is recorded for an attempt ([`Failure`]) and what a caller sees
//! ([`ActivityFailure`], docs/semantics.md §4).

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    options::OptionsError,
    payload::{Payload, PayloadError},
};

/// Error type names the framework itself produces.
pub mod error_types {
    /// The worker that received the attempt has no activity of that type (retryable).
    pub const ACTIVITY_NOT_REGISTERED: &str = "ActivityNotRegistered";
    /// The input could not be decoded into the activity's arguments (non-retryable).
    pub const PAYLOAD_DECODE: &str = "PayloadDecode";
    /// The result could not be encoded (non-retryable).
    pub const PAYLOAD_ENCODE: &str = "PayloadEncode";
    /// The activity panicked (retryable).
    pub const PANIC: &str = "Panic";
    /// A heartbeat could not be recorded (e.g. from a local activity).
    pub const HEARTBEAT: &str = "HeartbeatError";
    /// The worker shut down and the activity ignored cancellation (retryable).
    pub const WORKER_SHUTDOWN: &str = "WorkerShutdown";
    /// A shared-state value the activity needs was not provided.
    pub const MISSING_STATE: &str = "MissingState";
    /// Default type of an error created with [`ActivityError::retryable`](super::ActivityError::retryable).
    pub const GENERIC: &str = "Error";
}

/// An application failure: the activity returned an error (docs/semantics.md §4 `ApplicationError`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApplicationFailure {
    /// The error type name, matched against `non_retryable_error_types`.
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
    /// Never retried when set.
    pub non_retryable: bool,
    /// Optional structured details.
    pub details: Option<Payload>,
    /// Overrides the retry policy's backoff for the next attempt.
    pub next_retry_delay: Option<Duration>,
}

impl ApplicationFailure {
    /// A retryable failure of the given type.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            non_retryable: false,
            details: None,
            next_retry_delay: None,
        }
    }

    /// Marks the failure as non-retryable (or not).
    pub fn with_non_retryable(mut self, non_retryable: bool) -> Self {
        self.non_retryable = non_retryable;
        self
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Payload) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets the delay before the next attempt, overriding the backoff.
    pub fn with_next_retry_delay(mut self, delay: Duration) -> Self {
        self.next_retry_delay = Some(delay);
        self
    }
}

impl fmt::Display for ApplicationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)?;
        if self.non_retryable {
            f.write_str(" (non-retryable)")?;
        }
        Ok(())
    }
}

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// The attempt waited in the queue too long.
    ScheduleToStart,
    /// The started attempt ran too long.
    StartToClose,
    /// The whole execution ran too long.
    ScheduleToClose,
    /// The started attempt did not heartbeat in time.
    Heartbeat,
}

/// A timeout (docs/semantics.md §4 `TimeoutError`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimeoutFailure {
    /// Which timeout fired.
    pub kind: TimeoutKind,
    /// The last heartbeat details recorded before it fired.
    pub last_heartbeat_details: Option<Payload>,
    /// The previous attempt's failure, when this timeout ended a retried
    /// execution (as Temporal nests it; docs/semantics.md §1.3). One level: the
    /// previous failure is kept without its own cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<Failure>>,
}

impl TimeoutFailure {
    /// A timeout of the given kind.
    pub fn new(kind: TimeoutKind, last_heartbeat_details: Option<Payload>) -> Self {
        Self {
            kind,
            last_heartbeat_details,
            cause: None,
        }
    }

    /// Attaches the previous attempt's failure as the cause (without its own cause).
    ///
    /// ```
    /// use activity_core::failure::{ApplicationFailure, Failure, TimeoutFailure, TimeoutKind};
    ///
    /// let first = TimeoutFailure::new(TimeoutKind::Heartbeat, None);
    /// let second = TimeoutFailure::new(TimeoutKind::Heartbeat, None)
    ///     .with_cause(Failure::Timeout(first.clone().with_cause(Failure::Application(
    ///         ApplicationFailure::new("Busy", "try later"),
    ///     ))));
    /// // Only the previous attempt is kept, not the whole chain.
    /// assert_eq!(second.cause.as_deref(), Some(&Failure::Timeout(first)));
    /// ```
    pub fn with_cause(mut self, previous: Failure) -> Self {
        let previous = match previous {
            Failure::Timeout(mut timeout) => {
                timeout.cause = None;
                Failure::Timeout(timeout)
            }
            other => other,
        };
        self.cause = Some(Box::new(previous));
        self
    }
}

/// The activity acknowledged a cancellation (docs/semantics.md §4 `CanceledError`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CanceledFailure {
    /// Optional details given by the activity.
    pub details: Option<Payload>,
    /// Set when the execution was canceled before any attempt of it started
    /// (docs/semantics.md §1.5): no worker ever saw it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_started: bool,
    /// Set when the execution was closed because the workflow run that
    /// scheduled it closed (in this state), without a cancel request
    /// (docs/semantics.md §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_closed: Option<crate::workflow::WorkflowState>,
}

impl CanceledFailure {
    /// A cancellation acknowledged with these details.
    ///
    /// ```
    /// use activity_core::{failure::CanceledFailure, Payload};
    ///
    /// let canceled = CanceledFailure::new(Some(Payload::json(&"cleaned up").unwrap()));
    /// assert!(!canceled.not_started);
    /// assert_eq!(canceled.workflow_closed, None);
    /// ```
    pub fn new(details: Option<Payload>) -> Self {
        Self {
            details,
            ..Self::default()
        }
    }
}

/// Why an attempt, or an execution, did not complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Failure {
    /// The activity returned an error (also `ActivityNotRegistered`, decode errors, panics).
    Application(ApplicationFailure),
    /// A timeout fired.
    Timeout(TimeoutFailure),
    /// The activity was cancelled.
    Canceled(CanceledFailure),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Application(a) => a.fmt(f),
            Failure::Timeout(t) => write!(f, "{:?} timeout", t.kind),
            Failure::Canceled(c) if c.not_started => f.write_str("canceled before it started"),
            Failure::Canceled(c) => match c.workflow_closed {
                Some(state) => write!(f, "canceled: its workflow run closed ({state})"),
                None => f.write_str("canceled"),
            },
        }
    }
}

/// Why no further attempt was made (docs/semantics.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetryState {
    /// The failure was non-retryable, or its type is listed as such.
    NonRetryableFailure,
    /// `maximum_attempts` was reached.
    MaximumAttemptsReached,
    /// A schedule-to-start or schedule-to-close bound ended the execution.
    Timeout,
    /// Cancellation was requested.
    CancelRequested,
    /// The workflow run that scheduled the execution closed (docs/semantics.md §1.5).
    WorkflowClosed,
}

/// An activity execution failed: what the caller sees (docs/semantics.md §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("activity `{activity_type}` (id `{activity_id}`) failed after {attempts} attempt(s), retry state {retry_state:?}: {cause}")]
#[non_exhaustive]
pub struct ActivityFailure {
    /// The activity type name.
    pub activity_type: String,
    /// The activity id.
    pub activity_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why no further attempt was made.
    pub retry_state: RetryState,
    /// The last attempt's failure.
    pub cause: Failure,
}

impl ActivityFailure {
    /// Builds the failure of one execution.
    pub fn new(
        activity_type: impl Into<String>,
        activity_id: impl Into<String>,
        attempts: u32,
        retry_state: RetryState,
        cause: Failure,
    ) -> Self {
        Self {
            activity_type: activity_type.into(),
            activity_id: activity_id.into(),
            attempts,
            retry_state,
            cause,
        }
    }

    /// The application failure, if that is the cause.
    pub fn application(&self) -> Option<&ApplicationFailure> {
        match &self.cause {
            Failure::Application(a) => Some(a),
            _ => None,
        }
    }
}

/// The error an activity function returns.
///
/// Build one with [`ActivityError::retryable`], [`ActivityError::non_retryable`] or
/// [`ActivityError::canceled`], or derive [`ActivityError`](macro@crate::ActivityError)
/// on your own error enum and use `?`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ActivityError {
    /// The attempt failed; retried unless non-retryable.
    Application(ApplicationFailure),
    /// The activity acknowledges cancellation.
    Canceled(CanceledFailure),
    /// The result will be reported later, by task token, from elsewhere (docs/semantics.md §1.6).
    ResultPending,
}

impl ActivityError {
    /// A retryable failure with the generic type `Error`.
    pub fn retryable(message: impl fmt::Display) -> Self {
        ActivityError::Application(ApplicationFailure::new(
            error_types::GENERIC,
            message.to_string(),
        ))
    }

    /// A failure of the given type that is never retried.
    pub fn non_retryable(error_type: impl Into<String>, message: impl fmt::Display) -> Self {
        ActivityError::Application(
            ApplicationFailure::new(error_type, message.to_string()).with_non_retryable(true),
        )
    }

    /// A (retryable) failure of the given type.
    pub fn application(error_type: impl Into<String>, message: impl fmt::Display) -> Self {
        ActivityError::Application(ApplicationFailure::new(error_type, message.to_string()))
    }

    /// Acknowledges cancellation.
    pub fn canceled() -> Self {
        ActivityError::Canceled(CanceledFailure::default())
    }

    /// Acknowledges cancellation with details.
    pub fn canceled_with<T: serde::Serialize>(details: &T) -> Result<Self, PayloadError> {
        Ok(ActivityError::Canceled(CanceledFailure::new(Some(
            Payload::json(details)?,
        ))))
    }

    /// The result will be completed later by task token (docs/semantics.md §1.6).
    pub fn result_pending() -> Self {
        ActivityError::ResultPending
    }

    /// Attaches structured details (no effect on `Canceled` without details or `ResultPending`).
    pub fn with_details<T: serde::Serialize>(self, details: &T) -> Result<Self, PayloadError> {
        let payload = Payload::json(details)?;
        Ok(match self {
            ActivityError::Application(a) => ActivityError::Application(a.with_details(payload)),
            ActivityError::Canceled(_) => {
                ActivityError::Canceled(CanceledFailure::new(Some(payload)))
            }
            other => other,
        })
    }

    /// Overrides the backoff before the next attempt.
    pub fn with_next_retry_delay(self, delay: Duration) -> Self {
        match self {
            ActivityError::Application(a) => {
                ActivityError::Application(a.with_next_retry_delay(delay))
            }
            other => other,
        }
    }

    /// The failure to record for the attempt; `None` for [`ActivityError::ResultPending`].
    pub fn into_failure(self) -> Option<Failure> {
        match self {
            ActivityError::Application(a) => Some(Failure::Application(a)),
            ActivityError::Canceled(c) => Some(Failure::Canceled(c)),
            ActivityError::ResultPending => None,
        }
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivityError::Application(a) => a.fmt(f),
            ActivityError::Canceled(_) => f.write_str("activity canceled"),
            ActivityError::ResultPending => f.write_str("activity result pending"),
        }
    }
}

impl std::error::Error for ActivityError {}

impl From<ApplicationFailure> for ActivityError {
    fn from(failure: ApplicationFailure) -> Self {
        ActivityError::Application(failure)
    }
}

impl From<PayloadError> for ActivityError {
    fn from(err: PayloadError) -> Self {
        let ty = match err {
            PayloadError::Encode { .. } => error_types::PAYLOAD_ENCODE,
            _ => error_types::PAYLOAD_DECODE,
        };
        ActivityError::non_retryable(ty, err)
    }
}

/// One variant of a user error type, as listed by [`ErrorTypes::VARIANTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorVariant {
    /// The Rust variant name (the type name for a struct).
    pub variant: &'static str,
    /// The error type name recorded in failures.
    pub error_type: &'static str,
    /// Whether the variant is never retried.
    pub non_retryable: bool,
}

/// A user error type whose variants have error type names.
///
/// Implemented by `#[derive(ActivityError)]`, which also implements
/// `From<YourError> for ActivityError`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no activity error types",
    note = "add `#[derive(ActivityError)]` to `{Self}`, or list the error type as a string"
)]
pub trait ErrorTypes {
    /// Every variant with its error type name.
    const VARIANTS: &'static [ErrorVariant];

    /// The error type name of this value's variant.
    fn error_type(&self) -> &'static str;

    /// The error type name of the variant called `variant`.
    fn error_type_of(variant: &str) -> Option<&'static str> {
        Self::VARIANTS
            .iter()
            .find(|v| v.variant == variant)
            .map(|v| v.error_type)
    }
}

/// Calling an activity did not produce its result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivityCallError {
    /// The execution failed (docs/semantics.md §4).
    #[error(transparent)]
    Failed(#[from] ActivityFailure),
    /// The options were refused; nothing was scheduled.
    #[error(transparent)]
    InvalidOptions(#[from] OptionsError),
    /// The input could not be encoded, or the result decoded.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The engine refused the call or could not be reached (see
    /// [`ProtocolError::is_retryable`](crate::protocol::ProtocolError::is_retryable)).
    #[error(transparent)]
    Protocol(#[from] crate::protocol::ProtocolError),
}

impl ActivityCallError {
    /// The execution's failure, if it failed.
    pub fn failure(&self) -> Option<&ActivityFailure> {
        match self {
            ActivityCallError::Failed(f) => Some(f),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_every_field() {
        let err = ActivityError::non_retryable("CardDeclined", "no funds")
            .with_details(&serde_json::json!({"code": 51}))
            .unwrap()
            .with_next_retry_delay(Duration::from_secs(3));
        let ActivityError::Application(a) = err else {
            panic!("not an application failure")
        };
        assert_eq!(a.error_type, "CardDeclined");
        assert_eq!(a.message, "no funds");
        assert!(a.non_retryable);
        assert_eq!(&a.details.unwrap().data[..], br#"{"code":51}"#);
        assert_eq!(a.next_retry_delay, Some(Duration::from_secs(3)));
    }

    #[test]
    fn payload_errors_are_non_retryable_decode_failures() {
        let decode = Payload::json("x").unwrap().decode::<u32>().unwrap_err();
        let ActivityError::Application(a) = ActivityError::from(decode) else {
            panic!()
        };
        assert_eq!(a.error_type, error_types::PAYLOAD_DECODE);
        assert!(a.non_retryable);
    }

    #[test]
    fn result_pending_records_no_failure() {
        assert_eq!(ActivityError::result_pending().into_failure(), None);
        assert!(matches!(
            ActivityError::canceled().into_failure(),
            Some(Failure::Canceled(_))
        ));
    }
}
