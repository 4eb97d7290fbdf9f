//! Starting workflows and waiting for them: the typed start stubs
//! (`checkout::start(&client, order)`) and [`WorkflowHandle`].

use std::{fmt, future::IntoFuture, marker::PhantomData, sync::Arc, time::Duration};

use crate::{
    definition::BoxFuture,
    payload::{ActivityArgument, ActivityInput, Payload, PayloadError},
    protocol::{client::Client, ActivityProtocol, ProtocolError},
};

use super::{
    context::{Query, Signal},
    history::{
        HistoryEvent, StartWorkflowRequest, WorkflowDescription, WorkflowFailure,
        WorkflowIdReusePolicy, WorkflowOutcome, WorkflowRef, WorkflowState, WorkflowTimeout,
    },
    WorkflowDefinition,
};

/// A workflow call did not produce its result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowCallError {
    /// The run failed.
    #[error("workflow failed: {0}")]
    Failed(WorkflowFailure),
    /// The run was canceled.
    #[error("workflow canceled")]
    Canceled,
    /// The run was terminated.
    #[error("workflow terminated: {reason}")]
    Terminated {
        /// Why, as given by who terminated it.
        reason: String,
    },
    /// The run reached its run timeout or its execution timeout.
    #[error("workflow timed out: {timeout}")]
    TimedOut {
        /// Which timeout.
        timeout: WorkflowTimeout,
    },
    /// The engine refused the call (e.g. a running workflow has this id).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The input could not be encoded, or the result decoded.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Something that starts workflows: a [`Client`].
pub trait WorkflowStarter {
    /// The protocol the runs are started through.
    fn workflow_protocol(&self) -> Arc<dyn ActivityProtocol>;
    /// The task queue used when the start does not name one.
    fn default_task_queue(&self) -> Option<&str>;
}

impl WorkflowStarter for Client {
    fn workflow_protocol(&self) -> Arc<dyn ActivityProtocol> {
        self.protocol().clone()
    }

    fn default_task_queue(&self) -> Option<&str> {
        self.task_queue()
    }
}

/// A typed start of workflow `W`, built by a generated stub. Set the id and queue,
/// then `.await` it for a [`WorkflowHandle`].
#[must_use = "a workflow start does nothing until it is awaited"]
pub struct WorkflowStart<'c, C: ?Sized, W: WorkflowDefinition> {
    starter: &'c C,
    input: W::Input,
    workflow_id: Option<String>,
    task_queue: Option<String>,
    signal: Option<(&'static str, Result<Payload, PayloadError>)>,
    run_timeout: Option<Duration>,
    execution_timeout: Option<Duration>,
    id_reuse_policy: WorkflowIdReusePolicy,
}

impl<'c, C: ?Sized, W: WorkflowDefinition> WorkflowStart<'c, C, W> {
    /// A start of `W` with `input` through `starter`.
    pub fn new(starter: &'c C, input: W::Input) -> Self {
        Self {
            starter,
            input,
            workflow_id: None,
            task_queue: None,
            signal: None,
            run_timeout: None,
            execution_timeout: None,
            id_reuse_policy: WorkflowIdReusePolicy::AllowDuplicate,
        }
    }

    /// Sets the run timeout (docs/semantics.md §3): the run is closed
    /// TIMED_OUT (`WorkflowTimedOut` naming the run timeout) when it has run
    /// this long; each run of a continue-as-new chain gets it anew. More than
    /// zero, else the start is refused with `InvalidArgument`.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use activity_core::{workflow, Client, WorkflowContext, WorkflowError};
    /// # use activity_core::workflow::WorkflowIdReusePolicy;
    /// #[workflow]
    /// async fn nightly(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    ///     ctx.sleep(Duration::from_secs(60)).await;
    ///     Ok(())
    /// }
    /// # async fn example(client: Client) -> Result<(), activity_core::WorkflowCallError> {
    /// let handle = nightly::start(&client)
    ///     .workflow_id("nightly-2026-12-04")
    ///     .run_timeout(Duration::from_secs(600))
    ///     .execution_timeout(Duration::from_secs(3600))
    ///     .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicateFailedOnly)
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }

    /// Sets the execution timeout (docs/semantics.md §3): the workflow's
    /// current run is closed TIMED_OUT when this long has passed since the
    /// first run of its continue-as-new chain started. More than zero and not
    /// less than the run timeout, else the start is refused.
    pub fn execution_timeout(mut self, timeout: Duration) -> Self {
        self.execution_timeout = Some(timeout);
        self
    }

    /// Sets whether the start may reuse a workflow id whose last run closed
    /// (default [`WorkflowIdReusePolicy::AllowDuplicate`]); a refused start
    /// fails with `AlreadyExists` naming the last run and the policy.
    pub fn id_reuse_policy(mut self, policy: WorkflowIdReusePolicy) -> Self {
        self.id_reuse_policy = policy;
        self
    }

    /// Signal-with-start (docs/semantics.md §3.1): awaiting the start sends
    /// `signal` with `payload` to the running run of the workflow id, or, when
    /// none runs, starts one and records the signal right after its start, in
    /// one step. Set a `.workflow_id(…)`: without one every start is a new run.
    ///
    /// ```no_run
    /// # use activity_core::{workflow, Client, WorkflowContext, WorkflowError};
    /// #[workflow(signals(add = u32))]
    /// async fn tally(ctx: WorkflowContext) -> Result<u32, WorkflowError> {
    ///     ctx.signal(tally::add).recv().await
    /// }
    /// # async fn example(client: Client) -> Result<(), activity_core::WorkflowCallError> {
    /// let handle = tally::start(&client)
    ///     .workflow_id("tally-7")
    ///     .with_signal(tally::add, 5)
    ///     .await?;
    /// assert_eq!(handle.result().await?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_signal<T: ActivityArgument>(mut self, signal: Signal<W, T>, payload: T) -> Self {
        let name = signal.name();
        self.signal = Some((name, encode_signal(name, &payload)));
        self
    }

    /// Sets the workflow id (default: a new unique id).
    pub fn workflow_id(mut self, id: impl Into<String>) -> Self {
        self.workflow_id = Some(id.into());
        self
    }

    /// Sets the task queue (default: the client's).
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.task_queue = Some(queue.into());
        self
    }
}

/// Awaiting a start starts the run through the client. Only [`Client`] starts
/// workflows: any other first argument finds no impl here and is reported
/// through the `Future` impl below, by its bound's message.
impl<'c, W: WorkflowDefinition> IntoFuture for WorkflowStart<'c, Client, W> {
    type Output = Result<WorkflowHandle<W>, WorkflowCallError>;
    type IntoFuture = BoxFuture<'c, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let protocol = self.starter.workflow_protocol();
        let task_queue = self
            .task_queue
            .or_else(|| self.starter.default_task_queue().map(str::to_owned));
        let workflow_id = self.workflow_id;
        let input = self.input;
        let signal = self.signal;
        let (run_timeout, execution_timeout, id_reuse_policy) = (
            self.run_timeout,
            self.execution_timeout,
            self.id_reuse_policy,
        );
        Box::pin(async move {
            // The caller's context, current while it polls the start
            // (docs/semantics.md §5.1).
            #[cfg(feature = "otel")]
            let parent = opentelemetry::Context::current();
            let task_queue = match task_queue {
                Some(queue) => queue,
                None => {
                    return Err(ProtocolError::invalid_argument(
                        "task_queue",
                        "no task queue: set one with `.task_queue(…)` on the start or `with_task_queue` on the client",
                    )
                    .into())
                }
            };
            let workflow_id =
                workflow_id.unwrap_or_else(|| format!("{}-{}", W::NAME, unique_suffix()));
            let input = input.to_payloads()?;
            let mut request = StartWorkflowRequest::new(workflow_id, W::NAME, task_queue, input)
                .with_id_reuse_policy(id_reuse_policy);
            request.run_timeout = run_timeout;
            request.execution_timeout = execution_timeout;
            #[cfg(feature = "otel")]
            let span = {
                use opentelemetry::KeyValue;
                let span = crate::otel::start(
                    format!("StartWorkflow:{}", W::NAME),
                    opentelemetry::trace::SpanKind::Client,
                    &parent,
                    vec![
                        KeyValue::new("workflow.type", W::NAME),
                        KeyValue::new("workflow.id", request.workflow_id.clone()),
                        KeyValue::new("task_queue", request.task_queue.clone()),
                    ],
                );
                request.trace_context = crate::otel::traceparent(&span);
                span
            };
            let run = match signal {
                None => protocol.start_workflow(request).await,
                Some((name, payload)) => {
                    let payload = payload?;
                    protocol
                        .signal_with_start_workflow(
                            request,
                            name.to_owned(),
                            payload,
                            client_identity(),
                        )
                        .await
                }
            };
            #[cfg(feature = "otel")]
            {
                use opentelemetry::trace::TraceContextExt;
                if let Ok(run) = &run {
                    span.span().set_attribute(opentelemetry::KeyValue::new(
                        "workflow.run_id",
                        run.run_id.clone().unwrap_or_default(),
                    ));
                }
                crate::otel::end(&span, run.as_ref().err().map(ToString::to_string));
            }
            let run = run?;
            Ok(WorkflowHandle {
                protocol,
                workflow: run,
                _workflow: PhantomData,
            })
        })
    }
}

/// The bound that makes awaiting a start whose first argument is not a client a
/// compile error, with this message. Implemented by nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot start workflows",
    label = "not a workflow starter",
    note = "pass a client first: `&client`, an `activity_core::Client` (e.g. `Client::new(engine.protocol())`)"
)]
pub trait IsWorkflowStarter: sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

/// Never implemented in fact (the bound holds for no type): see [`IsWorkflowStarter`].
impl<C: IsWorkflowStarter + ?Sized, W: WorkflowDefinition> std::future::Future
    for WorkflowStart<'_, C, W>
{
    type Output = Result<WorkflowHandle<W>, WorkflowCallError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Pending
    }
}

/// How long [`WorkflowHandle::query`] waits for a worker to answer.
pub const DEFAULT_QUERY_WAIT: Duration = Duration::from_secs(10);

fn encode_signal<T: ActivityArgument>(name: &str, payload: &T) -> Result<Payload, PayloadError> {
    Payload::json(payload).map_err(|e| match e {
        PayloadError::Encode { source, .. } => PayloadError::Encode {
            what: format!("the payload of signal `{name}`"),
            source,
        },
        other => other,
    })
}

/// Who this process is in the histories it writes: `client-<pid>@<host>`.
pub(crate) fn client_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!("client-{}@{host}", std::process::id())
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A typed handle to a workflow run.
pub struct WorkflowHandle<W: WorkflowDefinition> {
    protocol: Arc<dyn ActivityProtocol>,
    workflow: WorkflowRef,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: WorkflowDefinition> fmt::Debug for WorkflowHandle<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("workflow", &self.workflow)
            .finish_non_exhaustive()
    }
}

impl<W: WorkflowDefinition> Clone for WorkflowHandle<W> {
    fn clone(&self) -> Self {
        Self {
            protocol: self.protocol.clone(),
            workflow: self.workflow.clone(),
            _workflow: PhantomData,
        }
    }
}

impl<W: WorkflowDefinition> WorkflowHandle<W> {
    /// A handle to an existing run.
    pub fn new(protocol: Arc<dyn ActivityProtocol>, workflow: WorkflowRef) -> Self {
        Self {
            protocol,
            workflow,
            _workflow: PhantomData,
        }
    }

    /// The run.
    pub fn workflow(&self) -> &WorkflowRef {
        &self.workflow
    }

    /// Waits for the run's typed result, through engine restarts (up to a minute
    /// of consecutive unavailability). A run that continued as new, or was
    /// reset, is followed to the run that took over, and so on to the final
    /// result (docs/semantics.md §3.1).
    pub async fn result(&self) -> Result<W::Output, WorkflowCallError> {
        let mut workflow = self.workflow.clone();
        loop {
            let outcome = crate::protocol::retry::retrying(|| {
                self.protocol
                    .wait_workflow_outcome(workflow.clone(), Duration::from_secs(60))
            })
            .await?;
            if let Some(next) = outcome.as_ref().and_then(WorkflowOutcome::next_run) {
                workflow = WorkflowRef::run(workflow.workflow_id, next);
                continue;
            }
            match outcome {
                None | Some(WorkflowOutcome::ContinuedAsNew { .. }) => continue,
                Some(WorkflowOutcome::Completed(payload)) => {
                    return Ok(payload.decode_as(&format!("result of workflow `{}`", W::NAME))?)
                }
                Some(WorkflowOutcome::Failed(failure)) => {
                    return Err(WorkflowCallError::Failed(failure))
                }
                Some(WorkflowOutcome::Canceled) => return Err(WorkflowCallError::Canceled),
                Some(WorkflowOutcome::Terminated { reason, .. }) => {
                    return Err(WorkflowCallError::Terminated { reason })
                }
                Some(WorkflowOutcome::TimedOut { timeout }) => {
                    return Err(WorkflowCallError::TimedOut { timeout })
                }
            }
        }
    }

    /// Requests cancellation of the run.
    pub async fn cancel(&self) -> Result<WorkflowState, ProtocolError> {
        self.protocol
            .request_cancel_workflow(self.workflow.clone())
            .await
    }

    /// Terminates the run at once with `reason` (docs/semantics.md §3.1): no workflow code
    /// runs, its open activities are told the workflow closed, and its history
    /// ends with `WorkflowTerminated` naming the reason and this process. A run
    /// that had already closed is left as it is: refused with
    /// [`ProtocolError::AlreadyClosed`] naming its state.
    pub async fn terminate(
        &self,
        reason: impl Into<String>,
    ) -> Result<WorkflowState, ProtocolError> {
        self.protocol
            .terminate_workflow(self.workflow.clone(), reason.into(), client_identity())
            .await
    }

    /// Resets the run to event `to_event`, a `WorkflowTaskCompleted` of its
    /// history (docs/semantics.md §3.1): a new run of the workflow id starts
    /// with the history up to the task that event answered, that task failed
    /// with the reset (this process, `reason`, the source run) and the
    /// signals received after it; the current code redoes the task and
    /// continues. The run, if running, is terminated naming the reset. Answers
    /// a handle to the new run; this handle's [`result`](Self::result)
    /// follows to it too. The usual use: after a bad deploy made the run's
    /// tasks fail with nondeterminism, reset it to the last task the fixed code
    /// agrees with.
    ///
    /// ```no_run
    /// # use activity_core::{workflow, Client, WorkflowContext, WorkflowError};
    /// # #[workflow]
    /// # async fn checkout(ctx: WorkflowContext) -> Result<(), WorkflowError> { Ok(()) }
    /// # async fn example(handle: activity_core::WorkflowHandle<checkout>) -> Result<(), activity_core::WorkflowCallError> {
    /// let reset = handle.reset(9, "deploy 41 broke determinism").await?;
    /// reset.result().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reset(
        &self,
        to_event: u64,
        reason: impl Into<String>,
    ) -> Result<WorkflowHandle<W>, ProtocolError> {
        let run = self
            .protocol
            .reset_workflow(
                self.workflow.clone(),
                to_event,
                reason.into(),
                client_identity(),
            )
            .await?;
        Ok(WorkflowHandle::new(self.protocol.clone(), run))
    }

    /// Sends `signal` with `payload` to the run (docs/semantics.md §3.1): it is
    /// recorded in the run's history and its code receives it in arrival
    /// order. A signal the workflow does not declare, or a payload of another
    /// type, does not compile. A closed run refuses it with
    /// [`ProtocolError::AlreadyClosed`]. Answers the run signaled.
    ///
    /// ```no_run
    /// # use activity_core::{workflow, Client, WorkflowContext, WorkflowError};
    /// #[workflow(signals(add = u32))]
    /// async fn tally(ctx: WorkflowContext) -> Result<u32, WorkflowError> {
    ///     ctx.signal(tally::add).recv().await
    /// }
    /// # async fn example(client: Client) -> Result<(), activity_core::WorkflowCallError> {
    /// let handle = tally::start(&client).await?;
    /// handle.signal(tally::add, 5).await?;
    /// assert_eq!(handle.result().await?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn signal<T: ActivityArgument>(
        &self,
        signal: Signal<W, T>,
        payload: T,
    ) -> Result<WorkflowRef, WorkflowCallError> {
        let name = signal.name();
        let input = encode_signal(name, &payload)?;
        Ok(self
            .protocol
            .signal_workflow(
                self.workflow.clone(),
                name.to_owned(),
                input,
                client_identity(),
            )
            .await?)
    }

    /// Asks the run's query handler `query` (docs/semantics.md §3.1), waiting
    /// up to 10 s for a worker to answer; see
    /// [`query_within`](Self::query_within).
    pub async fn query<T: ActivityArgument>(
        &self,
        query: Query<W, T>,
    ) -> Result<T, WorkflowCallError> {
        self.query_within(query, DEFAULT_QUERY_WAIT).await
    }

    /// Asks the run's query handler `query`, answered by a worker polling the
    /// run's task queue from its cached instance or by replay; nothing is
    /// written to the history. Fails with [`ProtocolError::Unavailable`] when no
    /// worker answered within `wait` (the engine bounds it), and with
    /// [`ProtocolError::InvalidArgument`] when the code registered no handler
    /// of that name.
    ///
    /// ```no_run
    /// # use activity_core::{workflow, Client, WorkflowContext, WorkflowError};
    /// #[workflow(queries(stage = String))]
    /// async fn pipeline(ctx: WorkflowContext) -> Result<(), WorkflowError> {
    ///     ctx.on_query(pipeline::stage, || "waiting".to_owned());
    ///     ctx.sleep(std::time::Duration::from_secs(60)).await;
    ///     Ok(())
    /// }
    /// # async fn example(client: Client) -> Result<(), activity_core::WorkflowCallError> {
    /// let handle = pipeline::start(&client).await?;
    /// let stage: String = handle.query(pipeline::stage).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query_within<T: ActivityArgument>(
        &self,
        query: Query<W, T>,
        wait: Duration,
    ) -> Result<T, WorkflowCallError> {
        let name = query.name();
        let answer = self
            .protocol
            .query_workflow(self.workflow.clone(), name.to_owned(), wait)
            .await?;
        Ok(answer.decode_as(&format!(
            "the answer of query `{name}` of workflow `{}`",
            W::NAME
        ))?)
    }

    /// Describes the run.
    pub async fn describe(&self) -> Result<WorkflowDescription, ProtocolError> {
        self.protocol.describe_workflow(self.workflow.clone()).await
    }

    /// The run's history.
    pub async fn history(&self) -> Result<Vec<HistoryEvent>, ProtocolError> {
        self.protocol.workflow_history(self.workflow.clone()).await
    }
}
