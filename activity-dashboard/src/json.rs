//! JSON views of the model: payloads as their JSON values, times as RFC 3339,
//! durations in milliseconds, states by their stable names.
//!
//! The dashboard's pages are drawn from these views, and the CLI prints them
//! (`--json`) and its tables from them, so every tool shows the same facts.
//!
//! ```
//! use activity_core::Payload;
//! use activity_dashboard::json;
//!
//! let value = json::payload(&Payload::json(&[1, 2]).unwrap());
//! assert_eq!(value, serde_json::json!([1, 2]));
//! ```

use std::time::{Duration, SystemTime};

use activity_core::{
    failure::{ActivityFailure, ApplicationFailure, Failure},
    options::ValidatedOptions,
    protocol::{ExecutionDescription, ExecutionOutcome, RegisteredType, TaskQueueDescription},
    workflow::history::{
        EventKind, HistoryEvent, LocalActivityOutcome, WorkflowDescription, WorkflowFailure,
        WorkflowOutcome, WorkflowSummary,
    },
    Payload,
};
use serde_json::{json, Map, Value};

/// A payload as its JSON value; one that is not JSON as a string naming its
/// size and encoding.
pub fn payload(payload: &Payload) -> Value {
    payload.to_json_value().unwrap_or_else(|_| {
        Value::String(format!(
            "<{} bytes of {}, not JSON>",
            payload.len(),
            payload.encoding.as_str()
        ))
    })
}

fn opt_payload(value: Option<&Payload>) -> Value {
    value.map_or(Value::Null, payload)
}

/// A time as RFC 3339 text with milliseconds (UTC).
pub fn time(time: SystemTime) -> Value {
    Value::String(humantime::format_rfc3339_millis(time).to_string())
}

fn opt_time(value: Option<SystemTime>) -> Value {
    value.map_or(Value::Null, time)
}

fn millis(duration: Duration) -> Value {
    json!(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn application(a: &ApplicationFailure) -> Value {
    json!({
        "kind": "application",
        "type": a.error_type,
        "message": a.message,
        "non_retryable": a.non_retryable,
        "details": opt_payload(a.details.as_ref()),
    })
}

/// A failure: its kind, then the kind's fields.
pub fn failure(failure: &Failure) -> Value {
    match failure {
        Failure::Application(a) => application(a),
        Failure::Timeout(t) => json!({
            "kind": "timeout",
            "timeout": format!("{:?}", t.kind),
            "last_heartbeat_details": opt_payload(t.last_heartbeat_details.as_ref()),
        }),
        Failure::Canceled(c) => json!({
            "kind": "canceled",
            "details": opt_payload(c.details.as_ref()),
        }),
        other => json!({ "kind": "other", "message": other.to_string() }),
    }
}

/// The failure of an activity a caller sees (SEMANTICS 4).
pub fn activity_failure(f: &ActivityFailure) -> Value {
    json!({
        "activity_type": f.activity_type,
        "activity_id": f.activity_id,
        "attempts": f.attempts,
        "retry_state": format!("{:?}", f.retry_state),
        "cause": failure(&f.cause),
    })
}

/// The failure of a workflow run.
pub fn workflow_failure(f: &WorkflowFailure) -> Value {
    match f {
        WorkflowFailure::Application(a) => application(a),
        WorkflowFailure::Activity(a) => json!({
            "kind": "activity",
            "activity": activity_failure(a),
        }),
        other => json!({ "kind": "other", "message": other.to_string() }),
    }
}

/// The outcome of a workflow run: its status and result or failure.
pub fn workflow_outcome(outcome: &WorkflowOutcome) -> Value {
    match outcome {
        WorkflowOutcome::Completed(result) => {
            json!({ "status": "COMPLETED", "result": payload(result) })
        }
        WorkflowOutcome::Failed(f) => json!({ "status": "FAILED", "failure": workflow_failure(f) }),
        WorkflowOutcome::Canceled => json!({ "status": "CANCELED" }),
        WorkflowOutcome::Terminated { reason, new_run_id } => match new_run_id {
            Some(new_run_id) => {
                json!({ "status": "TERMINATED", "reason": reason, "new_run_id": new_run_id })
            }
            None => json!({ "status": "TERMINATED", "reason": reason }),
        },
        WorkflowOutcome::ContinuedAsNew { new_run_id } => {
            json!({ "status": "CONTINUED_AS_NEW", "new_run_id": new_run_id })
        }
        WorkflowOutcome::TimedOut { timeout } => {
            json!({ "status": "TIMED_OUT", "timeout": timeout.to_string() })
        }
    }
}

/// The outcome of an activity execution: its status and result or failure.
pub fn execution_outcome(outcome: &ExecutionOutcome) -> Value {
    match outcome {
        ExecutionOutcome::Completed(result) => {
            json!({ "status": "COMPLETED", "result": payload(result) })
        }
        ExecutionOutcome::Failed(f) => {
            json!({ "status": "FAILED", "failure": activity_failure(f) })
        }
    }
}

fn local_outcome(outcome: &LocalActivityOutcome) -> Value {
    match outcome {
        LocalActivityOutcome::Completed(result) => {
            json!({ "status": "COMPLETED", "result": payload(result) })
        }
        LocalActivityOutcome::Failed(f) => {
            json!({ "status": "FAILED", "failure": activity_failure(f) })
        }
        LocalActivityOutcome::Backoff {
            attempt,
            failure: f,
            backoff,
        } => json!({
            "status": "BACKOFF",
            "attempt": attempt,
            "failure": failure(f),
            "backoff_ms": u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// A workflow run's description.
pub fn workflow_description(d: &WorkflowDescription) -> Value {
    let mut value = json!({
        "workflow_id": d.workflow_id,
        "run_id": d.run_id,
        "workflow_type": d.workflow_type,
        "task_queue": d.task_queue,
        "state": d.state.as_str(),
        "start_time": time(d.start_time),
        "close_time": opt_time(d.close_time),
        "cancel_requested": d.cancel_requested,
        "history_length": d.history_length,
        "outcome": d.outcome.as_ref().map_or(Value::Null, workflow_outcome),
        "task_failures": d.task_failures,
        "last_task_failure": d.last_task_failure,
    });
    // Only runs started with timeouts have deadlines.
    if let Some(deadline) = d.run_deadline {
        value["run_deadline"] = time(deadline);
    }
    if let Some(deadline) = d.execution_deadline {
        value["execution_deadline"] = time(deadline);
    }
    value
}

/// One run of a workflow list.
pub fn workflow_summary(s: &WorkflowSummary) -> Value {
    json!({
        "workflow_id": s.workflow_id,
        "run_id": s.run_id,
        "workflow_type": s.workflow_type,
        "task_queue": s.task_queue,
        "state": s.state.as_str(),
        "start_time": time(s.start_time),
        "close_time": opt_time(s.close_time),
    })
}

/// An event as one JSON object: id, time, event name, then the kind's fields.
pub fn event(e: &HistoryEvent) -> Value {
    let details = match &e.kind {
        EventKind::WorkflowStarted {
            workflow_type,
            task_queue,
            input,
            timeouts,
            original_run_id,
            parent,
        } => {
            let mut started = json!({
                "workflow_type": workflow_type,
                "task_queue": task_queue,
                "input": input.iter().map(payload).collect::<Vec<_>>(),
            });
            if let Some(run) = timeouts.run {
                started["run_timeout_ms"] = json!(millis(run));
            }
            if let Some(execution) = timeouts.execution {
                started["execution_timeout_ms"] = json!(millis(execution));
            }
            if let Some(deadline) = timeouts.execution_deadline {
                started["execution_deadline"] = time(deadline);
            }
            if let Some(p) = parent {
                started["parent"] = json!({
                    "workflow_id": p.workflow_id,
                    "run_id": p.run_id,
                    "seq": p.seq,
                });
            }
            if let Some(original) = original_run_id {
                started["original_run_id"] = json!(original);
            }
            started
        }
        EventKind::WorkflowTimedOut { timeout } => json!({ "timeout": timeout.to_string() }),
        EventKind::WorkflowTaskStarted { identity }
        | EventKind::WorkflowTaskCompleted { identity } => json!({ "identity": identity }),
        EventKind::WorkflowTaskFailed { message } => json!({ "message": message }),
        EventKind::ActivityScheduled {
            seq,
            activity_id,
            activity_type,
        } => json!({ "seq": seq, "activity_id": activity_id, "activity_type": activity_type }),
        EventKind::ActivityCompleted { seq, result } => {
            json!({ "seq": seq, "result": payload(result) })
        }
        EventKind::ActivityFailed { seq, failure } => {
            json!({ "seq": seq, "failure": activity_failure(failure) })
        }
        EventKind::ActivityCancelRequested { seq }
        | EventKind::TimerFired { seq }
        | EventKind::TimerCanceled { seq } => json!({ "seq": seq }),
        EventKind::TimerStarted { seq, duration } => {
            json!({ "seq": seq, "duration_ms": millis(*duration) })
        }
        EventKind::LocalActivityRecorded {
            seq,
            activity_type,
            outcome,
        } => json!({
            "seq": seq,
            "activity_type": activity_type,
            "outcome": local_outcome(outcome),
        }),
        EventKind::WorkflowCompleted { result } => json!({ "result": payload(result) }),
        EventKind::WorkflowFailed { failure } => json!({ "failure": workflow_failure(failure) }),
        EventKind::WorkflowTerminated { reason, identity } => {
            json!({ "reason": reason, "identity": identity })
        }
        EventKind::WorkflowContinuedAsNew { new_run_id, input } => json!({
            "new_run_id": new_run_id,
            "input": input.iter().map(payload).collect::<Vec<_>>(),
        }),
        EventKind::HistorySizeWarning {
            events,
            bytes,
            max_events,
            max_bytes,
        } => json!({
            "events": events,
            "bytes": bytes,
            "max_events": max_events,
            "max_bytes": max_bytes,
        }),
        EventKind::WorkflowSignaled {
            signal_name,
            input,
            identity,
        } => json!({
            "signal_name": signal_name,
            "input": payload(input),
            "identity": identity,
        }),
        EventKind::StartChildWorkflowInitiated {
            seq,
            workflow_id,
            workflow_type,
            parent_close_policy,
        } => json!({
            "seq": seq,
            "workflow_id": workflow_id,
            "workflow_type": workflow_type,
            "parent_close_policy": parent_close_policy.as_str(),
        }),
        EventKind::ChildWorkflowStarted {
            seq,
            workflow_id,
            run_id,
        } => json!({ "seq": seq, "workflow_id": workflow_id, "run_id": run_id }),
        EventKind::StartChildWorkflowFailed {
            seq,
            workflow_id,
            message,
        } => json!({ "seq": seq, "workflow_id": workflow_id, "message": message }),
        EventKind::ChildWorkflowCompleted { seq, result } => {
            json!({ "seq": seq, "result": payload(result) })
        }
        EventKind::ChildWorkflowFailed { seq, failure } => {
            json!({ "seq": seq, "failure": workflow_failure(failure) })
        }
        EventKind::ChildWorkflowTerminated { seq, reason } => {
            json!({ "seq": seq, "reason": reason })
        }
        EventKind::ChildWorkflowTimedOut { seq, timeout } => {
            json!({ "seq": seq, "timeout": timeout.to_string() })
        }
        EventKind::ChildWorkflowCanceled { seq }
        | EventKind::ChildWorkflowCancelRequested { seq } => json!({ "seq": seq }),
        _ => json!({}),
    };
    let mut object = Map::new();
    object.insert("event_id".into(), json!(e.event_id));
    object.insert("time".into(), time(e.time));
    object.insert("event".into(), json!(e.kind.name()));
    if let Value::Object(fields) = details {
        object.extend(fields);
    }
    Value::Object(object)
}

/// Validated activity options, durations in milliseconds.
pub fn options(o: &ValidatedOptions) -> Value {
    let retry = &o.retry_policy;
    json!({
        "task_queue": o.task_queue,
        "schedule_to_close_ms": o.schedule_to_close.map(millis),
        "start_to_close_ms": millis(o.start_to_close),
        "schedule_to_start_ms": o.schedule_to_start.map(millis),
        "heartbeat_timeout_ms": o.heartbeat_timeout.map(millis),
        "retry_policy": {
            "initial_interval_ms": millis(retry.initial_interval),
            "backoff_coefficient": retry.backoff_coefficient,
            "maximum_interval_ms": millis(retry.maximum_interval),
            "maximum_attempts": retry.maximum_attempts,
            "non_retryable_error_types": retry.non_retryable_error_types,
        },
    })
}

/// An activity execution's description.
pub fn execution_description(d: &ExecutionDescription) -> Value {
    json!({
        "activity_id": d.execution.activity_id,
        "workflow_id": d.execution.workflow_id,
        "workflow_run_id": d.execution.workflow_run_id,
        "activity_type": d.activity_type,
        "state": d.state.as_str(),
        "attempt": d.attempt,
        "options": options(&d.options),
        "scheduled_time": time(d.scheduled_time),
        "current_attempt_scheduled_time": time(d.current_attempt_scheduled_time),
        "started_time": opt_time(d.started_time),
        "worker_identity": d.worker_identity,
        "last_heartbeat_time": opt_time(d.last_heartbeat_time),
        "heartbeat_details": opt_payload(d.heartbeat_details.as_ref()),
        "last_failure": d.last_failure.as_ref().map_or(Value::Null, failure),
        "retry_state": d.retry_state.map(|r| format!("{r:?}")),
        "cancel_requested": d.cancel_requested,
        "close_time": opt_time(d.close_time),
        "outcome": d.outcome.as_ref().map_or(Value::Null, execution_outcome),
    })
}

/// A task queue: backlog, rate limit and recent pollers.
pub fn task_queue(q: &TaskQueueDescription) -> Value {
    json!({
        "name": q.name,
        "backlog": q.backlog,
        "dispatchable": q.dispatchable,
        "rate_limit": q.rate_limit,
        "pollers": q.pollers.iter().map(|p| json!({
            "identity": p.identity,
            "last_poll_time": time(p.last_poll_time),
        })).collect::<Vec<_>>(),
    })
}

/// A type a worker registered, with its JSON Schemas.
pub fn registered_type(t: &RegisteredType) -> Value {
    json!({
        "kind": t.kind.as_str(),
        "name": t.name,
        "task_queue": t.task_queue,
        "arguments": t.arguments,
        "input_schema": t.input_schema,
        "output_schema": t.output_schema,
        "last_registered_time": time(t.last_registered_time),
        "last_identity": t.last_identity,
    })
}
