//! The engine's workflow operations: start a run, claim and answer its workflow
//! tasks, wait for its outcome. Each runs its rule (module `workflows`) in one store
//! transaction, as the activity operations do.

use std::time::Duration;

use activity_core::{
    clock::to_millis,
    context::TaskToken,
    payload::Payload,
    protocol::ProtocolError,
    workflow::{
        Command, LocalActivityOutcome, PollWorkflowTaskRequest, StartWorkflowRequest,
        WorkflowFailure, WorkflowOutcome, WorkflowRef, WorkflowTask, WorkflowTimeouts,
    },
};

use super::{
    check_identity, check_name, check_trace_context, closed, details_size, json_size,
    notifiers::Topic, random_id, rules::Poller, workflows, Engine,
};

/// A start's timeouts, checked (docs/semantics.md §3): each more than zero,
/// and the execution timeout not less than the run timeout. The execution
/// deadline is set when the run starts.
pub(crate) fn check_timeouts(
    run: Option<Duration>,
    execution: Option<Duration>,
) -> Result<WorkflowTimeouts, ProtocolError> {
    for (field, timeout) in [("run_timeout", run), ("execution_timeout", execution)] {
        if timeout == Some(Duration::ZERO) {
            return Err(ProtocolError::invalid_argument(
                field,
                "must be more than zero (e.g. 60s); leave it unset for no limit",
            ));
        }
    }
    if let (Some(run), Some(execution)) = (run, execution) {
        if execution < run {
            return Err(ProtocolError::invalid_argument(
                "execution_timeout",
                format!(
                    "is {execution:?}, less than run_timeout {run:?}: a run cannot outlast \
                     its workflow; raise execution_timeout or lower run_timeout"
                ),
            ));
        }
    }
    Ok(WorkflowTimeouts::new(run, execution, None))
}

/// The workflow side of the engine (docs/semantics.md §3); rules in module `workflows`.
impl Engine {
    /// A start request, checked, as a new run's fields.
    fn new_run(&self, request: StartWorkflowRequest) -> Result<workflows::NewRun, ProtocolError> {
        check_name("workflow_id", &request.workflow_id)?;
        check_name("workflow_type", &request.workflow_type)?;
        check_name("task_queue", &request.task_queue)?;
        let size = request.input.iter().map(Payload::len).sum();
        self.check_payload(
            || format!("the input of workflow `{}`", request.workflow_type),
            size,
        )?;
        for (n, argument) in request.input.iter().enumerate() {
            Self::check_json(&format!("input[{n}]"), argument)?;
        }
        check_trace_context("trace_context", request.trace_context.as_deref())?;
        let timeouts = check_timeouts(request.run_timeout, request.execution_timeout)?;
        Ok(workflows::NewRun {
            workflow_id: request.workflow_id,
            run_id: random_id()?,
            workflow_type: request.workflow_type,
            task_queue: request.task_queue,
            input: request.input,
            trace_context: request.trace_context,
            timeouts,
            id_reuse_policy: request.id_reuse_policy,
            parent: None,
        })
    }

    /// A signal's fields, checked.
    fn signal_in(
        &self,
        name: String,
        input: Payload,
        identity: String,
    ) -> Result<workflows::SignalIn, ProtocolError> {
        check_name("signal_name", &name)?;
        check_identity(&identity)?;
        self.check_payload(|| format!("the payload of signal `{name}`"), input.len())?;
        Self::check_json("input", &input)?;
        Ok(workflows::SignalIn {
            name,
            input,
            identity,
        })
    }

    pub(super) async fn reset_run(
        &self,
        workflow: WorkflowRef,
        to_event: u64,
        reason: String,
        identity: String,
    ) -> Result<WorkflowRef, ProtocolError> {
        check_identity(&identity)?;
        self.check_payload(|| "the reset reason".into(), reason.len())?;
        let reset = workflows::ResetIn {
            to_event,
            reason,
            identity,
            new_run_id: random_id()?,
        };
        let now = self.now_ms();
        let run = self
            .run(move |tx, fx| workflows::reset(tx, fx, &workflow, reset.clone(), now))
            .await?;
        tracing::debug!(workflow_id = %run.workflow_id, run_id = run.run_id.as_deref().unwrap_or(""), "workflow reset");
        Ok(run)
    }

    pub(super) async fn signal_run(
        &self,
        workflow: WorkflowRef,
        name: String,
        input: Payload,
        identity: String,
    ) -> Result<WorkflowRef, ProtocolError> {
        let signal = self.signal_in(name, input, identity)?;
        let now = self.now_ms();
        self.run(move |tx, fx| workflows::signal(tx, fx, &workflow, signal.clone(), now))
            .await
    }

    pub(super) async fn signal_with_start_run(
        &self,
        request: StartWorkflowRequest,
        name: String,
        input: Payload,
        identity: String,
    ) -> Result<WorkflowRef, ProtocolError> {
        let new = self.new_run(request)?;
        let signal = self.signal_in(name, input, identity)?;
        let now = self.now_ms();
        self.run(move |tx, fx| {
            workflows::signal_with_start(tx, fx, new.clone(), signal.clone(), now)
        })
        .await
    }

    pub(super) async fn start_run(
        &self,
        request: StartWorkflowRequest,
    ) -> Result<WorkflowRef, ProtocolError> {
        let new = self.new_run(request)?;
        let now = self.now_ms();
        let run = self
            .run(move |tx, fx| workflows::start(tx, fx, new.clone(), now))
            .await?;
        tracing::debug!(workflow_id = %run.workflow_id, run_id = run.run_id.as_deref().unwrap_or(""), "workflow started");
        Ok(run)
    }

    pub(super) async fn poll_workflow(
        &self,
        request: PollWorkflowTaskRequest,
    ) -> Result<Option<WorkflowTask>, ProtocolError> {
        check_name("task_queue", &request.task_queue)?;
        check_identity(&request.identity)?;
        let identity = if request.identity.is_empty() {
            "unknown".to_owned()
        } else {
            request.identity
        };
        let deadline = self.inner.clock.now() + request.wait.min(self.inner.config.max_poll_wait);
        let notify = (self.inner.notifiers).subscribe(Topic::WorkflowQueue, &request.task_queue);
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.inner.clock.now();
            let now_ms = to_millis(now);
            let (queue, who) = (request.task_queue.clone(), identity.clone());
            let dispatch = self.inner.dispatch.clone();
            let task = self
                .run(move |tx, fx| workflows::claim(tx, fx, &dispatch, &queue, &who, now_ms))
                .await?;
            if let Some(task) = task {
                tracing::debug!(workflow_id = %task.workflow_id, run_id = %task.run_id, worker = %identity, "workflow task started");
                return Ok(Some(task));
            }
            if now >= deadline {
                return Ok(None);
            }
            let waiters = &self.inner.dispatch.workflows;
            let poller = Poller {
                task_queue: &request.task_queue,
                identity: &identity,
                max: 1,
            };
            let handed = self
                .await_work(
                    waiters,
                    &poller,
                    notified,
                    self.inner.recheck(deadline),
                    &mut shutdown,
                )
                .await?;
            if handed.is_some() {
                return Ok(handed);
            }
        }
    }

    pub(super) fn check_commands(&self, commands: &[Command]) -> Result<(), ProtocolError> {
        for (i, command) in commands.iter().enumerate() {
            Self::check_command_json(i, command)?;
            match command {
                Command::ScheduleActivity {
                    seq,
                    activity_type,
                    input,
                    trace_context,
                    ..
                } => {
                    check_trace_context(
                        &format!("commands[{i}].trace_context"),
                        trace_context.as_deref(),
                    )?;
                    self.check_payload(
                        || format!("the input of activity `{activity_type}` (seq {seq})"),
                        input.iter().map(Payload::len).sum(),
                    )?
                }
                Command::RecordLocalActivity {
                    seq,
                    activity_type,
                    outcome,
                } => self.check_payload(
                    || format!("the outcome of local activity `{activity_type}` (seq {seq})"),
                    match outcome {
                        LocalActivityOutcome::Completed(result) => result.len(),
                        LocalActivityOutcome::Failed(failure) => json_size(failure),
                        LocalActivityOutcome::Backoff { failure, .. } => json_size(failure),
                    },
                )?,
                Command::CompleteWorkflow { result } => {
                    self.check_payload(|| "the workflow result".into(), result.len())?
                }
                Command::ContinueAsNew { input } => self.check_payload(
                    || "the input of the run continued as new".into(),
                    input.iter().map(Payload::len).sum(),
                )?,
                Command::StartChildWorkflow {
                    seq,
                    workflow_type,
                    input,
                    ..
                } => self.check_payload(
                    || format!("the input of child workflow `{workflow_type}` (seq {seq})"),
                    input.iter().map(Payload::len).sum(),
                )?,
                Command::SignalExternalWorkflow {
                    seq,
                    signal_name,
                    input,
                    ..
                } => self.check_payload(
                    || format!("the payload of signal `{signal_name}` (seq {seq})"),
                    input.len(),
                )?,
                Command::FailWorkflow { failure } => self.check_payload(
                    || "the workflow failure".into(),
                    workflow_failure_size(failure),
                )?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Refuses a command carrying a payload whose encoding says JSON but whose
    /// bytes do not parse (docs/semantics.md §4: bad input changes nothing);
    /// the field names the command by its place in the answer.
    fn check_command_json(i: usize, command: &Command) -> Result<(), ProtocolError> {
        match command {
            Command::ScheduleActivity { input, .. }
            | Command::ContinueAsNew { input }
            | Command::StartChildWorkflow { input, .. } => {
                for (n, argument) in input.iter().enumerate() {
                    Self::check_json(&format!("commands[{i}].input[{n}]"), argument)?;
                }
                Ok(())
            }
            Command::RecordLocalActivity {
                outcome: LocalActivityOutcome::Completed(result),
                ..
            } => Self::check_json(&format!("commands[{i}].result"), result),
            Command::CompleteWorkflow { result } => {
                Self::check_json(&format!("commands[{i}].result"), result)
            }
            Command::SignalExternalWorkflow { input, .. } => {
                Self::check_json(&format!("commands[{i}].input"), input)
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn complete_workflow(
        &self,
        token: TaskToken,
        commands: Vec<Command>,
    ) -> Result<(), ProtocolError> {
        self.check_commands(&commands)?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        // The run id of the run a continue-as-new starts.
        let next_run_id = match commands.last() {
            Some(Command::ContinueAsNew { .. }) => Some(random_id()?),
            _ => None,
        };
        // The run ids of the child runs its commands start.
        let child_run_ids = commands
            .iter()
            .filter(|c| matches!(c, Command::StartChildWorkflow { .. }))
            .map(|_| random_id())
            .collect::<Result<Vec<_>, _>>()?;
        self.run(move |tx, fx| {
            let next = next_run_id.clone();
            workflows::complete_task(
                tx,
                fx,
                &signer,
                &token,
                commands.clone(),
                next,
                &child_run_ids,
                now,
            )
        })
        .await
    }

    pub(super) async fn fail_workflow(
        &self,
        token: TaskToken,
        message: String,
    ) -> Result<(), ProtocolError> {
        self.check_payload(|| "the workflow task failure message".into(), message.len())?;
        let signer = self.inner.dispatch.signer.clone();
        let now = self.now_ms();
        let config = &self.inner.config;
        let backoff = (
            config.workflow_task_retry_initial_interval,
            config.workflow_task_retry_maximum_interval,
        );
        self.run(move |tx, fx| {
            workflows::fail_task(tx, fx, &signer, &token, message.clone(), backoff, now)
        })
        .await
    }

    pub(super) async fn wait_run(
        &self,
        workflow: WorkflowRef,
        wait: Duration,
    ) -> Result<Option<WorkflowOutcome>, ProtocolError> {
        // The latest run when the call starts: a run started later is another
        // run, unless it continued this one (docs/semantics.md §3.1).
        let follow = workflow.run_id.is_none();
        let target = workflow.clone();
        let mut run_id = self
            .read(move |tx| workflows::find_run(tx, &target).map(|run| run.run_id))
            .await?;
        let mut notify = (self.inner.notifiers).subscribe(Topic::RunOutcome, &run_id);
        let deadline = self.inner.clock.now() + wait.min(self.inner.config.max_outcome_wait);
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut next: Option<String> = None;
        let result = loop {
            if let Some(new_run_id) = next.take() {
                notify = (self.inner.notifiers).subscribe(Topic::RunOutcome, &new_run_id);
                run_id = new_run_id;
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let id = run_id.clone();
            let found = self
                .read(move |tx| {
                    let run = tx.run_by_id(&id)?.ok_or_else(|| ProtocolError::NotFound {
                        what: format!("workflow run `{id}`"),
                    })?;
                    Ok(run.outcome)
                })
                .await;
            match found {
                // Continued as new, or reset: the run that took over.
                Ok(Some(outcome)) if follow && outcome.next_run().is_some() => {
                    next = outcome.next_run().map(str::to_owned);
                    continue;
                }
                Ok(Some(outcome)) => break Ok(Some(outcome)),
                Err(e) => break Err(e),
                Ok(None) if self.inner.clock.now() >= deadline => break Ok(None),
                Ok(None) => {}
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = self.inner.clock.sleep_until(self.inner.recheck(deadline)) => {}
                _ = shutdown.wait_for(|closed| *closed) => break Err(closed()),
            }
        };
        result
    }
}

fn workflow_failure_size(failure: &WorkflowFailure) -> usize {
    match failure {
        WorkflowFailure::Application(a) => {
            a.message.len() + a.error_type.len() + details_size(&a.details)
        }
        other => json_size(other),
    }
}
