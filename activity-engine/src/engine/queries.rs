//! Queries (docs/semantics.md §3.1): a query is handed to a worker polling the
//! run's task queue, which answers it from its cached instance of the run or
//! by replaying the history. Nothing of a query is durable or written to the
//! history: it lives in this node's memory while its caller waits, and a
//! caller whose query no worker answered within its bounded wait is told so.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use activity_core::{
    protocol::ProtocolError,
    workflow::{EventKind, PollWorkflowTaskRequest, QueryAnswer, QueryTask, WorkflowRef},
    Payload,
};
use tokio::sync::oneshot;

use super::{
    check_identity, check_name, closed, lock,
    notifiers::{Topic, Wake},
    random_id, workflows, Engine,
};

/// A query waiting for a worker.
struct Pending {
    id: String,
    run_key: i64,
    workflow_id: String,
    run_id: String,
    workflow_type: String,
    query_name: String,
}

/// The queries of this node that wait for a worker, or for its answer.
#[derive(Default)]
pub(super) struct Queries {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Not handed out yet, per task queue, oldest first.
    pending: HashMap<String, VecDeque<Pending>>,
    /// Where each query's answer goes, until its caller stops waiting.
    answers: HashMap<String, oneshot::Sender<QueryAnswer>>,
}

/// Removes a query's entries when its caller stops waiting (answered, timed
/// out, or gone).
struct Asked<'a> {
    queries: &'a Queries,
    id: String,
    task_queue: String,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.queries.state);
        state.answers.remove(&self.id);
        if let Some(queue) = state.pending.get_mut(&self.task_queue) {
            queue.retain(|p| p.id != self.id);
            if queue.is_empty() {
                state.pending.remove(&self.task_queue);
            }
        }
    }
}

impl Queries {
    /// The oldest query of `task_queue` whose caller still waits.
    fn next(&self, task_queue: &str) -> Option<Pending> {
        let mut state = lock(&self.state);
        let State { pending, answers } = &mut *state;
        let queue = pending.get_mut(task_queue)?;
        let found = loop {
            match queue.pop_front() {
                Some(p) if answers.contains_key(&p.id) => break Some(p),
                Some(_) => {}
                None => break None,
            }
        };
        if queue.is_empty() {
            pending.remove(task_queue);
        }
        found
    }
}

impl Engine {
    /// Asks `query_name` of the run; waits up to `wait` (bounded by the
    /// engine's longest poll wait) for a worker's answer.
    pub(super) async fn query_run(
        &self,
        workflow: WorkflowRef,
        query_name: String,
        wait: Duration,
    ) -> Result<Payload, ProtocolError> {
        check_name("query_name", &query_name)?;
        let wait = wait.min(self.inner.config.max_poll_wait);
        let deadline = self.inner.clock.now() + wait;
        let target = workflow.clone();
        let mut run = self
            .read(move |tx| workflows::find_run(tx, &target))
            .await?;
        // The code registers its query handlers when it runs: a run that has
        // completed no workflow task yet is asked once it has (within the
        // same bounded wait), not answered "no handler" (docs/semantics.md §3.1).
        while !run.state.is_final() {
            let key = run.key;
            let ran = self
                .read(move |tx| {
                    Ok(tx
                        .history(key)?
                        .iter()
                        .any(|e| matches!(e.kind, EventKind::WorkflowTaskCompleted { .. })))
                })
                .await?;
            if ran {
                break;
            }
            let now = self.inner.clock.now();
            if now >= deadline {
                return Err(ProtocolError::Unavailable {
                    message: format!(
                        "query `{query_name}` of workflow `{}` run `{}`: the run completed no workflow task within {wait:?}: is a worker of workflow type `{}` polling task queue `{}`?",
                        run.workflow_id, run.run_id, run.workflow_type, run.task_queue
                    ),
                });
            }
            self.inner
                .clock
                .sleep_until(deadline.min(now + Duration::from_millis(20)))
                .await;
            let target = workflow.clone();
            run = self
                .read(move |tx| workflows::find_run(tx, &target))
                .await?;
        }
        let queries = &self.inner.queries;
        let (sender, receiver) = oneshot::channel();
        let asked = Asked {
            queries,
            id: random_id()?,
            task_queue: run.task_queue.clone(),
        };
        {
            let mut state = lock(&queries.state);
            state.answers.insert(asked.id.clone(), sender);
            state
                .pending
                .entry(run.task_queue.clone())
                .or_default()
                .push_back(Pending {
                    id: asked.id.clone(),
                    run_key: run.key,
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    workflow_type: run.workflow_type.clone(),
                    query_name: query_name.clone(),
                });
        }
        (self.inner.notifiers).notify(Topic::WorkflowQuery, &run.task_queue, Wake::Some(1));
        let mut shutdown = self.inner.shutdown.subscribe();
        let answer = tokio::select! {
            answer = receiver => answer.ok(),
            () = self.inner.clock.sleep_until(deadline) => None,
            _ = shutdown.wait_for(|closed| *closed) => return Err(closed()),
        };
        drop(asked);
        let what = || {
            format!(
                "query `{query_name}` of workflow `{}` run `{}`",
                run.workflow_id, run.run_id
            )
        };
        match answer {
            Some(QueryAnswer::Answered(payload)) => Ok(payload),
            Some(QueryAnswer::Unknown(message)) => Err(ProtocolError::invalid_argument(
                "query_name",
                format!("{}: {message}", what()),
            )),
            Some(QueryAnswer::Failed(message)) => Err(ProtocolError::Internal {
                message: format!("{} could not be answered: {message}", what()),
            }),
            None => Err(ProtocolError::Unavailable {
                message: format!(
                    "no worker answered {} within {wait:?}: is a worker of workflow type `{}` polling task queue `{}`?",
                    what(),
                    run.workflow_type,
                    run.task_queue
                ),
            }),
        }
    }

    /// Waits up to `request.wait` for a query to a run of the queue, and hands
    /// it out with the run's history.
    pub(super) async fn poll_query(
        &self,
        request: PollWorkflowTaskRequest,
    ) -> Result<Option<QueryTask>, ProtocolError> {
        check_name("task_queue", &request.task_queue)?;
        check_identity(&request.identity)?;
        let queries = &self.inner.queries;
        let deadline = self.inner.clock.now() + request.wait.min(self.inner.config.max_poll_wait);
        let notify = (self.inner.notifiers).subscribe(Topic::WorkflowQuery, &request.task_queue);
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(query) = queries.next(&request.task_queue) {
                let key = query.run_key;
                let history = self.read(move |tx| Ok(tx.history(key)?)).await?;
                return Ok(Some(QueryTask::new(
                    query.id,
                    query.workflow_id,
                    query.run_id,
                    query.workflow_type,
                    query.query_name,
                    history,
                )));
            }
            if self.inner.clock.now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                _ = &mut notified => {}
                () = self.inner.clock.sleep_until(deadline) => {}
                _ = shutdown.wait_for(|closed| *closed) => return Err(closed()),
            }
        }
    }

    /// A worker's answer: handed to the query's caller, if it still waits.
    pub(super) async fn answer_query(
        &self,
        query_id: String,
        answer: QueryAnswer,
    ) -> Result<(), ProtocolError> {
        if let QueryAnswer::Answered(payload) = &answer {
            self.check_payload(|| "the answer of a query".into(), payload.len())?;
        }
        let sender = lock(&self.inner.queries.state).answers.remove(&query_id);
        match sender.map(|s| s.send(answer)) {
            Some(Ok(())) => Ok(()),
            _ => Err(ProtocolError::NotFound {
                what: format!("query `{query_id}` (its caller stopped waiting)"),
            }),
        }
    }
}
