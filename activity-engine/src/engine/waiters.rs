//! Pollers waiting on a task queue, so that the transaction that makes work
//! dispatchable can also start it for one of them (eager dispatch): one commit
//! instead of two, and no wake-up round trip.
//!
//! A waiter is taken out of the list inside the transaction; the work claimed for
//! it is sent only once the transaction is committed (see `Effects::handoffs`). A
//! poller that stops waiting removes itself; if a transaction took it first, the
//! poller waits for that transaction's answer instead of answering empty. Nothing
//! here is state of record: losing it (a restart) only means pollers poll again.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock,
    },
};

use tokio::sync::oneshot;

use super::lock;

/// The pollers waiting on each task queue, longest waiting first.
pub(crate) struct Waiters<T> {
    queues: Mutex<HashMap<String, VecDeque<Waiter<T>>>>,
    next_id: AtomicU64,
    /// Where work goes that was sent to a poller which stopped waiting before it
    /// took it (its caller gave up right after the commit).
    unreceived: OnceLock<Box<dyn Fn(T) + Send + Sync>>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Self {
            queues: Mutex::default(),
            next_id: AtomicU64::new(0),
            unreceived: OnceLock::new(),
        }
    }
}

/// One waiting poller: who it is, how much it takes, where its answer goes.
pub(crate) struct Waiter<T> {
    id: u64,
    pub(crate) identity: String,
    pub(crate) max: usize,
    pub(crate) sender: oneshot::Sender<T>,
}

impl<T> std::fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("id", &self.id)
            .field("identity", &self.identity)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<T> Waiters<T> {
    /// Sets what becomes of work sent to a poller that stopped waiting before it
    /// took it (without this, such work is dropped).
    pub(crate) fn on_unreceived(&self, unreceived: impl Fn(T) + Send + Sync + 'static) {
        let _ = self.unreceived.set(Box::new(unreceived));
    }

    /// Adds a poller at the back of `queue`'s line.
    pub(crate) fn register(&self, queue: &str, identity: &str, max: usize) -> Registration<'_, T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        lock(&self.queues)
            .entry(queue.to_owned())
            .or_default()
            .push_back(Waiter {
                id,
                identity: identity.to_owned(),
                max,
                sender,
            });
        Registration {
            waiters: self,
            queue: queue.to_owned(),
            id,
            receiver: Some(receiver),
        }
    }

    /// Takes the longest-waiting poller of `queue` that is still there.
    pub(crate) fn take(&self, queue: &str) -> Option<Waiter<T>> {
        let mut queues = lock(&self.queues);
        let line = queues.get_mut(queue)?;
        while let Some(waiter) = line.pop_front() {
            if !waiter.sender.is_closed() {
                return Some(waiter);
            }
        }
        None
    }

    /// Puts back a poller taken for nothing, at the front of its line.
    pub(crate) fn put_back(&self, queue: &str, waiter: Waiter<T>) {
        lock(&self.queues)
            .entry(queue.to_owned())
            .or_default()
            .push_front(waiter);
    }

    /// Removes the poller `id`; false if a transaction took it first.
    fn remove(&self, queue: &str, id: u64) -> bool {
        let mut queues = lock(&self.queues);
        let Some(line) = queues.get_mut(queue) else {
            return false;
        };
        let Some(at) = line.iter().position(|w| w.id == id) else {
            return false;
        };
        line.remove(at);
        if line.is_empty() {
            queues.remove(queue);
        }
        true
    }
}

/// A poller's place in line; leaving it (drop) removes the poller.
pub(crate) struct Registration<'a, T> {
    waiters: &'a Waiters<T>,
    queue: String,
    id: u64,
    receiver: Option<oneshot::Receiver<T>>,
}

impl<T> Registration<'_, T> {
    /// The work a transaction claimed for this poller, once committed; `None` if
    /// that transaction failed. Cancel-safe: poll it in a `select!`.
    pub(crate) async fn handed(&mut self) -> Option<T> {
        let receiver = self.receiver.as_mut()?;
        let answer = receiver.await.ok();
        self.receiver = None;
        answer
    }

    /// Stops waiting. If a transaction took this poller already, waits for its
    /// answer (it is being committed) so that nothing claimed is lost.
    pub(crate) async fn leave(mut self) -> Option<T> {
        if self.waiters.remove(&self.queue, self.id) {
            return None;
        }
        self.handed().await
    }
}

impl<T> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        self.waiters.remove(&self.queue, self.id);
        // Work already sent but not taken would be dropped with the channel;
        // closing it first makes a later send fail (its sender then sees it).
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if let Ok(work) = receiver.try_recv() {
                if let Some(unreceived) = self.waiters.unreceived.get() {
                    unreceived(work);
                }
            }
        }
    }
}
