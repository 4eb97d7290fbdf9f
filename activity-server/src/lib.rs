//! The engine of typed, durable activities and the `activity-server` binary.
//!
//! Not implemented yet: this crate is the place for the engine (history,
//! dispatch, durable timers, retries, rate limits), its SQLite store, and the
//! gRPC service (see the project's DESIGN.md).
