//! The workflow operations through gRPC: the real engine behind
//! `ActivityService` on a loopback port, a real worker on `RemoteProtocol`, and
//! every answer compared with the engine's own, in-process.

mod common;

use std::time::Duration;

use activity_core::{
    activity, workflow,
    workflow::{
        EventKind, LocalActivityOutcome, PollWorkflowTaskRequest, StartWorkflowRequest,
        WorkflowOutcome, WorkflowRef, WorkflowState,
    },
    ActivityError, Client, ProtocolError, TaskToken, WorkflowContext, WorkflowError,
};
use activity_worker::Worker;
use common::*;

/// Doubles a number.
#[activity(start_to_close = "10s")]
async fn remote_double(n: u32) -> Result<u32, ActivityError> {
    Ok(n * 2)
}

/// A local activity, a timer and an activity, over the wire.
#[workflow]
async fn remote_flow(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let local = remote_double::call(&ctx.local(), n).await?;
    ctx.sleep(Duration::from_millis(30)).await;
    Ok(remote_double::call(&ctx, local).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_the_remote_protocol_runs_a_workflow_and_every_answer_is_the_engines() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let worker = Worker::builder(served.remote().await)
        .task_queue(QUEUE)
        .poll_wait(secs(2))
        .build()
        .expect("the worker builds");
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let client = Client::new(remote.clone()).with_task_queue(QUEUE);
    let handle = bounded(
        "the start",
        remote_flow::start(&client, 5).workflow_id("flow-1"),
    )
    .await
    .expect("started");
    assert_eq!(
        bounded("the result", handle.result()).await.expect("done"),
        20
    );

    // Every workflow answer through gRPC equals the engine's, field for field.
    let local = served.engine.protocol();
    let run = WorkflowRef::latest("flow-1");
    let history = remote.workflow_history(run.clone()).await.expect("history");
    assert_eq!(
        history,
        local.workflow_history(run.clone()).await.expect("history")
    );
    assert_eq!(
        remote
            .describe_workflow(run.clone())
            .await
            .expect("described"),
        local
            .describe_workflow(run.clone())
            .await
            .expect("described")
    );
    assert_eq!(
        remote.wait_workflow_outcome(run.clone(), millis(10)).await,
        Ok(Some(WorkflowOutcome::Completed(json(20))))
    );
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        EventKind::LocalActivityRecorded { outcome: LocalActivityOutcome::Completed(r), .. }
            if *r == json(10)
    )));
    assert!(history
        .iter()
        .any(|e| matches!(e.kind, EventKind::TimerFired { .. })));

    // The engine's refusals arrive as themselves.
    let missing = remote.describe_workflow(WorkflowRef::latest("nope")).await;
    assert!(
        matches!(missing, Err(ProtocolError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(
        missing,
        local.describe_workflow(WorkflowRef::latest("nope")).await
    );

    shutdown.shutdown();
    bounded("the worker's shutdown", running)
        .await
        .expect("worker task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_polled_and_failed_by_hand_and_a_cancel_go_through_the_wire() {
    let served = Served::start().await;
    let remote = served.remote().await;
    let local = served.engine.protocol();
    let run = remote
        .start_workflow(StartWorkflowRequest::new(
            "manual-1",
            "remote_flow",
            "manual-q",
            vec![json(1)],
        ))
        .await
        .expect("started");
    assert_eq!(run.workflow_id, "manual-1");
    let duplicate = remote
        .start_workflow(StartWorkflowRequest::new(
            "manual-1",
            "remote_flow",
            "manual-q",
            vec![json(1)],
        ))
        .await;
    assert!(
        matches!(duplicate, Err(ProtocolError::AlreadyExists { .. })),
        "{duplicate:?}"
    );

    let task = bounded(
        "a workflow task",
        remote.poll_workflow_task(
            PollWorkflowTaskRequest::new("manual-q", "hand").with_wait(secs(5)),
        ),
    )
    .await
    .expect("polled")
    .expect("a task");
    assert_eq!(task.workflow_type, "remote_flow");
    assert_eq!(Some(task.run_id.clone()), run.run_id);
    assert!(matches!(
        task.history.last().map(|e| &e.kind),
        Some(EventKind::WorkflowTaskStarted { identity }) if identity == "hand"
    ));
    remote
        .fail_workflow_task(task.task_token.clone(), "failed by hand".into())
        .await
        .expect("failure recorded");
    let history = remote
        .workflow_history(WorkflowRef::latest("manual-1"))
        .await
        .expect("history");
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        EventKind::WorkflowTaskFailed { message } if message == "failed by hand"
    )));
    // The spent token is refused the same way through the wire as in-process.
    let stale = remote
        .complete_workflow_task(task.task_token.clone(), Vec::new())
        .await;
    assert!(stale.is_err());
    assert_eq!(
        stale,
        local
            .complete_workflow_task(task.task_token, Vec::new())
            .await
    );
    let forged = remote
        .complete_workflow_task(TaskToken::from_bytes(vec![1, 2, 3]), Vec::new())
        .await;
    assert!(
        matches!(forged, Err(ProtocolError::InvalidToken { .. })),
        "{forged:?}"
    );

    let state = remote
        .request_cancel_workflow(WorkflowRef::latest("manual-1"))
        .await
        .expect("cancel requested");
    assert_eq!(state, WorkflowState::Running);
    let description = remote
        .describe_workflow(WorkflowRef::latest("manual-1"))
        .await
        .expect("described");
    assert!(description.cancel_requested);
    assert_eq!(
        remote
            .wait_workflow_outcome(WorkflowRef::latest("manual-1"), millis(50))
            .await,
        Ok(None)
    );
}

/// docs/semantics.md §3.2: a history larger than the largest answer the
/// client accepts is read whole, in pages (`WorkflowHistoryPage`), and equals
/// the engine's; one answer of all of it would not pass the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_larger_than_one_answer_is_read_in_pages() {
    use activity_core::{
        options::ActivityOptions,
        payload::Payload,
        protocol::{PollActivityTaskRequest, TaskTarget},
        workflow::Command,
    };
    const LIMIT: usize = 256 * 1024;
    let served = Served::start_with(activity_engine::EngineConfig::in_memory(), |s| {
        s.with_max_response_size(LIMIT)
    })
    .await;
    let remote = served
        .connect(activity_remote::RemoteConfig::new(served.url()).with_max_response_size(LIMIT))
        .await;
    let local = served.engine.protocol();
    let start = StartWorkflowRequest::new("paged", "big", QUEUE, vec![]);
    bounded("start", local.start_workflow(start)).await.unwrap();
    let result = Payload::json(&"x".repeat(100 * 1024)).unwrap();
    for seq in 1..=10_u32 {
        let poll = PollWorkflowTaskRequest::new(QUEUE, "w").with_wait(secs(5));
        let task = bounded("task", local.poll_workflow_task(poll))
            .await
            .unwrap()
            .expect("a task");
        let command = Command::ScheduleActivity {
            seq,
            activity_id: format!("a{seq}"),
            activity_type: "big".into(),
            input: vec![],
            options: ActivityOptions::new().start_to_close(secs(10)),
            trace_context: None,
        };
        local
            .complete_workflow_task(task.task_token, vec![command])
            .await
            .unwrap();
        let poll = PollActivityTaskRequest::new(QUEUE, "a").with_wait(secs(5));
        let activity = bounded("activity", local.poll_activity_task(poll))
            .await
            .unwrap()
            .expect("an activity task");
        local
            .complete_activity(TaskTarget::Token(activity.task_token), result.clone())
            .await
            .unwrap();
    }
    let run = WorkflowRef::latest("paged");
    let whole = local.workflow_history(run.clone()).await.unwrap();
    let read = bounded("the paged read", remote.workflow_history(run.clone()))
        .await
        .expect("a history of any size reads");
    assert_eq!(read, whole);
    assert!(whole.len() > 40);
    // The pages are what makes it pass: all of it in one answer does not.
    let one = remote.workflow_history_page(run, 0, u64::MAX).await;
    assert!(one.is_err(), "{} events in one answer", whole.len());
}
