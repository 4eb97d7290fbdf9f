//! Collection of state nobody needs any more: pollers not seen for the poller
//! retention, and queue rows that keep nothing (no rate limit, no poller), so that
//! polls on ever new queue names do not grow the database for ever; and what
//! closed longer ago than the retention (closed runs with their histories and
//! activity executions, final standalone executions), so that a steady workload
//! keeps a database of steady size (docs/semantics.md §3.2). Each pass deletes in
//! small transactions (about [`BATCH`] rows of each kind), so it never holds the
//! writer long; every node of a shared store may run it.

use std::{sync::Weak, time::Duration};

use activity_core::{
    clock::{duration_millis, to_millis},
    protocol::ProtocolError,
};

use super::Inner;
use crate::store::{self, Tx};

/// The most rows of each kind one transaction deletes.
pub(super) const BATCH: usize = 1000;

/// How often a pass runs: a fifth of the shorter retention (so a poller is
/// gone at most 1.2 poller retentions after its last poll, and a closed run at
/// most 1.2 retentions after it closed), at least once a second.
fn period(poller_retention: Duration, retention: Duration) -> Duration {
    (poller_retention.min(retention) / 5).max(Duration::from_secs(1))
}

/// Runs a pass every [`period`] until the engine closes or is dropped.
pub(super) async fn collector_loop(engine: Weak<Inner>) {
    let Some(mut shutdown) = engine.upgrade().map(|inner| inner.shutdown.subscribe()) else {
        return;
    };
    loop {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let config = &inner.config;
        let sleep = inner
            .clock
            .sleep(period(config.poller_retention, config.retention));
        drop(inner);
        tokio::select! {
            _ = sleep => {}
            _ = shutdown.wait_for(|closed| *closed) => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if let Err(err) = collect(&inner).await {
            if !*shutdown.borrow() {
                tracing::warn!(error = %err, "collecting idle pollers and queues, or closed runs and executions, failed; trying again later");
            }
        }
    }
}

/// One pass: idle queues, then closed runs and executions, each in batches
/// until one deletes less than a full batch. Returns the rows deleted.
pub(super) async fn collect(inner: &Inner) -> Result<u64, ProtocolError> {
    let idle = in_batches(inner, inner.config.poller_retention, |tx, before| {
        tx.collect_idle_queues(before, BATCH)
    })
    .await?;
    let closed = in_batches(inner, inner.config.retention, |tx, before| {
        tx.delete_closed(before, BATCH)
    })
    .await?;
    if closed > 0 {
        tracing::debug!(
            rows = closed,
            "closed runs and executions past the retention deleted"
        );
    }
    Ok(idle + closed)
}

/// Runs `delete` (what is older than `retention`) in one transaction after
/// another, until one deletes less than a full batch; a shutdown in between
/// stops it. Returns the rows deleted.
async fn in_batches(
    inner: &Inner,
    retention: Duration,
    delete: fn(&mut dyn Tx, i64) -> Result<u64, store::StoreError>,
) -> Result<u64, ProtocolError> {
    let mut total = 0;
    loop {
        if *inner.shutdown.borrow() {
            return Ok(total);
        }
        let before = to_millis(inner.clock.now()).saturating_sub(duration_millis(retention));
        let deleted = store::run(&*inner.store, move |tx: &mut dyn Tx| {
            Ok::<_, ProtocolError>(delete(tx, before)?)
        })
        .await?;
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}
