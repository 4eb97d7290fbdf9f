//! The `activity-server` binary: `serve` runs the engine on a SQLite file behind
//! the gRPC service; the other subcommands are a CLI that talks to a running
//! server (start and inspect workflows, complete/fail/heartbeat an activity by
//! task token, describe executions and task queues). See `activity-server --help`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
