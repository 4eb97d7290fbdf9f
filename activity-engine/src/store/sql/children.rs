//! The links of child runs to their parents (docs/semantics.md §3.1): which
//! run started which, by which command, with which parent-close policy.

use activity_core::workflow::ParentClosePolicy;

use super::{first, rows, Conn, Query, Reader, Value};
use crate::store::{ChildLink, StoreError};

const INSERT: Query = Query::new(
    "INSERT INTO workflow_children (run_key, parent_workflow_id, parent_run_id, parent_seq,
        parent_close_policy)
     VALUES ($1, $2, $3, $4, $5)",
);

pub(crate) fn insert(conn: &mut dyn Conn, link: &ChildLink) -> Result<(), StoreError> {
    let params = [
        link.run_key.into(),
        link.parent_workflow_id.as_str().into(),
        link.parent_run_id.as_str().into(),
        link.parent_seq.into(),
        link.policy.as_str().into(),
    ];
    conn.execute(&INSERT, &params).map(drop)
}

/// The columns [`read`] decodes, in order.
macro_rules! link_columns {
    () => {
        "c.run_key, r.workflow_id, r.run_id, c.parent_workflow_id, c.parent_run_id, \
         c.parent_seq, c.parent_close_policy \
         FROM workflow_children c JOIN workflow_runs r ON r.key = c.run_key"
    };
}

fn read(row: Vec<Value>) -> Result<ChildLink, StoreError> {
    let mut r = Reader::new("child link", row);
    let run_key = r.int("run_key")?;
    let mut r = r.keyed(run_key);
    Ok(ChildLink {
        run_key,
        workflow_id: r.text("workflow_id")?,
        run_id: r.text("run_id")?,
        parent_workflow_id: r.text("parent_workflow_id")?,
        parent_run_id: r.text("parent_run_id")?,
        parent_seq: r.count("parent_seq")?,
        policy: r.name("parent_close_policy", ParentClosePolicy::parse)?,
    })
}

const OF_RUN: Query = Query::new(concat!("SELECT ", link_columns!(), " WHERE c.run_key = $1"));

pub(crate) fn of_run(conn: &mut dyn Conn, run_key: i64) -> Result<Option<ChildLink>, StoreError> {
    first(conn, &OF_RUN, &[run_key.into()], read)
}

const OPEN: Query = Query::new(concat!(
    "SELECT ",
    link_columns!(),
    " WHERE c.parent_run_id = $1 AND r.state = 'RUNNING'
        AND (CAST($2 AS BIGINT) IS NULL OR c.parent_seq = $2)
     ORDER BY c.parent_seq, c.run_key"
));

pub(crate) fn open(
    conn: &mut dyn Conn,
    parent_run_id: &str,
    seq: Option<u32>,
) -> Result<Vec<ChildLink>, StoreError> {
    rows(conn, &OPEN, &[parent_run_id.into(), seq.into()], read)
}
