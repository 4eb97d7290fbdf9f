//! The `activity-server` binary: `serve` runs the engine on a SQLite file behind
//! the gRPC service; the other subcommands are a CLI that talks to a running
//! server (start and inspect workflows, complete/fail/heartbeat an activity by
//! task token, describe executions and task queues). See `activity-server --help`.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = match cli::Cli::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let json = args.json_output();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            cli::CliError::Runtime(err).report(json);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            err.report(json);
            ExitCode::FAILURE
        }
    }
}
