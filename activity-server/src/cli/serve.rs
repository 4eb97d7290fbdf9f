//! `activity-server serve`: the engine on a SQLite file, or on a PostgreSQL
//! database shared with other servers, behind the gRPC service.
//!
//! Shutdown (SIGTERM or Ctrl-C): stop accepting connections, give the calls in
//! flight `--shutdown-grace` to finish, then close the engine (which ends the
//! long polls still waiting, with a retryable `Unavailable`), wait for the server
//! to drain, and exit. Whatever the engine acknowledged was committed before its
//! answer, so a SIGKILL instead loses nothing acknowledged either.

use std::io::Write;

use activity_dashboard::{Dashboard, DashboardError};
use activity_engine::{store::postgres::redacted, Engine, EngineConfig, EngineError};
use activity_remote::{ActivityService, ServeError, ServerTls};
use tokio::{net::TcpListener, sync::watch};

use super::{ServeArgs, ServeTls};

/// The server could not start, or failed while serving.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeFailure {
    /// The engine could not open its store.
    #[error("cannot open the engine on `{path}`: {source}")]
    Engine {
        /// The database file, or URL (password redacted).
        path: String,
        /// Why.
        source: EngineError,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source} (is another server already running there? pick another port with --listen)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC service failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The dashboard could not be set up or failed.
    #[error(transparent)]
    Dashboard(#[from] DashboardError),
    /// A TLS file cannot be read or used.
    #[error("cannot serve over TLS: {0}")]
    Tls(String),
    /// The server task ended abnormally.
    #[error("the gRPC server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The signal handlers could not be installed.
    #[error("cannot install the shutdown signal handlers: {0}")]
    Signal(std::io::Error),
}

/// Installs the handlers now (so a failure is reported before serving); the
/// future resolves on SIGTERM or Ctrl-C (SIGINT) with the signal's name.
fn shutdown_signal(
) -> Result<impl std::future::Future<Output = &'static str> + Send + 'static, ServeFailure> {
    #[cfg(unix)]
    let mut term = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate()).map_err(ServeFailure::Signal)?
    };
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = ctrl_c() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            ctrl_c().await;
            "Ctrl-C"
        }
    })
}

/// Resolves on Ctrl-C; never if its handler cannot be installed (SIGTERM still works).
async fn ctrl_c() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!(%err, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}

/// Runs the server until a shutdown signal.
pub(crate) async fn run(args: ServeArgs) -> Result<(), ServeFailure> {
    let signal = shutdown_signal()?;
    let db = args.db.to_string_lossy();
    let (config, path) = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        (EngineConfig::postgres(db.as_ref()), redacted(&db))
    } else {
        (EngineConfig::file(&args.db), args.db.display().to_string())
    };
    let config = config
        .with_max_payload_size(args.max_payload_bytes)
        .with_retention(args.retention)
        .with_history_limit(args.history_max_events, args.history_max_bytes)
        .with_history_warning(args.history_warn_events, args.history_warn_bytes);
    let engine = Engine::open(config)
        .await
        .map_err(|source| ServeFailure::Engine {
            path: path.clone(),
            source,
        })?;
    let result = serve(&engine, &args, &path, signal).await;
    engine.close().await;
    tracing::info!("engine closed; stopped");
    result
}

/// The server's TLS from `serve`'s flags, if given.
fn server_tls(args: &ServeTls) -> Result<Option<ServerTls>, ServeFailure> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |arg: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ServeFailure::Tls(format!("cannot read {arg} `{}`: {e}", path.display())))
    };
    let cert = read("--tls-cert", cert)?;
    let key = read("--tls-key", key)?;
    let client_ca = args
        .tls_client_ca
        .as_deref()
        .map(|path| read("--tls-client-ca", path))
        .transpose()?;
    ServerTls::from_pem(&cert, &key, client_ca.as_deref())
        .map(Some)
        .map_err(|e| ServeFailure::Tls(e.to_string()))
}

async fn serve(
    engine: &Engine,
    args: &ServeArgs,
    db: &str,
    signal: impl std::future::Future<Output = &'static str>,
) -> Result<(), ServeFailure> {
    let mut service = ActivityService::new(engine.protocol())
        .with_max_request_size(args.max_request_bytes)
        .with_limits(args.limits.to_limits());
    let mut dashboard = Dashboard::new(engine.protocol());
    if let Some(token) = &args.token {
        service = service.with_bearer_token(token.clone());
        dashboard = dashboard.with_token(token.clone());
    }
    let tls = server_tls(&args.tls)?;
    if let Some(tls) = &tls {
        service = service.with_tls(tls.clone());
    }
    // Over TLS (on either port) the session cookie is sent over TLS only.
    dashboard = dashboard.with_secure_cookies(tls.is_some());
    // Check the limits and the token before listening.
    drop(service.clone().into_server()?);
    let separate_dashboard = match args.http {
        Some(http) => Some((
            dashboard.clone(),
            TcpListener::bind(http)
                .await
                .map_err(|source| ServeFailure::Bind { addr: http, source })?,
        )),
        None => {
            service = service.with_http_routes(dashboard.router()?);
            None
        }
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeFailure::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeFailure::Bind {
        addr: args.listen,
        source,
    })?;
    if !addr.ip().is_loopback() && tls.is_none() {
        if args.token.is_none() {
            tracing::warn!(%addr, "listening beyond loopback without TLS and without a bearer token: anyone who can reach this address can act on every activity; set --token and --tls-cert/--tls-key");
        } else {
            tracing::warn!(%addr, "listening beyond loopback without TLS: the bearer token (and every payload) travels in clear; set --tls-cert and --tls-key");
        }
    }
    tracing::info!(
        %addr,
        db = %db,
        auth = args.token.is_some(),
        tls = tls.is_some(),
        mutual_tls = tls.as_ref().is_some_and(ServerTls::requires_client_certificates),
        max_request_bytes = args.max_request_bytes,
        max_payload_bytes = args.max_payload_bytes,
        "serving"
    );
    let (stop, mut stopped) = watch::channel(false);
    let dashboard_addr = match &separate_dashboard {
        Some((_, listener)) => listener.local_addr().map_err(|source| ServeFailure::Bind {
            addr: args.http.unwrap_or(addr),
            source,
        })?,
        None => addr,
    };
    if let Some((dashboard, listener)) = separate_dashboard {
        let mut stopped = stop.subscribe();
        let dashboard_tls = tls.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let served = match &dashboard_tls {
                Some(tls) => match dashboard.router() {
                    Ok(router) => {
                        activity_remote::serve_routes_tls(router, tls, listener, shutdown)
                            .await
                            .map_err(|err| err.to_string())
                    }
                    Err(err) => Err(err.to_string()),
                },
                None => dashboard
                    .serve(listener, shutdown)
                    .await
                    .map_err(|err| err.to_string()),
            };
            if let Err(err) = served {
                tracing::error!(%err, "the dashboard stopped");
            }
        });
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{dashboard_addr}/"), "dashboard");
    // The one line on stdout: scripts (and the process tests) wait for it.
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "activity-server listening on {addr}");
        let _ = stdout.flush();
    }

    let mut server = tokio::spawn(service.serve(listener, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    tokio::select! {
        result = &mut server => {
            // The server ended by itself: a transport failure.
            return result?.map_err(ServeFailure::from);
        }
        name = signal => {
            tracing::info!(signal = name, "shutting down: no new connections, letting calls in flight finish");
        }
    }
    stop.send_replace(true);
    match tokio::time::timeout(args.shutdown_grace, &mut server).await {
        Ok(result) => result?.map_err(ServeFailure::from),
        Err(_) => {
            tracing::info!(grace = ?args.shutdown_grace, "calls still in flight after the grace period: closing the engine ends them");
            engine.close().await;
            server.await?.map_err(ServeFailure::from)
        }
    }
}
