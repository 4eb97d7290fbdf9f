//! What the CLI prints: JSON views of the model (payloads as their JSON values,
//! times as RFC 3339, durations in milliseconds) and plain-text tables.
//!
//! The JSON views are the `--json` output, and the tables are drawn from the
//! same views, so both show the same facts.

use std::{
    borrow::Cow,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use activity_core::{
    failure::{ActivityFailure, Failure},
    options::ValidatedOptions,
    protocol::{ExecutionDescription, ExecutionOutcome, RegisteredType, TaskQueueDescription},
    workflow::history::{
        EventKind, HistoryEvent, LocalActivityOutcome, WorkflowDescription, WorkflowFailure,
        WorkflowOutcome, WorkflowSummary,
    },
    Payload, ProtocolError,
};
use serde_json::{json, Map, Value};

pub(crate) fn payload(payload: &Payload) -> Value {
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

pub(crate) fn time(time: SystemTime) -> Value {
    Value::String(humantime::format_rfc3339_millis(time).to_string())
}

fn opt_time(value: Option<SystemTime>) -> Value {
    value.map_or(Value::Null, time)
}

fn millis(duration: Duration) -> Value {
    json!(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn failure(failure: &Failure) -> Value {
    match failure {
        Failure::Application(a) => json!({
            "kind": "application",
            "type": a.error_type,
            "message": a.message,
            "non_retryable": a.non_retryable,
            "details": opt_payload(a.details.as_ref()),
        }),
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

pub(crate) fn activity_failure(f: &ActivityFailure) -> Value {
    json!({
        "activity_type": f.activity_type,
        "activity_id": f.activity_id,
        "attempts": f.attempts,
        "retry_state": format!("{:?}", f.retry_state),
        "cause": failure(&f.cause),
    })
}

pub(crate) fn workflow_failure(f: &WorkflowFailure) -> Value {
    match f {
        WorkflowFailure::Application(a) => json!({
            "kind": "application",
            "type": a.error_type,
            "message": a.message,
            "non_retryable": a.non_retryable,
            "details": opt_payload(a.details.as_ref()),
        }),
        WorkflowFailure::Activity(a) => json!({
            "kind": "activity",
            "activity": activity_failure(a),
        }),
        other => json!({ "kind": "other", "message": other.to_string() }),
    }
}

pub(crate) fn workflow_outcome(outcome: &WorkflowOutcome) -> Value {
    match outcome {
        WorkflowOutcome::Completed(result) => {
            json!({ "status": "COMPLETED", "result": payload(result) })
        }
        WorkflowOutcome::Failed(f) => json!({ "status": "FAILED", "failure": workflow_failure(f) }),
        WorkflowOutcome::Canceled => json!({ "status": "CANCELED" }),
        WorkflowOutcome::Terminated { reason } => {
            json!({ "status": "TERMINATED", "reason": reason })
        }
    }
}

pub(crate) fn execution_outcome(outcome: &ExecutionOutcome) -> Value {
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

pub(crate) fn workflow_description(d: &WorkflowDescription) -> Value {
    json!({
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
    })
}

pub(crate) fn workflow_summary(s: &WorkflowSummary) -> Value {
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
pub(crate) fn event(e: &HistoryEvent) -> Value {
    let details = match &e.kind {
        EventKind::WorkflowStarted {
            workflow_type,
            task_queue,
            input,
        } => json!({
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "input": input.iter().map(payload).collect::<Vec<_>>(),
        }),
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

pub(crate) fn options(o: &ValidatedOptions) -> Value {
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

pub(crate) fn execution_description(d: &ExecutionDescription) -> Value {
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

pub(crate) fn task_queue(q: &TaskQueueDescription) -> Value {
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

pub(crate) fn registered_type(t: &RegisteredType) -> Value {
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

/// The `kind` of a refused call in `--json` errors: the error's variant, in
/// snake case.
pub(crate) fn protocol_error_kind(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::InvalidOptions(_) => "invalid_options",
        ProtocolError::InvalidArgument { .. } => "invalid_argument",
        ProtocolError::PayloadTooLarge { .. } => "payload_too_large",
        ProtocolError::InvalidToken { .. } => "invalid_token",
        ProtocolError::NotFound { .. } => "not_found",
        ProtocolError::AlreadyExists { .. } => "already_exists",
        ProtocolError::AlreadyClosed { .. } => "already_closed",
        ProtocolError::Unavailable { .. } => "unavailable",
        ProtocolError::Unsupported { .. } => "unsupported",
        ProtocolError::Internal { .. } => "internal",
        _ => "other",
    }
}

/// The fields a refused call names, for `--json` errors (the message has them
/// too, in words).
pub(crate) fn protocol_error_fields(error: &ProtocolError) -> Map<String, Value> {
    let fields = match error {
        ProtocolError::InvalidOptions(options) => json!({
            "problems": options.problems.iter().map(|p| json!({
                "field": p.field,
                "rule": p.rule,
            })).collect::<Vec<_>>(),
        }),
        ProtocolError::InvalidArgument { field, .. } => json!({ "field": field }),
        ProtocolError::PayloadTooLarge { what, size, limit } => {
            json!({ "what": what, "size": size, "limit": limit })
        }
        ProtocolError::NotFound { what } | ProtocolError::AlreadyExists { what } => {
            json!({ "what": what })
        }
        ProtocolError::AlreadyClosed { what, reason } => {
            json!({ "what": what, "reason": reason.to_string() })
        }
        _ => json!({}),
    };
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `text` made safe for a terminal: control characters (C0, DEL, C1: the
/// start of every escape sequence), bidirectional overrides and invisible
/// formatting characters are written as Rust escapes (`\u{1b}`, `\n`), so that a
/// name or payload cannot move the cursor, recolour, retitle or reorder what the
/// terminal shows. With `keep_newlines`, `\n` stays a line break (messages of
/// several lines); table cells escape it too.
pub(crate) fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value as a table cell: strings bare, null as `-`, the rest as compact JSON.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the field at `path` holds a payload (shown whole, as JSON).
fn is_payload(path: &str) -> bool {
    const PAYLOADS: [&str; 5] = [
        "result",
        "details",
        "heartbeat_details",
        "last_heartbeat_details",
        "input",
    ];
    let last = path.rsplit('.').next().unwrap_or(path);
    PAYLOADS.contains(&last)
}

/// Two columns, `key  value`, one line per field of a JSON object (nested
/// objects flattened as `parent.child`).
pub(crate) fn fields(value: &Value) -> String {
    fn collect(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) if !map.is_empty() && !is_payload(prefix) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    collect(&name, child, rows);
                }
            }
            other => rows.push(vec![prefix.to_owned(), cell(other)]),
        }
    }
    let mut rows = Vec::new();
    collect("", value, &mut rows);
    table(&[], &rows)
}

/// A plain-text table: columns padded to their widest cell, the header (if
/// any) first.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain(std::iter::once(header.len()))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0; columns];
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|text| escape(text, false)).collect())
        .collect();
    let header: Vec<Cow<'_, str>> = header.iter().map(|h| Cow::Borrowed(h.as_str())).collect();
    for row in std::iter::once(&header).chain(&rows) {
        for (i, text) in row.iter().enumerate() {
            widths[i] = widths[i].max(text.chars().count());
        }
    }
    let mut out = String::new();
    let lines = (!header.is_empty())
        .then_some(&header)
        .into_iter()
        .chain(&rows);
    for row in lines {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(text);
            } else {
                let _ = write!(line, "{text:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_fields_flatten_objects() {
        let text = table(
            &["ID", "EVENT"],
            &[
                vec!["1".into(), "WorkflowStarted".into()],
                vec!["10".into(), "X".into()],
            ],
        );
        assert_eq!(text, "ID  EVENT\n1   WorkflowStarted\n10  X\n");
        let text = fields(&json!({"a": 1, "b": {"c": null, "d": "x"}, "result": {"k": 1}}));
        assert_eq!(text, "a       1\nb.c     -\nb.d     x\nresult  {\"k\":1}\n");
    }

    #[test]
    fn tables_escape_control_characters_and_terminal_sequences() {
        let evil = "id\u{1b}[2J\u{1b}]0;owned\u{7}\r\nnext\u{9b}31m\u{202e}gnp.exe\u{200b}";
        let text = table(&["ID", "TYPE"], &[vec![evil.into(), "ok ✓".into()]]);
        assert_eq!(
            text,
            "ID                                                                      TYPE\n\
             id\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\r\\nnext\\u{9b}31m\\u{202e}gnp.exe\\u{200b}  ok ✓\n"
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        // A payload's strings are JSON-escaped in cells, and C1/bidi characters too.
        let payload = json!({"name": "a\u{1b}b\u{202e}"});
        assert_eq!(
            escape(&cell(&payload), false),
            r#"{"name":"a\u001bb\u{202e}"}"#
        );
        // Messages keep their line breaks, nothing else.
        assert_eq!(escape("one\ntwo\u{1b}", true), "one\ntwo\\u{1b}");
        assert!(matches!(escape("plain ünïcode", false), Cow::Borrowed(_)));
    }

    #[test]
    fn payloads_show_as_json_and_non_json_is_named() {
        assert_eq!(
            payload(&Payload::json(&[1, 2]).expect("json")),
            json!([1, 2])
        );
        let garbled = Payload {
            data: vec![0xff].into(),
            ..Payload::json(&0).expect("json")
        };
        assert!(cell(&payload(&garbled)).contains("not JSON"));
    }
}
