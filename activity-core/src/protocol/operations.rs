//! The protocol's operations, written once: [`ProtocolRequest`] (one variant per
//! operation, with its arguments), [`ProtocolResponse`] (one variant per
//! operation, with its answer), [`Operation`] (the name of one), the one-method
//! trait [`ActivityProtocol`], and the typed methods on `dyn ActivityProtocol`
//! that callers use.
//!
//! See [`ActivityProtocol`] for how implementations and decorators use them.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef, ExecutionState,
    HeartbeatResponse, ListExecutionsRequest, PollActivityTaskRequest, ProtocolError,
    RegisteredType, ScheduleActivityRequest, ScheduleActivityResponse, TaskQueueDescription,
    TaskTarget, WorkerRegistration,
};
use crate::{
    context::TaskToken,
    definition::BoxFuture,
    failure::ApplicationFailure,
    payload::Payload,
    workflow::history::{
        Command, HistoryEvent, ListWorkflowsRequest, PollWorkflowTaskRequest, QueryAnswer,
        QueryTask, StartWorkflowRequest, WorkflowDescription, WorkflowOutcome, WorkflowRef,
        WorkflowState, WorkflowSummary, WorkflowTask,
    },
};

/// The calls between workers/clients and the engine: one method, every
/// operation a [`ProtocolRequest`]. See also [`crate::protocol`].
///
/// # One forwarding point
///
/// [`ActivityProtocol`] has a single method, [`call`](ActivityProtocol::call),
/// in the manner of tower's `Service`: an implementation (the engine, the gRPC
/// client) matches on every [`ProtocolRequest`] variant — the enums are
/// exhaustive on purpose, so an operation added later is a compile error in
/// every implementation until it is handled — and a decorator (retries, fault
/// injection, a clock guard in tests) matches the variants it cares about and
/// hands every other request on with one line, so it cannot silently drop one:
///
/// ```
/// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
/// use activity_core::{ActivityProtocol, BoxFuture, ProtocolError};
/// use activity_core::protocol::{ProtocolRequest, ProtocolResponse};
///
/// /// Counts the heartbeats that pass through it.
/// struct CountHeartbeats {
///     inner: Arc<dyn ActivityProtocol>,
///     heartbeats: AtomicU64,
/// }
///
/// impl ActivityProtocol for CountHeartbeats {
///     fn call(&self, request: ProtocolRequest) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
///         if let ProtocolRequest::RecordHeartbeat { .. } = &request {
///             self.heartbeats.fetch_add(1, Ordering::Relaxed);
///         }
///         self.inner.call(request)
///     }
/// }
/// ```
///
/// Callers use the typed methods (`protocol.schedule_activity(request).await`),
/// generated on `dyn ActivityProtocol` from the same list as the enums, so that
/// each answers exactly its operation's type. An implementation that answers a
/// request with another operation's response is a bug; the typed method reports
/// it as [`ProtocolError::Internal`] naming both operations.
pub trait ActivityProtocol: Send + Sync + 'static {
    /// Carries out one operation and answers with that operation's
    /// [`ProtocolResponse`] variant.
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>>;
}

/// A shared protocol is a protocol: decorators and callers may hold either.
impl<P: ActivityProtocol + ?Sized> ActivityProtocol for std::sync::Arc<P> {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        (**self).call(request)
    }
}

/// Whether an operation waits for something to happen (a long poll) or answers
/// at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Short,
    Long,
}

macro_rules! operations {
    ($(
        $(#[doc = $doc:expr])*
        $variant:ident => $method:ident($($arg:ident: $ty:ty),* $(,)?) -> $out:ty, $wait:ident;
    )*) => {
        /// One call of the protocol: an operation and its arguments.
        ///
        /// Exhaustive on purpose: an implementation of [`ActivityProtocol`]
        /// handles every variant, so a new operation is a compile error until it
        /// is implemented everywhere.
        // Each request is built once and moved into `call`: boxing the large
        // variants would cost an allocation per call for nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum ProtocolRequest {
            $(
                $(#[doc = $doc])*
                $variant {
                    $(
                        #[allow(missing_docs)]
                        $arg: $ty,
                    )*
                },
            )*
        }

        /// The answer to a [`ProtocolRequest`]: the variant of the same name.
        // Built once per call and moved out at once, like requests.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum ProtocolResponse {
            $(
                $(#[doc = $doc])*
                $variant($out),
            )*
        }

        /// The name of an operation, without its arguments (for decorators,
        /// logs and metrics).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $(
                $(#[doc = $doc])*
                $variant,
            )*
        }

        impl Operation {
            /// Every operation.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),*];

            /// The operation's name, as the method that calls it (e.g.
            /// `"schedule_activity"`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => stringify!($method),)*
                }
            }

            /// Whether the operation waits for something to happen (a long poll
            /// for work or for an outcome), bounded by a wait its caller gives,
            /// rather than answering at once.
            pub fn is_long_poll(self) -> bool {
                match self {
                    $(Operation::$variant => Wait::$wait == Wait::Long,)*
                }
            }
        }

        impl ProtocolRequest {
            /// Which operation this is.
            pub fn operation(&self) -> Operation {
                match self {
                    $(ProtocolRequest::$variant { .. } => Operation::$variant,)*
                }
            }
        }

        impl ProtocolResponse {
            /// Which operation this answers.
            pub fn operation(&self) -> Operation {
                match self {
                    $(ProtocolResponse::$variant(_) => Operation::$variant,)*
                }
            }
        }

        /// The typed operations, one per [`ProtocolRequest`] variant.
        impl dyn ActivityProtocol {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self, $($arg: $ty),*) -> BoxFuture<'_, Result<$out, ProtocolError>> {
                    let call = self.call(ProtocolRequest::$variant { $($arg),* });
                    Box::pin(async move {
                        match call.await? {
                            ProtocolResponse::$variant(answer) => Ok(answer),
                            other => Err(mismatch(Operation::$variant, other.operation())),
                        }
                    })
                }
            )*
        }
    };
}

operations! {
    /// Validates the options and schedules attempt 1; durable once answered.
    ScheduleActivity => schedule_activity(request: ScheduleActivityRequest) -> ScheduleActivityResponse, Short;

    /// Waits up to `request.wait` for a dispatchable attempt on the queue (FIFO,
    /// within the queue's rate limit), then starts up to `max_tasks` of the
    /// attempts dispatchable at that moment together and hands them out, so a
    /// worker with many free slots takes a backlog in a few round trips. Empty
    /// when the wait ends first. A `max_tasks` of 0 counts as 1; the engine
    /// bounds it.
    PollActivityTasks => poll_activity_tasks(request: PollActivityTaskRequest, max_tasks: usize) -> Vec<ActivityTask>, Long;

    /// Records liveness (and, when given, the latest details) of a started
    /// attempt. `None` details keep the previously recorded ones.
    RecordHeartbeat => record_heartbeat(target: TaskTarget, details: Option<Payload>) -> HeartbeatResponse, Short;

    /// Completes a started attempt (and so the execution) with its result.
    CompleteActivity => complete_activity(target: TaskTarget, result: Payload) -> (), Short;

    /// Fails a started attempt; the engine retries it or closes the execution
    /// (docs/semantics.md §1.3). `last_heartbeat_details`, when given, are recorded first
    /// so the next attempt sees the latest progress.
    FailActivity => fail_activity(target: TaskTarget, failure: ApplicationFailure, last_heartbeat_details: Option<Payload>) -> (), Short;

    /// Acknowledges cancellation of a started attempt: the execution becomes
    /// CANCELED.
    ReportCanceled => report_canceled(target: TaskTarget, details: Option<Payload>) -> (), Short;

    /// Gives back attempts that a poll received after its caller had gone (the
    /// caller's deadline passed while the answer was on its way): each goes back
    /// to its queue at once, keeping its number, unless something else happened to
    /// it meanwhile (docs/semantics.md §2). Sent at most once per attempt, by the
    /// transport that received it, and never repeated: a second release of one
    /// attempt could give back the start of another poller.
    ReleaseActivityTasks => release_activity_tasks(tokens: Vec<TaskToken>) -> (), Short;

    /// Requests cancellation: a scheduled execution becomes CANCELED at once, a
    /// started one is told through its heartbeat answers. Answers the state
    /// after the request.
    RequestCancel => request_cancel(execution: ExecutionRef) -> ExecutionState, Short;

    /// Describes an execution.
    DescribeExecution => describe_execution(execution: ExecutionRef) -> ExecutionDescription, Short;

    /// Waits up to `wait` for the execution to be final; `None` if it is still
    /// running then.
    WaitOutcome => wait_outcome(execution: ExecutionRef, wait: Duration) -> Option<ExecutionOutcome>, Long;

    /// Activity executions (standalone ones and those of workflows), newest
    /// first, filtered and paged by the request.
    ListActivityExecutions => list_activity_executions(request: ListExecutionsRequest) -> Vec<ExecutionDescription>, Short;

    /// Describes a task queue: backlog, recent pollers, rate limit.
    DescribeTaskQueue => describe_task_queue(task_queue: String) -> TaskQueueDescription, Short;

    /// Describes every task queue the engine knows of (one that was polled,
    /// has a rate limit, holds attempts or has registered types), by name, at
    /// most [`MAX_LIST_TASK_QUEUES`](crate::protocol::MAX_LIST_TASK_QUEUES).
    ListTaskQueues => list_task_queues() -> Vec<TaskQueueDescription>, Short;

    /// Starts a workflow run; refused with `AlreadyExists` while a run with the
    /// same workflow id is running. Answers the run (with its run id).
    StartWorkflow => start_workflow(request: StartWorkflowRequest) -> WorkflowRef, Short;

    /// Waits up to `request.wait` for a workflow task on the queue and hands it
    /// out with the run's history.
    PollWorkflowTask => poll_workflow_task(request: PollWorkflowTaskRequest) -> Option<WorkflowTask>, Long;

    /// Completes a workflow task with the commands the code produced, in order.
    CompleteWorkflowTask => complete_workflow_task(token: TaskToken, commands: Vec<Command>) -> (), Short;

    /// Fails a workflow task (e.g. nondeterminism): nothing of it is recorded
    /// but the failure, and the task is scheduled again after a backoff.
    FailWorkflowTask => fail_workflow_task(token: TaskToken, message: String) -> (), Short;

    /// Requests cancellation of a run: recorded in its history, delivered to
    /// its code, and its running activities are cancel-requested.
    RequestCancelWorkflow => request_cancel_workflow(workflow: WorkflowRef) -> WorkflowState, Short;

    /// Terminates a running run (docs/semantics.md §3.1): `WorkflowTerminated` with the
    /// reason and the caller's identity closes it at once, no workflow code
    /// runs, and its open activities are told the workflow closed. Answers
    /// `Terminated`; a run that had already closed is left as it is and the
    /// call is refused with `AlreadyClosed` (`WorkflowClosed` with its state).
    TerminateWorkflow => terminate_workflow(workflow: WorkflowRef, reason: String, identity: String) -> WorkflowState, Short;

    /// Resets a run (docs/semantics.md §3.1): a new run of the same workflow
    /// id starts whose history is the run's up to the workflow task that event
    /// `to_event` (a `WorkflowTaskCompleted`) answered, that task failed with
    /// the reset (who, why, the source run), the signals received after it
    /// again, and a new workflow task: the current code redoes that task and
    /// continues. The run, if running, is terminated naming the reset and the
    /// new run. Answers the new run; an event that is not a
    /// `WorkflowTaskCompleted` is refused with `InvalidArgument` listing the
    /// valid ones.
    ResetWorkflow => reset_workflow(workflow: WorkflowRef, to_event: u64, reason: String, identity: String) -> WorkflowRef, Short;

    /// Sends a signal to a running run (docs/semantics.md §3.1): `WorkflowSignaled`
    /// with the name, the payload and the sender's identity is appended to its
    /// history (buffered while a workflow task runs) and a workflow task
    /// delivers it to the code. Answers the run signaled; a closed run is
    /// refused with `AlreadyClosed`.
    SignalWorkflow => signal_workflow(workflow: WorkflowRef, signal_name: String, input: Payload, identity: String) -> WorkflowRef, Short;

    /// Signal-with-start (docs/semantics.md §3.1): signals the running run of
    /// `request.workflow_id`, or, when none runs, starts one with the request
    /// and records the signal right after its start, in one transaction.
    /// Answers the run signaled.
    SignalWithStartWorkflow => signal_with_start_workflow(request: StartWorkflowRequest, signal_name: String, input: Payload, identity: String) -> WorkflowRef, Short;

    /// Asks a run's query handler (docs/semantics.md §3.1): the query is handed
    /// to a worker polling the run's task queue, which answers from its cached
    /// instance or by replaying the history; nothing is written. Refused with
    /// `Unavailable` when no worker answered within `wait` (bounded by the
    /// engine).
    QueryWorkflow => query_workflow(workflow: WorkflowRef, query_name: String, wait: Duration) -> Payload, Long;

    /// Waits up to `request.wait` for a query to a run of the queue and hands
    /// it out with the run's history.
    PollWorkflowQuery => poll_workflow_query(request: PollWorkflowTaskRequest) -> Option<QueryTask>, Long;

    /// A worker's answer to a query it was handed. A query whose caller has
    /// stopped waiting is refused with `NotFound`.
    AnswerWorkflowQuery => answer_workflow_query(query_id: String, answer: QueryAnswer) -> (), Short;

    /// Describes a run.
    DescribeWorkflow => describe_workflow(workflow: WorkflowRef) -> WorkflowDescription, Short;

    /// The history of a run.
    WorkflowHistory => workflow_history(workflow: WorkflowRef) -> Vec<HistoryEvent>, Short;

    /// A page of the history of a run: its events after event `after` (0: from
    /// the start), in order, as many as fit in `max_bytes` of stored events but
    /// at least one, at most [`MAX_HISTORY_PAGE_EVENTS`](crate::workflow::MAX_HISTORY_PAGE_EVENTS);
    /// empty once `after` is the last event. A transport with a message size
    /// limit reads a history of any size in pages (docs/semantics.md §3.2).
    WorkflowHistoryPage => workflow_history_page(workflow: WorkflowRef, after: u64, max_bytes: u64) -> Vec<HistoryEvent>, Short;

    /// Waits up to `wait` for the run to be final; `None` if it is still
    /// running.
    WaitWorkflowOutcome => wait_workflow_outcome(workflow: WorkflowRef, wait: Duration) -> Option<WorkflowOutcome>, Long;

    /// Workflow runs, newest (latest start) first, filtered by the request's
    /// state and type, at most `request.limit` (bounded) of them.
    ListWorkflows => list_workflows(request: ListWorkflowsRequest) -> Vec<WorkflowSummary>, Short;

    /// Records which activity types (with their schemas) and workflow types a
    /// worker serves on its task queues; the engine may then validate inputs
    /// and results of those types against the schemas.
    RegisterWorker => register_worker(registration: WorkerRegistration) -> (), Short;

    /// Every type workers registered, by kind, name and task queue.
    ListTypes => list_types() -> Vec<RegisteredType>, Short;
}

impl dyn ActivityProtocol {
    /// [`poll_activity_tasks`](#method.poll_activity_tasks) for one attempt:
    /// waits up to `request.wait` for a dispatchable attempt, starts it and
    /// hands it out; `None` when the wait ends first.
    pub fn poll_activity_task(
        &self,
        request: PollActivityTaskRequest,
    ) -> BoxFuture<'_, Result<Option<ActivityTask>, ProtocolError>> {
        let call = self.poll_activity_tasks(request, 1);
        Box::pin(async move { Ok(call.await?.into_iter().next()) })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn mismatch(asked: Operation, answered: Operation) -> ProtocolError {
    ProtocolError::Internal {
        message: format!("the protocol answered `{asked}` with the response of `{answered}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every request with the response of `list_types`.
    struct Confused;

    impl ActivityProtocol for Confused {
        fn call(
            &self,
            _request: ProtocolRequest,
        ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
            Box::pin(std::future::ready(Ok(ProtocolResponse::ListTypes(
                Vec::new(),
            ))))
        }
    }

    #[tokio::test]
    async fn a_response_of_another_operation_is_an_internal_error_naming_both() {
        let protocol: &dyn ActivityProtocol = &Confused;
        let err = protocol.describe_task_queue("q".into()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "internal engine error: the protocol answered `describe_task_queue` with the response of `list_types`"
        );
        assert!(protocol.list_types().await.unwrap().is_empty());
    }

    #[test]
    fn every_operation_has_a_distinct_name_and_only_waits_are_long_polls() {
        let mut names: Vec<_> = Operation::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        let long: Vec<_> = Operation::ALL
            .iter()
            .filter(|op| op.is_long_poll())
            .map(|op| op.name())
            .collect();
        assert_eq!(
            long,
            [
                "poll_activity_tasks",
                "wait_outcome",
                "poll_workflow_task",
                "query_workflow",
                "poll_workflow_query",
                "wait_workflow_outcome"
            ]
        );
    }
}
