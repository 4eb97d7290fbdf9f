//! Attempts started for a poller that went away before it received them (its
//! caller gave up, its connection closed): returned to their queue at once, in a
//! transaction of their own, instead of waiting for their start-to-close timeout
//! as the attempts of a crashed worker do (docs/semantics.md §2). Nobody ran such
//! an attempt, so it keeps its number: the next poller gets the same attempt.
//!
//! Only attempts known never to have left this process are released: a hand-off
//! whose receiver was gone, or a claim committed after its poll stopped waiting.
//! An attempt whose answer was written to a connection is the worker's, and ends
//! as any other (completed, failed, or timed out).

use crate::{
    store::{TimerKind, Tx},
    token::TokenSigner,
};
use activity_core::{
    protocol::{ActivityTask, ExecutionState, ProtocolError},
    TaskToken,
};

use super::{
    metrics::ActivityEvent,
    rules::{ms, set_timer, Effects},
    Engine, MAX_TASKS_PER_POLL,
};

/// An attempt that was started for nobody: its execution and attempt number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Orphan {
    key: i64,
    attempt: u32,
}

impl Orphan {
    /// The attempt `task` stands for (its token names it).
    pub(crate) fn of(signer: &TokenSigner, token: &TaskToken) -> Option<Orphan> {
        signer
            .verify(token)
            .ok()
            .map(|(key, attempt)| Orphan { key, attempt })
    }
}

/// The orphans among `tasks`.
pub(crate) fn orphans(signer: &TokenSigner, tasks: &[ActivityTask]) -> Vec<Orphan> {
    tasks
        .iter()
        .filter_map(|task| Orphan::of(signer, &task.task_token))
        .collect()
}

/// Puts the attempt back in its queue if it is still the one started for nobody:
/// SCHEDULED again, dispatchable at once, in its place (its original dispatch
/// time), with its schedule-to-start deadline as it was. Anything else that
/// happened to it meanwhile (a cancel request, a timeout, a report) wins.
pub(crate) fn release(
    tx: &mut dyn Tx,
    fx: &mut Effects,
    orphan: Orphan,
) -> Result<bool, ProtocolError> {
    let Some(mut exec) = tx.execution(orphan.key)? else {
        return Ok(false);
    };
    // A heartbeat of an earlier attempt (the time is kept across attempts) does
    // not count: only one since this attempt started means someone has it.
    let heartbeated = match (exec.last_heartbeat_at, exec.started_at) {
        (Some(beat), Some(started)) => beat >= started,
        (beat, _) => beat.is_some(),
    };
    if exec.state != ExecutionState::Started
        || exec.attempt != orphan.attempt
        || exec.cancel_requested
        || heartbeated
    {
        return Ok(false);
    }
    exec.state = ExecutionState::Scheduled;
    exec.started_at = None;
    exec.worker_identity = None;
    tx.clear_timer(exec.key, TimerKind::StartToClose)?;
    if exec.options.heartbeat_timeout.is_some() {
        tx.clear_timer(exec.key, TimerKind::Heartbeat)?;
    }
    if let Some(bound) = exec.options.schedule_to_start {
        let due = exec.attempt_scheduled_at.saturating_add(ms(bound));
        set_timer(tx, fx, &exec, TimerKind::ScheduleToStart, due)?;
    }
    tx.update_execution(&exec)?;
    fx.count(&exec, ActivityEvent::Released);
    fx.wake_queue(&exec.task_queue);
    Ok(true)
}

impl Engine {
    /// Releases the attempts of `tokens` (a transport received them for a caller
    /// that had gone), in one transaction, answered once committed.
    pub(crate) async fn release_tasks(&self, tokens: Vec<TaskToken>) -> Result<(), ProtocolError> {
        if tokens.len() > MAX_TASKS_PER_POLL {
            return Err(ProtocolError::InvalidArgument {
                field: "tokens".into(),
                message: format!(
                    "{} tokens given back at once; a poll hands out at most {MAX_TASKS_PER_POLL}",
                    tokens.len()
                ),
            });
        }
        let signer = &self.inner.dispatch.signer;
        let orphans = tokens
            .iter()
            .map(|token| {
                signer
                    .verify(token)
                    .map(|(key, attempt)| Orphan { key, attempt })
                    .map_err(|e| ProtocolError::InvalidToken {
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run(move |tx, fx| {
            for orphan in &orphans {
                release(tx, fx, *orphan)?;
            }
            Ok(())
        })
        .await
    }

    /// Releases `orphans` in one transaction, in the background (the caller that
    /// found them is answering something else, or is gone).
    pub(crate) fn release_orphans(&self, orphans: Vec<Orphan>) {
        if orphans.is_empty() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let count = orphans.len();
            let released = engine
                .run(move |tx, fx| {
                    let mut released = 0;
                    for orphan in &orphans {
                        released += usize::from(release(tx, fx, *orphan)?);
                    }
                    Ok(released)
                })
                .await;
            match released {
                Ok(released) => tracing::debug!(
                    released,
                    count,
                    "attempts started for pollers that went away are back in their queues"
                ),
                Err(err) => tracing::warn!(
                    error = %err,
                    count,
                    "attempts started for pollers that went away could not be put back; \
                     they are retried after their start-to-close timeout"
                ),
            }
        });
    }
}
