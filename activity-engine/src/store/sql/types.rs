//! The types workers registered, per kind, name and task queue.

use activity_core::protocol::TypeKind;

use super::{first, model, rows, Conn, Query, Reader, Value};
use crate::store::{StoreError, TypeRecord};

/// The columns [`read`] decodes, in order.
macro_rules! type_columns {
    () => {
        "kind, name, task_queue, arguments, input_schema, output_schema, identity, registered_at"
    };
}

fn read(row: Vec<Value>) -> Result<TypeRecord, StoreError> {
    let mut r = Reader::new("registered type", row);
    let kind = r.name("kind", TypeKind::parse)?;
    let name = r.text("name")?;
    let task_queue = r.text("task_queue")?;
    let mut r = r.keyed(format_args!("{kind} `{name}` on `{task_queue}`"));
    Ok(TypeRecord {
        kind,
        name,
        task_queue,
        arguments: r.model("arguments")?,
        input_schema: r.opt_text("input_schema")?,
        output_schema: r.opt_text("output_schema")?,
        identity: r.text("identity")?,
        registered_at: r.int("registered_at")?,
    })
}

const PUT: Query = Query::new(
    "INSERT INTO registered_types (kind, name, task_queue, arguments, input_schema,
        output_schema, identity, registered_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (kind, name, task_queue) DO UPDATE SET
        arguments = excluded.arguments, input_schema = excluded.input_schema,
        output_schema = excluded.output_schema, identity = excluded.identity,
        registered_at = excluded.registered_at",
);

pub(crate) fn put(conn: &mut dyn Conn, r: &TypeRecord) -> Result<(), StoreError> {
    let params = [
        r.kind.as_str().into(),
        r.name.as_str().into(),
        r.task_queue.as_str().into(),
        model(&r.arguments)?,
        r.input_schema.as_ref().into(),
        r.output_schema.as_ref().into(),
        r.identity.as_str().into(),
        r.registered_at.into(),
    ];
    conn.execute(&PUT, &params).map(drop)
}

const GET: Query = Query::new(concat!(
    "SELECT ",
    type_columns!(),
    " FROM registered_types WHERE kind = $1 AND name = $2 AND task_queue = $3"
));

pub(crate) fn get(
    conn: &mut dyn Conn,
    kind: TypeKind,
    name: &str,
    task_queue: &str,
) -> Result<Option<TypeRecord>, StoreError> {
    let params = [kind.as_str().into(), name.into(), task_queue.into()];
    first(conn, &GET, &params, read)
}

const ALL: Query = Query::new(concat!(
    "SELECT ",
    type_columns!(),
    " FROM registered_types ORDER BY kind, name, task_queue"
));

pub(crate) fn all(conn: &mut dyn Conn) -> Result<Vec<TypeRecord>, StoreError> {
    rows(conn, &ALL, &[], read)
}
