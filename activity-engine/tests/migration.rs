//! Upgrading a database written by an earlier version (schema 3: model values
//! as JSON text, payloads inside them as lists of numbers) to the current
//! schema, in place: every record reads back as the earlier engine wrote it,
//! and the engine carries on from where that one stopped.
//!
//! `tests/fixtures/schema-v3.db` was written by the engine of schema 3 (see
//! `tests/fixtures/README.md`). The expected records are read from its rows
//! here, independently of the store: JSON text with `serde_json`, payload
//! blobs with the small reader below; the payloads the fixture wrote are also
//! checked by value.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use activity_core::{
    failure::Failure,
    payload::{Encoding, Payload},
    protocol::{ExecutionRef, ExecutionState, PollActivityTaskRequest, TypeKind},
    workflow::{
        EventKind, HistoryEvent, PollWorkflowTaskRequest, WorkflowOutcome, WorkflowRef,
        WorkflowState,
    },
    ActivityProtocol,
};
use activity_engine::{
    store::{
        self, sqlite::SqliteStore, ExecutionRecord, QueueRecord, RunRecord, Store, StoreError,
        TimerKind, TimerRecord, Tx, TypeRecord, WorkflowTaskState, WorkflowTimerKind,
        WorkflowTimerRecord,
    },
    Engine, EngineConfig, VirtualClock,
};
use rusqlite::Connection;

/// When the fixture's engine stopped (its virtual clock: 2025-01-01 + 8 s).
const FIXTURE_NOW_MS: i64 = 1_735_689_608_000;

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema-v3.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v3.db");
    std::fs::copy(fixture, &path).unwrap();
    (dir, path)
}

fn json(value: impl serde::Serialize) -> Payload {
    Payload::json(&value).unwrap()
}

// ------------------------------------------------ reading the schema-3 rows

/// A schema-3 payload blob: [name length: u8][encoding name][data].
fn v3_payload(blob: &[u8]) -> Payload {
    let len = usize::from(blob[0]);
    let name = std::str::from_utf8(&blob[1..1 + len]).unwrap();
    Payload {
        encoding: Encoding::parse(name).unwrap(),
        data: blob[1 + len..].to_vec().into(),
    }
}

/// A schema-3 payload list: [count: u32 BE] then [length: u32 BE][payload blob] each.
fn v3_payloads(blob: &[u8]) -> Vec<Payload> {
    let word = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 4;
    (0..word(0))
        .map(|_| {
            let len = word(at);
            let payload = v3_payload(&blob[at + 4..at + 4 + len]);
            at += 4 + len;
            payload
        })
        .collect()
}

fn from_json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.map(|t| serde_json::from_str(&t).unwrap())
}

/// Everything the store holds, as records.
#[derive(Debug, Default, PartialEq)]
struct Contents {
    token_key: Vec<u8>,
    executions: Vec<ExecutionRecord>,
    timers: Vec<TimerRecord>,
    queues: Vec<QueueRecord>,
    pollers: Vec<(String, String, i64)>,
    runs: Vec<RunRecord>,
    histories: Vec<(i64, Vec<HistoryEvent>)>,
    buffered: Vec<(i64, Vec<(i64, EventKind)>)>,
    workflow_timers: Vec<WorkflowTimerRecord>,
    types: Vec<TypeRecord>,
}

/// Reads the schema-3 file's rows (before any upgrade).
fn read_v3(path: &Path) -> Contents {
    let conn = Connection::open(path).unwrap();
    let version: Vec<u8> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, b"3");
    let all = |sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
        let mut statement = conn.prepare(sql).unwrap();
        let n = statement.column_count();
        statement
            .query_map([], |row| (0..n).map(|i| row.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    use rusqlite::types::Value as V;
    let int = |v: &V| match v {
        V::Integer(i) => *i,
        other => panic!("{other:?}"),
    };
    let opt_int = |v: &V| match v {
        V::Null => None,
        other => Some(int(other)),
    };
    let text = |v: &V| match v {
        V::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    let opt_text = |v: &V| match v {
        V::Null => None,
        other => Some(text(other)),
    };
    let blob = |v: &V| match v {
        V::Blob(b) => b.clone(),
        other => panic!("{other:?}"),
    };
    let opt_blob = |v: &V| match v {
        V::Null => None,
        other => Some(blob(other)),
    };
    let real = |v: &V| match v {
        V::Real(r) => *r,
        V::Integer(i) => *i as f64,
        other => panic!("{other:?}"),
    };
    let mut c = Contents {
        token_key: conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'task_token_key'",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        ..Contents::default()
    };
    for r in all(
        "SELECT key, scope, activity_id, workflow_id, workflow_run_id, activity_type, task_queue,
            input, options, state, attempt, scheduled_at, attempt_scheduled_at, started_at,
            worker_identity, heartbeat_details, last_heartbeat_at, cancel_requested,
            last_failure, retry_state, result, closed_at, workflow_seq
         FROM executions ORDER BY key",
    ) {
        c.executions.push(ExecutionRecord {
            key: int(&r[0]),
            scope: text(&r[1]),
            activity_id: text(&r[2]),
            workflow_id: opt_text(&r[3]),
            workflow_run_id: opt_text(&r[4]),
            activity_type: text(&r[5]),
            task_queue: text(&r[6]),
            input: v3_payloads(&blob(&r[7])),
            options: serde_json::from_str(&text(&r[8])).unwrap(),
            state: ExecutionState::parse(&text(&r[9])).unwrap(),
            attempt: int(&r[10]) as u32,
            scheduled_at: int(&r[11]),
            attempt_scheduled_at: int(&r[12]),
            started_at: opt_int(&r[13]),
            worker_identity: opt_text(&r[14]),
            heartbeat_details: opt_blob(&r[15]).map(|b| v3_payload(&b)),
            last_heartbeat_at: opt_int(&r[16]),
            cancel_requested: int(&r[17]) != 0,
            last_failure: from_json(opt_text(&r[18])),
            retry_state: from_json(opt_text(&r[19])),
            result: opt_blob(&r[20]).map(|b| v3_payload(&b)),
            closed_at: opt_int(&r[21]),
            workflow_seq: opt_int(&r[22]).map(|s| s as u32),
            // Schema 6 adds it, empty for what was there.
            trace_context: None,
        });
    }
    for r in all("SELECT execution_key, kind, attempt, due_at FROM timers ORDER BY due_at, execution_key, kind") {
        c.timers.push(TimerRecord {
            execution_key: int(&r[0]),
            kind: TimerKind::parse(&text(&r[1])).unwrap(),
            attempt: int(&r[2]) as u32,
            due_at: int(&r[3]),
        });
    }
    for r in all("SELECT name, rate_limit, bucket_tokens, bucket_at FROM task_queues ORDER BY name")
    {
        c.queues.push(QueueRecord {
            name: text(&r[0]),
            rate_limit: match &r[1] {
                V::Null => None,
                other => Some(real(other)),
            },
            bucket_tokens: real(&r[2]),
            bucket_at: int(&r[3]),
        });
    }
    for r in
        all("SELECT task_queue, identity, last_poll_at FROM pollers ORDER BY task_queue, identity")
    {
        c.pollers.push((text(&r[0]), text(&r[1]), int(&r[2])));
    }
    for r in all(
        "SELECT key, workflow_id, run_id, workflow_type, task_queue, input, state, outcome,
            cancel_requested, started_at, closed_at, history_length, task_state, task_seq,
            task_scheduled_at, task_started_at, task_identity, task_failures
         FROM workflow_runs ORDER BY key",
    ) {
        c.runs.push(RunRecord {
            key: int(&r[0]),
            workflow_id: text(&r[1]),
            run_id: text(&r[2]),
            workflow_type: text(&r[3]),
            task_queue: text(&r[4]),
            input: v3_payloads(&blob(&r[5])),
            state: WorkflowState::parse(&text(&r[6])).unwrap(),
            outcome: from_json(opt_text(&r[7])),
            cancel_requested: int(&r[8]) != 0,
            started_at: int(&r[9]),
            closed_at: opt_int(&r[10]),
            history_length: int(&r[11]) as u64,
            task_state: WorkflowTaskState::parse(&text(&r[12])).unwrap(),
            task_seq: int(&r[13]) as u32,
            task_scheduled_at: int(&r[14]),
            task_started_at: opt_int(&r[15]),
            task_identity: opt_text(&r[16]),
            task_failures: int(&r[17]) as u32,
            // Schema 5 counts the size of the histories already there.
            history_size: 0,
            history_warned: false,
            trace_context: None,
        });
    }
    for run in &mut c.runs {
        let events = all(&format!(
            "SELECT event_id, time, kind FROM workflow_history WHERE run_key = {} ORDER BY event_id",
            run.key
        ))
        .into_iter()
        .map(|r| {
            HistoryEvent::new(
                int(&r[0]) as u64,
                UNIX_EPOCH + Duration::from_millis(int(&r[1]) as u64),
                serde_json::from_str(&text(&r[2])).unwrap(),
            )
        })
        .collect::<Vec<HistoryEvent>>();
        run.history_size = events
            .iter()
            .map(|e| activity_core::codec::to_vec(&e.kind).unwrap().len() as u64)
            .sum();
        c.histories.push((run.key, events));
        let buffered = all(&format!(
            "SELECT time, kind FROM workflow_buffered_events WHERE run_key = {} ORDER BY position",
            run.key
        ))
        .into_iter()
        .map(|r| (int(&r[0]), serde_json::from_str(&text(&r[1])).unwrap()))
        .collect();
        c.buffered.push((run.key, buffered));
    }
    for r in all("SELECT run_key, kind, seq, due_at FROM workflow_timers ORDER BY due_at, run_key, kind, seq") {
        c.workflow_timers.push(WorkflowTimerRecord {
            run_key: int(&r[0]),
            kind: WorkflowTimerKind::parse(&text(&r[1])).unwrap(),
            seq: int(&r[2]) as u32,
            due_at: int(&r[3]),
        });
    }
    for r in all(
        "SELECT kind, name, task_queue, arguments, input_schema, output_schema, identity,
            registered_at
         FROM registered_types ORDER BY kind, name, task_queue",
    ) {
        c.types.push(TypeRecord {
            kind: TypeKind::parse(&text(&r[0])).unwrap(),
            name: text(&r[1]),
            task_queue: text(&r[2]),
            arguments: serde_json::from_str(&text(&r[3])).unwrap(),
            input_schema: opt_text(&r[4]),
            output_schema: opt_text(&r[5]),
            identity: text(&r[6]),
            registered_at: int(&r[7]),
        });
    }
    c
}

/// What a rolled-back read carries out of its transaction.
#[derive(Debug)]
enum Read {
    Store(#[allow(dead_code)] StoreError),
    Done(Box<Contents>),
}

impl From<StoreError> for Read {
    fn from(err: StoreError) -> Self {
        Read::Store(err)
    }
}

/// Reads the same through the store (after the upgrade), in one transaction
/// that is rolled back (taking the buffered events removes them).
async fn read_through_store(store: &SqliteStore, like: &Contents) -> Contents {
    let keys: Vec<i64> = like.executions.iter().map(|e| e.key).collect();
    let run_keys: Vec<i64> = like.runs.iter().map(|r| r.key).collect();
    let queues: Vec<String> = like.queues.iter().map(|q| q.name.clone()).collect();
    let read = store::run(store, move |tx: &mut dyn Tx| {
        let mut c = Contents {
            token_key: tx.meta_get("task_token_key")?.unwrap(),
            ..Contents::default()
        };
        for &key in &keys {
            c.executions.push(tx.execution(key)?.unwrap());
        }
        c.timers = tx.due_timers(i64::MAX, 1000)?;
        for name in &queues {
            c.queues.push(tx.queue(name)?.unwrap());
            let mut pollers = tx.pollers(name, 0)?;
            pollers.sort();
            c.pollers.extend(
                pollers
                    .into_iter()
                    .map(|(identity, at)| (name.clone(), identity, at)),
            );
        }
        for &key in &run_keys {
            c.runs.push(tx.run(key)?.unwrap());
            c.histories.push((key, tx.history(key)?));
            c.buffered.push((key, tx.take_buffered(key)?));
        }
        c.workflow_timers = tx.due_workflow_timers(i64::MAX, 1000)?;
        c.types = tx.registered_types()?;
        Err::<(), _>(Read::Done(Box::new(c)))
    })
    .await;
    match read {
        Err(Read::Done(contents)) => *contents,
        other => panic!("{other:?}"),
    }
}

/// (rows, bytes) of the history (the event kinds plus the three integer keys):
/// all of it, and the events that carry payloads (keys 1/12 and 2/5: a
/// workflow's input, an activity's result).
fn history_bytes(conn: &Connection) -> [(i64, i64); 2] {
    let measure = |filter: &str| {
        conn.query_row(
            &format!(
                "SELECT COUNT(*), SUM(length(CAST(kind AS BLOB)) + 24) FROM workflow_history {filter}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    [
        measure(""),
        measure("WHERE (run_key, event_id) IN (VALUES (1, 1), (1, 12), (2, 5))"),
    ]
}

fn execution<'a>(c: &'a Contents, id: &str) -> &'a ExecutionRecord {
    c.executions
        .iter()
        .find(|e| e.activity_id == id)
        .unwrap_or_else(|| panic!("no execution `{id}`"))
}

/// What the fixture's program wrote, by value (not only "as read from the rows").
fn assert_the_fixture_values(c: &Contents) {
    let state = |id| execution(c, id).state;
    for (id, expected) in [
        ("timed-out", ExecutionState::TimedOut),
        ("completed", ExecutionState::Completed),
        ("failed", ExecutionState::Failed),
        ("canceled", ExecutionState::Canceled),
        ("retrying", ExecutionState::Scheduled),
        ("cancel-requested", ExecutionState::Started),
        ("running", ExecutionState::Started),
        ("waiting", ExecutionState::Scheduled),
    ] {
        assert_eq!(state(id), expected, "{id}");
        assert_eq!(execution(c, id).input, vec![json(id)], "{id}");
    }
    assert_eq!(
        execution(c, "completed").result,
        Some(json("Hello, completed!"))
    );
    assert_eq!(
        execution(c, "running").heartbeat_details,
        Some(json(serde_json::json!({"progress": 42})))
    );
    assert!(execution(c, "cancel-requested").cancel_requested);
    let failed = execution(c, "failed");
    assert_eq!(failed.attempt, 2);
    assert_eq!(failed.heartbeat_details, Some(json("progress-1")));
    let Some(Failure::Application(last)) = &failed.last_failure else {
        panic!("{:?}", failed.last_failure)
    };
    assert_eq!(last.message, "second");
    let retrying = execution(c, "retrying");
    assert_eq!(retrying.attempt, 2);
    assert!(retrying.last_failure.is_some());
    assert_eq!(
        c.queues
            .iter()
            .find(|q| q.name == "limited")
            .unwrap()
            .rate_limit,
        Some(5.0)
    );

    let order = |id: &str| c.runs.iter().find(|r| r.workflow_id == id).unwrap();
    assert_eq!(order("order-1").state, WorkflowState::Running);
    assert_eq!(order("order-1").task_state, WorkflowTaskState::Started);
    assert_eq!(
        order("order-1").input,
        vec![
            json("order-1"),
            json(serde_json::json!({"items": [1, 2, 3]}))
        ]
    );
    assert_eq!(
        order("order-2").outcome,
        Some(WorkflowOutcome::Completed(json(
            serde_json::json!({"total": 12})
        )))
    );
    assert_eq!(order("order-3").state, WorkflowState::Failed);
    assert_eq!(order("order-4").outcome, Some(WorkflowOutcome::Canceled));

    let (_, history) = c
        .histories
        .iter()
        .find(|(k, _)| *k == order("order-1").key)
        .unwrap();
    assert_eq!(history.len(), 13);
    assert!(history.iter().any(|e| e.kind
        == EventKind::ActivityCompleted {
            seq: 1,
            result: json("charged")
        }));
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        EventKind::ActivityFailed { seq: 5, failure } if failure.activity_id == "risky"
    )));
    let (_, buffered) = c
        .buffered
        .iter()
        .find(|(k, _)| *k == order("order-1").key)
        .unwrap();
    assert_eq!(
        buffered
            .iter()
            .map(|(_, kind)| kind.clone())
            .collect::<Vec<_>>(),
        vec![EventKind::ActivityCompleted {
            seq: 2,
            result: json(serde_json::json!({"parcel": "P-1"}))
        }]
    );
    assert!(c
        .workflow_timers
        .iter()
        .any(|t| t.kind == WorkflowTimerKind::Timer && t.seq == 3));
    assert!(c
        .timers
        .iter()
        .any(|t| t.kind == TimerKind::Dispatch && t.execution_key == retrying.key));
    assert_eq!(c.types.len(), 4);
}

#[tokio::test]
async fn a_schema_3_database_is_upgraded_in_place_and_every_record_reads_back() {
    let (_dir, path) = fixture_copy();
    let expected = read_v3(&path);
    assert_the_fixture_values(&expected);
    let measured = history_bytes(&Connection::open(&path).unwrap());

    let store = SqliteStore::open(&path).unwrap();
    let found = read_through_store(&store, &expected).await;
    store.close().await;
    assert_eq!(found, expected);

    let conn = Connection::open(&path).unwrap();
    let version: Vec<u8> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, b"7");
    // Every model value is model bytes now, none is JSON text.
    for (table, column) in [
        ("executions", "options"),
        ("executions", "last_failure"),
        ("executions", "retry_state"),
        ("executions", "input"),
        ("executions", "result"),
        ("executions", "heartbeat_details"),
        ("workflow_runs", "outcome"),
        ("workflow_runs", "input"),
        ("workflow_history", "kind"),
        ("workflow_buffered_events", "kind"),
        ("registered_types", "arguments"),
    ] {
        let declared: String = conn
            .query_row(
                &format!("SELECT type FROM pragma_table_info('{table}') WHERE name = '{column}'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(declared, "BLOB", "{table}.{column}");
        let not_blobs: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL AND typeof({column}) != 'blob'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(not_blobs, 0, "{table}.{column}");
    }
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    for ((rows, before), (rows_after, after)) in measured.into_iter().zip(history_bytes(&conn)) {
        assert_eq!(rows_after, rows);
        eprintln!(
            "history rows: {rows}; bytes per row: schema 3 {:.0}, schema 4 {:.0}",
            before as f64 / rows as f64,
            after as f64 / rows as f64
        );
        assert!(after < before, "{after} >= {before}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_engine_carries_on_from_an_upgraded_database() {
    let (_dir, path) = fixture_copy();
    let clock = Arc::new(VirtualClock::starting_at(
        UNIX_EPOCH + Duration::from_millis(FIXTURE_NOW_MS as u64),
    ));
    let engine = Engine::open(EngineConfig::file(&path).with_clock(clock.clone()))
        .await
        .unwrap();
    let p: Arc<dyn ActivityProtocol> = engine.protocol();

    // The attempt started before the upgrade completes (by id: its token went
    // with the worker that held it).
    p.complete_activity(ExecutionRef::standalone("running").into(), json("done"))
        .await
        .unwrap();
    let running = p
        .describe_execution(ExecutionRef::standalone("running"))
        .await
        .unwrap();
    assert_eq!(running.state, ExecutionState::Completed);

    // The run's started workflow task times out (10 s), the buffered event is
    // appended, and the task goes to a worker again.
    let task = p
        .poll_workflow_task(
            PollWorkflowTaskRequest::new("main", "w2").with_wait(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .expect("the workflow task comes back");
    assert_eq!(task.workflow_id, "order-1");
    let history = p
        .workflow_history(WorkflowRef::latest("order-1"))
        .await
        .unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds[13..],
        [
            "WorkflowTaskTimedOut",
            "ActivityCompleted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted"
        ]
    );
    p.complete_workflow_task(task.task_token, vec![])
        .await
        .unwrap();

    // The workflow's one-hour timer fires, and the activity in a one-hour
    // backoff gets its second attempt.
    let mut next = None;
    for _ in 0..100 {
        next = p
            .poll_workflow_task(
                PollWorkflowTaskRequest::new("main", "w2").with_wait(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        if next.is_some() {
            break;
        }
    }
    let task = next.expect("the timer's workflow task, within 100 minutes");
    assert!(task
        .history
        .iter()
        .any(|e| e.kind == EventKind::TimerFired { seq: 3 }));
    let attempts = p
        .poll_activity_tasks(
            PollActivityTaskRequest::new("standalone", "w2").with_wait(Duration::ZERO),
            10,
        )
        .await
        .unwrap();
    let mut started: Vec<(&str, u32)> = attempts
        .iter()
        .map(|t| (t.info.activity_id.as_str(), t.info.attempt))
        .collect();
    started.sort();
    // The retry, due as the timer fired, and the one never polled.
    assert_eq!(started, [("retrying", 2), ("waiting", 1)]);
    engine.close().await;
}
