//! TLS on both ends, with certificates made at test time: served and called
//! over TLS and mutual TLS; a client that does not trust the server's CA, one
//! without the certificate a mutual-TLS server requires, and a plain-text client
//! of a TLS server are each refused with an error that says what to fix.

mod common;

use activity_core::{protocol::ExecutionRef, ProtocolError};
use activity_engine::EngineConfig;
use activity_remote::{ConnectError, RemoteConfig, RemoteProtocol};
use common::*;

async fn served_with_tls(ca: &TestCa, client_ca: Option<&TestCa>) -> Served {
    let tls = server_tls(ca, client_ca);
    Served::start_with(EngineConfig::in_memory(), |s| s.with_tls(tls)).await
}

fn https(served: &Served) -> String {
    format!("https://{}", served.addr)
}

#[tokio::test]
async fn calls_go_over_tls_and_a_client_trusting_another_ca_is_refused_clearly() {
    let ca = TestCa::new("activity test CA");
    let served = served_with_tls(&ca, None).await;

    let remote = served
        .connect(RemoteConfig::new(https(&served)).with_tls_ca(ca.pem.clone()))
        .await;
    schedule(&*remote, "over-tls", options())
        .await
        .expect("scheduled over TLS");
    let description = remote
        .describe_execution(ExecutionRef::standalone("over-tls"))
        .await
        .expect("described over TLS");
    assert_eq!(description.activity_type, "remote_greet");

    let other = TestCa::new("someone else's CA");
    let refused = RemoteProtocol::connect(RemoteConfig::new(https(&served)).with_tls_ca(other.pem))
        .await
        .expect_err("untrusted certificate");
    match &refused {
        ConnectError::Unreachable { reason, .. } => {
            assert!(
                reason.contains("not trusted") && reason.contains("with_tls_ca"),
                "{refused}"
            )
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // A lazily connected client learns it on its first call, as the same advice.
    let lazy = RemoteProtocol::connect_lazy(
        RemoteConfig::new(https(&served)).with_tls_ca(TestCa::new("third CA").pem),
    )
    .expect("lazy");
    let lazy: &dyn activity_core::ActivityProtocol = &lazy;
    let err = lazy
        .describe_execution(ExecutionRef::standalone("over-tls"))
        .await
        .expect_err("untrusted");
    assert!(
        matches!(&err, ProtocolError::Unavailable { message } if message.contains("not trusted")),
        "{err}"
    );
    served.stop().await;
}

#[tokio::test]
async fn mutual_tls_serves_clients_with_a_certificate_of_its_client_ca_only() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let served = served_with_tls(&server_ca, Some(&client_ca)).await;

    let (cert, key) = client_ca.issue_client("worker-1");
    let remote = served
        .connect(
            RemoteConfig::new(https(&served))
                .with_tls_ca(server_ca.pem.clone())
                .with_tls_identity(cert, key),
        )
        .await;
    schedule(&*remote, "mutual", options())
        .await
        .expect("scheduled over mutual TLS");

    let anonymous = RemoteProtocol::connect_lazy(
        RemoteConfig::new(https(&served)).with_tls_ca(server_ca.pem.clone()),
    )
    .expect("lazy");
    let anonymous: &dyn activity_core::ActivityProtocol = &anonymous;
    let err = anonymous
        .describe_execution(ExecutionRef::standalone("mutual"))
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(&err, ProtocolError::InvalidArgument { field, message }
            if field == "tls_identity" && message.contains("client certificate")),
        "{err}"
    );
    assert!(!err.is_retryable());

    let stranger_ca = TestCa::new("stranger CA");
    let (cert, key) = stranger_ca.issue_client("intruder");
    let stranger = RemoteProtocol::connect_lazy(
        RemoteConfig::new(https(&served))
            .with_tls_ca(server_ca.pem.clone())
            .with_tls_identity(cert, key),
    )
    .expect("lazy");
    let stranger: &dyn activity_core::ActivityProtocol = &stranger;
    assert!(stranger
        .describe_execution(ExecutionRef::standalone("mutual"))
        .await
        .is_err());
    served.stop().await;
}

#[tokio::test]
async fn plain_text_to_a_tls_server_and_tls_to_a_plain_server_fail_clearly() {
    let ca = TestCa::new("activity test CA");
    let tls_server = served_with_tls(&ca, None).await;
    let plain_client =
        RemoteProtocol::connect_lazy(RemoteConfig::new(tls_server.url())).expect("lazy");
    let plain_client: &dyn activity_core::ActivityProtocol = &plain_client;
    let err = plain_client
        .describe_execution(ExecutionRef::standalone("x"))
        .await
        .expect_err("plain text refused");
    match &err {
        ProtocolError::InvalidArgument { field, message } => {
            assert_eq!(field, "endpoint");
            assert!(
                message.contains("requires TLS") && message.contains("https://"),
                "{err}"
            );
        }
        other => panic!("expected InvalidArgument on `endpoint`, got {other:?}"),
    }
    // The server still serves TLS clients.
    let remote = tls_server
        .connect(RemoteConfig::new(https(&tls_server)).with_tls_ca(ca.pem.clone()))
        .await;
    schedule(&*remote, "after-plain", options())
        .await
        .expect("still serving");

    let plain_server = Served::start().await;
    let tls_client = RemoteProtocol::connect_lazy(
        RemoteConfig::new(https(&plain_server)).with_tls_ca(ca.pem.clone()),
    )
    .expect("lazy");
    let tls_client: &dyn activity_core::ActivityProtocol = &tls_client;
    let err = tls_client
        .describe_execution(ExecutionRef::standalone("x"))
        .await
        .expect_err("no TLS there");
    assert!(
        matches!(&err, ProtocolError::Unavailable { message } if message.contains("does not answer in TLS")),
        "{err}"
    );
    tls_server.stop().await;
    plain_server.stop().await;
}

#[test]
fn unusable_pem_is_refused_naming_what_is_wrong() {
    let err =
        activity_remote::ServerTls::from_pem(b"not a pem", b"nor this", None).expect_err("garbage");
    assert!(
        err.to_string().contains("server certificate chain"),
        "{err}"
    );
    let ca = TestCa::new("ca");
    let (cert, _) = ca.issue_server();
    let (_, other_key) = ca.issue_server();
    let err = activity_remote::ServerTls::from_pem(cert.as_bytes(), other_key.as_bytes(), None)
        .expect_err("key of another certificate");
    assert!(err.to_string().contains("TLS"), "{err}");
    let err = RemoteProtocol::connect_lazy(
        RemoteConfig::new("https://127.0.0.1:1").with_tls_ca("garbage"),
    )
    .expect_err("bad CA");
    assert!(matches!(err, ConnectError::Tls(_)), "{err}");
    assert!(err.to_string().contains("CA certificate"), "{err}");
}
