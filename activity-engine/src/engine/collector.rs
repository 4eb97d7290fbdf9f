//! Collection of state nobody needs any more: pollers not seen for the poller
//! retention, and queue rows that keep nothing (no rate limit, no poller), so that
//! polls on ever new queue names do not grow the database for ever. Each pass
//! deletes in small transactions (at most [`BATCH`] rows of each kind), so it never
//! holds the writer long; every node of a shared store may run it.

use std::{sync::Weak, time::Duration};

use activity_core::{
    clock::{duration_millis, to_millis},
    protocol::ProtocolError,
};

use super::Inner;
use crate::store::{self, Tx};

/// The most rows of each kind one transaction deletes.
pub(super) const BATCH: usize = 1000;

/// How often a pass runs: a fifth of the poller retention (so a poller is gone
/// at most 1.2 retentions after its last poll), at least once a second.
fn period(retention: Duration) -> Duration {
    (retention / 5).max(Duration::from_secs(1))
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
        let retention = inner.config.poller_retention;
        let sleep = inner.clock.sleep(period(retention));
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
                tracing::warn!(error = %err, "collecting idle pollers and queues failed; trying again later");
            }
        }
    }
}

/// One pass: batches until one deletes less than a full batch.
pub(super) async fn collect(inner: &Inner) -> Result<u64, ProtocolError> {
    let mut total = 0;
    loop {
        let before = to_millis(inner.clock.now())
            .saturating_sub(duration_millis(inner.config.poller_retention));
        let deleted = store::run(&*inner.store, move |tx: &mut dyn Tx| {
            Ok::<_, ProtocolError>(tx.collect_idle_queues(before, BATCH)?)
        })
        .await?;
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}
