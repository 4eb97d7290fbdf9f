//! The client side: [`RemoteProtocol`], the [`ActivityProtocol`] of a remote
//! activity server.

use std::{fmt, future::Future, time::Duration};

use activity_core::{
    definition::BoxFuture,
    protocol::{ActivityProtocol, ProtocolError, ProtocolRequest, ProtocolResponse},
};
use tonic::{
    metadata::AsciiMetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Channel, Endpoint},
    Request, Response, Status,
};

use crate::{
    proto::activity_protocol_client::ActivityProtocolClient, service::bearer_header,
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
    pub(crate) async fn unary<Req, Resp, Fut>(
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

impl ActivityProtocol for RemoteProtocol {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        self.send(request)
    }
}
