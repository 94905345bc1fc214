//! The front door of a real `volley serve` process, tried as a hostile
//! client would: slow and silent connections, oversized heads, too many
//! connections from one address (on the game's path too), a login storm,
//! and `/metrics` kept off the public port. Attackers connect from their own
//! loopback addresses (127.0.0.3 and up) so the per-address cap sees them
//! apart from the well-behaved client on 127.0.0.1.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use volley_client::chat::{ChatClient, Login};
use volley_testkit::free_port;

/// A `volley serve` process on SQLite in a temporary directory, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(toml: &str, flags: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let config = dir.path().join("volley.toml");
        std::fs::write(&config, toml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_volley"))
            .args(["serve", "--addr", &addr.to_string(), "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start volley serve");
        let serve = Serve { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        // With TLS the port being open is the sign (plain HTTP would not answer).
        let tls = flags.contains(&"--tls-cert");
        while !(if tls {
            TcpStream::connect(serve.addr).is_ok()
        } else {
            get(serve.addr, "/healthz", &[]).0 == 200
        }) {
            assert!(Instant::now() < deadline, "volley serve never answered /healthz");
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// Resident memory now and at its peak, in KiB (`/proc/PID/status`).
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `head` (a whole request head) on a fresh connection; the status and the answer.
fn raw(addr: SocketAddr, head: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read everything we send.
    let _ = s.write_all(head);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && !answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.write_all(head.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn upgrade_head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
}

/// A TCP connection from a chosen loopback address.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// 1,000 connections from one address: the first 256 (the cap) are held
/// silent or fed one byte every half second, the rest are refused at once
/// with 429; every held one is closed at the head timeout; meanwhile a
/// client from another address keeps chatting with acknowledgements as fast
/// as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_from_one_address_is_closed_in_time_and_others_keep_chatting() {
    const SLOW: usize = 1000;
    let timeout = Duration::from_secs(2);
    let serve = Serve::start(
        "head_timeout_ms = 2000\naccount_attempts_per_sec = 0\nmessages_per_sec = 1000.0\nmessage_burst = 1000.0\n",
        &[],
    );
    let url = format!("ws://{}/ws", serve.addr);
    let mut alice = ChatClient::connect(&url, Login::Guest("alice".into()), &HashMap::new())
        .await
        .unwrap();
    alice
        .send_json(&serde_json::json!({ "type": "create_room", "name": "calm" }))
        .await
        .unwrap();
    let room = loop {
        if let Some(volley_chat::protocol::ServerMsg::RoomJoined { room }) = alice.recv().await.unwrap() {
            break room.id;
        }
    };
    let before = slowest_ack(&mut alice, room, "before").await;

    let attacker: IpAddr = [127, 0, 0, 3].into();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..SLOW {
        let addr = serve.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = connect_from(attacker, addr).await.unwrap();
            let dribble = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
            let mut sent = 0;
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                tokio::select! {
                    read = s.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return (started.elapsed(), String::from_utf8_lossy(&answer).into_owned()),
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if i % 2 == 1 && sent < dribble.len() {
                            let _ = s.write_all(&dribble[sent..=sent]).await;
                            sent += 1;
                        }
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "connection {i} never closed"
                );
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = slowest_ack(&mut alice, room, "during").await;
    let mut refused = 0;
    let mut held = Vec::new();
    for task in tasks {
        let (closed_after, answer) = task.await.unwrap();
        if answer.starts_with("HTTP/1.1 429") {
            refused += 1;
        } else {
            held.push(closed_after);
        }
    }
    held.sort();
    eprintln!(
        "acks: slowest of 20 {before:?} before, {during:?} during; {} held, closed after {:?} .. {:?}; {refused} refused",
        held.len(),
        held.first(),
        held.last()
    );
    assert_eq!(held.len(), 256, "the cap holds exactly 256 from one address");
    assert_eq!(refused, SLOW - 256);
    assert!(
        held.iter()
            .all(|&t| t >= timeout - Duration::from_millis(100) && t < timeout + Duration::from_millis(2500)),
        "every held connection closed at the head timeout: {held:?}"
    );
    assert!(
        during < Duration::from_millis(500),
        "a chat ack took {during:?} during the attack ({before:?} before)"
    );
    // The address's slots are free again.
    assert_eq!(get(serve.addr, "/healthz", &[]).0, 200);
}

/// The slowest acknowledgement of 20 sends.
async fn slowest_ack(alice: &mut ChatClient, room: volley_chat::RoomId, tag: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        alice.post(room, &format!("{tag}-{i}"), "hello").await.unwrap();
        slowest = slowest.max(sent.elapsed());
    }
    slowest
}

/// 431 on every path for a head over 16 KiB or with over 64 header fields;
/// a head within both limits is served.
#[test]
fn oversized_heads_get_431_on_every_path() {
    let serve = Serve::start("", &[]);
    for path in ["/", "/healthz", "/api/me", "/ws", "/game/ws", "/game"] {
        let big = format!("{}x-big: {}\r\n\r\n", upgrade_head(path), "a".repeat(17 * 1024));
        let (status, answer) = raw(serve.addr, big.as_bytes());
        assert_eq!(status, 431, "{path} with a 17 KiB header: {answer}");
        let mut many = upgrade_head(path);
        for i in 0..65 {
            many.push_str(&format!("x-h{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let (status, answer) = raw(serve.addr, many.as_bytes());
        assert_eq!(status, 431, "{path} with 70 header fields: {answer}");
    }
    let mut fine = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_owned();
    for i in 0..55 {
        fine.push_str(&format!("x-h{i}: {}\r\n", "v".repeat(200)));
    }
    fine.push_str("\r\n");
    assert_eq!(
        raw(serve.addr, fine.as_bytes()).0,
        200,
        "57 fields, 12 KiB: within the limits"
    );
}

/// The game's WebSocket path is under the same per-address cap as the chat's.
#[test]
fn the_game_path_has_the_per_address_cap() {
    let serve = Serve::start("max_connections_per_ip = 4\n", &[]);
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(serve.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let head = format!("{}\r\n", upgrade_head("/game/ws"));
    let (status, answer) = raw(serve.addr, head.as_bytes());
    assert_eq!(status, 429, "{answer}");
    assert!(answer.contains("too many connections from this address"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let (status, answer) = raw(serve.addr, head.as_bytes());
    assert_eq!(status, 101, "a slot is free again: {answer}");
}

/// 1,000 logins from 50 addresses within about ten seconds: password checks
/// run at most one per core, a bounded queue waits, and the rest are told
/// 503 with Retry-After; the server's peak memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_is_bounded_in_memory() {
    let serve = Serve::start("", &[]);
    let body = r#"{"username":"storm","password":"correct horse"}"#;
    let register = format!(
        "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw(serve.addr, register.as_bytes()).0, 201);
    let (rss_before, _) = serve.rss_kib();
    let login = register.replace("/api/register", "/api/login");
    let mut tasks = Vec::new();
    for round in 0..20 {
        for a in 0..50u8 {
            let addr = serve.addr;
            let login = login.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = connect_from([127, 0, 1, 10 + a].into(), addr).await.unwrap();
                s.write_all(login.as_bytes()).await.unwrap();
                let mut answer = String::new();
                let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_string(&mut answer)).await;
                answer
            }));
        }
        let _ = round;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let answer = task.await.unwrap();
        let status = answer.get(9..12).unwrap_or("none").to_owned();
        if status == "503" {
            assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
        }
        *statuses.entry(status).or_default() += 1;
    }
    let (_, peak) = serve.rss_kib();
    let growth_mib = peak.saturating_sub(rss_before) / 1024;
    eprintln!("login storm: {statuses:?}; RSS {rss_before} KiB before, peak {peak} KiB (+{growth_mib} MiB)");
    assert!(statuses.get("200").copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        statuses.keys().all(|s| ["200", "503", "429"].contains(&s.as_str())),
        "{statuses:?}"
    );
    assert!(growth_mib < 150, "peak memory grew by {growth_mib} MiB");
}

/// `/metrics` is not on the public port: with `--metrics-addr` only there;
/// without it, only for a client on this machine that no proxy forwards.
/// Every series is there from start, at zero.
#[test]
fn metrics_stay_off_the_public_port() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let serve = Serve::start("", &["--metrics-addr", &metrics.to_string()]);
    assert_eq!(get(serve.addr, "/metrics", &[]).0, 404);
    let (status, page) = get(metrics, "/metrics", &[]);
    assert_eq!(status, 200);
    for series in [
        "volley_messages_total 0",
        "volley_slow_consumers_total 0",
        "volley_game_rooms",
        "volley_connections_refused_total{reason=\"address_cap\"} 0",
    ] {
        assert!(page.contains(series), "{series} missing from a fresh server's /metrics");
    }
    assert_eq!(get(serve.addr, "/healthz", &[]).0, 200, "health stays public");
    drop(serve);

    let serve = Serve::start("", &[]);
    assert_eq!(get(serve.addr, "/metrics", &[]).0, 200, "loopback, no proxy");
    assert_eq!(
        get(serve.addr, "/metrics", &[("X-Forwarded-For", "203.0.113.9")]).0,
        404,
        "forwarded by a proxy on this machine"
    );
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A certificate pair for `localhost`, as PEM (certificate, key).
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// SIGHUP reads the certificate files again: new connections get the new
/// certificate, a WebSocket opened before keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_sighup_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (old_cert, old_key) = certificate();
    std::fs::write(&cert, &old_cert).unwrap();
    std::fs::write(&key, &old_key).unwrap();
    let (cert_flag, key_flag) = (cert.display().to_string(), key.display().to_string());
    let serve = Serve::start("", &["--tls-cert", &cert_flag, "--tls-key", &key_flag]);
    let url = format!("wss://localhost:{}/ws", serve.addr.port());
    let trusting = |pem: &str| {
        // Each trust store in a file of its own, named for the certificate.
        let ca = dir.path().join(format!("ca-{:x}.pem", fnv(pem.as_bytes())));
        std::fs::write(&ca, pem).unwrap();
        volley_net::Connector::new(volley_net::Config::default())
            .tls(volley_net::tls::client_config(Some(&ca)).unwrap())
    };
    let mut before = ChatClient::connect_with(
        &trusting(&old_cert),
        &url,
        Login::Guest("early".into()),
        &HashMap::new(),
    )
    .await
    .expect("the first certificate is served");
    // HTTP/3 on the UDP twin shares the certificate source.
    let quic_trusting = |pem: &str| {
        let ca = dir.path().join(format!("quic-ca-{:x}.pem", fnv(pem.as_bytes())));
        std::fs::write(&ca, pem).unwrap();
        volley_net::tls::client_config(Some(&ca)).unwrap()
    };
    let authority = serve.addr.to_string();
    let quic = |pem: &str| {
        volley_net::H3Connection::connect(
            &authority,
            "localhost",
            quic_trusting(pem),
            volley_net::Config::default(),
        )
    };
    let h3_before = quic(&old_cert).await.expect("QUIC with the first certificate");
    let mut ws_before = h3_before.websocket("/ws", &[]).await.expect("a WebSocket over HTTP/3");

    let (new_cert, new_key) = certificate();
    std::fs::write(&cert, &new_cert).unwrap();
    std::fs::write(&key, &new_key).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(500)).await;

    ChatClient::connect_with(&trusting(&new_cert), &url, Login::Guest("late".into()), &HashMap::new())
        .await
        .expect("the renewed certificate is served");
    let stale = ChatClient::connect_with(
        &trusting(&old_cert),
        &url,
        Login::Guest("stale".into()),
        &HashMap::new(),
    )
    .await;
    assert!(stale.is_err(), "the old certificate is no longer served");
    quic(&new_cert).await.expect("QUIC serves the renewed certificate");
    assert!(
        quic(&old_cert).await.is_err(),
        "QUIC no longer serves the old certificate"
    );
    ws_before
        .send(volley_net::Message::Text(r#"{"type":"auth","guest":"quic"}"#.into()))
        .await
        .unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(5), ws_before.recv())
        .await
        .expect("the HTTP/3 WebSocket opened before the reload answers")
        .unwrap()
        .unwrap();
    assert!(ready.as_bytes().starts_with(br#"{"type":"ready""#), "{ready:?}");
    // The connection made before the reload is untouched.
    before
        .send_json(&serde_json::json!({ "type": "create_room", "name": "still" }))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), before.recv()).await {
            Ok(Ok(Some(volley_chat::protocol::ServerMsg::RoomJoined { .. }))) => break,
            Ok(Ok(Some(_))) => {}
            other => panic!("the early connection after the reload: {other:?}"),
        }
    }

    // A broken pair on the next SIGHUP keeps the current one in service.
    std::fs::write(&key, "not a key").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    ChatClient::connect_with(
        &trusting(&new_cert),
        &url,
        Login::Guest("after".into()),
        &HashMap::new(),
    )
    .await
    .expect("a failed reload keeps the working certificate");
}
