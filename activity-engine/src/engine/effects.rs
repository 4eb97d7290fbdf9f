//! What a commit sets in motion once it is durable: work handed to the pollers it
//! was claimed for, waiters woken (on this node, and on the others of a shared
//! store), the timer loop re-armed; and the timer loop itself, which fires due
//! timer rows in transactions of their own (docs/semantics.md §5).

use std::{
    sync::{atomic::Ordering, Weak},
    time::SystemTime,
};

use activity_core::{
    clock::{duration_millis, from_millis, to_millis},
    definition::BoxFuture,
    protocol::ProtocolError,
};

use super::{
    metrics,
    notifiers::{Topic, Wake},
    orphans::{orphans, Orphan},
    rules::{self, Effects},
    workflows, Engine, Inner, MAX_TASKS_PER_POLL,
};
use crate::store::{self, Tx, Wakeup};

impl Inner {
    /// Returns the attempts whose poller was gone: the caller releases them
    /// (module `orphans`).
    #[must_use]
    pub(super) fn apply(&self, mut effects: Effects) -> Vec<Orphan> {
        metrics::record(std::mem::take(&mut effects.metrics));
        let mut orphaned = Vec::new();
        for (sender, tasks) in effects.handoffs {
            if let Err(tasks) = sender.send(tasks) {
                for task in &tasks {
                    tracing::debug!(activity_id = %task.info.activity_id, attempt = task.info.attempt, "the poller this attempt was started for went away; it goes back to its queue");
                }
                orphaned.extend(orphans(&self.dispatch.signer, &tasks));
            }
        }
        for (sender, task) in effects.workflow_handoffs {
            if let Err(task) = sender.send(task) {
                tracing::warn!(workflow_id = %task.workflow_id, run_id = %task.run_id, "the poller this workflow task was started for went away; it is retried after the workflow task timeout");
            }
        }
        for (queue, count) in &effects.queues {
            // One poller per new dispatchable attempt, not every poller of the
            // queue (a fan-out of one would make each of them run a claim). A
            // poller registers before it reads the store, and a `notify_one` it
            // receives is handed on if it stops waiting, so none is lost; a
            // poller with nothing to do re-reads the store at the end of its wait.
            (self.notifiers).notify(Topic::ActivityQueue, queue, Wake::Some(*count));
        }
        for key in &effects.closed {
            (self.notifiers).notify(Topic::ActivityOutcome, key, Wake::All);
        }
        for queue in &effects.workflow_queues {
            (self.notifiers).notify(Topic::WorkflowQueue, queue, Wake::All);
        }
        for run_id in &effects.runs_closed {
            self.dispatch.sticky.forget(run_id);
            (self.notifiers).notify(Topic::RunOutcome, run_id, Wake::All);
        }
        if let Some(due) = effects.earliest_timer {
            if due < self.armed_at.load(Ordering::SeqCst) {
                self.timer_wake.notify_one();
            }
        }
        orphaned
    }
}

/// What waiters on other nodes of a shared store may be waiting for.
pub(super) fn wakeups(effects: &Effects) -> Vec<Wakeup> {
    let queues = effects
        .queues
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(queue, count)| Wakeup::Queue(queue.clone(), *count));
    let closed = effects.closed.iter().cloned().map(Wakeup::Closed);
    let workflow_queues = effects
        .workflow_queues
        .iter()
        .cloned()
        .map(Wakeup::WorkflowQueue);
    let runs = effects.runs_closed.iter().cloned().map(Wakeup::RunClosed);
    queues
        .chain(closed)
        .chain(workflow_queues)
        .chain(runs)
        .chain(effects.earliest_timer.map(Wakeup::Timer))
        .collect()
}

/// Wakes this node's waiters for what other nodes committed.
pub(super) async fn other_nodes(
    engine: Weak<Inner>,
    mut received: tokio::sync::mpsc::UnboundedReceiver<Vec<Wakeup>>,
) {
    while let Some(list) = received.recv().await {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        for wakeup in list {
            inner.wake(wakeup);
        }
    }
}

impl Inner {
    pub(super) fn wake(&self, wakeup: Wakeup) {
        let notifiers = &self.notifiers;
        match wakeup {
            Wakeup::Queue(queue, count) => {
                let wake = Wake::Some(count.min(MAX_TASKS_PER_POLL));
                notifiers.notify(Topic::ActivityQueue, &queue, wake);
            }
            Wakeup::Closed(key) => notifiers.notify(Topic::ActivityOutcome, &key, Wake::All),
            Wakeup::WorkflowQueue(queue) => {
                notifiers.notify(Topic::WorkflowQueue, &queue, Wake::All)
            }
            Wakeup::RunClosed(run_id) => {
                self.dispatch.sticky.forget(&run_id);
                notifiers.notify(Topic::RunOutcome, &run_id, Wake::All);
            }
            Wakeup::Timer(due) => {
                if due < self.armed_at.load(Ordering::SeqCst) {
                    self.timer_wake.notify_one();
                }
            }
            _ => {
                notifiers.notify_everyone();
                self.timer_wake.notify_one();
            }
        }
    }

    /// The latest time a wait starting now may go without reading the store.
    pub(super) fn recheck(&self, wake: SystemTime) -> SystemTime {
        match self.config.store_recheck {
            Some(every) => wake.min(self.clock.now() + every),
            None => wake,
        }
    }
}

/// The timer loop holds the engine weakly: dropping every [`Engine`] clone ends it
/// (and so closes the store), even without [`Engine::close`].
pub(super) async fn timer_loop(engine: Weak<Inner>) {
    let Some(mut shutdown) = engine.upgrade().map(|inner| inner.shutdown.subscribe()) else {
        return;
    };
    loop {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if *shutdown.borrow() {
            return;
        }
        let now = to_millis(inner.clock.now());
        let limit = inner.config.timer_batch;
        // Until this pass has read the rows, any new timer must wake the loop
        // (`notify_one` keeps a permit if the loop is not waiting yet).
        inner.armed_at.store(i64::MAX, Ordering::SeqCst);
        let shared = inner.store.is_shared();
        let history = workflows::HistoryLimits::of(&inner.config);
        let fired = store::run(&*inner.store, move |tx: &mut dyn Tx| {
            let mut effects = Effects {
                history,
                ..Effects::default()
            };
            let fired = rules::fire_due_timers(tx, &mut effects, now, limit)?;
            if shared {
                tx.publish(wakeups(&effects));
            }
            Ok::<_, ProtocolError>((fired, effects))
        })
        .await;
        let mut sleep_until = match fired {
            Ok(((count, next), effects)) => {
                let orphaned = inner.apply(effects);
                Engine::from_inner(inner.clone()).release_orphans(orphaned);
                if count >= limit {
                    continue;
                }
                next
            }
            Err(err) => {
                tracing::warn!(error = %err, "firing timers failed; retrying in 1 s");
                Some(now.saturating_add(1000))
            }
        };
        if let Some(max) = inner.config.max_timer_sleep {
            let latest = now.saturating_add(duration_millis(max));
            sleep_until = Some(sleep_until.map_or(latest, |at| at.min(latest)));
        }
        inner
            .armed_at
            .store(sleep_until.unwrap_or(i64::MAX), Ordering::SeqCst);
        let wake = inner.timer_wake.clone();
        let sleep: BoxFuture<'static, ()> = match sleep_until {
            Some(at) => inner.clock.sleep_until(from_millis(at)),
            None => Box::pin(std::future::pending()),
        };
        drop(inner);
        tokio::select! {
            _ = wake.notified() => {}
            _ = sleep => {}
            _ = shutdown.wait_for(|closed| *closed) => return,
        }
    }
}
