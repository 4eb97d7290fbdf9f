//! The `activity-server` CLI as a real process against a served binary: an
//! activity left pending by a worker in this test is completed (and another
//! failed) by the CLI from another process; the workflow commands' `--json`
//! output parses and says what happened; errors name the problem and the fix.

mod process_support;

use std::{path::PathBuf, sync::Arc, time::Duration};

use activity_core::{
    activity, workflow, ActivityCallError, ActivityContext, ActivityError, ActivityProtocol,
    Client, RetryState, State, WorkflowContext, WorkflowError,
};
use activity_worker::{ShutdownHandle, Worker, WorkerReport};
use process_support::*;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const QUEUE: &str = "cli-q";

/// Where pending activities publish their task tokens.
struct Inbox {
    dir: PathBuf,
}

impl Inbox {
    fn token_file(&self, activity_id: &str) -> PathBuf {
        self.dir.join(format!("{activity_id}.token"))
    }
}

/// Publishes its task token and leaves its result to someone else.
#[activity(start_to_close = "30s", retry(maximum_attempts = 1))]
async fn await_approval(
    ctx: ActivityContext,
    inbox: State<Inbox>,
    request: String,
) -> Result<String, ActivityError> {
    let _ = request;
    let file = inbox.token_file(&ctx.info().activity_id);
    let partial = file.with_extension("partial");
    std::fs::write(&partial, ctx.task_token().to_hex())
        .and_then(|()| std::fs::rename(&partial, &file))
        .map_err(|e| ActivityError::retryable(format!("cannot publish the token: {e}")))?;
    Err(ActivityError::result_pending())
}

/// Greets someone.
#[activity(start_to_close = "30s")]
async fn hello(name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {name}"))
}

/// Greets each name, then punctuates: two arguments.
#[workflow]
async fn greet_all(
    ctx: WorkflowContext,
    names: Vec<String>,
    punctuation: String,
) -> Result<String, WorkflowError> {
    let mut parts = Vec::new();
    for name in names {
        parts.push(hello::call(&ctx, name).await?);
    }
    Ok(format!("{}{punctuation}", parts.join(", ")))
}

/// Continues as new `n` times, then lands.
#[workflow]
async fn countdown(ctx: WorkflowContext, n: u32) -> Result<String, WorkflowError> {
    if n > 0 {
        return countdown::continue_as_new(&ctx, n - 1).await;
    }
    Ok("liftoff".to_owned())
}

/// Sleeps an hour.
#[workflow]
async fn dozes(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

struct Setup {
    server: ServerProcess,
    worker: (ShutdownHandle, JoinHandle<WorkerReport>),
    client: Client,
    inbox: Arc<Inbox>,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &[&str], token: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("engine.db"), extra);
    let mut config = activity_remote::RemoteConfig::new(server.url());
    if let Some(token) = token {
        config = config.with_bearer_token(token);
    }
    let protocol: Arc<dyn ActivityProtocol> = server.remote_with(config).await;
    let inbox = Arc::new(Inbox {
        dir: dir.path().to_owned(),
    });
    let worker = Worker::builder(protocol.clone())
        .task_queue(QUEUE)
        .identity("cli-test-worker")
        .poll_wait(Duration::from_secs(2))
        .graceful_shutdown_period(Duration::from_millis(200))
        .shared_state(inbox.clone())
        .build()
        .expect("the worker builds");
    let handle = worker.shutdown_handle();
    let task = tokio::spawn(worker.run_until(std::future::pending()));
    Setup {
        server,
        worker: (handle, task),
        client: Client::new(protocol).with_task_queue(QUEUE),
        inbox,
        _dir: dir,
    }
}

impl Setup {
    /// The CLI with `--server` pointing at this server.
    async fn cli(&self, args: &[&str]) -> CliRun {
        let url = self.server.url();
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        cli(&all).await
    }

    async fn published_token(&self, activity_id: &str) -> String {
        let file = self.inbox.token_file(activity_id);
        eventually("the token to be published", || file.exists()).await;
        std::fs::read_to_string(&file).expect("the token file")
    }

    async fn stop(self) -> WorkerReport {
        let (handle, task) = self.worker;
        handle.shutdown();
        bounded("the worker's shutdown", task)
            .await
            .expect("the worker task")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_left_pending_is_completed_or_failed_by_the_cli_from_another_process() {
    let s = setup(&[], None).await;

    // Completed from the CLI: the typed caller gets the CLI's result.
    let client = s.client.clone();
    let call = tokio::spawn(async move {
        await_approval::call(&client, "deploy".into())
            .activity_id("approval-1")
            .await
    });
    let token = s.published_token("approval-1").await;
    let described = s
        .cli(&["activity", "describe", "--id", "approval-1", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "STARTED");
    assert_eq!(described["worker_identity"], "cli-test-worker");
    let heartbeat = s
        .cli(&[
            "activity",
            "heartbeat",
            "--token",
            &token,
            "--details",
            r#"{"step": 2}"#,
            "--json",
        ])
        .await
        .json();
    assert_eq!(heartbeat, json!({ "cancel_requested": false }));
    let done = s
        .cli(&[
            "activity",
            "complete",
            "--token",
            &token,
            "--result",
            r#""approved by the cli""#,
        ])
        .await;
    assert!(done.status.success(), "{done:#?}");
    assert_eq!(done.stdout.trim(), "completed");
    let result = bounded("the typed call", call)
        .await
        .expect("the call task")
        .expect("the activity completes");
    assert_eq!(result, "approved by the cli");
    let described = s
        .cli(&["activity", "describe", "--id", "approval-1", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "COMPLETED");
    assert_eq!(described["heartbeat_details"], json!({ "step": 2 }));
    assert_eq!(described["outcome"]["result"], "approved by the cli");
    // A second completion with the same token is refused, clearly.
    let again = s
        .cli(&["activity", "complete", "--token", &token, "--result", "1"])
        .await;
    assert!(again.error().contains("already closed"), "{again:#?}");

    // Failed from the CLI: the typed caller gets the failure as given.
    let client = s.client.clone();
    let call = tokio::spawn(async move {
        await_approval::call(&client, "rollback".into())
            .activity_id("approval-2")
            .await
    });
    let token = s.published_token("approval-2").await;
    let failed = s
        .cli(&[
            "activity",
            "fail",
            "--token",
            &token,
            "--message",
            "rejected by ops",
            "--type",
            "Rejected",
            "--non-retryable",
            "--json",
        ])
        .await
        .json();
    assert_eq!(failed, json!({ "failed": true }));
    let err = bounded("the typed call", call)
        .await
        .expect("the call task")
        .expect_err("the activity fails");
    let ActivityCallError::Failed(failure) = err else {
        panic!("expected the execution's failure, got {err:?}")
    };
    assert_eq!(failure.retry_state, RetryState::NonRetryableFailure);
    let cause = failure.application().expect("an application failure");
    assert_eq!(
        (cause.error_type.as_str(), cause.message.as_str()),
        ("Rejected", "rejected by ops")
    );

    let report = s.stop().await;
    assert_eq!(report.pending, 2, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_and_task_queue_commands_print_json_that_parses() {
    let s = setup(&[], None).await;
    let started = s
        .cli(&[
            "workflow",
            "start",
            "--type",
            "greet_all",
            "--id",
            "greet-1",
            "--task-queue",
            QUEUE,
            "--input",
            r#"[["Ada", "Bob"], "!"]"#,
            "--json",
        ])
        .await
        .json();
    assert_eq!(started["workflow_id"], "greet-1");
    assert!(!started["run_id"].as_str().expect("a run id").is_empty());

    let result = s
        .cli(&[
            "workflow", "result", "--id", "greet-1", "--wait", "10s", "--json",
        ])
        .await
        .json();
    assert_eq!(
        result,
        json!({ "status": "COMPLETED", "result": "Hello Ada, Hello Bob!" })
    );
    let plain = s.cli(&["workflow", "result", "--id", "greet-1"]).await;
    assert!(plain.status.success(), "{plain:#?}");
    assert_eq!(plain.stdout.trim(), r#""Hello Ada, Hello Bob!""#);

    let described = s
        .cli(&["workflow", "describe", "--id", "greet-1", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "COMPLETED");
    assert_eq!(described["workflow_type"], "greet_all");
    assert_eq!(described["run_id"], started["run_id"]);
    assert_eq!(described["outcome"]["result"], "Hello Ada, Hello Bob!");

    let history = s
        .cli(&["workflow", "history", "--id", "greet-1", "--json"])
        .await
        .json();
    let events = history.as_array().expect("an array of events");
    assert_eq!(events.len() as u64, described["history_length"]);
    assert_eq!(events[0]["event"], "WorkflowStarted");
    assert_eq!(events[0]["input"], json!([["Ada", "Bob"], "!"]));
    let scheduled: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "ActivityScheduled")
        .map(|e| e["activity_type"].clone())
        .collect();
    assert_eq!(scheduled, [json!("hello"), json!("hello")]);
    assert_eq!(events.last().expect("events")["event"], "WorkflowCompleted");
    let table = s.cli(&["workflow", "history", "--id", "greet-1"]).await;
    assert!(table.status.success(), "{table:#?}");
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(
        table.stdout.contains("WorkflowCompleted"),
        "{}",
        table.stdout
    );

    let queue = s
        .cli(&["task-queue", "describe", "--name", QUEUE, "--json"])
        .await
        .json();
    assert_eq!(queue["name"], QUEUE);
    assert_eq!(queue["backlog"], 0);
    let pollers = queue["pollers"].as_array().expect("pollers");
    assert!(
        pollers.iter().any(|p| p["identity"] == "cli-test-worker"),
        "{queue}"
    );

    // A run on a queue nobody polls: cancellation is requested and shows.
    let idle = s
        .cli(&[
            "workflow",
            "start",
            "--type",
            "greet_all",
            "--id",
            "idle-1",
            "--task-queue",
            "idle-q",
            "--input",
            r#"[[], "."]"#,
        ])
        .await;
    assert!(idle.status.success(), "{idle:#?}");
    assert!(
        idle.stdout.contains("started workflow `idle-1`"),
        "{idle:#?}"
    );
    let waiting = s
        .cli(&["workflow", "result", "--id", "idle-1", "--wait", "300ms"])
        .await;
    assert!(
        waiting
            .error()
            .contains("workflow `idle-1` is still running after 300ms"),
        "{waiting:#?}"
    );
    // Both runs are listed, newest first; filters narrow the list.
    let listed = s.cli(&["workflow", "list", "--json"]).await.json();
    let runs = listed.as_array().expect("an array of runs");
    let ids: Vec<&Value> = runs.iter().map(|r| &r["workflow_id"]).collect();
    assert_eq!(ids, [&json!("idle-1"), &json!("greet-1")], "{listed}");
    assert_eq!(runs[0]["state"], "RUNNING");
    assert_eq!(runs[0]["task_queue"], "idle-q");
    assert_eq!(runs[0]["close_time"], Value::Null);
    assert_eq!(runs[1]["state"], "COMPLETED");
    assert_eq!(runs[1]["workflow_type"], "greet_all");
    let running = s
        .cli(&["workflow", "list", "--state", "running", "--json"])
        .await
        .json();
    assert_eq!(running.as_array().map(Vec::len), Some(1), "{running}");
    assert_eq!(running[0]["workflow_id"], "idle-1");
    let table = s
        .cli(&["workflow", "list", "--type", "greet_all", "--limit", "1"])
        .await;
    assert!(table.status.success(), "{table:#?}");
    assert!(
        table.stdout.contains("idle-1") && !table.stdout.contains("greet-1"),
        "{table:#?}"
    );
    let canceled = s
        .cli(&["workflow", "cancel", "--id", "idle-1", "--json"])
        .await
        .json();
    assert_eq!(canceled["cancel_requested"], true);
    let described = s
        .cli(&["workflow", "describe", "--id", "idle-1", "--json"])
        .await
        .json();
    assert_eq!(described["cancel_requested"], true);

    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_an_unknown_type_shows_why_in_describe_and_the_cli_terminates_it() {
    let s = setup(&[], None).await;
    let started = s
        .cli(&[
            "workflow",
            "start",
            "--type",
            "not_deployed",
            "--id",
            "ghost-1",
            "--task-queue",
            QUEUE,
        ])
        .await;
    assert!(started.status.success(), "{started:#?}");
    // The worker fails its task, naming the types it has.
    let mut described = Value::Null;
    for _ in 0..100 {
        described = s
            .cli(&["workflow", "describe", "--id", "ghost-1", "--json"])
            .await
            .json();
        if described["task_failures"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = described["last_task_failure"].as_str().unwrap_or_default();
    assert!(
        message.contains("workflow type `not_deployed` is not registered")
            && message.contains("greet_all"),
        "{described}"
    );
    assert_eq!(described["state"], "RUNNING");

    // Signals are recorded for any running run; a query is answered by the
    // queue's worker, which says why it cannot answer this one.
    let signaled = s
        .cli(&[
            "workflow",
            "signal",
            "--id",
            "ghost-1",
            "--name",
            "nudge",
            "--input",
            r#"{"n": 1}"#,
            "--json",
        ])
        .await
        .json();
    assert_eq!(signaled["signal_name"], "nudge");
    let history = s
        .cli(&["workflow", "history", "--id", "ghost-1", "--json"])
        .await
        .json();
    let signal = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["event"] == "WorkflowSignaled"))
        .cloned()
        .expect("the signal is in the history");
    assert_eq!(signal["signal_name"], "nudge");
    assert_eq!(signal["input"], json!({ "n": 1 }));
    let bad = s
        .cli(&[
            "workflow", "signal", "--id", "ghost-1", "--name", "nudge", "--input", "{",
        ])
        .await;
    assert!(
        bad.error().contains("invalid --input: not valid JSON"),
        "{bad:#?}"
    );
    let query = s
        .cli(&[
            "workflow", "query", "--id", "ghost-1", "--name", "status", "--wait", "5s",
        ])
        .await;
    assert!(
        query
            .error()
            .contains("the run completed no workflow task within 5s: is a worker of workflow type `not_deployed` polling task queue `cli-q`?"),
        "{query:#?}"
    );
    // The server answered: the CLI does not say it stopped answering.
    assert!(!query.error().contains("stopped answering"), "{query:#?}");

    let terminated = s
        .cli(&[
            "workflow",
            "terminate",
            "--id",
            "ghost-1",
            "--reason",
            "nobody deploys it",
            "--json",
        ])
        .await
        .json();
    assert_eq!(terminated["state"], "TERMINATED");
    let described = s
        .cli(&["workflow", "describe", "--id", "ghost-1", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "TERMINATED");
    assert_eq!(
        described["outcome"],
        json!({ "status": "TERMINATED", "reason": "nobody deploys it" })
    );
    let history = s
        .cli(&["workflow", "history", "--id", "ghost-1", "--json"])
        .await
        .json();
    let last = history.as_array().and_then(|h| h.last()).cloned();
    let last = last.expect("events");
    assert_eq!(last["event"], "WorkflowTerminated");
    assert_eq!(last["reason"], "nobody deploys it");
    assert!(
        last["identity"]
            .as_str()
            .is_some_and(|i| i.starts_with("cli-")),
        "{last}"
    );
    let result = s.cli(&["workflow", "result", "--id", "ghost-1"]).await;
    assert!(!result.status.success(), "{result:#?}");
    assert_eq!(result.stdout.trim(), "TERMINATED: nobody deploys it");
    let again = s
        .cli(&["workflow", "terminate", "--id", "ghost-1", "--reason", "x"])
        .await;
    assert!(
        again
            .error()
            .contains("the workflow run is closed (TERMINATED)"),
        "{again:#?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_say_what_is_wrong_and_what_to_do() {
    // No server: which address, and how to start one.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let run = cli(&["workflow", "describe", "--id", "x", "--server", &url]).await;
    let stderr = run.error();
    assert!(
        stderr.contains(&format!("cannot reach the activity server at {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("activity-server serve"), "{stderr}");

    // Bad JSON: where, before any connection.
    let run = cli(&[
        "workflow",
        "start",
        "--type",
        "t",
        "--id",
        "i",
        "--task-queue",
        "q",
        "--input",
        "[1, 2 3]",
        "--server",
        &url,
    ])
    .await;
    let stderr = run.error();
    assert!(
        stderr.contains("invalid --input: not valid JSON"),
        "{stderr}"
    );
    assert!(stderr.contains("line 1 column 7"), "{stderr}");
    let run = cli(&[
        "workflow",
        "start",
        "--type",
        "t",
        "--id",
        "i",
        "--task-queue",
        "q",
        "--input",
        r#"{"a": 1}"#,
    ])
    .await;
    assert!(run.error().contains("must be a JSON array"), "{run:#?}");
    let run = cli(&["activity", "complete", "--token", "zz", "--result", "1"]).await;
    assert!(run.error().contains("invalid --token"), "{run:#?}");
    let run = cli(&["activity", "complete", "--token", "ab", "--result", "{"]).await;
    assert!(run.error().contains("invalid --result"), "{run:#?}");

    // A server with a token: without it, refused with the fix; with it, served.
    let s = setup(&["--token", "s3cret"], Some("s3cret")).await;
    let run = s.cli(&["task-queue", "describe", "--name", QUEUE]).await;
    let stderr = run.error();
    assert!(stderr.contains("--auth-token"), "{stderr}");
    let served = s
        .cli(&[
            "task-queue",
            "describe",
            "--name",
            QUEUE,
            "--auth-token",
            "s3cret",
            "--json",
        ])
        .await
        .json();
    assert_eq!(served["name"], QUEUE);

    // Unknown ids are named.
    let run = s
        .cli(&[
            "workflow",
            "describe",
            "--id",
            "nope",
            "--auth-token",
            "s3cret",
        ])
        .await;
    let stderr = run.error();
    assert!(
        stderr.contains("not found") && stderr.contains("nope"),
        "{stderr}"
    );
    let run = s
        .cli(&[
            "activity",
            "describe",
            "--id",
            "nobody",
            "--auth-token",
            "s3cret",
        ])
        .await;
    let stderr = run.error();
    assert!(
        stderr.contains("not found") && stderr.contains("nobody"),
        "{stderr}"
    );
    // A token this server never issued.
    let run = s
        .cli(&[
            "activity",
            "complete",
            "--token",
            "00ff",
            "--result",
            "1",
            "--auth-token",
            "s3cret",
        ])
        .await;
    assert!(run.error().contains("invalid task token"), "{run:#?}");

    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_start_runs_a_standalone_activity_and_prints_or_waits_for_its_outcome() {
    let s = setup(&[], None).await;
    let start = |extra: &[&'static str]| {
        let mut args = vec![
            "activity",
            "start",
            "--type",
            "hello",
            "--task-queue",
            QUEUE,
            "--start-to-close",
            "10s",
        ];
        args.extend_from_slice(extra);
        args
    };

    // --wait: the outcome, as JSON or as the result's JSON.
    let done = s
        .cli(&start(&["--input", r#"["Ada"]"#, "--wait", "--json"]))
        .await
        .json();
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(done["result"], "Hello Ada");
    assert!(!done["activity_id"].as_str().expect("an id").is_empty());
    let plain = s.cli(&start(&["--input", r#"["Bob"]"#, "--wait"])).await;
    assert!(plain.status.success(), "{plain:#?}");
    assert_eq!(plain.stdout.trim(), r#""Hello Bob""#);

    // Without --wait: the execution, scheduled; it completes on its own.
    let started = s
        .cli(&start(&[
            "--input",
            r#"["Cy"]"#,
            "--id",
            "started-by-cli",
            "--json",
        ]))
        .await
        .json();
    assert_eq!(started["activity_id"], "started-by-cli");
    assert_eq!(started["state"], "SCHEDULED");
    assert_eq!(started["options"]["start_to_close_ms"], 10_000);
    let mut described = json!(null);
    for _ in 0..200 {
        described = s
            .cli(&["activity", "describe", "--id", "started-by-cli", "--json"])
            .await
            .json();
        if described["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(described["outcome"]["result"], "Hello Cy", "{described:#}");
    let human = s
        .cli(&start(&["--input", r#"["Di"]"#, "--id", "started-2"]))
        .await;
    assert!(
        human
            .stdout
            .contains("started activity `started-2` (type `hello`"),
        "{human:#?}"
    );

    // A failed execution: its failure, and exit code 1.
    let failed = s
        .cli(&[
            "activity",
            "start",
            "--type",
            "no_such_type",
            "--task-queue",
            QUEUE,
            "--schedule-to-close",
            "10s",
            "--maximum-attempts",
            "1",
            "--wait",
            "--json",
        ])
        .await;
    assert_eq!(failed.status.code(), Some(1), "{failed:#?}");
    let failure: Value = serde_json::from_str(&failed.stdout).expect("JSON on stdout");
    assert_eq!(failure["status"], "FAILED");
    assert_eq!(failure["failure"]["retry_state"], "MaximumAttemptsReached");
    assert_eq!(failure["failure"]["cause"]["type"], "ActivityNotRegistered");

    // Refused before anything is scheduled: no close timeout; an input that
    // breaks the registered schema.
    let run = s
        .cli(&[
            "activity",
            "start",
            "--type",
            "hello",
            "--task-queue",
            QUEUE,
        ])
        .await;
    assert!(
        run.error().contains("--start-to-close DURATION"),
        "{run:#?}"
    );
    let run = s.cli(&start(&["--input", "[42]", "--id", "typed"])).await;
    let error = run.error();
    assert!(error.contains("`input[0] (`name`)`"), "{error}");
    let missing = s.cli(&["activity", "describe", "--id", "typed"]).await;
    assert!(missing.error().contains("not found"), "{missing:#?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_messages_escape_control_characters_and_terminal_sequences() {
    let s = setup(&[], None).await;
    // A workflow id and argument that would clear the screen, set the terminal's
    // title and reverse the text after them.
    let evil_id = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}di";
    let started = s
        .cli(&[
            "workflow",
            "start",
            "--type",
            "greet_all",
            "--id",
            evil_id,
            "--task-queue",
            QUEUE,
            "--input",
            r#"[["\u001b[31mred\u009b"], "\u202e!"]"#,
        ])
        .await;
    let result = s
        .cli(&["workflow", "result", "--id", evil_id, "--wait", "10s"])
        .await;
    let list = s.cli(&["workflow", "list"]).await;
    let history = s.cli(&["workflow", "history", "--id", evil_id]).await;
    let describe = s.cli(&["workflow", "describe", "--id", evil_id]).await;
    let missing = s
        .cli(&["workflow", "describe", "--id", "gone\u{1b}[2J"])
        .await;
    for run in [&started, &result, &list, &history, &describe] {
        assert!(run.status.success(), "{run:#?}");
        let shown = &run.stdout;
        assert!(
            !shown
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "raw control characters in {shown:?}"
        );
    }
    assert!(
        list.stdout
            .contains("evil\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{202e}di"),
        "{}",
        list.stdout
    );
    assert!(
        history.stdout.contains("\\u001b[31mred\\u{9b}"),
        "{}",
        history.stdout
    );
    assert!(started.stdout.contains("\\u{1b}[2J"), "{}", started.stdout);
    // Errors too.
    let stderr = missing.error();
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(stderr.contains("gone\\u{1b}[2J"), "{stderr}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_every_error_is_one_json_document_on_stdout() {
    let error_of = |run: &CliRun, code: i32| -> Value {
        assert_eq!(run.status.code(), Some(code), "{run:#?}");
        assert!(run.stderr.is_empty(), "nothing but JSON: {run:#?}");
        let document: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {run:#?}"));
        let error = document["error"].clone();
        assert!(error["message"].is_string(), "{document:#}");
        assert!(error["retryable"].is_boolean(), "{document:#}");
        error
    };
    // No server.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let error = error_of(
        &cli(&[
            "workflow", "describe", "--id", "x", "--server", &url, "--json",
        ])
        .await,
        1,
    );
    assert_eq!(error["kind"], "unreachable");
    assert_eq!(error["endpoint"], url.as_str());
    assert_eq!(error["retryable"], true);
    // A bad argument, before connecting.
    let error = error_of(
        &cli(&[
            "activity", "complete", "--token", "zz", "--result", "1", "--json",
        ])
        .await,
        1,
    );
    assert_eq!(error["kind"], "invalid_argument");
    assert_eq!(error["argument"], "--token");
    // A usage error (clap's), exit code 2.
    let error = error_of(&cli(&["workflow", "describe", "--json"]).await, 2);
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"]
            .as_str()
            .expect("text")
            .contains("--id <ID>"),
        "{error:#}"
    );
    // A bearer token that cannot be sent.
    let error = error_of(
        &cli(&[
            "task-queue",
            "describe",
            "--name",
            "q",
            "--auth-token",
            "tökén",
            "--json",
        ])
        .await,
        1,
    );
    assert_eq!(error["kind"], "connect");
    // The server's refusals, with the fields they name.
    let s = setup(&[], None).await;
    let error = error_of(
        &s.cli(&["workflow", "describe", "--id", "nope", "--json"])
            .await,
        1,
    );
    assert_eq!(error["kind"], "not_found");
    assert!(error["what"].as_str().expect("what").contains("nope"));
    let error = error_of(
        &s.cli(&[
            "activity",
            "start",
            "--type",
            "hello",
            "--task-queue",
            QUEUE,
            "--start-to-close",
            "0s",
            "--json",
        ])
        .await,
        1,
    );
    assert_eq!(error["kind"], "invalid_options");
    assert_eq!(error["problems"][0]["field"], "start_to_close");
    assert_eq!(error["problems"][0]["rule"], "must be greater than zero");
    // Help is still help.
    let help = cli(&["workflow", "--help", "--json"]).await;
    assert!(help.status.success(), "{help:#?}");
    assert!(help.stdout.contains("Usage:"), "{help:#?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_that_is_not_visible_ascii_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("engine.db");
    let db = db.to_str().expect("a UTF-8 path");
    let run = cli(&[
        "serve",
        "--db",
        db,
        "--listen",
        "127.0.0.1:0",
        "--token",
        "s3crét",
    ])
    .await;
    let stderr = run.error();
    assert!(
        stderr.contains("invalid bearer token: character 5 is `é`"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    let run = cli(&[
        "task-queue",
        "describe",
        "--name",
        "q",
        "--auth-token",
        "two words",
    ])
    .await;
    assert!(
        run.error()
            .contains("invalid bearer token: character 4 is a space"),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limits_and_retention_that_cannot_work_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("engine.db");
    let db = db.to_str().expect("a UTF-8 path");
    for (flags, message) in [
        (
            &["--history-max-events", "10", "--history-warn-events", "100"][..],
            "`history_warn_events` (100) must be at most `history_max_events` (10)",
        ),
        (
            &["--retention", "0s"][..],
            "`retention` must be greater than zero",
        ),
    ] {
        let mut args = vec!["serve", "--db", db, "--listen", "127.0.0.1:0"];
        args.extend(flags);
        let run = cli(&args).await;
        let stderr = run.error();
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_another_server_holds_is_named_with_what_holds_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("engine.db");
    let _first = ServerProcess::start(&path, &[]);
    let db = path.to_str().expect("a UTF-8 path");
    let run = cli(&["serve", "--db", db, "--listen", "127.0.0.1:0"]).await;
    let stderr = run.error();
    assert!(
        stderr.contains(&format!(
            "the database file `{db}` is locked: another engine has it open"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Unavailable(") && !stderr.contains("Store("),
        "printed with Display, not Debug: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_list_shows_the_registered_types_and_cli_completions_are_validated() {
    let s = setup(&[], None).await;

    // The worker registers its types when it starts.
    let mut types = json!([]);
    for _ in 0..100 {
        types = s.cli(&["types", "list", "--json"]).await.json();
        if types.as_array().is_some_and(|t| !t.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let types = types.as_array().expect("an array of types");
    let find = |kind: &str, name: &str| {
        types
            .iter()
            .find(|t| t["kind"] == kind && t["name"] == name && t["task_queue"] == QUEUE)
            .unwrap_or_else(|| panic!("{kind} `{name}` on `{QUEUE}` in {types:#?}"))
    };
    let approval = find("ACTIVITY", "await_approval");
    assert_eq!(approval["arguments"], json!(["request"]));
    assert_eq!(approval["last_identity"], "cli-test-worker");
    assert_eq!(approval["input_schema"]["type"], "array");
    assert_eq!(approval["output_schema"]["type"], "string");
    let workflow = find("WORKFLOW", "greet_all");
    assert_eq!(workflow["input_schema"], json!(null));
    let table = s.cli(&["types", "list"]).await;
    assert!(table.status.success(), "{table:#?}");
    assert!(table.stdout.starts_with("KIND"), "{}", table.stdout);
    assert!(table.stdout.contains("await_approval"), "{}", table.stdout);

    // A completion from the CLI whose result breaks the output schema is refused,
    // naming the field; the attempt is still there to complete properly.
    let client = s.client.clone();
    let call = tokio::spawn(async move {
        await_approval::call(&client, "deploy".into())
            .activity_id("approval-typed")
            .await
    });
    let token = s.published_token("approval-typed").await;
    let refused = s
        .cli(&["activity", "complete", "--token", &token, "--result", "42"])
        .await;
    let error = refused.error();
    assert!(error.contains("`result`"), "{error}");
    assert!(error.contains("string"), "{error}");
    let described = s
        .cli(&["activity", "describe", "--id", "approval-typed", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "STARTED");
    let done = s
        .cli(&[
            "activity", "complete", "--token", &token, "--result", r#""ok""#,
        ])
        .await;
    assert!(done.status.success(), "{done:#?}");
    let result = bounded("the typed call", call)
        .await
        .expect("the call task")
        .expect("the activity completes");
    assert_eq!(result, "ok");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_start_options_reset_and_a_followed_result_from_the_cli() {
    let s = setup(&[], None).await;
    let start = |id: &'static str, kind: &'static str, extra: &[&'static str]| {
        let mut args = vec![
            "workflow",
            "start",
            "--type",
            kind,
            "--id",
            id,
            "--task-queue",
            QUEUE,
        ];
        args.extend(extra);
        args
    };
    // A run timeout closes the run TIMED_OUT.
    let started = s
        .cli(&start("dozy", "dozes", &["--run-timeout", "1s"]))
        .await;
    assert!(started.status.success(), "{started:#?}");
    let result = s
        .cli(&["workflow", "result", "--id", "dozy", "--wait", "30s"])
        .await;
    assert!(!result.status.success(), "{result:#?}");
    assert_eq!(
        result.stdout.trim(),
        "TIMED_OUT: run timeout",
        "{result:#?}"
    );
    let described = s
        .cli(&["workflow", "describe", "--id", "dozy", "--json"])
        .await
        .json();
    assert_eq!(described["state"], "TIMED_OUT");
    assert_eq!(described["outcome"]["timeout"], "run timeout");
    assert!(described["run_deadline"].is_string(), "{described}");
    // The id-reuse policy refuses a new run of a closed id.
    let refused = s
        .cli(&start(
            "dozy",
            "dozes",
            &["--id-reuse-policy", "reject-duplicate"],
        ))
        .await;
    let stderr = refused.error();
    assert!(
        stderr.contains("RejectDuplicate") && stderr.contains("TIMED_OUT"),
        "{stderr}"
    );
    // Invalid timeouts are refused naming the field.
    let zero = s
        .cli(&start("zero", "dozes", &["--run-timeout", "0s"]))
        .await;
    assert!(zero.error().contains("run_timeout"), "{zero:#?}");
    let short = s
        .cli(&start(
            "short",
            "dozes",
            &["--run-timeout", "1h", "--execution-timeout", "1m"],
        ))
        .await;
    assert!(short.error().contains("execution_timeout"), "{short:#?}");

    // `result --run-id` of a run that continued as new follows the chain.
    let first = s
        .cli(
            &[
                &start("count", "countdown", &["--input", "[2]"])[..],
                &["--json"],
            ]
            .concat(),
        )
        .await
        .json();
    let first_run = first["run_id"].as_str().expect("a run id").to_owned();
    let followed = s
        .cli(&[
            "workflow", "result", "--id", "count", "--run-id", &first_run, "--wait", "30s",
        ])
        .await;
    assert!(followed.status.success(), "{followed:#?}");
    assert!(
        followed.stdout.contains("followed 2 run(s) that took over")
            && followed.stdout.contains(&first_run)
            && followed.stdout.contains("liftoff"),
        "{followed:#?}"
    );

    // Reset: a wrong event is refused naming the choices; a right one starts
    // a new run that the current code finishes.
    let greet = start("greet-r", "greet_all", &["--input", r#"[["Ada"], "!"]"#]);
    assert!(s.cli(&greet).await.status.success());
    let done = s
        .cli(&["workflow", "result", "--id", "greet-r", "--wait", "30s"])
        .await;
    assert!(done.status.success(), "{done:#?}");
    let history = s
        .cli(&["workflow", "history", "--id", "greet-r", "--json"])
        .await
        .json();
    let completed: Vec<u64> = history
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "WorkflowTaskCompleted")
        .filter_map(|e| e["event_id"].as_u64())
        .collect();
    let wrong = s
        .cli(&[
            "workflow",
            "reset",
            "--id",
            "greet-r",
            "--to-event",
            "1",
            "--reason",
            "test",
        ])
        .await;
    let stderr = wrong.error();
    assert!(
        stderr.contains("to_event") && stderr.contains(&format!("one of [{}", completed[0])),
        "{stderr}"
    );
    let to = completed[0].to_string();
    let reset = s
        .cli(&[
            "workflow",
            "reset",
            "--id",
            "greet-r",
            "--to-event",
            &to,
            "--reason",
            "redo",
            "--json",
        ])
        .await
        .json();
    assert_ne!(reset["run_id"], Value::Null);
    let again = s
        .cli(&["workflow", "result", "--id", "greet-r", "--wait", "30s"])
        .await;
    assert!(again.status.success(), "{again:#?}");
    assert_eq!(again.stdout.trim(), r#""Hello Ada!""#);
    let described = s
        .cli(&["workflow", "describe", "--id", "greet-r", "--json"])
        .await
        .json();
    assert_eq!(described["run_id"], reset["run_id"]);
    s.stop().await;
}
