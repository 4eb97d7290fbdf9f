//! The client commands: each connects to the server with [`RemoteProtocol`],
//! makes one protocol call (or a bounded series of long polls) and prints the
//! answer as a table, or as one JSON document with `--json`.

use std::{
    io::Write,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use activity_core::{
    failure::ApplicationFailure,
    options::ActivityOptions,
    protocol::{
        ExecutionOutcome, ExecutionRef, ExecutionState, ScheduleActivityRequest, TaskTarget,
    },
    workflow::history::{ListWorkflowsRequest, StartWorkflowRequest, WorkflowOutcome, WorkflowRef},
    ActivityProtocol, Payload, TaskToken,
};
use activity_remote::{ConnectError, RemoteConfig, RemoteProtocol};
use serde_json::{json, Value};

use super::{
    view, ActivityCommand, AttemptTarget, CliError, Connection, ExecutionTarget, StartActivity,
    TaskQueueCommand, TypesCommand, WorkflowCommand, WorkflowTarget,
};

/// Longest single long poll while waiting for a result.
const LONG_POLL: Duration = Duration::from_secs(30);

async fn connect(connection: &Connection) -> Result<Arc<dyn ActivityProtocol>, CliError> {
    let mut servers = connection.server.iter();
    let first = servers.next().cloned().unwrap_or_default();
    let mut config = servers
        .fold(RemoteConfig::new(first), |config, url| {
            config.with_endpoint(url.clone())
        })
        .with_connect_timeout(connection.timeout)
        .with_call_timeout(connection.timeout);
    if let Some(token) = &connection.auth_token {
        config = config.with_bearer_token(token.clone());
    }
    if let Some(ca) = &connection.tls_ca {
        config = config.with_tls_ca(super::read_file("--tls-ca", ca)?);
    }
    if let (Some(cert), Some(key)) = (&connection.tls_cert, &connection.tls_key) {
        config = config.with_tls_identity(
            super::read_file("--tls-cert", cert)?,
            super::read_file("--tls-key", key)?,
        );
    }
    match RemoteProtocol::connect(config).await {
        Ok(protocol) => Ok(Arc::new(protocol)),
        Err(ConnectError::Unreachable { endpoint, reason }) => {
            Err(CliError::Unreachable { endpoint, reason })
        }
        Err(other) => Err(CliError::Connect(other)),
    }
}

/// Prints `value` as JSON with `--json`, else `human`.
fn print(connection: &Connection, value: &Value, human: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    if connection.json {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        writeln!(stdout, "{text}")?;
    } else {
        // Names and payloads in the text cannot drive the terminal.
        write!(stdout, "{}", view::escape(human, true))?;
        if !human.ends_with('\n') {
            writeln!(stdout)?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Parses the JSON of argument `arg`, pointing at the error in the text.
fn parse_json(arg: &'static str, text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| {
        let mut message = format!("not valid JSON: {e}");
        if let Some(line) = text.lines().nth(e.line().saturating_sub(1)) {
            let caret = " ".repeat(e.column().saturating_sub(1));
            message.push_str(&format!("\n  {line}\n  {caret}^"));
        }
        CliError::InvalidArg { arg, message }
    })
}

fn payload_of(arg: &'static str, value: &Value) -> Result<Payload, CliError> {
    Payload::json(value).map_err(|e| CliError::InvalidArg {
        arg,
        message: e.to_string(),
    })
}

fn json_payload(arg: &'static str, text: &str) -> Result<Payload, CliError> {
    payload_of(arg, &parse_json(arg, text)?)
}

fn workflow_ref(target: WorkflowTarget) -> WorkflowRef {
    let mut workflow = WorkflowRef::latest(target.id);
    workflow.run_id = target.run_id;
    workflow
}

fn execution_ref(activity_id: String, workflow_id: Option<String>) -> ExecutionRef {
    let mut execution = ExecutionRef::standalone(activity_id);
    execution.workflow_id = workflow_id;
    execution
}

fn attempt(target: AttemptTarget, workflow_id: Option<String>) -> Result<TaskTarget, CliError> {
    match (target.token, target.activity_id) {
        (Some(hex), _) => TaskToken::from_hex(hex.trim())
            .map(TaskTarget::Token)
            .ok_or(CliError::InvalidArg {
                arg: "--token",
                message: "not a task token: expected even-length hex, as the worker or \
                          `ActivityContext::task_token().to_hex()` printed it"
                    .to_owned(),
            }),
        (None, Some(id)) => Ok(TaskTarget::Execution(execution_ref(id, workflow_id))),
        // clap requires one of the two.
        (None, None) => Err(CliError::InvalidArg {
            arg: "--token",
            message: "give --token HEX or --id ID".to_owned(),
        }),
    }
}

/// Who runs this command, as histories record it: `cli-<user>@<host>`.
fn cli_identity() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!("cli-{user}@{host}")
}

/// `workflow …`
pub(crate) async fn workflow(
    connection: &Connection,
    command: WorkflowCommand,
) -> Result<ExitCode, CliError> {
    // Arguments are checked before connecting: a typo needs no server.
    if let WorkflowCommand::Start { input, .. } = &command {
        start_input(input)?;
    }
    if let WorkflowCommand::Signal { input, .. } = &command {
        json_payload("--input", input)?;
    }
    let protocol = connect(connection).await?;
    match command {
        WorkflowCommand::Start {
            workflow_type,
            id,
            task_queue,
            input,
            run_timeout,
            execution_timeout,
            id_reuse_policy,
        } => {
            let mut request = StartWorkflowRequest::new(
                id,
                workflow_type.clone(),
                task_queue.clone(),
                start_input(&input)?,
            )
            .with_id_reuse_policy(id_reuse_policy.into());
            request.run_timeout = run_timeout;
            request.execution_timeout = execution_timeout;
            let run = protocol.start_workflow(request).await?;
            let run_id = run.run_id.clone().unwrap_or_default();
            let value = json!({
                "workflow_id": run.workflow_id,
                "run_id": run_id,
                "workflow_type": workflow_type,
                "task_queue": task_queue,
            });
            let human = format!(
                "started workflow `{}` (type `{workflow_type}`, task queue `{task_queue}`), run `{run_id}`",
                run.workflow_id
            );
            print(connection, &value, &human)?;
        }
        WorkflowCommand::Describe(target) => {
            let d = protocol.describe_workflow(workflow_ref(target)).await?;
            let value = view::workflow_description(&d);
            print(connection, &value, &view::fields(&value))?;
        }
        WorkflowCommand::Result { target, wait } => {
            let workflow = workflow_ref(target);
            let (outcome, followed) = wait_outcome(&*protocol, &workflow, wait).await?;
            let mut value = view::workflow_outcome(&outcome);
            let mut note = String::new();
            if let Some(last) = followed.last() {
                // The run asked for continued as new or was reset: the runs
                // that took over are followed to the final outcome, as
                // without `--run-id`.
                value["followed_runs"] = json!(followed);
                note = format!(
                    "(followed {} run(s) that took over, from run `{}` to run `{last}`)\n",
                    followed.len(),
                    workflow.run_id.as_deref().unwrap_or_default()
                );
            }
            let (human, code) = match &outcome {
                WorkflowOutcome::Completed(result) => (
                    serde_json::to_string_pretty(&view::payload(result))
                        .map_err(std::io::Error::other)?,
                    ExitCode::SUCCESS,
                ),
                WorkflowOutcome::Failed(failure) => {
                    (format!("FAILED: {failure}"), ExitCode::FAILURE)
                }
                WorkflowOutcome::Canceled => ("CANCELED".to_owned(), ExitCode::FAILURE),
                WorkflowOutcome::Terminated { reason, .. } => {
                    (format!("TERMINATED: {reason}"), ExitCode::FAILURE)
                }
                WorkflowOutcome::ContinuedAsNew { new_run_id } => (
                    format!("CONTINUED_AS_NEW: run `{new_run_id}` took over"),
                    ExitCode::FAILURE,
                ),
                WorkflowOutcome::TimedOut { timeout } => {
                    (format!("TIMED_OUT: {timeout}"), ExitCode::FAILURE)
                }
            };
            print(connection, &value, &format!("{note}{human}"))?;
            return Ok(code);
        }
        WorkflowCommand::Cancel(target) => {
            let workflow = workflow_ref(target);
            let state = protocol.request_cancel_workflow(workflow.clone()).await?;
            let value = json!({
                "workflow_id": workflow.workflow_id,
                "cancel_requested": true,
                "state": state.as_str(),
            });
            let human = format!("cancellation requested: {workflow} is {state}");
            print(connection, &value, &human)?;
        }
        WorkflowCommand::Terminate { target, reason } => {
            let workflow = workflow_ref(target);
            let state = protocol
                .terminate_workflow(workflow.clone(), reason, cli_identity())
                .await?;
            let value = json!({
                "workflow_id": workflow.workflow_id,
                "state": state.as_str(),
            });
            print(connection, &value, &format!("{workflow} terminated"))?;
        }
        WorkflowCommand::Reset {
            target,
            to_event,
            reason,
        } => {
            let workflow = workflow_ref(target);
            let run = protocol
                .reset_workflow(workflow.clone(), to_event, reason, cli_identity())
                .await?;
            let run_id = run.run_id.unwrap_or_default();
            let value = json!({
                "workflow_id": run.workflow_id,
                "run_id": run_id,
                "reset_from": workflow.run_id,
                "to_event": to_event,
            });
            let human = format!("{workflow} reset to event {to_event}: run `{run_id}` took over");
            print(connection, &value, &human)?;
        }
        WorkflowCommand::Signal {
            target,
            name,
            input,
        } => {
            let workflow = workflow_ref(target);
            let run = protocol
                .signal_workflow(
                    workflow.clone(),
                    name.clone(),
                    json_payload("--input", &input)?,
                    cli_identity(),
                )
                .await?;
            let run_id = run.run_id.unwrap_or_default();
            let value = json!({
                "workflow_id": run.workflow_id,
                "run_id": run_id,
                "signal_name": name,
            });
            let human = format!("signal `{name}` sent to {workflow} (run `{run_id}`)");
            print(connection, &value, &human)?;
        }
        WorkflowCommand::Query { target, name, wait } => {
            let answer = protocol
                .query_workflow(workflow_ref(target), name, wait)
                .await?;
            let value = view::payload(&answer);
            let human = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
            print(connection, &value, &human)?;
        }
        WorkflowCommand::History(target) => {
            let events = protocol.workflow_history(workflow_ref(target)).await?;
            let values: Vec<Value> = events.iter().map(view::event).collect();
            let rows: Vec<Vec<String>> = values
                .iter()
                .map(|v| {
                    let mut details = v.as_object().cloned().unwrap_or_default();
                    let mut take = |key: &str| details.remove(key).map(|v| view::cell(&v));
                    let id = take("event_id").unwrap_or_default();
                    let time = take("time").unwrap_or_default();
                    let event = take("event").unwrap_or_default();
                    let rest = if details.is_empty() {
                        String::new()
                    } else {
                        Value::Object(details).to_string()
                    };
                    vec![id, time, event, rest]
                })
                .collect();
            let human = view::table(&["ID", "TIME", "EVENT", "DETAILS"], &rows);
            print(connection, &Value::Array(values), &human)?;
        }
        WorkflowCommand::List {
            state,
            workflow_type,
            limit,
        } => {
            let mut request = ListWorkflowsRequest::new().with_limit(limit);
            if let Some(state) = state {
                request = request.with_state(state.into());
            }
            if let Some(workflow_type) = workflow_type {
                request = request.with_workflow_type(workflow_type);
            }
            let runs = protocol.list_workflows(request).await?;
            let values: Vec<Value> = runs.iter().map(view::workflow_summary).collect();
            let human = if runs.is_empty() {
                "no workflow runs\n".to_owned()
            } else {
                let rows: Vec<Vec<String>> = values
                    .iter()
                    .map(|v| {
                        [
                            "workflow_id",
                            "run_id",
                            "workflow_type",
                            "task_queue",
                            "state",
                            "start_time",
                            "close_time",
                        ]
                        .iter()
                        .map(|key| view::cell(&v[*key]))
                        .collect()
                    })
                    .collect();
                view::table(
                    &[
                        "WORKFLOW ID",
                        "RUN ID",
                        "TYPE",
                        "TASK QUEUE",
                        "STATE",
                        "START TIME",
                        "CLOSE TIME",
                    ],
                    &rows,
                )
            };
            print(connection, &Value::Array(values), &human)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--input` of a workflow: a JSON array, one element per argument.
fn start_input(text: &str) -> Result<Vec<Payload>, CliError> {
    arguments_of("--input", text, "workflow")
}

/// A JSON array of arguments, one payload per element (`what`: whose arguments).
fn arguments_of(arg: &'static str, text: &str, what: &str) -> Result<Vec<Payload>, CliError> {
    match parse_json(arg, text)? {
        Value::Array(items) => items.iter().map(|v| payload_of(arg, v)).collect(),
        other => Err(CliError::InvalidArg {
            arg,
            message: format!(
                "must be a JSON array with one element per {what} argument \
                 (e.g. '[\"ada\", 3]', or '[]' for none), got {}",
                kind_of(&other)
            ),
        }),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Long-polls for the run's outcome, until `limit` if given. A specific run
/// that continued as new (or was reset) is followed to the run that took
/// over, and so on to
/// the final outcome (as the latest run of an id is, docs/semantics.md §3.1);
/// answers the outcome and the run ids followed.
async fn wait_outcome(
    protocol: &dyn ActivityProtocol,
    workflow: &WorkflowRef,
    limit: Option<Duration>,
) -> Result<(WorkflowOutcome, Vec<String>), CliError> {
    let deadline = limit.map(|limit| Instant::now() + limit);
    let mut workflow = workflow.clone();
    let mut followed = Vec::new();
    loop {
        let wait = deadline.map_or(LONG_POLL, |d| {
            d.saturating_duration_since(Instant::now()).min(LONG_POLL)
        });
        match protocol
            .wait_workflow_outcome(workflow.clone(), wait)
            .await?
        {
            // Continued as new, or reset: the run that took over.
            Some(outcome) if workflow.run_id.is_some() && outcome.next_run().is_some() => {
                let next = outcome.next_run().unwrap_or_default().to_owned();
                followed.push(next.clone());
                workflow = WorkflowRef::run(workflow.workflow_id, next);
                continue;
            }
            Some(outcome) => return Ok((outcome, followed)),
            None => {}
        }
        if let (Some(deadline), Some(limit)) = (deadline, limit) {
            if Instant::now() >= deadline {
                return Err(CliError::StillRunning {
                    workflow: workflow.to_string(),
                    waited: humantime::format_duration(limit).to_string(),
                });
            }
        }
    }
}

/// `activity …`
pub(crate) async fn activity(
    connection: &Connection,
    command: ActivityCommand,
) -> Result<ExitCode, CliError> {
    match command {
        ActivityCommand::Start(start) => return start_activity(connection, start).await,
        ActivityCommand::Complete {
            target,
            workflow_id,
            result,
        } => {
            let target = attempt(target, workflow_id)?;
            let result = json_payload("--result", &result)?;
            let protocol = connect(connection).await?;
            protocol.complete_activity(target, result).await?;
            print(connection, &json!({ "completed": true }), "completed")?;
        }
        ActivityCommand::Fail {
            target,
            workflow_id,
            message,
            error_type,
            non_retryable,
            details,
        } => {
            let target = attempt(target, workflow_id)?;
            let mut failure =
                ApplicationFailure::new(error_type, message).with_non_retryable(non_retryable);
            if let Some(details) = details {
                failure = failure.with_details(json_payload("--details", &details)?);
            }
            let protocol = connect(connection).await?;
            protocol.fail_activity(target, failure, None).await?;
            let human = if non_retryable {
                "failed (non-retryable: the execution fails now)"
            } else {
                "failed (the engine retries it per its retry policy)"
            };
            print(connection, &json!({ "failed": true }), human)?;
        }
        ActivityCommand::Heartbeat {
            target,
            workflow_id,
            details,
        } => {
            let target = attempt(target, workflow_id)?;
            let details = details.map(|d| json_payload("--details", &d)).transpose()?;
            let protocol = connect(connection).await?;
            let answer = protocol.record_heartbeat(target, details).await?;
            let human = if answer.cancel_requested {
                "heartbeat recorded; cancellation was requested: the activity should stop"
            } else {
                "heartbeat recorded"
            };
            print(
                connection,
                &json!({ "cancel_requested": answer.cancel_requested }),
                human,
            )?;
        }
        ActivityCommand::Describe(target) => {
            let protocol = connect(connection).await?;
            let d = protocol.describe_execution(execution(target)).await?;
            let value = view::execution_description(&d);
            print(connection, &value, &view::fields(&value))?;
        }
        ActivityCommand::Cancel(target) => {
            let protocol = connect(connection).await?;
            let execution = execution(target);
            let state = protocol.request_cancel(execution.clone()).await?;
            let value = json!({
                "activity_id": execution.activity_id,
                "cancel_requested": true,
                "state": state.as_str(),
            });
            print(
                connection,
                &value,
                &format!("cancellation requested: {execution} is {state}"),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `activity start`: schedules a standalone activity; with `--wait`, long-polls
/// for its outcome.
async fn start_activity(
    connection: &Connection,
    start: StartActivity,
) -> Result<ExitCode, CliError> {
    // Arguments are checked before connecting: a typo needs no server.
    let input = arguments_of("--input", &start.input, "activity")?;
    if start.start_to_close.is_none() && start.schedule_to_close.is_none() {
        return Err(CliError::InvalidArg {
            arg: "--start-to-close",
            message: "a standalone activity needs a close timeout: give --start-to-close \
                      DURATION (one attempt) or --schedule-to-close DURATION (all attempts), \
                      e.g. --start-to-close 30s"
                .to_owned(),
        });
    }
    let mut options = ActivityOptions::new().task_queue(start.task_queue.clone());
    options.start_to_close = start.start_to_close;
    options.schedule_to_close = start.schedule_to_close;
    options.schedule_to_start = start.schedule_to_start;
    options.heartbeat_timeout = start.heartbeat_timeout;
    options.retry.maximum_attempts = start.maximum_attempts;
    let mut request = ScheduleActivityRequest::new(start.activity_type.clone(), input, options);
    request.activity_id = start.id;
    let protocol = connect(connection).await?;
    let scheduled = protocol.schedule_activity(request).await?;
    let execution = scheduled.execution;
    if !start.wait {
        let value = json!({
            "activity_id": execution.activity_id,
            "activity_type": start.activity_type,
            "task_queue": scheduled.options.task_queue,
            "state": ExecutionState::Scheduled.as_str(),
            "options": view::options(&scheduled.options),
        });
        let human = format!(
            "started activity `{}` (type `{}`, task queue `{}`); see it with \
             `activity describe --id {}`",
            execution.activity_id,
            start.activity_type,
            scheduled.options.task_queue,
            execution.activity_id
        );
        print(connection, &value, &human)?;
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = loop {
        if let Some(outcome) = protocol.wait_outcome(execution.clone(), LONG_POLL).await? {
            break outcome;
        }
    };
    let mut value = view::execution_outcome(&outcome);
    value["activity_id"] = json!(execution.activity_id);
    let (human, code) = match &outcome {
        ExecutionOutcome::Completed(result) => (
            serde_json::to_string_pretty(&view::payload(result)).map_err(std::io::Error::other)?,
            ExitCode::SUCCESS,
        ),
        ExecutionOutcome::Failed(failure) => (format!("FAILED: {failure}"), ExitCode::FAILURE),
    };
    print(connection, &value, &human)?;
    Ok(code)
}

fn execution(target: ExecutionTarget) -> ExecutionRef {
    let mut execution = execution_ref(target.id, target.workflow_id);
    execution.workflow_run_id = target.run_id;
    execution
}

/// `task-queue …`
pub(crate) async fn task_queue(
    connection: &Connection,
    command: TaskQueueCommand,
) -> Result<ExitCode, CliError> {
    let TaskQueueCommand::Describe { name } = command;
    let protocol = connect(connection).await?;
    let q = protocol.describe_task_queue(name).await?;
    let value = view::task_queue(&q);
    let mut human = view::table(
        &[],
        &[
            vec!["name".into(), q.name.clone()],
            vec!["backlog".into(), q.backlog.to_string()],
            vec!["dispatchable".into(), q.dispatchable.to_string()],
            vec![
                "rate_limit".into(),
                q.rate_limit.map_or("-".to_owned(), |r| format!("{r}/s")),
            ],
        ],
    );
    human.push('\n');
    if q.pollers.is_empty() {
        human.push_str("no recent pollers\n");
    } else {
        let rows: Vec<Vec<String>> = q
            .pollers
            .iter()
            .map(|p| {
                vec![
                    p.identity.clone(),
                    view::cell(&view::time(p.last_poll_time)),
                ]
            })
            .collect();
        human.push_str(&view::table(&["POLLER", "LAST POLL"], &rows));
    }
    print(connection, &value, &human)?;
    Ok(ExitCode::SUCCESS)
}

/// `types …`
pub(crate) async fn types(
    connection: &Connection,
    command: TypesCommand,
) -> Result<ExitCode, CliError> {
    let TypesCommand::List = command;
    let protocol = connect(connection).await?;
    let types = protocol.list_types().await?;
    let value = Value::Array(types.iter().map(view::registered_type).collect());
    let human = if types.is_empty() {
        "no registered types\n".to_owned()
    } else {
        let rows: Vec<Vec<String>> = types
            .iter()
            .map(|t| {
                vec![
                    t.kind.to_string(),
                    t.name.clone(),
                    t.task_queue.clone(),
                    if t.arguments.is_empty() {
                        "-".to_owned()
                    } else {
                        t.arguments.join(", ")
                    },
                    view::cell(&view::time(t.last_registered_time)),
                    t.last_identity.clone(),
                ]
            })
            .collect();
        view::table(
            &[
                "KIND",
                "NAME",
                "TASK QUEUE",
                "ARGUMENTS",
                "LAST REGISTERED",
                "BY",
            ],
            &rows,
        )
    };
    print(connection, &value, &human)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_points_at_the_error() {
        let err = parse_json("--input", "[1, 2 3]").expect_err("bad json");
        let text = err.to_string();
        assert!(
            text.starts_with("invalid --input: not valid JSON"),
            "{text}"
        );
        assert!(text.contains("line 1 column 7"), "{text}");
        assert!(text.ends_with("  [1, 2 3]\n        ^"), "{text:?}");
    }

    #[test]
    fn start_input_is_an_array_of_arguments() {
        let payloads = start_input(r#"["ada", {"n": 3}]"#).expect("an array");
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0], Payload::json("ada").expect("json"));
        assert!(start_input("[]").expect("empty").is_empty());
        let err = start_input(r#"{"name": "ada"}"#).expect_err("not an array");
        assert!(err.to_string().contains("got an object"), "{err}");
    }

    #[test]
    fn a_bad_token_is_named() {
        let target = AttemptTarget {
            token: Some("xyz".into()),
            activity_id: None,
        };
        let err = attempt(target, None).expect_err("not hex");
        assert!(err.to_string().starts_with("invalid --token"), "{err}");
    }
}
