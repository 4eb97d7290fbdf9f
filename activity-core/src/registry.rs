//! The registry of activities: every `#[activity]` in the program registers itself
//! through `inventory`; a [`Registry`] is the checked set a worker serves.

use std::{collections::BTreeMap, fmt};

use schemars::{generate::SchemaSettings, SchemaGenerator};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    context::ActivityContext,
    definition::{ActivityImplementation, BoxFuture, StateMap, StateType},
    failure::{error_types, ActivityError},
    options::ActivityOptions,
    payload::{ActivityInput, Payload},
};

/// Where an activity is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceLocation {
    /// Source file.
    pub file: &'static str,
    /// Line of the function.
    pub line: u32,
    /// Module path.
    pub module_path: &'static str,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({})", self.file, self.line, self.module_path)
    }
}

type InvokeFn = fn(
    ActivityContext,
    &StateMap,
    &[Payload],
) -> BoxFuture<'static, Result<Payload, ActivityError>>;

/// One registered activity, type-erased. Submitted by `#[activity]`.
pub struct ActivityRegistration {
    name: &'static str,
    arguments: &'static [&'static str],
    location: SourceLocation,
    default_options: fn() -> ActivityOptions,
    required_state: fn() -> Vec<StateType>,
    input_schemas: fn(&mut SchemaGenerator) -> Vec<schemars::Schema>,
    output_schema: fn(&mut SchemaGenerator) -> schemars::Schema,
    invoke: InvokeFn,
}

inventory::collect!(ActivityRegistration);

impl fmt::Debug for ActivityRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityRegistration")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl ActivityRegistration {
    /// The registration of activity `A`, defined at `location`.
    pub const fn of<A: ActivityImplementation>(location: SourceLocation) -> Self {
        ActivityRegistration {
            name: A::NAME,
            arguments: A::ARGUMENTS,
            location,
            default_options: A::default_options,
            required_state: A::required_state,
            input_schemas: <A::Input as ActivityInput>::argument_schemas,
            output_schema: SchemaGenerator::subschema_for::<A::Output>,
            invoke: invoke_erased::<A>,
        }
    }

    /// The activity type name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it is defined.
    pub fn location(&self) -> SourceLocation {
        self.location
    }

    /// The shared-state types it needs.
    pub fn required_state(&self) -> Vec<StateType> {
        (self.required_state)()
    }

    /// Its declared default options.
    pub fn default_options(&self) -> ActivityOptions {
        (self.default_options)()
    }

    /// Runs the activity on serialized arguments; the result is serialized.
    ///
    /// Decoding errors are non-retryable failures naming the argument.
    pub fn invoke(
        &self,
        ctx: ActivityContext,
        state: &StateMap,
        input: &[Payload],
    ) -> BoxFuture<'static, Result<Payload, ActivityError>> {
        (self.invoke)(ctx, state, input)
    }

    /// Name, schemas and defaults, for tools.
    pub fn describe(&self) -> ActivityDescriptor {
        let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
        let arguments: Vec<Value> = (self.input_schemas)(&mut generator)
            .into_iter()
            .zip(self.arguments)
            .map(|(schema, name)| {
                let mut value = schema.to_value();
                if let Value::Object(map) = &mut value {
                    map.insert("title".into(), Value::String((*name).to_owned()));
                    value
                } else {
                    json!({ "title": name, "allOf": [value] })
                }
            })
            .collect();
        let count = arguments.len();
        let mut input_schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("{} input", self.name),
            "description": "The activity's arguments, one payload per argument, in order.",
            "type": "array",
            "prefixItems": arguments,
            "items": false,
            "minItems": count,
            "maxItems": count,
        });
        if count == 0 {
            // The 2020-12 meta-schema wants at least one item in `prefixItems`;
            // `items: false` and `maxItems: 0` already say "no arguments".
            if let Value::Object(map) = &mut input_schema {
                map.remove("prefixItems");
            }
        }
        let mut output_schema = (self.output_schema)(&mut generator).to_value();
        let defs = generator.take_definitions(true);
        if !defs.is_empty() {
            input_schema["$defs"] = Value::Object(defs.clone());
            if let Value::Object(map) = &mut output_schema {
                map.insert("$defs".into(), Value::Object(defs));
            }
        }
        ActivityDescriptor {
            name: self.name.to_owned(),
            arguments: self.arguments.iter().map(|a| (*a).to_owned()).collect(),
            input_schema,
            output_schema,
            default_options: self.default_options(),
            location: self.location,
        }
    }
}

fn invoke_erased<A: ActivityImplementation>(
    ctx: ActivityContext,
    state: &StateMap,
    input: &[Payload],
) -> BoxFuture<'static, Result<Payload, ActivityError>> {
    let started = A::Input::from_payloads(input, A::NAME, A::ARGUMENTS)
        .map_err(ActivityError::from)
        .and_then(|args| A::invoke(ctx, state, args));
    match started {
        Ok(future) => Box::pin(async move {
            let output = future.await?;
            Ok(Payload::json(&output)?)
        }),
        Err(err) => Box::pin(std::future::ready(Err(err))),
    }
}

/// What tools show of a registered activity.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ActivityDescriptor {
    /// The activity type name.
    pub name: String,
    /// Parameter names of the serialized arguments.
    pub arguments: Vec<String>,
    /// JSON Schema of the input: an array with one item per argument.
    pub input_schema: Value,
    /// JSON Schema of the result.
    pub output_schema: Value,
    /// Declared default options.
    pub default_options: ActivityOptions,
    /// Where it is defined.
    pub location: SourceLocation,
}

/// Every activity registered in this program, checked or not.
pub fn registered_activities() -> impl Iterator<Item = &'static ActivityRegistration> {
    inventory::iter::<ActivityRegistration>.into_iter()
}

/// One problem found while building a [`Registry`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryProblem {
    /// Two activities share a name.
    DuplicateName {
        /// The shared name.
        name: &'static str,
        /// One definition.
        first: SourceLocation,
        /// The other.
        second: SourceLocation,
    },
    /// An activity needs a shared-state value that was not provided.
    MissingState {
        /// The activity.
        activity: &'static str,
        /// The missing type.
        type_name: &'static str,
    },
    /// A name given to [`RegistryBuilder::only`] is not registered.
    UnknownActivity {
        /// The name.
        name: String,
    },
}

impl fmt::Display for RegistryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryProblem::DuplicateName { name, first, second } => write!(
                f,
                "two activities are named `{name}`: one at {first}, one at {second}; give one of them another name with #[activity(name = \"…\")]"
            ),
            RegistryProblem::MissingState { activity, type_name } => write!(
                f,
                "activity `{activity}` takes `State<{type_name}>`, but no `{type_name}` was provided: add it with `.state(…)`"
            ),
            RegistryProblem::UnknownActivity { name } => {
                write!(f, "no activity named `{name}` is registered")
            }
        }
    }
}

/// The activity set is not valid; lists every problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid activity registry:\n{}", self.problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RegistryError {
    /// The problems found.
    pub problems: Vec<RegistryProblem>,
}

/// Builds a checked [`Registry`]: by default every registered activity.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    only: Option<Vec<String>>,
    excluded: Vec<String>,
    state: StateMap,
}

impl RegistryBuilder {
    /// Serves only the named activities.
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only
            .get_or_insert_with(Vec::new)
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Does not serve the named activity.
    pub fn exclude(mut self, name: impl Into<String>) -> Self {
        self.excluded.push(name.into());
        self
    }

    /// Provides shared state of type `T` to activities that take `State<T>`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Provides shared state of type `T` that the caller keeps a handle to.
    pub fn shared_state<T: Send + Sync + 'static>(mut self, value: std::sync::Arc<T>) -> Self {
        self.state.insert_arc(value);
        self
    }

    /// Provides shared state from a map.
    pub fn states(mut self, states: StateMap) -> Self {
        self.state = states;
        self
    }

    /// Checks the set and builds the registry.
    pub fn build(self) -> Result<Registry, RegistryError> {
        self.build_from(registered_activities())
    }

    fn build_from(
        self,
        all: impl Iterator<Item = &'static ActivityRegistration>,
    ) -> Result<Registry, RegistryError> {
        let mut problems = Vec::new();
        let mut candidates: Vec<&'static ActivityRegistration> = all
            .filter(|r| !self.excluded.iter().any(|e| e == r.name))
            .filter(|r| match &self.only {
                Some(only) => only.iter().any(|o| o == r.name),
                None => true,
            })
            .collect();
        candidates.sort_by_key(|r| (r.name, r.location));
        if let Some(only) = &self.only {
            for name in only {
                if !candidates.iter().any(|r| r.name == name) {
                    problems.push(RegistryProblem::UnknownActivity { name: name.clone() });
                }
            }
        }
        let mut activities: BTreeMap<&'static str, &'static ActivityRegistration> = BTreeMap::new();
        for reg in candidates {
            if let Some(first) = activities.get(reg.name) {
                problems.push(RegistryProblem::DuplicateName {
                    name: reg.name,
                    first: first.location,
                    second: reg.location,
                });
                continue;
            }
            for ty in reg.required_state() {
                if !self.state.contains(&ty) {
                    problems.push(RegistryProblem::MissingState {
                        activity: reg.name,
                        type_name: ty.name,
                    });
                }
            }
            activities.insert(reg.name, reg);
        }
        if problems.is_empty() {
            Ok(Registry {
                activities,
                state: self.state,
            })
        } else {
            Err(RegistryError { problems })
        }
    }
}

/// A checked set of activities with their shared state: names are unique and every
/// required state is present.
#[derive(Debug, Clone)]
pub struct Registry {
    activities: BTreeMap<&'static str, &'static ActivityRegistration>,
    state: StateMap,
}

impl Registry {
    /// A builder over every registered activity.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Every registered activity, with no shared state (fails if one needs some).
    pub fn from_inventory() -> Result<Registry, RegistryError> {
        Self::builder().build()
    }

    /// The registration of `name`.
    pub fn get(&self, name: &str) -> Option<&'static ActivityRegistration> {
        self.activities.get(name).copied()
    }

    /// The served activity type names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.activities.keys().copied()
    }

    /// Number of activities served.
    pub fn len(&self) -> usize {
        self.activities.len()
    }

    /// Whether no activity is served.
    pub fn is_empty(&self) -> bool {
        self.activities.is_empty()
    }

    /// The shared state.
    pub fn state(&self) -> &StateMap {
        &self.state
    }

    /// Descriptions of every served activity, sorted by name.
    pub fn describe(&self) -> Vec<ActivityDescriptor> {
        self.activities.values().map(|r| r.describe()).collect()
    }

    /// Runs activity `name` on serialized arguments. An unknown name fails with
    /// a retryable `ActivityNotRegistered` failure listing the served types.
    pub fn invoke(
        &self,
        name: &str,
        ctx: ActivityContext,
        input: &[Payload],
    ) -> BoxFuture<'static, Result<Payload, ActivityError>> {
        match self.get(name) {
            Some(reg) => reg.invoke(ctx, &self.state, input),
            None => Box::pin(std::future::ready(Err(self.not_registered(name)))),
        }
    }

    /// The failure for an activity type this registry does not serve.
    pub fn not_registered(&self, name: &str) -> ActivityError {
        let known: Vec<&str> = self.names().collect();
        ActivityError::application(
            error_types::ACTIVITY_NOT_REGISTERED,
            format!(
                "activity type `{name}` is not registered on this worker; registered types: [{}]",
                known.join(", ")
            ),
        )
    }
}
