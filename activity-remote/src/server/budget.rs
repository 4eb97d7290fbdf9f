//! The memory budget of one connection: a slow reader slows itself.
//!
//! An answer is held in memory from the moment the engine produces it until the
//! client has read it. A client that sends many calls and never reads would
//! make the server hold every answer (the probe of 600 requests for 4 MiB
//! answers held 2.6 GiB). So each connection has a budget of bytes:
//!
//! - an answer's bytes count against it from its first frame until its body is
//!   done (sent to the socket, or the stream reset);
//! - a call is admitted (handed to the engine) only while the bytes of unread
//!   answers plus the bytes reserved by calls in flight leave room for it. A
//!   call that answers at once (not a long poll) reserves the connection's
//!   *estimate* of an answer: it starts high (an eighth of the budget, so a new
//!   connection starts with a few calls in flight), halves with each smaller
//!   answer down to [`MIN_ESTIMATE`], and jumps to the size of a larger one. So a
//!   connection of small answers (a worker's thousands of small calls) keeps
//!   thousands in flight after a few round trips, and one of 4 MiB answers keeps
//!   a budget's worth. Long polls reserve nothing (they wait for work, and a
//!   worker keeps many) but are admitted only while unread answers fit.
//! - An answer larger than the room left is sent anyway (its call was
//!   admitted), and no further call is admitted until it is read: one answer
//!   larger than the whole budget goes alone.
//!
//! Calls wait for admission in the order they arrived, the estimate taken when
//! a call's turn comes, and hold no answer while they wait: the client's stream
//! waits, and the other connections are not affected.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::oneshot;

/// The smallest estimate of an answer's size.
pub(crate) const MIN_ESTIMATE: usize = 16 * 1024;

/// How one call uses the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// Answers at once: reserves the estimate.
    Short,
    /// Waits for work (a long poll): reserves nothing (a worker keeps many in
    /// flight), but is admitted only while the connection's unread answers
    /// leave room.
    LongPoll,
}

/// One connection's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes reserved by calls without an answer, plus bytes of unsent
    /// answers. May exceed the limit: an admitted call's answer is sent
    /// whatever its size.
    used: usize,
    /// The estimate of a short call's answer.
    estimate: usize,
    /// Calls waiting to be admitted, oldest first.
    waiting: VecDeque<(CallKind, oneshot::Sender<usize>)>,
}

impl State {
    /// What a call of `kind` reserves now, if it fits now.
    fn fits(&self, kind: CallKind, limit: usize) -> Option<usize> {
        match kind {
            CallKind::Short if self.used == 0 || self.used + self.estimate <= limit => {
                Some(self.estimate)
            }
            CallKind::LongPoll if self.used < limit => Some(0),
            _ => None,
        }
    }

    /// Admits waiting calls, oldest first, while they fit.
    fn admit_waiting(&mut self, limit: usize) {
        while let Some((kind, _)) = self.waiting.front() {
            let Some(reserve) = self.fits(*kind, limit) else {
                return;
            };
            if let Some((_, admitted)) = self.waiting.pop_front() {
                // A caller that gave up while waiting takes nothing.
                if admitted.send(reserve).is_ok() {
                    self.used += reserve;
                }
            }
        }
    }
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            limit,
            state: Mutex::new(State {
                used: 0,
                estimate: (limit / 8).max(MIN_ESTIMATE).min(limit),
                waiting: VecDeque::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a call of `kind` fits (after the calls that came before
    /// it), and reserves its share.
    pub(crate) async fn admit(self: &Arc<Self>, kind: CallKind) -> Ticket {
        let mut admitted = {
            let mut state = self.state();
            match state.fits(kind, self.limit) {
                Some(reserve) if state.waiting.is_empty() => {
                    state.used += reserve;
                    return self.ticket(kind, reserve);
                }
                _ => {
                    let (admit, admitted) = oneshot::channel();
                    state.waiting.push_back((kind, admit));
                    Waiting {
                        budget: self,
                        admitted,
                    }
                }
            }
        };
        // Never fails: the sender is dropped only after sending or with the
        // budget, which this borrow keeps alive.
        let reserve = (&mut admitted.admitted).await.unwrap_or(0);
        admitted.admitted.close();
        self.ticket(kind, reserve)
    }

    fn ticket(self: &Arc<Self>, kind: CallKind, held: usize) -> Ticket {
        Ticket {
            budget: Arc::clone(self),
            kind,
            held,
            answered: false,
        }
    }

    /// Changes the bytes used by `delta`, learns from an answer's size, and
    /// admits the calls that fit now.
    fn update(&self, more: usize, less: usize, answer: Option<usize>) {
        let mut state = self.state();
        state.used = (state.used + more).saturating_sub(less);
        if let Some(answer) = answer {
            state.estimate = (state.estimate / 2)
                .max(answer)
                .clamp(MIN_ESTIMATE, self.limit);
        }
        state.admit_waiting(self.limit);
    }

    /// Bytes of unread answers and reservations (for tests).
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.state().used
    }
}

/// A call waiting for admission; if it is dropped (the client gave up) after
/// being admitted but before taking its ticket, its reservation is given back.
struct Waiting<'a> {
    budget: &'a Arc<Budget>,
    admitted: oneshot::Receiver<usize>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.admitted.close();
        if let Ok(reserve) = self.admitted.try_recv() {
            self.budget.update(0, reserve, None);
        }
    }
}

/// One admitted call's share of the budget, released when dropped (with the
/// answer's body, or with the call if it ends without one).
#[derive(Debug)]
pub(crate) struct Ticket {
    budget: Arc<Budget>,
    kind: CallKind,
    /// Bytes held: the reservation until the answer, then the answer's size.
    held: usize,
    answered: bool,
}

impl Ticket {
    /// `bytes` more of the answer were produced: they count until the ticket
    /// drops.
    pub(crate) fn answered(&mut self, bytes: usize) {
        let before = if self.answered { self.held } else { 0 };
        let now = before + bytes;
        let learned = (self.kind == CallKind::Short).then_some(now);
        self.budget.update(now, self.held, learned);
        self.held = now;
        self.answered = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // An answer without a body (an error status) is a small one.
        let learned = (!self.answered && self.kind == CallKind::Short).then_some(0);
        self.budget.update(0, self.held, learned);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    async fn admitted_now(budget: &Arc<Budget>, kind: CallKind) -> Option<Ticket> {
        tokio::time::timeout(Duration::from_millis(20), budget.admit(kind))
            .await
            .ok()
    }

    #[tokio::test]
    async fn large_answers_keep_a_budget_of_them_in_flight_and_wait_for_reads() {
        let budget = Budget::new(32 * MIB);
        // A new connection admits an eighth of the budget per call: 8 calls.
        let mut tickets = Vec::new();
        for _ in 0..8 {
            tickets.push(admitted_now(&budget, CallKind::Short).await.expect("fits"));
        }
        assert!(admitted_now(&budget, CallKind::Short).await.is_none());
        // Their 4 MiB answers are produced and never read.
        for ticket in &mut tickets {
            ticket.answered(4 * MIB);
        }
        assert_eq!(budget.used(), 32 * MIB);
        assert!(admitted_now(&budget, CallKind::Short).await.is_none());
        assert!(admitted_now(&budget, CallKind::LongPoll).await.is_none());
        // One answer read: room for one more like it.
        tickets.pop();
        let next = admitted_now(&budget, CallKind::Short).await.expect("room");
        assert!(admitted_now(&budget, CallKind::Short).await.is_none());
        drop(next);
        drop(tickets);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn small_answers_open_the_connection_to_thousands_of_calls() {
        let budget = Budget::new(32 * MIB);
        for _ in 0..12 {
            let mut ticket = admitted_now(&budget, CallKind::Short).await.expect("fits");
            ticket.answered(200);
        }
        let mut in_flight = Vec::new();
        while let Some(ticket) = admitted_now(&budget, CallKind::Short).await {
            in_flight.push(ticket);
            if in_flight.len() > 5000 {
                break;
            }
        }
        assert_eq!(in_flight.len(), 32 * MIB / MIN_ESTIMATE);
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_budget_goes_alone_and_long_polls_reserve_nothing() {
        let budget = Budget::new(MIB);
        let mut big = admitted_now(&budget, CallKind::Short).await.expect("alone");
        big.answered(8 * MIB);
        assert!(admitted_now(&budget, CallKind::LongPoll).await.is_none());
        drop(big);
        let polls: Vec<_> = futures_polls(&budget, 100).await;
        assert_eq!(polls.len(), 100);
        assert!(admitted_now(&budget, CallKind::Short).await.is_some());
    }

    async fn futures_polls(budget: &Arc<Budget>, n: usize) -> Vec<Ticket> {
        let mut polls = Vec::new();
        for _ in 0..n {
            polls.push(
                admitted_now(budget, CallKind::LongPoll)
                    .await
                    .expect("no reservation"),
            );
        }
        polls
    }

    #[tokio::test]
    async fn a_waiting_call_is_admitted_when_an_answer_is_read() {
        let budget = Budget::new(MIB);
        let mut first = admitted_now(&budget, CallKind::Short).await.expect("alone");
        first.answered(MIB);
        let waiting = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.admit(CallKind::Short).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        let ticket = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("admitted")
            .expect("task");
        drop(ticket);
        assert_eq!(budget.used(), 0);
    }
}
