//! Conversions of the workflow types (`activity_core::workflow::history`): refs,
//! states, outcomes, failures, history events, commands, tasks and descriptions.
//!
//! `EventKind`, `Command` and `WorkflowFailure` are `#[non_exhaustive]`: a variant
//! added to the model after this crate was written cannot be encoded, and is
//! reported as [`ProtocolError::Internal`] naming it, never sent half-encoded.

use activity_core::{
    context::TaskToken,
    protocol::ProtocolError,
    workflow::history::{
        Command, EventKind, HistoryEvent, ListWorkflowsRequest, LocalActivityOutcome,
        PollWorkflowTaskRequest, StartWorkflowRequest, WorkflowDescription, WorkflowFailure,
        WorkflowOutcome, WorkflowRef, WorkflowState, WorkflowSummary, WorkflowTask,
    },
};

use super::{
    activity_failure_from_wire, activity_failure_to_wire, application_from_wire,
    application_to_wire, duration_from_wire, duration_to_wire, failure_from_wire, failure_to_wire,
    field, options_from_wire_at, options_to_wire, payload_from_wire, payload_to_wire,
    payloads_from_wire, payloads_to_wire, time_from_wire, time_to_wire, Wire, WireError,
};
use crate::proto as pb;

fn cannot_carry(what: &str, value: &dyn std::fmt::Debug) -> ProtocolError {
    ProtocolError::Internal {
        message: format!(
            "the gRPC transport cannot carry this {what} yet ({value:?}): update activity-remote"
        ),
    }
}

fn required_payload(payload: Option<pb::Payload>, name: &str) -> Wire<activity_core::Payload> {
    payload_from_wire(payload.ok_or_else(|| WireError::missing(name))?, name)
}

// ------------------------------------------------------------------ refs and states

pub(crate) fn workflow_ref_to_wire(workflow: &WorkflowRef) -> pb::WorkflowRef {
    pb::WorkflowRef {
        workflow_id: workflow.workflow_id.clone(),
        run_id: workflow.run_id.clone(),
    }
}

pub(crate) fn workflow_ref_from_wire(
    workflow: Option<pb::WorkflowRef>,
    name: &str,
) -> Wire<WorkflowRef> {
    let workflow = workflow.ok_or_else(|| WireError::missing(name))?;
    let mut model = WorkflowRef::latest(workflow.workflow_id);
    model.run_id = workflow.run_id;
    Ok(model)
}

pub(crate) fn workflow_state_to_wire(state: WorkflowState) -> pb::WorkflowState {
    match state {
        WorkflowState::Running => pb::WorkflowState::Running,
        WorkflowState::Completed => pb::WorkflowState::Completed,
        WorkflowState::Failed => pb::WorkflowState::Failed,
        WorkflowState::Canceled => pb::WorkflowState::Canceled,
    }
}

pub(crate) fn workflow_state_from_wire(value: i32, name: &str) -> Wire<WorkflowState> {
    match pb::WorkflowState::try_from(value) {
        Ok(pb::WorkflowState::Running) => Ok(WorkflowState::Running),
        Ok(pb::WorkflowState::Completed) => Ok(WorkflowState::Completed),
        Ok(pb::WorkflowState::Failed) => Ok(WorkflowState::Failed),
        Ok(pb::WorkflowState::Canceled) => Ok(WorkflowState::Canceled),
        Ok(pb::WorkflowState::Unspecified) | Err(_) => Err(WireError::new(
            name,
            format!("is not a known workflow state: {value}"),
        )),
    }
}

// ------------------------------------------------------------------ outcomes and failures

fn local_outcome_to_wire(
    outcome: &LocalActivityOutcome,
) -> Result<pb::LocalActivityOutcome, ProtocolError> {
    use pb::local_activity_outcome::Outcome;
    let outcome = match outcome {
        LocalActivityOutcome::Completed(payload) => Outcome::Completed(payload_to_wire(payload)),
        LocalActivityOutcome::Failed(failure) => {
            Outcome::Failed(activity_failure_to_wire(failure)?)
        }
        LocalActivityOutcome::Backoff {
            attempt,
            failure,
            backoff,
        } => Outcome::Backoff(pb::LocalActivityBackoff {
            attempt: *attempt,
            failure: Some(failure_to_wire(failure)?),
            backoff_ms: duration_to_wire(*backoff),
        }),
    };
    Ok(pb::LocalActivityOutcome {
        outcome: Some(outcome),
    })
}

fn local_outcome_from_wire(
    outcome: Option<pb::LocalActivityOutcome>,
    name: &str,
) -> Wire<LocalActivityOutcome> {
    use pb::local_activity_outcome::Outcome;
    match outcome.and_then(|o| o.outcome) {
        Some(Outcome::Completed(payload)) => Ok(LocalActivityOutcome::Completed(
            payload_from_wire(payload, &field(name, "completed"))?,
        )),
        Some(Outcome::Failed(failure)) => Ok(LocalActivityOutcome::Failed(
            activity_failure_from_wire(failure, &field(name, "failed"))?,
        )),
        Some(Outcome::Backoff(backoff)) => Ok(LocalActivityOutcome::Backoff {
            attempt: backoff.attempt,
            failure: failure_from_wire(backoff.failure, &field(name, "backoff.failure"))?,
            backoff: duration_from_wire(backoff.backoff_ms, &field(name, "backoff.backoff_ms"))?,
        }),
        None => Err(WireError::missing(name)),
    }
}

pub(crate) fn workflow_failure_to_wire(
    failure: &WorkflowFailure,
) -> Result<pb::WorkflowFailure, ProtocolError> {
    use pb::workflow_failure::Failure;
    let failure = match failure {
        WorkflowFailure::Application(a) => Failure::Application(application_to_wire(a)),
        WorkflowFailure::Activity(a) => Failure::Activity(activity_failure_to_wire(a)?),
        other => return Err(cannot_carry("workflow failure", other)),
    };
    Ok(pb::WorkflowFailure {
        failure: Some(failure),
    })
}

pub(crate) fn workflow_failure_from_wire(
    failure: Option<pb::WorkflowFailure>,
    name: &str,
) -> Wire<WorkflowFailure> {
    use pb::workflow_failure::Failure;
    match failure.and_then(|f| f.failure) {
        Some(Failure::Application(a)) => Ok(WorkflowFailure::Application(application_from_wire(
            Some(a),
            &field(name, "application"),
        )?)),
        Some(Failure::Activity(a)) => Ok(WorkflowFailure::Activity(activity_failure_from_wire(
            a,
            &field(name, "activity"),
        )?)),
        None => Err(WireError::missing(name)),
    }
}

pub(crate) fn workflow_outcome_to_wire(
    outcome: &WorkflowOutcome,
) -> Result<pb::WorkflowOutcome, ProtocolError> {
    use pb::workflow_outcome::Outcome;
    let outcome = match outcome {
        WorkflowOutcome::Completed(payload) => Outcome::Completed(payload_to_wire(payload)),
        WorkflowOutcome::Failed(failure) => Outcome::Failed(workflow_failure_to_wire(failure)?),
        WorkflowOutcome::Canceled => Outcome::Canceled(pb::workflow_outcome::Canceled {}),
    };
    Ok(pb::WorkflowOutcome {
        outcome: Some(outcome),
    })
}

pub(crate) fn workflow_outcome_from_wire(
    outcome: pb::WorkflowOutcome,
    name: &str,
) -> Wire<WorkflowOutcome> {
    use pb::workflow_outcome::Outcome;
    match outcome.outcome {
        Some(Outcome::Completed(payload)) => Ok(WorkflowOutcome::Completed(payload_from_wire(
            payload,
            &field(name, "completed"),
        )?)),
        Some(Outcome::Failed(failure)) => Ok(WorkflowOutcome::Failed(workflow_failure_from_wire(
            Some(failure),
            &field(name, "failed"),
        )?)),
        Some(Outcome::Canceled(_)) => Ok(WorkflowOutcome::Canceled),
        None => Err(WireError::missing(name)),
    }
}

// ------------------------------------------------------------------ history

fn event_kind_to_wire(kind: &EventKind) -> Result<pb::event_kind::Kind, ProtocolError> {
    use pb::event_kind::{self as k, Kind};
    Ok(match kind {
        EventKind::WorkflowStarted {
            workflow_type,
            task_queue,
            input,
        } => Kind::WorkflowStarted(k::WorkflowStarted {
            workflow_type: workflow_type.clone(),
            task_queue: task_queue.clone(),
            input: payloads_to_wire(input),
        }),
        EventKind::WorkflowTaskScheduled => {
            Kind::WorkflowTaskScheduled(k::WorkflowTaskScheduled {})
        }
        EventKind::WorkflowTaskStarted { identity } => {
            Kind::WorkflowTaskStarted(k::WorkflowTaskStarted {
                identity: identity.clone(),
            })
        }
        EventKind::WorkflowTaskCompleted { identity } => {
            Kind::WorkflowTaskCompleted(k::WorkflowTaskCompleted {
                identity: identity.clone(),
            })
        }
        EventKind::WorkflowTaskFailed { message } => {
            Kind::WorkflowTaskFailed(k::WorkflowTaskFailed {
                message: message.clone(),
            })
        }
        EventKind::WorkflowTaskTimedOut => Kind::WorkflowTaskTimedOut(k::WorkflowTaskTimedOut {}),
        EventKind::ActivityScheduled {
            seq,
            activity_id,
            activity_type,
        } => Kind::ActivityScheduled(k::ActivityScheduled {
            seq: *seq,
            activity_id: activity_id.clone(),
            activity_type: activity_type.clone(),
        }),
        EventKind::ActivityCompleted { seq, result } => {
            Kind::ActivityCompleted(k::ActivityCompleted {
                seq: *seq,
                result: Some(payload_to_wire(result)),
            })
        }
        EventKind::ActivityFailed { seq, failure } => Kind::ActivityFailed(k::ActivityFailed {
            seq: *seq,
            failure: Some(activity_failure_to_wire(failure)?),
        }),
        EventKind::ActivityCancelRequested { seq } => {
            Kind::ActivityCancelRequested(k::ActivityCancelRequested { seq: *seq })
        }
        EventKind::TimerStarted { seq, duration } => Kind::TimerStarted(k::TimerStarted {
            seq: *seq,
            duration_ms: duration_to_wire(*duration),
        }),
        EventKind::TimerFired { seq } => Kind::TimerFired(k::TimerFired { seq: *seq }),
        EventKind::TimerCanceled { seq } => Kind::TimerCanceled(k::TimerCanceled { seq: *seq }),
        EventKind::LocalActivityRecorded {
            seq,
            activity_type,
            outcome,
        } => Kind::LocalActivityRecorded(k::LocalActivityRecorded {
            seq: *seq,
            activity_type: activity_type.clone(),
            outcome: Some(local_outcome_to_wire(outcome)?),
        }),
        EventKind::WorkflowCancelRequested => {
            Kind::WorkflowCancelRequested(k::WorkflowCancelRequested {})
        }
        EventKind::WorkflowCompleted { result } => Kind::WorkflowCompleted(k::WorkflowCompleted {
            result: Some(payload_to_wire(result)),
        }),
        EventKind::WorkflowFailed { failure } => Kind::WorkflowFailed(k::WorkflowFailed {
            failure: Some(workflow_failure_to_wire(failure)?),
        }),
        EventKind::WorkflowCanceled => Kind::WorkflowCanceled(k::WorkflowCanceled {}),
        other => return Err(cannot_carry("history event", other)),
    })
}

fn event_kind_from_wire(kind: Option<pb::EventKind>, name: &str) -> Wire<EventKind> {
    use pb::event_kind::Kind;
    let kind = kind
        .and_then(|k| k.kind)
        .ok_or_else(|| WireError::missing(name))?;
    Ok(match kind {
        Kind::WorkflowStarted(e) => EventKind::WorkflowStarted {
            workflow_type: e.workflow_type,
            task_queue: e.task_queue,
            input: payloads_from_wire(e.input, &field(name, "workflow_started.input"))?,
        },
        Kind::WorkflowTaskScheduled(_) => EventKind::WorkflowTaskScheduled,
        Kind::WorkflowTaskStarted(e) => EventKind::WorkflowTaskStarted {
            identity: e.identity,
        },
        Kind::WorkflowTaskCompleted(e) => EventKind::WorkflowTaskCompleted {
            identity: e.identity,
        },
        Kind::WorkflowTaskFailed(e) => EventKind::WorkflowTaskFailed { message: e.message },
        Kind::WorkflowTaskTimedOut(_) => EventKind::WorkflowTaskTimedOut,
        Kind::ActivityScheduled(e) => EventKind::ActivityScheduled {
            seq: e.seq,
            activity_id: e.activity_id,
            activity_type: e.activity_type,
        },
        Kind::ActivityCompleted(e) => EventKind::ActivityCompleted {
            seq: e.seq,
            result: required_payload(e.result, &field(name, "activity_completed.result"))?,
        },
        Kind::ActivityFailed(e) => {
            let failure_field = field(name, "activity_failed.failure");
            let failure = e
                .failure
                .ok_or_else(|| WireError::missing(&failure_field))?;
            EventKind::ActivityFailed {
                seq: e.seq,
                failure: activity_failure_from_wire(failure, &failure_field)?,
            }
        }
        Kind::ActivityCancelRequested(e) => EventKind::ActivityCancelRequested { seq: e.seq },
        Kind::TimerStarted(e) => EventKind::TimerStarted {
            seq: e.seq,
            duration: duration_from_wire(e.duration_ms, &field(name, "timer_started.duration_ms"))?,
        },
        Kind::TimerFired(e) => EventKind::TimerFired { seq: e.seq },
        Kind::TimerCanceled(e) => EventKind::TimerCanceled { seq: e.seq },
        Kind::LocalActivityRecorded(e) => EventKind::LocalActivityRecorded {
            seq: e.seq,
            activity_type: e.activity_type,
            outcome: local_outcome_from_wire(
                e.outcome,
                &field(name, "local_activity_recorded.outcome"),
            )?,
        },
        Kind::WorkflowCancelRequested(_) => EventKind::WorkflowCancelRequested,
        Kind::WorkflowCompleted(e) => EventKind::WorkflowCompleted {
            result: required_payload(e.result, &field(name, "workflow_completed.result"))?,
        },
        Kind::WorkflowFailed(e) => EventKind::WorkflowFailed {
            failure: workflow_failure_from_wire(
                e.failure,
                &field(name, "workflow_failed.failure"),
            )?,
        },
        Kind::WorkflowCanceled(_) => EventKind::WorkflowCanceled,
    })
}

pub(crate) fn event_to_wire(event: &HistoryEvent) -> Result<pb::HistoryEvent, ProtocolError> {
    Ok(pb::HistoryEvent {
        event_id: event.event_id,
        time_ms: time_to_wire(event.time),
        kind: Some(pb::EventKind {
            kind: Some(event_kind_to_wire(&event.kind)?),
        }),
    })
}

pub(crate) fn event_from_wire(event: pb::HistoryEvent, name: &str) -> Wire<HistoryEvent> {
    Ok(HistoryEvent::new(
        event.event_id,
        time_from_wire(event.time_ms),
        event_kind_from_wire(event.kind, &field(name, "kind"))?,
    ))
}

pub(crate) fn history_to_wire(
    events: &[HistoryEvent],
) -> Result<Vec<pb::HistoryEvent>, ProtocolError> {
    events.iter().map(event_to_wire).collect()
}

pub(crate) fn history_from_wire(
    events: Vec<pb::HistoryEvent>,
    name: &str,
) -> Wire<Vec<HistoryEvent>> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| event_from_wire(e, &format!("{name}[{i}]")))
        .collect()
}

// ------------------------------------------------------------------ commands

pub(crate) fn command_to_wire(command: &Command) -> Result<pb::Command, ProtocolError> {
    use pb::command::{self as c, Command as Wire};
    let command = match command {
        Command::ScheduleActivity {
            seq,
            activity_id,
            activity_type,
            input,
            options,
        } => Wire::ScheduleActivity(c::ScheduleActivity {
            seq: *seq,
            activity_id: activity_id.clone(),
            activity_type: activity_type.clone(),
            input: payloads_to_wire(input),
            options: Some(options_to_wire(options)),
        }),
        Command::RequestCancelActivity { seq } => {
            Wire::RequestCancelActivity(c::RequestCancelActivity { seq: *seq })
        }
        Command::StartTimer { seq, duration } => Wire::StartTimer(c::StartTimer {
            seq: *seq,
            duration_ms: duration_to_wire(*duration),
        }),
        Command::CancelTimer { seq } => Wire::CancelTimer(c::CancelTimer { seq: *seq }),
        Command::RecordLocalActivity {
            seq,
            activity_type,
            outcome,
        } => Wire::RecordLocalActivity(c::RecordLocalActivity {
            seq: *seq,
            activity_type: activity_type.clone(),
            outcome: Some(local_outcome_to_wire(outcome)?),
        }),
        Command::CompleteWorkflow { result } => Wire::CompleteWorkflow(c::CompleteWorkflow {
            result: Some(payload_to_wire(result)),
        }),
        Command::FailWorkflow { failure } => Wire::FailWorkflow(c::FailWorkflow {
            failure: Some(workflow_failure_to_wire(failure)?),
        }),
        Command::CancelWorkflow => Wire::CancelWorkflow(c::CancelWorkflow {}),
        other => return Err(cannot_carry("command", other)),
    };
    Ok(pb::Command {
        command: Some(command),
    })
}

pub(crate) fn command_from_wire(command: pb::Command, name: &str) -> Wire<Command> {
    use pb::command::Command as Wire;
    let command = command.command.ok_or_else(|| WireError::missing(name))?;
    Ok(match command {
        Wire::ScheduleActivity(c) => Command::ScheduleActivity {
            seq: c.seq,
            activity_id: c.activity_id,
            activity_type: c.activity_type,
            input: payloads_from_wire(c.input, &field(name, "schedule_activity.input"))?,
            options: options_from_wire_at(c.options, &field(name, "schedule_activity.options"))?,
        },
        Wire::RequestCancelActivity(c) => Command::RequestCancelActivity { seq: c.seq },
        Wire::StartTimer(c) => Command::StartTimer {
            seq: c.seq,
            duration: duration_from_wire(c.duration_ms, &field(name, "start_timer.duration_ms"))?,
        },
        Wire::CancelTimer(c) => Command::CancelTimer { seq: c.seq },
        Wire::RecordLocalActivity(c) => Command::RecordLocalActivity {
            seq: c.seq,
            activity_type: c.activity_type,
            outcome: local_outcome_from_wire(
                c.outcome,
                &field(name, "record_local_activity.outcome"),
            )?,
        },
        Wire::CompleteWorkflow(c) => Command::CompleteWorkflow {
            result: required_payload(c.result, &field(name, "complete_workflow.result"))?,
        },
        Wire::FailWorkflow(c) => Command::FailWorkflow {
            failure: workflow_failure_from_wire(c.failure, &field(name, "fail_workflow.failure"))?,
        },
        Wire::CancelWorkflow(_) => Command::CancelWorkflow,
    })
}

// ------------------------------------------------------------------ requests and answers

pub(crate) fn start_request_to_wire(request: &StartWorkflowRequest) -> pb::StartWorkflowRequest {
    pb::StartWorkflowRequest {
        workflow_id: request.workflow_id.clone(),
        workflow_type: request.workflow_type.clone(),
        task_queue: request.task_queue.clone(),
        input: payloads_to_wire(&request.input),
    }
}

pub(crate) fn start_request_from_wire(
    request: pb::StartWorkflowRequest,
) -> Wire<StartWorkflowRequest> {
    Ok(StartWorkflowRequest::new(
        request.workflow_id,
        request.workflow_type,
        request.task_queue,
        payloads_from_wire(request.input, "input")?,
    ))
}

pub(crate) fn poll_workflow_request_to_wire(
    request: &PollWorkflowTaskRequest,
) -> pb::PollWorkflowTaskRequest {
    pb::PollWorkflowTaskRequest {
        task_queue: request.task_queue.clone(),
        identity: request.identity.clone(),
        wait_ms: duration_to_wire(request.wait),
    }
}

pub(crate) fn poll_workflow_request_from_wire(
    request: pb::PollWorkflowTaskRequest,
) -> Wire<PollWorkflowTaskRequest> {
    Ok(
        PollWorkflowTaskRequest::new(request.task_queue, request.identity)
            .with_wait(duration_from_wire(request.wait_ms, "wait_ms")?),
    )
}

pub(crate) fn workflow_task_to_wire(
    task: &WorkflowTask,
) -> Result<pb::WorkflowTask, ProtocolError> {
    Ok(pb::WorkflowTask {
        task_token: task.task_token.as_bytes().to_vec(),
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
        workflow_type: task.workflow_type.clone(),
        history: history_to_wire(&task.history)?,
    })
}

pub(crate) fn workflow_task_from_wire(task: pb::WorkflowTask) -> Wire<WorkflowTask> {
    Ok(WorkflowTask::new(
        TaskToken::from_bytes(task.task_token),
        task.workflow_id,
        task.run_id,
        task.workflow_type,
        history_from_wire(task.history, "task.history")?,
    ))
}

pub(crate) fn workflow_description_to_wire(
    d: &WorkflowDescription,
) -> Result<pb::WorkflowDescription, ProtocolError> {
    Ok(pb::WorkflowDescription {
        workflow_id: d.workflow_id.clone(),
        run_id: d.run_id.clone(),
        workflow_type: d.workflow_type.clone(),
        task_queue: d.task_queue.clone(),
        state: workflow_state_to_wire(d.state) as i32,
        start_time_ms: time_to_wire(d.start_time),
        close_time_ms: d.close_time.map(time_to_wire),
        cancel_requested: d.cancel_requested,
        history_length: d.history_length,
        outcome: d
            .outcome
            .as_ref()
            .map(workflow_outcome_to_wire)
            .transpose()?,
    })
}

pub(crate) fn workflow_description_from_wire(
    d: Option<pb::WorkflowDescription>,
) -> Wire<WorkflowDescription> {
    let d = d.ok_or_else(|| WireError::missing("description"))?;
    let mut model = WorkflowDescription::new(
        d.workflow_id,
        d.run_id,
        d.workflow_type,
        d.task_queue,
        workflow_state_from_wire(d.state, "description.state")?,
        time_from_wire(d.start_time_ms),
    );
    model.close_time = d.close_time_ms.map(time_from_wire);
    model.cancel_requested = d.cancel_requested;
    model.history_length = d.history_length;
    model.outcome = d
        .outcome
        .map(|o| workflow_outcome_from_wire(o, "description.outcome"))
        .transpose()?;
    Ok(model)
}

pub(crate) fn list_workflows_request_to_wire(r: &ListWorkflowsRequest) -> pb::ListWorkflowsRequest {
    pb::ListWorkflowsRequest {
        state: r
            .state
            .map_or(pb::WorkflowState::Unspecified, workflow_state_to_wire) as i32,
        workflow_type: r.workflow_type.clone(),
        limit: r.limit,
        workflow_id_prefix: r.workflow_id_prefix.clone(),
        offset: r.offset,
    }
}

pub(crate) fn list_workflows_request_from_wire(
    r: pb::ListWorkflowsRequest,
) -> Wire<ListWorkflowsRequest> {
    let mut model = ListWorkflowsRequest::new()
        .with_limit(r.limit)
        .with_offset(r.offset);
    if let Some(prefix) = r.workflow_id_prefix {
        model = model.with_workflow_id_prefix(prefix);
    }
    if r.state != pb::WorkflowState::Unspecified as i32 {
        model = model.with_state(workflow_state_from_wire(r.state, "state")?);
    }
    if let Some(workflow_type) = r.workflow_type {
        model = model.with_workflow_type(workflow_type);
    }
    Ok(model)
}

pub(crate) fn workflow_summary_to_wire(s: &WorkflowSummary) -> pb::WorkflowSummary {
    pb::WorkflowSummary {
        workflow_id: s.workflow_id.clone(),
        run_id: s.run_id.clone(),
        workflow_type: s.workflow_type.clone(),
        task_queue: s.task_queue.clone(),
        state: workflow_state_to_wire(s.state) as i32,
        start_time_ms: time_to_wire(s.start_time),
        close_time_ms: s.close_time.map(time_to_wire),
    }
}

pub(crate) fn workflow_summaries_from_wire(
    summaries: Vec<pb::WorkflowSummary>,
) -> Wire<Vec<WorkflowSummary>> {
    summaries
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let prefix = format!("workflows[{i}]");
            Ok(WorkflowSummary::new(
                s.workflow_id,
                s.run_id,
                s.workflow_type,
                s.task_queue,
                workflow_state_from_wire(s.state, &field(&prefix, "state"))?,
                time_from_wire(s.start_time_ms),
            )
            .with_close_time(s.close_time_ms.map(time_from_wire)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use activity_core::{
        clock::from_millis,
        failure::{
            ActivityFailure, ApplicationFailure, CanceledFailure, Failure, RetryState,
            TimeoutFailure, TimeoutKind,
        },
        options::{ActivityOptions, RetryOptions},
        Payload,
    };

    use super::*;

    fn json(value: &str) -> Payload {
        Payload::json(value).expect("serializable")
    }

    fn at(ms: i64) -> SystemTime {
        from_millis(ms)
    }

    fn activity_failures() -> Vec<ActivityFailure> {
        vec![
            ActivityFailure::new(
                "charge",
                "a-1",
                3,
                RetryState::MaximumAttemptsReached,
                Failure::Application(
                    ApplicationFailure::new("Declined", "no funds")
                        .with_non_retryable(true)
                        .with_details(json("code 51"))
                        .with_next_retry_delay(Duration::from_millis(7)),
                ),
            ),
            ActivityFailure::new(
                "ship",
                "a-2",
                1,
                RetryState::Timeout,
                Failure::Timeout(TimeoutFailure::new(
                    TimeoutKind::Heartbeat,
                    Some(json("half")),
                )),
            ),
            ActivityFailure::new(
                "pack",
                "a-3",
                2,
                RetryState::CancelRequested,
                Failure::Canceled(CanceledFailure::default()),
            ),
        ]
    }

    fn workflow_failures() -> Vec<WorkflowFailure> {
        let mut all = vec![
            WorkflowFailure::Application(ApplicationFailure::new("Bad", "order")),
            WorkflowFailure::Application(
                ApplicationFailure::new("Worse", "order")
                    .with_non_retryable(true)
                    .with_details(json("d")),
            ),
        ];
        all.extend(
            activity_failures()
                .into_iter()
                .map(WorkflowFailure::Activity),
        );
        all
    }

    fn local_outcomes() -> Vec<LocalActivityOutcome> {
        let mut all = vec![LocalActivityOutcome::Completed(json("42"))];
        all.extend(
            activity_failures()
                .into_iter()
                .map(LocalActivityOutcome::Failed),
        );
        all.extend(
            activity_failures()
                .into_iter()
                .map(|f| LocalActivityOutcome::Backoff {
                    attempt: f.attempts,
                    failure: f.cause,
                    backoff: Duration::from_secs(3600),
                }),
        );
        all
    }

    /// Every `EventKind` variant (several per variant when it carries a choice).
    fn every_event_kind() -> Vec<EventKind> {
        let mut kinds = vec![
            EventKind::WorkflowStarted {
                workflow_type: "checkout".into(),
                task_queue: "q".into(),
                input: vec![json("a"), json("b")],
            },
            EventKind::WorkflowStarted {
                workflow_type: "nullary".into(),
                task_queue: "q".into(),
                input: vec![],
            },
            EventKind::WorkflowTaskScheduled,
            EventKind::WorkflowTaskStarted {
                identity: "host:1".into(),
            },
            EventKind::WorkflowTaskCompleted {
                identity: "host:1".into(),
            },
            EventKind::WorkflowTaskFailed {
                message: "nondeterminism: expected X".into(),
            },
            EventKind::WorkflowTaskTimedOut,
            EventKind::ActivityScheduled {
                seq: 1,
                activity_id: "1".into(),
                activity_type: "charge".into(),
            },
            EventKind::ActivityCompleted {
                seq: 1,
                result: json("receipt"),
            },
            EventKind::ActivityCancelRequested { seq: 4 },
            EventKind::TimerStarted {
                seq: 2,
                duration: Duration::from_millis(1_500),
            },
            EventKind::TimerFired { seq: 2 },
            EventKind::TimerCanceled { seq: 3 },
            EventKind::WorkflowCancelRequested,
            EventKind::WorkflowCompleted {
                result: json("done"),
            },
            EventKind::WorkflowCanceled,
        ];
        kinds.extend(
            activity_failures()
                .into_iter()
                .map(|failure| EventKind::ActivityFailed { seq: 5, failure }),
        );
        kinds.extend(local_outcomes().into_iter().map(|outcome| {
            EventKind::LocalActivityRecorded {
                seq: 6,
                activity_type: "local_count".into(),
                outcome,
            }
        }));
        kinds.extend(
            workflow_failures()
                .into_iter()
                .map(|failure| EventKind::WorkflowFailed { failure }),
        );
        kinds
    }

    /// Every `Command` variant (several per variant when it carries a choice).
    fn every_command() -> Vec<Command> {
        let mut commands = vec![
            Command::ScheduleActivity {
                seq: 1,
                activity_id: "1".into(),
                activity_type: "charge".into(),
                input: vec![json("card"), json("100")],
                options: ActivityOptions::new()
                    .start_to_close(Duration::from_secs(30))
                    .heartbeat_timeout(Duration::from_secs(2))
                    .task_queue("payments")
                    .retry(
                        RetryOptions::new()
                            .maximum_attempts(3)
                            .non_retryable("Fatal"),
                    ),
            },
            Command::ScheduleActivity {
                seq: 2,
                activity_id: "2".into(),
                activity_type: "bare".into(),
                input: vec![],
                options: ActivityOptions::new(),
            },
            Command::RequestCancelActivity { seq: 1 },
            Command::StartTimer {
                seq: 1,
                duration: Duration::from_secs(3_600),
            },
            Command::CancelTimer { seq: 1 },
            Command::CompleteWorkflow {
                result: json("done"),
            },
            Command::CancelWorkflow,
        ];
        commands.extend(
            local_outcomes()
                .into_iter()
                .map(|outcome| Command::RecordLocalActivity {
                    seq: 3,
                    activity_type: "local_count".into(),
                    outcome,
                }),
        );
        commands.extend(
            workflow_failures()
                .into_iter()
                .map(|failure| Command::FailWorkflow { failure }),
        );
        commands
    }

    #[test]
    fn every_event_kind_round_trips() {
        let kinds = every_event_kind();
        // One case at least per variant name.
        let names: std::collections::BTreeSet<_> = kinds.iter().map(EventKind::name).collect();
        assert_eq!(names.len(), 18, "{names:?}");
        let history: Vec<HistoryEvent> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                HistoryEvent::new(i as u64 + 1, at(1_700_000_000_000 + i as i64), kind)
            })
            .collect();
        for event in &history {
            let wire = event_to_wire(event).expect("encodes");
            assert_eq!(&event_from_wire(wire, "event").expect("decodes"), event);
        }
        let wire = history_to_wire(&history).expect("encodes");
        assert_eq!(history_from_wire(wire, "events").expect("decodes"), history);
    }

    #[test]
    fn every_command_round_trips_and_matches_its_event() {
        let commands = every_command();
        let names: std::collections::BTreeSet<_> =
            commands.iter().map(|c| c.to_event().name()).collect();
        assert_eq!(names.len(), 8, "{names:?}");
        for command in commands {
            let wire = command_to_wire(&command).expect("encodes");
            let back = command_from_wire(wire, "commands[0]").expect("decodes");
            assert_eq!(back, command);
            assert!(back.matches(&command.to_event()));
        }
    }

    #[test]
    fn outcomes_states_refs_round_trip() {
        let mut outcomes = vec![
            WorkflowOutcome::Completed(json("r")),
            WorkflowOutcome::Canceled,
        ];
        outcomes.extend(workflow_failures().into_iter().map(WorkflowOutcome::Failed));
        for outcome in outcomes {
            let wire = workflow_outcome_to_wire(&outcome).expect("encodes");
            assert_eq!(
                workflow_outcome_from_wire(wire, "outcome").expect("decodes"),
                outcome
            );
        }
        for state in [
            WorkflowState::Running,
            WorkflowState::Completed,
            WorkflowState::Failed,
            WorkflowState::Canceled,
        ] {
            let wire = workflow_state_to_wire(state) as i32;
            assert_eq!(
                workflow_state_from_wire(wire, "state").expect("known"),
                state
            );
        }
        for workflow in [WorkflowRef::latest("wf"), WorkflowRef::run("wf", "run-1")] {
            let wire = workflow_ref_to_wire(&workflow);
            assert_eq!(
                workflow_ref_from_wire(Some(wire), "workflow").expect("decodes"),
                workflow
            );
        }
    }

    #[test]
    fn tasks_descriptions_and_requests_round_trip() {
        let history: Vec<HistoryEvent> = every_event_kind()
            .into_iter()
            .enumerate()
            .map(|(i, kind)| HistoryEvent::new(i as u64 + 1, at(i as i64 * 10), kind))
            .collect();
        let task = WorkflowTask::new(
            TaskToken::from_bytes(vec![9, 8, 7]),
            "wf".into(),
            "run".into(),
            "checkout".into(),
            history,
        );
        let wire = workflow_task_to_wire(&task).expect("encodes");
        assert_eq!(workflow_task_from_wire(wire).expect("decodes"), task);

        let running = WorkflowDescription::new(
            "wf",
            "run",
            "checkout",
            "q",
            WorkflowState::Running,
            at(-1_000),
        );
        let mut closed = running.clone();
        closed.state = WorkflowState::Failed;
        closed.close_time = Some(at(5_000));
        closed.cancel_requested = true;
        closed.history_length = 12;
        closed.outcome = Some(WorkflowOutcome::Failed(WorkflowFailure::Application(
            ApplicationFailure::new("Bad", "order"),
        )));
        for d in [running, closed] {
            let wire = workflow_description_to_wire(&d).expect("encodes");
            assert_eq!(
                workflow_description_from_wire(Some(wire)).expect("decodes"),
                d
            );
        }

        let start = StartWorkflowRequest::new("wf", "checkout", "q", vec![json("order")]);
        assert_eq!(
            start_request_from_wire(start_request_to_wire(&start)).expect("decodes"),
            start
        );
        let poll = PollWorkflowTaskRequest::new("q", "me").with_wait(Duration::from_millis(250));
        assert_eq!(
            poll_workflow_request_from_wire(poll_workflow_request_to_wire(&poll)).expect("decodes"),
            poll
        );
    }

    #[test]
    fn malformed_workflow_messages_name_the_field() {
        let err = event_from_wire(
            pb::HistoryEvent {
                event_id: 1,
                time_ms: 0,
                kind: None,
            },
            "history[3]",
        )
        .expect_err("no kind");
        assert!(matches!(
            err.into_request_error(),
            ProtocolError::InvalidArgument { field, .. } if field == "history[3].kind"
        ));
        let err = command_from_wire(
            pb::Command {
                command: Some(pb::command::Command::StartTimer(pb::command::StartTimer {
                    seq: 1,
                    duration_ms: -5,
                })),
            },
            "commands[0]",
        )
        .expect_err("negative duration");
        assert!(matches!(
            err.into_request_error(),
            ProtocolError::InvalidArgument { field, .. }
                if field == "commands[0].start_timer.duration_ms"
        ));
        let err = command_from_wire(
            pb::Command {
                command: Some(pb::command::Command::CompleteWorkflow(
                    pb::command::CompleteWorkflow { result: None },
                )),
            },
            "commands[1]",
        )
        .expect_err("no result");
        assert!(err
            .into_request_error()
            .to_string()
            .contains("commands[1].complete_workflow.result"));
        let err = workflow_state_from_wire(0, "state").expect_err("unspecified");
        assert!(matches!(
            err.into_response_error("DescribeWorkflow"),
            ProtocolError::Internal { message } if message.contains("DescribeWorkflow")
        ));
    }

    #[test]
    fn list_workflows_requests_and_summaries_round_trip() {
        for request in [
            ListWorkflowsRequest::new(),
            ListWorkflowsRequest::new()
                .with_state(WorkflowState::Completed)
                .with_workflow_type("checkout")
                .with_limit(7),
            ListWorkflowsRequest::new()
                .with_workflow_id_prefix("order-")
                .with_offset(50),
        ] {
            let wire = list_workflows_request_to_wire(&request);
            assert_eq!(
                list_workflows_request_from_wire(wire).expect("decodes"),
                request
            );
        }

        let summaries = vec![
            WorkflowSummary::new(
                "wf",
                "run-2",
                "checkout",
                "q",
                WorkflowState::Running,
                at(20),
            ),
            WorkflowSummary::new(
                "wf",
                "run-1",
                "checkout",
                "q",
                WorkflowState::Failed,
                at(-10),
            )
            .with_close_time(Some(at(15))),
        ];
        let wire: Vec<_> = summaries.iter().map(workflow_summary_to_wire).collect();
        assert_eq!(
            workflow_summaries_from_wire(wire.clone()).expect("decodes"),
            summaries
        );
        let mut bad = wire;
        bad[1].state = 0;
        let err = workflow_summaries_from_wire(bad)
            .unwrap_err()
            .into_response_error("ListWorkflows");
        assert!(err.to_string().contains("workflows[1].state"), "{err}");
    }
}
