//! The server side: [`ActivityService`], a thin tonic adapter over any
//! [`ActivityProtocol`], and its bearer-token check, [`BearerAuth`].

use std::{fmt, future::Future, sync::Arc};

use activity_core::{
    context::TaskToken,
    protocol::{ActivityProtocol, ProtocolError},
};
use tokio::net::TcpListener;
use tonic::{
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor, Routes},
    transport::server::TcpIncoming,
    Request, Response, Status,
};

use crate::{
    convert::{self, WireError},
    proto::{self as pb, activity_protocol_server::ActivityProtocolServer},
    status::to_status,
};

/// The service as tonic serves it: the generated server behind the auth check.
/// Add it to a `tonic::transport::Server` (see [`ActivityService::into_server`]).
pub type ActivityServer = InterceptedService<ActivityProtocolServer<ActivityService>, BearerAuth>;

/// The gRPC service of the activity protocol over any [`ActivityProtocol`]
/// (typically `activity_engine::Engine::protocol()`).
///
/// Each rpc converts the request, calls the protocol, and converts the answer
/// back; a refused call answers the status of its [`ProtocolError`] (see the
/// crate docs). Long polls pass the caller's wait through (the engine bounds it).
#[derive(Clone)]
pub struct ActivityService {
    protocol: Arc<dyn ActivityProtocol>,
    max_request_size: usize,
    max_response_size: usize,
    bearer_token: Option<String>,
    http_routes: Option<Routes>,
}

impl fmt::Debug for ActivityService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityService")
            .field("max_request_size", &self.max_request_size)
            .field("max_response_size", &self.max_response_size)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("http_routes", &self.http_routes.is_some())
            .finish_non_exhaustive()
    }
}

/// The service could not be set up or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The bearer token cannot be sent in an HTTP header. Not retryable.
    #[error("invalid bearer token: {reason}")]
    InvalidBearerToken {
        /// What is wrong with it.
        reason: String,
    },
    /// A size limit is zero. Not retryable.
    #[error("invalid `{field}`: must be greater than zero")]
    InvalidLimit {
        /// The setting.
        field: &'static str,
    },
    /// The listener or the HTTP/2 server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl ActivityService {
    /// Default largest request accepted, in bytes: 16 MiB (room for a
    /// default-limit 4 MiB payload plus heartbeat details and framing).
    pub const DEFAULT_MAX_REQUEST_SIZE: usize = 16 * 1024 * 1024;
    /// Default largest answer sent, in bytes: 64 MiB.
    pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 64 * 1024 * 1024;

    /// A service over `protocol`, without auth and with the default size limits.
    pub fn new(protocol: Arc<dyn ActivityProtocol>) -> Self {
        Self {
            protocol,
            max_request_size: Self::DEFAULT_MAX_REQUEST_SIZE,
            max_response_size: Self::DEFAULT_MAX_RESPONSE_SIZE,
            bearer_token: None,
            http_routes: None,
        }
    }

    /// Requires every request to carry `authorization: Bearer <token>`; others are
    /// refused with `UNAUTHENTICATED` before reaching the protocol.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sets the largest request accepted, in bytes. A larger gRPC message is
    /// refused with `OUT_OF_RANGE` ("found N bytes, the limit is: M bytes") before
    /// it is read, and has no effect; a client rebuilds it as
    /// [`ProtocolError::PayloadTooLarge`]. (Payloads within it are still checked
    /// against the engine's own payload limit.)
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets the largest answer sent, in bytes.
    pub fn with_max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Serves `routes` on the same port as the gRPC service (e.g. the web
    /// dashboard, `activity_dashboard::Dashboard::router`): the server then
    /// accepts HTTP/1.1 too, and sends every request whose path is not one of
    /// the gRPC service's to `routes`. The bearer-token check and the size
    /// limits apply to the gRPC service only; the routes bring their own.
    pub fn with_http_routes(mut self, routes: impl Into<Routes>) -> Self {
        self.http_routes = Some(routes.into());
        self
    }

    /// The tonic service with its limits and auth check, to add to a
    /// `tonic::transport::Server` next to other services.
    pub fn into_server(self) -> Result<ActivityServer, ServeError> {
        if self.max_request_size == 0 {
            return Err(ServeError::InvalidLimit {
                field: "max_request_size",
            });
        }
        if self.max_response_size == 0 {
            return Err(ServeError::InvalidLimit {
                field: "max_response_size",
            });
        }
        let auth = BearerAuth::new(self.bearer_token.as_deref())?;
        let (request_limit, response_limit) = (self.max_request_size, self.max_response_size);
        let server = ActivityProtocolServer::new(self)
            .max_decoding_message_size(request_limit)
            .max_encoding_message_size(response_limit);
        Ok(InterceptedService::new(server, auth))
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting and
    /// lets the calls in flight finish.
    ///
    /// Bind the listener yourself (the project's servers listen on 127.0.0.1 by
    /// default); port 0 picks a free port, see `TcpListener::local_addr`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let routes = self.http_routes.clone();
        let server = self.into_server()?;
        let mut builder = tonic::transport::Server::builder()
            // A wide connection window: h2 closes a connection whose peer has many
            // small DATA frames buffered (flood protection, budget = half the
            // window); thousands of concurrent small calls from one worker are
            // normal here.
            .initial_connection_window_size(CONNECTION_WINDOW)
            .accept_http1(routes.is_some());
        let router = match routes {
            Some(routes) => builder.add_routes(routes).add_service(server),
            None => builder.add_service(server),
        };
        router
            // Small answers go out at once: with Nagle's algorithm a long-poll
            // answer waits for the client's delayed ACK (≈ 40 ms per call).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await?;
        Ok(())
    }
}

/// The HTTP/2 connection flow-control window of both ends (8 MiB).
pub(crate) const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Checks `authorization: Bearer <token>` on every request, in constant time.
/// Lets everything through when no token is configured.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<Vec<u8>>,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("required", &self.expected.is_some())
            .finish()
    }
}

impl BearerAuth {
    /// Requires `token` when given.
    pub fn new(token: Option<&str>) -> Result<Self, ServeError> {
        let expected = token
            .map(|token| bearer_header(token).map(|v| v.as_bytes().to_vec()))
            .transpose()
            .map_err(|reason| ServeError::InvalidBearerToken { reason })?;
        Ok(Self { expected })
    }
}

/// The `authorization` value for `token`, checked.
pub(crate) fn bearer_header(token: &str) -> Result<AsciiMetadataValue, String> {
    if token.is_empty() {
        return Err("it is empty".to_owned());
    }
    MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
        "it must be visible ASCII without control characters (it is sent in an HTTP header)"
            .to_owned()
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            None => Err(Status::unauthenticated(
                "missing `authorization` metadata: this activity server requires a bearer token; \
                 set it on the client (activity_remote::RemoteConfig::with_bearer_token, sent as \
                 `authorization: Bearer <token>`)",
            )),
            Some(value) if constant_time_eq(value.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "invalid bearer token: the `authorization: Bearer <token>` sent does not match \
                 the server's token; set the client's token \
                 (activity_remote::RemoteConfig::with_bearer_token) to the one the server was \
                 started with",
            )),
        }
    }
}

/// Turns the conversion of a request into the status of an invalid argument.
fn decode<T>(result: Result<T, WireError>) -> Result<T, Status> {
    result.map_err(|e| to_status(&e.into_request_error()))
}

fn answer<T>(result: Result<T, ProtocolError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| to_status(&e))
}

#[tonic::async_trait]
impl pb::activity_protocol_server::ActivityProtocol for ActivityService {
    async fn schedule_activity(
        &self,
        request: Request<pb::ScheduleActivityRequest>,
    ) -> Result<Response<pb::ScheduleActivityResponse>, Status> {
        let request = decode(convert::schedule_request_from_wire(request.into_inner()))?;
        let response = self.protocol.schedule_activity(request).await;
        answer(response.map(|r| convert::schedule_response_to_wire(&r)))
    }

    async fn poll_activity_task(
        &self,
        request: Request<pb::PollActivityTaskRequest>,
    ) -> Result<Response<pb::PollActivityTaskResponse>, Status> {
        let request = decode(convert::poll_request_from_wire(request.into_inner()))?;
        let task = self.protocol.poll_activity_task(request).await;
        answer(task.map(|task| pb::PollActivityTaskResponse {
            task: task.as_ref().map(convert::task_to_wire),
        }))
    }

    async fn poll_activity_tasks(
        &self,
        request: Request<pb::PollActivityTasksRequest>,
    ) -> Result<Response<pb::PollActivityTasksResponse>, Status> {
        let request = request.into_inner();
        let poll = decode(
            request
                .poll
                .ok_or_else(|| WireError::new("poll", "must be set"))
                .and_then(convert::poll_request_from_wire),
        )?;
        let max_tasks = usize::try_from(request.max_tasks).unwrap_or(usize::MAX);
        let tasks = self.protocol.poll_activity_tasks(poll, max_tasks).await;
        answer(tasks.map(|tasks| pb::PollActivityTasksResponse {
            tasks: tasks.iter().map(convert::task_to_wire).collect(),
        }))
    }

    async fn record_heartbeat(
        &self,
        request: Request<pb::RecordHeartbeatRequest>,
    ) -> Result<Response<pb::RecordHeartbeatResponse>, Status> {
        let request = request.into_inner();
        let target = decode(convert::target_from_wire(request.target))?;
        let details = decode(convert::opt_payload_from_wire(request.details, "details"))?;
        let response = self.protocol.record_heartbeat(target, details).await;
        answer(response.map(|r| pb::RecordHeartbeatResponse {
            cancel_requested: r.cancel_requested,
        }))
    }

    async fn complete_activity(
        &self,
        request: Request<pb::CompleteActivityRequest>,
    ) -> Result<Response<pb::CompleteActivityResponse>, Status> {
        let request = request.into_inner();
        let target = decode(convert::target_from_wire(request.target))?;
        let result = decode(
            request
                .result
                .ok_or_else(|| WireError::new("result", "must be set"))
                .and_then(|p| convert::payload_from_wire(p, "result")),
        )?;
        let response = self.protocol.complete_activity(target, result).await;
        answer(response.map(|()| pb::CompleteActivityResponse {}))
    }

    async fn fail_activity(
        &self,
        request: Request<pb::FailActivityRequest>,
    ) -> Result<Response<pb::FailActivityResponse>, Status> {
        let request = request.into_inner();
        let target = decode(convert::target_from_wire(request.target))?;
        let failure = decode(convert::application_from_wire(request.failure, "failure"))?;
        let details = decode(convert::opt_payload_from_wire(
            request.last_heartbeat_details,
            "last_heartbeat_details",
        ))?;
        let response = self.protocol.fail_activity(target, failure, details).await;
        answer(response.map(|()| pb::FailActivityResponse {}))
    }

    async fn report_canceled(
        &self,
        request: Request<pb::ReportCanceledRequest>,
    ) -> Result<Response<pb::ReportCanceledResponse>, Status> {
        let request = request.into_inner();
        let target = decode(convert::target_from_wire(request.target))?;
        let details = decode(convert::opt_payload_from_wire(request.details, "details"))?;
        let response = self.protocol.report_canceled(target, details).await;
        answer(response.map(|()| pb::ReportCanceledResponse {}))
    }

    async fn request_cancel(
        &self,
        request: Request<pb::RequestCancelRequest>,
    ) -> Result<Response<pb::RequestCancelResponse>, Status> {
        let execution = decode(convert::execution_from_wire(
            request.into_inner().execution,
            "execution",
        ))?;
        let state = self.protocol.request_cancel(execution).await;
        answer(state.map(|state| pb::RequestCancelResponse {
            state: convert::state_to_wire(state) as i32,
        }))
    }

    async fn describe_execution(
        &self,
        request: Request<pb::DescribeExecutionRequest>,
    ) -> Result<Response<pb::DescribeExecutionResponse>, Status> {
        let execution = decode(convert::execution_from_wire(
            request.into_inner().execution,
            "execution",
        ))?;
        let description = self.protocol.describe_execution(execution).await;
        answer(description.and_then(|d| {
            Ok(pb::DescribeExecutionResponse {
                description: Some(convert::description_to_wire(&d)?),
            })
        }))
    }

    async fn wait_outcome(
        &self,
        request: Request<pb::WaitOutcomeRequest>,
    ) -> Result<Response<pb::WaitOutcomeResponse>, Status> {
        let request = request.into_inner();
        let execution = decode(convert::execution_from_wire(request.execution, "execution"))?;
        let wait = decode(convert::duration_from_wire(request.wait_ms, "wait_ms"))?;
        let outcome = self.protocol.wait_outcome(execution, wait).await;
        answer(outcome.and_then(|outcome| {
            Ok(pb::WaitOutcomeResponse {
                outcome: outcome.as_ref().map(convert::outcome_to_wire).transpose()?,
            })
        }))
    }

    async fn list_activity_executions(
        &self,
        request: Request<pb::ListActivityExecutionsRequest>,
    ) -> Result<Response<pb::ListActivityExecutionsResponse>, Status> {
        let request = decode(convert::list_executions_request_from_wire(
            request.into_inner(),
        ))?;
        let executions = self.protocol.list_activity_executions(request).await;
        answer(executions.and_then(|executions| {
            Ok(pb::ListActivityExecutionsResponse {
                executions: executions
                    .iter()
                    .map(convert::description_to_wire)
                    .collect::<Result<_, _>>()?,
            })
        }))
    }

    async fn list_task_queues(
        &self,
        _request: Request<pb::ListTaskQueuesRequest>,
    ) -> Result<Response<pb::ListTaskQueuesResponse>, Status> {
        let queues = self.protocol.list_task_queues().await;
        answer(queues.map(|queues| pb::ListTaskQueuesResponse {
            task_queues: queues.iter().map(convert::queue_to_wire).collect(),
        }))
    }

    async fn describe_task_queue(
        &self,
        request: Request<pb::DescribeTaskQueueRequest>,
    ) -> Result<Response<pb::DescribeTaskQueueResponse>, Status> {
        let task_queue = request.into_inner().task_queue;
        let description = self.protocol.describe_task_queue(task_queue).await;
        answer(description.map(|d| pb::DescribeTaskQueueResponse {
            description: Some(convert::queue_to_wire(&d)),
        }))
    }
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let registration = decode(convert::registration_from_wire(request.into_inner()))?;
        let done = self.protocol.register_worker(registration).await;
        answer(done.map(|()| pb::RegisterWorkerResponse {}))
    }

    async fn list_types(
        &self,
        _request: Request<pb::ListTypesRequest>,
    ) -> Result<Response<pb::ListTypesResponse>, Status> {
        let types = self.protocol.list_types().await;
        answer(types.map(|types| pb::ListTypesResponse {
            types: types.iter().map(convert::registered_type_to_wire).collect(),
        }))
    }

    async fn start_workflow(
        &self,
        request: Request<pb::StartWorkflowRequest>,
    ) -> Result<Response<pb::StartWorkflowResponse>, Status> {
        let request = decode(convert::start_request_from_wire(request.into_inner()))?;
        let run = self.protocol.start_workflow(request).await;
        answer(run.map(|run| pb::StartWorkflowResponse {
            workflow: Some(convert::workflow_ref_to_wire(&run)),
        }))
    }

    async fn poll_workflow_task(
        &self,
        request: Request<pb::PollWorkflowTaskRequest>,
    ) -> Result<Response<pb::PollWorkflowTaskResponse>, Status> {
        let request = decode(convert::poll_workflow_request_from_wire(
            request.into_inner(),
        ))?;
        let task = self.protocol.poll_workflow_task(request).await;
        answer(task.and_then(|task| {
            Ok(pb::PollWorkflowTaskResponse {
                task: task
                    .as_ref()
                    .map(convert::workflow_task_to_wire)
                    .transpose()?,
            })
        }))
    }

    async fn complete_workflow_task(
        &self,
        request: Request<pb::CompleteWorkflowTaskRequest>,
    ) -> Result<Response<pb::CompleteWorkflowTaskResponse>, Status> {
        let request = request.into_inner();
        let commands = decode(
            request
                .commands
                .into_iter()
                .enumerate()
                .map(|(i, c)| convert::command_from_wire(c, &format!("commands[{i}]")))
                .collect(),
        )?;
        let token = TaskToken::from_bytes(request.task_token);
        let response = self.protocol.complete_workflow_task(token, commands).await;
        answer(response.map(|()| pb::CompleteWorkflowTaskResponse {}))
    }

    async fn fail_workflow_task(
        &self,
        request: Request<pb::FailWorkflowTaskRequest>,
    ) -> Result<Response<pb::FailWorkflowTaskResponse>, Status> {
        let request = request.into_inner();
        let token = TaskToken::from_bytes(request.task_token);
        let response = self
            .protocol
            .fail_workflow_task(token, request.message)
            .await;
        answer(response.map(|()| pb::FailWorkflowTaskResponse {}))
    }

    async fn request_cancel_workflow(
        &self,
        request: Request<pb::RequestCancelWorkflowRequest>,
    ) -> Result<Response<pb::RequestCancelWorkflowResponse>, Status> {
        let workflow = decode(convert::workflow_ref_from_wire(
            request.into_inner().workflow,
            "workflow",
        ))?;
        let state = self.protocol.request_cancel_workflow(workflow).await;
        answer(state.map(|state| pb::RequestCancelWorkflowResponse {
            state: convert::workflow_state_to_wire(state) as i32,
        }))
    }

    async fn describe_workflow(
        &self,
        request: Request<pb::DescribeWorkflowRequest>,
    ) -> Result<Response<pb::DescribeWorkflowResponse>, Status> {
        let workflow = decode(convert::workflow_ref_from_wire(
            request.into_inner().workflow,
            "workflow",
        ))?;
        let description = self.protocol.describe_workflow(workflow).await;
        answer(description.and_then(|d| {
            Ok(pb::DescribeWorkflowResponse {
                description: Some(convert::workflow_description_to_wire(&d)?),
            })
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        let request = decode(convert::list_workflows_request_from_wire(
            request.into_inner(),
        ))?;
        let workflows = self.protocol.list_workflows(request).await;
        answer(workflows.map(|workflows| {
            pb::ListWorkflowsResponse {
                workflows: workflows
                    .iter()
                    .map(convert::workflow_summary_to_wire)
                    .collect(),
            }
        }))
    }

    async fn get_workflow_history(
        &self,
        request: Request<pb::GetWorkflowHistoryRequest>,
    ) -> Result<Response<pb::GetWorkflowHistoryResponse>, Status> {
        let workflow = decode(convert::workflow_ref_from_wire(
            request.into_inner().workflow,
            "workflow",
        ))?;
        let history = self.protocol.workflow_history(workflow).await;
        answer(history.and_then(|events| {
            Ok(pb::GetWorkflowHistoryResponse {
                events: convert::history_to_wire(&events)?,
            })
        }))
    }

    async fn wait_workflow_outcome(
        &self,
        request: Request<pb::WaitWorkflowOutcomeRequest>,
    ) -> Result<Response<pb::WaitWorkflowOutcomeResponse>, Status> {
        let request = request.into_inner();
        let workflow = decode(convert::workflow_ref_from_wire(
            request.workflow,
            "workflow",
        ))?;
        let wait = decode(convert::duration_from_wire(request.wait_ms, "wait_ms"))?;
        let outcome = self.protocol.wait_workflow_outcome(workflow, wait).await;
        answer(outcome.and_then(|outcome| {
            Ok(pb::WaitWorkflowOutcomeResponse {
                outcome: outcome
                    .as_ref()
                    .map(convert::workflow_outcome_to_wire)
                    .transpose()?,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_auth_refuses_missing_and_wrong_tokens_and_names_the_setting() {
        let mut auth = BearerAuth::new(Some("s3cret")).expect("valid token");
        let missing = auth.call(Request::new(())).expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(
            missing.message().contains("with_bearer_token"),
            "{}",
            missing.message()
        );

        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", bearer_header("guess").expect("ascii"));
        let refused = auth.call(wrong).expect_err("wrong token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(
            refused.message().contains("does not match"),
            "{}",
            refused.message()
        );

        let mut right = Request::new(());
        right
            .metadata_mut()
            .insert("authorization", bearer_header("s3cret").expect("ascii"));
        assert!(auth.call(right).is_ok());

        let mut open = BearerAuth::new(None).expect("no token");
        assert!(open.call(Request::new(())).is_ok());
    }

    #[test]
    fn tokens_that_cannot_be_headers_are_refused_at_setup() {
        assert!(matches!(
            BearerAuth::new(Some("")),
            Err(ServeError::InvalidBearerToken { .. })
        ));
        assert!(matches!(
            BearerAuth::new(Some("line\nbreak")),
            Err(ServeError::InvalidBearerToken { .. })
        ));
    }
}
