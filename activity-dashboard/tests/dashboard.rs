//! The dashboard's pages and actions over the real engine (in-process, or over
//! gRPC with `ACTIVITY_TEST_TRANSPORT=remote`), requested as a browser would,
//! without a network: answers, escaping, actions and the token.
//! (`activity-server/tests/browser.rs` drives the same pages in Chromium.)

use std::sync::Arc;

use activity_core::{
    options::ActivityOptions,
    protocol::{
        ActivityTypeInfo, ExecutionRef, ExecutionState, PollActivityTaskRequest,
        ScheduleActivityRequest, WorkerRegistration,
    },
    workflow::{StartWorkflowRequest, WorkflowRef, WorkflowState},
    ActivityProtocol, Payload,
};
use activity_dashboard::Dashboard;
use activity_engine::{Engine, EngineConfig};
use axum::{
    body::Body,
    http::{header, Request, Response, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "s3cret";

struct Env {
    _engine: Engine,
    protocol: Arc<dyn ActivityProtocol>,
}

impl Env {
    async fn new() -> Env {
        let engine = Engine::open(EngineConfig::in_memory())
            .await
            .expect("the engine opens");
        let protocol = activity_test_support::connect(&engine).await;
        Env {
            _engine: engine,
            protocol,
        }
    }

    fn open(&self) -> Router {
        Dashboard::new(self.protocol.clone())
            .router()
            .expect("the router")
    }

    fn locked(&self) -> Router {
        Dashboard::new(self.protocol.clone())
            .with_token(TOKEN)
            .router()
            .expect("the router")
    }

    async fn state(&self, id: &str) -> ExecutionState {
        self.protocol
            .describe_execution(ExecutionRef::standalone(id))
            .await
            .expect("described")
            .state
    }

    async fn schedule(&self, id: &str, activity_type: &str, input: &str) {
        self.protocol
            .schedule_activity(
                ScheduleActivityRequest::new(
                    activity_type,
                    vec![Payload::json(input).unwrap()],
                    ActivityOptions::new()
                        .start_to_close(Duration::from_secs(30))
                        .task_queue("dash-q"),
                )
                .with_activity_id(id),
            )
            .await
            .expect("scheduled");
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response: Response<Body> = router.clone().oneshot(request).await.expect("answered");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    }
}

async fn get(router: &Router, uri: &str) -> Answer {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

async fn post_form(router: &Router, uri: &str, form: &str, cookie: Option<&str>) -> Answer {
    let mut request = post(uri).header(header::HOST, "dash.test");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(router, request.body(Body::from(form.to_owned())).unwrap()).await
}

#[tokio::test]
async fn every_page_shows_what_the_engine_holds() {
    let env = Env::new().await;
    let router = env.open();
    env.schedule("alone-1", "charge", "card 4242").await;
    let run = env
        .protocol
        .start_workflow(StartWorkflowRequest::new(
            "invoice-7",
            "invoice",
            "dash-q",
            vec![Payload::json("march").unwrap()],
        ))
        .await
        .unwrap();
    let task = env
        .protocol
        .poll_activity_task(PollActivityTaskRequest::new("dash-q", "worker-a"))
        .await
        .unwrap()
        .expect("the standalone attempt");
    env.protocol
        .record_heartbeat(
            task.task_token.clone().into(),
            Some(Payload::json(&7).unwrap()),
        )
        .await
        .unwrap();

    let list = get(&router, "/workflows").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("invoice-7"), "{}", list.body);
    assert!(list.body.contains("RUNNING"));
    let filtered = get(&router, "/workflows?state=COMPLETED").await;
    assert!(!filtered.body.contains("invoice-7"));
    assert!(get(&router, "/workflows?id=inv")
        .await
        .body
        .contains("invoice-7"));
    assert!(!get(&router, "/workflows?id=nope")
        .await
        .body
        .contains("invoice-7"));
    let bad = get(&router, "/workflows?state=DONE").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("`DONE` is not a workflow state"),
        "{}",
        bad.body
    );

    let run_id = run.run_id.clone().unwrap();
    let page = get(&router, &format!("/workflow?id=invoice-7&run={run_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("WorkflowStarted"), "{}", page.body);
    assert!(
        page.body.contains("[&quot;march&quot;]"),
        "the input: {}",
        page.body
    );
    assert!(page.body.contains("id=\"cancel-workflow\""));
    let missing = get(&router, "/workflow?id=nobody").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("not found"), "{}", missing.body);

    let activities = get(&router, "/activities?scope=standalone").await;
    assert!(activities.body.contains("alone-1"), "{}", activities.body);
    assert!(activities.body.contains("STARTED"));
    let activity = get(&router, "/activity?id=alone-1").await;
    assert!(activity.body.contains("worker-a"), "{}", activity.body);
    assert!(
        activity.body.contains(">7<"),
        "heartbeat details: {}",
        activity.body
    );

    let queues = get(&router, "/task-queues").await;
    assert!(queues.body.contains("dash-q"), "{}", queues.body);
    assert!(
        queues.body.contains("worker-a"),
        "the poller: {}",
        queues.body
    );

    // A refresh gets the content only; the assets are served from the binary.
    let refresh = send(
        &router,
        Request::get("/workflows")
            .header("x-dashboard-refresh", "1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        refresh.body.starts_with("<h1>Workflows</h1>"),
        "{}",
        refresh.body
    );
    let css = get(&router, "/assets/style.css").await;
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let js = get(&router, "/assets/app.js").await;
    assert!(js.body.contains("x-dashboard-refresh"));
    assert!(list.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(get(&router, "/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_and_payloads_holding_markup_are_shown_as_text() {
    let env = Env::new().await;
    let router = env.open();
    let evil = "<script>alert(1)</script>";
    env.protocol
        .register_worker(
            WorkerRegistration::new("<img src=x onerror=alert(2)>", vec!["dash-q".into()])
                .with_activities(vec![ActivityTypeInfo::new(
                    evil,
                    vec!["<b>arg</b>".into()],
                    serde_json::json!({"description": evil}),
                    serde_json::json!({}),
                )]),
        )
        .await
        .unwrap();
    env.schedule("<i>id</i>", evil, evil).await;
    for uri in [
        "/types",
        "/activities",
        "/activity?id=%3Ci%3Eid%3C%2Fi%3E",
        "/task-queues",
    ] {
        let page = get(&router, uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        for markup in ["<script>alert", "<img src=x", "<b>arg", "<i>id"] {
            assert!(
                !page.body.contains(markup),
                "{uri} holds {markup}: {}",
                page.body
            );
        }
    }
    let types = get(&router, "/types").await.body;
    assert!(
        types.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{types}"
    );
    assert!(types.contains("JSON Schemas"));
}

#[tokio::test]
async fn actions_cancel_or_terminate_the_workflow_and_cancel_the_activity() {
    let env = Env::new().await;
    let router = env.open();
    env.schedule("to-cancel", "charge", "x").await;
    let done = post_form(&router, "/activity/cancel", "id=to-cancel", None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/activity?id=to-cancel");
    assert_eq!(env.state("to-cancel").await, ExecutionState::Canceled);

    env.protocol
        .start_workflow(StartWorkflowRequest::new("wf", "t", "dash-q", vec![]))
        .await
        .unwrap();
    let done = post_form(&router, "/workflow/cancel", "id=wf&run=", None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let d = env
        .protocol
        .describe_workflow(WorkflowRef::latest("wf"))
        .await
        .unwrap();
    assert!(d.cancel_requested);
    assert_eq!(d.state, WorkflowState::Running, "until its code sees it");

    // Terminated with a reason: closed at once, the reason in its history.
    env.protocol
        .start_workflow(StartWorkflowRequest::new("doomed", "t", "dash-q", vec![]))
        .await
        .unwrap();
    let no_reason = post_form(&router, "/workflow/terminate", "id=doomed&reason=+", None).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert!(
        no_reason.body.contains("give a reason"),
        "{}",
        no_reason.body
    );
    let done = post_form(
        &router,
        "/workflow/terminate",
        "id=doomed&run=&reason=stuck+%3Cfor+ever%3E",
        None,
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let d = env
        .protocol
        .describe_workflow(WorkflowRef::latest("doomed"))
        .await
        .unwrap();
    assert_eq!(d.state, WorkflowState::Terminated);
    let page = get(&router, "/workflow?id=doomed").await.body;
    assert!(page.contains("WorkflowTerminated"), "{page}");
    assert!(page.contains("stuck &lt;for ever&gt;"), "{page}");
    assert!(
        !page.contains("id=\"terminate-workflow\""),
        "no action on a closed run"
    );
    let again = post_form(&router, "/workflow/terminate", "id=doomed&reason=x", None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // An action sent from another site's page is refused, and changes nothing.
    env.schedule("kept", "charge", "x").await;
    let request = post("/activity/cancel")
        .header(header::HOST, "dash.test")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from("id=kept"))
        .unwrap();
    assert_eq!(send(&router, request).await.status, StatusCode::FORBIDDEN);
    assert_eq!(env.state("kept").await, ExecutionState::Scheduled);
}

#[tokio::test]
async fn with_a_token_nothing_is_shown_or_done_without_it() {
    let env = Env::new().await;
    let router = env.locked();
    env.schedule("secret-activity", "charge", "x").await;

    let refused = get(&router, "/activities").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Log in"));
    assert!(!refused.body.contains("secret-activity"));
    let cancel = post_form(&router, "/activity/cancel", "id=secret-activity", None).await;
    assert_eq!(cancel.status, StatusCode::UNAUTHORIZED);
    let forged = post_form(
        &router,
        "/activity/cancel",
        "id=secret-activity",
        Some("activity_dashboard_session=00"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let state = env.state("secret-activity").await;
    assert_eq!(state, ExecutionState::Scheduled);

    let wrong = post_form(&router, "/login", "token=guess&next=%2Factivities", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not the server"));
    assert!(!wrong.headers.contains_key(header::SET_COOKIE));

    let login = post_form(&router, "/login", "token=s3cret&next=%2Factivities", None).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/activities");
    let set = login.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "the cookie does not hold the token");
    let cookie = set.split(';').next().unwrap().to_owned();

    let seen = send(
        &router,
        Request::get("/activities")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.body.contains("secret-activity"));
    assert!(seen.body.contains("Log out"));
    let bearer = send(
        &router,
        Request::get("/activities")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK);
    let cancel = post_form(
        &router,
        "/activity/cancel",
        "id=secret-activity",
        Some(&cookie),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::SEE_OTHER);
    let state = env.state("secret-activity").await;
    assert_eq!(state, ExecutionState::Canceled);

    // Log out forgets the cookie; an empty token is refused at set-up.
    let out = post_form(&router, "/logout", "", Some(&cookie)).await;
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let err = Dashboard::new(env.protocol.clone())
        .with_token("")
        .router()
        .unwrap_err();
    assert_eq!(err.to_string(), "the dashboard's token must not be empty");
}
