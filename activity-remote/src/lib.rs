//! The gRPC transport of the activity protocol.
//!
//! Workers and clients talk to the engine through one trait,
//! [`activity_core::ActivityProtocol`]. This crate carries that trait over gRPC
//! (tonic), in both directions:
//!
//! - [`ActivityService`]: the server side, a thin adapter that serves any
//!   `Arc<dyn ActivityProtocol>` (the engine: `activity_engine::Engine::protocol()`),
//!   with request size limits and optional bearer-token auth ([`BearerAuth`]);
//! - [`RemoteProtocol`]: the client side, an `ActivityProtocol` over a tonic
//!   channel. Switching a worker or client from in-process to remote is one line:
//!   `Arc::new(RemoteProtocol::connect("http://127.0.0.1:7233").await?)` in place
//!   of `engine.protocol()`.
//!
//! Both ends speak TLS (rustls): [`ServerTls`] and [`ClientTls`], mutual TLS
//! included. The service accepts its connections itself and bounds each one
//! ([`ServerLimits`]: connections, concurrent calls, a memory budget for unread
//! answers, handshake, idle, keepalive and request-body timeouts; see
//! `docs/hardening.md`). A [`RemoteConfig`] may name several nodes of one
//! deployment; [`RemoteProtocol`] carries on through another when one dies.
//!
//! It is a crate of its own so that workers and clients get the remote protocol
//! without the engine and SQLite, and `activity-core` stays free of tonic.
//!
//! ```
//! use std::sync::Arc;
//! use activity_core::{ActivityProtocol, ProtocolError};
//! use activity_core::protocol::ExecutionRef;
//! use activity_remote::{ActivityService, RemoteProtocol};
//! use activity_engine::{Engine, EngineConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::in_memory()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}", listener.local_addr()?);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(
//!     ActivityService::new(engine.protocol()).serve(listener, async { stopped.await.ok(); }),
//! );
//!
//! let remote: Arc<dyn ActivityProtocol> = Arc::new(RemoteProtocol::connect(url).await?);
//! let missing = remote.describe_execution(ExecutionRef::standalone("nope")).await;
//! assert!(matches!(missing, Err(ProtocolError::NotFound { .. })));
//!
//! stop.send(()).ok();
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! # The wire
//!
//! `proto/activity/v1/activity.proto` has one rpc per operation
//! ([`Operation`](activity_core::protocol::Operation)); its request message has
//! one field per argument of the operation and its response message holds the
//! answer. One table in this crate (`rpcs.rs`) maps each operation to its rpc and
//! generates both the client's call and the service's handler from it, so an
//! operation is added in one place besides the `.proto`.
//!
//! There is one model on the wire. Ids, type and queue names, task tokens, waits
//! (`google.protobuf.Duration`) and payloads (bytes plus an encoding name) are
//! proto fields; everything else — options, failures, outcomes, commands,
//! history events, descriptions — travels as *model bytes*, the model type
//! encoded by [`activity_core::codec`] (MessagePack with named fields, the
//! encoding the store uses), so a field or variant added to the model crosses
//! the wire with no mapping to write. Requests and tasks that carry both hold
//! their proto fields and, in `rest`, the model bytes of the rest of the value.
//! A field that does not decode is refused with `INVALID_ARGUMENT` naming it
//! (e.g. `` invalid `commands[3]`: holds no valid model bytes (…) ``).
//!
//! A refused call answers the gRPC code of its
//! [`ProtocolError`](activity_core::ProtocolError) kind (invalid options,
//! argument, payload size or token: `INVALID_ARGUMENT`; `NOT_FOUND`;
//! `ALREADY_EXISTS`; already closed: `FAILED_PRECONDITION`; `UNAVAILABLE`;
//! unsupported: `UNIMPLEMENTED`; `INTERNAL`) and carries the error's model bytes
//! in its details, so that [`RemoteProtocol`] rebuilds the exact error,
//! `ClosedReason` included. Transport failures (connection refused or reset,
//! deadlines, a server restarting) become
//! [`ProtocolError::Unavailable`](activity_core::ProtocolError::Unavailable), the
//! retryable error; a request over the server's size limit becomes
//! `PayloadTooLarge`; a missing or wrong bearer token is refused with
//! `UNAUTHENTICATED` and reaches the caller as `InvalidArgument` on field
//! `authorization`, whose message says what to set.
//!
//! # Code generation without `protoc`
//!
//! `build.rs` compiles the `.proto` with [protox](https://docs.rs/protox), a
//! protobuf compiler written in Rust, and hands the descriptors to
//! `tonic-prost-build`, which writes the prost messages and tonic stubs to
//! `OUT_DIR`. A fresh machine needs no system `protoc`. Chosen over committing
//! generated code because the `.proto` stays the single source: the generated
//! code cannot drift from it, and there is no regeneration step to forget; the
//! cost is protox in the build dependencies (compiled once).

mod client;
mod codec;
mod rpcs;
mod server;
mod service;
mod status;
mod tls;
mod wire;

/// The generated protobuf messages and tonic stubs of `activity.v1`.
///
/// Public for other tools that speak the wire format (a CLI, another server);
/// workers and clients use [`RemoteProtocol`] instead.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/activity.v1.rs"));
}

pub use client::{ConnectError, RemoteConfig, RemoteProtocol};
pub use server::ServerLimits;
pub use service::{ActivityServer, ActivityService, BearerAuth, ServeError};
pub use status::is_transport_failure;
pub use tls::{serve_routes_tls, ClientTls, ServerTls, TlsError};
