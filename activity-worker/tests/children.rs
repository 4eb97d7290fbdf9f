//! Child workflows end to end (docs/semantics.md §3.1): the real engine
//! (in-memory SQLite or PostgreSQL, virtual clock) and real workers,
//! in-process or over gRPC. A parent starts typed children, gets their
//! typed results and failures, cancels them, and closes with each
//! parent-close policy.

use std::{
    future::IntoFuture,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use activity_core::{
    workflow,
    workflow::{
        select, ChildWorkflowCause, ChildWorkflowFailure, Either, EventKind, HistoryEvent,
        ListWorkflowsRequest, ParentClosePolicy, ParentRun, WorkflowCallError, WorkflowFailure,
        WorkflowHandle, WorkflowRef, WorkflowState,
    },
    ActivityProtocol, Client, WorkflowContext, WorkflowError,
};
use activity_engine::VirtualClock;
use activity_test_support as support;
use activity_worker::{ShutdownHandle, Worker, WorkerReport};
use support::TestEngine;

const QUEUE: &str = "main";

/// Charges `cents`; zero is declined (the child fails).
#[workflow]
async fn charge(ctx: WorkflowContext, cents: u64) -> Result<String, WorkflowError> {
    let _ = ctx;
    if cents == 0 {
        return Err(WorkflowError::application("Declined", "nothing to charge"));
    }
    Ok(format!("charged {cents}"))
}

/// Fans out one `charge` child per amount and collects their results.
#[workflow]
async fn checkout(ctx: WorkflowContext, amounts: Vec<u64>) -> Result<Vec<String>, WorkflowError> {
    let calls = amounts.into_iter().map(|cents| charge::child(&ctx, cents));
    workflow::join_all(calls).await.into_iter().collect()
}

/// Runs until its `finish` signal (answering "finished") or its cancellation
/// (acknowledged).
#[workflow(signals(finish = ()))]
async fn waiter(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    let finish = ctx.signal(waiter::finish);
    match select(finish.recv(), ctx.cancelled()).await {
        Either::Left((finished, _)) => {
            finished?;
            Ok("finished".to_owned())
        }
        Either::Right(_) => Err(WorkflowError::Canceled),
    }
}

/// Starts a `waiter` child with id `child_id` and the policy named `policy`,
/// then waits for its result.
#[workflow]
async fn guardian(
    ctx: WorkflowContext,
    child_id: String,
    policy: String,
) -> Result<String, WorkflowError> {
    let policy = ParentClosePolicy::parse(&policy).expect("a policy name");
    let handle = waiter::child(&ctx)
        .workflow_id(child_id)
        .parent_close_policy(policy)
        .start()
        .await?;
    handle.result().await
}

/// Starts a `waiter` child, cancels it after a minute (through the handle,
/// or by dropping its call future when `by_drop`), and answers how it ended.
#[workflow]
async fn canceller(
    ctx: WorkflowContext,
    child_id: String,
    by_drop: bool,
) -> Result<String, WorkflowError> {
    if by_drop {
        let call = waiter::child(&ctx).workflow_id(child_id).into_future();
        let timer = ctx.sleep(Duration::from_secs(60));
        if let Either::Left((result, _)) = select(call, timer).await {
            return result;
        }
        // The call was dropped: the child is cancel-requested. Wait a while
        // so that it ends by itself, not by the parent-close policy.
        ctx.sleep(Duration::from_secs(3600)).await;
        return Ok("dropped".to_owned());
    }
    let handle = waiter::child(&ctx).workflow_id(child_id).start().await?;
    ctx.sleep(Duration::from_secs(60)).await;
    handle.cancel();
    match handle.result().await {
        Err(WorkflowError::Child(ChildWorkflowFailure {
            cause: ChildWorkflowCause::Canceled,
            ..
        })) => Ok("child canceled".to_owned()),
        other => Ok(format!("unexpected: {other:?}")),
    }
}

/// Starts `charge` under `child_id` and answers the error it got, if any.
#[workflow]
async fn reuses_an_id(ctx: WorkflowContext, child_id: String) -> Result<String, WorkflowError> {
    match charge::child(&ctx, 5).workflow_id(child_id).await {
        Ok(result) => Ok(format!("started: {result}")),
        Err(err) => Ok(format!("refused: {err}")),
    }
}

/// Starts `charge` on task queue `queue` and answers the error it got, if any.
#[workflow]
async fn misrouted(ctx: WorkflowContext, queue: String) -> Result<String, WorkflowError> {
    match charge::child(&ctx, 5).task_queue(queue).await {
        Ok(result) => Ok(format!("started: {result}")),
        Err(err) => Ok(format!("refused: {err}")),
    }
}

/// Continues as new until `n` is zero.
#[workflow]
async fn countdown(ctx: WorkflowContext, n: u32) -> Result<String, WorkflowError> {
    if n == 0 {
        // The last run of the chain still knows its parent.
        let parent = ctx.info().parent.map(|p| p.workflow_id);
        return Ok(format!("liftoff, child of {parent:?}"));
    }
    countdown::continue_as_new(&ctx, n - 1).await
}

#[workflow]
async fn launcher(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    countdown::child(&ctx, 3).await
}

/// Which child id `fickle` uses: a deploy that changes it makes the replay
/// of a run started before it nondeterministic.
static FICKLE_CHANGED: AtomicBool = AtomicBool::new(false);

#[workflow]
async fn fickle(ctx: WorkflowContext) -> Result<String, WorkflowError> {
    let id = if FICKLE_CHANGED.load(Ordering::SeqCst) {
        "fickle-b"
    } else {
        "fickle-a"
    };
    waiter::child(&ctx).workflow_id(id).await
}

/// Starts a `waiter` child (which never finishes by itself) with a run
/// timeout of `run_secs` (and an execution timeout of `execution_secs`), and
/// answers how it ended.
#[workflow]
async fn impatient(
    ctx: WorkflowContext,
    run_secs: u64,
    execution_secs: u64,
) -> Result<String, WorkflowError> {
    let call = waiter::child(&ctx)
        .workflow_id("impatient-child")
        .run_timeout(Duration::from_secs(run_secs))
        .execution_timeout(Duration::from_secs(execution_secs));
    match call.await {
        Err(WorkflowError::Child(ChildWorkflowFailure {
            cause: ChildWorkflowCause::TimedOut { timeout },
            ..
        })) => Ok(format!("child timed out: {timeout}")),
        Err(err) => Ok(format!("refused: {err}")),
        Ok(other) => Ok(format!("unexpected: {other}")),
    }
}

struct Setup {
    engine: TestEngine,
    client: Client,
}

async fn setup() -> Setup {
    let config = activity_test_support::engine_config().with_clock(Arc::new(VirtualClock::new()));
    let engine = TestEngine::open(config).await;
    let client = Client::new(engine.protocol()).with_task_queue(QUEUE);
    Setup { engine, client }
}

type Running = (ShutdownHandle, tokio::task::JoinHandle<WorkerReport>);

impl Setup {
    fn protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.engine.protocol()
    }

    fn spawn(&self, name: &str) -> Running {
        self.spawn_with(name, 1000)
    }

    /// A worker caching at most `cache` runs (0: every task replays).
    fn spawn_with(&self, name: &str, cache: usize) -> Running {
        let worker = Worker::builder(self.protocol())
            .task_queue(QUEUE)
            .identity(name)
            .poll_wait(Duration::from_secs(60))
            .workflow_cache_size(cache)
            .build()
            .expect("worker builds");
        let handle = worker.shutdown_handle();
        (
            handle,
            tokio::spawn(worker.run_until(std::future::pending())),
        )
    }

    fn waiter(&self, id: &str) -> WorkflowHandle<waiter> {
        WorkflowHandle::new(self.protocol(), WorkflowRef::latest(id))
    }

    async fn history(&self, id: &str) -> Vec<HistoryEvent> {
        self.protocol()
            .workflow_history(WorkflowRef::latest(id))
            .await
            .unwrap()
    }

    /// Waits (virtual time) until the latest run of `id` exists and is in `state`.
    async fn wait_state(&self, id: &str, state: WorkflowState) {
        for _ in 0..600 {
            if let Ok(d) = self
                .protocol()
                .describe_workflow(WorkflowRef::latest(id))
                .await
            {
                if d.state == state {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("workflow `{id}` never reached {state}");
    }
}

async fn stop((handle, running): Running) -> WorkerReport {
    handle.shutdown();
    running.await.expect("worker task")
}

fn names(history: &[HistoryEvent]) -> Vec<&'static str> {
    history.iter().map(|e| e.kind.name()).collect()
}

fn count(history: &[HistoryEvent], name: &str) -> usize {
    names(history).iter().filter(|n| **n == name).count()
}

fn assert_no_task_failed(history: &[HistoryEvent]) {
    assert_eq!(
        count(history, "WorkflowTaskFailed"),
        0,
        "no workflow task failed: {history:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn children_results_reach_the_parent_typed_and_both_histories_record_them() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = checkout::start(&s.client, vec![100, 250, 7])
        .workflow_id("checkout-1")
        .await
        .unwrap();
    let result = handle.result().await.unwrap();
    assert_eq!(result, ["charged 100", "charged 250", "charged 7"]);

    let parent = handle.history().await.unwrap();
    assert_no_task_failed(&parent);
    assert_eq!(count(&parent, "StartChildWorkflowInitiated"), 3);
    assert_eq!(count(&parent, "ChildWorkflowStarted"), 3);
    assert_eq!(count(&parent, "ChildWorkflowCompleted"), 3);
    let parent_run = handle.describe().await.unwrap().run_id;
    for event in &parent {
        let EventKind::ChildWorkflowStarted {
            seq,
            workflow_id,
            run_id,
        } = &event.kind
        else {
            continue;
        };
        // The default child id: the parent's run id and the child's number.
        assert_eq!(workflow_id, &format!("{parent_run}-child-{seq}"));
        let child = s
            .protocol()
            .workflow_history(WorkflowRef::run(workflow_id, run_id))
            .await
            .unwrap();
        let EventKind::WorkflowStarted {
            workflow_type,
            task_queue,
            parent: Some(named),
            ..
        } = &child[0].kind
        else {
            panic!("the child's WorkflowStarted names its parent: {child:#?}")
        };
        assert_eq!(workflow_type, "charge");
        assert_eq!(task_queue, QUEUE, "the parent's queue by default");
        assert_eq!(named, &ParentRun::new("checkout-1", &parent_run, *seq));
        assert_eq!(
            child.last().unwrap().kind.name(),
            "WorkflowCompleted",
            "{child:#?}"
        );
    }
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_failure_reaches_the_parent_as_a_typed_error() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = checkout::start(&s.client, vec![100, 0])
        .workflow_id("checkout-declined")
        .await
        .unwrap();
    let err = handle.result().await.unwrap_err();
    let WorkflowCallError::Failed(WorkflowFailure::Child(child)) = err else {
        panic!("the parent failed with its child's failure: {err:?}")
    };
    assert_eq!(child.workflow_type, "charge");
    assert!(!child.run_id.is_empty());
    let ChildWorkflowCause::Failed(failure) = &child.cause else {
        panic!("{child:?}")
    };
    let WorkflowFailure::Application(app) = failure.as_ref() else {
        panic!("{failure:?}")
    };
    assert_eq!(app.error_type, "Declined");
    let parent = handle.history().await.unwrap();
    assert_eq!(count(&parent, "ChildWorkflowFailed"), 1, "{parent:#?}");
    stop(worker).await;
}

/// Terminates a `guardian` whose `waiter` child runs under `policy`; answers
/// the child's handle.
async fn terminate_parent(s: &Setup, policy: ParentClosePolicy) -> WorkflowHandle<waiter> {
    let parent_id = format!("guardian-{}", policy.as_str());
    let child_id = format!("waiter-{}", policy.as_str());
    let parent = guardian::start(&s.client, child_id.clone(), policy.as_str().to_owned())
        .workflow_id(&parent_id)
        .await
        .unwrap();
    s.wait_state(&child_id, WorkflowState::Running).await;
    // The child's first task ran (its code waits for a signal).
    while count(&s.history(&child_id).await, "WorkflowTaskCompleted") == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    parent.terminate("test over").await.unwrap();
    s.waiter(&child_id)
}

#[tokio::test(start_paused = true)]
async fn a_parent_closing_terminates_its_child_by_default() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let child = terminate_parent(&s, ParentClosePolicy::Terminate).await;
    // In the transaction that closed the parent.
    let d = child.describe().await.unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    let history = child.history().await.unwrap();
    let Some(EventKind::WorkflowTerminated { reason, identity }) = history.last().map(|e| &e.kind)
    else {
        panic!("{history:#?}")
    };
    assert!(reason.contains("guardian-TERMINATE"), "{reason}");
    assert!(reason.contains("parent-close policy Terminate"), "{reason}");
    assert!(identity.contains("guardian-TERMINATE"), "{identity}");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_parent_closing_with_request_cancel_cancels_its_child() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let child = terminate_parent(&s, ParentClosePolicy::RequestCancel).await;
    assert!(child.describe().await.unwrap().cancel_requested);
    let err = child.result().await.unwrap_err();
    assert!(matches!(err, WorkflowCallError::Canceled), "{err:?}");
    let history = child.history().await.unwrap();
    assert_eq!(count(&history, "WorkflowCancelRequested"), 1);
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_parent_closing_with_abandon_leaves_its_child_running() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let child = terminate_parent(&s, ParentClosePolicy::Abandon).await;
    let d = child.describe().await.unwrap();
    assert_eq!(d.state, WorkflowState::Running);
    assert!(!d.cancel_requested);
    child.signal(waiter::finish, ()).await.unwrap();
    assert_eq!(child.result().await.unwrap(), "finished");
    // The parent is closed: the child's close changed nothing there.
    let parent = s.history("guardian-ABANDON").await;
    assert_eq!(parent.last().unwrap().kind.name(), "WorkflowTerminated");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_parent_cancels_its_child_through_the_handle() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = canceller::start(&s.client, "cancelled-child".to_owned(), false)
        .workflow_id("canceller")
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), "child canceled");
    let parent = handle.history().await.unwrap();
    assert_eq!(count(&parent, "ChildWorkflowCancelRequested"), 1);
    assert_eq!(count(&parent, "ChildWorkflowCanceled"), 1);
    assert_no_task_failed(&parent);
    let child = s.waiter("cancelled-child");
    assert_eq!(
        child.describe().await.unwrap().state,
        WorkflowState::Canceled
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_child_call_cancels_the_child() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = canceller::start(&s.client, "dropped-child".to_owned(), true)
        .workflow_id("dropper")
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), "dropped");
    let parent = handle.history().await.unwrap();
    assert_eq!(count(&parent, "ChildWorkflowCancelRequested"), 1);
    assert_eq!(count(&parent, "ChildWorkflowCanceled"), 1, "{parent:#?}");
    assert_no_task_failed(&parent);
    assert_eq!(
        s.waiter("dropped-child").describe().await.unwrap().state,
        WorkflowState::Canceled
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_parent_replayed_on_a_new_worker_while_its_child_runs_starts_no_second_child() {
    let s = setup().await;
    let first = s.spawn("first");
    let parent = guardian::start(&s.client, "long-child".to_owned(), "ABANDON".to_owned())
        .workflow_id("replayed-parent")
        .await
        .unwrap();
    s.wait_state("long-child", WorkflowState::Running).await;
    while count(&s.history("replayed-parent").await, "ChildWorkflowStarted") == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(first).await;
    let second = s.spawn("second");
    let child = s.waiter("long-child");
    child.signal(waiter::finish, ()).await.unwrap();
    assert_eq!(parent.result().await.unwrap(), "finished");
    let history = parent.history().await.unwrap();
    assert_eq!(count(&history, "StartChildWorkflowInitiated"), 1);
    assert_no_task_failed(&history);
    let runs = s
        .protocol()
        .list_workflows(ListWorkflowsRequest::new().with_workflow_type("waiter"))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one child run: {runs:?}");
    stop(second).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_whose_id_is_running_is_refused_with_a_clear_error() {
    let s = setup().await;
    let worker = s.spawn("w1");
    waiter::start(&s.client).workflow_id("taken").await.unwrap();
    let handle = reuses_an_id::start(&s.client, "taken".to_owned())
        .workflow_id("reuser")
        .await
        .unwrap();
    let answer = handle.result().await.unwrap();
    assert!(answer.starts_with("refused: "), "{answer}");
    assert!(answer.contains("`charge`"), "{answer}");
    assert!(answer.contains("taken"), "{answer}");
    assert!(answer.contains("running"), "{answer}");
    let history = handle.history().await.unwrap();
    assert_eq!(count(&history, "StartChildWorkflowFailed"), 1);
    assert_eq!(count(&history, "ChildWorkflowStarted"), 0);
    // The running run was left alone.
    assert_eq!(
        s.waiter("taken").describe().await.unwrap().state,
        WorkflowState::Running
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_that_continues_as_new_reports_its_last_run() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = launcher::start(&s.client)
        .workflow_id("launcher")
        .await
        .unwrap();
    assert_eq!(
        handle.result().await.unwrap(),
        "liftoff, child of Some(\"launcher\")"
    );
    let history = handle.history().await.unwrap();
    assert_eq!(count(&history, "ChildWorkflowCompleted"), 1);
    let runs = s
        .protocol()
        .list_workflows(ListWorkflowsRequest::new().with_workflow_type("countdown"))
        .await
        .unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_of_another_id_on_replay_is_nondeterminism_named_in_the_task_failure() {
    let s = setup().await;
    FICKLE_CHANGED.store(false, Ordering::SeqCst);
    let worker = s.spawn_with("replays", 0);
    let handle = fickle::start(&s.client)
        .workflow_id("fickle")
        .await
        .unwrap();
    s.wait_state("fickle-a", WorkflowState::Running).await;
    while count(&s.history("fickle").await, "ChildWorkflowStarted") == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A deploy changes the child's id; the parent's next task replays.
    FICKLE_CHANGED.store(true, Ordering::SeqCst);
    s.waiter("fickle-a")
        .signal(waiter::finish, ())
        .await
        .unwrap();
    let failure = loop {
        let d = handle.describe().await.unwrap();
        if let Some(failure) = d.last_task_failure {
            break failure;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failure.contains("nondeterminism"), "{failure}");
    assert!(
        failure.contains("StartChildWorkflowInitiated(seq 1, `waiter` id `fickle-a`)"),
        "names the recorded event: {failure}"
    );
    assert!(
        failure.contains("StartChildWorkflow(seq 1, `waiter` id `fickle-b`)"),
        "names the command found: {failure}"
    );
    assert_eq!(
        handle.describe().await.unwrap().state,
        WorkflowState::Running
    );
    // The fix is deployed: the retried task replays and the parent completes.
    FICKLE_CHANGED.store(false, Ordering::SeqCst);
    assert_eq!(handle.result().await.unwrap(), "finished");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_on_an_empty_task_queue_is_refused_naming_the_field() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = misrouted::start(&s.client, "  ".to_owned())
        .workflow_id("misrouted")
        .await
        .unwrap();
    let answer = handle.result().await.unwrap();
    assert!(answer.starts_with("refused: "), "{answer}");
    assert!(answer.contains("task_queue"), "{answer}");
    assert!(answer.contains("must not be empty"), "{answer}");
    let runs = s
        .protocol()
        .list_workflows(ListWorkflowsRequest::new().with_workflow_type("charge"))
        .await
        .unwrap();
    assert!(runs.is_empty(), "nothing was started: {runs:?}");
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_terminated_from_outside_tells_its_parent_in_the_same_transaction() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let parent = guardian::start(&s.client, "doomed".to_owned(), "ABANDON".to_owned())
        .workflow_id("bereaved")
        .await
        .unwrap();
    // The parent's task after ChildWorkflowStarted completed: it waits, idle.
    loop {
        let history = parent.history().await.unwrap();
        let started = history
            .iter()
            .position(|e| e.kind.name() == "ChildWorkflowStarted");
        let last = history.last().unwrap();
        if started.is_some_and(|at| at + 1 < history.len())
            && (last.kind.name() == "WorkflowTaskCompleted" || last.kind.is_command())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.waiter("doomed")
        .terminate("no longer needed")
        .await
        .unwrap();
    // No waiting: the parent's history already has it.
    let history = parent.history().await.unwrap();
    assert!(
        history.iter().any(|e| matches!(
            &e.kind,
            EventKind::ChildWorkflowTerminated { seq: 1, reason } if reason == "no longer needed"
        )),
        "{history:#?}"
    );
    let err = parent.result().await.unwrap_err();
    let WorkflowCallError::Failed(WorkflowFailure::Child(child)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(child.workflow_id, "doomed");
    assert!(
        matches!(&child.cause, ChildWorkflowCause::Terminated { reason } if reason == "no longer needed"),
        "{child:?}"
    );
    stop(worker).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_past_its_run_timeout_reaches_its_parent_as_timed_out() {
    let s = setup().await;
    let worker = s.spawn("w1");
    let handle = impatient::start(&s.client, 60, 3600)
        .workflow_id("impatient")
        .await
        .unwrap();
    assert_eq!(
        handle.result().await.unwrap(),
        "child timed out: run timeout"
    );
    let child = s.history("impatient-child").await;
    assert_eq!(names(&child).last(), Some(&"WorkflowTimedOut"));
    let parent = s.history("impatient").await;
    assert_eq!(count(&parent, "ChildWorkflowTimedOut"), 1, "{parent:#?}");
    assert_no_task_failed(&parent);

    // Impossible timeouts: the child is not started, the parent is told why.
    let handle = impatient::start(&s.client, 60, 10)
        .workflow_id("impatient-2")
        .await
        .unwrap();
    let answer = handle.result().await.unwrap();
    assert!(answer.starts_with("refused: "), "{answer}");
    assert!(answer.contains("execution_timeout"), "{answer}");
    stop(worker).await;
}
