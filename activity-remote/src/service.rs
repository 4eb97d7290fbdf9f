//! The server side: [`ActivityService`], a thin tonic adapter over any
//! [`ActivityProtocol`], and its bearer-token check, [`BearerAuth`].

use std::{fmt, future::Future, sync::Arc};

use activity_core::protocol::ActivityProtocol;
use tokio::net::TcpListener;
use tonic::{
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor, Routes},
    Request, Status,
};

use crate::{proto::activity_protocol_server::ActivityProtocolServer, ServerLimits, ServerTls};

/// The service as tonic serves it: the generated server behind the auth check.
/// Add it to a `tonic::transport::Server` (see [`ActivityService::into_server`]).
pub type ActivityServer = InterceptedService<ActivityProtocolServer<ActivityService>, BearerAuth>;

/// The gRPC service of the activity protocol over any [`ActivityProtocol`]
/// (typically `activity_engine::Engine::protocol()`).
///
/// Each rpc converts the request, calls the protocol, and converts the answer
/// back; a refused call answers the status of its
/// [`ProtocolError`](activity_core::ProtocolError) (see the
/// crate docs). Long polls pass the caller's wait through (the engine bounds it).
#[derive(Clone)]
pub struct ActivityService {
    protocol: Arc<dyn ActivityProtocol>,
    max_request_size: usize,
    max_response_size: usize,
    bearer_token: Option<String>,
    http_routes: Option<Routes>,
    limits: ServerLimits,
    tls: Option<ServerTls>,
}

impl fmt::Debug for ActivityService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityService")
            .field("max_request_size", &self.max_request_size)
            .field("max_response_size", &self.max_response_size)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("http_routes", &self.http_routes.is_some())
            .field("limits", &self.limits)
            .field("tls", &self.tls)
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
    /// A size limit or timeout is zero. Not retryable.
    #[error("invalid `{field}`: must be greater than zero")]
    InvalidLimit {
        /// The setting.
        field: &'static str,
    },
}

impl ActivityService {
    /// The protocol served.
    pub(crate) fn protocol(&self) -> &Arc<dyn ActivityProtocol> {
        &self.protocol
    }

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
            limits: ServerLimits::default(),
            tls: None,
        }
    }

    /// Sets the limits and timeouts of the connections [`ActivityService::serve`]
    /// accepts.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves over TLS (see [`ServerTls`]); a plain-text client is answered
    /// that the server requires TLS.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
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
    /// [`ProtocolError::PayloadTooLarge`](activity_core::ProtocolError::PayloadTooLarge).
    /// (Payloads within it are still checked
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
    /// accepts HTTP/1.1 too (and plain HTTP/2 requests to other paths), and sends every request whose path is not one of
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
    /// default); port 0 picks a free port, see `TcpListener::local_addr`. Every
    /// connection is bounded by the service's [`ServerLimits`] and served over
    /// its TLS, if set; see [`ServerLimits`] for what each limit does.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let (limits, tls) = (self.limits.clone(), self.tls.clone());
        let routes = self.http_routes.clone();
        let server = self.into_server()?;
        crate::server::serve(server, routes, limits, tls, listener, shutdown).await
    }
}

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

/// The `authorization` value for `token`, checked: visible ASCII only (an HTTP
/// header takes other bytes too, but a client in another language, a proxy or a
/// terminal may not send them back the same way, so both ends refuse them at
/// start).
pub(crate) fn bearer_header(token: &str) -> Result<AsciiMetadataValue, String> {
    if token.is_empty() {
        return Err("it is empty".to_owned());
    }
    if let Some((at, c)) = token
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_graphic())
    {
        return Err(format!(
            "character {} is {}: a bearer token must be visible ASCII (letters, digits and \
             punctuation, no spaces or control characters), as it is sent in an HTTP header",
            at + 1,
            match c {
                ' ' => "a space".to_owned(),
                c if c.is_control() => format!("the control character {}", c.escape_unicode()),
                c => format!("`{c}` ({}), not ASCII", c.escape_unicode()),
            }
        ));
    }
    MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|err| format!("it cannot be sent in an HTTP header: {err}"))
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
        let refused = |token: &str| match BearerAuth::new(Some(token)) {
            Err(err) => err.to_string(),
            Ok(_) => panic!("`{token}` was accepted"),
        };
        let non_ascii = refused("s3crét");
        assert!(
            non_ascii.contains("character 5 is `é` (\\u{e9}), not ASCII"),
            "{non_ascii}"
        );
        assert!(refused("two words").contains("character 4 is a space"));
        assert!(refused("tab\tbed").contains("control character \\u{9}"));
        // The client refuses the same tokens before connecting.
        for token in ["s3crét", "two words", ""] {
            let err = crate::RemoteProtocol::connect_lazy(
                crate::RemoteConfig::new("http://127.0.0.1:1").with_bearer_token(token),
            )
            .expect_err("refused");
            assert!(
                matches!(err, crate::ConnectError::InvalidBearerToken { .. }),
                "{err}"
            );
        }
        assert!(BearerAuth::new(Some("Ab0-._~+/=!#$%&'*^`|")).is_ok());
    }
}
