//! `activity-server serve --tls-cert --tls-key [--tls-client-ca]` and the CLI's
//! `--tls-ca` / `--tls-cert` / `--tls-key`, with certificates made at test time:
//! the CLI is served over TLS and mutual TLS, and refused with advice when it
//! does not trust the server's CA, lacks the client certificate, or speaks plain
//! text to the TLS port.

mod process_support;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

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

/// POSTs the login form with `token` to the dashboard at `addr` (over TLS,
/// trusting `ca`, when given) and answers the response's head.
async fn login(addr: std::net::SocketAddr, ca: Option<&str>, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, ServerName},
    };

    let body = format!("token={token}&next=%2F");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let mut answer = Vec::new();
    match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("CA");
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from("localhost").expect("name");
            let mut tls = connector
                .connect(name, stream)
                .await
                .expect("TLS handshake");
            tls.write_all(request.as_bytes()).await.expect("sent");
            let _ = tls.read_to_end(&mut answer).await;
        }
        None => {
            let mut stream = stream;
            stream.write_all(request.as_bytes()).await.expect("sent");
            let _ = stream.read_to_end(&mut answer).await;
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The `Set-Cookie` line of a response head, split into its attributes.
fn cookie_attributes(head: &str) -> Vec<String> {
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a Set-Cookie header: {head}"));
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn the_dashboard_session_cookie_is_secure_exactly_when_served_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("server CA");
    let (cert, key) = write_pair(dir.path(), "server", ca.issue_server());
    let tls = ["--tls-cert", s(&cert), "--tls-key", s(&key)];
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let http = free.local_addr().expect("address");
    drop(free);
    let http_arg = http.to_string();

    // TLS, the dashboard on the gRPC port.
    let server = ServerProcess::start(
        &dir.path().join("one.db"),
        &[tls[0], tls[1], tls[2], tls[3], "--token", "secret"],
    );
    let head = login(server.addr, Some(&ca.pem), "secret").await;
    let attributes = cookie_attributes(&head);
    for expected in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected}: {head}"
        );
    }

    // TLS, the dashboard on its own port (`--http`), served over TLS too.
    let separate = ServerProcess::start(
        &dir.path().join("two.db"),
        &[
            tls[0], tls[1], tls[2], tls[3], "--token", "secret", "--http", &http_arg,
        ],
    );
    assert!(
        separate.log().contains(&format!("https://{http}/")),
        "{}",
        separate.log()
    );
    let head = login(http, Some(&ca.pem), "secret").await;
    let attributes = cookie_attributes(&head);
    for expected in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected}: {head}"
        );
    }

    // Plain HTTP: HttpOnly, not Secure (a browser would never send it back).
    let plain = ServerProcess::start(&dir.path().join("three.db"), &["--token", "secret"]);
    let head = login(plain.addr, None, "secret").await;
    let attributes = cookie_attributes(&head);
    assert!(attributes.iter().any(|a| a == "HttpOnly"), "{head}");
    assert!(!attributes.iter().any(|a| a == "Secure"), "{head}");
}
