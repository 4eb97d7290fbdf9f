//! In-memory wake-ups for calls that wait on the store: pollers of a task queue and
//! waiters of an outcome. A waiter subscribes to a [`Topic`] and key before it reads
//! the store, and a commit that may have changed the answer notifies it, so no
//! change is missed between the read and the wait. Nothing here is state of record:
//! a lost notification only means the waiter reads the store again at the end of its
//! bounded wait (docs/semantics.md §5).
//!
//! Entries exist only while someone waits: the last subscription of a key removes
//! it, so a poll on a queue name used once leaves nothing behind.

use std::{collections::HashMap, ops::Deref, sync::Arc, sync::Mutex};

use tokio::sync::Notify;

use super::lock;

/// What a waiter waits for; each topic has its own keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topic {
    /// Pollers of an activity task queue (key: the queue).
    ActivityQueue,
    /// Waiters of an activity execution's outcome (key: `rules::waiter_key`).
    ActivityOutcome,
    /// Pollers of a workflow task queue (key: the queue).
    WorkflowQueue,
    /// Waiters of a workflow run's outcome (key: the run id).
    RunOutcome,
    /// Pollers of a workflow task queue's queries (key: the queue).
    WorkflowQuery,
}

const TOPICS: usize = 5;

impl Topic {
    fn index(self) -> usize {
        match self {
            Topic::ActivityQueue => 0,
            Topic::ActivityOutcome => 1,
            Topic::WorkflowQueue => 2,
            Topic::RunOutcome => 3,
            Topic::WorkflowQuery => 4,
        }
    }
}

/// How many waiters a notification wakes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wake {
    /// Up to this many (one per new piece of work, so a fan-out of one does not
    /// make every poller of the queue read the store). A waiter that stops waiting
    /// hands its wake-up on; with nobody waiting one permit is kept for the next.
    Some(usize),
    /// Every current waiter (an outcome every waiter wants to see).
    All,
}

/// The waiters of every topic, by key.
#[derive(Default)]
pub(crate) struct Notifiers {
    topics: [Mutex<HashMap<String, Arc<Notify>>>; TOPICS],
}

impl Notifiers {
    /// Starts waiting on `key` of `topic`; the entry goes when the last
    /// subscription of that key is dropped.
    pub(crate) fn subscribe(&self, topic: Topic, key: &str) -> Subscription<'_> {
        let mut map = lock(&self.topics[topic.index()]);
        let notify = match map.get(key) {
            Some(notify) => notify.clone(),
            None => {
                let notify = Arc::new(Notify::new());
                map.insert(key.to_owned(), notify.clone());
                notify
            }
        };
        Subscription {
            notifiers: self,
            topic,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes waiters of `key` of `topic`, if there are any.
    pub(crate) fn notify(&self, topic: Topic, key: &str, wake: Wake) {
        if let Some(notify) = lock(&self.topics[topic.index()]).get(key) {
            match wake {
                Wake::Some(count) => (0..count).for_each(|_| notify.notify_one()),
                Wake::All => notify.notify_waiters(),
            }
        }
    }

    /// Wakes every waiter of every topic (something happened that cannot be
    /// attributed, e.g. a lost notification channel of a shared store).
    pub(crate) fn notify_everyone(&self) {
        for topic in &self.topics {
            for notify in lock(topic).values() {
                notify.notify_waiters();
            }
        }
    }

    #[cfg(test)]
    fn len(&self, topic: Topic) -> usize {
        lock(&self.topics[topic.index()]).len()
    }
}

/// A waiter's place on one key; dereferences to its [`Notify`].
pub(crate) struct Subscription<'a> {
    notifiers: &'a Notifiers,
    topic: Topic,
    key: String,
    notify: Arc<Notify>,
}

impl Deref for Subscription<'_> {
    type Target = Notify;

    fn deref(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.notifiers.topics[self.topic.index()]);
        // The map's reference and this one: nobody else waits on the key.
        if map
            .get(&self.key)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify) && Arc::strong_count(n) == 2)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_subscriber_is_woken_and_the_last_one_removes_the_key() {
        let notifiers = Notifiers::default();
        let first = notifiers.subscribe(Topic::ActivityQueue, "q");
        let second = notifiers.subscribe(Topic::ActivityQueue, "q");
        assert_eq!(notifiers.len(Topic::ActivityQueue), 1);
        assert_eq!(
            notifiers.len(Topic::WorkflowQueue),
            0,
            "topics are separate"
        );

        let notified = first.notified();
        notifiers.notify(Topic::ActivityQueue, "q", Wake::Some(1));
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("the notification reaches the waiter");

        drop(first);
        assert_eq!(notifiers.len(Topic::ActivityQueue), 1, "one still waits");
        drop(second);
        assert_eq!(
            notifiers.len(Topic::ActivityQueue),
            0,
            "nothing left behind"
        );
    }

    #[tokio::test]
    async fn notify_all_wakes_every_waiter_and_unknown_keys_are_ignored() {
        let notifiers = Notifiers::default();
        let a = notifiers.subscribe(Topic::RunOutcome, "run");
        let b = notifiers.subscribe(Topic::RunOutcome, "run");
        let (na, nb) = (a.notified(), b.notified());
        tokio::pin!(na, nb);
        na.as_mut().enable();
        nb.as_mut().enable();
        notifiers.notify(Topic::RunOutcome, "other", Wake::All);
        notifiers.notify(Topic::ActivityOutcome, "run", Wake::All);
        notifiers.notify(Topic::RunOutcome, "run", Wake::All);
        tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(na, nb) })
            .await
            .expect("both waiters are woken");
        assert_eq!(notifiers.len(Topic::ActivityOutcome), 0);
    }
}
