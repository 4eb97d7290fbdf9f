//! Activity definitions: the marker types `#[activity]` generates, and shared state.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    ops::Deref,
    pin::Pin,
    sync::Arc,
};

use crate::{
    context::ActivityContext,
    failure::{error_types, ActivityError},
    options::ActivityOptions,
    payload::{ActivityArgument, ActivityInput},
};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The typed definition of an activity: its name, argument and result types, and
/// declared default options. `#[activity]` implements it on a marker type named
/// after the function.
pub trait ActivityDefinition: Send + Sync + 'static {
    /// The activity type name: stable, used on the wire and in storage.
    const NAME: &'static str;
    /// The parameter names of the serialized arguments, in order.
    const ARGUMENTS: &'static [&'static str];
    /// The arguments as a tuple, one payload per argument.
    type Input: ActivityInput;
    /// The result.
    type Output: ActivityArgument;

    /// Options declared on the definition (`#[activity(start_to_close = "30s", …)]`).
    fn default_options() -> ActivityOptions;
}

/// An activity definition that this process can run.
pub trait ActivityImplementation: ActivityDefinition {
    /// The shared-state types the function takes (`State<T>` parameters).
    fn required_state() -> Vec<StateType>;

    /// Starts the function on decoded arguments. Fails at once if a required
    /// shared-state value is missing from `state`.
    fn invoke(
        ctx: ActivityContext,
        state: &StateMap,
        input: Self::Input,
    ) -> Result<BoxFuture<'static, Result<Self::Output, ActivityError>>, ActivityError>;
}

/// Shared state given to an activity: `State<Db>` as a parameter receives the
/// `Db` value that the worker (or test environment) was given.
///
/// Chosen over methods on a state object because activities stay free functions
/// with one kind of stub, one activity can take several independent states, and
/// a missing state is reported when the worker starts, naming the activity and type.
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

impl<T> State<T> {
    /// Wraps a value (for calling an activity function directly in a test).
    pub fn new(value: T) -> Self {
        State(Arc::new(value))
    }
}

/// A shared-state type an activity needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateType {
    /// The type's id.
    pub id: TypeId,
    /// The type's name, for errors.
    pub name: &'static str,
}

impl StateType {
    /// The state type `T`.
    pub fn of<T: ?Sized + 'static>() -> Self {
        StateType {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

/// Shared-state values, one per type.
#[derive(Clone, Default)]
pub struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("len", &self.values.len())
            .finish()
    }
}

impl StateMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    /// Adds (or replaces) an already shared value of type `T`.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    /// Whether a value of the given type is present.
    pub fn contains(&self, ty: &StateType) -> bool {
        self.values.contains_key(&ty.id)
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
            .map(State)
    }

    /// The value of type `T` that `activity` needs, or an error naming both.
    pub fn require<T: Send + Sync + 'static>(
        &self,
        activity: &str,
    ) -> Result<State<T>, ActivityError> {
        self.get::<T>().ok_or_else(|| {
            ActivityError::non_retryable(
                error_types::MISSING_STATE,
                format!(
                    "activity `{activity}` takes `State<{}>`, but no such value was provided: add it with `.state(…)` on the worker or test environment",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}
