//! OpenTelemetry spans and the W3C trace context stored with runs and
//! executions (docs/semantics.md §5.1); with the `otel` feature only.
//!
//! A client's start call opens a span (a child of the caller's current
//! [`Context`]) and stores its `traceparent` with the run or execution; a
//! worker opens the span of each workflow task and activity attempt as a child
//! of what was stored ([`parent`]). Spans go to the global tracer provider,
//! which the application installs (without one, nothing is recorded and
//! nothing is stored).
//!
//! ```
//! use activity_core::otel;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let cx = otel::parent(Some(traceparent));
//! assert!(cx.span().span_context().is_remote());
//! assert_eq!(otel::traceparent(&cx).as_deref(), Some(traceparent));
//! // Anything else is no parent at all (the span starts a new trace).
//! assert!(otel::traceparent(&otel::parent(Some("00-not-a-context"))).is_none());
//! ```

use std::borrow::Cow;

use opentelemetry::{
    global::{self, BoxedTracer},
    trace::{
        SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
        Tracer,
    },
    Context, KeyValue,
};

/// The instrumentation scope of every span the crates open.
pub const SCOPE: &str = "activity";

/// The tracer of the global provider, for [`SCOPE`].
pub fn tracer() -> BoxedTracer {
    global::tracer(SCOPE)
}

/// The W3C `traceparent` of the span in `cx` (version 00); `None` when `cx`
/// holds no valid span (no provider installed, or nothing traced).
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let span = span.span_context();
    span.is_valid().then(|| {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags() & TraceFlags::SAMPLED
        )
    })
}

/// The context whose (remote) span is `traceparent`; an empty context when it
/// is `None` or not a valid version-00 `traceparent`, so that a span started
/// under it begins a trace of its own.
pub fn parent(traceparent: Option<&str>) -> Context {
    traceparent
        .and_then(parse)
        .map_or_else(Context::new, |span| {
            Context::new().with_remote_span_context(span)
        })
}

fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16)
        .ok()
        .filter(|_| flags.len() == 2)?;
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Starts a span named `name` of `kind` under `parent` with `attributes`, and
/// answers the context holding it (current while the traced work runs; end it
/// with [`end`]).
pub fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Context {
    let tracer = tracer();
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Ends the span of `cx`, with an error status carrying `error` when given.
pub fn end(cx: &Context, error: Option<String>) {
    let span = cx.span();
    if let Some(message) = error {
        span.set_status(Status::error(message));
    }
    span.end();
}
