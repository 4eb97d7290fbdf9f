//! Round trips of every type that crosses the wire, as the two sides convert
//! them: each operation's request and answer go through their rpc messages,
//! encoded and decoded, and come back equal.

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use activity_core::{
    context::{ActivityInfo, TaskToken},
    failure::{
        ActivityFailure, ApplicationFailure, CanceledFailure, Failure, RetryState, TimeoutFailure,
        TimeoutKind,
    },
    options::{ActivityOptions, OptionProblem, OptionsError, RetryOptions, ValidatedOptions},
    payload::{Encoding, Payload},
    protocol::{
        ActivityTask, ActivityTypeInfo, ClosedReason, ExecutionDescription, ExecutionOutcome,
        ExecutionRef, ExecutionScope, ExecutionState, HeartbeatResponse, ListExecutionsRequest,
        Operation, PollActivityTaskRequest, PollerInfo, ProtocolError, ProtocolRequest,
        ProtocolResponse, RegisteredType, ScheduleActivityRequest, ScheduleActivityResponse,
        TaskQueueDescription, TaskTarget, TypeKind, WorkerRegistration,
    },
    workflow::history::{
        ChildWorkflowCause, ChildWorkflowFailure, Command, EventKind, HistoryEvent,
        ListWorkflowsRequest, LocalActivityOutcome, ParentClosePolicy, ParentRun,
        PollWorkflowTaskRequest, QueryAnswer, QueryTask, StartWorkflowRequest, WorkflowDescription,
        WorkflowFailure, WorkflowIdReusePolicy, WorkflowOutcome, WorkflowRef, WorkflowState,
        WorkflowSummary, WorkflowTask, WorkflowTimeout, WorkflowTimeouts,
    },
};
use proptest::{collection::vec, option, prelude::*, strategy::ValueTree, test_runner::TestRunner};

use crate::rpcs::{round_trip_request, round_trip_response};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn payload() -> impl Strategy<Value = Payload> {
    vec(any::<u8>(), 0..48).prop_map(|data| Payload {
        encoding: Encoding::Json,
        data: data.into(),
    })
}

fn payloads() -> impl Strategy<Value = Vec<Payload>> {
    vec(payload(), 0..4)
}

fn duration() -> impl Strategy<Value = Duration> {
    (0_u64..10_000_000_000, 0_u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
}

fn time() -> impl Strategy<Value = SystemTime> {
    duration().prop_map(|d| UNIX_EPOCH + d)
}

fn finite() -> impl Strategy<Value = f64> {
    -1.0e12_f64..1.0e12
}

fn token() -> impl Strategy<Value = TaskToken> {
    vec(any::<u8>(), 0..48).prop_map(TaskToken::from_bytes)
}

prop_compose! {
    fn execution_ref()(activity_id in text(), workflow_id in option::of(text()), run in option::of(text())) -> ExecutionRef {
        let mut execution = ExecutionRef::standalone(activity_id);
        execution.workflow_id = workflow_id;
        execution.workflow_run_id = run;
        execution
    }
}

prop_compose! {
    fn workflow_ref()(workflow_id in text(), run_id in option::of(text())) -> WorkflowRef {
        match run_id {
            Some(run) => WorkflowRef::run(workflow_id, run),
            None => WorkflowRef::latest(workflow_id),
        }
    }
}

fn target() -> impl Strategy<Value = TaskTarget> {
    prop_oneof![
        token().prop_map(TaskTarget::Token),
        execution_ref().prop_map(TaskTarget::Execution),
    ]
}

prop_compose! {
    fn application()(
        error_type in text(),
        message in text(),
        non_retryable in any::<bool>(),
        details in option::of(payload()),
        delay in option::of(duration()),
    ) -> ApplicationFailure {
        let mut failure = ApplicationFailure::new(error_type, message).with_non_retryable(non_retryable);
        failure.details = details;
        failure.next_retry_delay = delay;
        failure
    }
}

fn timeout_kind() -> impl Strategy<Value = TimeoutKind> {
    prop_oneof![
        Just(TimeoutKind::ScheduleToStart),
        Just(TimeoutKind::StartToClose),
        Just(TimeoutKind::ScheduleToClose),
        Just(TimeoutKind::Heartbeat),
    ]
}

fn canceled() -> impl Strategy<Value = CanceledFailure> {
    (
        option::of(payload()),
        any::<bool>(),
        option::of(workflow_state()),
    )
        .prop_map(|(details, not_started, workflow_closed)| {
            let mut canceled = CanceledFailure::new(details);
            canceled.not_started = not_started;
            canceled.workflow_closed = workflow_closed;
            canceled
        })
}

fn failure() -> BoxedStrategy<Failure> {
    // The previous attempt's failure, nested one level. Boxed: the nested
    // strategy types would overflow the test thread's stack in debug builds.
    let previous = prop_oneof![
        application().prop_map(Failure::Application),
        (timeout_kind(), option::of(payload()))
            .prop_map(|(kind, details)| Failure::Timeout(TimeoutFailure::new(kind, details))),
        canceled().prop_map(Failure::Canceled),
    ]
    .boxed();
    prop_oneof![
        application().prop_map(Failure::Application),
        (timeout_kind(), option::of(payload()), option::of(previous)).prop_map(
            |(kind, details, previous)| {
                let timeout = TimeoutFailure::new(kind, details);
                Failure::Timeout(match previous {
                    Some(previous) => timeout.with_cause(previous),
                    None => timeout,
                })
            }
        ),
        canceled().prop_map(Failure::Canceled),
    ]
    .boxed()
}

fn retry_state() -> impl Strategy<Value = RetryState> {
    prop_oneof![
        Just(RetryState::NonRetryableFailure),
        Just(RetryState::MaximumAttemptsReached),
        Just(RetryState::Timeout),
        Just(RetryState::CancelRequested),
        Just(RetryState::WorkflowClosed),
    ]
}

prop_compose! {
    fn activity_failure()(
        activity_type in text(),
        activity_id in text(),
        attempts in any::<u32>(),
        retry_state in retry_state(),
        cause in failure(),
    ) -> ActivityFailure {
        ActivityFailure::new(activity_type, activity_id, attempts, retry_state, cause)
    }
}

prop_compose! {
    fn options()(
        timeouts in vec(option::of(duration()), 4),
        task_queue in option::of(text()),
        initial in option::of(duration()),
        coefficient in option::of(finite()),
        maximum in option::of(duration()),
        attempts in option::of(any::<u32>()),
        non_retryable in vec(text(), 0..3),
    ) -> ActivityOptions {
        let mut options = ActivityOptions::new();
        options.schedule_to_close = timeouts[0];
        options.start_to_close = timeouts[1];
        options.schedule_to_start = timeouts[2];
        options.heartbeat_timeout = timeouts[3];
        options.task_queue = task_queue;
        let mut retry = RetryOptions::new();
        retry.initial_interval = initial;
        retry.backoff_coefficient = coefficient;
        retry.maximum_interval = maximum;
        retry.maximum_attempts = attempts;
        retry.non_retryable_error_types = non_retryable;
        options.retry = retry;
        options
    }
}

fn validated() -> impl Strategy<Value = ValidatedOptions> {
    (options(), text()).prop_filter_map("options that validate", |(options, queue)| {
        options.validate(Some(&queue)).ok()
    })
}

prop_compose! {
    fn info()(
        names in vec(text(), 3),
        attempt in any::<u32>(),
        workflow in option::of((text(), text(), text())),
        times in vec(time(), 3),
        deadline in option::of(time()),
        heartbeat in option::of(duration()),
        is_local in any::<bool>(),
        task_token in token(),
    ) -> ActivityInfo {
        let mut info = ActivityInfo::new(&names[0], &names[1], &names[2]);
        info.attempt = attempt;
        if let Some((id, run, kind)) = workflow {
            info.workflow_id = Some(id);
            info.workflow_run_id = Some(run);
            info.workflow_type = Some(kind);
        }
        info.scheduled_time = times[0];
        info.current_attempt_scheduled_time = times[1];
        info.started_time = times[2];
        info.deadline = deadline;
        info.heartbeat_timeout = heartbeat;
        info.is_local = is_local;
        info.task_token = task_token;
        info
    }
}

prop_compose! {
    fn activity_task()(token in token(), info in info(), input in payloads(), details in option::of(payload()), trace in option::of(text())) -> ActivityTask {
        ActivityTask::new(token, info, input, details).with_trace_context(trace)
    }
}

fn execution_state() -> impl Strategy<Value = ExecutionState> {
    prop_oneof![
        Just(ExecutionState::Scheduled),
        Just(ExecutionState::Started),
        Just(ExecutionState::Completed),
        Just(ExecutionState::Failed),
        Just(ExecutionState::TimedOut),
        Just(ExecutionState::Canceled),
    ]
}

fn execution_outcome() -> impl Strategy<Value = ExecutionOutcome> {
    prop_oneof![
        payload().prop_map(ExecutionOutcome::Completed),
        activity_failure().prop_map(ExecutionOutcome::Failed),
    ]
}

prop_compose! {
    fn execution_description()(
        execution in execution_ref(),
        activity_type in text(),
        state in execution_state(),
        attempt in any::<u32>(),
        options in validated(),
        times in vec(time(), 2),
        optional_times in vec(option::of(time()), 3),
        worker in option::of(text()),
        details in option::of(payload()),
        last_failure in option::of(failure()),
        retry_state in option::of(retry_state()),
        cancel_requested in any::<bool>(),
        outcome in option::of(execution_outcome()),
    ) -> ExecutionDescription {
        let mut d = ExecutionDescription::new(execution, activity_type, state, attempt, options, times[0]);
        d.current_attempt_scheduled_time = times[1];
        d.started_time = optional_times[0];
        d.worker_identity = worker;
        d.last_heartbeat_time = optional_times[1];
        d.heartbeat_details = details;
        d.last_failure = last_failure;
        d.retry_state = retry_state;
        d.cancel_requested = cancel_requested;
        d.close_time = optional_times[2];
        d.outcome = outcome;
        d
    }
}

prop_compose! {
    fn queue()(
        name in text(),
        backlog in any::<u64>(),
        dispatchable in any::<u64>(),
        pollers in vec((text(), time()), 0..3),
        rate_limit in option::of(finite()),
    ) -> TaskQueueDescription {
        let mut q = TaskQueueDescription::new(name);
        q.backlog = backlog;
        q.dispatchable = dispatchable;
        q.pollers = pollers.into_iter().map(|(id, t)| PollerInfo::new(id, t)).collect();
        q.rate_limit = rate_limit;
        q
    }
}

fn local_outcome() -> impl Strategy<Value = LocalActivityOutcome> {
    prop_oneof![
        payload().prop_map(LocalActivityOutcome::Completed),
        activity_failure().prop_map(LocalActivityOutcome::Failed),
        (any::<u32>(), failure(), duration()).prop_map(|(attempt, failure, backoff)| {
            LocalActivityOutcome::Backoff {
                attempt,
                failure,
                backoff,
            }
        }),
    ]
}

fn workflow_failure() -> impl Strategy<Value = WorkflowFailure> {
    prop_oneof![
        application().prop_map(WorkflowFailure::Application),
        activity_failure().prop_map(WorkflowFailure::Activity),
        (text(), text(), text(), child_cause()).prop_map(|(t, id, run, cause)| {
            WorkflowFailure::Child(ChildWorkflowFailure::new(t, id, run, cause))
        }),
    ]
}

fn workflow_outcome() -> impl Strategy<Value = WorkflowOutcome> {
    prop_oneof![
        payload().prop_map(WorkflowOutcome::Completed),
        workflow_failure().prop_map(WorkflowOutcome::Failed),
        Just(WorkflowOutcome::Canceled),
        (text(), option::of(text()))
            .prop_map(|(reason, new_run_id)| WorkflowOutcome::Terminated { reason, new_run_id }),
        text().prop_map(|new_run_id| WorkflowOutcome::ContinuedAsNew { new_run_id }),
        workflow_timeout().prop_map(|timeout| WorkflowOutcome::TimedOut { timeout }),
    ]
}

fn workflow_timeout() -> impl Strategy<Value = WorkflowTimeout> {
    prop_oneof![Just(WorkflowTimeout::Run), Just(WorkflowTimeout::Execution)]
}

fn workflow_timeouts() -> impl Strategy<Value = WorkflowTimeouts> {
    (
        option::of(duration()),
        option::of(duration()),
        option::of(time()),
    )
        .prop_map(|(run, execution, deadline)| WorkflowTimeouts::new(run, execution, deadline))
}

fn start_request(
    names: &[String],
    input: Vec<Payload>,
) -> impl Strategy<Value = StartWorkflowRequest> {
    let request = StartWorkflowRequest::new(&names[0], &names[1], &names[2], input);
    (
        option::of(duration()),
        option::of(duration()),
        proptest::sample::select(WorkflowIdReusePolicy::ALL),
    )
        .prop_map(move |(run, execution, policy)| {
            let mut request = request.clone().with_id_reuse_policy(policy);
            request.run_timeout = run;
            request.execution_timeout = execution;
            request
        })
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (
            text(),
            text(),
            payloads(),
            workflow_timeouts(),
            option::of(text()),
            option::of((text(), text(), any::<u32>()))
        )
            .prop_map(
                |(workflow_type, task_queue, input, timeouts, original_run_id, parent)| {
                    EventKind::WorkflowStarted {
                        workflow_type,
                        task_queue,
                        input,
                        timeouts,
                        original_run_id,
                        parent: parent.map(|(id, run, seq)| ParentRun::new(id, run, seq)),
                    }
                }
            ),
        workflow_timeout().prop_map(|timeout| EventKind::WorkflowTimedOut { timeout }),
        Just(EventKind::WorkflowTaskScheduled),
        text().prop_map(|identity| EventKind::WorkflowTaskStarted { identity }),
        text().prop_map(|identity| EventKind::WorkflowTaskCompleted { identity }),
        text().prop_map(|message| EventKind::WorkflowTaskFailed { message }),
        Just(EventKind::WorkflowTaskTimedOut),
        (any::<u32>(), text(), text()).prop_map(|(seq, activity_id, activity_type)| {
            EventKind::ActivityScheduled {
                seq,
                activity_id,
                activity_type,
            }
        }),
        (any::<u32>(), payload())
            .prop_map(|(seq, result)| EventKind::ActivityCompleted { seq, result }),
        (any::<u32>(), activity_failure())
            .prop_map(|(seq, failure)| EventKind::ActivityFailed { seq, failure }),
        any::<u32>().prop_map(|seq| EventKind::ActivityCancelRequested { seq }),
        (any::<u32>(), duration())
            .prop_map(|(seq, duration)| EventKind::TimerStarted { seq, duration }),
        any::<u32>().prop_map(|seq| EventKind::TimerFired { seq }),
        any::<u32>().prop_map(|seq| EventKind::TimerCanceled { seq }),
        (any::<u32>(), text(), local_outcome()).prop_map(|(seq, activity_type, outcome)| {
            EventKind::LocalActivityRecorded {
                seq,
                activity_type,
                outcome,
            }
        }),
        Just(EventKind::WorkflowCancelRequested),
        payload().prop_map(|result| EventKind::WorkflowCompleted { result }),
        workflow_failure().prop_map(|failure| EventKind::WorkflowFailed { failure }),
        Just(EventKind::WorkflowCanceled),
        (text(), text())
            .prop_map(|(reason, identity)| EventKind::WorkflowTerminated { reason, identity }),
        (text(), payloads()).prop_map(|(new_run_id, input)| EventKind::WorkflowContinuedAsNew {
            new_run_id,
            input
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(events, bytes, max_events, max_bytes)| EventKind::HistorySizeWarning {
                events,
                bytes,
                max_events,
                max_bytes,
            }
        ),
        (text(), payload(), text()).prop_map(|(signal_name, input, identity)| {
            EventKind::WorkflowSignaled {
                signal_name,
                input,
                identity,
            }
        }),
        (any::<u32>(), text(), text()).prop_map(|(seq, workflow_id, signal_name)| {
            EventKind::ExternalWorkflowSignaled {
                seq,
                workflow_id,
                signal_name,
            }
        }),
        (any::<u32>(), option::of(text()))
            .prop_map(|(seq, error)| EventKind::ExternalSignalResolved { seq, error }),
        (any::<u32>(), text(), text(), parent_close_policy()).prop_map(
            |(seq, workflow_id, workflow_type, parent_close_policy)| {
                EventKind::StartChildWorkflowInitiated {
                    seq,
                    workflow_id,
                    workflow_type,
                    parent_close_policy,
                }
            }
        ),
        (any::<u32>(), text(), text()).prop_map(|(seq, workflow_id, run_id)| {
            EventKind::ChildWorkflowStarted {
                seq,
                workflow_id,
                run_id,
            }
        }),
        (any::<u32>(), text(), text()).prop_map(|(seq, workflow_id, message)| {
            EventKind::StartChildWorkflowFailed {
                seq,
                workflow_id,
                message,
            }
        }),
        (any::<u32>(), payload())
            .prop_map(|(seq, result)| EventKind::ChildWorkflowCompleted { seq, result }),
        (any::<u32>(), workflow_failure())
            .prop_map(|(seq, failure)| EventKind::ChildWorkflowFailed { seq, failure }),
        any::<u32>().prop_map(|seq| EventKind::ChildWorkflowCanceled { seq }),
        (any::<u32>(), text())
            .prop_map(|(seq, reason)| EventKind::ChildWorkflowTerminated { seq, reason }),
        (any::<u32>(), workflow_timeout())
            .prop_map(|(seq, timeout)| EventKind::ChildWorkflowTimedOut { seq, timeout }),
        any::<u32>().prop_map(|seq| EventKind::ChildWorkflowCancelRequested { seq }),
    ]
}

fn parent_close_policy() -> impl Strategy<Value = ParentClosePolicy> {
    prop::sample::select(ParentClosePolicy::ALL)
}

fn child_cause() -> impl Strategy<Value = ChildWorkflowCause> {
    prop_oneof![
        text().prop_map(|message| ChildWorkflowCause::StartFailed { message }),
        application()
            .prop_map(|a| ChildWorkflowCause::Failed(Box::new(WorkflowFailure::Application(a)))),
        Just(ChildWorkflowCause::Canceled),
        text().prop_map(|reason| ChildWorkflowCause::Terminated { reason }),
        workflow_timeout().prop_map(|timeout| ChildWorkflowCause::TimedOut { timeout }),
    ]
}

fn history() -> impl Strategy<Value = Vec<HistoryEvent>> {
    vec(
        (any::<u64>(), time(), event_kind())
            .prop_map(|(id, t, kind)| HistoryEvent::new(id, t, kind)),
        0..6,
    )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            payloads(),
            options(),
            option::of(text())
        )
            .prop_map(
                |(seq, activity_id, activity_type, input, options, trace_context)| {
                    Command::ScheduleActivity {
                        seq,
                        activity_id,
                        activity_type,
                        input,
                        options,
                        trace_context,
                    }
                }
            ),
        any::<u32>().prop_map(|seq| Command::RequestCancelActivity { seq }),
        (any::<u32>(), duration())
            .prop_map(|(seq, duration)| Command::StartTimer { seq, duration }),
        any::<u32>().prop_map(|seq| Command::CancelTimer { seq }),
        (any::<u32>(), text(), local_outcome()).prop_map(|(seq, activity_type, outcome)| {
            Command::RecordLocalActivity {
                seq,
                activity_type,
                outcome,
            }
        }),
        payload().prop_map(|result| Command::CompleteWorkflow { result }),
        workflow_failure().prop_map(|failure| Command::FailWorkflow { failure }),
        Just(Command::CancelWorkflow),
        payloads().prop_map(|input| Command::ContinueAsNew { input }),
        (any::<u32>(), text(), text(), payload()).prop_map(
            |(seq, workflow_id, signal_name, input)| Command::SignalExternalWorkflow {
                seq,
                workflow_id,
                signal_name,
                input,
            }
        ),
        (
            any::<u32>(),
            text(),
            text(),
            text(),
            payloads(),
            parent_close_policy(),
            option::of(any::<u32>()),
            option::of(any::<u32>())
        )
            .prop_map(
                |(
                    seq,
                    workflow_id,
                    workflow_type,
                    task_queue,
                    input,
                    parent_close_policy,
                    run,
                    execution,
                )| {
                    Command::StartChildWorkflow {
                        seq,
                        workflow_id,
                        workflow_type,
                        task_queue,
                        input,
                        parent_close_policy,
                        run_timeout: run.map(|ms| Duration::from_millis(ms.into())),
                        execution_timeout: execution.map(|ms| Duration::from_millis(ms.into())),
                    }
                }
            ),
        any::<u32>().prop_map(|seq| Command::RequestCancelChildWorkflow { seq }),
    ]
}

fn workflow_state() -> impl Strategy<Value = WorkflowState> {
    prop_oneof![
        Just(WorkflowState::Running),
        Just(WorkflowState::Completed),
        Just(WorkflowState::Failed),
        Just(WorkflowState::Canceled),
        Just(WorkflowState::Terminated),
        Just(WorkflowState::ContinuedAsNew),
        Just(WorkflowState::TimedOut),
    ]
}

prop_compose! {
    fn workflow_description()(
        names in vec(text(), 4),
        state in workflow_state(),
        start in time(),
        close in option::of(time()),
        cancel_requested in any::<bool>(),
        history_length in any::<u64>(),
        outcome in option::of(workflow_outcome()),
        task_failures in any::<u32>(),
        last_task_failure in option::of(text()),
        deadlines in (option::of(time()), option::of(time())),
    ) -> WorkflowDescription {
        let mut d = WorkflowDescription::new(&names[0], &names[1], &names[2], &names[3], state, start);
        d.close_time = close;
        d.cancel_requested = cancel_requested;
        d.history_length = history_length;
        d.outcome = outcome;
        d.task_failures = task_failures;
        d.last_task_failure = last_task_failure;
        (d.run_deadline, d.execution_deadline) = deadlines;
        d
    }
}

prop_compose! {
    fn summary()(names in vec(text(), 4), state in workflow_state(), start in time(), close in option::of(time())) -> WorkflowSummary {
        WorkflowSummary::new(&names[0], &names[1], &names[2], &names[3], state, start).with_close_time(close)
    }
}

fn schema() -> impl Strategy<Value = serde_json::Value> {
    (text(), any::<i64>(), finite(), any::<bool>()).prop_map(|(name, n, x, flag)| {
        serde_json::json!({ "type": "object", "title": name, "n": n, "x": x, "flag": flag, "items": [null, {"a": []}] })
    })
}

prop_compose! {
    fn registration()(
        identity in text(),
        task_queues in vec(text(), 0..3),
        activities in vec((text(), vec(text(), 0..3), schema(), schema()), 0..3),
        workflows in vec(text(), 0..3),
    ) -> WorkerRegistration {
        WorkerRegistration::new(identity, task_queues)
            .with_activities(
                activities
                    .into_iter()
                    .map(|(name, args, input, output)| ActivityTypeInfo::new(name, args, input, output))
                    .collect(),
            )
            .with_workflows(workflows)
    }
}

fn registered_type() -> impl Strategy<Value = RegisteredType> {
    (
        any::<bool>(),
        vec(text(), 3),
        time(),
        option::of((vec(text(), 0..3), schema(), schema())),
    )
        .prop_map(|(activity, names, time, schemas)| {
            let kind = if activity {
                TypeKind::Activity
            } else {
                TypeKind::Workflow
            };
            let registered = RegisteredType::new(kind, &names[0], &names[1], time, &names[2]);
            match schemas {
                Some((args, input, output)) => registered.with_schemas(args, input, output),
                None => registered,
            }
        })
}

fn closed_reason() -> impl Strategy<Value = ClosedReason> {
    prop_oneof![
        timeout_kind().prop_map(ClosedReason::AttemptTimedOut),
        Just(ClosedReason::AttemptSuperseded),
        execution_state().prop_map(ClosedReason::ExecutionClosed),
        workflow_state().prop_map(ClosedReason::WorkflowClosed),
    ]
}

fn protocol_error() -> impl Strategy<Value = ProtocolError> {
    prop_oneof![
        vec((text(), text()), 1..3).prop_map(|problems| ProtocolError::InvalidOptions(
            OptionsError {
                problems: problems
                    .into_iter()
                    .map(|(field, rule)| OptionProblem { field, rule })
                    .collect()
            }
        )),
        (text(), text())
            .prop_map(|(field, message)| ProtocolError::invalid_argument(field, message)),
        (text(), any::<usize>(), any::<usize>())
            .prop_map(|(what, size, limit)| ProtocolError::PayloadTooLarge { what, size, limit }),
        text().prop_map(|reason| ProtocolError::InvalidToken { reason }),
        text().prop_map(|what| ProtocolError::NotFound { what }),
        text().prop_map(|what| ProtocolError::AlreadyExists { what }),
        (text(), closed_reason())
            .prop_map(|(what, reason)| ProtocolError::AlreadyClosed { what, reason }),
        text().prop_map(|message| ProtocolError::Unavailable { message }),
        (text(), text())
            .prop_map(|(what, message)| ProtocolError::FailedPrecondition { what, message }),
        text().prop_map(|operation| ProtocolError::Unsupported { operation }),
        text().prop_map(|message| ProtocolError::Internal { message }),
    ]
}

/// Every operation's request, with arbitrary arguments.
fn request() -> impl Strategy<Value = ProtocolRequest> {
    use ProtocolRequest as R;
    prop_oneof![
        (
            text(),
            payloads(),
            options(),
            option::of(text()),
            option::of(text())
        )
            .prop_map(|(t, input, options, id, trace)| {
                let mut request = ScheduleActivityRequest::new(t, input, options);
                request.activity_id = id;
                request.trace_context = trace;
                R::ScheduleActivity { request }
            }),
        (
            text(),
            text(),
            duration(),
            option::of(finite()),
            any::<usize>()
        )
            .prop_map(|(queue, identity, wait, rate, max_tasks)| {
                let mut request = PollActivityTaskRequest::new(queue, identity).with_wait(wait);
                request.max_task_queue_activities_per_second = rate;
                R::PollActivityTasks {
                    request,
                    max_tasks: max_tasks % (u32::MAX as usize),
                }
            }),
        (target(), option::of(payload()))
            .prop_map(|(target, details)| R::RecordHeartbeat { target, details }),
        (target(), payload()).prop_map(|(target, result)| R::CompleteActivity { target, result }),
        (target(), application(), option::of(payload())).prop_map(
            |(target, failure, last_heartbeat_details)| R::FailActivity {
                target,
                failure,
                last_heartbeat_details,
            }
        ),
        (target(), option::of(payload()))
            .prop_map(|(target, details)| R::ReportCanceled { target, details }),
        vec(token(), 0..4).prop_map(|tokens| R::ReleaseActivityTasks { tokens }),
        execution_ref().prop_map(|execution| R::RequestCancel { execution }),
        execution_ref().prop_map(|execution| R::DescribeExecution { execution }),
        (execution_ref(), duration())
            .prop_map(|(execution, wait)| R::WaitOutcome { execution, wait }),
        text().prop_map(|task_queue| R::DescribeTaskQueue { task_queue }),
        Just(R::ListTaskQueues {}),
        (
            prop_oneof![
                Just(ExecutionScope::All),
                Just(ExecutionScope::Standalone),
                text().prop_map(ExecutionScope::WorkflowRun),
            ],
            option::of(execution_state()),
            option::of(text()),
            option::of(text()),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(scope, state, kind, queue, limit, offset)| {
                let mut request = ListExecutionsRequest::new()
                    .with_scope(scope)
                    .with_limit(limit)
                    .with_offset(offset);
                request.state = state;
                request.activity_type = kind;
                request.task_queue = queue;
                R::ListActivityExecutions { request }
            }),
        (vec(text(), 3), payloads(), option::of(text()))
            .prop_flat_map(|(names, input, trace)| {
                start_request(&names, input).prop_map(move |mut request| {
                    request.trace_context = trace.clone();
                    request
                })
            })
            .prop_map(|request| R::StartWorkflow { request }),
        (text(), text(), duration()).prop_map(|(queue, identity, wait)| R::PollWorkflowTask {
            request: PollWorkflowTaskRequest::new(queue, identity).with_wait(wait),
        }),
        (token(), vec(command(), 0..5))
            .prop_map(|(token, commands)| R::CompleteWorkflowTask { token, commands }),
        (token(), text()).prop_map(|(token, message)| R::FailWorkflowTask { token, message }),
        workflow_ref().prop_map(|workflow| R::RequestCancelWorkflow { workflow }),
        (workflow_ref(), text(), text()).prop_map(|(workflow, reason, identity)| {
            R::TerminateWorkflow {
                workflow,
                reason,
                identity,
            }
        }),
        (workflow_ref(), any::<u64>(), text(), text()).prop_map(
            |(workflow, to_event, reason, identity)| R::ResetWorkflow {
                workflow,
                to_event,
                reason,
                identity,
            }
        ),
        (workflow_ref(), text(), payload(), text()).prop_map(
            |(workflow, signal_name, input, identity)| R::SignalWorkflow {
                workflow,
                signal_name,
                input,
                identity,
            }
        ),
        (vec(text(), 4), payloads(), payload()).prop_map(|(names, input, signal)| {
            R::SignalWithStartWorkflow {
                request: StartWorkflowRequest::new(&names[0], &names[1], &names[2], input),
                signal_name: names[3].clone(),
                input: signal,
                identity: names[0].clone(),
            }
        }),
        (workflow_ref(), text(), duration()).prop_map(|(workflow, query_name, wait)| {
            R::QueryWorkflow {
                workflow,
                query_name,
                wait,
            }
        }),
        (text(), text(), duration()).prop_map(|(queue, identity, wait)| R::PollWorkflowQuery {
            request: PollWorkflowTaskRequest::new(queue, identity).with_wait(wait),
        }),
        (
            text(),
            prop_oneof![
                payload().prop_map(QueryAnswer::Answered),
                text().prop_map(QueryAnswer::Unknown),
                text().prop_map(QueryAnswer::Failed),
            ]
        )
            .prop_map(|(query_id, answer)| R::AnswerWorkflowQuery { query_id, answer }),
        workflow_ref().prop_map(|workflow| R::DescribeWorkflow { workflow }),
        workflow_ref().prop_map(|workflow| R::WorkflowHistory { workflow }),
        (workflow_ref(), any::<u64>(), any::<u64>()).prop_map(|(workflow, after, max_bytes)| {
            R::WorkflowHistoryPage {
                workflow,
                after,
                max_bytes,
            }
        }),
        (workflow_ref(), duration())
            .prop_map(|(workflow, wait)| R::WaitWorkflowOutcome { workflow, wait }),
        (
            option::of(workflow_state()),
            option::of(text()),
            any::<u32>()
        )
            .prop_map(|(state, kind, limit)| {
                let mut request = ListWorkflowsRequest::new().with_limit(limit);
                request.state = state;
                request.workflow_type = kind;
                R::ListWorkflows { request }
            }),
        (option::of(text()), any::<u32>()).prop_map(|(prefix, offset)| {
            let mut request = ListWorkflowsRequest::new().with_offset(offset);
            request.workflow_id_prefix = prefix;
            R::ListWorkflows { request }
        }),
        registration().prop_map(|registration| R::RegisterWorker { registration }),
        Just(R::ListTypes {}),
    ]
}

/// Every operation's answer, arbitrary.
fn response() -> impl Strategy<Value = ProtocolResponse> {
    use ProtocolResponse as R;
    prop_oneof![
        (execution_ref(), validated())
            .prop_map(|(e, o)| R::ScheduleActivity(ScheduleActivityResponse::new(e, o))),
        vec(activity_task(), 0..3).prop_map(R::PollActivityTasks),
        any::<bool>().prop_map(|c| R::RecordHeartbeat(HeartbeatResponse::new(c))),
        Just(R::CompleteActivity(())),
        Just(R::FailActivity(())),
        Just(R::ReportCanceled(())),
        Just(R::ReleaseActivityTasks(())),
        execution_state().prop_map(R::RequestCancel),
        execution_description().prop_map(R::DescribeExecution),
        option::of(execution_outcome()).prop_map(R::WaitOutcome),
        queue().prop_map(R::DescribeTaskQueue),
        vec(queue(), 0..3).prop_map(R::ListTaskQueues),
        vec(execution_description(), 0..3).prop_map(R::ListActivityExecutions),
        workflow_ref().prop_map(R::StartWorkflow),
        option::of((token(), vec(text(), 3), history(), option::of(text()))).prop_map(|task| {
            R::PollWorkflowTask(task.map(|(token, names, history, trace)| {
                WorkflowTask::new(
                    token,
                    names[0].clone(),
                    names[1].clone(),
                    names[2].clone(),
                    history,
                )
                .with_trace_context(trace)
            }))
        }),
        Just(R::CompleteWorkflowTask(())),
        Just(R::FailWorkflowTask(())),
        workflow_state().prop_map(R::RequestCancelWorkflow),
        workflow_state().prop_map(R::TerminateWorkflow),
        workflow_ref().prop_map(R::ResetWorkflow),
        workflow_ref().prop_map(R::SignalWorkflow),
        workflow_ref().prop_map(R::SignalWithStartWorkflow),
        payload().prop_map(R::QueryWorkflow),
        option::of((vec(text(), 5), history())).prop_map(|query| {
            R::PollWorkflowQuery(query.map(|(names, history)| {
                QueryTask::new(
                    names[0].clone(),
                    names[1].clone(),
                    names[2].clone(),
                    names[3].clone(),
                    names[4].clone(),
                    history,
                )
            }))
        }),
        Just(R::AnswerWorkflowQuery(())),
        workflow_description().prop_map(R::DescribeWorkflow),
        history().prop_map(R::WorkflowHistory),
        history().prop_map(R::WorkflowHistoryPage),
        option::of(workflow_outcome()).prop_map(R::WaitWorkflowOutcome),
        vec(summary(), 0..3).prop_map(R::ListWorkflows),
        Just(R::RegisterWorker(())),
        vec(registered_type(), 0..3).prop_map(R::ListTypes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_crosses_the_wire_unchanged(request in request()) {
        prop_assert_eq!(round_trip_request(request.clone()), Ok(request));
    }

    #[test]
    fn every_answer_crosses_the_wire_unchanged(response in response()) {
        prop_assert_eq!(round_trip_response(response.clone()), Ok(response));
    }

    #[test]
    fn every_error_crosses_the_wire_unchanged_with_its_code(error in protocol_error()) {
        let status = crate::status::to_status(&error);
        prop_assert_eq!(status.code(), crate::status::code_of(&error));
        prop_assert_eq!(crate::status::from_status(&status, "Rpc", "http://x"), error);
    }
}

/// Samples `strategy` and collects the operations it produced.
fn operations_of<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    operation: impl Fn(&T) -> Operation,
) -> BTreeSet<&'static str> {
    let mut runner = TestRunner::deterministic();
    (0..4000)
        .map(|_| operation(&strategy.new_tree(&mut runner).expect("value").current()).name())
        .collect()
}

/// A new operation is covered by the round trips above only once the
/// strategies build it: this fails until they do.
#[test]
fn the_round_trips_cover_every_operation() {
    let all: BTreeSet<_> = Operation::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(operations_of(request(), ProtocolRequest::operation), all);
    assert_eq!(operations_of(response(), ProtocolResponse::operation), all);
}

/// The values written out field by field carry every field the model has: a
/// field added to one of them must be added to its proto message.
#[test]
fn written_out_values_carry_every_model_field() {
    let model_fields = |value: serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .expect("a struct")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let models = [
        (
            "ExecutionRef",
            serde_json::to_value(ExecutionRef::standalone("a")),
        ),
        (
            "WorkflowRef",
            serde_json::to_value(WorkflowRef::latest("w")),
        ),
    ];
    assert_eq!(models.len(), super::WHOLE_FIELDS.len());
    for (name, value) in models {
        let (_, carried) = super::WHOLE_FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("listed");
        let mut carried: Vec<String> = carried.iter().map(|f| (*f).to_owned()).collect();
        carried.sort();
        assert_eq!(model_fields(value.expect("json")), carried, "{name}");
    }
}

#[test]
fn undecodable_model_bytes_are_an_invalid_argument_naming_the_field() {
    use crate::{proto as pb, wire::OnWire};
    let good = crate::wire::encode(&Command::CancelWorkflow).expect("encodes");
    let commands = vec![good, bytes::Bytes::from_static(b"\xc1garbage")];
    let error = <Vec<Command>>::from_field(commands, "commands")
        .expect_err("garbage")
        .into_request_error();
    match error {
        ProtocolError::InvalidArgument { field, message } => {
            assert_eq!(field, "commands[1]");
            assert!(message.contains("Command"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let split = pb::PollWorkflowTaskRequest {
        task_queue: "q".into(),
        identity: "w".into(),
        wait: Some(prost_types::Duration::default()),
        rest: bytes::Bytes::new(),
    };
    let error = PollWorkflowTaskRequest::from_proto(split, "request")
        .expect_err("no rest")
        .into_request_error();
    assert!(
        matches!(&error, ProtocolError::InvalidArgument { field, .. } if field == "request.rest"),
        "{error:?}"
    );
}
