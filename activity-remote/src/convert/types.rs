//! Conversions of registered types: worker registrations and the type listing.
//! Schemas travel as JSON text.

use activity_core::protocol::{ActivityTypeInfo, RegisteredType, TypeKind, WorkerRegistration};
use serde_json::Value;

use super::{field, time_from_wire, time_to_wire, Wire, WireError};
use crate::proto as pb;

fn schema_from_wire(text: &str, name: &str) -> Wire<Value> {
    serde_json::from_str(text).map_err(|e| WireError::new(name, format!("is not JSON: {e}")))
}

fn kind_to_wire(kind: TypeKind) -> pb::TypeKind {
    match kind {
        TypeKind::Activity => pb::TypeKind::Activity,
        TypeKind::Workflow => pb::TypeKind::Workflow,
    }
}

fn kind_from_wire(value: i32, name: &str) -> Wire<TypeKind> {
    match pb::TypeKind::try_from(value) {
        Ok(pb::TypeKind::Activity) => Ok(TypeKind::Activity),
        Ok(pb::TypeKind::Workflow) => Ok(TypeKind::Workflow),
        Ok(pb::TypeKind::Unspecified) | Err(_) => Err(WireError::new(
            name,
            format!("is not a known type kind: {value}"),
        )),
    }
}

pub(crate) fn registration_to_wire(r: &WorkerRegistration) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        identity: r.identity.clone(),
        task_queues: r.task_queues.clone(),
        activities: r
            .activities
            .iter()
            .map(|a| pb::ActivityTypeInfo {
                name: a.name.clone(),
                arguments: a.arguments.clone(),
                input_schema_json: a.input_schema.to_string(),
                output_schema_json: a.output_schema.to_string(),
            })
            .collect(),
        workflows: r.workflows.clone(),
    }
}

pub(crate) fn registration_from_wire(r: pb::RegisterWorkerRequest) -> Wire<WorkerRegistration> {
    let activities = r
        .activities
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let prefix = format!("activities[{i}]");
            Ok(ActivityTypeInfo::new(
                a.name,
                a.arguments,
                schema_from_wire(&a.input_schema_json, &field(&prefix, "input_schema_json"))?,
                schema_from_wire(&a.output_schema_json, &field(&prefix, "output_schema_json"))?,
            ))
        })
        .collect::<Wire<Vec<_>>>()?;
    Ok(WorkerRegistration::new(r.identity, r.task_queues)
        .with_activities(activities)
        .with_workflows(r.workflows))
}

pub(crate) fn registered_type_to_wire(t: &RegisteredType) -> pb::RegisteredType {
    pb::RegisteredType {
        kind: kind_to_wire(t.kind) as i32,
        name: t.name.clone(),
        task_queue: t.task_queue.clone(),
        arguments: t.arguments.clone(),
        input_schema_json: t.input_schema.as_ref().map(Value::to_string),
        output_schema_json: t.output_schema.as_ref().map(Value::to_string),
        last_registered_time_ms: time_to_wire(t.last_registered_time),
        last_identity: t.last_identity.clone(),
    }
}

pub(crate) fn registered_types_from_wire(
    types: Vec<pb::RegisteredType>,
) -> Wire<Vec<RegisteredType>> {
    types
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let prefix = format!("types[{i}]");
            let mut model = RegisteredType::new(
                kind_from_wire(t.kind, &field(&prefix, "kind"))?,
                t.name,
                t.task_queue,
                time_from_wire(t.last_registered_time_ms),
                t.last_identity,
            );
            model.arguments = t.arguments;
            model.input_schema = t
                .input_schema_json
                .map(|s| schema_from_wire(&s, &field(&prefix, "input_schema_json")))
                .transpose()?;
            model.output_schema = t
                .output_schema_json
                .map(|s| schema_from_wire(&s, &field(&prefix, "output_schema_json")))
                .transpose()?;
            Ok(model)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use serde_json::json;

    use super::*;

    fn charge() -> ActivityTypeInfo {
        ActivityTypeInfo::new(
            "charge",
            vec!["card".into(), "cents".into()],
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
            json!({"type": "string"}),
        )
    }

    #[test]
    fn registrations_round_trip() {
        let registration = WorkerRegistration::new("w1", vec!["q1".into(), "q2".into()])
            .with_activities(vec![charge()])
            .with_workflows(vec!["order".into()]);
        let back = registration_from_wire(registration_to_wire(&registration)).unwrap();
        assert_eq!(back, registration);
    }

    #[test]
    fn a_schema_that_is_not_json_is_refused_naming_the_field() {
        let mut wire = registration_to_wire(
            &WorkerRegistration::new("w1", vec!["q".into()]).with_activities(vec![charge()]),
        );
        wire.activities[0].output_schema_json = "{not json".into();
        let err = registration_from_wire(wire)
            .unwrap_err()
            .into_request_error();
        assert!(
            err.to_string().contains("activities[0].output_schema_json"),
            "{err}"
        );
    }

    #[test]
    fn registered_types_round_trip() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let info = charge();
        let types = vec![
            RegisteredType::new(TypeKind::Activity, "charge", "q1", at, "w1").with_schemas(
                info.arguments,
                info.input_schema,
                info.output_schema,
            ),
            RegisteredType::new(TypeKind::Workflow, "order", "q1", at, "w2"),
        ];
        let wire: Vec<_> = types.iter().map(registered_type_to_wire).collect();
        assert_eq!(registered_types_from_wire(wire.clone()).unwrap(), types);
        let mut bad = wire;
        bad[1].kind = 0;
        let err = registered_types_from_wire(bad)
            .unwrap_err()
            .into_response_error("ListTypes");
        assert!(err.to_string().contains("types[1].kind"), "{err}");
    }
}
