//! A measurement for docs/hardening.md, not part of the suites (ignored): how
//! long small, unrelated calls wait while the engine works on one huge request.
//!
//! ```sh
//! cargo test --release -p activity-engine --test writer_fairness -- --ignored --nocapture
//! ```
//!
//! A file-backed engine on the real clock; a prober describes one execution
//! every millisecond and records how long each answer took, while the engine
//! handles (a) one workflow task completion carrying 50,000 `ScheduleActivity`
//! commands, (b) five concurrent completions of 4 MiB results validated against
//! a registered output schema.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use activity_core::{
    options::ActivityOptions,
    payload::Payload,
    protocol::{
        ActivityTypeInfo, ExecutionRef, PollActivityTaskRequest, ScheduleActivityRequest,
        WorkerRegistration,
    },
    workflow::{Command, PollWorkflowTaskRequest, StartWorkflowRequest},
    ActivityProtocol,
};
use activity_engine::{Engine, EngineConfig};

struct Probe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

fn probe(engine: Arc<dyn ActivityProtocol>) -> Probe {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn({
        let (stop, samples) = (stop.clone(), samples.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                engine
                    .describe_execution(ExecutionRef::standalone("probe"))
                    .await
                    .unwrap();
                samples.lock().unwrap().push(began.elapsed());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    Probe {
        stop,
        samples,
        task,
    }
}

impl Probe {
    async fn report(self, label: &str, busy: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let mut samples = self.samples.lock().unwrap().clone();
        samples.sort();
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "| {label} | {:.0} ms | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            busy.as_secs_f64() * 1e3,
            samples.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            samples[samples.len() - 1].as_secs_f64() * 1e3,
        );
    }
}

async fn open_engine(dir: &tempfile::TempDir, name: &str) -> (Engine, Arc<dyn ActivityProtocol>) {
    let handle = Engine::open(EngineConfig::file(dir.path().join(name)))
        .await
        .unwrap();
    let engine: Arc<dyn ActivityProtocol> = Arc::new(handle.clone());
    let options = ActivityOptions::new()
        .start_to_close(Duration::from_secs(600))
        .task_queue("probe-q");
    engine
        .schedule_activity(
            ScheduleActivityRequest::new("probe", vec![], options).with_activity_id("probe"),
        )
        .await
        .unwrap();
    (handle, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (docs/hardening.md), about 30 s"]
async fn small_calls_during_one_huge_request() {
    let dir = tempfile::tempdir().unwrap();
    println!("| huge request | its duration | probes | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");

    let (handle, engine) = open_engine(&dir, "commands.sqlite").await;
    let start = StartWorkflowRequest::new("big", "wf", "q", vec![]);
    engine.start_workflow(start).await.unwrap();
    let poll = PollWorkflowTaskRequest::new("q", "w").with_wait(Duration::ZERO);
    let task = engine.poll_workflow_task(poll).await.unwrap().unwrap();
    let input = Payload::json(&1).unwrap();
    let commands: Vec<Command> = (0..50_000u32)
        .map(|seq| Command::ScheduleActivity {
            seq,
            activity_id: format!("a{seq}"),
            activity_type: "t".into(),
            input: vec![input.clone()],
            options: ActivityOptions::new().start_to_close(Duration::from_secs(600)),
            trace_context: None,
        })
        .collect();
    let probe_task = probe(engine.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    engine
        .complete_workflow_task(task.task_token, commands)
        .await
        .unwrap();
    let busy = began.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    probe_task.report("50,000 commands", busy).await;
    handle.close().await;

    let (handle, engine) = open_engine(&dir, "schemas.sqlite").await;
    // An output schema that looks at every item of a large array.
    let output = serde_json::json!({
        "type": "array",
        "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "integer"}}, "required": ["k", "v"]}
    });
    let info = ActivityTypeInfo::new("big", vec![], serde_json::json!({"type": "array"}), output);
    engine
        .register_worker(
            WorkerRegistration::new("w", vec!["big-q".into()]).with_activities(vec![info]),
        )
        .await
        .unwrap();
    for i in 0..5 {
        let options = ActivityOptions::new()
            .start_to_close(Duration::from_secs(600))
            .task_queue("big-q");
        engine
            .schedule_activity(
                ScheduleActivityRequest::new("big", vec![], options)
                    .with_activity_id(format!("big{i}")),
            )
            .await
            .unwrap();
    }
    let poll = PollActivityTaskRequest::new("big-q", "w").with_wait(Duration::ZERO);
    let tasks = engine.poll_activity_tasks(poll, 5).await.unwrap();
    assert_eq!(tasks.len(), 5);
    let item = serde_json::json!({"k": "x".repeat(20), "v": 1});
    let item_len = serde_json::to_vec(&item).unwrap().len() + 1;
    let items = vec![item; (4 * 1024 * 1024 - 64) / item_len];
    let result = Payload::json(&items).unwrap();
    println!(
        "<!-- result: {} bytes, {} items -->",
        result.len(),
        items.len()
    );
    let probe_task = probe(engine.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    let completions = tasks.into_iter().map(|task| {
        let (engine, result) = (engine.clone(), result.clone());
        tokio::spawn(async move {
            engine
                .complete_activity(task.task_token.into(), result)
                .await
                .unwrap()
        })
    });
    for completion in completions.collect::<Vec<_>>() {
        completion.await.unwrap();
    }
    let busy = began.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    probe_task
        .report("5 × 4 MiB results with a schema", busy)
        .await;
    handle.close().await;
}
