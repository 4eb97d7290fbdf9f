//! Conversions between the model (`activity_core`) and the wire messages
//! ([`crate::proto`]). Used by both sides: the service decodes requests and
//! encodes answers, the client does the reverse.
//!
//! Decoding never panics: a missing or out-of-range field is a [`WireError`]
//! naming it, which the service answers as `InvalidArgument` and the client
//! reports as `Internal` (the server sent something it should not have).

use std::time::{Duration, SystemTime};

use activity_core::{
    clock::{duration_millis, from_millis, to_millis},
    context::{ActivityInfo, TaskToken},
    failure::{
        ActivityFailure, ApplicationFailure, CanceledFailure, Failure, RetryState, TimeoutFailure,
        TimeoutKind,
    },
    options::{ActivityOptions, OptionProblem, OptionsError, RetryOptions, ValidatedOptions},
    payload::{Encoding, Payload},
    protocol::{
        ActivityTask, ClosedReason, ExecutionDescription, ExecutionOutcome, ExecutionRef,
        ExecutionScope, ExecutionState, ListExecutionsRequest, PollActivityTaskRequest, PollerInfo,
        ProtocolError, ScheduleActivityRequest, ScheduleActivityResponse, TaskQueueDescription,
        TaskTarget,
    },
};

use crate::proto as pb;

mod types;
mod workflow;

pub(crate) use types::*;
pub(crate) use workflow::*;

/// A wire message that cannot be turned into the model: `field` breaks `message`.
#[derive(Debug)]
pub(crate) struct WireError {
    field: String,
    message: String,
}

impl WireError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self::new(field, "must be set")
    }

    /// The error of a malformed request (server side).
    pub(crate) fn into_request_error(self) -> ProtocolError {
        ProtocolError::invalid_argument(self.field, self.message)
    }

    /// The error of a malformed answer (client side): the server broke the wire contract.
    pub(crate) fn into_response_error(self, rpc: &str) -> ProtocolError {
        ProtocolError::Internal {
            message: format!(
                "malformed answer to `{rpc}`: `{}` {} (client and server versions differ?)",
                self.field, self.message
            ),
        }
    }
}

type Wire<T> = Result<T, WireError>;

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

// ------------------------------------------------------------------ scalars

pub(crate) fn duration_to_wire(duration: Duration) -> i64 {
    duration_millis(duration)
}

pub(crate) fn duration_from_wire(millis: i64, name: &str) -> Wire<Duration> {
    u64::try_from(millis)
        .map(Duration::from_millis)
        .map_err(|_| WireError::new(name, format!("must not be negative, got {millis} ms")))
}

fn opt_duration_from_wire(millis: Option<i64>, name: &str) -> Wire<Option<Duration>> {
    millis.map(|ms| duration_from_wire(ms, name)).transpose()
}

fn time_to_wire(time: SystemTime) -> i64 {
    to_millis(time)
}

fn time_from_wire(millis: i64) -> SystemTime {
    from_millis(millis)
}

pub(crate) fn payload_to_wire(payload: &Payload) -> pb::Payload {
    pb::Payload {
        encoding: payload.encoding.as_str().to_owned(),
        data: payload.data.clone(),
    }
}

pub(crate) fn payload_from_wire(payload: pb::Payload, name: &str) -> Wire<Payload> {
    let Some(encoding) = Encoding::parse(&payload.encoding) else {
        let known: Vec<_> = Encoding::ALL.iter().map(|e| format!("`{e}`")).collect();
        return Err(WireError::new(
            field(name, "encoding"),
            format!(
                "unknown payload encoding `{}` (known: {})",
                payload.encoding,
                known.join(", ")
            ),
        ));
    };
    Ok(Payload {
        encoding,
        data: payload.data,
    })
}

pub(crate) fn opt_payload_to_wire(payload: &Option<Payload>) -> Option<pb::Payload> {
    payload.as_ref().map(payload_to_wire)
}

pub(crate) fn opt_payload_from_wire(
    payload: Option<pb::Payload>,
    name: &str,
) -> Wire<Option<Payload>> {
    payload.map(|p| payload_from_wire(p, name)).transpose()
}

fn payloads_to_wire(payloads: &[Payload]) -> Vec<pb::Payload> {
    payloads.iter().map(payload_to_wire).collect()
}

fn payloads_from_wire(payloads: Vec<pb::Payload>, name: &str) -> Wire<Vec<Payload>> {
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| payload_from_wire(p, &format!("{name}[{i}]")))
        .collect()
}

// ------------------------------------------------------------------ enums

pub(crate) fn state_to_wire(state: ExecutionState) -> pb::ExecutionState {
    match state {
        ExecutionState::Scheduled => pb::ExecutionState::Scheduled,
        ExecutionState::Started => pb::ExecutionState::Started,
        ExecutionState::Completed => pb::ExecutionState::Completed,
        ExecutionState::Failed => pb::ExecutionState::Failed,
        ExecutionState::TimedOut => pb::ExecutionState::TimedOut,
        ExecutionState::Canceled => pb::ExecutionState::Canceled,
    }
}

pub(crate) fn state_from_wire(value: i32, name: &str) -> Wire<ExecutionState> {
    match pb::ExecutionState::try_from(value) {
        Ok(pb::ExecutionState::Scheduled) => Ok(ExecutionState::Scheduled),
        Ok(pb::ExecutionState::Started) => Ok(ExecutionState::Started),
        Ok(pb::ExecutionState::Completed) => Ok(ExecutionState::Completed),
        Ok(pb::ExecutionState::Failed) => Ok(ExecutionState::Failed),
        Ok(pb::ExecutionState::TimedOut) => Ok(ExecutionState::TimedOut),
        Ok(pb::ExecutionState::Canceled) => Ok(ExecutionState::Canceled),
        Ok(pb::ExecutionState::Unspecified) | Err(_) => Err(WireError::new(
            name,
            format!("is not a known execution state: {value}"),
        )),
    }
}

fn timeout_kind_to_wire(kind: TimeoutKind) -> pb::TimeoutKind {
    match kind {
        TimeoutKind::ScheduleToStart => pb::TimeoutKind::ScheduleToStart,
        TimeoutKind::StartToClose => pb::TimeoutKind::StartToClose,
        TimeoutKind::ScheduleToClose => pb::TimeoutKind::ScheduleToClose,
        TimeoutKind::Heartbeat => pb::TimeoutKind::Heartbeat,
    }
}

fn timeout_kind_from_wire(value: i32, name: &str) -> Wire<TimeoutKind> {
    match pb::TimeoutKind::try_from(value) {
        Ok(pb::TimeoutKind::ScheduleToStart) => Ok(TimeoutKind::ScheduleToStart),
        Ok(pb::TimeoutKind::StartToClose) => Ok(TimeoutKind::StartToClose),
        Ok(pb::TimeoutKind::ScheduleToClose) => Ok(TimeoutKind::ScheduleToClose),
        Ok(pb::TimeoutKind::Heartbeat) => Ok(TimeoutKind::Heartbeat),
        Ok(pb::TimeoutKind::Unspecified) | Err(_) => Err(WireError::new(
            name,
            format!("is not a known timeout kind: {value}"),
        )),
    }
}

fn retry_state_to_wire(state: RetryState) -> pb::RetryState {
    match state {
        RetryState::NonRetryableFailure => pb::RetryState::NonRetryableFailure,
        RetryState::MaximumAttemptsReached => pb::RetryState::MaximumAttemptsReached,
        RetryState::Timeout => pb::RetryState::Timeout,
        RetryState::CancelRequested => pb::RetryState::CancelRequested,
    }
}

/// `None` for UNSPECIFIED (an unset optional retry state).
fn retry_state_from_wire(value: i32, name: &str) -> Wire<Option<RetryState>> {
    match pb::RetryState::try_from(value) {
        Ok(pb::RetryState::Unspecified) => Ok(None),
        Ok(pb::RetryState::NonRetryableFailure) => Ok(Some(RetryState::NonRetryableFailure)),
        Ok(pb::RetryState::MaximumAttemptsReached) => Ok(Some(RetryState::MaximumAttemptsReached)),
        Ok(pb::RetryState::Timeout) => Ok(Some(RetryState::Timeout)),
        Ok(pb::RetryState::CancelRequested) => Ok(Some(RetryState::CancelRequested)),
        Err(_) => Err(WireError::new(
            name,
            format!("is not a known retry state: {value}"),
        )),
    }
}

// ------------------------------------------------------------------ ids and targets

pub(crate) fn execution_to_wire(execution: &ExecutionRef) -> pb::ExecutionRef {
    pb::ExecutionRef {
        activity_id: execution.activity_id.clone(),
        workflow_id: execution.workflow_id.clone(),
        workflow_run_id: execution.workflow_run_id.clone(),
    }
}

pub(crate) fn execution_from_wire(
    execution: Option<pb::ExecutionRef>,
    name: &str,
) -> Wire<ExecutionRef> {
    let execution = execution.ok_or_else(|| WireError::missing(name))?;
    let mut model = ExecutionRef::standalone(execution.activity_id);
    model.workflow_id = execution.workflow_id;
    model.workflow_run_id = execution.workflow_run_id;
    Ok(model)
}

pub(crate) fn target_to_wire(target: &TaskTarget) -> pb::TaskTarget {
    let target = match target {
        TaskTarget::Token(token) => pb::task_target::Target::TaskToken(token.as_bytes().to_vec()),
        TaskTarget::Execution(execution) => {
            pb::task_target::Target::Execution(execution_to_wire(execution))
        }
    };
    pb::TaskTarget {
        target: Some(target),
    }
}

pub(crate) fn target_from_wire(target: Option<pb::TaskTarget>) -> Wire<TaskTarget> {
    match target.and_then(|t| t.target) {
        Some(pb::task_target::Target::TaskToken(bytes)) => {
            Ok(TaskTarget::Token(TaskToken::from_bytes(bytes)))
        }
        Some(pb::task_target::Target::Execution(execution)) => Ok(TaskTarget::Execution(
            execution_from_wire(Some(execution), "target.execution")?,
        )),
        None => Err(WireError::new(
            "target",
            "must be set: a task token or an execution",
        )),
    }
}

// ------------------------------------------------------------------ options

fn retry_options_to_wire(retry: &RetryOptions) -> pb::RetryOptions {
    pb::RetryOptions {
        initial_interval_ms: retry.initial_interval.map(duration_to_wire),
        backoff_coefficient: retry.backoff_coefficient,
        maximum_interval_ms: retry.maximum_interval.map(duration_to_wire),
        maximum_attempts: retry.maximum_attempts,
        non_retryable_error_types: retry.non_retryable_error_types.clone(),
    }
}

fn retry_options_from_wire(retry: Option<pb::RetryOptions>, name: &str) -> Wire<RetryOptions> {
    let Some(retry) = retry else {
        return Ok(RetryOptions::new());
    };
    let mut model = RetryOptions::new();
    model.initial_interval = opt_duration_from_wire(
        retry.initial_interval_ms,
        &field(name, "initial_interval_ms"),
    )?;
    model.backoff_coefficient = retry.backoff_coefficient;
    model.maximum_interval = opt_duration_from_wire(
        retry.maximum_interval_ms,
        &field(name, "maximum_interval_ms"),
    )?;
    model.maximum_attempts = retry.maximum_attempts;
    model.non_retryable_error_types = retry.non_retryable_error_types;
    Ok(model)
}

pub(crate) fn options_to_wire(options: &ActivityOptions) -> pb::ActivityOptions {
    pb::ActivityOptions {
        schedule_to_close_ms: options.schedule_to_close.map(duration_to_wire),
        start_to_close_ms: options.start_to_close.map(duration_to_wire),
        schedule_to_start_ms: options.schedule_to_start.map(duration_to_wire),
        heartbeat_timeout_ms: options.heartbeat_timeout.map(duration_to_wire),
        task_queue: options.task_queue.clone(),
        retry: Some(retry_options_to_wire(&options.retry)),
    }
}

pub(crate) fn options_from_wire(options: Option<pb::ActivityOptions>) -> Wire<ActivityOptions> {
    options_from_wire_at(options, "options")
}

/// Partial options found at field `name` of the message.
fn options_from_wire_at(options: Option<pb::ActivityOptions>, name: &str) -> Wire<ActivityOptions> {
    let Some(options) = options else {
        return Ok(ActivityOptions::new());
    };
    let mut model = ActivityOptions::new();
    model.schedule_to_close = opt_duration_from_wire(
        options.schedule_to_close_ms,
        &field(name, "schedule_to_close_ms"),
    )?;
    model.start_to_close =
        opt_duration_from_wire(options.start_to_close_ms, &field(name, "start_to_close_ms"))?;
    model.schedule_to_start = opt_duration_from_wire(
        options.schedule_to_start_ms,
        &field(name, "schedule_to_start_ms"),
    )?;
    model.heartbeat_timeout = opt_duration_from_wire(
        options.heartbeat_timeout_ms,
        &field(name, "heartbeat_timeout_ms"),
    )?;
    model.task_queue = options.task_queue;
    model.retry = retry_options_from_wire(options.retry, &field(name, "retry"))?;
    Ok(model)
}

pub(crate) fn validated_to_wire(options: &ValidatedOptions) -> pb::ValidatedOptions {
    let retry = &options.retry_policy;
    pb::ValidatedOptions {
        schedule_to_close_ms: options.schedule_to_close.map(duration_to_wire),
        start_to_close_ms: duration_to_wire(options.start_to_close),
        schedule_to_start_ms: options.schedule_to_start.map(duration_to_wire),
        heartbeat_timeout_ms: options.heartbeat_timeout.map(duration_to_wire),
        task_queue: options.task_queue.clone(),
        retry_policy: Some(pb::RetryPolicy {
            initial_interval_ms: duration_to_wire(retry.initial_interval),
            backoff_coefficient: retry.backoff_coefficient,
            maximum_interval_ms: duration_to_wire(retry.maximum_interval),
            maximum_attempts: retry.maximum_attempts,
            non_retryable_error_types: retry.non_retryable_error_types.clone(),
        }),
    }
}

/// `ValidatedOptions` has no public constructor outside `activity-core` (only
/// validation makes one): validate options that always pass, then set every field
/// from the wire.
pub(crate) fn validated_from_wire(
    options: Option<pb::ValidatedOptions>,
    name: &str,
) -> Wire<ValidatedOptions> {
    let options = options.ok_or_else(|| WireError::missing(name))?;
    let retry = options
        .retry_policy
        .ok_or_else(|| WireError::missing(&field(name, "retry_policy")))?;
    let mut model = ActivityOptions::new()
        .start_to_close(Duration::from_secs(1))
        .validate(Some("template"))
        .map_err(|e| WireError::new(name, format!("cannot be rebuilt: {e}")))?;
    model.schedule_to_close = opt_duration_from_wire(
        options.schedule_to_close_ms,
        &field(name, "schedule_to_close_ms"),
    )?;
    model.start_to_close =
        duration_from_wire(options.start_to_close_ms, &field(name, "start_to_close_ms"))?;
    model.schedule_to_start = opt_duration_from_wire(
        options.schedule_to_start_ms,
        &field(name, "schedule_to_start_ms"),
    )?;
    model.heartbeat_timeout = opt_duration_from_wire(
        options.heartbeat_timeout_ms,
        &field(name, "heartbeat_timeout_ms"),
    )?;
    model.task_queue = options.task_queue;
    let policy = &mut model.retry_policy;
    policy.initial_interval = duration_from_wire(
        retry.initial_interval_ms,
        &field(name, "retry_policy.initial_interval_ms"),
    )?;
    policy.backoff_coefficient = retry.backoff_coefficient;
    policy.maximum_interval = duration_from_wire(
        retry.maximum_interval_ms,
        &field(name, "retry_policy.maximum_interval_ms"),
    )?;
    policy.maximum_attempts = retry.maximum_attempts;
    policy.non_retryable_error_types = retry.non_retryable_error_types;
    Ok(model)
}

// ------------------------------------------------------------------ failures

pub(crate) fn application_to_wire(failure: &ApplicationFailure) -> pb::ApplicationFailure {
    pb::ApplicationFailure {
        error_type: failure.error_type.clone(),
        message: failure.message.clone(),
        non_retryable: failure.non_retryable,
        details: opt_payload_to_wire(&failure.details),
        next_retry_delay_ms: failure.next_retry_delay.map(duration_to_wire),
    }
}

pub(crate) fn application_from_wire(
    failure: Option<pb::ApplicationFailure>,
    name: &str,
) -> Wire<ApplicationFailure> {
    let failure = failure.ok_or_else(|| WireError::missing(name))?;
    let mut model = ApplicationFailure::new(failure.error_type, failure.message)
        .with_non_retryable(failure.non_retryable);
    model.details = opt_payload_from_wire(failure.details, &field(name, "details"))?;
    model.next_retry_delay = opt_duration_from_wire(
        failure.next_retry_delay_ms,
        &field(name, "next_retry_delay_ms"),
    )?;
    Ok(model)
}

/// Fails only for a failure kind added to the model after this crate was written.
pub(crate) fn failure_to_wire(failure: &Failure) -> Result<pb::Failure, ProtocolError> {
    let failure = match failure {
        Failure::Application(a) => pb::failure::Failure::Application(application_to_wire(a)),
        Failure::Timeout(t) => pb::failure::Failure::Timeout(pb::TimeoutFailure {
            kind: timeout_kind_to_wire(t.kind) as i32,
            last_heartbeat_details: opt_payload_to_wire(&t.last_heartbeat_details),
        }),
        Failure::Canceled(c) => pb::failure::Failure::Canceled(pb::CanceledFailure {
            details: opt_payload_to_wire(&c.details),
        }),
        other => {
            return Err(ProtocolError::Internal {
                message: format!(
                    "the gRPC transport cannot carry this kind of failure yet ({other}): update activity-remote"
                ),
            })
        }
    };
    Ok(pb::Failure {
        failure: Some(failure),
    })
}

pub(crate) fn failure_from_wire(failure: Option<pb::Failure>, name: &str) -> Wire<Failure> {
    match failure.and_then(|f| f.failure) {
        Some(pb::failure::Failure::Application(a)) => Ok(Failure::Application(
            application_from_wire(Some(a), &field(name, "application"))?,
        )),
        Some(pb::failure::Failure::Timeout(t)) => Ok(Failure::Timeout(TimeoutFailure::new(
            timeout_kind_from_wire(t.kind, &field(name, "timeout.kind"))?,
            opt_payload_from_wire(
                t.last_heartbeat_details,
                &field(name, "timeout.last_heartbeat_details"),
            )?,
        ))),
        Some(pb::failure::Failure::Canceled(c)) => {
            let mut canceled = CanceledFailure::default();
            canceled.details = opt_payload_from_wire(c.details, &field(name, "canceled.details"))?;
            Ok(Failure::Canceled(canceled))
        }
        None => Err(WireError::missing(name)),
    }
}

fn activity_failure_to_wire(
    failure: &ActivityFailure,
) -> Result<pb::ActivityFailure, ProtocolError> {
    Ok(pb::ActivityFailure {
        activity_type: failure.activity_type.clone(),
        activity_id: failure.activity_id.clone(),
        attempts: failure.attempts,
        retry_state: retry_state_to_wire(failure.retry_state) as i32,
        cause: Some(failure_to_wire(&failure.cause)?),
    })
}

fn activity_failure_from_wire(failure: pb::ActivityFailure, name: &str) -> Wire<ActivityFailure> {
    let retry_state = retry_state_from_wire(failure.retry_state, &field(name, "retry_state"))?
        .ok_or_else(|| WireError::missing(&field(name, "retry_state")))?;
    Ok(ActivityFailure::new(
        failure.activity_type,
        failure.activity_id,
        failure.attempts,
        retry_state,
        failure_from_wire(failure.cause, &field(name, "cause"))?,
    ))
}

pub(crate) fn outcome_to_wire(
    outcome: &ExecutionOutcome,
) -> Result<pb::ExecutionOutcome, ProtocolError> {
    let outcome = match outcome {
        ExecutionOutcome::Completed(payload) => {
            pb::execution_outcome::Outcome::Completed(payload_to_wire(payload))
        }
        ExecutionOutcome::Failed(failure) => {
            pb::execution_outcome::Outcome::Failed(activity_failure_to_wire(failure)?)
        }
    };
    Ok(pb::ExecutionOutcome {
        outcome: Some(outcome),
    })
}

pub(crate) fn outcome_from_wire(
    outcome: pb::ExecutionOutcome,
    name: &str,
) -> Wire<ExecutionOutcome> {
    match outcome.outcome {
        Some(pb::execution_outcome::Outcome::Completed(payload)) => Ok(
            ExecutionOutcome::Completed(payload_from_wire(payload, &field(name, "completed"))?),
        ),
        Some(pb::execution_outcome::Outcome::Failed(failure)) => Ok(ExecutionOutcome::Failed(
            activity_failure_from_wire(failure, &field(name, "failed"))?,
        )),
        None => Err(WireError::missing(name)),
    }
}

// ------------------------------------------------------------------ requests and answers

pub(crate) fn schedule_request_to_wire(
    request: &ScheduleActivityRequest,
) -> pb::ScheduleActivityRequest {
    pb::ScheduleActivityRequest {
        activity_id: request.activity_id.clone(),
        activity_type: request.activity_type.clone(),
        input: payloads_to_wire(&request.input),
        options: Some(options_to_wire(&request.options)),
    }
}

pub(crate) fn schedule_request_from_wire(
    request: pb::ScheduleActivityRequest,
) -> Wire<ScheduleActivityRequest> {
    let mut model = ScheduleActivityRequest::new(
        request.activity_type,
        payloads_from_wire(request.input, "input")?,
        options_from_wire(request.options)?,
    );
    model.activity_id = request.activity_id;
    Ok(model)
}

pub(crate) fn schedule_response_to_wire(
    response: &ScheduleActivityResponse,
) -> pb::ScheduleActivityResponse {
    pb::ScheduleActivityResponse {
        execution: Some(execution_to_wire(&response.execution)),
        options: Some(validated_to_wire(&response.options)),
    }
}

pub(crate) fn schedule_response_from_wire(
    response: pb::ScheduleActivityResponse,
) -> Wire<ScheduleActivityResponse> {
    Ok(ScheduleActivityResponse::new(
        execution_from_wire(response.execution, "execution")?,
        validated_from_wire(response.options, "options")?,
    ))
}

pub(crate) fn poll_request_to_wire(
    request: &PollActivityTaskRequest,
) -> pb::PollActivityTaskRequest {
    pb::PollActivityTaskRequest {
        task_queue: request.task_queue.clone(),
        identity: request.identity.clone(),
        max_task_queue_activities_per_second: request.max_task_queue_activities_per_second,
        wait_ms: duration_to_wire(request.wait),
    }
}

pub(crate) fn poll_request_from_wire(
    request: pb::PollActivityTaskRequest,
) -> Wire<PollActivityTaskRequest> {
    let mut model = PollActivityTaskRequest::new(request.task_queue, request.identity)
        .with_wait(duration_from_wire(request.wait_ms, "wait_ms")?);
    model.max_task_queue_activities_per_second = request.max_task_queue_activities_per_second;
    Ok(model)
}

fn info_to_wire(info: &ActivityInfo) -> pb::ActivityInfo {
    pb::ActivityInfo {
        activity_id: info.activity_id.clone(),
        activity_type: info.activity_type.clone(),
        task_queue: info.task_queue.clone(),
        attempt: info.attempt,
        workflow_id: info.workflow_id.clone(),
        workflow_run_id: info.workflow_run_id.clone(),
        workflow_type: info.workflow_type.clone(),
        scheduled_time_ms: time_to_wire(info.scheduled_time),
        current_attempt_scheduled_time_ms: time_to_wire(info.current_attempt_scheduled_time),
        started_time_ms: time_to_wire(info.started_time),
        deadline_ms: info.deadline.map(time_to_wire),
        heartbeat_timeout_ms: info.heartbeat_timeout.map(duration_to_wire),
        is_local: info.is_local,
        task_token: info.task_token.as_bytes().to_vec(),
    }
}

fn info_from_wire(info: Option<pb::ActivityInfo>) -> Wire<ActivityInfo> {
    let info = info.ok_or_else(|| WireError::missing("task.info"))?;
    let mut model = ActivityInfo::new(info.activity_type, info.activity_id, info.task_queue);
    model.attempt = info.attempt;
    model.workflow_id = info.workflow_id;
    model.workflow_run_id = info.workflow_run_id;
    model.workflow_type = info.workflow_type;
    model.scheduled_time = time_from_wire(info.scheduled_time_ms);
    model.current_attempt_scheduled_time = time_from_wire(info.current_attempt_scheduled_time_ms);
    model.started_time = time_from_wire(info.started_time_ms);
    model.deadline = info.deadline_ms.map(time_from_wire);
    model.heartbeat_timeout =
        opt_duration_from_wire(info.heartbeat_timeout_ms, "task.info.heartbeat_timeout_ms")?;
    model.is_local = info.is_local;
    model.task_token = TaskToken::from_bytes(info.task_token);
    Ok(model)
}

pub(crate) fn task_to_wire(task: &ActivityTask) -> pb::ActivityTask {
    pb::ActivityTask {
        task_token: task.task_token.as_bytes().to_vec(),
        info: Some(info_to_wire(&task.info)),
        input: payloads_to_wire(&task.input),
        last_heartbeat_details: opt_payload_to_wire(&task.last_heartbeat_details),
    }
}

pub(crate) fn task_from_wire(task: pb::ActivityTask) -> Wire<ActivityTask> {
    Ok(ActivityTask::new(
        TaskToken::from_bytes(task.task_token),
        info_from_wire(task.info)?,
        payloads_from_wire(task.input, "task.input")?,
        opt_payload_from_wire(task.last_heartbeat_details, "task.last_heartbeat_details")?,
    ))
}

pub(crate) fn description_to_wire(
    d: &ExecutionDescription,
) -> Result<pb::ExecutionDescription, ProtocolError> {
    Ok(pb::ExecutionDescription {
        execution: Some(execution_to_wire(&d.execution)),
        activity_type: d.activity_type.clone(),
        state: state_to_wire(d.state) as i32,
        attempt: d.attempt,
        options: Some(validated_to_wire(&d.options)),
        scheduled_time_ms: time_to_wire(d.scheduled_time),
        current_attempt_scheduled_time_ms: time_to_wire(d.current_attempt_scheduled_time),
        started_time_ms: d.started_time.map(time_to_wire),
        worker_identity: d.worker_identity.clone(),
        last_heartbeat_time_ms: d.last_heartbeat_time.map(time_to_wire),
        heartbeat_details: opt_payload_to_wire(&d.heartbeat_details),
        last_failure: d.last_failure.as_ref().map(failure_to_wire).transpose()?,
        retry_state: d
            .retry_state
            .map_or(pb::RetryState::Unspecified, retry_state_to_wire) as i32,
        cancel_requested: d.cancel_requested,
        close_time_ms: d.close_time.map(time_to_wire),
        outcome: d.outcome.as_ref().map(outcome_to_wire).transpose()?,
    })
}

pub(crate) fn description_from_wire(
    d: Option<pb::ExecutionDescription>,
) -> Wire<ExecutionDescription> {
    let d = d.ok_or_else(|| WireError::missing("description"))?;
    let mut model = ExecutionDescription::new(
        execution_from_wire(d.execution, "description.execution")?,
        d.activity_type,
        state_from_wire(d.state, "description.state")?,
        d.attempt,
        validated_from_wire(d.options, "description.options")?,
        time_from_wire(d.scheduled_time_ms),
    );
    model.current_attempt_scheduled_time = time_from_wire(d.current_attempt_scheduled_time_ms);
    model.started_time = d.started_time_ms.map(time_from_wire);
    model.worker_identity = d.worker_identity;
    model.last_heartbeat_time = d.last_heartbeat_time_ms.map(time_from_wire);
    model.heartbeat_details =
        opt_payload_from_wire(d.heartbeat_details, "description.heartbeat_details")?;
    model.last_failure = d
        .last_failure
        .map(|f| failure_from_wire(Some(f), "description.last_failure"))
        .transpose()?;
    model.retry_state = retry_state_from_wire(d.retry_state, "description.retry_state")?;
    model.cancel_requested = d.cancel_requested;
    model.close_time = d.close_time_ms.map(time_from_wire);
    model.outcome = d
        .outcome
        .map(|o| outcome_from_wire(o, "description.outcome"))
        .transpose()?;
    Ok(model)
}

pub(crate) fn queue_to_wire(q: &TaskQueueDescription) -> pb::TaskQueueDescription {
    pb::TaskQueueDescription {
        name: q.name.clone(),
        backlog: q.backlog,
        dispatchable: q.dispatchable,
        pollers: q
            .pollers
            .iter()
            .map(|p| pb::PollerInfo {
                identity: p.identity.clone(),
                last_poll_time_ms: time_to_wire(p.last_poll_time),
            })
            .collect(),
        rate_limit: q.rate_limit,
    }
}

pub(crate) fn queue_from_wire(q: Option<pb::TaskQueueDescription>) -> Wire<TaskQueueDescription> {
    let q = q.ok_or_else(|| WireError::missing("description"))?;
    let mut model = TaskQueueDescription::new(q.name);
    model.backlog = q.backlog;
    model.dispatchable = q.dispatchable;
    model.pollers = q
        .pollers
        .into_iter()
        .map(|p| PollerInfo::new(p.identity, time_from_wire(p.last_poll_time_ms)))
        .collect();
    model.rate_limit = q.rate_limit;
    Ok(model)
}

pub(crate) fn list_executions_request_to_wire(
    r: &ListExecutionsRequest,
) -> pb::ListActivityExecutionsRequest {
    use pb::list_activity_executions_request::{Scope, Standalone};
    pb::ListActivityExecutionsRequest {
        scope: match &r.scope {
            ExecutionScope::Standalone => Some(Scope::Standalone(Standalone {})),
            ExecutionScope::WorkflowRun(run_id) => Some(Scope::WorkflowRunId(run_id.clone())),
            _ => None,
        },
        state: r
            .state
            .map_or(pb::ExecutionState::Unspecified, state_to_wire) as i32,
        activity_type: r.activity_type.clone(),
        task_queue: r.task_queue.clone(),
        limit: r.limit,
        offset: r.offset,
    }
}

pub(crate) fn list_executions_request_from_wire(
    r: pb::ListActivityExecutionsRequest,
) -> Wire<ListExecutionsRequest> {
    use pb::list_activity_executions_request::Scope;
    let scope = match r.scope {
        None => ExecutionScope::All,
        Some(Scope::Standalone(_)) => ExecutionScope::Standalone,
        Some(Scope::WorkflowRunId(run_id)) => ExecutionScope::WorkflowRun(run_id),
    };
    let mut model = ListExecutionsRequest::new()
        .with_scope(scope)
        .with_limit(r.limit)
        .with_offset(r.offset);
    if r.state != pb::ExecutionState::Unspecified as i32 {
        model = model.with_state(state_from_wire(r.state, "state")?);
    }
    if let Some(activity_type) = r.activity_type {
        model = model.with_activity_type(activity_type);
    }
    if let Some(task_queue) = r.task_queue {
        model = model.with_task_queue(task_queue);
    }
    Ok(model)
}

// ------------------------------------------------------------------ errors

fn closed_reason_to_wire(reason: ClosedReason) -> pb::ClosedReason {
    use pb::closed_reason::Reason;
    let reason = match reason {
        ClosedReason::AttemptTimedOut(kind) => {
            Reason::AttemptTimedOut(timeout_kind_to_wire(kind) as i32)
        }
        ClosedReason::AttemptSuperseded => {
            Reason::AttemptSuperseded(pb::closed_reason::Superseded {})
        }
        ClosedReason::ExecutionClosed(state) => {
            Reason::ExecutionClosed(state_to_wire(state) as i32)
        }
    };
    pb::ClosedReason {
        reason: Some(reason),
    }
}

fn closed_reason_from_wire(reason: Option<pb::ClosedReason>) -> Wire<ClosedReason> {
    use pb::closed_reason::Reason;
    match reason.and_then(|r| r.reason) {
        Some(Reason::AttemptTimedOut(kind)) => Ok(ClosedReason::AttemptTimedOut(
            timeout_kind_from_wire(kind, "already_closed.reason.attempt_timed_out")?,
        )),
        Some(Reason::AttemptSuperseded(_)) => Ok(ClosedReason::AttemptSuperseded),
        Some(Reason::ExecutionClosed(state)) => Ok(ClosedReason::ExecutionClosed(state_from_wire(
            state,
            "already_closed.reason.execution_closed",
        )?)),
        None => Err(WireError::missing("already_closed.reason")),
    }
}

/// The wire detail of an error; `None` for a variant added to the model after
/// this crate was written (sent as `Internal` with its message).
pub(crate) fn error_to_wire(error: &ProtocolError) -> Option<pb::protocol_error_detail::Error> {
    use pb::protocol_error_detail::{self as d, Error};
    Some(match error {
        ProtocolError::InvalidOptions(options) => Error::InvalidOptions(d::InvalidOptions {
            problems: options
                .problems
                .iter()
                .map(|p| pb::OptionProblem {
                    field: p.field.clone(),
                    rule: p.rule.clone(),
                })
                .collect(),
        }),
        ProtocolError::InvalidArgument { field, message } => {
            Error::InvalidArgument(d::InvalidArgument {
                field: field.clone(),
                message: message.clone(),
            })
        }
        ProtocolError::PayloadTooLarge { what, size, limit } => {
            Error::PayloadTooLarge(d::PayloadTooLarge {
                what: what.clone(),
                size: u64::try_from(*size).unwrap_or(u64::MAX),
                limit: u64::try_from(*limit).unwrap_or(u64::MAX),
            })
        }
        ProtocolError::InvalidToken { reason } => Error::InvalidToken(d::InvalidToken {
            reason: reason.clone(),
        }),
        ProtocolError::NotFound { what } => Error::NotFound(d::NotFound { what: what.clone() }),
        ProtocolError::AlreadyExists { what } => {
            Error::AlreadyExists(d::AlreadyExists { what: what.clone() })
        }
        ProtocolError::AlreadyClosed { what, reason } => Error::AlreadyClosed(d::AlreadyClosed {
            what: what.clone(),
            reason: Some(closed_reason_to_wire(*reason)),
        }),
        ProtocolError::Unavailable { message } => Error::Unavailable(d::Unavailable {
            message: message.clone(),
        }),
        ProtocolError::Internal { message } => Error::Internal(d::Internal {
            message: message.clone(),
        }),
        ProtocolError::Unsupported { operation } => Error::Unsupported(d::Unsupported {
            operation: operation.clone(),
        }),
        _ => return None,
    })
}

pub(crate) fn error_from_wire(error: pb::protocol_error_detail::Error) -> Wire<ProtocolError> {
    use pb::protocol_error_detail::Error;
    Ok(match error {
        Error::InvalidOptions(options) => ProtocolError::InvalidOptions(OptionsError {
            problems: options
                .problems
                .into_iter()
                .map(|p| OptionProblem {
                    field: p.field,
                    rule: p.rule,
                })
                .collect(),
        }),
        Error::InvalidArgument(e) => ProtocolError::InvalidArgument {
            field: e.field,
            message: e.message,
        },
        Error::PayloadTooLarge(e) => ProtocolError::PayloadTooLarge {
            what: e.what,
            size: usize::try_from(e.size).unwrap_or(usize::MAX),
            limit: usize::try_from(e.limit).unwrap_or(usize::MAX),
        },
        Error::InvalidToken(e) => ProtocolError::InvalidToken { reason: e.reason },
        Error::NotFound(e) => ProtocolError::NotFound { what: e.what },
        Error::AlreadyExists(e) => ProtocolError::AlreadyExists { what: e.what },
        Error::AlreadyClosed(e) => ProtocolError::AlreadyClosed {
            what: e.what,
            reason: closed_reason_from_wire(e.reason)?,
        },
        Error::Unavailable(e) => ProtocolError::Unavailable { message: e.message },
        Error::Internal(e) => ProtocolError::Internal { message: e.message },
        Error::Unsupported(e) => ProtocolError::Unsupported {
            operation: e.operation,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &str) -> Payload {
        Payload::json(value).expect("serializable")
    }

    fn at(ms: i64) -> SystemTime {
        from_millis(ms)
    }

    fn validated() -> ValidatedOptions {
        ActivityOptions::new()
            .schedule_to_close(Duration::from_secs(600))
            .start_to_close(Duration::from_millis(1_500))
            .heartbeat_timeout(Duration::from_millis(250))
            .task_queue("q")
            .retry(
                RetryOptions::new()
                    .initial_interval(Duration::from_millis(20))
                    .backoff_coefficient(1.5)
                    .maximum_interval(Duration::from_secs(3))
                    .maximum_attempts(4)
                    .non_retryable("Fatal"),
            )
            .validate(None)
            .expect("valid options")
    }

    #[test]
    fn partial_options_keep_unset_fields_unset_and_zero_distinct() {
        let partial = ActivityOptions::new()
            .start_to_close(Duration::ZERO)
            .retry(RetryOptions::new().maximum_attempts(0));
        let back = options_from_wire(Some(options_to_wire(&partial))).expect("decodes");
        assert_eq!(back, partial);
        assert_eq!(back.schedule_to_close, None);
        assert_eq!(back.start_to_close, Some(Duration::ZERO));

        let full = ActivityOptions::new()
            .schedule_to_close(Duration::from_secs(60))
            .start_to_close(Duration::from_secs(5))
            .schedule_to_start(Duration::from_secs(7))
            .heartbeat_timeout(Duration::from_millis(900))
            .task_queue("q")
            .retry(
                RetryOptions::new()
                    .initial_interval(Duration::from_millis(100))
                    .backoff_coefficient(3.0)
                    .maximum_interval(Duration::from_secs(9))
                    .maximum_attempts(2)
                    .non_retryable("A")
                    .non_retryable("B"),
            );
        assert_eq!(
            options_from_wire(Some(options_to_wire(&full))).expect("decodes"),
            full
        );
    }

    #[test]
    fn validated_options_round_trip() {
        let options = validated();
        let back =
            validated_from_wire(Some(validated_to_wire(&options)), "options").expect("decodes");
        assert_eq!(back, options);
    }

    #[test]
    fn a_full_description_round_trips() {
        let mut execution = ExecutionRef::standalone("a-1");
        execution.workflow_id = Some("wf".into());
        execution.workflow_run_id = Some("run".into());
        let mut d = ExecutionDescription::new(
            execution,
            "charge",
            ExecutionState::Failed,
            3,
            validated(),
            at(1_700_000_000_000),
        );
        d.current_attempt_scheduled_time = at(1_700_000_000_500);
        d.started_time = Some(at(1_700_000_000_600));
        d.worker_identity = Some("host:1".into());
        d.last_heartbeat_time = Some(at(1_700_000_000_700));
        d.heartbeat_details = Some(json("50%"));
        let cause = Failure::Application(
            ApplicationFailure::new("Declined", "no funds")
                .with_non_retryable(true)
                .with_details(json("code 51"))
                .with_next_retry_delay(Duration::from_millis(1_234)),
        );
        d.last_failure = Some(cause.clone());
        d.retry_state = Some(RetryState::NonRetryableFailure);
        d.cancel_requested = true;
        d.close_time = Some(at(1_700_000_001_000));
        d.outcome = Some(ExecutionOutcome::Failed(ActivityFailure::new(
            "charge",
            "a-1",
            3,
            RetryState::NonRetryableFailure,
            cause,
        )));
        let wire = description_to_wire(&d).expect("encodes");
        assert_eq!(description_from_wire(Some(wire)).expect("decodes"), d);

        // The other failure kinds and an empty description.
        for failure in [
            Failure::Timeout(TimeoutFailure::new(
                TimeoutKind::Heartbeat,
                Some(json("hb")),
            )),
            Failure::Canceled(CanceledFailure::default()),
        ] {
            let mut d = d.clone();
            d.last_failure = Some(failure);
            let wire = description_to_wire(&d).expect("encodes");
            assert_eq!(description_from_wire(Some(wire)).expect("decodes"), d);
        }
        let bare = ExecutionDescription::new(
            ExecutionRef::standalone("b"),
            "t",
            ExecutionState::Scheduled,
            1,
            validated(),
            at(-5_000),
        );
        let wire = description_to_wire(&bare).expect("encodes");
        assert_eq!(description_from_wire(Some(wire)).expect("decodes"), bare);
    }

    #[test]
    fn a_full_task_round_trips() {
        let token = TaskToken::from_bytes(vec![1, 2, 3, 255]);
        let mut info = ActivityInfo::new("charge", "a-1", "q");
        info.attempt = 2;
        info.workflow_id = Some("wf".into());
        info.workflow_run_id = Some("run".into());
        info.workflow_type = Some("checkout".into());
        info.scheduled_time = at(1_000);
        info.current_attempt_scheduled_time = at(2_000);
        info.started_time = at(3_000);
        info.deadline = Some(at(4_000));
        info.heartbeat_timeout = Some(Duration::from_millis(500));
        info.task_token = token.clone();
        let task = ActivityTask::new(token, info, vec![json("a"), json("b")], Some(json("hb")));
        assert_eq!(task_from_wire(task_to_wire(&task)).expect("decodes"), task);
    }

    #[test]
    fn malformed_messages_name_the_field() {
        let err = target_from_wire(None).expect_err("no target");
        assert!(matches!(
            err.into_request_error(),
            ProtocolError::InvalidArgument { field, .. } if field == "target"
        ));
        let err = duration_from_wire(-1, "wait_ms").expect_err("negative");
        assert!(err.into_request_error().to_string().contains("wait_ms"));
        let err = payload_from_wire(
            pb::Payload {
                encoding: "binary/zip".into(),
                data: Default::default(),
            },
            "result",
        )
        .expect_err("unknown encoding");
        assert!(matches!(
            err.into_request_error(),
            ProtocolError::InvalidArgument { field, message }
                if field == "result.encoding" && message.contains("binary/zip")
        ));
        let err = state_from_wire(0, "state").expect_err("unspecified");
        assert!(matches!(
            err.into_response_error("RequestCancel"),
            ProtocolError::Internal { message } if message.contains("RequestCancel")
        ));
    }
}

#[test]
fn list_executions_requests_round_trip_with_every_scope() {
    for request in [
        ListExecutionsRequest::new(),
        ListExecutionsRequest::new()
            .with_scope(ExecutionScope::Standalone)
            .with_state(ExecutionState::TimedOut)
            .with_limit(3)
            .with_offset(9),
        ListExecutionsRequest::new()
            .with_scope(ExecutionScope::WorkflowRun("run-1".into()))
            .with_activity_type("charge")
            .with_task_queue("payments"),
    ] {
        let wire = list_executions_request_to_wire(&request);
        assert_eq!(
            list_executions_request_from_wire(wire).expect("decodes"),
            request
        );
    }
}
