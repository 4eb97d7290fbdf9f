//! Typed calls: what the generated stubs (`charge::call(&ctx, card, cents)`) build.
//!
//! A stub produces an [`ActivityStub`]: the typed arguments, the call-site option
//! overrides, and the caller that will run it. Awaiting it hands an
//! [`ActivityRequest`] to the caller ([`ActivityCaller`]): a workflow context, a
//! client, or the test environment. Argument and result types are checked by the
//! compiler at the call site.

use std::{
    future::{Future, IntoFuture},
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use crate::{
    definition::ActivityDefinition,
    failure::ActivityCallError,
    options::{ActivityOptions, CancellationType, RetryOptions},
};

/// A typed request to run activity `A`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ActivityRequest<A: ActivityDefinition> {
    /// The arguments.
    pub input: A::Input,
    /// Call-site options; merged over `A::default_options()` by the caller.
    pub options: ActivityOptions,
    /// An explicit activity id; the caller assigns one when unset.
    pub activity_id: Option<String>,
    /// How cancellation of the call behaves.
    pub cancellation_type: CancellationType,
}

impl<A: ActivityDefinition> ActivityRequest<A> {
    /// A request with no call-site options.
    pub fn new(input: A::Input) -> Self {
        Self {
            input,
            options: ActivityOptions::default(),
            activity_id: None,
            cancellation_type: CancellationType::default(),
        }
    }

    /// The definition's defaults overridden, field by field, by the call-site options.
    pub fn effective_options(&self) -> ActivityOptions {
        A::default_options().merge(&self.options)
    }
}

/// Something that runs typed activity requests: a workflow context, a client,
/// the test environment.
///
/// The stubs `#[activity]` generates can be awaited through the callers of this
/// crate ([`WorkflowContext`](crate::WorkflowContext),
/// [`LocalActivities`](crate::workflow::LocalActivities),
/// [`Client`](crate::Client),
/// [`TestActivityEnvironment`](crate::TestActivityEnvironment)); another
/// implementation runs requests with [`ActivityCaller::call_activity`].
pub trait ActivityCaller {
    /// The future of one call.
    type Call<'a, A: ActivityDefinition>: Future<Output = Result<A::Output, ActivityCallError>> + 'a
    where
        Self: 'a;

    /// Runs the request.
    fn call_activity<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> Self::Call<'_, A>;
}

/// The state of a call whose close timeout is set, or can only be known when it
/// runs (options given as a value with [`ActivityStub::options`]): awaiting it
/// compiles, and the options are validated when it runs (SEMANTICS 1.1).
#[derive(Debug)]
pub enum CloseTimeoutChecked {}

/// The state of a call of an activity whose definition declares neither
/// `start_to_close` nor `schedule_to_close`: awaiting it does not compile until
/// the call sets one ([`ActivityStub::start_to_close`],
/// [`ActivityStub::schedule_to_close`]), since the engine would refuse it.
#[derive(Debug)]
pub enum NoCloseTimeout {}

/// The bound that makes awaiting a call without a close timeout a compile
/// error. Sealed: only [`CloseTimeoutChecked`] has it.
#[diagnostic::on_unimplemented(
    message = "activity `{A}` is called without a `start_to_close` or `schedule_to_close` timeout",
    label = "neither `#[activity]` nor this call sets a close timeout",
    note = "declare one on the activity, e.g. `#[activity(start_to_close = \"30s\")]`, or set one on this call: `.start_to_close(Duration::from_secs(30))`"
)]
pub trait CloseTimeout<A>: sealed::Sealed<A> {}

impl<A> CloseTimeout<A> for CloseTimeoutChecked {}

/// The bound that makes awaiting a stub whose first argument is not a caller a
/// compile error, with this message. Implemented by nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot call activities",
    label = "not an activity caller",
    note = "pass the caller first: `&ctx` (the `WorkflowContext`) in a workflow, `&ctx.local()` for a local activity, `&client` (an `activity_core::Client`, e.g. `Client::new(engine.protocol())`) outside workflows, or `&env` (a `TestActivityEnvironment`) in tests",
    note = "an activity does not call other activities (its `ActivityContext` is not a caller): call both from a workflow"
)]
pub trait IsActivityCaller: sealed::Sealed<()> {}

mod sealed {
    pub trait Sealed<A> {}
    impl<A> Sealed<A> for super::CloseTimeoutChecked {}
}

/// A typed call of activity `A` through caller `C`, built by a generated stub.
/// Set call-site options, then `.await` it.
///
/// `T` records whether a close timeout is known to be set
/// ([`CloseTimeoutChecked`], the default) or known to be missing
/// ([`NoCloseTimeout`]); only the first can be awaited.
#[must_use = "an activity call does nothing until it is awaited"]
pub struct ActivityStub<'c, C: ?Sized, A: ActivityDefinition, T = CloseTimeoutChecked> {
    caller: &'c C,
    request: ActivityRequest<A>,
    _timeouts: PhantomData<fn() -> T>,
}

impl<'c, C: ?Sized, A: ActivityDefinition> ActivityStub<'c, C, A> {
    /// A call of `A` with `input` through `caller`; its options are checked when
    /// it runs.
    pub fn new(caller: &'c C, input: A::Input) -> Self {
        Self {
            caller,
            request: ActivityRequest::new(input),
            _timeouts: PhantomData,
        }
    }
}

impl<'c, C: ?Sized, A: ActivityDefinition> ActivityStub<'c, C, A, NoCloseTimeout> {
    /// A call of `A`, whose definition declares no close timeout, with `input`
    /// through `caller`: it can be awaited once the call sets one.
    pub fn without_close_timeout(caller: &'c C, input: A::Input) -> Self {
        Self {
            caller,
            request: ActivityRequest::new(input),
            _timeouts: PhantomData,
        }
    }
}

impl<'c, C: ?Sized, A: ActivityDefinition, T> ActivityStub<'c, C, A, T> {
    fn checked(self) -> ActivityStub<'c, C, A, CloseTimeoutChecked> {
        ActivityStub {
            caller: self.caller,
            request: self.request,
            _timeouts: PhantomData,
        }
    }

    /// Overrides `schedule_to_close`.
    pub fn schedule_to_close(mut self, timeout: Duration) -> ActivityStub<'c, C, A> {
        self.request.options.schedule_to_close = Some(timeout);
        self.checked()
    }

    /// Overrides `start_to_close`.
    pub fn start_to_close(mut self, timeout: Duration) -> ActivityStub<'c, C, A> {
        self.request.options.start_to_close = Some(timeout);
        self.checked()
    }

    /// Overrides `schedule_to_start`.
    pub fn schedule_to_start(mut self, timeout: Duration) -> Self {
        self.request.options.schedule_to_start = Some(timeout);
        self
    }

    /// Overrides `heartbeat_timeout`.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.request.options.heartbeat_timeout = Some(timeout);
        self
    }

    /// Overrides the task queue.
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.request.options.task_queue = Some(queue.into());
        self
    }

    /// Overrides retry fields (field by field).
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.request.options.retry = retry;
        self
    }

    /// Overrides several options at once (field by field). Whether a close
    /// timeout is among them is known only when the call runs, which checks it.
    pub fn options(mut self, options: ActivityOptions) -> ActivityStub<'c, C, A> {
        self.request.options = self.request.options.merge(&options);
        self.checked()
    }

    /// Sets the activity id.
    pub fn activity_id(mut self, id: impl Into<String>) -> Self {
        self.request.activity_id = Some(id.into());
        self
    }

    /// Sets how cancellation of this call behaves.
    pub fn cancellation_type(mut self, cancellation_type: CancellationType) -> Self {
        self.request.cancellation_type = cancellation_type;
        self
    }

    /// The request as built so far.
    pub fn request(&self) -> &ActivityRequest<A> {
        &self.request
    }

    /// The request, without running it.
    pub fn into_request(self) -> ActivityRequest<A> {
        self.request
    }
}

/// Awaiting a stub runs it through its caller. One impl per caller of this
/// crate, so that any other first argument finds no impl here and is reported
/// through the `Future` impls below, by their bounds' messages.
macro_rules! awaitable_through {
    ($($caller:ty),* $(,)?) => {$(
        impl<'c, A: ActivityDefinition> IntoFuture for ActivityStub<'c, $caller, A> {
            type Output = Result<A::Output, ActivityCallError>;
            type IntoFuture = <$caller as ActivityCaller>::Call<'c, A>;

            fn into_future(self) -> Self::IntoFuture {
                self.caller.call_activity(self.request)
            }
        }
    )*};
}

awaitable_through!(
    crate::WorkflowContext,
    crate::workflow::LocalActivities,
    crate::Client,
    crate::TestActivityEnvironment,
);

/// Never implemented in fact (the bound holds for no type): awaiting a stub
/// whose first argument is not a caller reports the bound, with its message.
impl<C, A> Future for ActivityStub<'_, C, A>
where
    C: IsActivityCaller + ?Sized,
    A: ActivityDefinition,
{
    type Output = Result<A::Output, ActivityCallError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

/// Never implemented in fact (the bound holds for no activity): awaiting a call
/// known to lack a close timeout reports the bound, with its message.
impl<C, A> Future for ActivityStub<'_, C, A, NoCloseTimeout>
where
    C: ?Sized,
    A: ActivityDefinition,
    NoCloseTimeout: CloseTimeout<A>,
{
    type Output = Result<A::Output, ActivityCallError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}
