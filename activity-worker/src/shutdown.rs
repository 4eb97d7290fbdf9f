//! Graceful shutdown: a handle to request it, and the usual process signals.

use tokio::sync::watch;

/// Requests a worker's graceful shutdown. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    sender: watch::Sender<bool>,
}

impl ShutdownHandle {
    pub(crate) fn new() -> Self {
        Self {
            sender: watch::channel(false).0,
        }
    }

    /// Starts the graceful shutdown: polling stops at once, running activities get
    /// the grace period to finish before they are cancelled.
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
    }

    /// Whether shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves when shutdown is requested.
    pub(crate) async fn requested(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|requested| *requested).await;
    }
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix: pass it to
/// [`Worker::run_until`](crate::Worker::run_until).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received: shutting down gracefully"),
        () = terminate => tracing::info!("SIGTERM received: shutting down gracefully"),
    }
}
