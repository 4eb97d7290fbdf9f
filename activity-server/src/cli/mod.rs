//! The command line: its arguments ([`Cli`]), its errors ([`CliError`]) and the
//! dispatch to `serve` ([`serve`]) or to a client command ([`client`]).

use std::{io::IsTerminal, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use activity_core::{workflow::history::WorkflowState, ProtocolError};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use tracing_subscriber::EnvFilter;

mod client;
#[cfg(feature = "otel")]
mod otel;
mod serve;
mod view;

/// The default address of a server: loopback only.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7233";
const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:7233";

/// Typed, durable activities: the server and its command line.
#[derive(Debug, Parser)]
#[command(name = "activity-server", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the engine on a SQLite file or a PostgreSQL database and serves it over gRPC until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Starts and inspects workflows.
    Workflow {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Starts a standalone activity; completes, fails or heartbeats one by task
    /// token (or id); describes or cancels one.
    Activity {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ActivityCommand,
    },
    /// Inspects task queues.
    TaskQueue {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: TaskQueueCommand,
    },
    /// Lists the activity and workflow types workers registered.
    Types {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: TypesCommand,
    },
}

/// `serve`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the engine keeps its state: a SQLite file PATH (created if
    /// missing; one server per file), or a PostgreSQL URL
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE[?schema=NAME] (password,
    /// port and schema optional) shared by any number of servers (tables
    /// created on first start in schema NAME, `public` without it; every
    /// server serves every call, any of them may be killed).
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) db: PathBuf,
    /// The address to listen on. Loopback by default; listening on another
    /// interface without --token is allowed but logged as a warning.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,
    /// Serve the web dashboard (and `/metrics`) on this address instead of on
    /// the gRPC port (`--listen`), e.g. `127.0.0.1:8233`; over TLS, with the
    /// same certificate, when `--tls-cert`/`--tls-key` are given.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Require `authorization: Bearer <T>` on every call (and the token to log
    /// in to the dashboard).
    #[arg(
        long,
        visible_alias = "auth-token",
        value_name = "T",
        env = "ACTIVITY_SERVER_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// Largest gRPC request accepted, in bytes (larger ones are refused unread).
    #[arg(long, value_name = "N", default_value_t = activity_remote::ActivityService::DEFAULT_MAX_REQUEST_SIZE)]
    pub(crate) max_request_bytes: usize,
    /// Largest payload (argument, result, details) the engine accepts, in bytes.
    #[arg(long, value_name = "N", default_value_t = activity_engine::EngineConfig::DEFAULT_MAX_PAYLOAD_SIZE)]
    pub(crate) max_payload_bytes: usize,
    /// How long closed workflow runs (with their histories and activities)
    /// and finished standalone activities are kept; then they are deleted,
    /// e.g. `7days`, `12h`.
    #[arg(long, value_name = "DURATION", default_value = "7days", value_parser = humantime::parse_duration)]
    pub(crate) retention: Duration,
    /// Most events in one workflow run's history: a run that passes it is
    /// terminated, with a reason naming the limit.
    #[arg(long, value_name = "N", default_value_t = activity_engine::EngineConfig::DEFAULT_HISTORY_MAX_EVENTS)]
    pub(crate) history_max_events: u64,
    /// Most bytes in one workflow run's history, as --history-max-events.
    #[arg(long, value_name = "N", default_value_t = activity_engine::EngineConfig::DEFAULT_HISTORY_MAX_BYTES)]
    pub(crate) history_max_bytes: u64,
    /// A run's history with this many events gets a HistorySizeWarning event.
    #[arg(long, value_name = "N", default_value_t = activity_engine::EngineConfig::DEFAULT_HISTORY_WARN_EVENTS)]
    pub(crate) history_warn_events: u64,
    /// A run's history of this many bytes gets a HistorySizeWarning event.
    #[arg(long, value_name = "N", default_value_t = activity_engine::EngineConfig::DEFAULT_HISTORY_WARN_BYTES)]
    pub(crate) history_warn_bytes: u64,
    /// How long in-flight calls get to finish on shutdown before the engine
    /// closes (which ends waiting long polls), e.g. `2s`.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_grace: Duration,
    #[command(flatten)]
    pub(crate) tls: ServeTls,
    #[command(flatten)]
    pub(crate) limits: ServeLimits,
}

/// `serve`'s TLS: both files, or neither.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub(crate) struct ServeTls {
    /// Serve over TLS with this certificate chain (PEM, the server's first).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
}

/// `serve`'s connection limits and timeouts (see docs/hardening.md).
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection limits")]
pub(crate) struct ServeLimits {
    /// Connections served at once; one more is refused with UNAVAILABLE.
    #[arg(long, value_name = "N", default_value_t = activity_remote::ServerLimits::default().max_connections)]
    pub(crate) max_connections: usize,
    /// Calls in flight on one connection (HTTP/2 concurrent streams).
    #[arg(long, value_name = "N", default_value_t = activity_remote::ServerLimits::default().max_concurrent_streams)]
    pub(crate) max_concurrent_streams: u32,
    /// Bytes of answers a connection may have unread before its calls wait.
    #[arg(long, value_name = "BYTES", default_value_t = activity_remote::ServerLimits::default().connection_memory)]
    pub(crate) connection_memory_bytes: usize,
    /// Bytes one call's answer may have buffered for sending.
    #[arg(long, value_name = "BYTES", default_value_t = activity_remote::ServerLimits::default().send_buffer)]
    pub(crate) send_buffer_bytes: usize,
    /// Bound on the TLS handshake and the HTTP/2 preface of a new connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) handshake_timeout: Duration,
    /// A connection without a call for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) idle_timeout: Duration,
    /// Interval of keepalive pings.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) keepalive_interval: Duration,
    /// A ping not answered within this closes the connection.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub(crate) keepalive_timeout: Duration,
    /// Bound on receiving a request's body.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) request_body_timeout: Duration,
}

impl ServeLimits {
    pub(crate) fn to_limits(&self) -> activity_remote::ServerLimits {
        activity_remote::ServerLimits::default()
            .with_max_connections(self.max_connections)
            .with_max_concurrent_streams(self.max_concurrent_streams)
            .with_connection_memory(self.connection_memory_bytes)
            .with_send_buffer(self.send_buffer_bytes)
            .with_handshake_timeout(self.handshake_timeout)
            .with_idle_timeout(self.idle_timeout)
            .with_keepalive_interval(self.keepalive_interval)
            .with_keepalive_timeout(self.keepalive_timeout)
            .with_request_body_timeout(self.request_body_timeout)
    }
}

/// How a client command reaches the server.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The server's URL (`http://` or `https://`); several, comma-separated, for
    /// the nodes of one deployment (tried in order when one cannot be reached).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "ACTIVITY_SERVER_URL",
        default_value = DEFAULT_SERVER_URL,
        value_delimiter = ','
    )]
    pub(crate) server: Vec<String>,
    /// Trust this CA (PEM) for `https://` servers (default: the system's roots).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "ACTIVITY_SERVER_TLS_CA"
    )]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to servers that require one.
    #[arg(long, global = true, value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The server's bearer token, if it requires one.
    #[arg(
        long,
        global = true,
        value_name = "T",
        env = "ACTIVITY_SERVER_TOKEN",
        hide_env_values = true
    )]
    pub(crate) auth_token: Option<String>,
    /// Print JSON (one document on stdout) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Bound on connecting and on each call, e.g. `10s`.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

/// Which workflow run.
#[derive(Debug, Args)]
pub(crate) struct WorkflowTarget {
    /// The workflow id.
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,
    /// A specific run (default: the latest run of the id).
    #[arg(long, visible_alias = "run", value_name = "RUN_ID")]
    pub(crate) run_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Starts a workflow run.
    Start {
        /// The workflow type name.
        #[arg(long = "type", value_name = "TYPE")]
        workflow_type: String,
        /// The workflow id (refused while a run with this id is running).
        #[arg(long, value_name = "ID")]
        id: String,
        /// The task queue its workflow tasks (and, by default, activities) go to.
        #[arg(long, value_name = "QUEUE")]
        task_queue: String,
        /// The arguments: a JSON array, one element per argument, e.g. '["ada", 3]'.
        #[arg(long, value_name = "JSON", default_value = "[]")]
        input: String,
        /// Close the run TIMED_OUT when it has run this long, e.g. `10m`
        /// (each run of a continue-as-new chain gets it anew).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        run_timeout: Option<Duration>,
        /// Close the workflow's run TIMED_OUT when this long has passed since
        /// its first run started, across continue-as-new, e.g. `1h`.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        execution_timeout: Option<Duration>,
        /// Whether the id may be reused once its last run closed.
        #[arg(
            long,
            value_enum,
            value_name = "POLICY",
            default_value = "allow-duplicate"
        )]
        id_reuse_policy: IdReusePolicy,
    },
    /// Describes a run: state, times, outcome.
    Describe(WorkflowTarget),
    /// Waits for a run's outcome and prints it, following the runs that took
    /// over from it (continue-as-new, reset); exits 1 if it did not complete.
    Result {
        #[command(flatten)]
        target: WorkflowTarget,
        /// Give up after this long (default: wait until the run closes), e.g. `30s`.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
    },
    /// Requests cancellation of a run.
    Cancel(WorkflowTarget),
    /// Terminates a run at once: no workflow code runs, its open activities are
    /// told the workflow closed, and its history records the reason and who
    /// terminated it (this user and host).
    Terminate {
        #[command(flatten)]
        target: WorkflowTarget,
        /// Why, e.g. 'its workflow type is not deployed anywhere'.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Resets a run to one of its WorkflowTaskCompleted events: a new run of
    /// the id starts with the history up to the task that event answered, and
    /// the current code redoes that task and continues; the run, if running,
    /// is terminated naming the reset. Its history records who (this user and
    /// host) and why.
    Reset {
        #[command(flatten)]
        target: WorkflowTarget,
        /// The id of a WorkflowTaskCompleted event of the run (see `workflow history`).
        #[arg(long, value_name = "N")]
        to_event: u64,
        /// Why, e.g. 'deploy 41 broke determinism'.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Sends a signal to a running run: recorded in its history and delivered
    /// to its code in arrival order.
    Signal {
        #[command(flatten)]
        target: WorkflowTarget,
        /// The signal's name, as the workflow declares it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The payload: one JSON value, e.g. '{"by": "ann"}'.
        #[arg(long, value_name = "JSON", default_value = "null")]
        input: String,
    },
    /// Asks a run's query handler and prints its answer; nothing is written
    /// to the history.
    Query {
        #[command(flatten)]
        target: WorkflowTarget,
        /// The query's name, as the workflow declares it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// How long a worker may take to answer, e.g. `5s`.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Prints a run's history.
    History(WorkflowTarget),
    /// Lists runs, newest first: ids, type, task queue, state, start and close times.
    List {
        /// Only runs in this state.
        #[arg(long, value_enum, value_name = "STATE")]
        state: Option<StateFilter>,
        /// Only runs of this workflow type.
        #[arg(long = "type", value_name = "T")]
        workflow_type: Option<String>,
        /// At most this many runs (the server bounds it to 1000).
        #[arg(long, value_name = "N", default_value_t = activity_core::workflow::DEFAULT_LIST_WORKFLOWS_LIMIT)]
        limit: u32,
    },
}

/// `workflow start --id-reuse-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum IdReusePolicy {
    /// A new run may follow any closed run.
    AllowDuplicate,
    /// Only if the last run did not complete successfully.
    AllowDuplicateFailedOnly,
    /// Never: the id is used once.
    RejectDuplicate,
}

impl From<IdReusePolicy> for activity_core::workflow::WorkflowIdReusePolicy {
    fn from(policy: IdReusePolicy) -> Self {
        match policy {
            IdReusePolicy::AllowDuplicate => Self::AllowDuplicate,
            IdReusePolicy::AllowDuplicateFailedOnly => Self::AllowDuplicateFailedOnly,
            IdReusePolicy::RejectDuplicate => Self::RejectDuplicate,
        }
    }
}

/// `workflow list --state`: the states a run can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateFilter {
    /// Not closed yet.
    Running,
    /// Completed with a result.
    Completed,
    /// Failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Terminated.
    Terminated,
    /// Continued as new (a new run of the same id took over).
    ContinuedAsNew,
    /// Timed out (its run or execution timeout).
    TimedOut,
}

impl From<StateFilter> for WorkflowState {
    fn from(state: StateFilter) -> Self {
        match state {
            StateFilter::Running => WorkflowState::Running,
            StateFilter::Completed => WorkflowState::Completed,
            StateFilter::Failed => WorkflowState::Failed,
            StateFilter::Canceled => WorkflowState::Canceled,
            StateFilter::Terminated => WorkflowState::Terminated,
            StateFilter::ContinuedAsNew => WorkflowState::ContinuedAsNew,
            StateFilter::TimedOut => WorkflowState::TimedOut,
        }
    }
}

/// Which attempt an activity command acts on: a task token, or an execution id.
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "attempt")]
pub(crate) struct AttemptTarget {
    /// The attempt's task token, in hex (as `TaskToken::to_hex` prints it).
    #[arg(long, visible_alias = "task-token", value_name = "HEX")]
    pub(crate) token: Option<String>,
    /// Or: the activity id, acting on its current attempt (add --workflow-id for
    /// an activity of a workflow).
    #[arg(long = "id", value_name = "ID")]
    pub(crate) activity_id: Option<String>,
}

/// Which activity execution.
#[derive(Debug, Args)]
pub(crate) struct ExecutionTarget {
    /// The activity id.
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,
    /// The workflow that scheduled it (none for a standalone activity).
    #[arg(long, value_name = "ID")]
    pub(crate) workflow_id: Option<String>,
    /// The workflow's run (default: its current run).
    #[arg(long, value_name = "RUN_ID", requires = "workflow_id")]
    pub(crate) run_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ActivityCommand {
    /// Starts a standalone activity (no workflow); with --wait, prints its outcome.
    Start(StartActivity),
    /// Completes a started attempt with a result (asynchronous completion).
    Complete {
        #[command(flatten)]
        target: AttemptTarget,
        /// The workflow of the activity, with --id.
        #[arg(long, value_name = "ID", requires = "activity_id")]
        workflow_id: Option<String>,
        /// The result, as JSON.
        #[arg(long, value_name = "JSON")]
        result: String,
    },
    /// Fails a started attempt; the engine retries it or closes the execution.
    Fail {
        #[command(flatten)]
        target: AttemptTarget,
        /// The workflow of the activity, with --id.
        #[arg(long, value_name = "ID", requires = "activity_id")]
        workflow_id: Option<String>,
        /// The failure's message.
        #[arg(long, value_name = "M")]
        message: String,
        /// The failure's error type (matched against `non_retryable_error_types`).
        #[arg(long = "type", value_name = "T", default_value = "CliFailure")]
        error_type: String,
        /// Do not retry: the execution fails now.
        #[arg(long)]
        non_retryable: bool,
        /// Details of the failure, as JSON.
        #[arg(long, value_name = "JSON")]
        details: Option<String>,
    },
    /// Records a heartbeat of a started attempt; tells whether cancellation was requested.
    Heartbeat {
        #[command(flatten)]
        target: AttemptTarget,
        /// The workflow of the activity, with --id.
        #[arg(long, value_name = "ID", requires = "activity_id")]
        workflow_id: Option<String>,
        /// Progress details, as JSON (default: keep the recorded ones).
        #[arg(long, value_name = "JSON")]
        details: Option<String>,
    },
    /// Describes an execution: state, attempt, options, outcome.
    Describe(ExecutionTarget),
    /// Requests cancellation of an execution.
    Cancel(ExecutionTarget),
}

/// `activity start`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct StartActivity {
    /// The activity type name.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) activity_type: String,
    /// The task queue its attempts are dispatched on (a worker serving the type polls it).
    #[arg(long, value_name = "QUEUE")]
    pub(crate) task_queue: String,
    /// The arguments: a JSON array, one element per argument, e.g. '["ada", 3]'.
    #[arg(long, value_name = "JSON", default_value = "[]")]
    pub(crate) input: String,
    /// The activity id, unique among standalone activities (default: one the engine assigns).
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    /// Bound on one attempt, from a worker starting it to its result, e.g. `30s`
    /// (this or --schedule-to-close is required).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) start_to_close: Option<Duration>,
    /// Bound on the whole execution, across all attempts, e.g. `5m`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) schedule_to_close: Option<Duration>,
    /// Bound on one attempt's wait in the queue, e.g. `1m`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) schedule_to_start: Option<Duration>,
    /// Longest gap between heartbeats of a started attempt, e.g. `10s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) heartbeat_timeout: Option<Duration>,
    /// Attempts in all, counting the first (default 0: unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) maximum_attempts: Option<u32>,
    /// Wait for the outcome and print it; exit 1 if the activity failed, timed out
    /// or was canceled.
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskQueueCommand {
    /// Describes a task queue: backlog, recent pollers, rate limit.
    Describe {
        /// The queue's name.
        #[arg(long, value_name = "Q")]
        name: String,
    },
}

/// `types` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TypesCommand {
    /// Lists every registered type: kind, name, task queue, arguments, and when
    /// and by whom it was last registered (`--json` adds the JSON Schemas).
    List,
}

/// Why a command failed. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The server could not be reached.
    #[error(
        "cannot reach the activity server at {endpoint}: {reason}\n\
         Is it running? Start one with `activity-server serve --db PATH` \
         (it listens on {DEFAULT_LISTEN} by default), or point to it with \
         --server URL (or ACTIVITY_SERVER_URL)."
    )]
    Unreachable {
        /// The URL tried.
        endpoint: String,
        /// The transport error.
        reason: String,
    },
    /// The server URL or the token cannot be used.
    #[error("{0}")]
    Connect(#[from] activity_remote::ConnectError),
    /// A file named by an argument cannot be read.
    #[error("cannot read {arg} `{path}`: {source}")]
    File {
        /// The argument, e.g. `--tls-ca`.
        arg: &'static str,
        /// The path given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An argument is not valid.
    #[error("invalid {arg}: {message}")]
    InvalidArg {
        /// The argument, e.g. `--input`.
        arg: &'static str,
        /// What is wrong, and where.
        message: String,
    },
    /// `workflow result --wait` ran out.
    #[error("{workflow} is still running after {waited}; wait longer with --wait, or without it")]
    StillRunning {
        /// The run.
        workflow: String,
        /// How long was waited.
        waited: String,
    },
    /// The server refused the call.
    #[error("{}", protocol_message(.0))]
    Protocol(#[from] ProtocolError),
    /// The server could not be started or stopped cleanly.
    #[error(transparent)]
    Serve(#[from] serve::ServeFailure),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The server's error, with a hint where one helps.
fn protocol_message(error: &ProtocolError) -> String {
    match error {
        ProtocolError::InvalidArgument { field, .. } if field == "authorization" => format!(
            "{error}\nThe server requires a bearer token: pass --auth-token T or set \
             ACTIVITY_SERVER_TOKEN to the token the server was started with."
        ),
        ProtocolError::Unavailable { .. } if activity_remote::is_transport_failure(error) => {
            format!(
                "{error}\nThe server stopped answering; is it still running? \
                 (`activity-server serve` restarts it on the same --db)"
            )
        }
        ProtocolError::Unavailable { .. } => {
            format!("{error}\nThe server could not do it now; the call may be retried.")
        }
        _ => error.to_string(),
    }
}

/// The contents of the file `path` given as `arg`.
pub(crate) fn read_file(arg: &'static str, path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::File {
        arg,
        path: path.display().to_string(),
        source,
    })
}

impl Cli {
    /// Parses the process's arguments. Help and version are printed and exit 0;
    /// another usage error exits 2, printed as JSON on stdout when `--json` is
    /// among the arguments (as every other error of a `--json` command is).
    pub(crate) fn parse_args() -> Result<Cli, ExitCode> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Ok(cli) => Ok(cli),
            Err(err) if err.use_stderr() && args.iter().any(|a| a == "--json") => {
                let message = err.render().to_string();
                let document = json!({ "error": {
                    "kind": "usage",
                    "message": message.trim_end(),
                    "retryable": false,
                }});
                println!("{document:#}");
                Err(ExitCode::from(2))
            }
            Err(err) => err.exit(),
        }
    }

    /// Whether the command prints JSON (`--json`): its errors then do too.
    pub(crate) fn json_output(&self) -> bool {
        match &self.command {
            Command::Serve(_) => false,
            Command::Workflow { connection, .. }
            | Command::Activity { connection, .. }
            | Command::TaskQueue { connection, .. }
            | Command::Types { connection, .. } => connection.json,
        }
    }
}

impl CliError {
    /// The error as the JSON document a `--json` command prints on stdout:
    /// `{"error": {"kind", "message", "retryable", …the fields it names}}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut error = Map::new();
        let (kind, retryable) = match self {
            CliError::Unreachable { endpoint, .. } => {
                error.insert("endpoint".into(), json!(endpoint));
                ("unreachable", true)
            }
            CliError::Connect(err) => ("connect", err.is_retryable()),
            CliError::File { arg, path, .. } => {
                error.insert("argument".into(), json!(arg));
                error.insert("path".into(), json!(path));
                ("file", false)
            }
            CliError::InvalidArg { arg, .. } => {
                error.insert("argument".into(), json!(arg));
                ("invalid_argument", false)
            }
            CliError::StillRunning { workflow, .. } => {
                error.insert("workflow".into(), json!(workflow));
                ("still_running", true)
            }
            CliError::Protocol(err) => {
                error.extend(view::protocol_error_fields(err));
                (view::protocol_error_kind(err), err.is_retryable())
            }
            CliError::Serve(_) => ("serve", false),
            CliError::Output(_) => ("output", false),
            CliError::Runtime(_) => ("runtime", false),
        };
        error.insert("kind".into(), json!(kind));
        error.insert("message".into(), json!(self.to_string()));
        error.insert("retryable".into(), json!(retryable));
        json!({ "error": error })
    }

    /// Prints the error: as JSON on stdout with `json`, else as text on stderr
    /// (its names and payloads escaped for the terminal).
    pub(crate) fn report(&self, json: bool) {
        if json {
            println!("{:#}", self.to_json());
        } else {
            eprintln!("error: {}", view::escape(&self.to_string(), true));
        }
    }
}

/// Runs the command; the exit code on success (a command may succeed and still
/// report a non-zero code, e.g. the result of a failed workflow).
/// Logs to stderr; `RUST_LOG` filters (default: `info` for `serve`, `warn`
/// for the client commands, whose answers go to stdout).
/// With the `otel` feature, `serve` also exports spans over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (module `otel`).
fn init_logging(default: &str, serve: bool) -> Telemetry {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
    // A second initialisation (never in the binary) is harmless: keep the first.
    #[cfg(feature = "otel")]
    if serve {
        let (export, telemetry) = otel::install();
        let _ = registry.with(export).try_init();
        return telemetry;
    }
    let _ = serve;
    let _ = registry.try_init();
    Telemetry::none()
}

/// What `init_logging` installed beyond the log lines.
#[cfg(feature = "otel")]
use otel::Telemetry;

/// Nothing: built without the `otel` feature.
#[cfg(not(feature = "otel"))]
struct Telemetry;

#[cfg(not(feature = "otel"))]
impl Telemetry {
    fn none() -> Self {
        Telemetry
    }

    async fn shutdown(self) {}
}

pub(crate) async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let serving = matches!(cli.command, Command::Serve(_));
    let telemetry = init_logging(if serving { "info" } else { "warn" }, serving);
    match cli.command {
        Command::Serve(args) => {
            let served = serve::run(args).await;
            telemetry.shutdown().await;
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow {
            connection,
            command,
        } => client::workflow(&connection, command).await,
        Command::Activity {
            connection,
            command,
        } => client::activity(&connection, command).await,
        Command::TaskQueue {
            connection,
            command,
        } => client::task_queue(&connection, command).await,
        Command::Types {
            connection,
            command,
        } => client::types(&connection, command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_activity_command_takes_a_token_or_an_id_but_not_both() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        assert!(parse(&[
            "activity-server",
            "activity",
            "complete",
            "--token",
            "ab",
            "--result",
            "1"
        ])
        .is_ok());
        assert!(parse(&[
            "activity-server",
            "activity",
            "complete",
            "--id",
            "a",
            "--result",
            "1"
        ])
        .is_ok());
        assert!(parse(&["activity-server", "activity", "complete", "--result", "1"]).is_err());
        assert!(parse(&[
            "activity-server",
            "activity",
            "complete",
            "--token",
            "ab",
            "--id",
            "a",
            "--result",
            "1"
        ])
        .is_err());
        // The connection options are accepted after the subcommand too.
        let cli = parse(&[
            "activity-server",
            "workflow",
            "describe",
            "--id",
            "w",
            "--json",
            "--server",
            "http://127.0.0.1:1,https://node-b:7233",
        ])
        .expect("parses");
        let Command::Workflow { connection, .. } = cli.command else {
            panic!("a workflow command")
        };
        assert!(connection.json);
        assert_eq!(
            connection.server,
            ["http://127.0.0.1:1", "https://node-b:7233"]
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let err = parse(&[
            "activity-server",
            "serve",
            "--db",
            "x.db",
            "--tls-cert",
            "c.pem",
        ])
        .expect_err("a certificate without its key");
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let err = parse(&["activity-server", "types", "list", "--tls-key", "k.pem"])
            .expect_err("a key without its certificate");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        let cli = parse(&[
            "activity-server",
            "serve",
            "--db",
            "x.db",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
            "--max-connections",
            "50",
            "--idle-timeout",
            "1m",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert!(args.tls.tls_client_ca.is_some());
        let limits = args.limits.to_limits();
        assert_eq!(limits.max_connections, 50);
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        // Without flags, serve's limits are the library's defaults.
        let cli = parse(&["activity-server", "serve", "--db", "x.db"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(
            args.limits.to_limits(),
            activity_remote::ServerLimits::default()
        );
    }

    #[test]
    fn workflow_list_takes_filters_and_defaults_its_limit() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let cli = parse(&["activity-server", "workflow", "list"]).expect("parses");
        let Command::Workflow {
            command: WorkflowCommand::List { state, limit, .. },
            ..
        } = cli.command
        else {
            panic!("workflow list")
        };
        assert_eq!((state, limit), (None, 100));
        let cli = parse(&[
            "activity-server",
            "workflow",
            "list",
            "--state",
            "completed",
            "--type",
            "order",
            "--limit",
            "5",
            "--json",
        ])
        .expect("parses");
        let Command::Workflow {
            connection,
            command:
                WorkflowCommand::List {
                    state,
                    workflow_type,
                    limit,
                },
        } = cli.command
        else {
            panic!("workflow list")
        };
        assert!(connection.json);
        assert_eq!(
            state.map(WorkflowState::from),
            Some(WorkflowState::Completed)
        );
        assert_eq!((workflow_type.as_deref(), limit), (Some("order"), 5));
        assert!(parse(&["activity-server", "workflow", "list", "--state", "done"]).is_err());
    }

    #[test]
    fn serve_listens_on_loopback_by_default() {
        let cli =
            Cli::try_parse_from(["activity-server", "serve", "--db", "x.db"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert!(args.listen.ip().is_loopback());
        assert_eq!(args.listen.port(), 7233);
    }
}
