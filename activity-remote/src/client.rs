//! The client side: [`RemoteProtocol`], the [`ActivityProtocol`] of a remote
//! activity server.

use std::{fmt, future::Future, time::Duration};

use activity_core::{
    context::TaskToken,
    definition::BoxFuture,
    failure::ApplicationFailure,
    payload::Payload,
    protocol::{
        ActivityProtocol, ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef,
        ExecutionState, HeartbeatResponse, ListExecutionsRequest, PollActivityTaskRequest,
        ProtocolError, ProtocolRequest, ProtocolResponse, RegisteredType, ScheduleActivityRequest,
        ScheduleActivityResponse, TaskQueueDescription, TaskTarget, WorkerRegistration,
    },
    workflow::history::{
        Command, HistoryEvent, ListWorkflowsRequest, PollWorkflowTaskRequest, StartWorkflowRequest,
        WorkflowDescription, WorkflowOutcome, WorkflowRef, WorkflowState, WorkflowSummary,
        WorkflowTask,
    },
};
use tonic::{
    metadata::AsciiMetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Channel, Endpoint},
    Request, Response, Status,
};

use crate::{
    convert::{self, WireError},
    proto::{self as pb, activity_protocol_client::ActivityProtocolClient},
    service::bearer_header,
    status::from_status,
};

/// Where and how to reach an activity server.
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// The server's URL, e.g. `http://127.0.0.1:7233`.
    pub endpoint: String,
    /// Sent as `authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// Bound on establishing one connection (default 5 s).
    pub connect_timeout: Duration,
    /// Bound on one call, added to the wait of a long poll (default 30 s). A call
    /// without an answer by then fails with [`ProtocolError::Unavailable`].
    pub call_timeout: Duration,
    /// Largest answer accepted, in bytes (default 64 MiB).
    pub max_response_size: usize,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("endpoint", &self.endpoint)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_response_size", &self.max_response_size)
            .finish()
    }
}

impl RemoteConfig {
    /// The server at `endpoint` (e.g. `http://127.0.0.1:7233`), without a token.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            bearer_token: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            max_response_size: 64 * 1024 * 1024,
        }
    }

    /// Sends `token` as `authorization: Bearer <token>` on every call.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sets the bound on establishing one connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the bound on one call (added to the wait of a long poll).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the largest answer accepted, in bytes.
    pub fn with_max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }
}

impl From<&str> for RemoteConfig {
    fn from(endpoint: &str) -> Self {
        RemoteConfig::new(endpoint)
    }
}

impl From<String> for RemoteConfig {
    fn from(endpoint: String) -> Self {
        RemoteConfig::new(endpoint)
    }
}

/// A [`RemoteProtocol`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint is not a valid URL. Not retryable.
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bearer token cannot be sent in an HTTP header. Not retryable.
    #[error("invalid bearer token: {reason}")]
    InvalidBearerToken {
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached ([`RemoteProtocol::connect`] only).
    /// Retryable: the server may be starting.
    #[error("cannot reach the activity server at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport error, with its causes.
        reason: String,
    },
}

impl ConnectError {
    /// Whether connecting again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectError::Unreachable { .. })
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct ClientAuth {
    header: Option<AsciiMetadataValue>,
}

impl Interceptor for ClientAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

type GrpcClient = ActivityProtocolClient<InterceptedService<Channel, ClientAuth>>;

/// The [`ActivityProtocol`] of a remote activity server, over gRPC.
///
/// Cheap to clone (clones share one HTTP/2 connection). The connection is
/// re-established on demand: while the server is down, calls fail at once with
/// [`ProtocolError::Unavailable`] (retryable), and the first call after it is back
/// reconnects. Every call is bounded by [`RemoteConfig::call_timeout`] (plus the
/// wait of a long poll).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use activity_core::{ActivityProtocol, Client};
/// # use activity_remote::RemoteProtocol;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let protocol: Arc<dyn ActivityProtocol> =
///     Arc::new(RemoteProtocol::connect("http://127.0.0.1:7233").await?);
/// let client = Client::new(protocol).with_task_queue("default");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteProtocol {
    client: GrpcClient,
    endpoint: String,
    call_timeout: Duration,
}

impl fmt::Debug for RemoteProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProtocol")
            .field("endpoint", &self.endpoint)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteProtocol {
    /// Connects to the server (a URL, or a [`RemoteConfig`]), failing with
    /// [`ConnectError::Unreachable`] if it cannot be reached now. Later
    /// disconnections are survived: see the [type docs](Self).
    pub async fn connect(config: impl Into<RemoteConfig>) -> Result<Self, ConnectError> {
        let config = config.into();
        let (endpoint, auth) = Self::prepare(&config)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ConnectError::Unreachable {
                endpoint: config.endpoint.clone(),
                reason: error_chain(&e),
            })?;
        Ok(Self::with_channel(channel, auth, &config))
    }

    /// Like [`RemoteProtocol::connect`], without connecting now: the first call
    /// connects (for a worker that may start before its server).
    pub fn connect_lazy(config: impl Into<RemoteConfig>) -> Result<Self, ConnectError> {
        let config = config.into();
        let (endpoint, auth) = Self::prepare(&config)?;
        Ok(Self::with_channel(endpoint.connect_lazy(), auth, &config))
    }

    /// The server's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn prepare(config: &RemoteConfig) -> Result<(Endpoint, ClientAuth), ConnectError> {
        let invalid = |reason: String| ConnectError::InvalidEndpoint {
            endpoint: config.endpoint.clone(),
            reason,
        };
        let endpoint =
            Endpoint::from_shared(config.endpoint.clone()).map_err(|e| invalid(error_chain(&e)))?;
        match endpoint.uri().scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "TLS is not supported by this client yet: use `http://`".to_owned(),
                ))
            }
            _ => return Err(invalid("must start with `http://`".to_owned())),
        }
        let endpoint = endpoint
            .connect_timeout(config.connect_timeout)
            .initial_connection_window_size(crate::service::CONNECTION_WINDOW)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let header = config
            .bearer_token
            .as_deref()
            .map(bearer_header)
            .transpose()
            .map_err(|reason| ConnectError::InvalidBearerToken { reason })?;
        Ok((endpoint, ClientAuth { header }))
    }

    fn with_channel(channel: Channel, auth: ClientAuth, config: &RemoteConfig) -> Self {
        let client = ActivityProtocolClient::with_interceptor(channel, auth)
            .max_decoding_message_size(config.max_response_size)
            .max_encoding_message_size(usize::MAX);
        Self {
            client,
            endpoint: config.endpoint.clone(),
            call_timeout: config.call_timeout,
        }
    }

    /// Sends one unary call, bounded by `wait` plus the call timeout.
    async fn unary<Req, Resp, Fut>(
        &self,
        rpc: &'static str,
        message: Req,
        wait: Duration,
        call: impl FnOnce(GrpcClient, Request<Req>) -> Fut,
    ) -> Result<Resp, ProtocolError>
    where
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let bound = wait.saturating_add(self.call_timeout);
        let mut request = Request::new(message);
        request.set_timeout(bound);
        // The server enforces the deadline it is sent; this bounds a server that
        // does not answer at all (a half-open connection).
        let grace = Duration::from_secs(1);
        match tokio::time::timeout(
            bound.saturating_add(grace),
            call(self.client.clone(), request),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(from_status(&status, rpc, &self.endpoint)),
            Err(_) => Err(ProtocolError::Unavailable {
                message: format!(
                    "`{rpc}` to {} had no answer within {bound:?}",
                    self.endpoint
                ),
            }),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn answer<T>(result: Result<T, WireError>, rpc: &str) -> Result<T, ProtocolError> {
    result.map_err(|e| e.into_response_error(rpc))
}

/// One method per operation, each one rpc.
impl RemoteProtocol {
    fn rpc_schedule_activity(
        &self,
        request: ScheduleActivityRequest,
    ) -> BoxFuture<'_, Result<ScheduleActivityResponse, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "ScheduleActivity";
            let message = convert::schedule_request_to_wire(&request);
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.schedule_activity(r).await
                })
                .await?;
            answer(convert::schedule_response_from_wire(response), RPC)
        })
    }

    fn rpc_poll_activity_tasks(
        &self,
        request: PollActivityTaskRequest,
        max_tasks: usize,
    ) -> BoxFuture<'_, Result<Vec<ActivityTask>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "PollActivityTasks";
            let message = pb::PollActivityTasksRequest {
                poll: Some(convert::poll_request_to_wire(&request)),
                max_tasks: u32::try_from(max_tasks).unwrap_or(u32::MAX),
            };
            let response = self
                .unary(RPC, message, request.wait, |mut c, r| async move {
                    c.poll_activity_tasks(r).await
                })
                .await?;
            answer(
                response
                    .tasks
                    .into_iter()
                    .map(convert::task_from_wire)
                    .collect(),
                RPC,
            )
        })
    }

    fn rpc_record_heartbeat(
        &self,
        target: TaskTarget,
        details: Option<Payload>,
    ) -> BoxFuture<'_, Result<HeartbeatResponse, ProtocolError>> {
        Box::pin(async move {
            let message = pb::RecordHeartbeatRequest {
                target: Some(convert::target_to_wire(&target)),
                details: convert::opt_payload_to_wire(&details),
            };
            let response = self
                .unary(
                    "RecordHeartbeat",
                    message,
                    Duration::ZERO,
                    |mut c, r| async move { c.record_heartbeat(r).await },
                )
                .await?;
            Ok(HeartbeatResponse::new(response.cancel_requested))
        })
    }

    fn rpc_complete_activity(
        &self,
        target: TaskTarget,
        result: Payload,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = pb::CompleteActivityRequest {
                target: Some(convert::target_to_wire(&target)),
                result: Some(convert::payload_to_wire(&result)),
            };
            self.unary(
                "CompleteActivity",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.complete_activity(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_fail_activity(
        &self,
        target: TaskTarget,
        failure: ApplicationFailure,
        last_heartbeat_details: Option<Payload>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = pb::FailActivityRequest {
                target: Some(convert::target_to_wire(&target)),
                failure: Some(convert::application_to_wire(&failure)),
                last_heartbeat_details: convert::opt_payload_to_wire(&last_heartbeat_details),
            };
            self.unary(
                "FailActivity",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.fail_activity(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_report_canceled(
        &self,
        target: TaskTarget,
        details: Option<Payload>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = pb::ReportCanceledRequest {
                target: Some(convert::target_to_wire(&target)),
                details: convert::opt_payload_to_wire(&details),
            };
            self.unary(
                "ReportCanceled",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.report_canceled(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_request_cancel(
        &self,
        execution: ExecutionRef,
    ) -> BoxFuture<'_, Result<ExecutionState, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "RequestCancel";
            let message = pb::RequestCancelRequest {
                execution: Some(convert::execution_to_wire(&execution)),
            };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.request_cancel(r).await
                })
                .await?;
            answer(convert::state_from_wire(response.state, "state"), RPC)
        })
    }

    fn rpc_describe_execution(
        &self,
        execution: ExecutionRef,
    ) -> BoxFuture<'_, Result<ExecutionDescription, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "DescribeExecution";
            let message = pb::DescribeExecutionRequest {
                execution: Some(convert::execution_to_wire(&execution)),
            };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.describe_execution(r).await
                })
                .await?;
            answer(convert::description_from_wire(response.description), RPC)
        })
    }

    fn rpc_wait_outcome(
        &self,
        execution: ExecutionRef,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Option<ExecutionOutcome>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "WaitOutcome";
            let message = pb::WaitOutcomeRequest {
                execution: Some(convert::execution_to_wire(&execution)),
                wait_ms: convert::duration_to_wire(wait),
            };
            let response = self
                .unary(RPC, message, wait, |mut c, r| async move {
                    c.wait_outcome(r).await
                })
                .await?;
            answer(
                response
                    .outcome
                    .map(|o| convert::outcome_from_wire(o, "outcome"))
                    .transpose(),
                RPC,
            )
        })
    }

    fn rpc_list_activity_executions(
        &self,
        request: ListExecutionsRequest,
    ) -> BoxFuture<'_, Result<Vec<ExecutionDescription>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "ListActivityExecutions";
            let message = convert::list_executions_request_to_wire(&request);
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.list_activity_executions(r).await
                })
                .await?;
            answer(
                response
                    .executions
                    .into_iter()
                    .map(|d| convert::description_from_wire(Some(d)))
                    .collect(),
                RPC,
            )
        })
    }

    fn rpc_list_task_queues(
        &self,
    ) -> BoxFuture<'_, Result<Vec<TaskQueueDescription>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "ListTaskQueues";
            let response = self
                .unary(
                    RPC,
                    pb::ListTaskQueuesRequest {},
                    Duration::ZERO,
                    |mut c, r| async move { c.list_task_queues(r).await },
                )
                .await?;
            answer(
                response
                    .task_queues
                    .into_iter()
                    .map(|q| convert::queue_from_wire(Some(q)))
                    .collect(),
                RPC,
            )
        })
    }

    fn rpc_describe_task_queue(
        &self,
        task_queue: String,
    ) -> BoxFuture<'_, Result<TaskQueueDescription, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "DescribeTaskQueue";
            let message = pb::DescribeTaskQueueRequest { task_queue };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.describe_task_queue(r).await
                })
                .await?;
            answer(convert::queue_from_wire(response.description), RPC)
        })
    }

    fn rpc_register_worker(
        &self,
        registration: WorkerRegistration,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = convert::registration_to_wire(&registration);
            self.unary(
                "RegisterWorker",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.register_worker(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_list_types(&self) -> BoxFuture<'_, Result<Vec<RegisteredType>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "ListTypes";
            let response = self
                .unary(
                    RPC,
                    pb::ListTypesRequest {},
                    Duration::ZERO,
                    |mut c, r| async move { c.list_types(r).await },
                )
                .await?;
            answer(convert::registered_types_from_wire(response.types), RPC)
        })
    }

    fn rpc_start_workflow(
        &self,
        request: StartWorkflowRequest,
    ) -> BoxFuture<'_, Result<WorkflowRef, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "StartWorkflow";
            let message = convert::start_request_to_wire(&request);
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.start_workflow(r).await
                })
                .await?;
            answer(
                convert::workflow_ref_from_wire(response.workflow, "workflow"),
                RPC,
            )
        })
    }

    fn rpc_poll_workflow_task(
        &self,
        request: PollWorkflowTaskRequest,
    ) -> BoxFuture<'_, Result<Option<WorkflowTask>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "PollWorkflowTask";
            let message = convert::poll_workflow_request_to_wire(&request);
            let response = self
                .unary(RPC, message, request.wait, |mut c, r| async move {
                    c.poll_workflow_task(r).await
                })
                .await?;
            answer(
                response
                    .task
                    .map(convert::workflow_task_from_wire)
                    .transpose(),
                RPC,
            )
        })
    }

    fn rpc_complete_workflow_task(
        &self,
        token: TaskToken,
        commands: Vec<Command>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = pb::CompleteWorkflowTaskRequest {
                task_token: token.as_bytes().to_vec(),
                commands: commands
                    .iter()
                    .map(convert::command_to_wire)
                    .collect::<Result<_, _>>()?,
            };
            self.unary(
                "CompleteWorkflowTask",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.complete_workflow_task(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_fail_workflow_task(
        &self,
        token: TaskToken,
        message: String,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        Box::pin(async move {
            let message = pb::FailWorkflowTaskRequest {
                task_token: token.as_bytes().to_vec(),
                message,
            };
            self.unary(
                "FailWorkflowTask",
                message,
                Duration::ZERO,
                |mut c, r| async move { c.fail_workflow_task(r).await },
            )
            .await
            .map(drop)
        })
    }

    fn rpc_request_cancel_workflow(
        &self,
        workflow: WorkflowRef,
    ) -> BoxFuture<'_, Result<WorkflowState, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "RequestCancelWorkflow";
            let message = pb::RequestCancelWorkflowRequest {
                workflow: Some(convert::workflow_ref_to_wire(&workflow)),
            };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.request_cancel_workflow(r).await
                })
                .await?;
            answer(
                convert::workflow_state_from_wire(response.state, "state"),
                RPC,
            )
        })
    }

    fn rpc_describe_workflow(
        &self,
        workflow: WorkflowRef,
    ) -> BoxFuture<'_, Result<WorkflowDescription, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "DescribeWorkflow";
            let message = pb::DescribeWorkflowRequest {
                workflow: Some(convert::workflow_ref_to_wire(&workflow)),
            };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.describe_workflow(r).await
                })
                .await?;
            answer(
                convert::workflow_description_from_wire(response.description),
                RPC,
            )
        })
    }

    fn rpc_list_workflows(
        &self,
        request: ListWorkflowsRequest,
    ) -> BoxFuture<'_, Result<Vec<WorkflowSummary>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "ListWorkflows";
            let message = convert::list_workflows_request_to_wire(&request);
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.list_workflows(r).await
                })
                .await?;
            answer(
                convert::workflow_summaries_from_wire(response.workflows),
                RPC,
            )
        })
    }

    fn rpc_workflow_history(
        &self,
        workflow: WorkflowRef,
    ) -> BoxFuture<'_, Result<Vec<HistoryEvent>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "GetWorkflowHistory";
            let message = pb::GetWorkflowHistoryRequest {
                workflow: Some(convert::workflow_ref_to_wire(&workflow)),
            };
            let response = self
                .unary(RPC, message, Duration::ZERO, |mut c, r| async move {
                    c.get_workflow_history(r).await
                })
                .await?;
            answer(convert::history_from_wire(response.events, "events"), RPC)
        })
    }

    fn rpc_wait_workflow_outcome(
        &self,
        workflow: WorkflowRef,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Option<WorkflowOutcome>, ProtocolError>> {
        Box::pin(async move {
            const RPC: &str = "WaitWorkflowOutcome";
            let message = pb::WaitWorkflowOutcomeRequest {
                workflow: Some(convert::workflow_ref_to_wire(&workflow)),
                wait_ms: convert::duration_to_wire(wait),
            };
            let response = self
                .unary(RPC, message, wait, |mut c, r| async move {
                    c.wait_workflow_outcome(r).await
                })
                .await?;
            answer(
                response
                    .outcome
                    .map(|o| convert::workflow_outcome_from_wire(o, "outcome"))
                    .transpose(),
                RPC,
            )
        })
    }
}

impl ActivityProtocol for RemoteProtocol {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        use ProtocolRequest as Rq;
        use ProtocolResponse as Rs;
        fn then<'a, T: 'a>(
            call: BoxFuture<'a, Result<T, ProtocolError>>,
            respond: fn(T) -> ProtocolResponse,
        ) -> BoxFuture<'a, Result<ProtocolResponse, ProtocolError>> {
            Box::pin(async move { call.await.map(respond) })
        }
        match request {
            Rq::ScheduleActivity { request } => {
                then(self.rpc_schedule_activity(request), Rs::ScheduleActivity)
            }
            Rq::PollActivityTasks { request, max_tasks } => then(
                self.rpc_poll_activity_tasks(request, max_tasks),
                Rs::PollActivityTasks,
            ),
            Rq::RecordHeartbeat { target, details } => then(
                self.rpc_record_heartbeat(target, details),
                Rs::RecordHeartbeat,
            ),
            Rq::CompleteActivity { target, result } => then(
                self.rpc_complete_activity(target, result),
                Rs::CompleteActivity,
            ),
            Rq::FailActivity {
                target,
                failure,
                last_heartbeat_details,
            } => then(
                self.rpc_fail_activity(target, failure, last_heartbeat_details),
                Rs::FailActivity,
            ),
            Rq::ReportCanceled { target, details } => then(
                self.rpc_report_canceled(target, details),
                Rs::ReportCanceled,
            ),
            Rq::RequestCancel { execution } => {
                then(self.rpc_request_cancel(execution), Rs::RequestCancel)
            }
            Rq::DescribeExecution { execution } => then(
                self.rpc_describe_execution(execution),
                Rs::DescribeExecution,
            ),
            Rq::WaitOutcome { execution, wait } => {
                then(self.rpc_wait_outcome(execution, wait), Rs::WaitOutcome)
            }
            Rq::ListActivityExecutions { request } => then(
                self.rpc_list_activity_executions(request),
                Rs::ListActivityExecutions,
            ),
            Rq::ListTaskQueues {} => then(self.rpc_list_task_queues(), Rs::ListTaskQueues),
            Rq::DescribeTaskQueue { task_queue } => then(
                self.rpc_describe_task_queue(task_queue),
                Rs::DescribeTaskQueue,
            ),
            Rq::StartWorkflow { request } => {
                then(self.rpc_start_workflow(request), Rs::StartWorkflow)
            }
            Rq::PollWorkflowTask { request } => {
                then(self.rpc_poll_workflow_task(request), Rs::PollWorkflowTask)
            }
            Rq::CompleteWorkflowTask { token, commands } => then(
                self.rpc_complete_workflow_task(token, commands),
                Rs::CompleteWorkflowTask,
            ),
            Rq::FailWorkflowTask { token, message } => then(
                self.rpc_fail_workflow_task(token, message),
                Rs::FailWorkflowTask,
            ),
            Rq::RequestCancelWorkflow { workflow } => then(
                self.rpc_request_cancel_workflow(workflow),
                Rs::RequestCancelWorkflow,
            ),
            Rq::DescribeWorkflow { workflow } => {
                then(self.rpc_describe_workflow(workflow), Rs::DescribeWorkflow)
            }
            Rq::WorkflowHistory { workflow } => {
                then(self.rpc_workflow_history(workflow), Rs::WorkflowHistory)
            }
            Rq::WaitWorkflowOutcome { workflow, wait } => then(
                self.rpc_wait_workflow_outcome(workflow, wait),
                Rs::WaitWorkflowOutcome,
            ),
            Rq::ListWorkflows { request } => {
                then(self.rpc_list_workflows(request), Rs::ListWorkflows)
            }
            Rq::RegisterWorker { registration } => {
                then(self.rpc_register_worker(registration), Rs::RegisterWorker)
            }
            Rq::ListTypes {} => then(self.rpc_list_types(), Rs::ListTypes),
        }
    }
}
