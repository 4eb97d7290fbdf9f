//! The web dashboard in a real browser: Debian's headless Chromium, driven
//! through chromedriver (WebDriver), against `activity-server serve` with a
//! token, and a worker in this test running a workflow.
//!
//! As a person would: the dashboard refuses without the token (a wrong one
//! too), logs in with it, finds the workflow by its id, opens it, sees its
//! activities (one completed with its result, one running with its heartbeat
//! details) and its history, cancels it from the page and sees the state
//! change (the page refreshes by itself). Names and payloads holding markup
//! show as text. A screenshot is saved in the test's temp dir and checked not
//! to be blank.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them).

mod process_support;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use activity_core::{
    activity, workflow, ActivityContext, ActivityError, ActivityProtocol, Client, WorkflowContext,
    WorkflowError,
};
use activity_remote::RemoteConfig;
use activity_worker::Worker;
use fantoccini::{wd::Capabilities, Client as Browser, ClientBuilder, Locator};
use process_support::*;
use serde_json::json;

const QUEUE: &str = "browser-q";
const TOKEN: &str = "browser-test-token";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// A workflow id and input holding markup: the page must show them as text.
const WORKFLOW_ID: &str = "order-<b>42</b>";
const ORDER: &str = "<script>window.injected = true</script>";

#[activity(start_to_close = "30s")]
async fn reserve(order: String) -> Result<String, ActivityError> {
    Ok(format!("reserved {} items", order.len()))
}

/// Heartbeats its progress until cancelled, then acknowledges.
#[activity(start_to_close = "1h", heartbeat = "1s")]
async fn ship(ctx: ActivityContext, order: String) -> Result<String, ActivityError> {
    let _ = order;
    let mut packed = 0_u32;
    loop {
        packed += 1;
        ctx.heartbeat(&json!({ "packed": packed }))?;
        tokio::select! {
            reason = ctx.cancelled() => {
                return Err(ActivityError::canceled_with(&reason.to_string())?);
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[workflow]
async fn fulfil(ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
    let reserved = reserve::call(&ctx, order.clone()).await?;
    let shipped = ship::call(&ctx, order).await?;
    Ok(format!("{reserved}, {shipped}"))
}

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn session(&self, profile: &Path) -> Browser {
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--window-size=1360,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        // chromedriver listens a moment after it starts.
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(browser) => return browser,
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no browser session from chromedriver: {last:?}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the first element matching `css`, once `ready` holds for it
/// (the page refreshes every 2 s), failing after [`BOUND`].
async fn text_when(browser: &Browser, css: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let found = tokio::time::timeout(BOUND, async {
        loop {
            if let Ok(element) = browser.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if ready(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("`{css}` never got the expected text; last seen: {last:?}"))
}

async fn main_text(browser: &Browser) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .expect("the page has a main element")
        .text()
        .await
        .expect("its text")
}

/// Whether a PNG has content: more than a handful of colours, and a fair share
/// of its pixels differ from the most common one (the background).
fn assert_not_blank(png_bytes: &[u8]) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    let data = &pixels[..frame.buffer_size()];
    let mut counts = std::collections::HashMap::new();
    for pixel in data.chunks(channels) {
        *counts.entry(pixel.to_vec()).or_insert(0_usize) += 1;
    }
    let total = data.len() / channels;
    let background = counts.values().copied().max().unwrap_or(0);
    assert!(
        (frame.width, frame.height) >= (800, 600),
        "{}x{}",
        frame.width,
        frame.height
    );
    assert!(counts.len() > 50, "only {} colours", counts.len());
    assert!(
        total - background > total / 50,
        "{} of {total} pixels differ from the background",
        total - background
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_finds_opens_and_cancels_a_workflow_behind_the_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("engine.db"), &["--token", TOKEN]);
    let protocol: Arc<dyn ActivityProtocol> = server
        .remote_with(RemoteConfig::new(server.url()).with_bearer_token(TOKEN))
        .await;
    let worker = Worker::builder(protocol.clone())
        .task_queue(QUEUE)
        .identity("browser-worker")
        .poll_wait(Duration::from_secs(2))
        .graceful_shutdown_period(Duration::from_millis(200))
        .build()
        .expect("the worker builds");
    let shutdown = worker.shutdown_handle();
    let worker = tokio::spawn(worker.run_until(std::future::pending()));
    let client = Client::new(protocol.clone()).with_task_queue(QUEUE);
    let handle = bounded(
        "the start",
        fulfil::start(&client, ORDER.into()).workflow_id(WORKFLOW_ID),
    )
    .await
    .expect("the workflow starts");

    let driver = Driver::start();
    let browser = driver.session(&dir.path().join("profile")).await;
    let base = server.url();

    // Without the token: the login form, none of the content.
    browser
        .goto(&format!("{base}/workflows"))
        .await
        .expect("opens");
    let refused = main_text(&browser).await;
    assert!(refused.contains("Log in"), "{refused}");
    assert!(!refused.contains("order-"), "{refused}");
    // A wrong token is refused too, saying so.
    let login = |token: &'static str| {
        let browser = browser.clone();
        async move {
            let field = browser
                .find(Locator::Css("input[name=token]"))
                .await
                .expect("the token field");
            field.send_keys(token).await.expect("types");
            browser
                .find(Locator::Css("section.login button"))
                .await
                .expect("the button")
                .click()
                .await
                .expect("clicks");
        }
    };
    login("not-the-token").await;
    let wrong = text_when(&browser, "main", |t| t.contains("not the server's token")).await;
    assert!(!wrong.contains("order-"), "{wrong}");
    // With the token: back to the list.
    login(TOKEN).await;
    text_when(&browser, "h1", |t| t == "Workflows").await;

    // Find the workflow by its id.
    let search = browser
        .find(Locator::Css("input[name=id]"))
        .await
        .expect("the id filter");
    search.send_keys("order-").await.expect("types");
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .expect("the filter button")
        .click()
        .await
        .expect("clicks");
    let link = text_when(&browser, "#workflows a.id", |t| t == WORKFLOW_ID).await;
    assert_eq!(link, WORKFLOW_ID, "the id shows as text, markup and all");
    browser
        .find(Locator::Css("#workflows a.id"))
        .await
        .expect("the link")
        .click()
        .await
        .expect("clicks");

    // Its page: the first activity completed with its result, the second
    // running with its heartbeat details, the history as a timeline.
    text_when(&browser, "#workflow-state", |t| t == "RUNNING").await;
    let activities = text_when(&browser, "table.activities", |t| {
        t.contains("reserve") && t.contains("ship") && t.contains("packed")
    })
    .await;
    assert!(activities.contains("COMPLETED"), "{activities}");
    assert!(activities.contains("STARTED"), "{activities}");
    let reserved = format!("reserved {} items", ORDER.len());
    assert!(activities.contains(&reserved), "{activities}");
    let history = text_when(&browser, "#history", |t| t.contains("ActivityCompleted")).await;
    for event in [
        "WorkflowStarted",
        "WorkflowTaskCompleted",
        "ActivityScheduled",
    ] {
        assert!(history.contains(event), "{event} in {history}");
    }
    let page = main_text(&browser).await;
    assert!(page.contains(ORDER), "the input shows as text: {page}");
    assert!(
        browser
            .find_all(Locator::Css("main b"))
            .await
            .expect("a query")
            .is_empty(),
        "markup in an id became an element"
    );
    let injected = browser
        .execute("return window.injected === undefined;", vec![])
        .await
        .expect("runs");
    assert_eq!(injected, json!(true), "markup in a payload ran");

    let screenshot = browser.screenshot().await.expect("a screenshot");
    let shot = dir.path().join("workflow.png");
    std::fs::write(&shot, &screenshot).expect("saved");
    assert_not_blank(&screenshot);
    if let Ok(path) = std::env::var("DASHBOARD_SCREENSHOT") {
        std::fs::write(path, &screenshot).expect("the screenshot copy");
    }

    // Cancel it from the page: the state changes without a reload.
    browser
        .find(Locator::Css("#cancel-workflow"))
        .await
        .expect("the cancel button")
        .click()
        .await
        .expect("clicks");
    text_when(&browser, "#workflow-state", |t| t.starts_with("CANCELED")).await;
    let err = bounded("the result", handle.result())
        .await
        .expect_err("the run was canceled");
    assert!(err.to_string().contains("cancel"), "{err}");
    let activities = text_when(&browser, "table.activities", |t| t.contains("CANCELED")).await;
    assert!(activities.contains("COMPLETED"), "{activities}");

    browser.close().await.expect("the session closes");
    shutdown.shutdown();
    bounded("the worker", worker)
        .await
        .expect("the worker task");
}
