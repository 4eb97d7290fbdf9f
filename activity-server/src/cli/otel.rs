//! `serve`'s OpenTelemetry export (the `otel` feature): when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, spans go over OTLP/gRPC to that collector, as service
//! `OTEL_SERVICE_NAME` (default `activity-server`), next to the log lines on
//! stderr: the process's `tracing` spans that `RUST_LOG` lets through (the
//! engine's operation spans are `debug`), and the OpenTelemetry spans of the
//! crates (docs/semantics.md §5.1).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    SpanExporter, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
};
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use tracing_subscriber::{registry::LookupSpan, Layer};

/// The installed provider: [`Telemetry::shutdown`] exports what is left.
pub(crate) struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Nothing installed.
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// Exports the spans still buffered and stops the exporter.
    pub(crate) async fn shutdown(self) {
        if let Some(provider) = self.0 {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = flushed {
                eprintln!("warning: the last spans could not be exported: {err}");
            }
        }
    }
}

/// The layer that exports `tracing` spans, and the provider behind it (also
/// installed as the global one); nothing when no endpoint is set.
pub(crate) fn install<S>() -> (Option<impl Layer<S>>, Telemetry)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !set(OTEL_EXPORTER_OTLP_ENDPOINT) && !set(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        return (None, Telemetry(None));
    }
    let exporter = match SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("warning: no OpenTelemetry export: the OTLP exporter cannot be built: {err}");
            return (None, Telemetry(None));
        }
    };
    let mut resource = Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("activity-server");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("activity-server"));
    (Some(layer), Telemetry(Some(provider)))
}
