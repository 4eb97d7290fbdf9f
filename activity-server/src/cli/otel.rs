//! `serve`'s OpenTelemetry export (the `otel` feature): when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, spans go over OTLP/gRPC to that collector, as service
//! `OTEL_SERVICE_NAME` (default `activity-server`), next to the log lines on
//! stderr: the process's `tracing` spans that `ACTIVITY_OTEL_FILTER` lets
//! through (`RUST_LOG`'s syntax; by default [`DEFAULT_FILTER`]: the engine's
//! operation spans, which are `debug`, and everything at `info`), and the
//! OpenTelemetry spans of the crates (docs/semantics.md §5.1).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    SpanExporter, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
};
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use tracing_subscriber::{registry::LookupSpan, Layer};

/// Which `tracing` spans are exported when `ACTIVITY_OTEL_FILTER` is unset:
/// one per engine operation, and whatever is logged at `info`.
pub(crate) const DEFAULT_FILTER: &str = "info,activity_engine=debug";

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
    let filter = match std::env::var("ACTIVITY_OTEL_FILTER") {
        Ok(given) => tracing_subscriber::EnvFilter::try_new(&given).unwrap_or_else(|err| {
            eprintln!(
                "warning: ACTIVITY_OTEL_FILTER `{given}` is not a filter ({err}); exporting \
                 `{DEFAULT_FILTER}` (give directives as in RUST_LOG, e.g. `info,activity_engine=debug`)"
            );
            tracing_subscriber::EnvFilter::new(DEFAULT_FILTER)
        }),
        Err(_) => tracing_subscriber::EnvFilter::new(DEFAULT_FILTER),
    };
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("activity-server"))
        .with_filter(filter);
    (Some(layer), Telemetry(Some(provider)))
}
