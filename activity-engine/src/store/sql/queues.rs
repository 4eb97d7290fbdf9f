//! Task queues (settings and the global rate limit's bucket), pollers, and the
//! engine's metadata.

use super::{first, rows, Conn, Lock, Query, Reader, Value};
use crate::store::{QueueRecord, StoreError};

const META_GET: Query = Query::new("SELECT value FROM meta WHERE key = $1");

pub(crate) fn meta_get(conn: &mut dyn Conn, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let value = first(conn, &META_GET, &[key.into()], |row| {
        Reader::new("meta", row).keyed(key).opt_blob("value")
    })?;
    Ok(value.flatten())
}

const META_PUT: Query = Query::new(
    "INSERT INTO meta (key, value) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
);

pub(crate) fn meta_put(conn: &mut dyn Conn, key: &str, value: &[u8]) -> Result<(), StoreError> {
    conn.execute(&META_PUT, &[key.into(), value.into()])
        .map(drop)
}

const META_INSERT: Query =
    Query::new("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING");

pub(crate) fn meta_get_or_put(
    conn: &mut dyn Conn,
    key: &str,
    value: &[u8],
) -> Result<Vec<u8>, StoreError> {
    // A concurrent insert of the same key waits for the first to commit, then
    // does nothing; the read that follows sees the first one's value.
    conn.execute(&META_INSERT, &[key.into(), value.into()])?;
    meta_get(conn, key)?.ok_or_else(|| {
        StoreError::Backend(format!(
            "the metadata value `{key}` vanished after its insert"
        ))
    })
}

fn read(row: Vec<Value>) -> Result<QueueRecord, StoreError> {
    let mut r = Reader::new("task queue", row);
    let name = r.text("name")?;
    let mut r = r.keyed(format_args!("`{name}`"));
    Ok(QueueRecord {
        rate_limit: r.opt_real("rate_limit")?,
        bucket_tokens: r.real("bucket_tokens")?,
        bucket_at: r.int("bucket_at")?,
        name,
    })
}

const GET: Query = Query::new(
    "SELECT name, rate_limit, bucket_tokens, bucket_at FROM task_queues WHERE name = $1",
);
const GET_FOR_UPDATE: Query = Query::locking(
    "SELECT name, rate_limit, bucket_tokens, bucket_at FROM task_queues WHERE name = $1",
    Lock::ForUpdate,
);

pub(crate) fn get(conn: &mut dyn Conn, name: &str) -> Result<Option<QueueRecord>, StoreError> {
    let queue = first(conn, &GET, &[name.into()], read)?;
    // A rate-limited queue's bucket is read to be changed: its row is locked,
    // so that claims of all nodes share the one bucket. A queue without a
    // limit is not written by a claim, and not locked: claims on it do not
    // wait for each other.
    if conn.row_locks() && queue.as_ref().is_some_and(|q| q.rate_limit.is_some()) {
        return first(conn, &GET_FOR_UPDATE, &[name.into()], read);
    }
    Ok(queue)
}

const PUT: Query = Query::new(
    "INSERT INTO task_queues (name, rate_limit, bucket_tokens, bucket_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET rate_limit = excluded.rate_limit,
        bucket_tokens = excluded.bucket_tokens, bucket_at = excluded.bucket_at",
);

pub(crate) fn put(conn: &mut dyn Conn, q: &QueueRecord) -> Result<(), StoreError> {
    let params = [
        q.name.as_str().into(),
        q.rate_limit.into(),
        q.bucket_tokens.into(),
        q.bucket_at.into(),
    ];
    conn.execute(&PUT, &params).map(drop)
}

const TOUCH_POLLER: Query = Query::new(
    "INSERT INTO pollers (task_queue, identity, last_poll_at) VALUES ($1, $2, $3)
     ON CONFLICT (task_queue, identity) DO UPDATE SET last_poll_at = excluded.last_poll_at",
);

const POLLED_AT: Query =
    Query::new("SELECT last_poll_at FROM pollers WHERE task_queue = $1 AND identity = $2");

const LOCK_POLLER: Query = Query::locking(
    "SELECT last_poll_at FROM pollers WHERE task_queue = $1 AND identity = $2",
    Lock::SkipLocked,
);

const UPDATE_POLLER: Query =
    Query::new("UPDATE pollers SET last_poll_at = $3 WHERE task_queue = $1 AND identity = $2");

/// With concurrent transactions, a poller seen this recently is not written
/// again: every poll of one worker would otherwise wait for the commit of the
/// previous one holding the poller's row.
const POLLER_STALE_MS: i64 = 1000;

pub(crate) fn touch_poller(
    conn: &mut dyn Conn,
    task_queue: &str,
    identity: &str,
    now: i64,
) -> Result<(), StoreError> {
    let params = [task_queue.into(), identity.into(), now.into()];
    if conn.row_locks() {
        let read = |row| Reader::new("poller", row).int("last_poll_at");
        let seen = first(conn, &POLLED_AT, &params[..2], read)?;
        match seen {
            Some(at) if (0..POLLER_STALE_MS).contains(&now.saturating_sub(at)) => return Ok(()),
            Some(_) => {
                // A transaction holding the row is recording a poll of the
                // same poller right now: nothing to wait for (every poll
                // would otherwise wait for that transaction's commit).
                if first(conn, &LOCK_POLLER, &params[..2], read)?.is_none() {
                    return Ok(());
                }
                return conn.execute(&UPDATE_POLLER, &params).map(drop);
            }
            None => {}
        }
    }
    conn.execute(&TOUCH_POLLER, &params).map(drop)
}

const POLLERS: Query = Query::new(
    "SELECT identity, last_poll_at FROM pollers
     WHERE task_queue = $1 AND last_poll_at >= $2
     ORDER BY last_poll_at DESC, identity",
);

pub(crate) fn pollers(
    conn: &mut dyn Conn,
    task_queue: &str,
    since: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    rows(conn, &POLLERS, &[task_queue.into(), since.into()], |row| {
        let mut r = Reader::new("poller", row);
        Ok((r.text("identity")?, r.int("last_poll_at")?))
    })
}

const EXPIRE_POLLERS: Query = Query::new(
    "DELETE FROM pollers WHERE (task_queue, identity) IN
        (SELECT task_queue, identity FROM pollers WHERE last_poll_at < $1 LIMIT $2)",
);

const DROP_IDLE_QUEUES: Query = Query::new(
    "DELETE FROM task_queues WHERE name IN
        (SELECT name FROM task_queues q WHERE q.rate_limit IS NULL
            AND NOT EXISTS (SELECT 1 FROM pollers p WHERE p.task_queue = q.name)
         LIMIT $1)",
);

/// Deletes up to `limit` pollers last seen before `before`, then up to `limit`
/// queue rows that keep nothing: no rate limit (so no bucket) and no poller. A
/// queue's backlog lives in its executions and runs, not in its row, and a claim
/// writes the row again when it needs one. Returns the rows deleted.
pub(crate) fn collect_idle(
    conn: &mut dyn Conn,
    before: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let pollers = conn.execute(&EXPIRE_POLLERS, &[before.into(), limit.into()])?;
    let queues = conn.execute(&DROP_IDLE_QUEUES, &[limit.into()])?;
    Ok(pollers + queues)
}

const NAMES: Query = Query::new(
    "SELECT name FROM task_queues
     UNION SELECT task_queue FROM pollers
     UNION SELECT task_queue FROM registered_types
     UNION SELECT task_queue FROM workflow_runs WHERE task_state = 'SCHEDULED'
     ORDER BY 1 LIMIT $1",
);

pub(crate) fn names(conn: &mut dyn Conn, limit: usize) -> Result<Vec<String>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(conn, &NAMES, &[limit.into()], |row| {
        Reader::new("task queue name", row).text("name")
    })
}
