//! The web dashboard: what the engine is doing, in a browser.
//!
//! [`Dashboard`] serves HTML pages over any [`ActivityProtocol`] — the embedded
//! engine (`activity_engine::Engine::protocol()`) or a remote server's — so the
//! same pages work in a process that embeds the engine (whose SQLite file no
//! other process can open) and in `activity-server serve`:
//!
//! - **Workflows**: filtered by state, type and id prefix, newest first, paged;
//!   a run's page shows its input and outcome, its activities (attempt, last
//!   failure, last heartbeat details and time, result) and its history as a
//!   timeline.
//! - **Activities**: every execution, standalone or of a workflow, filtered by
//!   who scheduled it, state, type and queue.
//! - **Task queues**: backlog, dispatchable attempts, rate limit, pollers with
//!   the time each was last seen.
//! - **Types**: what workers registered, with their JSON Schemas.
//! - **Actions**: cancel or terminate a workflow run (with a reason), cancel
//!   an activity.
//! - **`/metrics`**: the process's metrics (the engine's and any worker's in
//!   it) in Prometheus' text format, through [`prometheus_recorder`].
//!
//! Pages refresh themselves every two seconds (a small script fetches the
//! page's content again; nothing refreshes while a form field has the focus).
//! Every asset is compiled into the binary: the pages load nothing from
//! anywhere else. Every name and payload is escaped (maud escapes whatever it
//! renders), and a Content-Security-Policy allows only the dashboard's own
//! script and style.
//!
//! With a token ([`Dashboard::with_token`], the server's bearer token) every
//! page and action needs it: a browser logs in once with the token and keeps a
//! session in an HttpOnly, SameSite=Strict cookie; a program (a Prometheus
//! scraper) may send `Authorization: Bearer <token>` instead.
//!
//! Serving it from an embedded engine is one call:
//!
//! ```
//! use activity_dashboard::Dashboard;
//! use activity_engine::{Engine, EngineConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::in_memory()).await?;
//! let dashboard = Dashboard::new(engine.protocol()).spawn("127.0.0.1:0").await?;
//! println!("dashboard at {}", dashboard.url());
//! dashboard.stop().await?;
//! # Ok(()) }
//! ```
//!
//! [`Dashboard::router`] gives the pages as an [`axum::Router`] instead, to
//! serve next to other routes (as `activity-server` does, on its gRPC port).

use std::{fmt, future::Future, net::SocketAddr, sync::Arc};

use activity_core::ActivityProtocol;
use axum::{
    routing::{get, post},
    Router,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

mod auth;
pub mod json;
mod pages;
mod prometheus;
mod render;

pub use prometheus::prometheus_recorder;

/// The dashboard could not be set up or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The token is empty. Not retryable.
    #[error("the dashboard's token must not be empty")]
    EmptyToken,
    /// The address cannot be listened on.
    #[error("cannot listen on {addr} for the dashboard: {source} (is something else listening there? pick another address)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the dashboard's HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The server task ended abnormally.
    #[error("the dashboard's server task failed: {0}")]
    Task(tokio::task::JoinError),
}

/// The web dashboard over a protocol. See the [crate docs](crate).
#[derive(Clone)]
pub struct Dashboard {
    protocol: Arc<dyn ActivityProtocol>,
    token: Option<String>,
    secure_cookies: bool,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub(crate) protocol: Arc<dyn ActivityProtocol>,
    pub(crate) auth: Option<auth::Auth>,
    pub(crate) secure_cookies: bool,
    /// What `/metrics` renders, or why there is nothing to render.
    pub(crate) metrics: Result<metrics_exporter_prometheus::PrometheusHandle, String>,
}

impl Dashboard {
    /// A dashboard over `protocol`, open to whoever reaches it (bind it to
    /// loopback, or set a token).
    pub fn new(protocol: Arc<dyn ActivityProtocol>) -> Self {
        Self {
            protocol,
            token: None,
            secure_cookies: false,
        }
    }

    /// Requires `token` for every page and action (the server's bearer token).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Marks the session cookie `Secure` (sent over HTTPS only): set it when
    /// the dashboard is served over TLS.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// The pages, actions and assets as a router.
    pub fn router(self) -> Result<Router, DashboardError> {
        let auth = match self.token {
            Some(token) if token.is_empty() => return Err(DashboardError::EmptyToken),
            Some(token) => Some(auth::Auth::new(&token)),
            None => None,
        };
        let app = Arc::new(App {
            protocol: self.protocol,
            auth,
            secure_cookies: self.secure_cookies,
            metrics: prometheus_recorder(),
        });
        Ok(Router::new()
            .route("/", get(pages::home))
            .route("/workflows", get(pages::workflows))
            .route("/workflow", get(pages::workflow))
            .route("/workflow/cancel", post(pages::cancel_workflow))
            .route("/workflow/terminate", post(pages::terminate_workflow))
            .route("/activities", get(pages::activities))
            .route("/activity", get(pages::activity))
            .route("/activity/cancel", post(pages::cancel_activity))
            .route("/task-queues", get(pages::task_queues))
            .route("/types", get(pages::types))
            .route("/metrics", get(prometheus::metrics))
            .route("/login", get(auth::login_page).post(auth::login))
            .route("/logout", post(auth::logout))
            .route("/assets/style.css", get(render::style))
            .route("/assets/app.js", get(render::script))
            .fallback(pages::not_found)
            .layer(axum::middleware::map_response(render::security_headers))
            .with_state(app))
    }

    /// Serves on `listener` until `shutdown` resolves, then lets the requests
    /// in flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DashboardError> {
        let router = self.router()?;
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(DashboardError::Serve)
    }

    /// Binds `addr` (e.g. `"127.0.0.1:8233"`; port 0 picks a free one) and
    /// serves in a background task until [`RunningDashboard::stop`].
    pub async fn spawn(
        self,
        addr: impl tokio::net::ToSocketAddrs + fmt::Display,
    ) -> Result<RunningDashboard, DashboardError> {
        let shown = addr.to_string();
        let bind = |source| DashboardError::Bind {
            addr: shown.clone(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        // Check the settings before spawning, so a bad one is reported here.
        drop(self.clone().router()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async {
            let _ = stopped.await;
        }));
        tracing::info!(addr = %local_addr, "dashboard serving");
        Ok(RunningDashboard {
            local_addr,
            stop,
            task,
        })
    }
}

/// A dashboard serving in the background ([`Dashboard::spawn`]).
#[derive(Debug)]
pub struct RunningDashboard {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DashboardError>>,
}

impl RunningDashboard {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its address as an `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections, lets the requests in flight finish, and
    /// waits for the server to end.
    pub async fn stop(self) -> Result<(), DashboardError> {
        let _ = self.stop.send(());
        self.task.await.map_err(DashboardError::Task)?
    }
}
