//! The typed client for standalone activities, over any [`ActivityProtocol`].
//!
//! [`Client`] implements [`ActivityCaller`], so a generated stub runs a standalone
//! activity and awaits its typed result:
//!
//! ```no_run
//! use activity_core::{activity, ActivityError, Client};
//!
//! /// Greets someone.
//! #[activity(start_to_close = "10s")]
//! async fn greet(name: String) -> Result<String, ActivityError> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! async fn demo(client: &Client) -> Result<(), Box<dyn std::error::Error>> {
//!     // Schedule, then await the typed result.
//!     let text: String = greet::call(client, "Ada".into()).await?;
//!     // Or start with an id and keep a typed handle.
//!     let handle = client
//!         .start(greet::call(client, "Bob".into()).activity_id("greet-bob"))
//!         .await?;
//!     let text: String = handle.result().await?;
//!     # let _ = text;
//!     Ok(())
//! }
//! ```
//!
//! [`Client::async_completion`] gives a handle that completes an attempt from
//! anywhere by task token (or by id, [`Client::async_completion_by_id`]); its
//! `complete` takes the activity's output type, so a wrong result does not compile.
//!
//! Generic over nothing but the activity: the client holds an
//! `Arc<dyn ActivityProtocol>`, in-process engine or remote alike.

use std::{fmt, marker::PhantomData, sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    caller::{ActivityCaller, ActivityRequest, ActivityStub, CloseTimeout},
    context::TaskToken,
    definition::{ActivityDefinition, BoxFuture},
    failure::{ActivityCallError, ApplicationFailure},
    payload::{ActivityInput, Payload},
};

use super::{
    ActivityProtocol, ExecutionDescription, ExecutionOutcome, ExecutionRef, ExecutionState,
    HeartbeatResponse, ProtocolError, ScheduleActivityRequest, TaskTarget,
};

/// Runs standalone activities through an [`ActivityProtocol`], starts workflows
/// (their generated `start` stubs take a client), and completes attempts by task
/// token. Cheap to clone.
///
/// The protocol is the embedded engine's (`engine.protocol()`) or a remote
/// server's (`activity_remote::RemoteProtocol`); the task queue set with
/// [`with_task_queue`](Self::with_task_queue) is used when neither the call nor the
/// definition names one.
///
/// ```
/// use activity_core::{activity, ActivityError, Client, ExecutionState};
/// use activity_engine::{Engine, EngineConfig};
/// use activity_worker::Worker;
///
/// #[activity(start_to_close = "10s")]
/// async fn resize(image: String, width: u32) -> Result<String, ActivityError> {
///     Ok(format!("{image}@{width}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let engine = Engine::open(EngineConfig::in_memory()).await?;
/// let worker = Worker::builder(engine.protocol()).task_queue("images").build()?;
/// let stop = worker.shutdown_handle();
/// let running = tokio::spawn(worker.run_until(std::future::pending()));
///
/// let client = Client::new(engine.protocol()).with_task_queue("images");
/// // Await the typed result...
/// assert_eq!(resize::call(&client, "cat.png".into(), 64).await?, "cat.png@64");
/// // ...or keep a typed handle to an execution with a known id.
/// let handle = client
///     .start(resize::call(&client, "dog.png".into(), 32).activity_id("resize-dog"))
///     .await?;
/// assert_eq!(handle.result().await?, "dog.png@32");
/// assert_eq!(handle.describe().await?.state, ExecutionState::Completed);
/// # stop.shutdown();
/// # running.await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    protocol: Arc<dyn ActivityProtocol>,
    task_queue: Option<String>,
    outcome_wait: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("task_queue", &self.task_queue)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `protocol`, with no default task queue.
    pub fn new(protocol: Arc<dyn ActivityProtocol>) -> Self {
        Self {
            protocol,
            task_queue: None,
            outcome_wait: Duration::from_secs(60),
        }
    }

    /// Sets the task queue used when neither the call nor the definition sets one.
    pub fn with_task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.task_queue = Some(task_queue.into());
        self
    }

    /// Sets how long one long poll for an outcome waits before polling again
    /// (default 60 s; awaiting a result is not bounded by it).
    pub fn with_outcome_wait(mut self, wait: Duration) -> Self {
        self.outcome_wait = wait;
        self
    }

    /// The task queue used when neither the call nor the definition sets one.
    pub fn task_queue(&self) -> Option<&str> {
        self.task_queue.as_deref()
    }

    /// The protocol this client talks to.
    pub fn protocol(&self) -> &Arc<dyn ActivityProtocol> {
        &self.protocol
    }

    /// Schedules the activity of `stub` and returns a typed handle to it at once.
    pub fn start<A: ActivityDefinition, T: CloseTimeout<A>>(
        &self,
        stub: ActivityStub<'_, Client, A, T>,
    ) -> BoxFuture<'_, Result<ActivityHandle<A>, ActivityCallError>> {
        Box::pin(self.start_request(stub.into_request()))
    }

    /// Schedules `request` and returns a typed handle to it at once.
    pub async fn start_request<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> Result<ActivityHandle<A>, ActivityCallError> {
        let mut options = request.effective_options();
        if options.task_queue.is_none() {
            options.task_queue = self.task_queue.clone();
        }
        let mut schedule =
            ScheduleActivityRequest::new(A::NAME, request.input.to_payloads()?, options);
        schedule.activity_id = request.activity_id;
        #[cfg(feature = "otel")]
        let span = {
            use opentelemetry::KeyValue;
            let mut attributes = vec![KeyValue::new("activity.type", A::NAME)];
            if let Some(id) = &schedule.activity_id {
                attributes.push(KeyValue::new("activity.id", id.clone()));
            }
            let span = crate::otel::start(
                format!("StartActivity:{}", A::NAME),
                opentelemetry::trace::SpanKind::Client,
                &opentelemetry::Context::current(),
                attributes,
            );
            schedule.trace_context = crate::otel::traceparent(&span);
            span
        };
        let response = self.protocol.schedule_activity(schedule).await;
        #[cfg(feature = "otel")]
        {
            use opentelemetry::trace::TraceContextExt;
            if let Ok(response) = &response {
                span.span().set_attribute(opentelemetry::KeyValue::new(
                    "activity.id",
                    response.execution.activity_id.clone(),
                ));
            }
            crate::otel::end(&span, response.as_ref().err().map(ToString::to_string));
        }
        let response = response.map_err(call_error)?;
        Ok(self.handle(response.execution))
    }

    /// A typed handle to an existing execution of `A`.
    pub fn handle<A: ActivityDefinition>(&self, execution: ExecutionRef) -> ActivityHandle<A> {
        ActivityHandle {
            client: self.clone(),
            execution,
            _activity: PhantomData,
        }
    }

    /// A handle that completes, fails, cancels or heartbeats the attempt of `token`
    /// (docs/semantics.md §1.6), typed by the activity's output.
    pub fn async_completion<A: ActivityDefinition>(&self, token: TaskToken) -> AsyncCompletion<A> {
        AsyncCompletion {
            client: self.clone(),
            target: TaskTarget::Token(token),
            _activity: PhantomData,
        }
    }

    /// Like [`Client::async_completion`], acting on the current attempt of an
    /// execution identified by id.
    pub fn async_completion_by_id<A: ActivityDefinition>(
        &self,
        execution: ExecutionRef,
    ) -> AsyncCompletion<A> {
        AsyncCompletion {
            client: self.clone(),
            target: TaskTarget::Execution(execution),
            _activity: PhantomData,
        }
    }

    async fn outcome(&self, execution: &ExecutionRef) -> Result<ExecutionOutcome, ProtocolError> {
        loop {
            let waited = super::retry::retrying(|| {
                self.protocol
                    .wait_outcome(execution.clone(), self.outcome_wait)
            })
            .await?;
            if let Some(outcome) = waited {
                return Ok(outcome);
            }
        }
    }
}

fn call_error(err: ProtocolError) -> ActivityCallError {
    match err {
        ProtocolError::InvalidOptions(options) => ActivityCallError::InvalidOptions(options),
        other => ActivityCallError::Protocol(other),
    }
}

// `ActivityCallError` is the caller API's error type; its size is not ours to change.
#[allow(clippy::result_large_err)]
fn typed_result<A: ActivityDefinition>(
    outcome: ExecutionOutcome,
) -> Result<A::Output, ActivityCallError> {
    match outcome {
        ExecutionOutcome::Completed(payload) => {
            Ok(payload.decode_as(&format!("result of activity `{}`", A::NAME))?)
        }
        ExecutionOutcome::Failed(failure) => Err(ActivityCallError::Failed(failure)),
    }
}

impl ActivityCaller for Client {
    type Call<'a, A: ActivityDefinition> = BoxFuture<'a, Result<A::Output, ActivityCallError>>;

    /// Schedules a standalone execution and awaits its typed result.
    fn call_activity<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> Self::Call<'_, A> {
        Box::pin(async move {
            let handle = self.start_request(request).await?;
            handle.result().await
        })
    }
}

/// A typed handle to one execution of activity `A`.
pub struct ActivityHandle<A: ActivityDefinition> {
    client: Client,
    execution: ExecutionRef,
    _activity: PhantomData<fn() -> A>,
}

impl<A: ActivityDefinition> fmt::Debug for ActivityHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityHandle")
            .field("activity", &A::NAME)
            .field("execution", &self.execution)
            .finish()
    }
}

impl<A: ActivityDefinition> Clone for ActivityHandle<A> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            execution: self.execution.clone(),
            _activity: PhantomData,
        }
    }
}

impl<A: ActivityDefinition> ActivityHandle<A> {
    /// The execution.
    pub fn execution(&self) -> &ExecutionRef {
        &self.execution
    }

    /// The activity id.
    pub fn activity_id(&self) -> &str {
        &self.execution.activity_id
    }

    /// Waits for the execution to be final; its typed result or its failure.
    /// Keeps waiting through engine restarts (up to a minute of consecutive
    /// unavailability).
    pub async fn result(&self) -> Result<A::Output, ActivityCallError> {
        let outcome = self
            .client
            .outcome(&self.execution)
            .await
            .map_err(call_error)?;
        typed_result::<A>(outcome)
    }

    /// Requests cancellation (docs/semantics.md §1.5); answers the state after the request.
    pub async fn cancel(&self) -> Result<ExecutionState, ProtocolError> {
        self.client
            .protocol
            .request_cancel(self.execution.clone())
            .await
    }

    /// Describes the execution.
    pub async fn describe(&self) -> Result<ExecutionDescription, ProtocolError> {
        self.client
            .protocol
            .describe_execution(self.execution.clone())
            .await
    }
}

/// Completes an attempt of activity `A` from anywhere (docs/semantics.md §1.6): the result
/// must be `A`'s output type.
pub struct AsyncCompletion<A: ActivityDefinition> {
    client: Client,
    target: TaskTarget,
    _activity: PhantomData<fn() -> A>,
}

impl<A: ActivityDefinition> fmt::Debug for AsyncCompletion<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncCompletion")
            .field("activity", &A::NAME)
            .field("target", &self.target)
            .finish()
    }
}

impl<A: ActivityDefinition> AsyncCompletion<A> {
    /// Completes the attempt with `result`.
    pub async fn complete(&self, result: &A::Output) -> Result<(), ActivityCallError> {
        let payload = Payload::json(result)?;
        self.client
            .protocol
            .complete_activity(self.target.clone(), payload)
            .await
            .map_err(call_error)
    }

    /// Fails the attempt; the engine retries it or closes the execution.
    pub async fn fail(&self, failure: ApplicationFailure) -> Result<(), ActivityCallError> {
        self.client
            .protocol
            .fail_activity(self.target.clone(), failure, None)
            .await
            .map_err(call_error)
    }

    /// Acknowledges cancellation, with optional details.
    pub async fn report_canceled<T: Serialize>(
        &self,
        details: Option<&T>,
    ) -> Result<(), ActivityCallError> {
        let details = details.map(Payload::json).transpose()?;
        self.client
            .protocol
            .report_canceled(self.target.clone(), details)
            .await
            .map_err(call_error)
    }

    /// Records a heartbeat with `details`; the answer says whether cancellation
    /// was requested.
    pub async fn heartbeat<T: Serialize + ?Sized>(
        &self,
        details: &T,
    ) -> Result<HeartbeatResponse, ActivityCallError> {
        let details = Payload::json(details)?;
        self.client
            .protocol
            .record_heartbeat(self.target.clone(), Some(details))
            .await
            .map_err(call_error)
    }
}
