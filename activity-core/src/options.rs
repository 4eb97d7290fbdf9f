//! Activity options (SEMANTICS 1.1), retry policies (1.3) and their validation.
//!
//! [`ActivityOptions`] is partial: every field may be unset, so that the defaults
//! declared on an activity definition and the options given at a call site can be
//! merged field by field ([`ActivityOptions::merge`]). [`ActivityOptions::validate`]
//! applies the rules and defaults and yields [`ValidatedOptions`], the only form the
//! engine accepts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest task queue name, and the longest error type name in
/// `non_retryable_error_types`, in bytes (names are bounded like payloads: a
/// request cannot make the engine store or compare megabytes per execution).
pub const MAX_NAME_LEN: usize = 1000;

/// The most error types `non_retryable_error_types` may list.
pub const MAX_NON_RETRYABLE_ERROR_TYPES: usize = 100;

/// Partial options of one activity execution. Unset fields fall back to defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityOptions {
    /// From first scheduling to the final result, across all attempts.
    pub schedule_to_close: Option<Duration>,
    /// One attempt, from a worker starting it to its result.
    pub start_to_close: Option<Duration>,
    /// One attempt waiting in the queue before a worker starts it.
    pub schedule_to_start: Option<Duration>,
    /// Longest gap between heartbeats of a started attempt.
    pub heartbeat_timeout: Option<Duration>,
    /// Where attempts are dispatched; the caller's task queue when unset.
    pub task_queue: Option<String>,
    /// Retry policy, itself merged field by field.
    pub retry: RetryOptions,
}

/// Partial retry policy (SEMANTICS 1.3). Unset fields take the documented defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Delay before the second attempt (default 1 s).
    pub initial_interval: Option<Duration>,
    /// Growth of the delay per attempt (default 2.0, must be ≥ 1.0).
    pub backoff_coefficient: Option<f64>,
    /// Upper bound of the delay (default 100 × `initial_interval`).
    pub maximum_interval: Option<Duration>,
    /// Attempts in all, counting the first; 0 means unlimited (the default).
    pub maximum_attempts: Option<u32>,
    /// Error types that are never retried (added to, not replaced, when merging).
    pub non_retryable_error_types: Vec<String>,
}

impl ActivityOptions {
    /// Options with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `schedule_to_close`.
    pub fn schedule_to_close(mut self, timeout: Duration) -> Self {
        self.schedule_to_close = Some(timeout);
        self
    }

    /// Sets `start_to_close`.
    pub fn start_to_close(mut self, timeout: Duration) -> Self {
        self.start_to_close = Some(timeout);
        self
    }

    /// Sets `schedule_to_start`.
    pub fn schedule_to_start(mut self, timeout: Duration) -> Self {
        self.schedule_to_start = Some(timeout);
        self
    }

    /// Sets `heartbeat_timeout`.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// Sets the task queue.
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.task_queue = Some(queue.into());
        self
    }

    /// Sets the retry options.
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.retry = retry;
        self
    }

    /// `self` with every field set in `overrides` replaced, field by field
    /// (retry fields included; non-retryable error types are combined).
    pub fn merge(&self, overrides: &ActivityOptions) -> ActivityOptions {
        ActivityOptions {
            schedule_to_close: overrides.schedule_to_close.or(self.schedule_to_close),
            start_to_close: overrides.start_to_close.or(self.start_to_close),
            schedule_to_start: overrides.schedule_to_start.or(self.schedule_to_start),
            heartbeat_timeout: overrides.heartbeat_timeout.or(self.heartbeat_timeout),
            task_queue: overrides
                .task_queue
                .clone()
                .or_else(|| self.task_queue.clone()),
            retry: self.retry.merge(&overrides.retry),
        }
    }

    /// Applies the rules of SEMANTICS 1.1 and 1.3.
    ///
    /// `default_task_queue` is the caller's queue, used when no queue is set.
    /// Every broken rule is reported, each naming its field.
    pub fn validate(
        &self,
        default_task_queue: Option<&str>,
    ) -> Result<ValidatedOptions, OptionsError> {
        let mut problems = Vec::new();
        let mut positive = |field: &'static str, value: Option<Duration>| {
            if value == Some(Duration::ZERO) {
                problems.push(OptionProblem::new(field, "must be greater than zero"));
            }
        };
        positive("schedule_to_close", self.schedule_to_close);
        positive("start_to_close", self.start_to_close);
        positive("schedule_to_start", self.schedule_to_start);
        positive("heartbeat_timeout", self.heartbeat_timeout);
        positive("retry.initial_interval", self.retry.initial_interval);
        positive("retry.maximum_interval", self.retry.maximum_interval);

        let schedule_to_close = self.schedule_to_close;
        let start_to_close = match (self.start_to_close, schedule_to_close) {
            (Some(s), Some(total)) => s.min(total),
            (Some(s), None) => s,
            (None, Some(total)) => total,
            (None, None) => {
                problems.push(OptionProblem::new(
                    "start_to_close",
                    "at least one of `schedule_to_close` and `start_to_close` must be set",
                ));
                Duration::ZERO
            }
        };
        let schedule_to_start = match (self.schedule_to_start, schedule_to_close) {
            (Some(s), Some(total)) => Some(s.min(total)),
            (Some(s), None) => Some(s),
            (None, total) => total,
        };
        let heartbeat_timeout = self.heartbeat_timeout.map(|h| h.min(start_to_close));

        let task_queue = match self.task_queue.as_deref().or(default_task_queue) {
            Some(queue) if queue.trim().is_empty() => {
                problems.push(OptionProblem::new("task_queue", "must not be empty"));
                String::new()
            }
            Some(queue) if queue.len() > MAX_NAME_LEN => {
                problems.push(OptionProblem::new(
                    "task_queue",
                    format!("must be at most {MAX_NAME_LEN} bytes, got {}", queue.len()),
                ));
                String::new()
            }
            Some(queue) => queue.to_owned(),
            None => {
                problems.push(OptionProblem::new(
                    "task_queue",
                    "must be set: the caller has no task queue to default to",
                ));
                String::new()
            }
        };

        let retry = self.retry.resolve(&mut problems);
        if problems.is_empty() {
            Ok(ValidatedOptions {
                schedule_to_close,
                start_to_close,
                schedule_to_start,
                heartbeat_timeout,
                task_queue,
                retry_policy: retry,
            })
        } else {
            Err(OptionsError { problems })
        }
    }
}

impl RetryOptions {
    /// Retry options with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `initial_interval`.
    pub fn initial_interval(mut self, interval: Duration) -> Self {
        self.initial_interval = Some(interval);
        self
    }

    /// Sets `backoff_coefficient`.
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = Some(coefficient);
        self
    }

    /// Sets `maximum_interval`.
    pub fn maximum_interval(mut self, interval: Duration) -> Self {
        self.maximum_interval = Some(interval);
        self
    }

    /// Sets `maximum_attempts` (0 = unlimited).
    pub fn maximum_attempts(mut self, attempts: u32) -> Self {
        self.maximum_attempts = Some(attempts);
        self
    }

    /// Adds an error type that is never retried.
    pub fn non_retryable(mut self, error_type: impl Into<String>) -> Self {
        self.non_retryable_error_types.push(error_type.into());
        self
    }

    /// `self` overridden field by field by `overrides`.
    pub fn merge(&self, overrides: &RetryOptions) -> RetryOptions {
        let mut non_retryable = self.non_retryable_error_types.clone();
        for ty in &overrides.non_retryable_error_types {
            if !non_retryable.contains(ty) {
                non_retryable.push(ty.clone());
            }
        }
        RetryOptions {
            initial_interval: overrides.initial_interval.or(self.initial_interval),
            backoff_coefficient: overrides.backoff_coefficient.or(self.backoff_coefficient),
            maximum_interval: overrides.maximum_interval.or(self.maximum_interval),
            maximum_attempts: overrides.maximum_attempts.or(self.maximum_attempts),
            non_retryable_error_types: non_retryable,
        }
    }

    fn resolve(&self, problems: &mut Vec<OptionProblem>) -> RetryPolicy {
        let types = &self.non_retryable_error_types;
        if types.len() > MAX_NON_RETRYABLE_ERROR_TYPES {
            problems.push(OptionProblem::new(
                "retry.non_retryable_error_types",
                format!(
                    "must list at most {MAX_NON_RETRYABLE_ERROR_TYPES} error types, got {}",
                    types.len()
                ),
            ));
        }
        if let Some((index, long)) = types
            .iter()
            .enumerate()
            .find(|(_, ty)| ty.len() > MAX_NAME_LEN)
        {
            problems.push(OptionProblem::new(
                format!("retry.non_retryable_error_types[{index}]"),
                format!("must be at most {MAX_NAME_LEN} bytes, got {}", long.len()),
            ));
        }
        let initial_interval = self.initial_interval.unwrap_or(Duration::from_secs(1));
        let backoff_coefficient = self.backoff_coefficient.unwrap_or(2.0);
        if !(backoff_coefficient >= 1.0 && backoff_coefficient.is_finite()) {
            problems.push(OptionProblem::new(
                "retry.backoff_coefficient",
                format!("must be a finite number ≥ 1.0, got {backoff_coefficient}"),
            ));
        }
        let maximum_interval = self
            .maximum_interval
            .unwrap_or_else(|| initial_interval.saturating_mul(100));
        if maximum_interval < initial_interval {
            problems.push(OptionProblem::new(
                "retry.maximum_interval",
                format!(
                    "must be ≥ `retry.initial_interval` ({initial_interval:?}), got {maximum_interval:?}"
                ),
            ));
        }
        RetryPolicy {
            initial_interval,
            backoff_coefficient,
            maximum_interval,
            maximum_attempts: self.maximum_attempts.unwrap_or(0),
            non_retryable_error_types: self.non_retryable_error_types.clone(),
        }
    }
}

/// Options after validation: every rule applied, every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ValidatedOptions {
    /// Bound on the whole execution; `None` = unbounded.
    pub schedule_to_close: Option<Duration>,
    /// Bound on one started attempt (clamped to `schedule_to_close`).
    pub start_to_close: Duration,
    /// Bound on one attempt's wait in the queue; `None` = unbounded.
    pub schedule_to_start: Option<Duration>,
    /// Heartbeat deadline (clamped to `start_to_close`); `None` = none.
    pub heartbeat_timeout: Option<Duration>,
    /// Where attempts are dispatched.
    pub task_queue: String,
    /// The complete retry policy.
    pub retry_policy: RetryPolicy,
}

/// A complete retry policy (SEMANTICS 1.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial_interval: Duration,
    /// Growth of the delay per attempt (≥ 1.0).
    pub backoff_coefficient: f64,
    /// Upper bound of the delay.
    pub maximum_interval: Duration,
    /// Attempts in all, counting the first; 0 = unlimited.
    pub maximum_attempts: u32,
    /// Error types never retried.
    pub non_retryable_error_types: Vec<String>,
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` after attempt `attempt` (numbered from 1) failed:
    /// `min(initial_interval × coefficient^(attempt−1), maximum_interval)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let factor = self.backoff_coefficient.powi(exponent);
        let secs = self.initial_interval.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.maximum_interval.as_secs_f64() {
            self.maximum_interval
        } else {
            // Millisecond resolution, as everywhere in the model.
            Duration::from_millis((secs * 1000.0).round() as u64)
        }
    }

    /// Whether `attempt` (numbered from 1) was the last one the policy allows.
    pub fn attempts_exhausted(&self, attempt: u32) -> bool {
        self.maximum_attempts != 0 && attempt >= self.maximum_attempts
    }

    /// Whether failures of `error_type` are excluded from retries.
    pub fn is_non_retryable_type(&self, error_type: &str) -> bool {
        self.non_retryable_error_types
            .iter()
            .any(|t| t == error_type)
    }
}

/// One broken option rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionProblem {
    /// The option, e.g. `start_to_close` or `retry.backoff_coefficient`.
    pub field: String,
    /// The rule it breaks.
    pub rule: String,
}

impl OptionProblem {
    fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// Options were refused; nothing was scheduled. Lists every broken rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("invalid activity options: {}", self.problems.iter().map(|p| format!("`{}` {}", p.field, p.rule)).collect::<Vec<_>>().join("; "))]
pub struct OptionsError {
    /// The broken rules, one per field.
    pub problems: Vec<OptionProblem>,
}

/// How a caller's cancellation of an activity behaves (SEMANTICS 1.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancellationType {
    /// Request cancellation; the caller's future resolves with a cancelled error at once.
    #[default]
    TryCancel,
    /// Request cancellation; the caller's future resolves when the activity acknowledges.
    WaitCancellationCompleted,
    /// Send no request; the caller stops waiting.
    Abandon,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn one_of_the_two_close_timeouts_is_required() {
        let err = ActivityOptions::new().validate(Some("q")).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].field, "start_to_close");
        assert!(err.to_string().contains("schedule_to_close"), "{err}");
    }

    #[test]
    fn start_to_close_and_schedule_to_start_default_to_schedule_to_close() {
        let v = ActivityOptions::new()
            .schedule_to_close(secs(60))
            .validate(Some("q"))
            .unwrap();
        assert_eq!(v.start_to_close, secs(60));
        assert_eq!(v.schedule_to_start, Some(secs(60)));
        let v = ActivityOptions::new()
            .start_to_close(secs(5))
            .validate(Some("q"))
            .unwrap();
        assert_eq!(
            v.schedule_to_start, None,
            "unlimited without schedule_to_close"
        );
        assert_eq!(v.schedule_to_close, None);
    }

    #[test]
    fn timeouts_are_clamped() {
        let v = ActivityOptions::new()
            .schedule_to_close(secs(10))
            .start_to_close(secs(30))
            .schedule_to_start(secs(20))
            .heartbeat_timeout(secs(60))
            .validate(Some("q"))
            .unwrap();
        assert_eq!(v.start_to_close, secs(10));
        assert_eq!(v.schedule_to_start, Some(secs(10)));
        assert_eq!(v.heartbeat_timeout, Some(secs(10)));
    }

    #[test]
    fn zero_durations_and_bad_retry_fields_are_all_reported() {
        let err = ActivityOptions::new()
            .start_to_close(Duration::ZERO)
            .retry(
                RetryOptions::new()
                    .backoff_coefficient(0.5)
                    .initial_interval(secs(10))
                    .maximum_interval(secs(1)),
            )
            .validate(Some("q"))
            .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "start_to_close",
                "retry.backoff_coefficient",
                "retry.maximum_interval"
            ]
        );
    }

    #[test]
    fn task_queue_defaults_to_the_callers_and_must_not_be_empty() {
        let base = ActivityOptions::new().start_to_close(secs(1));
        assert_eq!(base.validate(Some("caller")).unwrap().task_queue, "caller");
        assert_eq!(
            base.clone()
                .task_queue("own")
                .validate(Some("caller"))
                .unwrap()
                .task_queue,
            "own"
        );
        assert_eq!(
            base.validate(None).unwrap_err().problems[0].field,
            "task_queue"
        );
        assert_eq!(
            base.task_queue(" ").validate(None).unwrap_err().problems[0].field,
            "task_queue"
        );
    }

    #[test]
    fn names_and_lists_in_options_are_bounded() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let fields = |options: ActivityOptions| -> Vec<String> {
            options
                .validate(Some("q"))
                .unwrap_err()
                .problems
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        let base = ActivityOptions::new().start_to_close(secs(1));
        assert_eq!(
            fields(base.clone().task_queue(long.clone())),
            ["task_queue"]
        );
        let mut retry = RetryOptions::new();
        for n in 0..=MAX_NON_RETRYABLE_ERROR_TYPES {
            retry = retry.non_retryable(format!("E{n}"));
        }
        assert_eq!(
            fields(base.clone().retry(retry.non_retryable(long.clone()))),
            [
                "retry.non_retryable_error_types",
                "retry.non_retryable_error_types[101]"
            ]
        );
        let mut at_the_limit = RetryOptions::new();
        for n in 1..=MAX_NON_RETRYABLE_ERROR_TYPES {
            at_the_limit =
                at_the_limit.non_retryable("y".repeat(MAX_NAME_LEN - 3) + &format!("{n:03}"));
        }
        assert!(base.retry(at_the_limit).validate(Some("q")).is_ok());
    }

    #[test]
    fn retry_defaults() {
        let v = ActivityOptions::new()
            .start_to_close(secs(1))
            .validate(Some("q"))
            .unwrap();
        let p = v.retry_policy;
        assert_eq!(p.initial_interval, secs(1));
        assert_eq!(p.backoff_coefficient, 2.0);
        assert_eq!(p.maximum_interval, secs(100));
        assert_eq!(p.maximum_attempts, 0);
        assert!(!p.attempts_exhausted(1_000_000));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = ActivityOptions::new()
            .start_to_close(secs(1))
            .retry(
                RetryOptions::new()
                    .initial_interval(Duration::from_millis(250))
                    .maximum_interval(secs(2)),
            )
            .validate(Some("q"))
            .unwrap()
            .retry_policy;
        let delays: Vec<_> = (1..=6).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(p.backoff(u32::MAX), secs(2));
    }

    #[test]
    fn merge_overrides_field_by_field() {
        let defaults = ActivityOptions::new()
            .start_to_close(secs(30))
            .heartbeat_timeout(secs(5))
            .retry(RetryOptions::new().maximum_attempts(3).non_retryable("A"));
        let call = ActivityOptions::new().start_to_close(secs(10)).retry(
            RetryOptions::new()
                .initial_interval(secs(2))
                .non_retryable("B"),
        );
        let merged = defaults.merge(&call);
        assert_eq!(merged.start_to_close, Some(secs(10)));
        assert_eq!(merged.heartbeat_timeout, Some(secs(5)));
        assert_eq!(merged.retry.maximum_attempts, Some(3));
        assert_eq!(merged.retry.initial_interval, Some(secs(2)));
        assert_eq!(merged.retry.non_retryable_error_types, ["A", "B"]);
    }
}
