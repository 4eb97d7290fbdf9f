//! Typed, durable activities: the model.
//!
//! Annotate a plain `async fn` with [`#[activity]`](macro@activity); the macro keeps
//! the function as it is and generates, under the same name, a marker type that
//! implements [`ActivityDefinition`], registers the activity (through `inventory`)
//! and offers a typed stub: `charge::call(&caller, card, cents)`.
//!
//! ```
//! use activity_core::{activity, ActivityContext, ActivityError, TestActivityEnvironment};
//!
//! /// Greets someone, politely.
//! #[activity(start_to_close = "10s", retry(maximum_attempts = 3))]
//! async fn greet(ctx: ActivityContext, name: String, times: u32) -> Result<String, ActivityError> {
//!     ctx.heartbeat(&times)?;
//!     Ok(format!("Hello, {name}!").repeat(times as usize))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let env = TestActivityEnvironment::new();
//! // The function stays a plain function...
//! assert_eq!(greet(env.context(), "Ada".into(), 1).await.unwrap(), "Hello, Ada!");
//! // ...and the stub checks arguments and result types at compile time.
//! let text: String = greet::call(&env, "Bob".into(), 2).await.unwrap();
//! assert_eq!(text, "Hello, Bob!Hello, Bob!");
//! assert_eq!(env.heartbeats::<u32>().unwrap(), [1, 2]);
//! # }
//! ```
//!
//! Modules: [`payload`] (serialization), [`options`] (docs/semantics.md §1.1 and §1.3),
//! [`failure`] (docs/semantics.md §4), [`context`], [`definition`] (marker types and shared
//! state), [`registry`], [`caller`] (typed stubs), [`testing`].

// Generated code names `::activity_core::…`; this makes those paths work here too.
#[allow(unused_extern_crates)]
extern crate self as activity_core;

pub mod caller;
pub mod clock;
pub mod codec;
pub mod context;
pub mod definition;
pub mod failure;
pub mod options;
#[cfg(feature = "otel")]
pub mod otel;
pub mod payload;
pub mod protocol;
pub mod registry;
pub mod testing;
pub mod workflow;

#[doc = include_str!("docs/activity.md")]
pub use activity_macros::activity;
#[doc = include_str!("docs/workflow.md")]
pub use activity_macros::workflow;
#[doc = include_str!("docs/activity_error.md")]
pub use activity_macros::ActivityError;
pub use caller::{ActivityCaller, ActivityRequest, ActivityStub};
pub use clock::Clock;
pub use context::{ActivityContext, ActivityInfo, CancelReason, HeartbeatError, TaskToken};
pub use definition::{ActivityDefinition, ActivityImplementation, BoxFuture, State, StateMap};
pub use failure::{
    ActivityCallError, ActivityError, ActivityFailure, ApplicationFailure, CanceledFailure,
    ErrorTypes, Failure, RetryState, TimeoutFailure, TimeoutKind,
};
pub use options::{ActivityOptions, CancellationType, OptionsError, RetryOptions, RetryPolicy};
pub use payload::{Payload, PayloadError};
pub use protocol::client::{ActivityHandle, AsyncCompletion, Client};
pub use protocol::{
    ActivityProtocol, ActivityTask, ActivityTypeInfo, ClosedReason, ExecutionDescription,
    ExecutionOutcome, ExecutionRef, ExecutionState, HeartbeatResponse, PollActivityTaskRequest,
    ProtocolError, ProtocolRequest, ProtocolResponse, RegisteredType, TaskQueueDescription,
    TaskTarget, TypeKind, WorkerRegistration,
};
pub use registry::{ActivityDescriptor, Registry, RegistryError};
pub use testing::TestActivityEnvironment;
pub use workflow::{
    WorkflowCallError, WorkflowContext, WorkflowDefinition, WorkflowError, WorkflowHandle,
    WorkflowImplementation,
};

/// What generated code uses. Not a public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::definition::{BoxFuture, StateType};
    pub use crate::failure::ErrorVariant;
    pub use crate::payload::ActivityInput;
    pub use crate::registry::{ActivityRegistration, SourceLocation};
    pub use crate::workflow::WorkflowRegistration;
    pub use ::core::time::Duration;
    pub use inventory;
    pub use std::{string::String, vec::Vec};

    use crate::{failure::ErrorTypes, ActivityError};

    /// The bound on every argument and result, checked where the type is written.
    pub fn assert_argument<T: crate::payload::ActivityArgument>() {}

    /// The bound on an activity's error type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned as an activity error",
        label = "no conversion into `ActivityError`",
        note = "add `#[derive(ActivityError)]` to `{Self}`, implement `From<{Self}> for activity_core::ActivityError`, or return `activity_core::ActivityError`"
    )]
    pub trait IntoActivityError {
        /// Converts the error.
        fn into_activity_error(self) -> ActivityError;
    }

    #[diagnostic::do_not_recommend]
    impl<E: Into<ActivityError>> IntoActivityError for E {
        fn into_activity_error(self) -> ActivityError {
            self.into()
        }
    }

    /// Converts an activity's error (what `?` would do).
    pub fn into_activity_error<E: IntoActivityError>(error: E) -> ActivityError {
        error.into_activity_error()
    }

    /// The bound on a workflow's error type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be returned as a workflow error",
        label = "no conversion into `WorkflowError`",
        note = "implement `From<{Self}> for activity_core::WorkflowError`, or return `activity_core::WorkflowError`"
    )]
    pub trait IntoWorkflowError {
        /// Converts the error.
        fn into_workflow_error(self) -> crate::WorkflowError;
    }

    #[diagnostic::do_not_recommend]
    impl<E: Into<crate::WorkflowError>> IntoWorkflowError for E {
        fn into_workflow_error(self) -> crate::WorkflowError {
            self.into()
        }
    }

    /// Converts a workflow's error (what `?` would do).
    pub fn into_workflow_error<E: IntoWorkflowError>(error: E) -> crate::WorkflowError {
        error.into_workflow_error()
    }

    /// The bound on a shared-state type.
    pub fn assert_state<T: Send + Sync + 'static>() {}

    /// The error type name of `E::variant`, as `#[derive(ActivityError)]` declared it.
    pub fn variant_error_type<E: ErrorTypes>(variant: &'static str) -> String {
        E::error_type_of(variant).unwrap_or(variant).to_owned()
    }
}

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The guide's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide.md")]
struct GuideDoctests;
