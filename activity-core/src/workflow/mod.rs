//! Workflows (docs/semantics.md §3): deterministic async code that calls activities through
//! their typed stubs, runs local activities and timers, and is replayed from its
//! history after a crash.
//!
//! `#[workflow]` on an `async fn(ctx: WorkflowContext, args…) -> Result<T, E>`
//! generates a marker type implementing [`WorkflowDefinition`], registers the
//! workflow through `inventory`, and offers a typed start stub:
//! `checkout::start(&client, order)`.
//!
//! Workflow code must be deterministic: it takes time, randomness and ids from
//! its [`WorkflowContext`], waits only on what the context gives (activities,
//! local activities, timers) and combines futures with deterministic combinators
//! ([`join_all`], [`select`], [`select_all`]; `tokio::select!` only with `biased;`).
//! Code that waits on anything else (a real sleep, I/O, a tokio channel or
//! task) would never be woken by the worker: the worker detects it and fails
//! the workflow task with a determinism error naming the workflow (docs/semantics.md
//! §3.1), as it fails a task whose code panics; the run itself is not failed
//! and resumes once fixed code is deployed.
//!
//! The code of a run is replayed after a worker restart or a cache eviction:
//! [`WorkflowContext::logger`] logs a line once, not again on each replay, and
//! [`WorkflowContext::is_replaying`] tells other once-only side effects apart.

mod client;
mod context;
pub mod history;
mod registry;

use std::{fmt, future::IntoFuture};

use serde::{Deserialize, Serialize};

pub use client::{
    IsWorkflowStarter, WorkflowCallError, WorkflowHandle, WorkflowStart, WorkflowStarter,
    DEFAULT_QUERY_WAIT,
};
pub use context::{
    Cancelled, ChildResult, ChildStart, ChildWorkflow, ChildWorkflowHandle, ChildWorkflowOptions,
    ContinueAsNew, LocalActivities, LocalActivity, LocalActivityRequest, NextSignal, Query,
    RunDriver, Signal, SignalReceiver, SignalSent, Timer, WorkflowActivity, WorkflowContext,
    WorkflowInfo, WorkflowLogger,
};
pub use futures_util::future::Either;
pub use history::{
    ChildWorkflowCause, ChildWorkflowFailure, Command, EventKind, HistoryEvent,
    ListWorkflowsRequest, LocalActivityOutcome, ParentClosePolicy, ParentRun,
    PollWorkflowTaskRequest, QueryAnswer, QueryTask, StartWorkflowRequest, WorkflowDescription,
    WorkflowFailure, WorkflowIdReusePolicy, WorkflowOutcome, WorkflowRef, WorkflowState,
    WorkflowSummary, WorkflowTask, WorkflowTimeout, WorkflowTimeouts, DEFAULT_LIST_WORKFLOWS_LIMIT,
    MAX_HISTORY_PAGE_EVENTS, MAX_LIST_WORKFLOWS_LIMIT,
};
pub use registry::{registered_workflows, WorkflowRegistration};

use crate::{
    failure::{error_types, ActivityCallError, ActivityFailure, ApplicationFailure, Failure},
    options::OptionsError,
    payload::{ActivityArgument, ActivityInput, PayloadError},
};

/// The typed definition of a workflow. `#[workflow]` implements it on a marker
/// type named after the function.
pub trait WorkflowDefinition: Send + Sync + 'static {
    /// The workflow type name.
    const NAME: &'static str;
    /// Parameter names of the serialized arguments.
    const ARGUMENTS: &'static [&'static str];
    /// The arguments as a tuple.
    type Input: ActivityInput;
    /// The result.
    type Output: ActivityArgument;
}

/// A workflow this process can run.
pub trait WorkflowImplementation: WorkflowDefinition {
    /// Starts the workflow function on decoded arguments.
    fn run(
        ctx: WorkflowContext,
        input: Self::Input,
    ) -> crate::definition::BoxFuture<'static, Result<Self::Output, WorkflowError>>;
}

/// The error a workflow function returns. `?` on an activity call converts into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// An activity failed (docs/semantics.md §4).
    #[error(transparent)]
    Activity(ActivityFailure),
    /// The workflow's own failure.
    #[error("{0}")]
    Application(ApplicationFailure),
    /// The workflow acknowledges its cancellation.
    #[error("workflow canceled")]
    Canceled,
    /// A child workflow did not produce its result (docs/semantics.md §3.1).
    #[error(transparent)]
    Child(ChildWorkflowFailure),
}

impl WorkflowError {
    /// A workflow failure of the given type.
    pub fn application(error_type: impl Into<String>, message: impl fmt::Display) -> Self {
        WorkflowError::Application(ApplicationFailure::new(error_type, message.to_string()))
    }

    /// Whether this error means "canceled": the workflow's own acknowledgement, or
    /// an activity that ended canceled.
    pub fn is_canceled(&self) -> bool {
        match self {
            WorkflowError::Canceled => true,
            WorkflowError::Activity(failure) => matches!(failure.cause, Failure::Canceled(_)),
            WorkflowError::Child(child) => matches!(child.cause, ChildWorkflowCause::Canceled),
            WorkflowError::Application(_) => false,
        }
    }

    /// The failure recorded when the run fails with this error.
    pub fn into_failure(self) -> WorkflowFailure {
        match self {
            WorkflowError::Activity(failure) => WorkflowFailure::Activity(failure),
            WorkflowError::Application(failure) => WorkflowFailure::Application(failure),
            WorkflowError::Child(failure) => WorkflowFailure::Child(failure),
            WorkflowError::Canceled => WorkflowFailure::Application(ApplicationFailure::new(
                "Canceled",
                "workflow canceled",
            )),
        }
    }
}

impl From<ActivityCallError> for WorkflowError {
    fn from(err: ActivityCallError) -> Self {
        match err {
            ActivityCallError::Failed(failure) => WorkflowError::Activity(failure),
            ActivityCallError::InvalidOptions(options) => options.into(),
            ActivityCallError::Payload(payload) => payload.into(),
            other => WorkflowError::application("ActivityCallError", other),
        }
    }
}

impl From<OptionsError> for WorkflowError {
    fn from(err: OptionsError) -> Self {
        WorkflowError::Application(
            ApplicationFailure::new("InvalidOptions", err.to_string()).with_non_retryable(true),
        )
    }
}

impl From<PayloadError> for WorkflowError {
    fn from(err: PayloadError) -> Self {
        WorkflowError::Application(
            ApplicationFailure::new(error_types::PAYLOAD_DECODE, err.to_string())
                .with_non_retryable(true),
        )
    }
}

impl From<ApplicationFailure> for WorkflowError {
    fn from(failure: ApplicationFailure) -> Self {
        WorkflowError::Application(failure)
    }
}

/// Awaits every future (or activity stub) and answers their outputs in order.
/// Deterministic: futures are polled in order.
pub fn join_all<I>(futures: I) -> futures_util::future::JoinAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    futures_util::future::join_all(futures.into_iter().map(IntoFuture::into_future))
}

/// Awaits both futures (or activity stubs).
pub fn join<A: IntoFuture, B: IntoFuture>(
    a: A,
    b: B,
) -> futures_util::future::Join<A::IntoFuture, B::IntoFuture> {
    futures_util::future::join(a.into_future(), b.into_future())
}

/// Awaits the first of two futures (or activity stubs); the other is handed back
/// unfinished. Deterministic: when both are ready, `a` wins, on replay too.
pub fn select<A, B>(a: A, b: B) -> futures_util::future::Select<A::IntoFuture, B::IntoFuture>
where
    A: IntoFuture,
    B: IntoFuture,
    A::IntoFuture: Unpin,
    B::IntoFuture: Unpin,
{
    futures_util::future::select(a.into_future(), b.into_future())
}

/// Awaits the first of several futures (or activity stubs); answers its output,
/// its index and the others. Deterministic: the lowest index wins a tie.
pub fn select_all<I>(
    futures: I,
) -> futures_util::future::SelectAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
    <I::Item as IntoFuture>::IntoFuture: Unpin,
{
    futures_util::future::select_all(futures.into_iter().map(IntoFuture::into_future))
}
