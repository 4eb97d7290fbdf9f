//! Typed calls: what the generated stubs (`charge::call(&ctx, card, cents)`) build.
//!
//! A stub produces an [`ActivityStub`]: the typed arguments, the call-site option
//! overrides, and the caller that will run it. Awaiting it hands an
//! [`ActivityRequest`] to the caller ([`ActivityCaller`]): a workflow context, a
//! client, or the test environment. Argument and result types are checked by the
//! compiler at the call site.

use std::{future::Future, future::IntoFuture, time::Duration};

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

/// A typed call of activity `A` through caller `C`, built by a generated stub.
/// Set call-site options, then `.await` it.
#[must_use = "an activity call does nothing until it is awaited"]
pub struct ActivityStub<'c, C: ActivityCaller, A: ActivityDefinition> {
    caller: &'c C,
    request: ActivityRequest<A>,
}

impl<'c, C: ActivityCaller, A: ActivityDefinition> ActivityStub<'c, C, A> {
    /// A call of `A` with `input` through `caller`.
    pub fn new(caller: &'c C, input: A::Input) -> Self {
        Self {
            caller,
            request: ActivityRequest::new(input),
        }
    }

    /// Overrides `schedule_to_close`.
    pub fn schedule_to_close(mut self, timeout: Duration) -> Self {
        self.request.options.schedule_to_close = Some(timeout);
        self
    }

    /// Overrides `start_to_close`.
    pub fn start_to_close(mut self, timeout: Duration) -> Self {
        self.request.options.start_to_close = Some(timeout);
        self
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

    /// Overrides several options at once (field by field).
    pub fn options(mut self, options: ActivityOptions) -> Self {
        self.request.options = self.request.options.merge(&options);
        self
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

impl<'c, C: ActivityCaller, A: ActivityDefinition> IntoFuture for ActivityStub<'c, C, A> {
    type Output = Result<A::Output, ActivityCallError>;
    type IntoFuture = C::Call<'c, A>;

    fn into_future(self) -> Self::IntoFuture {
        self.caller.call_activity(self.request)
    }
}
