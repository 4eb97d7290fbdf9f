//! The pages and actions. Each page reads what it shows through the protocol
//! (the same calls a worker or the CLI makes) and renders the JSON views of
//! [`crate::json`].

use std::sync::Arc;

use activity_core::{
    protocol::{
        ExecutionDescription, ExecutionRef, ExecutionScope, ExecutionState, ListExecutionsRequest,
    },
    workflow::history::{
        EventKind, HistoryEvent, ListWorkflowsRequest, WorkflowDescription, WorkflowRef,
        WorkflowState,
    },
    ProtocolError,
};
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    auth::Viewer,
    json,
    render::{self, href, page},
    App,
};

/// Rows per page of a list.
const PAGE: u32 = 50;
/// The most history events a run's page shows.
const MAX_EVENTS: usize = 2000;
/// The most activities a run's page shows.
const MAX_RUN_ACTIVITIES: u32 = 500;

type AppState = State<Arc<App>>;

/// A refused or failed call, as a page with the matching status.
struct Failure {
    status: StatusCode,
    message: String,
}

impl From<ProtocolError> for Failure {
    fn from(err: ProtocolError) -> Self {
        let status = match &err {
            ProtocolError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProtocolError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProtocolError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ProtocolError::AlreadyClosed { .. } | ProtocolError::AlreadyExists { .. } => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Failure {
            status,
            message: err.to_string(),
        }
    }
}

fn bad_request(message: String) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}

fn failure_page(viewer: &Viewer, failure: Failure) -> Response {
    let body = html! {
        section.problem {
            h1 { (failure.status.canonical_reason().unwrap_or("Error")) }
            p.error role="alert" { (failure.message) }
            p { a href="/workflows" { "Back to the workflows" } }
        }
    };
    (failure.status, page("Error", body, viewer)).into_response()
}

fn respond(viewer: &Viewer, title: &str, result: Result<Markup, Failure>) -> Response {
    match result {
        Ok(body) => page(title, body, viewer).into_response(),
        Err(failure) => failure_page(viewer, failure),
    }
}

/// A query field left empty in a form counts as absent.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/workflows")
}

pub(crate) async fn not_found(viewer: Viewer) -> Response {
    failure_page(
        &viewer,
        Failure {
            status: StatusCode::NOT_FOUND,
            message: "There is no such page.".into(),
        },
    )
}

// ------------------------------------------------------------------ workflows

#[derive(Deserialize)]
pub(crate) struct WorkflowFilter {
    state: Option<String>,
    #[serde(rename = "type")]
    workflow_type: Option<String>,
    id: Option<String>,
    page: Option<u32>,
}

pub(crate) async fn workflows(
    State(app): AppState,
    viewer: Viewer,
    Query(filter): Query<WorkflowFilter>,
) -> Response {
    respond(&viewer, "Workflows", workflows_body(&app, &filter).await)
}

async fn workflows_body(app: &App, filter: &WorkflowFilter) -> Result<Markup, Failure> {
    let page_number = filter.page.unwrap_or(0);
    let mut request = ListWorkflowsRequest::new()
        .with_limit(PAGE + 1)
        .with_offset(page_number.saturating_mul(PAGE));
    if let Some(state) = given(&filter.state) {
        let state = WorkflowState::parse(state).ok_or_else(|| {
            bad_request(format!(
                "`{state}` is not a workflow state (one of {})",
                names(WorkflowState::ALL.iter().map(|s| s.as_str()))
            ))
        })?;
        request = request.with_state(state);
    }
    if let Some(workflow_type) = given(&filter.workflow_type) {
        request = request.with_workflow_type(workflow_type);
    }
    if let Some(id) = given(&filter.id) {
        request = request.with_workflow_id_prefix(id);
    }
    let mut runs = app.protocol.list_workflows(request).await?;
    let more = runs.len() > PAGE as usize;
    runs.truncate(PAGE as usize);
    let state = given(&filter.state).unwrap_or("");
    let link = |page: u32| {
        href(
            "/workflows",
            &[
                ("state", state),
                ("type", given(&filter.workflow_type).unwrap_or("")),
                ("id", given(&filter.id).unwrap_or("")),
                ("page", &page.to_string()),
            ],
        )
    };
    Ok(html! {
        h1 { "Workflows" }
        form.filters method="get" action="/workflows" {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in WorkflowState::ALL {
                        option value=(s.as_str()) selected[state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Type " input type="text" name="type" value=(given(&filter.workflow_type).unwrap_or("")); }
            label { "Id starts with " input type="search" name="id" value=(given(&filter.id).unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() {
            p.empty { "No workflow runs match." }
        } @else {
            table.list id="workflows" {
                thead { tr { th { "Workflow id" } th { "Type" } th { "State" } th { "Task queue" } th { "Started" } th { "Closed" } th { "Run id" } } }
                tbody {
                    @for run in &runs {
                        @let view = json::workflow_summary(run);
                        tr {
                            td { a.id href=(href("/workflow", &[("id", &run.workflow_id), ("run", &run.run_id)])) { (run.workflow_id) } }
                            td { (run.workflow_type) }
                            td { (render::state(run.state.as_str())) }
                            td { (run.task_queue) }
                            td.time { (render::value(&view["start_time"])) }
                            td.time { (render::value(&view["close_time"])) }
                            td.run { code { (run.run_id) } }
                        }
                    }
                }
            }
        }
        (pager(page_number, more, link))
    })
}

fn pager(page: u32, more: bool, link: impl Fn(u32) -> String) -> Markup {
    html! {
        nav.pager {
            @if page > 0 { a rel="prev" href=(link(page - 1)) { "← Newer" } }
            span { "Page " (page + 1) }
            @if more { a rel="next" href=(link(page + 1)) { "Older →" } }
        }
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[derive(Deserialize)]
pub(crate) struct RunQuery {
    id: String,
    run: Option<String>,
}

impl RunQuery {
    fn workflow_ref(&self) -> WorkflowRef {
        match given(&self.run) {
            Some(run) => WorkflowRef::run(&self.id, run),
            None => WorkflowRef::latest(&self.id),
        }
    }
}

pub(crate) async fn workflow(
    State(app): AppState,
    viewer: Viewer,
    Query(query): Query<RunQuery>,
) -> Response {
    respond(
        &viewer,
        &format!("Workflow {}", query.id),
        workflow_body(&app, &query).await,
    )
}

async fn workflow_body(app: &App, query: &RunQuery) -> Result<Markup, Failure> {
    let described = app.protocol.describe_workflow(query.workflow_ref()).await?;
    // The run, by its id from now on (the latest may change while reading).
    let run = WorkflowRef::run(&described.workflow_id, &described.run_id);
    let history = app.protocol.workflow_history(run.clone()).await?;
    let activities = app
        .protocol
        .list_activity_executions(
            ListExecutionsRequest::new()
                .with_scope(ExecutionScope::WorkflowRun(described.run_id.clone()))
                .with_limit(MAX_RUN_ACTIVITIES),
        )
        .await?;
    Ok(workflow_markup(&described, &history, &activities))
}

fn workflow_markup(
    d: &WorkflowDescription,
    history: &[HistoryEvent],
    activities: &[ExecutionDescription],
) -> Markup {
    let view = json::workflow_description(d);
    let input = history.iter().find_map(|e| match &e.kind {
        EventKind::WorkflowStarted { input, .. } => {
            Some(Value::Array(input.iter().map(json::payload).collect()))
        }
        _ => None,
    });
    let outcome = &view["outcome"];
    let open: Vec<_> = activities.iter().filter(|a| !a.state.is_final()).collect();
    html! {
        h1 { "Workflow " span.id { (d.workflow_id) } }
        div.summary {
            dl.fields {
                dt { "State" } dd id="workflow-state" { (render::state(d.state.as_str())) @if d.cancel_requested && !d.state.is_final() { " " span.note { "cancel requested" } } }
                dt { "Type" } dd { (d.workflow_type) }
                dt { "Task queue" } dd { (d.task_queue) }
                dt { "Run id" } dd { code { (d.run_id) } }
                dt { "Started" } dd { (render::value(&view["start_time"])) }
                dt { "Closed" } dd { (render::value(&view["close_time"])) }
                dt { "History" } dd { (d.history_length) " events" }
            }
            div.actions {
                @if !d.state.is_final() {
                    form method="post" action="/workflow/cancel" {
                        input type="hidden" name="id" value=(d.workflow_id);
                        input type="hidden" name="run" value=(d.run_id);
                        button.danger type="submit" id="cancel-workflow" disabled[d.cancel_requested] {
                            @if d.cancel_requested { "Cancel requested" } @else { "Cancel workflow" }
                        }
                    }
                    form.terminate method="post" action="/workflow/terminate" {
                        input type="hidden" name="id" value=(d.workflow_id);
                        input type="hidden" name="run" value=(d.run_id);
                        input type="text" name="reason" placeholder="reason" required aria-label="Reason to terminate";
                        button.danger type="submit" id="terminate-workflow" { "Terminate" }
                    }
                }
            }
        }
        div.io {
            section { h2 { "Input" } (render::value(input.as_ref().unwrap_or(&Value::Null))) }
            section { h2 { "Outcome" } (render::fields(outcome)) }
        }
        h2 { "Activities" }
        @if open.is_empty() && activities.is_empty() {
            p.empty { "No activities scheduled yet." }
        } @else {
            p.count { (open.len()) " pending, " (activities.len() - open.len()) " closed" }
            (activity_table(activities, false))
        }
        h2 { "History" }
        ol.timeline id="history" {
            @for e in history.iter().take(MAX_EVENTS) {
                @let event = json::event(e);
                li class={ "event " (event_class(e.kind.name())) } {
                    span.eid { (e.event_id) }
                    span.time { (render::value(&event["time"])) }
                    span.name { (e.kind.name()) }
                    span.details { (render::event_details(&event)) }
                }
            }
        }
        @if history.len() > MAX_EVENTS {
            p.note { "Showing the first " (MAX_EVENTS) " of " (history.len()) " events." }
        }
    }
}

/// The timeline's color of an event, by what it is about.
fn event_class(name: &str) -> &'static str {
    if name.starts_with("WorkflowTask") {
        "ev-task"
    } else if name.starts_with("Activity") || name.starts_with("LocalActivity") {
        if name.ends_with("Failed") {
            "ev-failed"
        } else {
            "ev-activity"
        }
    } else if name.starts_with("Timer") {
        "ev-timer"
    } else if name.ends_with("Failed") {
        "ev-failed"
    } else {
        "ev-workflow"
    }
}

fn activity_table(activities: &[ExecutionDescription], show_workflow: bool) -> Markup {
    html! {
        table.list.activities {
            thead { tr {
                th { "Activity id" } th { "Type" } th { "State" } th { "Attempt" }
                @if show_workflow { th { "Workflow" } th { "Task queue" } th { "Scheduled" } }
                @else { th { "Last failure" } th { "Last heartbeat" } th { "Result" } th {} }
            } }
            tbody {
                @for a in activities {
                    @let view = json::execution_description(a);
                    tr {
                        td { a.id href=(activity_href(&a.execution)) { (a.execution.activity_id) } }
                        td { (a.activity_type) }
                        td { (render::state(a.state.as_str())) @if a.cancel_requested && !a.state.is_final() { " " span.note { "cancel requested" } } }
                        td.num { (a.attempt) }
                        @if show_workflow {
                            td { @match &a.execution.workflow_id {
                                Some(id) => a href=(href("/workflow", &[("id", id), ("run", a.execution.workflow_run_id.as_deref().unwrap_or(""))])) { (id) },
                                None => span.none { "standalone" },
                            } }
                            td { (a.options.task_queue) }
                            td.time { (render::value(&view["scheduled_time"])) }
                        } @else {
                            td { (failure_line(&view["last_failure"])) }
                            td { (heartbeat(&view)) }
                            td { (render::short(&view["outcome"]["result"], 60)) }
                            td { @if !a.state.is_final() { (cancel_activity_form(&a.execution, a.cancel_requested)) } }
                        }
                    }
                }
            }
        }
    }
}

fn heartbeat(view: &Value) -> Markup {
    html! {
        @if view["last_heartbeat_time"].is_null() {
            span.none { "—" }
        } @else {
            span.time { (render::value(&view["last_heartbeat_time"])) }
            " " (render::short(&view["heartbeat_details"], 60))
        }
    }
}

/// A failure in one line: its kind and type, and its message.
fn failure_line(failure: &Value) -> Markup {
    if failure.is_null() {
        return html! { span.none { "—" } };
    }
    let kind = failure["kind"].as_str().unwrap_or("failure");
    let what = failure["type"]
        .as_str()
        .or_else(|| failure["timeout"].as_str())
        .unwrap_or("");
    html! {
        span.failure title=(failure.to_string()) {
            (kind) @if !what.is_empty() { " " code { (what) } }
            @if let Some(message) = failure["message"].as_str() { ": " (message) }
        }
    }
}

fn activity_href(execution: &ExecutionRef) -> String {
    href(
        "/activity",
        &[
            ("id", &execution.activity_id),
            ("workflow", execution.workflow_id.as_deref().unwrap_or("")),
            ("run", execution.workflow_run_id.as_deref().unwrap_or("")),
        ],
    )
}

fn cancel_activity_form(execution: &ExecutionRef, requested: bool) -> Markup {
    html! {
        form.inline method="post" action="/activity/cancel" {
            input type="hidden" name="id" value=(execution.activity_id);
            input type="hidden" name="workflow" value=(execution.workflow_id.as_deref().unwrap_or(""));
            input type="hidden" name="run" value=(execution.workflow_run_id.as_deref().unwrap_or(""));
            button.danger type="submit" disabled[requested] {
                @if requested { "Cancel requested" } @else { "Cancel" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CancelRun {
    id: String,
    run: Option<String>,
}

pub(crate) async fn cancel_workflow(
    State(app): AppState,
    viewer: Viewer,
    Form(form): Form<CancelRun>,
) -> Response {
    let query = RunQuery {
        id: form.id,
        run: form.run,
    };
    match app
        .protocol
        .request_cancel_workflow(query.workflow_ref())
        .await
    {
        Ok(state) => {
            tracing::info!(workflow_id = %query.id, state = %state, "cancel requested from the dashboard");
            let back = href(
                "/workflow",
                &[("id", &query.id), ("run", given(&query.run).unwrap_or(""))],
            );
            Redirect::to(&back).into_response()
        }
        Err(err) => failure_page(&viewer, err.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct TerminateRun {
    id: String,
    run: Option<String>,
    reason: String,
}

/// Terminates a run at once (no workflow code runs), recording the reason
/// and who did it (the dashboard).
pub(crate) async fn terminate_workflow(
    State(app): AppState,
    viewer: Viewer,
    Form(form): Form<TerminateRun>,
) -> Response {
    let reason = form.reason.trim();
    if reason.is_empty() {
        return failure_page(
            &viewer,
            bad_request("give a reason to terminate the workflow".into()),
        );
    }
    let query = RunQuery {
        id: form.id,
        run: form.run,
    };
    let terminated = app
        .protocol
        .terminate_workflow(query.workflow_ref(), reason.to_owned(), "dashboard".into())
        .await;
    match terminated {
        Ok(state) => {
            tracing::info!(workflow_id = %query.id, state = %state, %reason, "terminated from the dashboard");
            let back = href(
                "/workflow",
                &[("id", &query.id), ("run", given(&query.run).unwrap_or(""))],
            );
            Redirect::to(&back).into_response()
        }
        Err(err) => failure_page(&viewer, err.into()),
    }
}

// ------------------------------------------------------------------ activities

#[derive(Deserialize)]
pub(crate) struct ActivityFilter {
    scope: Option<String>,
    state: Option<String>,
    #[serde(rename = "type")]
    activity_type: Option<String>,
    queue: Option<String>,
    page: Option<u32>,
}

pub(crate) async fn activities(
    State(app): AppState,
    viewer: Viewer,
    Query(filter): Query<ActivityFilter>,
) -> Response {
    respond(&viewer, "Activities", activities_body(&app, &filter).await)
}

async fn activities_body(app: &App, filter: &ActivityFilter) -> Result<Markup, Failure> {
    let page_number = filter.page.unwrap_or(0);
    let mut request = ListExecutionsRequest::new()
        .with_limit(PAGE + 1)
        .with_offset(page_number.saturating_mul(PAGE));
    let scope = given(&filter.scope).unwrap_or("");
    match scope {
        "" => {}
        "standalone" => request = request.with_scope(ExecutionScope::Standalone),
        other => {
            return Err(bad_request(format!(
                "`{other}` is not a scope (leave it empty for all, or `standalone`)"
            )))
        }
    }
    let state = given(&filter.state).unwrap_or("");
    if !state.is_empty() {
        let parsed = ExecutionState::parse(state).ok_or_else(|| {
            bad_request(format!(
                "`{state}` is not an activity state (one of {})",
                names(ExecutionState::ALL.iter().map(|s| s.as_str()))
            ))
        })?;
        request = request.with_state(parsed);
    }
    if let Some(activity_type) = given(&filter.activity_type) {
        request = request.with_activity_type(activity_type);
    }
    if let Some(queue) = given(&filter.queue) {
        request = request.with_task_queue(queue);
    }
    let mut executions = app.protocol.list_activity_executions(request).await?;
    let more = executions.len() > PAGE as usize;
    executions.truncate(PAGE as usize);
    let activity_type = given(&filter.activity_type).unwrap_or("");
    let queue = given(&filter.queue).unwrap_or("");
    let link = |page: u32| {
        href(
            "/activities",
            &[
                ("scope", scope),
                ("state", state),
                ("type", activity_type),
                ("queue", queue),
                ("page", &page.to_string()),
            ],
        )
    };
    Ok(html! {
        h1 { "Activities" }
        form.filters method="get" action="/activities" {
            label { "Scheduled by "
                select name="scope" {
                    option value="" { "anyone" }
                    option value="standalone" selected[scope == "standalone"] { "a client (standalone)" }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in ExecutionState::ALL {
                        option value=(s.as_str()) selected[state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Type " input type="text" name="type" value=(activity_type); }
            label { "Task queue " input type="text" name="queue" value=(queue); }
            button type="submit" { "Filter" }
        }
        @if executions.is_empty() {
            p.empty { "No activity executions match." }
        } @else {
            (activity_table(&executions, true))
        }
        (pager(page_number, more, link))
    })
}

#[derive(Deserialize)]
pub(crate) struct ExecutionQuery {
    id: String,
    workflow: Option<String>,
    run: Option<String>,
}

impl ExecutionQuery {
    fn execution(&self) -> ExecutionRef {
        let mut execution = ExecutionRef::standalone(&self.id);
        execution.workflow_id = given(&self.workflow).map(str::to_owned);
        execution.workflow_run_id = given(&self.run).map(str::to_owned);
        execution
    }
}

pub(crate) async fn activity(
    State(app): AppState,
    viewer: Viewer,
    Query(query): Query<ExecutionQuery>,
) -> Response {
    let result = app
        .protocol
        .describe_execution(query.execution())
        .await
        .map(|d| activity_markup(&d))
        .map_err(Failure::from);
    respond(&viewer, &format!("Activity {}", query.id), result)
}

fn activity_markup(d: &ExecutionDescription) -> Markup {
    let view = json::execution_description(d);
    html! {
        h1 { "Activity " span.id { (d.execution.activity_id) } }
        div.summary {
            dl.fields {
                dt { "State" } dd id="activity-state" { (render::state(d.state.as_str())) @if d.cancel_requested && !d.state.is_final() { " " span.note { "cancel requested" } } }
                dt { "Type" } dd { (d.activity_type) }
                dt { "Workflow" } dd { @match &d.execution.workflow_id {
                    Some(id) => a href=(href("/workflow", &[("id", id), ("run", d.execution.workflow_run_id.as_deref().unwrap_or(""))])) { (id) },
                    None => span.none { "standalone" },
                } }
                dt { "Attempt" } dd { (d.attempt) }
                dt { "Worker" } dd { (render::value(&view["worker_identity"])) }
                dt { "Scheduled" } dd { (render::value(&view["scheduled_time"])) }
                dt { "Started" } dd { (render::value(&view["started_time"])) }
                dt { "Last heartbeat" } dd { (render::value(&view["last_heartbeat_time"])) }
                dt { "Closed" } dd { (render::value(&view["close_time"])) }
                dt { "Retry state" } dd { (render::value(&view["retry_state"])) }
            }
            div.actions {
                @if !d.state.is_final() { (cancel_activity_form(&d.execution, d.cancel_requested)) }
            }
        }
        div.io {
            section { h2 { "Heartbeat details" } (render::value(&view["heartbeat_details"])) }
            section { h2 { "Last failure" } (render::fields(&view["last_failure"])) }
            section { h2 { "Outcome" } (render::fields(&view["outcome"])) }
        }
        h2 { "Options" }
        (render::fields(&view["options"]))
    }
}

pub(crate) async fn cancel_activity(
    State(app): AppState,
    viewer: Viewer,
    Form(query): Form<ExecutionQuery>,
) -> Response {
    let execution = query.execution();
    match app.protocol.request_cancel(execution.clone()).await {
        Ok(state) => {
            tracing::info!(%execution, state = %state, "cancel requested from the dashboard");
            // Back to the workflow that scheduled it, or to the activity.
            let back = match &execution.workflow_id {
                Some(id) => href(
                    "/workflow",
                    &[("id", id), ("run", given(&query.run).unwrap_or(""))],
                ),
                None => activity_href(&execution),
            };
            Redirect::to(&back).into_response()
        }
        Err(err) => failure_page(&viewer, err.into()),
    }
}

// ------------------------------------------------------------------ queues and types

pub(crate) async fn task_queues(State(app): AppState, viewer: Viewer) -> Response {
    let result = app
        .protocol
        .list_task_queues()
        .await
        .map_err(Failure::from)
        .map(|queues| {
            html! {
                h1 { "Task queues" }
                @if queues.is_empty() {
                    p.empty { "No task queue yet: one exists once something is scheduled on it or polled from it." }
                } @else {
                    table.list id="task-queues" {
                        thead { tr { th { "Task queue" } th { "Backlog" } th { "Dispatchable" } th { "Rate limit" } th { "Pollers (last seen)" } } }
                        tbody {
                            @for q in &queues {
                                @let view = json::task_queue(q);
                                tr {
                                    td { a href=(href("/activities", &[("queue", &q.name)])) { (q.name) } }
                                    td.num { (q.backlog) }
                                    td.num { (q.dispatchable) }
                                    td { @match q.rate_limit { Some(rate) => { (rate) " / s" }, None => span.none { "none" } } }
                                    td {
                                        @if q.pollers.is_empty() { span.none { "none recently" } }
                                        ul.pollers {
                                            @for p in view["pollers"].as_array().into_iter().flatten() {
                                                li { (render::value(&p["identity"])) " " span.time { (render::value(&p["last_poll_time"])) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    respond(&viewer, "Task queues", result)
}

pub(crate) async fn types(State(app): AppState, viewer: Viewer) -> Response {
    let result = app
        .protocol
        .list_types()
        .await
        .map_err(Failure::from)
        .map(|types| {
            html! {
                h1 { "Registered types" }
                @if types.is_empty() {
                    p.empty { "No worker has registered a type yet." }
                } @else {
                    table.list id="types" {
                        thead { tr { th { "Kind" } th { "Name" } th { "Task queue" } th { "Arguments" } th { "Last registered" } th { "Schemas" } } }
                        tbody {
                            @for t in &types {
                                @let view = json::registered_type(t);
                                tr {
                                    td { (t.kind.as_str()) }
                                    td.id { (t.name) }
                                    td { (t.task_queue) }
                                    td { (t.arguments.join(", ")) }
                                    td { span.time { (render::value(&view["last_registered_time"])) } " by " (t.last_identity) }
                                    td {
                                        @if t.input_schema.is_some() || t.output_schema.is_some() {
                                            details {
                                                summary { "JSON Schemas" }
                                                h3 { "Input" } (render::value(&view["input_schema"]))
                                                h3 { "Output" } (render::value(&view["output_schema"]))
                                            }
                                        } @else { span.none { "—" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    respond(&viewer, "Types", result)
}
