//! The connection the behaviour suites use: the engine in-process by default, or
//! the same engine behind the gRPC service on loopback when
//! `ACTIVITY_TEST_TRANSPORT=remote` (CI runs the suites both ways).
//!
//! The suites run on tokio's paused clock, which jumps to the next timer whenever
//! the runtime is idle, and a call waiting on a socket looks idle. Over gRPC each
//! call therefore holds the clock still until it is answered (a blocking task in
//! flight stops auto-advance), so that the network takes no virtual time, as
//! in-process calls do. Long polls wait *for* time to pass, so they are not held
//! while they wait; but once the engine answers one, the clock is held (from the
//! service's side) until the caller has received the answer.

use std::{
    collections::VecDeque,
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use activity_core::{
    definition::BoxFuture,
    protocol::{
        ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef, ExecutionState,
        HeartbeatResponse, PollActivityTaskRequest, ProtocolError, RegisteredType,
        ScheduleActivityRequest, ScheduleActivityResponse, TaskQueueDescription, TaskTarget,
        WorkerRegistration,
    },
    workflow::{
        Command, HistoryEvent, ListWorkflowsRequest, PollWorkflowTaskRequest, StartWorkflowRequest,
        WorkflowDescription, WorkflowOutcome, WorkflowRef, WorkflowState, WorkflowSummary,
        WorkflowTask,
    },
    ActivityProtocol, ApplicationFailure, Payload, TaskToken,
};
use activity_remote::{ActivityService, RemoteConfig, RemoteProtocol};
use activity_server::{Engine, EngineConfig};

/// Whether the suites run over gRPC.
pub(crate) fn remote() -> bool {
    std::env::var("ACTIVITY_TEST_TRANSPORT").is_ok_and(|t| t == "remote")
}

/// A connection to `engine`: in-process, or a `RemoteProtocol` to a gRPC service
/// serving it on 127.0.0.1 (one service per engine, started on first use).
pub(crate) async fn connect(engine: &Engine) -> Arc<dyn ActivityProtocol> {
    if !remote() {
        return engine.protocol();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("bound address");
    let holds = Holds::default();
    let service = ActivityService::new(Arc::new(ClockGuard {
        inner: engine.protocol(),
        holds: holds.clone(),
        side: Side::Service,
    }));
    tokio::spawn(async move {
        if let Err(err) = service.serve(listener, std::future::pending()).await {
            panic!("the test gRPC service stopped: {err}");
        }
    });
    // Transport deadlines run on the paused clock too, where long polls legitimately
    // span virtual hours: give calls a deadline no test reaches.
    let config = RemoteConfig::new(format!("http://{address}"))
        .with_call_timeout(Duration::from_secs(365 * 24 * 3600));
    let remote = RemoteProtocol::connect(config)
        .await
        .expect("connects to the loopback service");
    Arc::new(ClockGuard {
        inner: Arc::new(remote),
        holds,
        side: Side::Client,
    })
}

/// Clock holds of long-poll answers sent and not yet received. Every answer is
/// held from the moment the engine gives it until the caller has it; holds are
/// interchangeable, so they are a queue. A hold whose answer never arrives (a call
/// dropped by its caller) lapses after a short real time.
#[derive(Clone, Default)]
struct Holds(Arc<Mutex<VecDeque<mpsc::Sender<()>>>>);

impl Holds {
    fn hold(&self) {
        let (release, wait) = mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = wait.recv_timeout(std::time::Duration::from_millis(200));
        });
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(release);
    }

    fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    }
}

/// Which end of the loopback connection a [`ClockGuard`] wraps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The engine as the gRPC service sees it: long-poll answers hold the clock
    /// from the moment they are given.
    Service,
    /// The suites' connection: calls take no virtual time, and a long-poll answer
    /// releases the hold its service side took.
    Client,
}

/// Keeps the paused clock still while the network works (see the module docs).
struct ClockGuard {
    inner: Arc<dyn ActivityProtocol>,
    holds: Holds,
    side: Side,
}

impl ClockGuard {
    /// A call that does not wait for time to pass.
    fn short<'a, T: Send + 'a>(&self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        if self.side == Side::Service {
            return call;
        }
        Box::pin(async move {
            let (release, wait) = mpsc::channel::<()>();
            let holder = tokio::task::spawn_blocking(move || {
                let _ = wait.recv();
            });
            let answer = call.await;
            drop(release);
            let _ = holder.await;
            answer
        })
    }

    /// A long poll: not held while it waits; its answer is held in transit.
    fn long<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        Box::pin(async move {
            let answer = call.await;
            match self.side {
                Side::Service => self.holds.hold(),
                Side::Client => self.holds.release(),
            }
            answer
        })
    }
}

impl ActivityProtocol for ClockGuard {
    fn schedule_activity(
        &self,
        r: ScheduleActivityRequest,
    ) -> BoxFuture<'_, Result<ScheduleActivityResponse, ProtocolError>> {
        self.short(self.inner.schedule_activity(r))
    }
    fn poll_activity_task(
        &self,
        r: PollActivityTaskRequest,
    ) -> BoxFuture<'_, Result<Option<ActivityTask>, ProtocolError>> {
        self.long(self.inner.poll_activity_task(r))
    }
    fn poll_activity_tasks(
        &self,
        r: PollActivityTaskRequest,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<ActivityTask>, ProtocolError>> {
        self.long(self.inner.poll_activity_tasks(r, max))
    }
    fn record_heartbeat(
        &self,
        t: TaskTarget,
        d: Option<Payload>,
    ) -> BoxFuture<'_, Result<HeartbeatResponse, ProtocolError>> {
        self.short(self.inner.record_heartbeat(t, d))
    }
    fn complete_activity(
        &self,
        t: TaskTarget,
        r: Payload,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.complete_activity(t, r))
    }
    fn fail_activity(
        &self,
        t: TaskTarget,
        f: ApplicationFailure,
        d: Option<Payload>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.fail_activity(t, f, d))
    }
    fn report_canceled(
        &self,
        t: TaskTarget,
        d: Option<Payload>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.report_canceled(t, d))
    }
    fn request_cancel(
        &self,
        e: ExecutionRef,
    ) -> BoxFuture<'_, Result<ExecutionState, ProtocolError>> {
        self.short(self.inner.request_cancel(e))
    }
    fn describe_execution(
        &self,
        e: ExecutionRef,
    ) -> BoxFuture<'_, Result<ExecutionDescription, ProtocolError>> {
        self.short(self.inner.describe_execution(e))
    }
    fn wait_outcome(
        &self,
        e: ExecutionRef,
        w: Duration,
    ) -> BoxFuture<'_, Result<Option<ExecutionOutcome>, ProtocolError>> {
        self.long(self.inner.wait_outcome(e, w))
    }
    fn describe_task_queue(
        &self,
        q: String,
    ) -> BoxFuture<'_, Result<TaskQueueDescription, ProtocolError>> {
        self.short(self.inner.describe_task_queue(q))
    }
    fn start_workflow(
        &self,
        r: StartWorkflowRequest,
    ) -> BoxFuture<'_, Result<WorkflowRef, ProtocolError>> {
        self.short(self.inner.start_workflow(r))
    }
    fn poll_workflow_task(
        &self,
        r: PollWorkflowTaskRequest,
    ) -> BoxFuture<'_, Result<Option<WorkflowTask>, ProtocolError>> {
        self.long(self.inner.poll_workflow_task(r))
    }
    fn complete_workflow_task(
        &self,
        t: TaskToken,
        c: Vec<Command>,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.complete_workflow_task(t, c))
    }
    fn fail_workflow_task(
        &self,
        t: TaskToken,
        m: String,
    ) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.fail_workflow_task(t, m))
    }
    fn request_cancel_workflow(
        &self,
        w: WorkflowRef,
    ) -> BoxFuture<'_, Result<WorkflowState, ProtocolError>> {
        self.short(self.inner.request_cancel_workflow(w))
    }
    fn describe_workflow(
        &self,
        w: WorkflowRef,
    ) -> BoxFuture<'_, Result<WorkflowDescription, ProtocolError>> {
        self.short(self.inner.describe_workflow(w))
    }
    fn workflow_history(
        &self,
        w: WorkflowRef,
    ) -> BoxFuture<'_, Result<Vec<HistoryEvent>, ProtocolError>> {
        self.short(self.inner.workflow_history(w))
    }
    fn wait_workflow_outcome(
        &self,
        w: WorkflowRef,
        d: Duration,
    ) -> BoxFuture<'_, Result<Option<WorkflowOutcome>, ProtocolError>> {
        self.long(self.inner.wait_workflow_outcome(w, d))
    }
    fn register_worker(&self, r: WorkerRegistration) -> BoxFuture<'_, Result<(), ProtocolError>> {
        self.short(self.inner.register_worker(r))
    }
    fn list_types(&self) -> BoxFuture<'_, Result<Vec<RegisteredType>, ProtocolError>> {
        self.short(self.inner.list_types())
    }
    fn list_workflows(
        &self,
        r: ListWorkflowsRequest,
    ) -> BoxFuture<'_, Result<Vec<WorkflowSummary>, ProtocolError>> {
        self.short(self.inner.list_workflows(r))
    }
}

/// An engine and the connection the suites reach it through.
pub(crate) struct TestEngine {
    /// The engine (kept open while the suite runs).
    _engine: Engine,
    protocol: Arc<dyn ActivityProtocol>,
}

impl TestEngine {
    /// Opens `config` and connects to it as [`connect`] does.
    pub(crate) async fn open(config: EngineConfig) -> Self {
        let engine = Engine::open(config).await.expect("engine opens");
        let protocol = connect(&engine).await;
        Self {
            _engine: engine,
            protocol,
        }
    }

    /// The connection: what workers and clients are built from.
    pub(crate) fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.protocol.clone()
    }
}
