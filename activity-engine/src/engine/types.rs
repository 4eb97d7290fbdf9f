//! Registered types: what workers say they serve, and the validation of inputs
//! and results against the JSON Schemas they registered.
//!
//! A registration is upserted per kind, type name and task queue
//! (`registered_types` rows). Scheduling a standalone activity whose type is
//! registered on its queue validates the input (one JSON value per argument, as
//! an array) against the type's input schema; completing an attempt of a
//! registered type validates the result against its output schema. Types that no
//! worker registered are not validated.
//!
//! Schemas are compiled once (at registration, which refuses a schema that does
//! not compile) and kept in [`Validators`], keyed by type name and a hash of the
//! schema text, so a validation costs one primary-key read of the registration
//! and the validation itself. Only local references (`#/$defs/…`) are resolved:
//! the validator is built without network or file resolution.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

use activity_core::{
    clock::from_millis,
    payload::Payload,
    protocol::{ProtocolError, RegisteredType, TypeKind, WorkerRegistration},
};
use serde_json::Value;

use crate::store::{ExecutionRecord, Tx, TypeRecord};

/// Most compiled schemas kept; the cache starts over when it is full.
const MAX_CACHED: usize = 4096;

/// A schema compiled for one type.
struct Compiled {
    schema: String,
    validator: jsonschema::Validator,
}

/// Compiled schemas, by type name and schema hash.
#[derive(Default)]
pub(crate) struct Validators {
    cache: Mutex<HashMap<(String, u64), Arc<Compiled>>>,
}

impl Validators {
    /// The validator of `schema` (JSON text) for type `name`, compiled once.
    fn get(&self, name: &str, schema: &str) -> Result<Arc<Compiled>, String> {
        let mut hasher = DefaultHasher::new();
        schema.hash(&mut hasher);
        let key = (name.to_owned(), hasher.finish());
        if let Some(found) = self.lock().get(&key) {
            if found.schema == schema {
                return Ok(found.clone());
            }
        }
        let value: Value =
            serde_json::from_str(schema).map_err(|e| format!("is not valid JSON: {e}"))?;
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
        let compiled = Arc::new(Compiled {
            schema: schema.to_owned(),
            validator,
        });
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Arc<Compiled>>> {
        // The cache stays valid if a holder panicked.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks a registration and compiles its schemas; answers the rows to upsert.
pub(crate) fn records(
    validators: &Validators,
    registration: &WorkerRegistration,
    now: i64,
) -> Result<Vec<TypeRecord>, ProtocolError> {
    let mut records = Vec::new();
    for queue in &registration.task_queues {
        for (i, activity) in registration.activities.iter().enumerate() {
            let mut schemas = Vec::with_capacity(2);
            for (what, schema) in [
                ("input_schema", &activity.input_schema),
                ("output_schema", &activity.output_schema),
            ] {
                let text = serde_json::to_string(schema).map_err(|e| {
                    ProtocolError::invalid_argument(
                        format!("activities[{i}].{what}"),
                        e.to_string(),
                    )
                })?;
                validators.get(&activity.name, &text).map_err(|message| {
                    ProtocolError::invalid_argument(format!("activities[{i}].{what}"), message)
                })?;
                schemas.push(text);
            }
            let output_schema = schemas.pop();
            let input_schema = schemas.pop();
            records.push(TypeRecord {
                kind: TypeKind::Activity,
                name: activity.name.clone(),
                task_queue: queue.clone(),
                arguments: activity.arguments.clone(),
                input_schema,
                output_schema,
                identity: registration.identity.clone(),
                registered_at: now,
            });
        }
        for workflow in &registration.workflows {
            records.push(TypeRecord {
                kind: TypeKind::Workflow,
                name: workflow.clone(),
                task_queue: queue.clone(),
                arguments: Vec::new(),
                input_schema: None,
                output_schema: None,
                identity: registration.identity.clone(),
                registered_at: now,
            });
        }
    }
    Ok(records)
}

/// Every registered type, as the protocol answers it.
pub(crate) fn list(tx: &mut dyn Tx) -> Result<Vec<RegisteredType>, ProtocolError> {
    tx.registered_types()?
        .into_iter()
        .map(|r| {
            let mut out = RegisteredType::new(
                r.kind,
                r.name,
                r.task_queue,
                from_millis(r.registered_at),
                r.identity,
            );
            if let (Some(input), Some(output)) = (&r.input_schema, &r.output_schema) {
                out = out.with_schemas(r.arguments, parse(input)?, parse(output)?);
            }
            Ok(out)
        })
        .collect()
}

fn parse(schema: &str) -> Result<Value, ProtocolError> {
    serde_json::from_str(schema).map_err(|e| ProtocolError::Internal {
        message: format!("a stored schema is not valid JSON: {e}"),
    })
}

/// Validates the input of a new execution against its type's input schema, if
/// the type is registered on the execution's task queue; with `checked` (done
/// before the transaction, [`Checked::input`]) against the same schema, takes
/// its outcome.
pub(crate) fn check_input(
    tx: &mut dyn Tx,
    validators: &Validators,
    exec: &ExecutionRecord,
    checked: Option<&Checked>,
) -> Result<(), ProtocolError> {
    let Some((record, schema)) = schema_of(tx, exec, |r| r.input_schema.as_ref())? else {
        return Ok(());
    };
    if let Some(checked) = checked.filter(|c| c.is_for(&record, &schema)) {
        return checked.outcome.clone();
    }
    validate_input(validators, &record, &schema, exec)
}

fn validate_input(
    validators: &Validators,
    record: &TypeRecord,
    schema: &str,
    exec: &ExecutionRecord,
) -> Result<(), ProtocolError> {
    let Some(values) = exec
        .input
        .iter()
        .map(|p| p.to_json_value().ok())
        .collect::<Option<Vec<Value>>>()
    else {
        // Payloads that are not JSON cannot be checked against a JSON Schema.
        return Ok(());
    };
    let compiled = compiled(validators, record, schema)?;
    let instance = Value::Array(values);
    let Some(error) = compiled.validator.iter_errors(&instance).next() else {
        return Ok(());
    };
    let path = error.instance_path().as_str().to_owned();
    let field = match path
        .split('/')
        .nth(1)
        .and_then(|index| index.parse::<usize>().ok())
    {
        Some(index) => match record.arguments.get(index) {
            Some(name) => format!("input[{index}] (`{name}`)"),
            None => format!("input[{index}]"),
        },
        None => "input".to_owned(),
    };
    Err(ProtocolError::invalid_argument(
        field,
        message(&error.to_string(), &path, &exec.activity_type, "input"),
    ))
}

/// Validates the result of an attempt against its type's output schema, if the
/// type is registered on the execution's task queue. With `checked` (a
/// validation done before the transaction, [`Checked::result`]) against the same
/// schema, its outcome is taken as is: the writer does not parse or validate
/// again.
pub(crate) fn check_result(
    tx: &mut dyn Tx,
    validators: &Validators,
    exec: &ExecutionRecord,
    result: &Payload,
    checked: Option<&Checked>,
) -> Result<(), ProtocolError> {
    let Some((record, schema)) = schema_of(tx, exec, |r| r.output_schema.as_ref())? else {
        return Ok(());
    };
    if let Some(checked) = checked.filter(|c| c.is_for(&record, &schema)) {
        return checked.outcome.clone();
    }
    validate_result(validators, &record, &schema, result)
}

fn validate_result(
    validators: &Validators,
    record: &TypeRecord,
    schema: &str,
    result: &Payload,
) -> Result<(), ProtocolError> {
    let Ok(instance) = result.to_json_value() else {
        // A result that is not JSON cannot be checked against a JSON Schema.
        return Ok(());
    };
    let compiled = compiled(validators, record, schema)?;
    let Some(error) = compiled.validator.iter_errors(&instance).next() else {
        return Ok(());
    };
    let path = error.instance_path().as_str().to_owned();
    Err(ProtocolError::invalid_argument(
        "result",
        message(&error.to_string(), &path, &record.name, "output"),
    ))
}

/// Payloads at least this large are validated before the transaction that
/// stores them ([`Checked`]); smaller ones inside it (one read less).
pub(crate) const CHECK_OUTSIDE_BYTES: usize = 64 * 1024;

/// The outcome of a schema validation done before the transaction, outside the
/// store's writer, so that a large payload does not hold up unrelated calls
/// (docs/semantics.md §3.2, "Fairness"). The transaction takes the outcome only
/// if the type's registered schema is still the one validated against;
/// otherwise it validates again.
pub(crate) struct Checked {
    name: String,
    task_queue: String,
    schema: String,
    outcome: Result<(), ProtocolError>,
}

impl Checked {
    /// Refuses at once an input or result that failed its validation: nothing
    /// is written (a schema registered in between would not make it pass
    /// retroactively: the call is answered against the schema it was checked
    /// with).
    pub(crate) fn outcome_now(&self) -> Result<(), ProtocolError> {
        self.outcome.clone()
    }

    fn is_for(&self, record: &TypeRecord, schema: &str) -> bool {
        self.name == record.name && self.task_queue == record.task_queue && self.schema == schema
    }

    /// Validates `result` against the output schema registered for the
    /// execution `record` (read by the caller), on a blocking thread. `None`
    /// when there is nothing to validate against.
    pub(crate) async fn result(
        validators: Arc<Validators>,
        record: Option<TypeRecord>,
        result: Payload,
    ) -> Option<Checked> {
        let record = record?;
        let schema = record.output_schema.clone()?;
        tokio::task::spawn_blocking(move || {
            let outcome = validate_result(&validators, &record, &schema, &result);
            Checked {
                name: record.name,
                task_queue: record.task_queue,
                schema,
                outcome,
            }
        })
        .await
        .ok()
    }

    /// Validates the input of the new execution `exec` against the input
    /// schema registered for its type (`record`, read by the caller), on a
    /// blocking thread. `None` when there is nothing to validate against.
    pub(crate) async fn input(
        validators: Arc<Validators>,
        record: Option<TypeRecord>,
        exec: ExecutionRecord,
    ) -> Option<(Checked, ExecutionRecord)> {
        let record = record?;
        let schema = record.input_schema.clone()?;
        tokio::task::spawn_blocking(move || {
            let outcome = validate_input(&validators, &record, &schema, &exec);
            let checked = Checked {
                name: record.name,
                task_queue: record.task_queue,
                schema,
                outcome,
            };
            (checked, exec)
        })
        .await
        .ok()
    }
}

/// The registration of `exec`'s type on its task queue, if any: what a
/// [`Checked`] validation needs, read before the transaction.
pub(crate) fn registration(
    tx: &mut dyn Tx,
    exec: &ExecutionRecord,
) -> Result<Option<TypeRecord>, ProtocolError> {
    Ok(tx.registered_type(TypeKind::Activity, &exec.activity_type, &exec.task_queue)?)
}

fn schema_of(
    tx: &mut dyn Tx,
    exec: &ExecutionRecord,
    pick: impl FnOnce(&TypeRecord) -> Option<&String>,
) -> Result<Option<(TypeRecord, String)>, ProtocolError> {
    let Some(record) =
        tx.registered_type(TypeKind::Activity, &exec.activity_type, &exec.task_queue)?
    else {
        return Ok(None);
    };
    Ok(pick(&record).cloned().map(|schema| (record, schema)))
}

fn compiled(
    validators: &Validators,
    record: &TypeRecord,
    schema: &str,
) -> Result<Arc<Compiled>, ProtocolError> {
    validators
        .get(&record.name, schema)
        .map_err(|message| ProtocolError::Internal {
            message: format!("the registered schema of `{}` {message}", record.name),
        })
}

/// The most bytes of a validation error quoted in a message: the error quotes
/// the offending value, which may be the whole payload.
const MAX_QUOTED: usize = 512;

fn message(error: &str, path: &str, activity_type: &str, which: &str) -> String {
    let at = if path.is_empty() { "/" } else { path };
    let error = if error.len() > MAX_QUOTED {
        // The value comes first, what it violates last: keep both ends.
        let mut head = MAX_QUOTED / 2;
        while !error.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = error.len() - MAX_QUOTED / 2;
        while !error.is_char_boundary(tail) {
            tail += 1;
        }
        format!(
            "{} …({} bytes left out)… {}",
            &error[..head],
            tail - head,
            &error[tail..]
        )
    } else {
        error.to_owned()
    };
    format!("{error} (at `{at}`; the {which} schema of activity `{activity_type}`)")
}
