//! `activity-server serve --tls-cert --tls-key [--tls-client-ca]` and the CLI's
//! `--tls-ca` / `--tls-cert` / `--tls-key`, with certificates made at test time:
//! the CLI is served over TLS and mutual TLS, and refused with advice when it
//! does not trust the server's CA, lacks the client certificate, or speaks plain
//! text to the TLS port.

mod process_support;

use std::path::{Path, PathBuf};

use activity_test_support::wire::TestCa;
use process_support::*;

/// Writes `pem` to `dir/name`.
fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write PEM");
    path
}

/// Writes a certificate and its key to `dir/name.pem` and `dir/name.key`.
fn write_pair(dir: &Path, name: &str, (cert, key): (String, String)) -> (PathBuf, PathBuf) {
    (
        write(dir, &format!("{name}.pem"), &cert),
        write(dir, &format!("{name}.key"), &key),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn the_cli_is_served_over_tls_and_mutual_tls_and_refused_with_advice_otherwise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("server CA");
    let ca_pem = write(dir.path(), "server-ca.pem", &ca.pem);
    let (cert, key) = write_pair(dir.path(), "server", ca.issue_server());

    let server = ServerProcess::start(
        &dir.path().join("tls.db"),
        &["--tls-cert", s(&cert), "--tls-key", s(&key)],
    );
    assert!(server.log().contains("tls=true"), "{}", server.log());
    let https = format!("https://{}", server.addr);

    let listed = cli(&[
        "types",
        "list",
        "--json",
        "--server",
        &https,
        "--tls-ca",
        s(&ca_pem),
    ])
    .await;
    assert!(listed.status.success(), "{listed:#?}");

    let other = write(dir.path(), "other-ca.pem", &TestCa::new("another CA").pem);
    let untrusted = cli(&["types", "list", "--server", &https, "--tls-ca", s(&other)]).await;
    let message = untrusted.error();
    assert!(
        message.contains("not trusted") && message.contains("--tls-ca"),
        "{message}"
    );

    let plain = cli(&["types", "list", "--server", &server.url()]).await;
    let message = plain.error();
    assert!(
        message.contains("requires TLS") && message.contains("https://"),
        "{message}"
    );

    let missing = cli(&[
        "types",
        "list",
        "--server",
        &https,
        "--tls-ca",
        "/nonexistent/ca.pem",
    ])
    .await;
    let message = missing.error();
    assert!(
        message.contains("--tls-ca") && message.contains("/nonexistent/ca.pem"),
        "{message}"
    );
    drop(server);

    // Mutual TLS: the CLI presents a certificate of the client CA.
    let client_ca = TestCa::new("client CA");
    let client_ca_pem = write(dir.path(), "client-ca.pem", &client_ca.pem);
    let (client_cert, client_key) = write_pair(dir.path(), "cli", client_ca.issue_client("cli"));
    let server = ServerProcess::start(
        &dir.path().join("mtls.db"),
        &[
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
            "--tls-client-ca",
            s(&client_ca_pem),
        ],
    );
    assert!(server.log().contains("mutual_tls=true"), "{}", server.log());
    let https = format!("https://{}", server.addr);
    let served = cli(&[
        "types",
        "list",
        "--server",
        &https,
        "--tls-ca",
        s(&ca_pem),
        "--tls-cert",
        s(&client_cert),
        "--tls-key",
        s(&client_key),
    ])
    .await;
    assert!(served.status.success(), "{served:#?}");
    let anonymous = cli(&["types", "list", "--server", &https, "--tls-ca", s(&ca_pem)]).await;
    let message = anonymous.error();
    assert!(message.contains("client certificate"), "{message}");
}

#[tokio::test]
async fn serve_refuses_unusable_tls_files_at_start_naming_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let run = cli(&[
        "serve",
        "--db",
        s(&dir.path().join("x.db")),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        s(&garbage),
        "--tls-key",
        s(&garbage),
    ])
    .await;
    let message = run.error();
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "{message}"
    );
}
