//! The server bounds what a connection can make it hold, and for how long:
//! connections that never handshake, sit idle, stall mid-request or stop
//! answering pings are closed; calls over the connection limit are refused
//! with an error that says so. Loopback only, short timeouts, each test stops
//! by itself. (The memory bound of a client that never reads is measured on
//! the served binary: activity-server/tests/process_hardening.rs.)

mod common;

use std::time::{Duration, Instant};

use activity_core::{protocol::ExecutionRef, ProtocolError};
use activity_engine::EngineConfig;
use activity_remote::{proto, RemoteConfig, RemoteProtocol, ServerLimits};
use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

async fn served_with(limits: ServerLimits) -> Served {
    Served::start_with(EngineConfig::in_memory(), |s| s.with_limits(limits)).await
}

/// Reads until the server closes the connection; how long that took.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0_u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the connection open for {bound:?}"));
    start.elapsed()
}

#[tokio::test]
async fn a_connection_that_never_sends_its_handshake_is_closed() {
    let served =
        served_with(ServerLimits::default().with_handshake_timeout(Duration::from_millis(300)))
            .await;
    let mut silent = TcpStream::connect(served.addr).await.expect("connect");
    let took = closed_within(&mut silent, secs(5)).await;
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");

    // Half a preface is no handshake either.
    let mut slow = TcpStream::connect(served.addr).await.expect("connect");
    slow.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
    closed_within(&mut slow, secs(5)).await;

    // The server still serves.
    let remote = served.remote().await;
    schedule(&*remote, "after-silence", options())
        .await
        .expect("served");
    served.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_the_client_reconnects_on_its_next_call() {
    let served =
        served_with(ServerLimits::default().with_idle_timeout(Duration::from_millis(400))).await;
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let (_client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let start = Instant::now();
    tokio::time::timeout(secs(5), connection)
        .await
        .expect("the idle connection was closed")
        .ok();
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );

    // A connection with a call in flight (a long poll) is not idle.
    let remote = served.remote().await;
    let poll = activity_core::protocol::PollActivityTaskRequest::new(QUEUE, "w").with_wait(secs(1));
    assert!(remote
        .poll_activity_task(poll)
        .await
        .expect("poll")
        .is_none());
    // Its connection closes once idle; the next call reconnects.
    tokio::time::sleep(Duration::from_millis(800)).await;
    schedule(&*remote, "after-idle", options())
        .await
        .expect("reconnected");
    served.stop().await;
}

/// The headers that carry the status of a raw gRPC call's answer (read to its end).
async fn grpc_status_of(response: h2::client::ResponseFuture) -> http::HeaderMap {
    let response = tokio::time::timeout(secs(5), response)
        .await
        .expect("answered")
        .expect("response");
    // The status comes in the headers (a trailers-only answer) or the trailers.
    let headers = response.headers().clone();
    let mut response_body = response.into_body();
    while let Some(chunk) = response_body.data().await {
        chunk.expect("data");
    }
    let trailers = response_body.trailers().await.expect("trailers");
    trailers.unwrap_or(headers)
}

#[tokio::test]
async fn a_request_whose_body_stalls_is_answered_with_an_error_and_its_stream_freed() {
    let served =
        served_with(ServerLimits::default().with_request_body_timeout(Duration::from_millis(300)))
            .await;
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let (response, mut body) = client
        .send_request(grpc_request("DescribeTaskQueue"), false)
        .expect("send");
    // Half the body, then nothing.
    let frame = grpc_frame(&proto::DescribeTaskQueueRequest {
        task_queue: QUEUE.into(),
    });
    body.send_data(frame.slice(..3), false)
        .expect("partial body");
    let start = Instant::now();
    let status = grpc_status_of(response).await;
    let message = status
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    assert!(message.contains("request-body-timeout"), "{message}");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    served.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let served = served_with(
        ServerLimits::default()
            .with_keepalive_interval(Duration::from_millis(200))
            .with_keepalive_timeout(Duration::from_millis(200)),
    )
    .await;
    let mut raw = TcpStream::connect(served.addr).await.expect("connect");
    // The client preface and an empty SETTINGS frame; then it never reads or
    // answers (its pings go unanswered).
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    raw.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    closed_within(&mut raw, secs(5)).await;
    served.stop().await;
}

#[tokio::test]
async fn over_the_connection_limit_a_client_is_refused_clearly() {
    let served = served_with(ServerLimits::default().with_max_connections(2)).await;
    let first = served.remote().await;
    let second = served.remote().await;
    for remote in [&first, &second] {
        schedule(&**remote, &format!("{:p}", *remote), options())
            .await
            .expect("within the limit");
    }
    let third = RemoteProtocol::connect_lazy(RemoteConfig::new(served.url())).expect("lazy");
    let third: &dyn activity_core::ActivityProtocol = &third;
    let err = third
        .describe_execution(ExecutionRef::standalone("x"))
        .await
        .expect_err("over the limit");
    match &err {
        ProtocolError::Unavailable { message } => {
            assert!(
                message.contains("limit of 2 connections") && message.contains("--max-connections"),
                "{err}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_retryable());
    // The connections within the limit are still served.
    first
        .describe_execution(ExecutionRef::standalone(format!("{:p}", first)))
        .await
        .expect("still served");
    drop(second);
    served.stop().await;
}

#[test]
fn zero_limits_are_refused_naming_the_setting() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let engine = activity_engine::Engine::open(EngineConfig::in_memory())
            .await
            .expect("engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let err = activity_remote::ActivityService::new(engine.protocol())
            .with_limits(ServerLimits::default().with_idle_timeout(Duration::ZERO))
            .serve(listener, async {})
            .await
            .expect_err("zero timeout");
        assert!(err.to_string().contains("idle_timeout"), "{err}");
    });
}

#[tokio::test]
async fn a_request_string_that_is_not_utf8_is_invalid_argument_naming_the_field() {
    let served = served_with(ServerLimits::default()).await;
    let tcp = TcpStream::connect(served.addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let (response, mut body) = client
        .send_request(grpc_request("DescribeTaskQueue"), false)
        .expect("send");
    // DescribeTaskQueueRequest { task_queue (field 1, length-delimited): 0xff 0xfe }.
    let message = [0x0a, 0x02, 0xff, 0xfe];
    let mut frame = vec![0, 0, 0, 0, message.len() as u8];
    frame.extend_from_slice(&message);
    body.send_data(frame.into(), true).expect("body");
    let status = grpc_status_of(response).await;
    let text = |name: &str| {
        status
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        text("grpc-status"),
        "3",
        "INVALID_ARGUMENT: {}",
        text("grpc-message")
    );
    let message = text("grpc-message");
    assert!(message.contains("task_queue"), "{message}");
    assert!(message.contains("UTF-8"), "{message}");
    // Nothing was created, and the server still serves.
    let remote = served.remote().await;
    schedule(&*remote, "after-bad-utf8", options())
        .await
        .expect("served");
    served.stop().await;
}

/// A caller holding as many result waits as the server allows streams on a
/// connection does not hold up the worker sharing its protocol (and so the
/// very results it waits for): waits travel on a connection of their own.
#[tokio::test]
async fn result_waits_filling_a_connection_do_not_hold_up_the_worker_sharing_it() {
    let served = served_with(ServerLimits::default().with_max_concurrent_streams(4)).await;
    let remote = served.remote().await;
    let ids: Vec<String> = (0..12).map(|i| format!("wait-{i}")).collect();
    for id in &ids {
        schedule(&*remote, id, options()).await.expect("scheduled");
    }
    // The waits start on a fresh connection: those of the burst past the
    // server's limit, sent before its settings arrived, are refused by HTTP/2
    // and sent again by the client.
    let waits: Vec<_> = ids
        .iter()
        .map(|id| {
            let (remote, id) = (remote.clone(), id.clone());
            tokio::spawn(async move {
                remote
                    .wait_outcome(ExecutionRef::standalone(&id), secs(10))
                    .await
            })
        })
        .collect();
    // Let every wait reach the server before the worker starts.
    tokio::time::sleep(millis(300)).await;
    for _ in &ids {
        let task = next_task(&*remote).await;
        remote
            .complete_activity(task.task_token.into(), json("done"))
            .await
            .expect("completed");
    }
    for wait in waits {
        let outcome = wait.await.expect("wait task").expect("wait answered");
        assert!(
            matches!(
                outcome,
                Some(activity_core::protocol::ExecutionOutcome::Completed(_))
            ),
            "every wait sees its result within its wait: {outcome:?}"
        );
    }
}
