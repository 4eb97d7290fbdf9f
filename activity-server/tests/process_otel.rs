//! `activity-server serve` built with the `otel` feature exports its spans
//! over OTLP/gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`, as service
//! `OTEL_SERVICE_NAME`, and flushes them when it shuts down: a small OTLP
//! collector on loopback receives the engine's span of a call made to it.
//!
//! `cargo test -p activity-server --features otel --test process_otel`.

mod process_support;

use activity_core::workflow::StartWorkflowRequest;
use activity_test_support::otlp::OtlpCollector;
use opentelemetry_proto::tonic::{common::v1::any_value::Value, trace::v1::ResourceSpans};
use process_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_its_spans_to_the_otlp_endpoint_and_flushes_them_at_shutdown() {
    let collector = OtlpCollector::start().await;
    // The server inherits them (this binary has this one test).
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint);
    std::env::set_var("OTEL_SERVICE_NAME", "activity-test");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(&dir.path().join("otel.db"), &[]);
    let protocol = server.remote().await;
    protocol
        .start_workflow(StartWorkflowRequest::new(
            "order-1",
            "ship",
            "orders",
            vec![],
        ))
        .await
        .unwrap();
    drop(protocol);
    assert!(server.terminate().success(), "{}", server.log());

    let exported = collector.resource_spans();
    let service = |r: &ResourceSpans| {
        let resource = r.resource.as_ref()?;
        let name = resource
            .attributes
            .iter()
            .find(|a| a.key == "service.name")?;
        match name.value.as_ref()?.value.as_ref()? {
            Value::StringValue(name) => Some(name.clone()),
            _ => None,
        }
    };
    let names: Vec<(Option<String>, String)> = exported
        .iter()
        .flat_map(|r| {
            r.scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .map(move |span| (service(r), span.name.clone()))
        })
        .collect();
    assert!(
        names.contains(&(Some("activity-test".into()), "start_workflow".into())),
        "the engine's span of the call, from service `activity-test`: {names:?}\n{}",
        server.log()
    );
}
