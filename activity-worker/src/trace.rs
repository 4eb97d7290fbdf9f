//! The OpenTelemetry span of each workflow task and activity attempt
//! (docs/semantics.md §5.1), a child of the trace context the engine stored
//! with the run or execution. With the `otel` feature, spans go to the global
//! tracer provider the application installs; without it, this is nothing.

use std::future::Future;

use activity_core::{workflow::Command, ActivityTask};

#[cfg(feature = "otel")]
mod spans {
    use super::*;
    use activity_core::otel;
    use opentelemetry::{
        context::FutureExt,
        trace::{SpanKind, TraceContextExt},
        Context, KeyValue,
    };

    /// One span, open until [`Span::end`].
    pub(crate) struct Span(Context);

    impl Span {
        /// The span of a workflow task of the run, under the run's context.
        pub(crate) fn workflow_task(
            task: &activity_core::workflow::WorkflowTask,
            queue: &str,
        ) -> Self {
            Self(otel::start(
                format!("WorkflowTask:{}", task.workflow_type),
                SpanKind::Consumer,
                &otel::parent(task.trace_context.as_deref()),
                vec![
                    KeyValue::new("workflow.type", task.workflow_type.clone()),
                    KeyValue::new("workflow.id", task.workflow_id.clone()),
                    KeyValue::new("workflow.run_id", task.run_id.clone()),
                    KeyValue::new("task_queue", queue.to_owned()),
                ],
            ))
        }

        /// The span of an activity attempt, under the execution's context.
        pub(crate) fn attempt(task: &ActivityTask) -> Self {
            let info = &task.info;
            let mut attributes = vec![
                KeyValue::new("activity.type", info.activity_type.clone()),
                KeyValue::new("activity.id", info.activity_id.clone()),
                KeyValue::new("activity.attempt", i64::from(info.attempt)),
                KeyValue::new("task_queue", info.task_queue.clone()),
            ];
            if let Some(id) = &info.workflow_id {
                attributes.push(KeyValue::new("workflow.id", id.clone()));
            }
            Self(otel::start(
                format!("Activity:{}", info.activity_type),
                SpanKind::Consumer,
                &otel::parent(task.trace_context.as_deref()),
                attributes,
            ))
        }

        /// `work`, with this span current while it runs (the spans it opens
        /// are children of this one).
        pub(crate) fn around<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
            work.with_context(self.0.clone())
        }

        /// The commands, each activity scheduled with this span's context.
        pub(crate) fn stamp(&self, mut commands: Vec<Command>) -> Vec<Command> {
            let traceparent = otel::traceparent(&self.0);
            for command in &mut commands {
                if let Command::ScheduleActivity { trace_context, .. } = command {
                    *trace_context = trace_context.take().or_else(|| traceparent.clone());
                }
            }
            commands
        }

        /// Records the attempt's outcome (`completed`, `failed`, …).
        pub(crate) fn outcome(&self, outcome: &'static str) {
            self.0
                .span()
                .set_attribute(KeyValue::new("activity.outcome", outcome));
        }

        /// Ends the span, failed with `error` when given.
        pub(crate) fn end(self, error: Option<String>) {
            otel::end(&self.0, error);
        }
    }
}

#[cfg(not(feature = "otel"))]
mod spans {
    use super::*;

    /// Nothing: the worker is built without the `otel` feature.
    pub(crate) struct Span;

    impl Span {
        pub(crate) fn workflow_task(_: &activity_core::workflow::WorkflowTask, _: &str) -> Self {
            Self
        }

        pub(crate) fn attempt(_: &ActivityTask) -> Self {
            Self
        }

        pub(crate) fn around<F: Future>(&self, work: F) -> F {
            work
        }

        pub(crate) fn stamp(&self, commands: Vec<Command>) -> Vec<Command> {
            commands
        }

        pub(crate) fn outcome(&self, _: &'static str) {}

        pub(crate) fn end(self, _: Option<String>) {}
    }
}

pub(crate) use spans::Span;
