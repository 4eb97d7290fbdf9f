//! The PostgreSQL store: one database shared by any number of engine nodes.
//!
//! # Driver and threads
//!
//! [`Tx`](super::Tx) is synchronous (the rules are plain functions on one open
//! transaction), so the store runs its transactions on threads of its own with
//! the synchronous `postgres` client (tokio-postgres underneath, driven by a
//! runtime of its own per connection): a job runs its statements one after the
//! other, as the rules are written, and the engine's async runtime never blocks.
//! The pool is a fixed set of writer threads, each owning one connection
//! ([`PostgresConfig::with_connections`]) and reopening it when it breaks; a
//! pool crate would add nothing when every connection is held for a thread's
//! whole life. Each writer takes whatever jobs are queued when it is free and
//! runs them in one transaction, each in its own savepoint (group commit per
//! connection), answering them after the `COMMIT`.
//!
//! # Several nodes
//!
//! - Claims lock what they take and skip what others hold (`FOR NO KEY UPDATE
//!   SKIP LOCKED`): attempts, workflow tasks, and due timers together with
//!   their execution or run, so each goes to one node. Every other read of an
//!   execution or a run in a transaction locks its row (`FOR NO KEY UPDATE`),
//!   so two nodes never both act on one attempt, except in jobs that only read
//!   (outcome waits, describes), which lock nothing so that claims never skip
//!   what is merely looked at; a rate-limited queue's row is locked for its
//!   shared token bucket (see the `sql` module).
//! - Lock conflicts never reach the caller. A batch's jobs take row locks in
//!   the order they run and hold them until the `COMMIT`, so two transactions
//!   (two nodes, or two writers of one node) can each wait for a row the other
//!   holds. A job that is not the first of its transaction waits at most
//!   `LOCK_WAIT` for a lock (`SET LOCAL lock_timeout`); a job that meets a
//!   lock timeout (SQLSTATE `55P03`), a deadlock (`40P01`) or a serialization
//!   failure (`40001`) is rolled back to its savepoint and runs again, first
//!   in the writer's next transaction, once this one's commit has released
//!   what it held. The first job of a transaction holds no other job's locks
//!   and waits as PostgreSQL lets it; a job that meets `MAX_CONFLICTS`
//!   conflicts even there is answered [`StoreError::Unavailable`]
//!   (retryable). Jobs are `Fn`, so a second run starts from the same
//!   request; nothing of the first is kept (changes, wake-ups, results).
//!   Each re-run counts in `activity_store_conflicts_total` (label `reason`:
//!   `lock_timeout`, `deadlock`, `serialization`). A broken connection or a
//!   failed `COMMIT` fails the whole batch, nothing of it kept.
//! - Wake-ups: a job [`publish`](super::Tx::publish)es what it made happen; the
//!   writer sends it with `pg_notify` in the same transaction (delivered only on
//!   commit), and a listener connection per node (`LISTEN`) hands what the
//!   other nodes sent to the engine ([`Store::wakeups`]). No correctness
//!   depends on it: the engine also re-reads the store on its own.
//! - The schema is created and upgraded under an advisory lock (see
//!   [`schema`]); the task-token key is made by the first node and read by the
//!   others from the `meta` table.

use std::{
    collections::{HashMap, HashSet},
    error::Error,
    panic::{catch_unwind, AssertUnwindSafe},
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::Duration,
};

use activity_core::definition::BoxFuture;
use postgres::{
    fallible_iterator::FallibleIterator,
    types::{to_sql_checked, IsNull, ToSql, Type},
    Client, NoTls, Statement,
};

use super::{
    sql::{Conn, Lock, Param, Query, SqlTx, Value},
    InFlight, Store, StoreError, TxJob, Wakeup,
};

pub mod schema;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;
/// Largest `NOTIFY` payload sent (PostgreSQL's limit is 8000 bytes).
const MAX_NOTIFY: usize = 7000;
/// Longest wait for a row lock of a job that is not the first of its
/// transaction (earlier jobs hold locks already): past it the job is rolled
/// back and run again after the commit, so that two transactions never wait
/// on each other for long (see the module docs).
const LOCK_WAIT: &str = "50ms";
/// Lock conflicts (deadlocks, lock timeouts) a job may meet while first in its
/// transaction, holding no other job's locks, before it is answered with the
/// conflict (retryable) instead of being run again.
const MAX_CONFLICTS: u32 = 8;

/// Where a PostgreSQL store is and how it connects.
///
/// The URL may name the schema that holds the tables with a `schema`
/// parameter, which is the store's and is not sent to the server
/// (`postgres://app@db/activities?schema=orders`); [`PostgresConfig::with_schema`]
/// given afterwards wins over it.
///
/// ```
/// use activity_engine::store::postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@db.internal/activities?schema=orders&connect_timeout=5");
/// assert_eq!(config.schema, "orders");
/// assert_eq!(config.url, "postgres://app@db.internal/activities?connect_timeout=5");
/// assert_eq!(PostgresConfig::new("postgres://app@db.internal/activities").schema, "public");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The connection URL (`postgres://user:password@host:port/database`),
    /// without the store's own `schema` parameter.
    pub url: String,
    /// The schema that holds the tables (created if missing).
    pub schema: String,
    /// Connections (writer threads) of this node.
    pub connections: usize,
    /// Drop the schema when the store closes (a store for one test).
    pub temporary: bool,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted(&self.url))
            .field("schema", &self.schema)
            .field("connections", &self.connections)
            .field("temporary", &self.temporary)
            .finish()
    }
}

impl PostgresConfig {
    /// The database at `url`, in the schema its `schema` parameter names
    /// (`public` without one), 4 connections.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let (url, schema) = split_schema(&url);
        Self {
            url,
            schema: schema.unwrap_or_else(|| "public".into()),
            connections: 4,
            temporary: false,
        }
    }

    /// Keeps the tables in `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the number of connections (and writer threads) of this node.
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// Drops the schema when the store closes.
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }
}

/// `url` without its `schema` parameter, and the schema it names (percent
/// decoded; the last one if given twice).
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for param in query.split('&') {
        match param.split_once('=') {
            Some(("schema", value)) => schema = Some(percent_decoded(value)),
            _ if param == "schema" => schema = Some(String::new()),
            _ => rest.push(param),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

/// `text` with its `%XX` escapes decoded (and `+` as a space, as in a query).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without its password, for messages (with the schema it names, if any).
pub fn redacted(url: &str) -> String {
    let (url, schema) = split_schema(url);
    let schema = schema.map_or_else(String::new, |s| format!("?schema={s}"));
    match postgres::Config::from_str(&url) {
        Ok(config) => {
            let user = config.get_user().unwrap_or("");
            let host = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let port = config
                .get_ports()
                .first()
                .map_or(String::new(), |p| format!(":{p}"));
            let db = config.get_dbname().unwrap_or("");
            let password = if config.get_password().is_some() {
                ":***"
            } else {
                ""
            };
            format!("postgres://{user}{password}@{host}{port}/{db}{schema}")
        }
        Err(_) => "(an unreadable PostgreSQL URL)".into(),
    }
}

/// Refuses a schema name PostgreSQL would not keep as given.
fn check_schema(schema: &str) -> Result<(), StoreError> {
    if schema.is_empty() {
        return Err(StoreError::Backend(
            "the PostgreSQL schema name is empty; name one with `?schema=NAME` in the URL \
             (or leave the parameter out for `public`)"
                .into(),
        ));
    }
    if schema.len() > 63 || schema.contains('\0') {
        return Err(StoreError::Backend(format!(
            "the PostgreSQL schema name `{schema}` is not usable: it must be at most 63 bytes \
             (PostgreSQL would cut it) without NUL characters"
        )));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the writer threads and the listener share.
struct Settings {
    connect: postgres::Config,
    url: String,
    schema: String,
    channel: String,
    /// Backend process ids of this node's writer connections (their
    /// notifications are not delivered back to this node).
    own: Mutex<HashSet<i32>>,
    stop: AtomicBool,
}

impl Settings {
    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.connect.connect(NoTls).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to {}: {}; check that PostgreSQL runs there, the database \
                 exists and accepts this user",
                redacted(&self.url),
                message(&e)
            ))
        })?;
        client
            .batch_execute(&format!("SET search_path TO {}", quoted(&self.schema)))
            .map_err(pg_error)?;
        Ok(client)
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// A job waiting for its transaction, and where its answer goes.
struct Work {
    job: TxJob,
    reply: Reply,
    /// Lock conflicts it met while first in its transaction.
    conflicts: u32,
}

/// The PostgreSQL store. See the [module docs](self).
pub struct PostgresStore {
    sender: Mutex<Option<mpsc::Sender<Work>>>,
    settings: Arc<Settings>,
    temporary: bool,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    in_flight: Arc<InFlight>,
    wakeups: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Vec<Wakeup>>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redacted(&self.settings.url))
            .field("schema", &self.settings.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates or upgrades the schema, and starts the writers and
    /// the listener. Blocks: call it off the async runtime (e.g. in
    /// `spawn_blocking`).
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let connect = postgres::Config::from_str(&config.url)
            .map_err(|e| {
                StoreError::Backend(format!(
                    "`{}` is not a PostgreSQL URL ({e}); write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                    redacted(&config.url)
                ))
            })?
            .application_name("activity-engine")
            .connect_timeout(Duration::from_secs(10))
            .to_owned();
        if config.connections == 0 {
            return Err(StoreError::Backend(
                "a PostgreSQL store needs at least one connection".into(),
            ));
        }
        check_schema(&config.schema)?;
        let channel: String = format!("activity_{}", config.schema)
            .chars()
            .take(63)
            .collect();
        let settings = Arc::new(Settings {
            connect,
            url: config.url.clone(),
            schema: config.schema.clone(),
            channel,
            own: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let mut first = settings.connect()?;
        schema::migrate(&mut first, &config.schema)?;
        drop(first);

        let (sender, receiver) = mpsc::channel::<Work>();
        let receiver = Arc::new(Mutex::new(receiver));
        let in_flight = Arc::new(InFlight::default());
        let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut threads = Vec::new();
        for i in 0..config.connections {
            let (settings, receiver, in_flight) =
                (settings.clone(), receiver.clone(), in_flight.clone());
            threads.push(
                thread::Builder::new()
                    .name(format!("activity-pg-writer-{i}"))
                    .spawn(move || writer(&settings, &receiver, &in_flight))
                    .map_err(|e| StoreError::Unavailable(format!("cannot start a writer: {e}")))?,
            );
        }
        let listener_settings = settings.clone();
        threads.push(
            thread::Builder::new()
                .name("activity-pg-listener".into())
                .spawn(move || listener(&listener_settings, &wake_tx))
                .map_err(|e| StoreError::Unavailable(format!("cannot start the listener: {e}")))?,
        );
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            settings,
            temporary: config.temporary,
            threads: Mutex::new(threads),
            in_flight,
            wakeups: Mutex::new(Some(wake_rx)),
        })
    }

    /// Stops the threads (after the jobs handed over) and drops a temporary
    /// schema. Blocks.
    fn shut_down(settings: &Settings, threads: Vec<thread::JoinHandle<()>>, temporary: bool) {
        settings.stop.store(true, Ordering::SeqCst);
        for thread in threads {
            let _ = thread.join();
        }
        if temporary {
            match settings.connect() {
                Ok(mut client) => {
                    let drop =
                        format!("DROP SCHEMA IF EXISTS {} CASCADE", quoted(&settings.schema));
                    if let Err(err) = client.batch_execute(&drop) {
                        tracing::warn!(schema = %settings.schema, error = %pg_error(err), "cannot drop the temporary schema");
                    }
                }
                Err(err) => {
                    tracing::warn!(schema = %settings.schema, error = %err, "cannot drop the temporary schema")
                }
            }
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        drop(lock(&self.sender).take());
        let threads = std::mem::take(&mut *lock(&self.threads));
        if threads.is_empty() {
            return;
        }
        // The client blocks on a runtime of its own: not on an async thread.
        let settings = self.settings.clone();
        let temporary = self.temporary;
        let _ = thread::spawn(move || Self::shut_down(&settings, threads, temporary)).join();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store for PostgresStore {
    fn transact(&self, job: TxJob) -> BoxFuture<'static, Result<(), StoreError>> {
        let sender = lock(&self.sender).clone();
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            let Some(sender) = sender else {
                return Err(StoreError::Closed);
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            in_flight.begin();
            let work = Work {
                job,
                reply,
                conflicts: 0,
            };
            if sender.send(work).is_err() {
                in_flight.end(1);
                return Err(StoreError::Closed);
            }
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        drop(lock(&self.sender).take());
        let threads = std::mem::take(&mut *lock(&self.threads));
        let settings = self.settings.clone();
        let temporary = self.temporary;
        Box::pin(async move {
            if !threads.is_empty() {
                let _ = tokio::task::spawn_blocking(move || {
                    Self::shut_down(&settings, threads, temporary)
                })
                .await;
            }
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Vec<Wakeup>>> {
        lock(&self.wakeups).take()
    }
}

/// One writer's connection and its prepared statements.
struct Connection {
    client: Client,
    pid: i32,
    statements: HashMap<(&'static str, Lock), Statement>,
}

impl Connection {
    fn open(settings: &Settings) -> Result<Self, StoreError> {
        let mut client = settings.connect()?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(pg_error)?
            .get(0);
        lock(&settings.own).insert(pid);
        Ok(Self {
            client,
            pid,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, query: &Query) -> Result<Statement, StoreError> {
        let key = (query.sql, query.lock);
        if let Some(statement) = self.statements.get(&key) {
            return Ok(statement.clone());
        }
        let sql = match query.lock {
            Lock::None => query.sql.to_owned(),
            Lock::ForUpdate => format!("{} FOR NO KEY UPDATE", query.sql),
            Lock::SkipLocked => format!("{} FOR NO KEY UPDATE SKIP LOCKED", query.sql),
        };
        let statement = self.client.prepare(&sql).map_err(pg_error)?;
        self.statements.insert(key, statement.clone());
        Ok(statement)
    }
}

fn writer(settings: &Settings, receiver: &Mutex<mpsc::Receiver<Work>>, in_flight: &InFlight) {
    let mut connection: Option<Connection> = None;
    // Jobs rolled back on a lock conflict: the next transaction runs them
    // first, before newer jobs.
    let mut again: Vec<Work> = Vec::new();
    loop {
        let batch = {
            let receiver = lock(receiver);
            let mut batch = std::mem::take(&mut again);
            if batch.is_empty() {
                let Ok(first) = receiver.recv() else {
                    break;
                };
                batch.push(first);
            }
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(work) => batch.push(work),
                    Err(_) => break,
                }
            }
            batch
        };
        let taken = batch.len();
        if connection.as_ref().is_some_and(|c| c.client.is_closed()) {
            if let Some(old) = connection.take() {
                lock(&settings.own).remove(&old.pid);
            }
        }
        if connection.is_none() {
            match Connection::open(settings) {
                Ok(c) => connection = Some(c),
                Err(err) => {
                    for work in batch {
                        let _ = work.reply.send(Err(err.clone()));
                    }
                    in_flight.end(u64::try_from(taken).unwrap_or(u64::MAX));
                    // Do not spin against a database that is down.
                    thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
        }
        if let Some(c) = connection.as_mut() {
            again = run_batch(c, settings, batch);
        }
        in_flight.end(u64::try_from(taken - again.len()).unwrap_or(u64::MAX));
    }
    if let Some(old) = connection {
        lock(&settings.own).remove(&old.pid);
    }
}

/// Runs `jobs` in one transaction and answers them after its `COMMIT`, except
/// the jobs rolled back on a lock conflict, which are returned, unanswered, to
/// run again in the next transaction (nothing of them was kept).
fn run_batch(connection: &mut Connection, settings: &Settings, jobs: Vec<Work>) -> Vec<Work> {
    let began = std::time::Instant::now();
    if let Err(e) = connection.client.batch_execute("BEGIN") {
        let err = pg_error(e);
        for work in jobs {
            let _ = work.reply.send(Err(err.clone()));
        }
        return Vec::new();
    }
    let mut replies = Vec::with_capacity(jobs.len());
    let mut again = Vec::new();
    let mut broken: Option<StoreError> = None;
    let mut wakeups = Vec::new();
    // Whether jobs of this transaction hold locks (a job kept its changes),
    // and whether later jobs' lock waits are bounded yet.
    let (mut holding, mut bounded) = (false, false);
    for mut work in jobs {
        if broken.is_some() {
            replies.push((work.reply, None));
            continue;
        }
        let savepoint = if holding && !bounded {
            bounded = true;
            format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'; SAVEPOINT job")
        } else {
            "SAVEPOINT job".to_owned()
        };
        if let Err(e) = connection.client.batch_execute(&savepoint) {
            broken = Some(pg_error(e));
            replies.push((work.reply, None));
            continue;
        }
        let mut published = Vec::new();
        let mut failed = None;
        let mut conflict = None;
        let keep = {
            let mut conn = PgConn {
                connection: &mut *connection,
                published: &mut published,
                failed: &mut failed,
                conflict: &mut conflict,
                locking: true,
            };
            let mut tx = SqlTx::new(&mut conn);
            catch_unwind(AssertUnwindSafe(|| (work.job)(&mut tx))).unwrap_or(false)
        };
        let kept = keep && failed.is_none();
        let end = if kept {
            wakeups.extend(published);
            connection.client.batch_execute("RELEASE SAVEPOINT job")
        } else {
            connection
                .client
                .batch_execute("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")
        };
        if let Err(e) = end {
            broken = Some(pg_error(e));
        }
        if let (Some(reason), None) = (conflict, &broken) {
            // The job met another transaction's locks: it runs again, after
            // this transaction's commit has released the locks it holds.
            metrics::counter!("activity_store_conflicts_total", "reason" => reason).increment(1);
            if !holding {
                work.conflicts += 1;
            }
            if work.conflicts <= MAX_CONFLICTS {
                tracing::debug!(
                    reason,
                    conflicts = work.conflicts,
                    "a job met a lock conflict; it runs again"
                );
                again.push(work);
                continue;
            }
            tracing::warn!(
                reason,
                conflicts = work.conflicts,
                "a job kept meeting lock conflicts; answered unavailable"
            );
        }
        holding |= kept;
        // A job that kept going after a failed statement is answered with
        // that failure (its changes were rolled back).
        replies.push((work.reply, failed.filter(|_| keep)));
    }
    if broken.is_none() && !wakeups.is_empty() {
        if let Err(err) = notify(connection, &settings.channel, &wakeups) {
            broken = Some(err);
        }
    }
    let outcome = match broken {
        Some(err) => Err(err),
        // The commit waits for the queue of notifications without a bound.
        None if bounded => connection
            .client
            .batch_execute("SET LOCAL lock_timeout TO DEFAULT; COMMIT")
            .map_err(pg_error),
        None => connection.client.batch_execute("COMMIT").map_err(pg_error),
    };
    match outcome {
        // The metrics of the engine's module docs (`activity_engine::engine::metrics`).
        Ok(()) => {
            metrics::histogram!("activity_store_commit_seconds")
                .record(began.elapsed().as_secs_f64());
            metrics::histogram!("activity_store_batch_jobs").record(replies.len() as f64);
        }
        Err(_) => {
            let _ = connection.client.batch_execute("ROLLBACK");
        }
    }
    for (reply, failed) in replies {
        let answer = match (&outcome, failed) {
            (Ok(()), Some(err)) => Err(err),
            (outcome, _) => outcome.clone(),
        };
        let _ = reply.send(answer);
    }
    again
}

/// Sends the batch's wake-ups on commit, in payloads under PostgreSQL's limit.
fn notify(
    connection: &mut Connection,
    channel: &str,
    wakeups: &[Wakeup],
) -> Result<(), StoreError> {
    let mut payloads: Vec<String> = Vec::new();
    let mut chunk: Vec<&Wakeup> = Vec::new();
    let mut size = 2;
    for wakeup in wakeups {
        let one = serde_json::to_string(wakeup)
            .map_err(|e| StoreError::Backend(format!("cannot encode a wake-up: {e}")))?;
        if one.len() + 3 > MAX_NOTIFY {
            // Too large to send (a very long name): a broad one instead.
            chunk.push(&Wakeup::All);
            continue;
        }
        if size + one.len() + 1 > MAX_NOTIFY {
            payloads.push(
                serde_json::to_string(&chunk)
                    .map_err(|e| StoreError::Backend(format!("cannot encode a wake-up: {e}")))?,
            );
            chunk.clear();
            size = 2;
        }
        size += one.len() + 1;
        chunk.push(wakeup);
    }
    if !chunk.is_empty() {
        payloads.push(
            serde_json::to_string(&chunk)
                .map_err(|e| StoreError::Backend(format!("cannot encode a wake-up: {e}")))?,
        );
    }
    connection
        .client
        .execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            &[&channel, &payloads],
        )
        .map(drop)
        .map_err(pg_error)
}

/// Delivers what other nodes published, reconnecting when the connection breaks.
fn listener(settings: &Settings, wakeups: &tokio::sync::mpsc::UnboundedSender<Vec<Wakeup>>) {
    let mut first = true;
    while !settings.stop.load(Ordering::SeqCst) {
        let mut client = match settings.connect().and_then(|mut client| {
            client
                .batch_execute(&format!("LISTEN {}", quoted(&settings.channel)))
                .map_err(pg_error)?;
            Ok(client)
        }) {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for other nodes' wake-ups; retrying in 1 s");
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if !first {
            // Notifications may have been missed while disconnected.
            let _ = wakeups.send(vec![Wakeup::All]);
        }
        first = false;
        while !settings.stop.load(Ordering::SeqCst) && !client.is_closed() {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(250));
            loop {
                match iter.next() {
                    Ok(Some(n)) => {
                        if lock(&settings.own).contains(&n.process_id()) {
                            continue;
                        }
                        match serde_json::from_str::<Vec<Wakeup>>(n.payload()) {
                            Ok(list) => {
                                if wakeups.send(list).is_err() {
                                    return;
                                }
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "an unreadable wake-up from another node")
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %pg_error(err), "the wake-up listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}

/// The shared SQL on a writer's connection.
struct PgConn<'a> {
    connection: &'a mut Connection,
    published: &'a mut Vec<Wakeup>,
    /// The first failed statement: the transaction is aborted until the
    /// job's savepoint is rolled back, so the job is answered with it.
    failed: &'a mut Option<StoreError>,
    /// The first lock conflict met (a metric's label): the job runs again.
    conflict: &'a mut Option<&'static str>,
    /// Whether reads lock rows (not after [`Conn::reads_only`]).
    locking: bool,
}

impl PgConn<'_> {
    fn statement(&mut self, query: &Query) -> Result<Statement, StoreError> {
        if self.locking {
            self.connection.statement(query)
        } else {
            self.connection.statement(&Query::new(query.sql))
        }
    }

    fn check<T>(&mut self, result: Result<T, postgres::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            if self.conflict.is_none() {
                *self.conflict = conflict(&e);
            }
            let err = pg_error(e);
            if self.failed.is_none() {
                *self.failed = Some(err.clone());
            }
            err
        })
    }
}

impl Conn for PgConn<'_> {
    fn execute(&mut self, query: &Query, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(query)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let result = self.connection.client.execute(&statement, &refs);
        self.check(result)
    }

    fn query(
        &mut self,
        query: &Query,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let statement = self.statement(query)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let result = self.connection.client.query(&statement, &refs);
        let rows = self.check(result)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| value(row, i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect()
    }

    fn row_locks(&self) -> bool {
        true
    }

    fn publish(&mut self, wakeups: Vec<Wakeup>) {
        self.published.extend(wakeups);
    }

    fn reads_only(&mut self) {
        self.locking = false;
    }
}

fn value(row: &postgres::Row, i: usize) -> Result<Value, StoreError> {
    let column = &row.columns()[i];
    let read = |e: postgres::Error| {
        StoreError::Corrupt(format!("column `{}`: {}", column.name(), message(&e)))
    };
    let ty = column.type_();
    Ok(if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)
            .map_err(read)?
            .map_or(Value::Null, Value::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)
            .map_err(read)?
            .map_or(Value::Null, |v| Value::Int(i64::from(v)))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)
            .map_err(read)?
            .map_or(Value::Null, Value::Bool)
    } else if *ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i)
            .map_err(read)?
            .map_or(Value::Null, Value::Real)
    } else if *ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(i)
            .map_err(read)?
            .map_or(Value::Null, Value::Blob)
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
        row.try_get::<_, Option<String>>(i)
            .map_err(read)?
            .map_or(Value::Null, Value::Text)
    } else {
        return Err(StoreError::Backend(format!(
            "column `{}` has type {ty}, which the store does not read",
            column.name()
        )));
    })
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Param::Int(v) if *ty == Type::BOOL => (*v != 0).to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Bool(v) if *ty == Type::INT8 => i64::from(*v).to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Real(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Blob(v) => (&**v).to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The server's message, or the client's error.
fn message(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => err.to_string(),
    }
}

/// Whether `err` is a lock conflict with another transaction, which running
/// the job again in a new transaction cures: its reason, for the metric.
fn conflict(err: &postgres::Error) -> Option<&'static str> {
    match err.code()?.code() {
        "40P01" => Some("deadlock"),
        "55P03" => Some("lock_timeout"),
        "40001" => Some("serialization"),
        _ => None,
    }
}

/// Maps a driver error: what a retry may cure is [`StoreError::Unavailable`].
pub(crate) fn pg_error(err: postgres::Error) -> StoreError {
    let text = message(&err);
    let Some(code) = err.code() else {
        // No SQL state: the connection (I/O, closed, timed out).
        return StoreError::Unavailable(format!("PostgreSQL: {text}"));
    };
    let code = code.code();
    match code {
        "40001" | "40P01" | "55P03" => StoreError::Unavailable(format!(
            "a concurrent transaction conflicted ({text}); nothing was written, retry"
        )),
        "23505" => StoreError::Unavailable(format!(
            "a concurrent request wrote the same row first ({text}); nothing was written, retry"
        )),
        _ if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57")
            || code.starts_with("58") =>
        {
            StoreError::Unavailable(format!("PostgreSQL: {text}"))
        }
        _ if code.starts_with("22") || code.starts_with("XX") => {
            StoreError::Corrupt(format!("PostgreSQL: {text} (SQLSTATE {code})"))
        }
        _ => StoreError::Backend(format!("PostgreSQL: {text} (SQLSTATE {code})")),
    }
}
