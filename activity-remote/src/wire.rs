//! The model (`activity_core`) on the wire ([`crate::proto`]), written once for
//! both sides: [`OnWire`] says how one model type is held by a proto field, and
//! the rpc table (`crate::rpcs`) builds every request and response message from
//! the operation's arguments and answer with it.
//!
//! Three kinds of types cross the wire:
//! - values with proto fields of their own: [`Payload`], [`ExecutionRef`],
//!   [`WorkflowRef`], [`TaskTarget`], task tokens, waits, names;
//! - *split* values (requests and tasks): their ids, names, tokens, waits and
//!   payloads are proto fields, and the rest of the value travels in `rest` as
//!   model bytes, so a field added to the model crosses the wire unchanged;
//! - every other model type (options, failures, outcomes, commands, history
//!   events, descriptions, …) as model bytes ([`activity_core::codec`]).
//!
//! Decoding never panics: a missing field, a negative wait or model bytes that do
//! not decode is a [`WireError`] naming the field, which the service answers as
//! `InvalidArgument` and the client reports as `Internal` (the server sent
//! something it should not have).

use std::time::Duration;

use activity_core::{
    codec,
    context::TaskToken,
    failure::ApplicationFailure,
    payload::{Encoding, Payload},
    protocol::{
        ActivityTask, ExecutionDescription, ExecutionOutcome, ExecutionRef, ExecutionState,
        HeartbeatResponse, ListExecutionsRequest, PollActivityTaskRequest, ProtocolError,
        RegisteredType, ScheduleActivityRequest, ScheduleActivityResponse, TaskQueueDescription,
        TaskTarget, WorkerRegistration,
    },
    workflow::history::{
        Command, HistoryEvent, ListWorkflowsRequest, PollWorkflowTaskRequest, QueryAnswer,
        QueryTask, StartWorkflowRequest, WorkflowDescription, WorkflowOutcome, WorkflowRef,
        WorkflowState, WorkflowSummary, WorkflowTask,
    },
};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::proto as pb;

/// A wire message that cannot be turned into the model: `field` breaks `message`.
#[derive(Debug)]
pub(crate) struct WireError {
    field: String,
    message: String,
}

impl WireError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error of a malformed request (server side).
    pub(crate) fn into_request_error(self) -> ProtocolError {
        ProtocolError::invalid_argument(self.field, self.message)
    }

    /// The error of a malformed answer (client side): the server broke the wire contract.
    pub(crate) fn into_response_error(self, rpc: &str) -> ProtocolError {
        ProtocolError::Internal {
            message: format!(
                "malformed answer to `{rpc}`: `{}` {} (client and server versions differ?)",
                self.field, self.message
            ),
        }
    }
}

/// A decoded wire value, or the field that is wrong.
pub(crate) type Wire<T> = Result<T, WireError>;

/// `prefix.name`, or `name` at the top of a message.
pub(crate) fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The model bytes of `value` (sending side: a failure is the sender's bug).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, ProtocolError> {
    codec::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ProtocolError::Internal {
            message: format!("cannot put a value on the wire: {e}"),
        })
}

/// Decodes model bytes held by field `name`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], name: &str) -> Wire<T> {
    codec::from_slice(bytes)
        .map_err(|e| WireError::new(name, format!("holds no valid model bytes ({e})")))
}

/// How one model type is held by a proto field.
pub(crate) trait OnWire: Sized {
    /// One value on the wire: a message, bytes or a scalar (also the element of
    /// a `repeated` field).
    type Proto;
    /// A singular field holding one: `Option<Proto>` when `Proto` is a message
    /// (prost's form of a message field), `Proto` otherwise.
    type Field;

    fn into_proto(self) -> Result<Self::Proto, ProtocolError>;
    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self>;
    fn into_field(self) -> Result<Self::Field, ProtocolError>;
    fn from_field(field: Self::Field, name: &str) -> Wire<Self>;
}

/// A model type whose proto form is a message: its field is optional in prost,
/// and required here.
macro_rules! message_field {
    () => {
        type Field = Option<Self::Proto>;

        fn into_field(self) -> Result<Self::Field, ProtocolError> {
            self.into_proto().map(Some)
        }

        fn from_field(field: Self::Field, name: &str) -> Wire<Self> {
            match field {
                Some(proto) => Self::from_proto(proto, name),
                None => Err(WireError::new(name, "must be set")),
            }
        }
    };
}

/// A model type whose proto form is a scalar or bytes: the field holds it.
macro_rules! plain_field {
    () => {
        type Field = Self::Proto;

        fn into_field(self) -> Result<Self::Field, ProtocolError> {
            self.into_proto()
        }

        fn from_field(field: Self::Field, name: &str) -> Wire<Self> {
            Self::from_proto(field, name)
        }
    };
}

impl<T: OnWire> OnWire for Option<T> {
    type Proto = Option<T::Proto>;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        self.map(T::into_proto).transpose()
    }

    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
        proto.map(|p| T::from_proto(p, name)).transpose()
    }
}

impl<T: OnWire> OnWire for Vec<T> {
    type Proto = Vec<T::Proto>;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        self.into_iter().map(T::into_proto).collect()
    }

    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
        proto
            .into_iter()
            .enumerate()
            .map(|(i, p)| T::from_proto(p, &format!("{name}[{i}]")))
            .collect()
    }
}

impl OnWire for String {
    type Proto = String;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        Ok(self)
    }

    fn from_proto(proto: Self::Proto, _name: &str) -> Wire<Self> {
        Ok(proto)
    }
}

/// Event ids and byte counts.
impl OnWire for u64 {
    type Proto = u64;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        Ok(self)
    }

    fn from_proto(proto: Self::Proto, _name: &str) -> Wire<Self> {
        Ok(proto)
    }
}

/// `max_tasks`: a count, bounded by the engine anyway.
impl OnWire for usize {
    type Proto = u32;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        Ok(u32::try_from(self).unwrap_or(u32::MAX))
    }

    fn from_proto(proto: Self::Proto, _name: &str) -> Wire<Self> {
        Ok(usize::try_from(proto).unwrap_or(usize::MAX))
    }
}

impl OnWire for TaskToken {
    type Proto = Bytes;
    plain_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        Ok(Bytes::copy_from_slice(self.as_bytes()))
    }

    fn from_proto(proto: Self::Proto, _name: &str) -> Wire<Self> {
        Ok(TaskToken::from_bytes(proto.to_vec()))
    }
}

/// Waits: a `google.protobuf.Duration`, never negative.
impl OnWire for Duration {
    type Proto = prost_types::Duration;
    message_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        prost_types::Duration::try_from(self).map_err(|e| ProtocolError::Internal {
            message: format!("cannot put the duration {self:?} on the wire: {e}"),
        })
    }

    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
        Duration::try_from(proto).map_err(|e| {
            WireError::new(
                name,
                format!("must be a non-negative duration, got {proto:?} ({e})"),
            )
        })
    }
}

impl OnWire for Payload {
    type Proto = pb::Payload;
    message_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        Ok(pb::Payload {
            encoding: self.encoding.as_str().to_owned(),
            data: self.data,
        })
    }

    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
        let Some(encoding) = Encoding::parse(&proto.encoding) else {
            let known: Vec<_> = Encoding::ALL.iter().map(|e| format!("`{e}`")).collect();
            return Err(WireError::new(
                field(name, "encoding"),
                format!(
                    "unknown payload encoding `{}` (known: {})",
                    proto.encoding,
                    known.join(", ")
                ),
            ));
        };
        Ok(Payload {
            encoding,
            data: proto.data,
        })
    }
}

impl OnWire for TaskTarget {
    type Proto = pb::TaskTarget;
    message_field!();

    fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
        use pb::task_target::Target;
        let target = match self {
            TaskTarget::Token(token) => Target::TaskToken(token.into_proto()?),
            TaskTarget::Execution(execution) => Target::Execution(execution.into_proto()?),
        };
        Ok(pb::TaskTarget {
            target: Some(target),
        })
    }

    fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
        use pb::task_target::Target;
        match proto.target {
            Some(Target::TaskToken(token)) => Ok(TaskTarget::Token(TaskToken::from_proto(
                token,
                &field(name, "task_token"),
            )?)),
            Some(Target::Execution(execution)) => Ok(TaskTarget::Execution(
                ExecutionRef::from_proto(execution, &field(name, "execution"))?,
            )),
            None => Err(WireError::new(
                name,
                "must hold a task token or an execution",
            )),
        }
    }
}

/// An empty value of a field a split value carries as a proto field (what is
/// left in its place in `rest`).
trait Vacant {
    fn vacant() -> Self;
}

impl Vacant for String {
    fn vacant() -> Self {
        String::new()
    }
}

impl<T> Vacant for Vec<T> {
    fn vacant() -> Self {
        Vec::new()
    }
}

impl<T> Vacant for Option<T> {
    fn vacant() -> Self {
        None
    }
}

impl Vacant for Duration {
    fn vacant() -> Self {
        Duration::ZERO
    }
}

impl Vacant for TaskToken {
    fn vacant() -> Self {
        TaskToken::from_bytes(Vec::new())
    }
}

impl Vacant for ExecutionRef {
    fn vacant() -> Self {
        ExecutionRef::standalone("")
    }
}

/// Values whose proto message has one field per model field (ids only): written
/// out, with the list of fields a test checks against the model's own, so that
/// a field added to the model cannot be dropped on the wire unnoticed.
macro_rules! whole {
    ($($model:ident => $proto:ident, $empty:expr, { $($f:ident),* $(,)? };)*) => {
        $(
            impl OnWire for $model {
                type Proto = pb::$proto;
                message_field!();

                fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
                    Ok(pb::$proto { $($f: OnWire::into_field(self.$f)?,)* })
                }

                fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
                    let pb::$proto { $($f),* } = proto;
                    let mut value: $model = $empty;
                    $(value.$f = OnWire::from_field($f, &field(name, stringify!($f)))?;)*
                    Ok(value)
                }
            }
        )*

        /// The model fields each written-out value carries, by type name.
        #[cfg(test)]
        pub(crate) const WHOLE_FIELDS: &[(&str, &[&str])] =
            &[$((stringify!($model), &[$(stringify!($f)),*])),*];
    };
}

whole! {
    ExecutionRef => ExecutionRef, ExecutionRef::standalone(""),
        { activity_id, workflow_id, workflow_run_id };
    WorkflowRef => WorkflowRef, WorkflowRef::latest(""), { workflow_id, run_id };
}

/// Split values: the listed fields are proto fields, and `rest` holds the model
/// bytes of the value with those fields left empty (so it carries every other
/// field, including fields added later).
macro_rules! split {
    ($($model:ident => $proto:ident { $($f:ident),* $(,)? };)*) => {
        $(
            impl OnWire for $model {
                type Proto = pb::$proto;
                message_field!();

                fn into_proto(mut self) -> Result<Self::Proto, ProtocolError> {
                    $(let $f = OnWire::into_field(std::mem::replace(&mut self.$f, Vacant::vacant()))?;)*
                    Ok(pb::$proto { $($f,)* rest: encode(&self)? })
                }

                fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
                    let pb::$proto { $($f,)* rest } = proto;
                    $(let $f = OnWire::from_field($f, &field(name, stringify!($f)))?;)*
                    let mut value: $model = decode(&rest, &field(name, "rest"))?;
                    $(value.$f = $f;)*
                    Ok(value)
                }
            }
        )*
    };
}

split! {
    ScheduleActivityRequest => ScheduleActivityRequest { activity_id, activity_type, input, trace_context };
    ScheduleActivityResponse => ScheduleActivityResponse { execution };
    PollActivityTaskRequest => PollActivityTaskRequest { task_queue, identity, wait };
    ActivityTask => ActivityTask { task_token, input, last_heartbeat_details, trace_context };
    StartWorkflowRequest => StartWorkflowRequest { workflow_id, workflow_type, task_queue, input, trace_context };
    PollWorkflowTaskRequest => PollWorkflowTaskRequest { task_queue, identity, wait };
    WorkflowTask => WorkflowTask { task_token, workflow_id, run_id, workflow_type, history, trace_context };
}

/// Model types carried as model bytes (a `bytes` field, or `repeated bytes`).
macro_rules! model_bytes {
    ($($model:ty),* $(,)?) => {
        $(
            impl OnWire for $model {
                type Proto = Bytes;
                plain_field!();

                fn into_proto(self) -> Result<Self::Proto, ProtocolError> {
                    encode(&self)
                }

                fn from_proto(proto: Self::Proto, name: &str) -> Wire<Self> {
                    decode(&proto, name)
                }
            }
        )*
    };
}

model_bytes! {
    ApplicationFailure,
    Command,
    ExecutionDescription,
    ExecutionOutcome,
    ExecutionState,
    HeartbeatResponse,
    HistoryEvent,
    ListExecutionsRequest,
    ListWorkflowsRequest,
    ProtocolError,
    QueryAnswer,
    QueryTask,
    RegisteredType,
    TaskQueueDescription,
    WorkerRegistration,
    WorkflowDescription,
    WorkflowOutcome,
    WorkflowState,
    WorkflowSummary,
}

#[cfg(test)]
mod tests;
