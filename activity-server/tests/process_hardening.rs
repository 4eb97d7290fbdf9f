//! `activity-server serve` as a real process, probed as a careless client
//! would: one connection sends 600 `DescribeExecution` calls whose answers are
//! ~4 MiB each and never reads them. The server's memory stays bounded by the
//! connection's budget (it held 2.6 GiB before the budget existed), and another
//! client is served meanwhile. Loopback only; the probe is bounded in count and
//! time and ends by itself. The figures are printed (docs/hardening.md).

mod process_support;

use std::time::{Duration, Instant};

use activity_core::{
    options::ActivityOptions,
    protocol::{ExecutionRef, PollActivityTaskRequest, ScheduleActivityRequest, TaskTarget},
    Payload,
};
use activity_remote::proto;
use activity_test_support::wire::{grpc_frame, grpc_request};
use process_support::*;

const MIB: u64 = 1024 * 1024;

/// A field of `/proc/PID/status`, in bytes (e.g. `VmRSS`, `VmHWM`).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn describe_frame(activity_id: &str) -> bytes::Bytes {
    grpc_frame(&proto::DescribeExecutionRequest {
        execution: Some(proto::ExecutionRef {
            activity_id: activity_id.into(),
            workflow_id: None,
            workflow_run_id: None,
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_reads_its_answers_keeps_the_server_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("hardening.db"), &[]);
    let remote = server.remote().await;

    // An execution whose description is ~4 MiB: its result.
    let result = Payload::json(&"x".repeat(4 * 1024 * 1024 - 64)).expect("json");
    let options = ActivityOptions::new()
        .start_to_close(Duration::from_secs(60))
        .task_queue("big-q");
    remote
        .schedule_activity(
            ScheduleActivityRequest::new("big", vec![], options).with_activity_id("big"),
        )
        .await
        .expect("scheduled");
    let task = remote
        .poll_activity_task(
            PollActivityTaskRequest::new("big-q", "probe").with_wait(Duration::from_secs(5)),
        )
        .await
        .expect("poll")
        .expect("a task");
    remote
        .complete_activity(TaskTarget::Token(task.task_token), result)
        .await
        .expect("completed with 4 MiB");
    let answer = remote
        .describe_execution(ExecutionRef::standalone("big"))
        .await
        .expect("described");
    assert!(answer.outcome.is_some());

    let pid = server.pid();
    let idle = memory(pid, "VmRSS");

    // The probe: an HTTP/2 client that answers pings but never reads its
    // answers (its flow-control windows are never released).
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(65_535)
        .initial_connection_window_size(65_535)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let mut client = client;
    let mut responses = Vec::new();
    let sent = Instant::now();
    for _ in 0..600 {
        client = bounded("stream capacity", client.ready())
            .await
            .expect("ready");
        let (response, mut body) = client
            .send_request(grpc_request("DescribeExecution"), false)
            .expect("send");
        body.send_data(describe_frame("big"), true).expect("body");
        responses.push(response);
    }
    println!("600 requests sent in {:?}", sent.elapsed());

    // While the probe holds its answers unread, the server keeps serving others.
    let started = Instant::now();
    let other = server.remote().await;
    other
        .describe_task_queue("big-q".into())
        .await
        .expect("another client is served");
    let served_in = started.elapsed();

    let mut peak = idle;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(memory(pid, "VmRSS"));
    }
    let high_water = memory(pid, "VmHWM");
    println!(
        "server RSS: idle {} MiB, peak with the probe {} MiB (VmHWM {} MiB); another client served in {served_in:?}",
        idle / MIB,
        peak / MIB,
        high_water / MIB
    );
    // The budget (32 MiB of unread answers) plus the answers of the calls
    // admitted before it filled; 600 unread answers would be ~2.4 GiB.
    assert!(
        peak - idle < 256 * MIB,
        "the server grew by {} MiB with one connection that never reads",
        (peak - idle) / MIB
    );

    // The probe gives up: its streams and connection close.
    drop(responses);
    drop(client);
    connection.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "server RSS after the probe left: {} MiB",
        memory(pid, "VmRSS") / MIB
    );
    other
        .describe_execution(ExecutionRef::standalone("big"))
        .await
        .expect("still serving");
}
