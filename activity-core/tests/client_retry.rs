//! Callers waiting for an outcome wait through an engine restart: "unavailable"
//! answers are retried with a backoff instead of surfacing at once.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use activity_core::{
    activity,
    definition::BoxFuture,
    protocol::{ProtocolRequest, ProtocolResponse},
    workflow, ActivityError, ActivityProtocol, Client, ProtocolError, WorkflowContext,
    WorkflowError,
};
use activity_engine::{Engine, EngineConfig, VirtualClock};
use activity_worker::Worker;

#[activity(start_to_close = "10s")]
async fn echo(text: String) -> Result<String, ActivityError> {
    Ok(text)
}

#[workflow]
async fn echo_twice(ctx: WorkflowContext, text: String) -> Result<String, WorkflowError> {
    let once = echo::call(&ctx, text).await?;
    Ok(format!("{once} {once}"))
}

/// The engine, answering "unavailable" to the first `outages` waits.
struct Restarting {
    inner: Arc<dyn ActivityProtocol>,
    outages: AtomicU32,
}

impl Restarting {
    fn down(&self) -> bool {
        self.outages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn unavailable<T: Send + 'static>() -> BoxFuture<'static, Result<T, ProtocolError>> {
    Box::pin(std::future::ready(Err(ProtocolError::Unavailable {
        message: "the server is restarting".into(),
    })))
}

impl ActivityProtocol for Restarting {
    fn call(
        &self,
        request: ProtocolRequest,
    ) -> BoxFuture<'_, Result<ProtocolResponse, ProtocolError>> {
        let waits = matches!(
            request,
            ProtocolRequest::WaitOutcome { .. } | ProtocolRequest::WaitWorkflowOutcome { .. }
        );
        if waits && self.down() {
            return unavailable();
        }
        self.inner.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn results_are_awaited_through_a_restart_and_give_up_after_a_minute() {
    let engine = Engine::open(EngineConfig::in_memory().with_clock(Arc::new(VirtualClock::new())))
        .await
        .unwrap();
    let worker = Worker::builder(engine.protocol())
        .task_queue("q")
        .build()
        .unwrap();
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let restarting = Arc::new(Restarting {
        inner: engine.protocol(),
        outages: AtomicU32::new(3),
    });
    let client = Client::new(restarting.clone()).with_task_queue("q");

    assert_eq!(echo::call(&client, "hi".into()).await.unwrap(), "hi");
    assert_eq!(
        restarting.outages.load(Ordering::SeqCst),
        0,
        "three outages waited out"
    );

    restarting.outages.store(3, Ordering::SeqCst);
    let handle = echo_twice::start(&client, "ho".into()).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), "ho ho");

    // A server that stays away is reported, not waited for forever.
    restarting.outages.store(u32::MAX, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let err = echo::call(&client, "lost".into()).await.unwrap_err();
    assert!(err.to_string().contains("restarting"), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(70),
        "{waited:?}"
    );
    shutdown.shutdown();
    running.await.unwrap();
}
