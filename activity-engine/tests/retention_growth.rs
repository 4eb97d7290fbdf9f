//! A measurement for docs/hardening.md, not part of the suites (ignored): the
//! size of a SQLite file under a steady workload, with and without retention.
//!
//! ```sh
//! cargo test -p activity-engine --test retention_growth -- --ignored --nocapture
//! ```
//!
//! Each round (10 virtual minutes) schedules and cancels 200 standalone
//! activities (1 KB inputs) and starts and completes 20 workflow runs; the
//! file (with its WAL) is measured every 40 minutes, the rows at the end.

use std::{sync::Arc, time::Duration};

use activity_core::{
    options::ActivityOptions,
    payload::Payload,
    protocol::{ExecutionRef, ScheduleActivityRequest},
    workflow::{Command, PollWorkflowTaskRequest, StartWorkflowRequest},
    ActivityProtocol,
};
use activity_engine::{Engine, EngineConfig, VirtualClock};

async fn round(protocol: &dyn ActivityProtocol, round: u32) {
    let input = Payload::json(&"x".repeat(1000)).unwrap();
    for i in 0..200 {
        let id = format!("r{round}-{i}");
        let options = ActivityOptions::new()
            .start_to_close(Duration::from_secs(10))
            .task_queue("q");
        let request =
            ScheduleActivityRequest::new("t", vec![input.clone()], options).with_activity_id(&id);
        protocol.schedule_activity(request).await.unwrap();
        protocol
            .request_cancel(ExecutionRef::standalone(&id))
            .await
            .unwrap();
    }
    for i in 0..20 {
        let start = StartWorkflowRequest::new(format!("w{round}-{i}"), "wf", "q", vec![]);
        protocol.start_workflow(start).await.unwrap();
        let poll = PollWorkflowTaskRequest::new("q", "w").with_wait(Duration::ZERO);
        let task = protocol.poll_workflow_task(poll).await.unwrap().unwrap();
        let done = Command::CompleteWorkflow {
            result: Payload::json(&1).unwrap(),
        };
        (protocol.complete_workflow_task(task.task_token, vec![done]))
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
#[ignore = "a measurement (docs/hardening.md), about 35 s"]
async fn the_file_of_a_steady_workload_stops_growing_with_a_retention() {
    let dir = tempfile::tempdir().unwrap();
    for (label, retention) in [("365 days", 365 * 24 * 3600), ("30 min", 1800)] {
        let path = dir.path().join(format!("r{retention}.sqlite"));
        let wal = dir.path().join(format!("r{retention}.sqlite-wal"));
        let config = EngineConfig::file(&path)
            .with_clock(Arc::new(VirtualClock::new()))
            .with_retention(Duration::from_secs(retention));
        let engine = Engine::open(config).await.unwrap();
        let protocol = engine.protocol();
        let mut line = format!("retention {label}:");
        for n in 0..24 {
            round(&*protocol, n).await;
            tokio::time::sleep(Duration::from_secs(600)).await;
            if n % 4 == 3 {
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let kib = (size(&path) + size(&wal)) / 1024;
                line.push_str(&format!(" {} min {kib} KiB;", (n + 1) * 10));
            }
        }
        engine.close().await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        let count = |table: &str| -> i64 {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            conn.query_row(&sql, [], |r| r.get(0)).unwrap()
        };
        line.push_str(&format!(
            " rows at the end: {} executions, {} runs, {} history events",
            count("executions"),
            count("workflow_runs"),
            count("workflow_history")
        ));
        eprintln!("{line}");
    }
}
