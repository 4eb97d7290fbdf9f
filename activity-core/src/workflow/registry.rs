//! Workflow registrations, collected through `inventory`.

use std::fmt;

use crate::{
    definition::BoxFuture,
    payload::{ActivityInput, Payload},
    registry::SourceLocation,
};

use super::{WorkflowContext, WorkflowError, WorkflowImplementation};

type StartFn =
    fn(WorkflowContext, &[Payload]) -> BoxFuture<'static, Result<Payload, WorkflowError>>;

/// One registered workflow, type-erased. Submitted by `#[workflow]`.
pub struct WorkflowRegistration {
    name: &'static str,
    location: SourceLocation,
    start: StartFn,
}

inventory::collect!(WorkflowRegistration);

impl fmt::Debug for WorkflowRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowRegistration")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl WorkflowRegistration {
    /// The registration of workflow `W`, defined at `location`.
    pub const fn of<W: WorkflowImplementation>(location: SourceLocation) -> Self {
        Self {
            name: W::NAME,
            location,
            start: start_erased::<W>,
        }
    }

    /// The workflow type name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it is defined.
    pub fn location(&self) -> SourceLocation {
        self.location
    }

    /// Starts the workflow on serialized arguments; the result is serialized.
    pub fn start(
        &self,
        ctx: WorkflowContext,
        input: &[Payload],
    ) -> BoxFuture<'static, Result<Payload, WorkflowError>> {
        (self.start)(ctx, input)
    }
}

fn start_erased<W: WorkflowImplementation>(
    ctx: WorkflowContext,
    input: &[Payload],
) -> BoxFuture<'static, Result<Payload, WorkflowError>> {
    match W::Input::from_payloads(input, W::NAME, W::ARGUMENTS) {
        Ok(args) => {
            let run = W::run(ctx, args);
            Box::pin(async move {
                let output = run.await?;
                Ok(Payload::json(&output)?)
            })
        }
        Err(err) => Box::pin(std::future::ready(Err(err.into()))),
    }
}

/// Every workflow registered in this program.
pub fn registered_workflows() -> impl Iterator<Item = &'static WorkflowRegistration> {
    inventory::iter::<WorkflowRegistration>.into_iter()
}
