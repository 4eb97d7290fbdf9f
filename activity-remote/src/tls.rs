//! TLS (rustls) on both ends: [`ServerTls`] for the service, [`ClientTls`] for
//! [`RemoteProtocol`](crate::RemoteProtocol). Certificates and keys are PEM.

use std::{fmt, sync::Arc};

use tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore,
};

/// A certificate, key or CA could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input holds nothing usable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which input (e.g. "server certificate chain").
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match the
    /// certificate).
    #[error("cannot set up TLS: {0}")]
    Config(#[from] rustls::Error),
}

fn invalid(what: &'static str, reason: impl fmt::Display) -> TlsError {
    TlsError::Invalid {
        what,
        reason: reason.to_string(),
    }
}

fn certificates(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, e))?;
    if certs.is_empty() {
        return Err(invalid(what, "no `BEGIN CERTIFICATE` block found"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid("private key", e))
}

fn roots(what: &'static str, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(what, pem)? {
        roots.add(cert).map_err(|e| invalid(what, e))?;
    }
    Ok(roots)
}

/// The server's TLS: its certificate chain and key, and optionally the CA whose
/// client certificates it requires (mutual TLS).
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use activity_remote::ServerTls;
/// let tls = ServerTls::from_pem(&std::fs::read("server.pem")?, &std::fs::read("server.key")?, None)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    mutual: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_certificates_required", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS with the certificate chain `cert_chain` (PEM, the server's first) and
    /// its `private_key` (PEM: PKCS#8, PKCS#1 or SEC1). With `client_ca` (PEM),
    /// every client must present a certificate signed by it.
    pub fn from_pem(
        cert_chain: &[u8],
        private_key_pem: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let certs = certificates("server certificate chain", cert_chain)?;
        let key = private_key(private_key_pem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some(ca) => {
                let roots = roots("client CA", ca)?;
                // A client without a certificate completes the handshake and is
                // answered, over TLS, that it needs one (clearer than a TLS
                // alert); a certificate that does not verify fails the handshake.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| invalid("client CA", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            mutual: client_ca.is_some(),
        })
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.mutual
    }

    pub(crate) fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }
}

/// A client's TLS for `https://` endpoints: the CA it trusts (the system's
/// roots when unset) and optionally its own certificate and key (for a server
/// that requires client certificates).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ClientTls {
    /// PEM of the CA (or CAs) that signed the servers' certificates.
    pub ca: Option<Vec<u8>>,
    /// PEM of the client's certificate chain and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to check the server's certificate against, when it differs
    /// from the endpoint's host.
    pub domain: Option<String>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.as_ref().map(|_| "<set>"))
            .field("identity", &self.identity.as_ref().map(|_| "<set>"))
            .field("domain", &self.domain)
            .finish()
    }
}

impl ClientTls {
    /// Checks the PEM inputs now (so a bad file is reported at start) and builds
    /// tonic's TLS settings.
    pub(crate) fn to_tonic(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        let mut config = tonic::transport::ClientTlsConfig::new();
        match &self.ca {
            Some(ca) => {
                roots("CA certificate", ca)?;
                config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            None => config = config.with_native_roots(),
        }
        if let Some((cert, key)) = &self.identity {
            certificates("client certificate chain", cert)?;
            private_key(key)?;
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        Ok(config)
    }
}

/// Serves `routes` (e.g. the web dashboard, `activity_dashboard::Dashboard::router`)
/// over TLS on `listener`, HTTP/1.1 and HTTP/2, until `shutdown` resolves: what
/// `activity-server serve --http ADDR` uses when the server has a certificate,
/// so the dashboard on its own port is as private as on the gRPC one. A
/// connection whose handshake takes over 10 s is dropped.
///
/// ```no_run
/// # async fn demo(routes: tonic::service::Routes, tls: activity_remote::ServerTls) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// activity_remote::serve_routes_tls(routes, &tls, listener, std::future::pending()).await
/// # }
/// ```
pub async fn serve_routes_tls(
    routes: impl Into<tonic::service::Routes>,
    tls: &ServerTls,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower_service::Service as _;

    let routes = routes.into();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, routes) = (acceptor.clone(), routes.clone());
        tokio::spawn(async move {
            let handshake = acceptor.accept(stream);
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                let mut routes = routes.clone();
                async move { routes.call(request.map(tonic::body::Body::new)).await }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
