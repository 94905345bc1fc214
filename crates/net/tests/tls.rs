//! wss:// with real certificates over real sockets.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
mod common;
use common::echo_server;
use volley_net::{tls, Acceptor, CloseCode, Config, Connector, DeflateConfig, Error, Message};

struct Cert {
    server: Arc<rustls::ServerConfig>,
    ca_file: tempfile_path::TempPath,
}

mod tempfile_path {
    /// A file under the system temp dir, removed on drop.
    pub(crate) struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A self-signed certificate for `names`, valid from `not_before` to `not_after` (years).
fn cert(names: &[&str], years: (i32, i32)) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let server = tls::server_config(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("volley-test-ca-{}-{}.pem", std::process::id(), rand_suffix()));
    std::fs::write(&path, cert.pem()).unwrap();
    Cert {
        server,
        ca_file: tempfile_path::TempPath(path),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn valid() -> Cert {
    cert(&["localhost", "127.0.0.1"], (2020, 2099))
}

#[tokio::test]
async fn wss_echo_with_a_trusted_certificate_and_compression() {
    let c = valid();
    let addr = echo_server(
        Acceptor::default()
            .tls(c.server.clone())
            .deflate(DeflateConfig::default()),
    )
    .await;
    let connector = Connector::default()
        .tls(tls::client_config(Some(&c.ca_file.0)).unwrap())
        .deflate(DeflateConfig::default());
    for host in ["localhost", "127.0.0.1"] {
        let mut ws = connector
            .connect(&format!("wss://{host}:{}/", addr.port()))
            .await
            .unwrap();
        assert_eq!(ws.get_ref().alpn(), Some(&b"http/1.1"[..]));
        assert!(ws.deflate_enabled());
        let big = "wss ".repeat(100_000);
        ws.send(big.as_str()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(Message::from(big)));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert_eq!(ws.peer_close().map(|f| f.code), Some(CloseCode::NORMAL));
    }
}

async fn tls_error(cert_for_server: &Cert, trust: Option<&Cert>, host: &str) -> String {
    let addr = echo_server(Acceptor::default().tls(cert_for_server.server.clone())).await;
    let connector = Connector::default().tls(tls::client_config(trust.map(|c| c.ca_file.0.as_path())).unwrap());
    match connector.connect(&format!("wss://{host}:{}/", addr.port())).await {
        Err(Error::Tls(text)) => text,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_ca_is_reported_clearly() {
    let c = valid();
    let text = tls_error(&c, None, "localhost").await;
    assert!(text.contains("unknown certificate authority"), "{text}");
}

#[tokio::test]
async fn wrong_name_is_reported_clearly() {
    let c = cert(&["example.com"], (2020, 2099));
    let text = tls_error(&c, Some(&c), "localhost").await;
    assert!(text.contains("not valid for this host name"), "{text}");
}

#[tokio::test]
async fn expired_certificate_is_reported_clearly() {
    let c = cert(&["localhost"], (2000, 2001));
    let text = tls_error(&c, Some(&c), "localhost").await;
    assert!(text.contains("expired"), "{text}");
}

#[tokio::test]
async fn tls_garbage_and_stalled_handshakes_do_not_disturb_others() {
    let c = valid();
    let acceptor = Acceptor::new(Config {
        handshake_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .tls(c.server.clone());
    let addr = echo_server(acceptor).await;

    // Plain HTTP (or any non-TLS bytes) to the TLS port: the server hangs up.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let read = timeout(Duration::from_secs(3), garbage.read_to_end(&mut sink))
        .await
        .unwrap();
    assert!(read.is_err() || sink.len() < 64, "no WebSocket answer to non-TLS bytes");

    // A client that stops halfway through the TLS handshake is dropped by the timeout.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    let mut sink = Vec::new();
    let closed = timeout(Duration::from_secs(3), stalled.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "stalled TLS handshake was not dropped");

    // Meanwhile a real client is served.
    let connector = Connector::default().tls(tls::client_config(Some(&c.ca_file.0)).unwrap());
    let mut ws = connector
        .connect(&format!("wss://localhost:{}/", addr.port()))
        .await
        .unwrap();
    ws.send("fine").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("fine")));
}

#[test]
fn pem_loading_errors_name_the_file() {
    let missing = std::path::Path::new("/nonexistent/cert.pem");
    match tls::server_config_from_pem(missing, missing) {
        Err(Error::TlsConfig(text)) => assert!(text.contains("/nonexistent/cert.pem"), "{text}"),
        other => panic!("{other:?}"),
    }
}
