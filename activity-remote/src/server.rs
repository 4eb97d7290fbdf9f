//! The server's connections: TLS, limits and timeouts around the tonic service.
//!
//! [`ActivityService::serve`](crate::ActivityService::serve) accepts
//! connections itself (rather than through tonic's server) so that every
//! connection is bounded in what it can make the server hold, and for how long:
//!
//! - at most [`ServerLimits::max_connections`] at once; one more is answered
//!   with a clear `UNAVAILABLE` ("connection limit reached") and closed;
//! - the TLS handshake and the client's HTTP/2 preface must arrive within
//!   [`ServerLimits::handshake_timeout`]; a plain-text client of a TLS server is
//!   answered, in plain text, that the server requires TLS;
//! - at most [`ServerLimits::max_concurrent_streams`] calls in flight (HTTP/2
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`), each with a send buffer of at most
//!   [`ServerLimits::send_buffer`] bytes: an answer waits for the client to read;
//! - a memory budget of [`ServerLimits::connection_memory`] bytes of answers
//!   (see `budget.rs`): a client that does not read its answers stops being
//!   served, and only it;
//! - a request's body must arrive within [`ServerLimits::request_body_timeout`];
//! - keepalive pings every [`ServerLimits::keepalive_interval`], the connection
//!   closed when one is not answered within [`ServerLimits::keepalive_timeout`];
//!   a connection without a call for [`ServerLimits::idle_timeout`] is closed
//!   (GOAWAY; gRPC clients reconnect on their next call).

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use activity_core::protocol::{Operation, ProtocolError};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{body::Incoming, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::service::Routes;
use tower_service::Service;

use crate::{
    rpcs::operation_of_path, service::ActivityServer, status::to_status, tls::ServerTls, ServeError,
};

mod budget;

use budget::{Budget, CallKind, Ticket};

/// Limits and timeouts of the server's connections (see the module docs of
/// [`ActivityService::serve`](crate::ActivityService::serve)). The defaults
/// suit a server that many workers share; every one can be set on
/// `activity-server serve`.
///
/// ```
/// use std::time::Duration;
/// use activity_remote::ServerLimits;
///
/// let limits = ServerLimits::default()
///     .with_max_connections(200)
///     .with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(limits.max_connections, 200);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Connections served at once (default 1,000); more are refused with
    /// `UNAVAILABLE`.
    pub max_connections: usize,
    /// Calls in flight on one connection (HTTP/2 concurrent streams, default
    /// 1,000); a client queues the others.
    pub max_concurrent_streams: u32,
    /// Bytes of answers one connection may have produced and not yet read
    /// (default 32 MiB); its further calls wait until it reads.
    pub connection_memory: usize,
    /// Bytes one stream may have buffered for sending (default 400 KiB).
    pub send_buffer: usize,
    /// Bound on the TLS handshake and the HTTP/2 preface (default 10 s).
    pub handshake_timeout: Duration,
    /// A connection without a call for this long is closed (default 5 min).
    pub idle_timeout: Duration,
    /// Interval of keepalive pings (default 30 s).
    pub keepalive_interval: Duration,
    /// A ping not answered within this closes the connection (default 20 s).
    pub keepalive_timeout: Duration,
    /// Bound on receiving a request's body once its call is admitted
    /// (default 30 s).
    pub request_body_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1_000,
            max_concurrent_streams: 1_000,
            connection_memory: 32 * 1024 * 1024,
            send_buffer: 400 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            request_body_timeout: Duration::from_secs(30),
        }
    }
}

macro_rules! setters {
    ($($(#[doc = $doc:expr])* $name:ident: $field:ident: $ty:ty;)*) => {
        impl ServerLimits {
            $(
                $(#[doc = $doc])*
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`ServerLimits::max_connections`].
    with_max_connections: max_connections: usize;
    /// Sets [`ServerLimits::max_concurrent_streams`].
    with_max_concurrent_streams: max_concurrent_streams: u32;
    /// Sets [`ServerLimits::connection_memory`].
    with_connection_memory: connection_memory: usize;
    /// Sets [`ServerLimits::send_buffer`].
    with_send_buffer: send_buffer: usize;
    /// Sets [`ServerLimits::handshake_timeout`].
    with_handshake_timeout: handshake_timeout: Duration;
    /// Sets [`ServerLimits::idle_timeout`].
    with_idle_timeout: idle_timeout: Duration;
    /// Sets [`ServerLimits::keepalive_interval`].
    with_keepalive_interval: keepalive_interval: Duration;
    /// Sets [`ServerLimits::keepalive_timeout`].
    with_keepalive_timeout: keepalive_timeout: Duration;
    /// Sets [`ServerLimits::request_body_timeout`].
    with_request_body_timeout: request_body_timeout: Duration;
}

impl ServerLimits {
    /// Refuses zero limits and timeouts, naming the setting.
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        let zero = [
            ("max_connections", self.max_connections == 0),
            ("max_concurrent_streams", self.max_concurrent_streams == 0),
            ("connection_memory", self.connection_memory == 0),
            ("send_buffer", self.send_buffer == 0),
            ("handshake_timeout", self.handshake_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("keepalive_interval", self.keepalive_interval.is_zero()),
            ("keepalive_timeout", self.keepalive_timeout.is_zero()),
            ("request_body_timeout", self.request_body_timeout.is_zero()),
        ];
        match zero.into_iter().find(|(_, is_zero)| *is_zero) {
            Some((field, _)) => Err(ServeError::InvalidLimit { field }),
            None => Ok(()),
        }
    }
}

/// The HTTP/2 connection flow-control window of both ends (8 MiB): h2 closes a
/// connection whose peer has many small DATA frames buffered (flood protection,
/// budget = half the window), and thousands of concurrent small calls from one
/// worker are normal here.
pub(crate) const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Refusals answered at once (connection limit, plain text on a TLS port);
/// beyond them a connection is closed without an answer.
const MAX_REFUSALS: usize = 64;

/// Bound on answering a refused connection.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// What every connection task shares.
struct Shared {
    service: ActivityServer,
    /// Other HTTP routes served on the same port (the dashboard), with HTTP/1.1.
    routes: Option<Routes>,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    /// Whether clients must present a certificate (mutual TLS).
    mutual_tls: bool,
    refusals: Arc<Semaphore>,
    stop: CancellationToken,
}

/// Accepts and serves connections until `shutdown` resolves; then stops
/// accepting, asks every connection to finish its calls (GOAWAY) and returns
/// when they have. Dropped before that (aborted), it drops every connection.
pub(crate) async fn serve(
    service: ActivityServer,
    routes: Option<Routes>,
    limits: ServerLimits,
    tls: Option<ServerTls>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    limits.check()?;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        service,
        routes,
        mutual_tls: tls
            .as_ref()
            .is_some_and(ServerTls::requires_client_certificates),
        tls: tls.map(|tls| TlsAcceptor::from(tls.config())),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
        stop: CancellationToken::new(),
        limits,
    });
    let tracker = TaskTracker::new();
    // Dropping this future (aborting the server) drops every connection at once.
    let kill = CancellationToken::new();
    let _kill_on_drop = kill.clone().drop_guard();
    let spawn = |task: Pin<Box<dyn Future<Output = ()> + Send>>| {
        let kill = kill.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = kill.cancelled() => {}
                () = task => {}
            }
        });
    };
    let mut warned_full = None::<Instant>;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: the listener stays,
                    // and accepting resumes once connections close.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small answers go out at once: with Nagle's algorithm a long-poll
        // answer waits for the client's delayed ACK (≈ 40 ms per call).
        let _ = stream.set_nodelay(true);
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => spawn(Box::pin(connection(
                stream,
                peer,
                permit,
                Arc::clone(&shared),
            ))),
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        %peer,
                        max_connections = shared.limits.max_connections,
                        "connection limit reached: refusing new connections (raise --max-connections?)"
                    );
                }
                let error = ProtocolError::Unavailable {
                    message: format!(
                        "the activity server has reached its limit of {} connections; \
                         retry later or on another node (the server's operator can raise \
                         `serve --max-connections`)",
                        shared.limits.max_connections
                    ),
                };
                if let Ok(permit) = Arc::clone(&shared.refusals).try_acquire_owned() {
                    let shared = Arc::clone(&shared);
                    spawn(Box::pin(async move {
                        let _permit = permit;
                        refuse_after_handshake(stream, &shared, error).await;
                    }));
                }
            }
        }
    }
    shared.stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Whether `path` is one of the gRPC service's (`/activity.v1.ActivityProtocol/…`).
fn is_grpc_path(path: &str) -> bool {
    path.starts_with("/activity.v1.")
}

/// The first bytes of an HTTP/2 client (the connection preface).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes a client sends first: the preface and the header of its SETTINGS frame.
const HANDSHAKE_BYTES: usize = PREFACE.len() + 9;

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let deadline = tokio::time::Instant::now() + shared.limits.handshake_timeout;
    let Some(acceptor) = &shared.tls else {
        return serve_connection(stream, peer, deadline, &shared).await;
    };
    match tokio::time::timeout_at(deadline, looks_like_plain_http2(&stream)).await {
        Err(_) => {
            tracing::info!(%peer, timeout = ?shared.limits.handshake_timeout, "no TLS handshake within the handshake timeout: connection closed");
            return;
        }
        Ok(true) => {
            tracing::info!(%peer, "plain-text HTTP/2 on a TLS server: refused");
            let error = ProtocolError::invalid_argument(
                "endpoint",
                "this activity server requires TLS: connect with an `https://` URL (and the CA \
                 that signed the server's certificate)",
            );
            return refuse(stream, error).await;
        }
        Ok(false) => {}
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) if shared.mutual_tls && tls.get_ref().1.peer_certificates().is_none() => {
            tracing::info!(%peer, "TLS client without a certificate on a mutual-TLS server: refused");
            let error = ProtocolError::invalid_argument(
                "tls_identity",
                "this activity server requires a client certificate signed by its client CA \
                 (mutual TLS): give one (RemoteConfig::with_tls_identity, or `--tls-cert` and \
                 `--tls-key`)",
            );
            refuse(tls, error).await;
        }
        Ok(Ok(tls)) => serve_connection(tls, peer, deadline, &shared).await,
        Ok(Err(err)) => tracing::info!(%peer, %err, "TLS handshake failed: connection closed"),
        Err(_) => {
            tracing::info!(%peer, timeout = ?shared.limits.handshake_timeout, "no TLS handshake within the handshake timeout: connection closed")
        }
    }
}

/// Whether the client's first bytes are a plain-text HTTP/2 preface (a TLS
/// client starts with a handshake record, byte 0x16).
async fn looks_like_plain_http2(stream: &TcpStream) -> bool {
    let mut first = [0_u8; 4];
    loop {
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n < first.len() && PREFACE.starts_with(&first[..n]) => {
                // Wait for more bytes.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(n) => return PREFACE.starts_with(&first[..n]),
        }
    }
}

/// Serves one connection's HTTP/2 session over `io`.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    handshake_deadline: tokio::time::Instant,
    shared: &Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let counted = Counted::new(io);
    let read = Arc::clone(&counted.read);
    let guard = Arc::new(Guard {
        budget: Budget::new(limits.connection_memory),
        activity: Activity::new(),
        body_timeout: limits.request_body_timeout,
    });
    let service = shared.service.clone();
    let routes = shared.routes.clone();
    let svc = service_fn({
        let guard = Arc::clone(&guard);
        move |request: http::Request<Incoming>| {
            let guard = Arc::clone(&guard);
            let mut service = service.clone();
            let routes = routes.clone();
            async move {
                let response = match routes {
                    Some(routes) if !is_grpc_path(request.uri().path()) => {
                        guard.call_route(routes, request).await
                    }
                    _ => guard.call(&mut service, request).await,
                };
                Ok::<_, Infallible>(response)
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_send_buf_size(limits.send_buffer)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    // HTTP/1.1 only for the other routes (a browser): gRPC is HTTP/2.
    let builder = if shared.routes.is_some() {
        builder
    } else {
        builder.http2_only()
    };
    let conn = builder.serve_connection(TokioIo::new(counted), svc);
    let mut conn = std::pin::pin!(conn);
    let mut handshaken = false;
    let mut stopping = false;
    loop {
        let idle_at = guard.activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(handshake_deadline), if !handshaken => {
                if read.load(Ordering::Relaxed) < HANDSHAKE_BYTES {
                    tracing::info!(
                        %peer,
                        timeout = ?limits.handshake_timeout,
                        "no HTTP/2 handshake within the handshake timeout: connection closed"
                    );
                    return;
                }
                handshaken = true;
            }
            () = sleep_until_idle(idle_at), if !stopping => {
                if guard.activity.is_idle_for(limits.idle_timeout) {
                    tracing::debug!(%peer, timeout = ?limits.idle_timeout, "idle connection: closing");
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
            }
            () = shared.stop.cancelled(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

async fn sleep_until_idle(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Answers every call of a connection with `error`, then closes it.
async fn refuse<IO>(io: IO, error: ProtocolError)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let answered = Arc::new(tokio::sync::Notify::new());
    let svc = service_fn({
        let answered = Arc::clone(&answered);
        move |_request: http::Request<Incoming>| {
            answered.notify_one();
            let response = to_status(&error).into_http::<tonic::body::Body>();
            std::future::ready(Ok::<_, Infallible>(response))
        }
    });
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new()).max_concurrent_streams(16);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = answered.notified() => {}
        }
        // Let the answer (and those of calls sent with it) go out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.as_mut().graceful_shutdown();
        let _ = conn.as_mut().await;
    })
    .await;
}

/// A connection over the limit: answered (after the TLS handshake on a TLS
/// server) with `error`.
async fn refuse_after_handshake(stream: TcpStream, shared: &Shared, error: ProtocolError) {
    match &shared.tls {
        None => refuse(stream, error).await,
        Some(acceptor) => {
            if let Ok(Ok(tls)) = tokio::time::timeout(REFUSAL_TIME, acceptor.accept(stream)).await {
                refuse(tls, error).await;
            }
        }
    }
}

/// The calls of one connection: admitted within its budget, timed while their
/// body arrives, counted for the idle timeout.
struct Guard {
    budget: Arc<Budget>,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

impl Guard {
    /// A request for the other routes (the dashboard): counted for the idle
    /// timeout and timed while its body arrives; the routes bound their own
    /// answers.
    async fn call_route(
        &self,
        mut routes: Routes,
        request: http::Request<Incoming>,
    ) -> http::Response<tonic::body::Body> {
        let busy = self.activity.start();
        let timeout = self.body_timeout;
        let request = request.map(|body| tonic::body::Body::new(TimedBody::new(body, timeout)));
        let response = match routes.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        drop(busy);
        response
    }

    async fn call(
        &self,
        service: &mut ActivityServer,
        request: http::Request<Incoming>,
    ) -> http::Response<tonic::body::Body> {
        let busy = self.activity.start();
        let kind = match operation_of_path(request.uri().path()) {
            Some(op) if Operation::is_long_poll(op) => CallKind::LongPoll,
            _ => CallKind::Short,
        };
        let ticket = self.budget.admit(kind).await;
        let timeout = self.body_timeout;
        let request = request.map(|body| tonic::body::Body::new(TimedBody::new(body, timeout)));
        let response = match service.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        response.map(|body| {
            tonic::body::Body::new(MeteredBody {
                inner: tonic::body::Body::new(body),
                ticket,
                _busy: busy,
            })
        })
    }
}

/// When the connection last had no call in flight, and how many it has.
struct Activity {
    in_flight: AtomicUsize,
    quiet_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            quiet_since: Mutex::new(Instant::now()),
        })
    }

    fn start(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    /// When the connection will have been idle for `timeout`, if it is idle now.
    fn idle_deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            // Checked again after the next change: poll at the timeout.
            return Some(tokio::time::Instant::now() + timeout);
        }
        let since = *self
            .quiet_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(tokio::time::Instant::from_std(since + timeout))
    }

    fn is_idle_for(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && self
                .quiet_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                >= timeout
    }
}

/// One call in flight; the connection is quiet again when the last one drops.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut quiet = self
            .0
            .quiet_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *quiet = Instant::now();
        }
    }
}

/// A request body that must be complete within a timeout.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                Poll::Ready(frame.map(|f| f.map_err(|e| tonic::Status::from_error(Box::new(e)))))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(to_status(&ProtocolError::Unavailable {
                    message: format!(
                        "the request's body did not arrive within {:?} (the server's \
                         --request-body-timeout)",
                        this.timeout
                    ),
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body: its bytes count against the connection's budget until it
/// is done.
struct MeteredBody {
    inner: tonic::body::Body,
    ticket: Ticket,
    _busy: Busy,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                this.ticket.answered(data.len());
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An IO that counts the bytes read (to tell a handshake from silence).
struct Counted<IO> {
    inner: IO,
    read: Arc<AtomicUsize>,
}

impl<IO> Counted<IO> {
    fn new(inner: IO) -> Self {
        Self {
            inner,
            read: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.read.fetch_add(read, Ordering::Relaxed);
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
