//! The client side: [`RemoteProtocol`], the [`ActivityProtocol`] of a remote
//! activity server.

use std::{
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use activity_core::{
    definition::BoxFuture,
    protocol::{ActivityProtocol, Operation, ProtocolError, ProtocolRequest, ProtocolResponse},
    workflow::{HistoryEvent, WorkflowRef},
};
use tonic::{
    metadata::AsciiMetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Channel, Endpoint},
    Request, Response, Status,
};

use crate::{
    proto::activity_protocol_client::ActivityProtocolClient, service::bearer_header,
    status::from_status, ClientTls, TlsError,
};

/// Where and how to reach an activity server.
///
/// | field | default |
/// |---|---|
/// | `endpoints` | — (`http://host:port` or `https://…`; `http://127.0.0.1:7233` for a local `activity-server serve`); add nodes with [`with_endpoint`](Self::with_endpoint) |
/// | `bearer_token` | none (visible ASCII only: others are refused when connecting) |
/// | `connect_timeout` | 5 s |
/// | `call_timeout` | 30 s, added to the wait of a long poll |
/// | `max_response_size` | 64 MiB |
/// | `tls` | the system's roots, no client certificate |
///
/// Several endpoints (the nodes of one deployment, sharing one store) make the
/// protocol carry on through another node when one cannot be reached: see
/// [`RemoteProtocol`].
///
/// ```
/// use activity_remote::RemoteConfig;
/// let config = RemoteConfig::new("https://node-a:7233")
///     .with_endpoint("https://node-b:7233")
///     .with_tls_ca(std::fs::read("ca.pem").unwrap_or_default())
///     .with_bearer_token("s3cret");
/// assert_eq!(config.endpoints.len(), 2);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// The servers' URLs, e.g. `http://127.0.0.1:7233` or `https://node-a:7233`,
    /// in order of preference. At least one.
    pub endpoints: Vec<String>,
    /// Sent as `authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// Bound on establishing one connection (default 5 s).
    pub connect_timeout: Duration,
    /// Bound on one call, added to the wait of a long poll (default 30 s). A call
    /// without an answer by then fails with [`ProtocolError::Unavailable`].
    pub call_timeout: Duration,
    /// Largest answer accepted, in bytes (default 64 MiB).
    pub max_response_size: usize,
    /// TLS of `https://` endpoints: the CA to trust (default: the system's
    /// roots) and the client's own certificate, if the servers require one.
    pub tls: ClientTls,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("endpoints", &self.endpoints)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_response_size", &self.max_response_size)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RemoteConfig {
    /// The server at `endpoint` (e.g. `http://127.0.0.1:7233`), without a token.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoints: vec![endpoint.into()],
            bearer_token: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            max_response_size: 64 * 1024 * 1024,
            tls: ClientTls::default(),
        }
    }

    /// Adds another node of the same deployment, tried when the ones before it
    /// cannot be reached.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Sends `token` as `authorization: Bearer <token>` on every call.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Trusts the CA certificates in `pem` (instead of the system's roots) for
    /// `https://` endpoints.
    pub fn with_tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca = Some(pem.into());
        self
    }

    /// Presents this certificate chain and key (PEM) to servers that require
    /// client certificates (mutual TLS).
    pub fn with_tls_identity(
        mut self,
        cert_chain: impl Into<Vec<u8>>,
        private_key: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.identity = Some((cert_chain.into(), private_key.into()));
        self
    }

    /// Checks the servers' certificates against `name` rather than the
    /// endpoints' host names.
    pub fn with_tls_domain(mut self, name: impl Into<String>) -> Self {
        self.tls.domain = Some(name.into());
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
    /// The TLS settings cannot be used (an unreadable CA, certificate or key).
    /// Not retryable.
    #[error("invalid TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// No endpoint could be reached ([`RemoteProtocol::connect`] only).
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
pub(crate) struct ClientAuth {
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

pub(crate) type GrpcClient = ActivityProtocolClient<InterceptedService<Channel, ClientAuth>>;

/// One endpoint and its connection.
struct Node {
    endpoint: String,
    /// Every call but a caller's waits.
    client: GrpcClient,
    /// A connection of its own for a caller's waits (results, queries): a
    /// client holding as many waits as the server allows streams on one
    /// connection would otherwise hold up the polls and reports of a worker
    /// sharing this protocol, and so the very results it waits for.
    waits: GrpcClient,
}

/// How many times a call refused by HTTP/2 before the server read it
/// (`REFUSED_STREAM`) is sent again.
const MAX_REFUSALS: u32 = 5;

/// Whether the server refused the call's stream before reading it (HTTP/2
/// `REFUSED_STREAM`): nothing of the call was done.
fn refused_stream(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = error.source();
    }
    false
}

/// Whether `operation` is a caller waiting for an outcome (which may hold its
/// stream for the whole wait), as opposed to a worker's poll or a short call.
fn is_caller_wait(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::WaitOutcome | Operation::WaitWorkflowOutcome | Operation::QueryWorkflow
    )
}

/// The [`ActivityProtocol`] of a remote activity server, over gRPC.
///
/// Cheap to clone (clones share the connections). A connection is
/// re-established on demand: while the server is down, calls fail at once with
/// [`ProtocolError::Unavailable`] (retryable), and the first call after it is
/// back reconnects. Every call is bounded by [`RemoteConfig::call_timeout`]
/// (plus the wait of a long poll).
///
/// # Several endpoints
///
/// With several endpoints ([`RemoteConfig::with_endpoint`]: nodes sharing one
/// store), calls go to one node, and move on to the next when it is
/// unavailable. A call that may be sent twice without effect — reads, long
/// polls, heartbeats, cancel requests, registrations, and the reports of an
/// attempt's outcome, which the engine accepts again when they repeat exactly —
/// is re-issued on the next node at once, so a long poll in flight on a node
/// that dies carries on elsewhere and a completion whose answer was lost is
/// recorded once. Other calls (scheduling, starting or terminating a workflow,
/// completing a workflow task) answer `Unavailable` and the caller's retry goes
/// to the next node.
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
    nodes: Arc<[Node]>,
    /// The node calls go to first.
    current: Arc<AtomicUsize>,
    call_timeout: Duration,
    /// Bytes of stored events asked for per page of a history read.
    history_page_bytes: u64,
}

impl fmt::Debug for RemoteProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProtocol")
            .field("endpoints", &self.endpoints())
            .field("current", &self.endpoint())
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteProtocol {
    /// Connects to the server (a URL, or a [`RemoteConfig`]), failing with
    /// [`ConnectError::Unreachable`] if no endpoint can be reached now. Later
    /// disconnections are survived: see the [type docs](Self).
    pub async fn connect(config: impl Into<RemoteConfig>) -> Result<Self, ConnectError> {
        let config = config.into();
        let (endpoints, auth) = Self::prepare(&config)?;
        let mut first_error = None;
        let mut reached = None;
        for (i, endpoint) in endpoints.iter().enumerate() {
            match endpoint.connect().await {
                Ok(channel) => {
                    reached = Some((i, channel));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| ConnectError::Unreachable {
                        endpoint: config.endpoints[i].clone(),
                        reason: transport_reason(&e),
                    });
                }
            }
        }
        let Some((current, channel)) = reached else {
            return Err(first_error.unwrap_or(ConnectError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given".to_owned(),
            }));
        };
        // The node reached keeps the connection just made; the others connect
        // when first needed.
        let channels = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, endpoint)| {
                let calls = if i == current {
                    channel.clone()
                } else {
                    endpoint.connect_lazy()
                };
                (calls, endpoint.connect_lazy())
            })
            .collect();
        let protocol = Self::with_channels(channels, auth, &config);
        protocol.current.store(current, Ordering::Relaxed);
        Ok(protocol)
    }

    /// Like [`RemoteProtocol::connect`], without connecting now: the first call
    /// connects (for a worker that may start before its server).
    pub fn connect_lazy(config: impl Into<RemoteConfig>) -> Result<Self, ConnectError> {
        let config = config.into();
        let (endpoints, auth) = Self::prepare(&config)?;
        let channels = endpoints
            .iter()
            .map(|e| (e.connect_lazy(), e.connect_lazy()))
            .collect();
        Ok(Self::with_channels(channels, auth, &config))
    }

    /// The URL of the node calls go to now.
    pub fn endpoint(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()].endpoint
    }

    /// Every endpoint, in the configured order.
    pub fn endpoints(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.endpoint.as_str()).collect()
    }

    fn prepare(config: &RemoteConfig) -> Result<(Vec<Endpoint>, ClientAuth), ConnectError> {
        if config.endpoints.is_empty() {
            return Err(ConnectError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given: RemoteConfig needs at least one URL".to_owned(),
            });
        }
        let mut tls = None;
        let endpoints = config
            .endpoints
            .iter()
            .map(|url| {
                let invalid = |reason: String| ConnectError::InvalidEndpoint {
                    endpoint: url.clone(),
                    reason,
                };
                let endpoint =
                    Endpoint::from_shared(url.clone()).map_err(|e| invalid(error_chain(&e)))?;
                let endpoint = match endpoint.uri().scheme_str() {
                    Some("http") => endpoint,
                    Some("https") => {
                        if tls.is_none() {
                            tls = Some(config.tls.to_tonic()?);
                        }
                        let tls = tls.clone().unwrap_or_default();
                        endpoint
                            .tls_config(tls)
                            .map_err(|e| invalid(error_chain(&e)))?
                    }
                    _ => {
                        return Err(invalid(
                            "must start with `http://` or `https://` (TLS)".to_owned(),
                        ))
                    }
                };
                Ok(endpoint
                    .connect_timeout(config.connect_timeout)
                    .initial_connection_window_size(crate::server::CONNECTION_WINDOW)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(Duration::from_secs(10)))
            })
            .collect::<Result<Vec<_>, ConnectError>>()?;
        let header = config
            .bearer_token
            .as_deref()
            .map(bearer_header)
            .transpose()
            .map_err(|reason| ConnectError::InvalidBearerToken { reason })?;
        Ok((endpoints, ClientAuth { header }))
    }

    /// The nodes of `channels`: per endpoint, the connection of its calls and
    /// the one of a caller's waits.
    fn with_channels(
        channels: Vec<(Channel, Channel)>,
        auth: ClientAuth,
        config: &RemoteConfig,
    ) -> Self {
        let client = |channel| {
            ActivityProtocolClient::with_interceptor(channel, auth.clone())
                .max_decoding_message_size(config.max_response_size)
                .max_encoding_message_size(usize::MAX)
        };
        let nodes = channels
            .into_iter()
            .zip(&config.endpoints)
            .map(|((calls, waits), url)| Node {
                endpoint: url.clone(),
                client: client(calls),
                waits: client(waits),
            })
            .collect();
        Self {
            nodes,
            current: Arc::new(AtomicUsize::new(0)),
            call_timeout: config.call_timeout,
            history_page_bytes: (config.max_response_size / 2) as u64,
        }
    }

    /// Sends one unary call of `operation`, bounded by `wait` plus the call
    /// timeout, to the current node; moves to the next node when it is
    /// unavailable, re-issuing the call there if `operation` may be repeated.
    pub(crate) async fn unary<Req, Resp, Fut>(
        &self,
        operation: Operation,
        message: Req,
        wait: Duration,
        call: impl Fn(GrpcClient, Request<Req>) -> Fut,
    ) -> Result<Resp, ProtocolError>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let first = self.current.load(Ordering::Relaxed);
        let mut tried = 0;
        loop {
            let index = (first + tried) % self.nodes.len();
            let node = &self.nodes[index];
            let result = self
                .unary_on(node, operation, message.clone(), wait, &call)
                .await;
            tried += 1;
            match result {
                Err(err) if err.is_retryable() && self.nodes.len() > 1 => {
                    let next = (index + 1) % self.nodes.len();
                    // Later calls start from the next node (unless another call
                    // moved on already).
                    let _ = self.current.compare_exchange(
                        index,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if tried < self.nodes.len() && may_repeat(operation) {
                        tracing::warn!(
                            endpoint = %node.endpoint,
                            next = %self.nodes[next].endpoint,
                            %operation,
                            %err,
                            "node unavailable: sending the call to the next node"
                        );
                        continue;
                    }
                    tracing::warn!(
                        endpoint = %node.endpoint,
                        next = %self.nodes[next].endpoint,
                        %operation,
                        %err,
                        "node unavailable: later calls go to the next node"
                    );
                    return Err(err);
                }
                other => return other,
            }
        }
    }

    async fn unary_on<Req, Resp, Fut>(
        &self,
        node: &Node,
        operation: Operation,
        message: Req,
        wait: Duration,
        call: &impl Fn(GrpcClient, Request<Req>) -> Fut,
    ) -> Result<Resp, ProtocolError>
    where
        Req: Clone,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let rpc = crate::rpcs::rpc_name(operation);
        let bound = wait.saturating_add(self.call_timeout);
        // The server enforces the deadline it is sent; this bounds a server that
        // does not answer at all (a half-open connection).
        let grace = Duration::from_secs(1);
        let client = if is_caller_wait(operation) {
            &node.waits
        } else {
            &node.client
        };
        let mut refusals = 0;
        let answer = loop {
            let mut request = Request::new(message.clone());
            request.set_timeout(bound);
            let answer =
                tokio::time::timeout(bound.saturating_add(grace), call(client.clone(), request))
                    .await;
            match answer {
                // Refused before the server read it (a burst past the stream
                // limit of a connection whose settings had not arrived): sent
                // again, whatever the operation, since nothing was done.
                Ok(Err(status)) if refused_stream(&status) && refusals < MAX_REFUSALS => {
                    refusals += 1;
                    tokio::time::sleep(Duration::from_millis(10 << refusals)).await;
                }
                answer => break answer,
            }
        };
        match answer {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(from_status(&status, rpc, &node.endpoint)),
            Err(_) => Err(ProtocolError::Unavailable {
                message: format!(
                    "`{rpc}` to {} {} {bound:?}",
                    node.endpoint,
                    crate::status::NO_ANSWER
                ),
            }),
        }
    }
}

/// Whether sending `operation` twice has the effect of sending it once (so a
/// call whose answer was lost may go to another node). Reads, long polls,
/// heartbeats, cancel requests, queries and registrations are; so are the reports of an
/// attempt's outcome, which the engine accepts again when they repeat exactly.
/// Any other operation (scheduling, starting or terminating a workflow,
/// completing a workflow task, and operations added later until listed here)
/// answers `Unavailable` instead, and its caller decides.
fn may_repeat(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::PollActivityTasks
            | Operation::RecordHeartbeat
            | Operation::CompleteActivity
            | Operation::FailActivity
            | Operation::ReportCanceled
            | Operation::RequestCancel
            | Operation::DescribeExecution
            | Operation::WaitOutcome
            | Operation::DescribeTaskQueue
            | Operation::PollWorkflowTask
            | Operation::QueryWorkflow
            | Operation::PollWorkflowQuery
            | Operation::RequestCancelWorkflow
            | Operation::DescribeWorkflow
            | Operation::WorkflowHistory
            | Operation::WorkflowHistoryPage
            | Operation::WaitWorkflowOutcome
            | Operation::ListWorkflows
            | Operation::RegisterWorker
            | Operation::ListTypes
    )
}

/// A transport error's causes, with what to check when it is a TLS failure.
fn transport_reason(error: &dyn std::error::Error) -> String {
    let reason = error_chain(error);
    crate::status::with_tls_hint(reason)
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

impl ActivityProtocol for RemoteProtocol {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        match request {
            ProtocolRequest::PollActivityTasks { .. } => Box::pin(self.poll_detached(request)),
            ProtocolRequest::WorkflowHistory { workflow } => Box::pin(async move {
                self.history_in_pages(workflow)
                    .await
                    .map(ProtocolResponse::WorkflowHistory)
            }),
            request => self.send(request),
        }
    }
}

impl RemoteProtocol {
    /// A whole history, read in pages (`WorkflowHistoryPage`) of half the
    /// largest answer accepted, so a history of any size is read
    /// (docs/semantics.md §3.2). The run is the one the first page found: a
    /// latest-run reference is pinned to that run's id for the next pages.
    async fn history_in_pages(
        &self,
        mut workflow: WorkflowRef,
    ) -> Result<Vec<HistoryEvent>, ProtocolError> {
        let protocol: &dyn ActivityProtocol = self;
        let mut history: Vec<HistoryEvent> = Vec::new();
        if workflow.run_id.is_none() {
            let run = protocol.describe_workflow(workflow.clone()).await?;
            workflow.run_id = Some(run.run_id);
        }
        loop {
            let after = history.last().map_or(0, |e| e.event_id);
            let page = protocol
                .workflow_history_page(workflow.clone(), after, self.history_page_bytes)
                .await?;
            if page.is_empty() {
                return Ok(history);
            }
            history.extend(page);
        }
    }
}

impl RemoteProtocol {
    /// A poll for activity tasks runs to its answer even when its caller stops
    /// waiting (its own deadline passed): resetting the call could drop an answer
    /// already on its way, whose attempts would then wait out their start-to-close
    /// timeout. Attempts answered to a caller that has gone are given back to the
    /// engine at once (`ReleaseActivityTasks`, docs/semantics.md §2). The server
    /// ends every poll at the end of its wait, so an abandoned poll lasts no longer
    /// than the wait it asked for.
    async fn poll_detached(
        &self,
        request: ProtocolRequest,
    ) -> Result<ProtocolResponse, ProtocolError> {
        type Polled = Result<ProtocolResponse, ProtocolError>;
        /// Gives back, when the caller stops waiting, an answer sent but not taken.
        struct Answered {
            receiver: tokio::sync::oneshot::Receiver<Polled>,
            protocol: RemoteProtocol,
        }
        impl Drop for Answered {
            fn drop(&mut self) {
                self.receiver.close();
                if let Ok(polled) = self.receiver.try_recv() {
                    tokio::spawn(self.protocol.clone().give_back(polled));
                }
            }
        }
        let this = self.clone();
        let (answer, receiver) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let polled = this.send(request).await;
            if let Err(polled) = answer.send(polled) {
                this.give_back(polled).await;
            }
        });
        let mut answered = Answered {
            receiver,
            protocol: self.clone(),
        };
        (&mut answered.receiver).await.unwrap_or_else(|_| {
            Err(ProtocolError::Internal {
                message: "the task running a poll ended without an answer".into(),
            })
        })
    }

    /// Gives the attempts of a poll's answer back to the engine: its caller had
    /// gone when it arrived.
    async fn give_back(self, polled: Result<ProtocolResponse, ProtocolError>) {
        let Ok(ProtocolResponse::PollActivityTasks(tasks)) = polled else {
            return;
        };
        if tasks.is_empty() {
            return;
        }
        let count = tasks.len();
        let tokens = tasks.into_iter().map(|task| task.task_token).collect();
        match self
            .send(ProtocolRequest::ReleaseActivityTasks { tokens })
            .await
        {
            Ok(_) => tracing::debug!(
                count,
                "attempts answered to a poll whose caller had gone were given back"
            ),
            Err(err) => tracing::warn!(
                count,
                error = %err,
                "attempts answered to a poll whose caller had gone could not be given back; \
                 they are retried after their start-to-close timeout"
            ),
        }
    }
}
