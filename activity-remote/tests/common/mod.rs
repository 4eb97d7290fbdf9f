//! Shared helpers: the real engine behind `ActivityService` on a loopback port,
//! and `RemoteProtocol`s connected to it.
#![allow(dead_code, unreachable_pub)]

use std::{future::IntoFuture, net::SocketAddr, sync::Arc, time::Duration};

use activity_core::{
    options::ActivityOptions,
    payload::Payload,
    protocol::{
        ActivityTask, ExecutionOutcome, ExecutionRef, PollActivityTaskRequest, ProtocolError,
        ScheduleActivityRequest,
    },
    ActivityProtocol,
};
use activity_engine::{Engine, EngineConfig};
use activity_remote::{ActivityService, RemoteConfig, RemoteProtocol, ServeError};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const QUEUE: &str = "remote-q";

/// Every wait in these tests is bounded by this.
pub const BOUND: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub async fn bounded<T>(what: &str, future: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(BOUND, future.into_future())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// An engine served over gRPC on 127.0.0.1.
pub struct Served {
    pub engine: Engine,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Served {
    /// An in-memory engine behind a default service.
    pub async fn start() -> Served {
        Self::start_with(EngineConfig::in_memory(), |s| s).await
    }

    /// `config`'s engine behind the service `configure` makes, on a free port.
    pub async fn start_with(
        config: EngineConfig,
        configure: impl FnOnce(ActivityService) -> ActivityService,
    ) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::start_on(listener, config, configure).await
    }

    /// Like [`Served::start_with`], on `listener`.
    pub async fn start_on(
        listener: TcpListener,
        config: EngineConfig,
        configure: impl FnOnce(ActivityService) -> ActivityService,
    ) -> Served {
        let addr = listener.local_addr().expect("local addr");
        assert!(addr.ip().is_loopback());
        let engine = Engine::open(config).await.expect("engine opens");
        let service = configure(ActivityService::new(engine.protocol()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        Served {
            engine,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A remote protocol connected to this server.
    pub async fn remote(&self) -> Arc<dyn ActivityProtocol> {
        self.connect(RemoteConfig::new(self.url())).await
    }

    pub async fn connect(&self, config: RemoteConfig) -> Arc<dyn ActivityProtocol> {
        Arc::new(
            bounded("connect", RemoteProtocol::connect(config))
                .await
                .expect("connects"),
        )
    }

    /// Stops serving (gracefully) and closes the engine.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            bounded("server shutdown", task)
                .await
                .expect("server task")
                .expect("server ran");
        }
        self.engine.close().await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

pub fn json(value: impl serde::Serialize) -> Payload {
    Payload::json(&value).expect("serializable")
}

pub fn options() -> ActivityOptions {
    ActivityOptions::new()
        .start_to_close(secs(30))
        .task_queue(QUEUE)
}

pub async fn schedule(
    protocol: &dyn ActivityProtocol,
    id: &str,
    options: ActivityOptions,
) -> Result<(), ProtocolError> {
    protocol
        .schedule_activity(
            ScheduleActivityRequest::new("remote_greet", vec![json(id)], options)
                .with_activity_id(id),
        )
        .await
        .map(drop)
}

/// Polls `QUEUE` until a task arrives (each poll a real long poll of up to 2 s).
pub async fn next_task(protocol: &dyn ActivityProtocol) -> ActivityTask {
    bounded("a task", async {
        loop {
            let poll = PollActivityTaskRequest::new(QUEUE, "remote-test-worker").with_wait(secs(2));
            if let Some(task) = protocol
                .poll_activity_task(poll)
                .await
                .expect("poll succeeds")
            {
                return task;
            }
        }
    })
    .await
}

pub async fn outcome(protocol: &dyn ActivityProtocol, id: &str) -> ExecutionOutcome {
    bounded("the outcome", async {
        loop {
            if let Some(outcome) = protocol
                .wait_outcome(ExecutionRef::standalone(id), secs(2))
                .await
                .expect("wait succeeds")
            {
                return outcome;
            }
        }
    })
    .await
}

#[allow(unused_imports)]
pub use activity_test_support::wire::{grpc_frame, grpc_request, TestCa};

/// The server's TLS from `ca`: a certificate for 127.0.0.1 and localhost,
/// requiring client certificates of `client_ca` if given.
pub fn server_tls(ca: &TestCa, client_ca: Option<&TestCa>) -> activity_remote::ServerTls {
    let (cert, key) = ca.issue_server();
    activity_remote::ServerTls::from_pem(
        cert.as_bytes(),
        key.as_bytes(),
        client_ca.map(|ca| ca.pem.as_bytes()),
    )
    .expect("server TLS")
}
