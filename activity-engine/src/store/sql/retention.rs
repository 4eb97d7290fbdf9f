//! The retention: what closed longer ago than it is deleted, in batches
//! (docs/semantics.md §3.2). Rows another node holds are left for its next
//! pass (`SKIP LOCKED`).

use super::{rows, Conn, Lock, Query, Reader};
use crate::store::StoreError;

// Closed runs past the retention whose activities are all final, oldest
// close first.
const EXPIRED_RUNS: Query = Query::locking(
    "SELECT r.key, r.run_id FROM workflow_runs r
     WHERE r.closed_at IS NOT NULL AND r.closed_at < $1 AND r.state <> 'RUNNING'
        AND NOT EXISTS (SELECT 1 FROM executions e
                        WHERE e.scope = r.run_id AND e.closed_at IS NULL)
     ORDER BY r.closed_at, r.key LIMIT $2",
    Lock::SkipLocked,
);
/// What goes with a run, by its key.
const BY_RUN_KEY: [Query; 4] = [
    Query::new("DELETE FROM workflow_children WHERE run_key = $1"),
    Query::new("DELETE FROM workflow_history WHERE run_key = $1"),
    Query::new("DELETE FROM workflow_buffered_events WHERE run_key = $1"),
    Query::new("DELETE FROM workflow_timers WHERE run_key = $1"),
];
/// What goes with a run, by its run id (its activity executions).
const BY_RUN_ID: [Query; 2] = [
    Query::new(
        "DELETE FROM timers WHERE execution_key IN (SELECT key FROM executions WHERE scope = $1)",
    ),
    Query::new("DELETE FROM executions WHERE scope = $1"),
];
const DELETE_RUN: Query = Query::new("DELETE FROM workflow_runs WHERE key = $1");

// Final standalone executions past the retention, oldest close first (a
// workflow's executions go with their run).
const EXPIRED_EXECUTIONS: Query = Query::locking(
    "SELECT key FROM executions
     WHERE scope = '' AND closed_at IS NOT NULL AND closed_at < $1
     ORDER BY closed_at, key LIMIT $2",
    Lock::SkipLocked,
);
/// What goes with a standalone execution, by its key.
const BY_EXECUTION_KEY: [Query; 2] = [
    Query::new("DELETE FROM timers WHERE execution_key = $1"),
    Query::new("DELETE FROM executions WHERE key = $1"),
];

/// Deletes closed runs that closed before `before` (and whose activities are
/// all final), with their histories, buffered events, timers and activity
/// executions, oldest close first, until about `limit` rows went (a run goes
/// whole, so one large history may pass it); then up to `limit` standalone
/// executions that became final before `before`, with their timers. Returns
/// the rows deleted.
pub(crate) fn delete_closed(
    conn: &mut dyn Conn,
    before: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let params = [before.into(), (limit as u64).into()];
    let runs = rows(conn, &EXPIRED_RUNS, &params, |row| {
        let mut r = Reader::new("workflow run", row);
        Ok((r.int("key")?, r.text("run_id")?))
    })?;
    let mut deleted = 0;
    for (key, run_id) in runs {
        if deleted >= limit as u64 {
            break;
        }
        for query in &BY_RUN_KEY {
            deleted += conn.execute(query, &[key.into()])?;
        }
        for query in &BY_RUN_ID {
            deleted += conn.execute(query, &[run_id.as_str().into()])?;
        }
        deleted += conn.execute(&DELETE_RUN, &[key.into()])?;
    }
    let executions = rows(conn, &EXPIRED_EXECUTIONS, &params, |row| {
        Reader::new("execution", row).int("key")
    })?;
    for key in executions {
        for query in &BY_EXECUTION_KEY {
            deleted += conn.execute(query, &[key.into()])?;
        }
    }
    Ok(deleted)
}
