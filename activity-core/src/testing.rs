//! Running activities without an engine: [`TestActivityEnvironment`].
//!
//! Like Go's `TestActivityEnvironment`: run one activity with a context, seed the
//! last heartbeat details of a "previous attempt", observe the heartbeats it
//! records (typed), cancel it with a reason, and read its [`ActivityInfo`].

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    caller::{ActivityCaller, ActivityRequest},
    context::{ActivityContext, ActivityInfo, CancelHandle, CancelReason, HeartbeatSink},
    definition::{ActivityDefinition, ActivityImplementation, BoxFuture, StateMap},
    failure::{
        error_types, ActivityCallError, ActivityError, ActivityFailure, ApplicationFailure,
        Failure, RetryState,
    },
    options::RetryPolicy,
    payload::{ActivityInput, Payload, PayloadError},
    registry::{registered_activities, ActivityRegistration, SourceLocation},
};

#[derive(Default)]
struct Recorder {
    heartbeats: Mutex<Vec<Option<Payload>>>,
}

impl HeartbeatSink for Recorder {
    fn record(&self, details: Option<Payload>) {
        lock(&self.heartbeats).push(details);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not hide this environment's records.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Cancellation {
    reason: Option<CancelReason>,
    handles: Vec<CancelHandle>,
}

/// Runs activities in-process, without an engine or worker.
///
/// Every context it makes shares its info, seeded heartbeat details, heartbeat
/// record and cancellation. Timeouts are not enforced and no attempt is retried:
/// each call runs exactly one attempt, as with `maximum_attempts = 1`. A call
/// through a stub validates the options as the engine would, and serializes the
/// arguments and the result.
///
/// ```
/// use activity_core::{activity, ActivityContext, ActivityError, CancelReason, State, TestActivityEnvironment};
///
/// struct Db {
///     rows: u32,
/// }
///
/// #[activity(start_to_close = "1m")]
/// async fn export(ctx: ActivityContext, db: State<Db>, table: String) -> Result<String, ActivityError> {
///     let from: u32 = ctx.last_heartbeat_details()?.unwrap_or(0);
///     for row in from + 1..=db.rows {
///         ctx.heartbeat(&row)?;
///     }
///     let info = ctx.info();
///     Ok(format!("{table} by {} (attempt {})", info.activity_id, info.attempt))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let env = TestActivityEnvironment::new()
///     .with_state(Db { rows: 5 })
///     .with_info(|info| info.attempt = 3)        // as if two attempts had failed
///     .with_last_heartbeat_details(&3_u32);      // after row 3
/// let text = export::call(&env, "users".into()).activity_id("exp-1").await.unwrap();
/// assert_eq!(text, "users by exp-1 (attempt 3)");
/// assert_eq!(env.heartbeats::<u32>().unwrap(), [4, 5]);
/// assert_eq!(env.last_heartbeat::<u32>().unwrap(), Some(5));
///
/// // `execute` runs it as a worker does, from the typed input tuple.
/// let again = env.execute::<export>(("orders".into(),)).await.unwrap();
/// assert!(again.starts_with("orders by test-activity-id"));
///
/// // A cancelled environment cancels every context it gives.
/// env.cancel(CancelReason::WorkerShutdown);
/// assert_eq!(env.context().cancel_reason(), Some(CancelReason::WorkerShutdown));
/// # }
/// ```
pub struct TestActivityEnvironment {
    info: ActivityInfo,
    last_heartbeat_details: Option<Payload>,
    state: StateMap,
    recorder: Arc<Recorder>,
    cancellation: Mutex<Cancellation>,
}

impl Default for TestActivityEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl TestActivityEnvironment {
    /// An environment for attempt 1 of activity `test-activity` (id `test-activity-id`)
    /// on task queue `test-queue`.
    pub fn new() -> Self {
        Self {
            info: ActivityInfo::new("test-activity", "test-activity-id", "test-queue"),
            last_heartbeat_details: None,
            state: StateMap::new(),
            recorder: Arc::default(),
            cancellation: Mutex::default(),
        }
    }

    /// Edits the info given to activities (attempt, ids, deadline, …).
    pub fn with_info(mut self, edit: impl FnOnce(&mut ActivityInfo)) -> Self {
        edit(&mut self.info);
        self
    }

    /// Seeds the details a previous attempt recorded in its last heartbeat.
    ///
    /// # Panics
    /// If `details` cannot be serialized.
    pub fn with_last_heartbeat_details<T: Serialize + ?Sized>(mut self, details: &T) -> Self {
        match Payload::json(details) {
            Ok(payload) => self.last_heartbeat_details = Some(payload),
            Err(err) => panic!("with_last_heartbeat_details: {err}"),
        }
        self
    }

    /// Provides shared state to activities that take `State<T>`.
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The info activities receive (before an `execute` sets the activity type).
    pub fn info(&self) -> &ActivityInfo {
        &self.info
    }

    /// A context for calling an activity function directly.
    pub fn context(&self) -> ActivityContext {
        self.context_with(self.info.clone())
    }

    fn context_with(&self, info: ActivityInfo) -> ActivityContext {
        let sink: Option<Arc<dyn HeartbeatSink>> = if info.is_local {
            None
        } else {
            Some(self.recorder.clone())
        };
        let (ctx, handle) = ActivityContext::new(info, self.last_heartbeat_details.clone(), sink);
        let mut cancellation = lock(&self.cancellation);
        if let Some(reason) = cancellation.reason {
            handle.cancel(reason);
        }
        cancellation.handles.push(handle);
        ctx
    }

    /// Cancels every context of this environment, present and future, with `reason`.
    pub fn cancel(&self, reason: CancelReason) {
        let mut cancellation = lock(&self.cancellation);
        cancellation.reason.get_or_insert(reason);
        for handle in &cancellation.handles {
            handle.cancel(reason);
        }
    }

    /// Number of heartbeats recorded so far.
    pub fn heartbeat_count(&self) -> usize {
        lock(&self.recorder.heartbeats).len()
    }

    /// The details of every heartbeat recorded so far, typed (heartbeats without
    /// details are skipped).
    pub fn heartbeats<T: DeserializeOwned>(&self) -> Result<Vec<T>, PayloadError> {
        lock(&self.recorder.heartbeats)
            .iter()
            .flatten()
            .map(|p| p.decode_as("heartbeat details"))
            .collect()
    }

    /// The details of the last heartbeat with details, typed.
    pub fn last_heartbeat<T: DeserializeOwned>(&self) -> Result<Option<T>, PayloadError> {
        lock(&self.recorder.heartbeats)
            .iter()
            .rev()
            .flatten()
            .next()
            .map(|p| p.decode_as("heartbeat details"))
            .transpose()
    }

    /// Runs activity `A` on `input` the way a worker does: the arguments are
    /// serialized one payload each, decoded, passed to the function, and the result
    /// is serialized and decoded back.
    pub async fn execute<A: ActivityImplementation>(
        &self,
        input: A::Input,
    ) -> Result<A::Output, ActivityError> {
        let registration = ActivityRegistration::of::<A>(SourceLocation {
            file: file!(),
            line: line!(),
            module_path: module_path!(),
        });
        let payloads = input.to_payloads()?;
        let output = self
            .run_registration(&registration, &payloads, None)
            .await?;
        Ok(output.decode_as(&format!("result of activity `{}`", A::NAME))?)
    }

    /// Runs the registered activity called `name` on serialized arguments, as a
    /// worker would after receiving a task. An unknown name fails with
    /// `ActivityNotRegistered`.
    pub async fn execute_payloads(
        &self,
        name: &str,
        input: &[Payload],
    ) -> Result<Payload, ActivityError> {
        let registration = find_registration(name)?;
        self.run_registration(registration, input, None).await
    }

    fn run_registration(
        &self,
        registration: &ActivityRegistration,
        input: &[Payload],
        activity_id: Option<String>,
    ) -> BoxFuture<'static, Result<Payload, ActivityError>> {
        let mut info = self.info.clone();
        info.activity_type = registration.name().to_owned();
        if let Some(id) = activity_id {
            info.activity_id = id;
        }
        registration.invoke(self.context_with(info), &self.state, input)
    }
}

impl ActivityCaller for TestActivityEnvironment {
    type Call<'a, A: ActivityDefinition> = BoxFuture<'a, Result<A::Output, ActivityCallError>>;

    /// Runs one attempt of the registered activity called `A::NAME`, after
    /// validating the effective options as the engine would.
    fn call_activity<A: ActivityDefinition>(
        &self,
        request: ActivityRequest<A>,
    ) -> Self::Call<'_, A> {
        Box::pin(async move {
            let options = request
                .effective_options()
                .validate(Some(&self.info.task_queue))?;
            let activity_id = request
                .activity_id
                .clone()
                .unwrap_or_else(|| self.info.activity_id.clone());
            let payloads = request.input.to_payloads()?;
            let outcome = match find_registration(A::NAME) {
                Ok(registration) => {
                    self.run_registration(registration, &payloads, Some(activity_id.clone()))
                        .await
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(payload) => Ok(payload.decode_as(&format!("result of activity `{}`", A::NAME))?),
                Err(err) => Err(ActivityCallError::Failed(one_attempt_failure(
                    A::NAME,
                    activity_id,
                    &options.retry_policy,
                    err,
                ))),
            }
        })
    }
}

/// The registered activity called `name`, or an `ActivityNotRegistered` failure
/// listing the registered types.
fn find_registration(name: &str) -> Result<&'static ActivityRegistration, ActivityError> {
    registered_activities()
        .find(|r| r.name() == name)
        .ok_or_else(|| {
            let mut known: Vec<&str> = registered_activities().map(|r| r.name()).collect();
            known.sort_unstable();
            ActivityError::application(
                error_types::ACTIVITY_NOT_REGISTERED,
                format!(
                    "activity type `{name}` is not registered; registered types: [{}]",
                    known.join(", ")
                ),
            )
        })
}

fn one_attempt_failure(
    activity_type: &str,
    activity_id: String,
    policy: &RetryPolicy,
    err: ActivityError,
) -> ActivityFailure {
    let (retry_state, cause) = match err.into_failure() {
        Some(Failure::Application(a)) => {
            let state = if a.non_retryable || policy.is_non_retryable_type(&a.error_type) {
                RetryState::NonRetryableFailure
            } else {
                RetryState::MaximumAttemptsReached
            };
            (state, Failure::Application(a))
        }
        Some(cause @ Failure::Canceled(_)) => (RetryState::CancelRequested, cause),
        Some(other) => (RetryState::MaximumAttemptsReached, other),
        None => (
            RetryState::NonRetryableFailure,
            Failure::Application(
                ApplicationFailure::new(
                    "ResultPending",
                    "the activity returned `result pending`, which the test environment cannot complete: use `TestActivityEnvironment::execute` and expect `ActivityError::ResultPending`",
                )
                .with_non_retryable(true),
            ),
        ),
    };
    ActivityFailure::new(activity_type, activity_id, 1, retry_state, cause)
}
