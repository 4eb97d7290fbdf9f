//! The protocol between workers/clients and the engine.
