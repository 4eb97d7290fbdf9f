//! The examples' logs: to stderr, filtered by `RUST_LOG` (default `info`), e.g.
//! `RUST_LOG=debug cargo run -p activity-examples --bin quickstart`. An
//! application does the same with one line (see the README, "Logs").

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
