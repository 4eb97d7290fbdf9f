//! OpenTelemetry traces (docs/semantics.md §5.1): the real engine and worker,
//! an application's OTLP exporter (gRPC) and a small OTLP collector on
//! loopback that keeps what it receives. One workflow with two activities, one
//! of which fails once and is retried, is one trace: the caller's span, the
//! client's start span, the run's workflow tasks under it, each activity's
//! attempts under the task that scheduled it. A standalone activity's attempt
//! is a child of the client's start span, in the caller's trace.
//!
//! Needs the `otel` feature: `cargo test -p activity-worker --features otel --test otel`
//! (also with `ACTIVITY_TEST_TRANSPORT=remote` and `ACTIVITY_TEST_STORE=postgres`).

use std::{collections::HashMap, future::IntoFuture, time::Duration};

use activity_core::{
    activity, otel, workflow, ActivityContext, ActivityError, Client, WorkflowContext,
    WorkflowError,
};
use activity_test_support::{otlp::OtlpCollector, TestEngine};
use activity_worker::Worker;
use opentelemetry::{context::FutureExt, trace::SpanKind, Context};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::{
    common::v1::any_value::Value,
    trace::v1::{status::StatusCode, Span},
};
use opentelemetry_sdk::trace::SdkTracerProvider;

const QUEUE: &str = "traced";

#[activity(start_to_close = "10s")]
async fn reserve(item: String) -> Result<String, ActivityError> {
    Ok(format!("{item} reserved"))
}

#[activity(start_to_close = "10s")]
async fn restock(item: String) -> Result<String, ActivityError> {
    Ok(format!("{item} restocked"))
}

/// Fails its first attempt; retried soon after.
#[activity(
    start_to_close = "10s",
    retry(initial_interval = "100ms", maximum_attempts = 3)
)]
async fn charge(ctx: ActivityContext, cents: u32) -> Result<String, ActivityError> {
    if ctx.info().attempt == 1 {
        return Err(ActivityError::retryable("the card processor is busy"));
    }
    Ok(format!("{cents} charged"))
}

#[workflow]
async fn checkout(ctx: WorkflowContext, item: String) -> Result<Vec<String>, WorkflowError> {
    let reserved = reserve::call(&ctx, item).await?;
    let charged = charge::call(&ctx, 1250).await?;
    Ok(vec![reserved, charged])
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_its_tasks_and_every_attempt_form_one_trace() {
    let collector = OtlpCollector::start().await;
    // What an application does to export (README, "Operating the server").
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(collector.endpoint.clone())
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let engine = TestEngine::open(activity_test_support::engine_config()).await;
    let worker = Worker::builder(engine.protocol())
        .task_queue(QUEUE)
        .identity("traced-worker")
        .poll_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    // The caller's own span: the start call is its child.
    let caller = otel::start("place order", SpanKind::Internal, &Context::new(), vec![]);
    let client = Client::new(engine.protocol()).with_task_queue(QUEUE);
    let handle = checkout::start(&client, "book".into())
        .workflow_id("order-1")
        .into_future()
        .with_context(caller.clone())
        .await
        .unwrap();
    otel::end(&caller, None);
    let result = tokio::time::timeout(Duration::from_secs(60), handle.result())
        .await
        .expect("the run completes")
        .unwrap();
    assert_eq!(result, ["book reserved", "1250 charged"]);

    // A standalone activity: the client's start span, its attempt under it.
    let restocking = otel::start(
        "restock shelves",
        SpanKind::Internal,
        &Context::new(),
        vec![],
    );
    let restocked = client
        .start(restock::call(&client, "pen".into()))
        .with_context(restocking.clone())
        .await
        .unwrap();
    otel::end(&restocking, None);
    assert_eq!(restocked.result().await.unwrap(), "pen restocked");
    stop.shutdown();
    running.await.unwrap();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .expect("the spans are exported");

    let all = collector.spans();
    let trace_of = |name: &str| {
        let found = all.iter().find(|s| s.name == name);
        found
            .map(|s| s.trace_id.clone())
            .unwrap_or_else(|| panic!("{name}: {all:#?}"))
    };
    let (order, restocking) = (trace_of("place order"), trace_of("restock shelves"));
    assert_ne!(order, restocking);
    let in_trace = |trace: &[u8]| -> Vec<Span> {
        all.iter()
            .filter(|s| s.trace_id == trace)
            .cloned()
            .collect()
    };
    let (spans, standalone) = (in_trace(&order), in_trace(&restocking));
    assert_eq!(
        spans.len() + standalone.len(),
        all.len(),
        "two traces: {all:#?}"
    );
    let mut chain: Vec<(String, Option<String>)> = standalone
        .iter()
        .map(|s| {
            let parent = standalone.iter().find(|p| p.span_id == s.parent_span_id);
            (s.name.clone(), parent.map(|p| p.name.clone()))
        })
        .collect();
    chain.sort();
    assert_eq!(
        chain,
        [
            (
                "Activity:restock".to_owned(),
                Some("StartActivity:restock".to_owned())
            ),
            (
                "StartActivity:restock".to_owned(),
                Some("restock shelves".to_owned())
            ),
            ("restock shelves".to_owned(), None),
        ]
    );

    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    let parent = |span: &Span| -> Option<&str> {
        by_id.get(&span.parent_span_id[..]).map(|p| p.name.as_str())
    };
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };

    assert_eq!(named("place order").len(), 1, "{names:?}");

    let start = named("StartWorkflow:checkout");
    assert_eq!(start.len(), 1, "{names:?}");
    assert_eq!(parent(start[0]), Some("place order"));
    assert_eq!(
        attribute(start[0], "workflow.id").as_deref(),
        Some("order-1")
    );

    // Three tasks: scheduling `reserve`, then `charge`, then completing.
    let tasks = named("WorkflowTask:checkout");
    assert_eq!(tasks.len(), 3, "{names:?}");
    for task in &tasks {
        assert_eq!(parent(task), Some("StartWorkflow:checkout"));
        assert_eq!(task.status.as_ref().map_or(0, |s| s.code), 0);
    }

    let attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("Activity:"))
        .collect();
    assert_eq!(
        attempts.len(),
        3,
        "one `reserve` attempt, two of `charge`: {names:?}"
    );
    for attempt in &attempts {
        assert_eq!(parent(attempt), Some("WorkflowTask:checkout"));
    }
    let reserve = named("Activity:reserve");
    let mut charges = named("Activity:charge");
    charges.sort_by_key(|s| attribute(s, "activity.attempt"));
    assert_eq!(reserve.len(), 1);
    assert_eq!(charges.len(), 2);
    // Both attempts of `charge` hang under the task that scheduled it (the
    // context stored with the execution), not under the one `reserve` came from.
    assert_eq!(charges[0].parent_span_id, charges[1].parent_span_id);
    assert_ne!(charges[0].parent_span_id, reserve[0].parent_span_id);
    let expect = [
        (reserve[0], "reserve", "1", "1", "completed"),
        (charges[0], "charge", "2", "1", "failed"),
        (charges[1], "charge", "2", "2", "completed"),
    ];
    for (span, kind, id, attempt, outcome) in expect {
        assert_eq!(attribute(span, "activity.type").as_deref(), Some(kind));
        assert_eq!(attribute(span, "activity.id").as_deref(), Some(id));
        assert_eq!(
            attribute(span, "activity.attempt").as_deref(),
            Some(attempt)
        );
        assert_eq!(
            attribute(span, "activity.outcome").as_deref(),
            Some(outcome)
        );
        assert_eq!(attribute(span, "workflow.id").as_deref(), Some("order-1"));
    }
    let failed = charges[0].status.as_ref().expect("a status");
    assert_eq!(failed.code, StatusCode::Error as i32);
    assert!(failed.message.contains("busy"), "{failed:?}");
}
