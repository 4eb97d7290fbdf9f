//! The engine of typed, durable activities.
//!
//! [`Engine`] runs activity executions with the full semantics of the project's
//! docs/semantics.md (options, the life of an execution, retries, heartbeats,
//! cancellation, asynchronous completion, dispatch and rate limits, durability)
//! and the engine side of workflows (runs with append-only histories, workflow
//! tasks with timeouts and retries, durable timers, the activities of a run)
//! on an authoritative store ([`store`]: SQLite now, file or in-memory), and
//! implements the protocol workers and clients use
//! ([`activity_core::ActivityProtocol`]) in-process.
//!
//! ```no_run
//! use std::sync::Arc;
//! use activity_core::Client;
//! use activity_engine::{Engine, EngineConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::file("activities.db")).await?;
//! let client = Client::new(engine.protocol()).with_task_queue("default");
//! // greet::call(&client, "Ada".into()).await?  — a worker polls "default".
//! # Ok(()) }
//! ```
//!
//! Modules: [`engine`] (dispatch, timers, retries, rate limits), [`store`] (the
//! store API and its SQLite backend), [`token`] (task tokens), [`clock`] (system
//! and virtual clocks). The gRPC service is `activity-remote`; the `activity-server` binary (`serve`, and the CLI) wires it to an engine on a file.

pub mod clock;
pub mod engine;
pub mod store;
pub mod token;

pub use clock::{SystemClock, VirtualClock};
pub use engine::{Engine, EngineConfig, EngineError, StoreLocation};
