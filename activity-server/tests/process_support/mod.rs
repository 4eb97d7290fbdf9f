//! Shared helpers of the process tests: the built `activity-server` binary run
//! as a child process (`serve` on loopback, CLI commands), every wait bounded,
//! every child killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::{
    future::IntoFuture,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use activity_core::ActivityProtocol;
use activity_remote::{RemoteConfig, RemoteProtocol};

pub const BIN: &str = env!("CARGO_BIN_EXE_activity-server");

/// Every wait in these tests is bounded by this.
pub const BOUND: Duration = Duration::from_secs(15);

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub async fn bounded<T>(what: &str, future: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(BOUND, future.into_future())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// Polls `condition` every 20 ms until it holds, failing after [`BOUND`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    bounded(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A command of the binary with a clean environment (no token or server URL
/// inherited from the developer's shell).
fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("ACTIVITY_SERVER_TOKEN")
        .env_remove("ACTIVITY_SERVER_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// `activity-server serve` as a child process; killed (SIGKILL) on drop.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    db: PathBuf,
    /// Where its logs go: this path with `.<n>.log` for its n-th start.
    log_base: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
}

impl ServerProcess {
    /// Serves `db` on a free loopback port, with `extra` arguments.
    pub fn start(db: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_on(
            db,
            db,
            "127.0.0.1:0",
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Serves the PostgreSQL database at `url` (one node of it) on a free
    /// loopback port, with `extra` arguments, logging to files `log_base.<n>.log`.
    pub fn start_postgres(url: &str, log_base: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_on(
            Path::new(url),
            log_base,
            "127.0.0.1:0",
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn start_on(db: &Path, log_base: &Path, listen: &str, extra: Vec<String>) -> ServerProcess {
        let log = log_base.with_extension(format!("{}.log", unique()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = command()
            .args(["serve", "--db"])
            .arg(db)
            .args(["--listen", listen, "--shutdown-grace", "200ms"])
            .args(&extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + BOUND;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("activity-server listening on ") {
                        break addr.parse().expect("an address");
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not say it was listening within {BOUND:?}; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let addr: SocketAddr = addr;
        assert!(addr.ip().is_loopback(), "{addr}");
        ServerProcess {
            child: Some(child),
            addr,
            db: db.to_owned(),
            log_base: log_base.to_owned(),
            log,
            extra,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
        }
    }

    /// Starts the server again on the same file and port.
    pub fn restart(&mut self) {
        self.kill9();
        let again = Self::start_on(
            &self.db,
            &self.log_base,
            &self.addr.to_string(),
            self.extra.clone(),
        );
        assert_eq!(again.addr, self.addr);
        *self = again;
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success());
        wait_bounded(&mut child, "the server's graceful shutdown")
    }

    /// A remote protocol connected to the server.
    pub async fn remote(&self) -> Arc<dyn ActivityProtocol> {
        self.remote_with(RemoteConfig::new(self.url())).await
    }

    pub async fn remote_with(&self, config: RemoteConfig) -> Arc<dyn ActivityProtocol> {
        Arc::new(
            bounded("connect", RemoteProtocol::connect(config))
                .await
                .expect("connects"),
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct CliRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Asserts success and parses stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        assert!(self.status.success(), "the CLI failed: {self:#?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts failure and returns stderr.
    pub fn error(&self) -> &str {
        assert!(!self.status.success(), "the CLI succeeded: {self:#?}");
        assert!(
            self.stdout.is_empty(),
            "output despite the error: {self:#?}"
        );
        &self.stderr
    }
}

/// Runs the CLI with `args` in a child process (off the async runtime), bounded.
pub async fn cli(args: &[&str]) -> CliRun {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let what = format!("activity-server {}", args.join(" "));
    tokio::task::spawn_blocking(move || {
        let mut child = command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        // Read both pipes while waiting, so a long output cannot block the child.
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut text);
                }
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let status = wait_bounded(&mut child, &what);
        CliRun {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    })
    .await
    .expect("the CLI task")
}

/// This test binary run again as a child process (a worker the test kills), with
/// `vars` set; its output is discarded. SIGKILLed and reaped on drop.
pub struct SelfChild {
    child: Child,
}

impl SelfChild {
    pub fn start(vars: &[(&str, &std::ffi::OsStr)]) -> SelfChild {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        SelfChild {
            child: command.spawn().expect("the worker child starts"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reaps the child: once this returns, it runs no more code.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SelfChild {
    fn drop(&mut self) {
        self.kill9();
    }
}
