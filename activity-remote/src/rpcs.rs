//! The one table of the wire: each operation of the protocol, its rpc, and how
//! the operation's arguments and answer fill the rpc's messages. Both sides are
//! generated from it: [`RemoteProtocol`] sends each [`ProtocolRequest`] as its
//! rpc, and [`ActivityService`] serves each rpc by calling its protocol.
//!
//! An entry reads
//!
//! ```text
//! Variant { arg, … } [wait(expr)] => method(RequestMessage) -> ResponseMessage { field };
//! ```
//!
//! - `{ arg, … }`: the request message has one field per argument of the
//!   operation, of the same name; `(arg)`: the one argument *is* the request
//!   message (a split value, see [`crate::wire`]).
//! - `wait(expr)`: the operation is a long poll waiting `expr` (the client's
//!   deadline is that plus its call timeout).
//! - `{ field }`: the response message holds the answer in `field`; `{}`: the
//!   answer is `()` and the message is empty; `(..)`: the answer *is* the
//!   response message.
//!
//! Each argument and answer goes on the wire through [`OnWire`], and every
//! message is destructured without `..`, so a field missing on either side is a
//! compile error. Adding an operation is one entry here plus its rpc and
//! messages in the `.proto`.

use std::time::Duration;

use activity_core::{
    definition::BoxFuture,
    protocol::{Operation, ProtocolError, ProtocolRequest, ProtocolResponse},
};
use tonic::{Request, Response, Status};

use crate::{
    client::RemoteProtocol,
    proto as pb,
    service::ActivityService,
    status::to_status,
    wire::{OnWire, Wire},
};

macro_rules! rpcs {
    (@pattern $variant:ident ($arg:ident)) => { ProtocolRequest::$variant { $arg } };
    (@pattern $variant:ident { $($arg:ident),* }) => { ProtocolRequest::$variant { $($arg),* } };

    (@wait) => { Duration::ZERO };
    (@wait $wait:expr) => { $wait };

    // The arguments as the request message (sending side).
    (@request $Req:ident ($arg:ident)) => { OnWire::into_proto($arg)? };
    (@request $Req:ident { $($arg:ident),* }) => {
        pb::$Req { $($arg: OnWire::into_field($arg)?),* }
    };

    // The request message as the request (receiving side).
    (@unrequest $message:ident $variant:ident $Req:ident ($arg:ident)) => {
        OnWire::from_proto($message, "").map(|$arg| ProtocolRequest::$variant { $arg })
    };
    (@unrequest $message:ident $variant:ident $Req:ident { $($arg:ident),* }) => {{
        fn unrequest(message: pb::$Req) -> Wire<ProtocolRequest> {
            let pb::$Req { $($arg),* } = message;
            Ok(ProtocolRequest::$variant { $($arg: OnWire::from_field($arg, stringify!($arg))?),* })
        }
        unrequest($message)
    }};

    // The answer as the response message (receiving side).
    (@answer $Resp:ident (..), $answer:ident) => { OnWire::into_proto($answer) };
    (@answer $Resp:ident { $field:ident }, $answer:ident) => {
        OnWire::into_field($answer).map(|$field| pb::$Resp { $field })
    };
    (@answer $Resp:ident {}, $answer:ident) => {{
        let () = $answer;
        Ok::<_, ProtocolError>(pb::$Resp {})
    }};

    // The response message as the answer (sending side).
    (@unanswer $Resp:ident (..), $response:ident) => { OnWire::from_proto($response, "") };
    (@unanswer $Resp:ident { $field:ident }, $response:ident) => {{
        let pb::$Resp { $field } = $response;
        OnWire::from_field($field, stringify!($field))
    }};
    (@unanswer $Resp:ident {}, $response:ident) => {{
        let pb::$Resp {} = $response;
        Ok::<(), crate::wire::WireError>(())
    }};

    ($(
        $variant:ident $args:tt $(wait($wait:expr))? => $method:ident($Req:ident) -> $Resp:ident $answer:tt;
    )*) => {
        impl RemoteProtocol {
            /// Sends `request` as its rpc and rebuilds the answer.
            pub(crate) fn send(
                &self,
                request: ProtocolRequest,
            ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
                match request {
                    $(
                        rpcs!(@pattern $variant $args) => Box::pin(async move {
                            const RPC: &str = stringify!($variant);
                            let wait: Duration = rpcs!(@wait $($wait)?);
                            let message: pb::$Req = rpcs!(@request $Req $args);
                            let response: pb::$Resp = self
                                .unary(Operation::$variant, message, wait, |mut client, request| async move {
                                    client.$method(request).await
                                })
                                .await?;
                            let answer = rpcs!(@unanswer $Resp $answer, response)
                                .map_err(|e| e.into_response_error(RPC))?;
                            Ok(ProtocolResponse::$variant(answer))
                        }),
                    )*
                }
            }
        }

        #[tonic::async_trait]
        impl pb::activity_protocol_server::ActivityProtocol for ActivityService {
            $(
                async fn $method(
                    &self,
                    request: Request<pb::$Req>,
                ) -> Result<Response<pb::$Resp>, Status> {
                    let message = request.into_inner();
                    let request = rpcs!(@unrequest message $variant $Req $args)
                        .map_err(|e| to_status(&e.into_request_error()))?;
                    let answer = match self.protocol().call(request).await.map_err(|e| to_status(&e))? {
                        ProtocolResponse::$variant(answer) => answer,
                        other => return Err(to_status(&mismatch(Operation::$variant, other.operation()))),
                    };
                    let message: pb::$Resp = rpcs!(@answer $Resp $answer, answer)
                        .map_err(|e| to_status(&e))?;
                    Ok(Response::new(message))
                }
            )*
        }

        /// The rpc of `operation` (e.g. `"ScheduleActivity"`).
        pub(crate) fn rpc_name(operation: Operation) -> &'static str {
            match operation {
                $(Operation::$variant => stringify!($variant),)*
            }
        }

        /// The operation of a gRPC path (`/activity.v1.ActivityProtocol/<Rpc>`).
        pub(crate) fn operation_of_path(path: &str) -> Option<Operation> {
            match path.strip_prefix("/activity.v1.ActivityProtocol/")? {
                $(stringify!($variant) => Some(Operation::$variant),)*
                _ => None,
            }
        }

        /// Both conversions of a request, through the encoded message, as the
        /// client sends it and the service reads it.
        #[cfg(test)]
        pub(crate) fn round_trip_request(request: ProtocolRequest) -> Result<ProtocolRequest, ProtocolError> {
            match request {
                $(
                    rpcs!(@pattern $variant $args) => {
                        let message: pb::$Req = rpcs!(@request $Req $args);
                        let message = reencode(&message)?;
                        rpcs!(@unrequest message $variant $Req $args)
                            .map_err(crate::wire::WireError::into_request_error)
                    }
                )*
            }
        }

        /// Both conversions of an answer, through the encoded message, as the
        /// service sends it and the client reads it.
        #[cfg(test)]
        pub(crate) fn round_trip_response(response: ProtocolResponse) -> Result<ProtocolResponse, ProtocolError> {
            match response {
                $(
                    ProtocolResponse::$variant(answer) => {
                        let message: pb::$Resp = rpcs!(@answer $Resp $answer, answer)?;
                        let response = reencode(&message)?;
                        let answer = rpcs!(@unanswer $Resp $answer, response)
                            .map_err(|e| e.into_response_error(stringify!($variant)))?;
                        Ok(ProtocolResponse::$variant(answer))
                    }
                )*
            }
        }
    };
}

rpcs! {
    ScheduleActivity(request) => schedule_activity(ScheduleActivityRequest) -> ScheduleActivityResponse(..);
    PollActivityTasks { request, max_tasks } wait(request.wait) =>
        poll_activity_tasks(PollActivityTasksRequest) -> PollActivityTasksResponse { tasks };
    RecordHeartbeat { target, details } =>
        record_heartbeat(RecordHeartbeatRequest) -> RecordHeartbeatResponse { response };
    CompleteActivity { target, result } =>
        complete_activity(CompleteActivityRequest) -> CompleteActivityResponse {};
    FailActivity { target, failure, last_heartbeat_details } =>
        fail_activity(FailActivityRequest) -> FailActivityResponse {};
    ReportCanceled { target, details } =>
        report_canceled(ReportCanceledRequest) -> ReportCanceledResponse {};
    ReleaseActivityTasks { tokens } =>
        release_activity_tasks(ReleaseActivityTasksRequest) -> ReleaseActivityTasksResponse {};
    RequestCancel { execution } =>
        request_cancel(RequestCancelRequest) -> RequestCancelResponse { state };
    DescribeExecution { execution } =>
        describe_execution(DescribeExecutionRequest) -> DescribeExecutionResponse { description };
    WaitOutcome { execution, wait } wait(wait) =>
        wait_outcome(WaitOutcomeRequest) -> WaitOutcomeResponse { outcome };
    ListActivityExecutions { request } =>
        list_activity_executions(ListActivityExecutionsRequest) -> ListActivityExecutionsResponse { executions };
    DescribeTaskQueue { task_queue } =>
        describe_task_queue(DescribeTaskQueueRequest) -> DescribeTaskQueueResponse { description };
    ListTaskQueues {} => list_task_queues(ListTaskQueuesRequest) -> ListTaskQueuesResponse { task_queues };
    StartWorkflow(request) => start_workflow(StartWorkflowRequest) -> StartWorkflowResponse { workflow };
    PollWorkflowTask(request) wait(request.wait) =>
        poll_workflow_task(PollWorkflowTaskRequest) -> PollWorkflowTaskResponse { task };
    CompleteWorkflowTask { token, commands } =>
        complete_workflow_task(CompleteWorkflowTaskRequest) -> CompleteWorkflowTaskResponse {};
    FailWorkflowTask { token, message } =>
        fail_workflow_task(FailWorkflowTaskRequest) -> FailWorkflowTaskResponse {};
    RequestCancelWorkflow { workflow } =>
        request_cancel_workflow(RequestCancelWorkflowRequest) -> RequestCancelWorkflowResponse { state };
    TerminateWorkflow { workflow, reason, identity } =>
        terminate_workflow(TerminateWorkflowRequest) -> TerminateWorkflowResponse { state };
    ResetWorkflow { workflow, to_event, reason, identity } =>
        reset_workflow(ResetWorkflowRequest) -> ResetWorkflowResponse { workflow };
    SignalWorkflow { workflow, signal_name, input, identity } =>
        signal_workflow(SignalWorkflowRequest) -> SignalWorkflowResponse { workflow };
    SignalWithStartWorkflow { request, signal_name, input, identity } =>
        signal_with_start_workflow(SignalWithStartWorkflowRequest) -> SignalWithStartWorkflowResponse { workflow };
    QueryWorkflow { workflow, query_name, wait } wait(wait) =>
        query_workflow(QueryWorkflowRequest) -> QueryWorkflowResponse { answer };
    PollWorkflowQuery(request) wait(request.wait) =>
        poll_workflow_query(PollWorkflowTaskRequest) -> PollWorkflowQueryResponse { query };
    AnswerWorkflowQuery { query_id, answer } =>
        answer_workflow_query(AnswerWorkflowQueryRequest) -> AnswerWorkflowQueryResponse {};
    DescribeWorkflow { workflow } =>
        describe_workflow(DescribeWorkflowRequest) -> DescribeWorkflowResponse { description };
    WorkflowHistory { workflow } =>
        workflow_history(WorkflowHistoryRequest) -> WorkflowHistoryResponse { events };
    WorkflowHistoryPage { workflow, after, max_bytes } =>
        workflow_history_page(WorkflowHistoryPageRequest) -> WorkflowHistoryPageResponse { events };
    WaitWorkflowOutcome { workflow, wait } wait(wait) =>
        wait_workflow_outcome(WaitWorkflowOutcomeRequest) -> WaitWorkflowOutcomeResponse { outcome };
    ListWorkflows { request } => list_workflows(ListWorkflowsRequest) -> ListWorkflowsResponse { workflows };
    RegisterWorker { registration } =>
        register_worker(RegisterWorkerRequest) -> RegisterWorkerResponse {};
    ListTypes {} => list_types(ListTypesRequest) -> ListTypesResponse { types };
}

/// The error of a protocol that answered an operation with another's response.
fn mismatch(asked: Operation, answered: Operation) -> ProtocolError {
    ProtocolError::Internal {
        message: format!("the protocol answered `{asked}` with the response of `{answered}`"),
    }
}

/// `message` encoded and decoded again, as it crosses the wire.
#[cfg(test)]
fn reencode<M: prost::Message + Default>(message: &M) -> Result<M, ProtocolError> {
    M::decode(message.encode_to_vec().as_slice()).map_err(|e| ProtocolError::Internal {
        message: format!("the encoded message does not decode: {e}"),
    })
}
