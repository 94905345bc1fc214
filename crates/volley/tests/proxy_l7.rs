//! `volley proxy` in layer 7 (the default mode) in front of real `volley
//! serve` and `volley echo` processes: chat and game WebSockets arriving
//! over HTTP/1.1, HTTP/2 and HTTP/3 leave as HTTP/1.1 upgrades, a room's
//! members meet on one node by affinity, a drained backend's WebSockets are
//! closed paced with 1012 and reconnect to the other, a reload keeps every
//! established WebSocket, and bad backends and bad requests get their
//! status while everyone else goes on.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{dev_cert, free_addr, node, volley, volley_logging, wait_port, Proc};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use volley_net::{Config, Connector, H2Connection, H3Connection, Message, WebSocket};

async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, value: Value) {
    ws.send(Message::Text(value.to_string().into())).await.unwrap();
}

/// The next JSON frame of `kind`, skipping others (10 s at most).
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame"))
            .unwrap()
            .unwrap_or_else(|| panic!("closed before {kind}: {:?}", ws.peer_close()));
        let value: Value = serde_json::from_slice(message.as_bytes()).unwrap();
        if value["type"] == kind {
            return value;
        }
    }
}

/// Alice creates a room and Bob joins it by id: this works only if both
/// reached the same node (the nodes share no store), which is what affinity
/// promises. Then a message crosses.
async fn meet<S: AsyncRead + AsyncWrite + Unpin>(alice: &mut WebSocket<S>, bob: &mut WebSocket<S>, text: &str) {
    send(alice, json!({"type":"auth","guest":"alice"})).await;
    send(bob, json!({"type":"auth","guest":"bob"})).await;
    next(alice, "ready").await;
    next(bob, "ready").await;
    send(alice, json!({"type":"create_room","name":text})).await;
    let room = next(alice, "room_joined").await["room"]["id"].clone();
    send(bob, json!({"type":"join","room":room})).await;
    next(bob, "room_joined").await;
    send(alice, json!({"type":"send","room":room,"id":"m1","text":text})).await;
    assert_eq!(next(bob, "message").await["text"], text);
}

/// GET `path` on a fresh plain HTTP/1.1 connection: status, head, body.
fn get(to: SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        to,
        &format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"),
    )
}

/// Send `request` as it is on a fresh connection; status, head and body of
/// the answer (status 0 if none came). A `101` answer is read up to its
/// head's end (the connection stays open after it).
fn raw(to: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(request.as_bytes());
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
        }
        if text.starts_with(b"HTTP/1.1 101") && text.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A WebSocket upgrade by hand, to read the answer's status and head.
fn upgrade(to: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    raw(
        to,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ),
    )
}

/// The proxy's view of its backends: (address, live WebSockets).
fn backends(admin: SocketAddr) -> Vec<(String, u64)> {
    let (status, _, body) = get(admin, "/backends");
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    value["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["backend"].as_str().unwrap().to_owned(),
                b["websockets"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn live_on(admin: SocketAddr, backend: SocketAddr) -> u64 {
    backends(admin)
        .into_iter()
        .find(|(b, _)| *b == backend.to_string())
        .map_or(0, |(_, n)| n)
}

/// Wait (5 s at most) until each backend has its count of live WebSockets:
/// a connection registers just after its handshake's answer went out.
fn expect_live(admin: SocketAddr, want: &[(SocketAddr, u64)]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen: Vec<u64> = want.iter().map(|(b, _)| live_on(admin, *b)).collect();
        if seen.iter().zip(want).all(|(s, (_, w))| s == w) {
            return;
        }
        assert!(Instant::now() < deadline, "live WebSockets {seen:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_game_over_http1_http2_and_http3_meet_by_room_affinity() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = dev_cert(dir.path(), &["localhost", "127.0.0.1"]);
    let (a, b, listen, admin) = (free_addr(), free_addr(), free_addr(), free_addr());
    // Two nodes that share nothing: a room lives on the node that made it.
    // They take the client address from the proxy's PROXY header.
    let trust = ["--proxy-protocol", "--trusted-proxies", "127.0.0.1"];
    let _a = node(a, "a", dir.path(), &trust);
    let _b = node(b, "b", dir.path(), &trust);
    let (a_s, b_s, l_s, admin_s) = (a.to_string(), b.to_string(), listen.to_string(), admin.to_string());
    let _proxy = volley(&[
        "proxy",
        "--listen",
        &l_s,
        "--backend",
        &a_s,
        "--backend",
        &b_s,
        "--affinity",
        "query:room",
        "--proxy-protocol",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--admin",
        &admin_s,
    ]);
    wait_port(listen);
    let tls = volley_net::tls::client_config(Some(Path::new(&cert))).unwrap();

    // HTTP/1.1 over TLS.
    let connector = Connector::new(Config::default()).tls(tls.clone());
    let url = format!("wss://localhost:{}/ws?room=by-h1", listen.port());
    let mut alice = connector.connect(&url).await.expect("h1 through the proxy");
    let mut bob = connector.connect(&url).await.unwrap();
    meet(&mut alice, &mut bob, "over http/1.1").await;

    // HTTP/2: two streams of one connection, each a WebSocket to the node.
    let h2 = H2Connection::connect(&l_s, "localhost", tls.clone(), Config::default())
        .await
        .unwrap();
    let mut alice2 = h2
        .websocket("/ws?room=by-h2", &[])
        .await
        .expect("RFC 8441 through the proxy");
    let mut bob2 = h2.websocket("/ws?room=by-h2", &[]).await.unwrap();
    meet(&mut alice2, &mut bob2, "over h2").await;

    // HTTP/3 on the same port number over UDP.
    let h3 = H3Connection::connect(&l_s, "localhost", tls.clone(), Config::default())
        .await
        .expect("QUIC to the proxy");
    let mut alice3 = h3
        .websocket("/ws?room=by-h3", &[])
        .await
        .expect("RFC 9220 through the proxy");
    let mut bob3 = h3.websocket("/ws?room=by-h3", &[]).await.unwrap();
    meet(&mut alice3, &mut bob3, "over h3").await;

    // Pages pass too, and keys spread over both nodes (a key with no live
    // connection goes to its place on the ring).
    let mut nodes = std::collections::HashSet::new();
    for k in 0..24 {
        let (status, body) = h2.get(&format!("/health?room=k{k}")).await.unwrap();
        assert_eq!(status, 200);
        let health: Value = serde_json::from_slice(&body).unwrap();
        nodes.insert(health["node"].as_str().unwrap().to_owned());
    }
    assert_eq!(nodes.len(), 2, "24 keys over two nodes: {nodes:?}");
    // A key with live connections stays where they are.
    let (_, body) = h2.get("/health?room=by-h2").await.unwrap();
    let home: Value = serde_json::from_slice(&body).unwrap();
    for _ in 0..5 {
        let (_, body) = h2.get("/health?room=by-h2").await.unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["node"], home["node"]);
    }

    // The game: a player and a spectator of one match key, over HTTP/2.
    let ws = h2.websocket("/game/ws?room=match-1", &[]).await.unwrap();
    let join = volley_game::protocol::Join {
        name: "p1".into(),
        spectate: false,
        resume: None,
        seat: None,
        account: None,
    };
    let mut player = volley_client::game::GameClient::join_on(ws, join)
        .await
        .expect("game welcome");
    assert!(player.welcome.player > 0);
    let event = tokio::time::timeout(Duration::from_secs(5), player.next())
        .await
        .unwrap()
        .unwrap();
    assert!(event.is_some(), "snapshots flow through the proxy");

    // The access log and metrics count what went through.
    let (_, _, metrics) = get(admin, "/metrics");
    for transport in ["http/1.1", "h2", "h3"] {
        assert!(
            metrics.contains(&format!("volley_websocket_upgrades_total{{transport=\"{transport}\"}}")),
            "{transport}: {metrics}"
        );
    }
    assert!(metrics.contains("volley_proxy_handshakes_total"), "{metrics}");
}

/// Clients of the proxy on `listen` (plain HTTP/1.1), each an echo WebSocket.
async fn echo_clients(listen: SocketAddr, n: usize) -> Vec<WebSocket<volley_net::MaybeTlsStream>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(volley_net::connect(&format!("ws://{listen}/")).await.unwrap());
    }
    out
}

async fn echoes<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> bool {
    if ws.send(Message::Text("ping?".into())).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(5), ws.recv()).await,
        Ok(Ok(Some(m))) if m.as_bytes() == b"ping?"
    )
}

fn echo_node(addr: SocketAddr) -> Proc {
    let addr_s = addr.to_string();
    let p = volley(&["echo", "--addr", &addr_s]);
    wait_port(addr);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_closes_websockets_paced_with_1012_and_they_come_back_elsewhere() {
    let (a, b, listen, admin) = (free_addr(), free_addr(), free_addr(), free_addr());
    let (_a, _b) = (echo_node(a), echo_node(b));
    let (a_s, b_s, l_s, admin_s) = (a.to_string(), b.to_string(), listen.to_string(), admin.to_string());
    let _proxy = volley(&[
        "proxy",
        "--listen",
        &l_s,
        "--backend",
        &a_s,
        "--backend",
        &b_s,
        "--health",
        "tcp",
        "--admin",
        &admin_s,
        "--drain-rate",
        "5",
    ]);
    wait_port(listen);
    wait_port(admin);
    // Round robin: 10 on each.
    let mut clients = echo_clients(listen, 20).await;
    expect_live(admin, &[(a, 10), (b, 10)]);

    let drained = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["proxy", "drain", &b_s, "--admin", &admin_s])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"websockets\":10"));

    // Every client waits for its close (or not): b's ten get 1012 with a
    // reason saying when to come back, five a second; a's ten hear nothing.
    let mut waits = Vec::new();
    for mut ws in clients.drain(..) {
        waits.push(tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), ws.recv()).await {
                Ok(Ok(None)) => {
                    let close = ws.peer_close().cloned().expect("a close frame");
                    (
                        Some((u16::from(close.code), close.reason.to_string(), drained.elapsed())),
                        ws,
                    )
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => (None, ws),
            }
        }));
    }
    let mut closes = Vec::new();
    let mut kept = Vec::new();
    for w in waits {
        match w.await.unwrap() {
            (Some(close), _) => closes.push(close),
            (None, ws) => kept.push(ws),
        }
    }
    assert_eq!(closes.len(), 10, "b's WebSockets closed: {closes:?}");
    for (code, reason, _) in &closes {
        assert_eq!(*code, 1012, "{reason}");
        assert!(reason.contains("reconnect in"), "{reason}");
    }
    let first = closes.iter().map(|c| c.2).min().unwrap();
    let last = closes.iter().map(|c| c.2).max().unwrap();
    assert!(
        last - first >= Duration::from_millis(1400),
        "ten closes at five a second are spread over about 1.8 s, not {:?}",
        last - first
    );
    // a's WebSockets were never touched.
    for ws in &mut kept {
        assert!(echoes(ws).await, "a's WebSockets still echo");
    }
    // The drained clients come back: all to a.
    let mut back = echo_clients(listen, 10).await;
    for ws in &mut back {
        assert!(echoes(ws).await);
    }
    expect_live(admin, &[(a, 20), (b, 0)]);
    let (_, _, metrics) = get(admin, "/metrics");
    assert!(
        metrics.contains(&format!("volley_proxy_drained_total{{backend=\"{b}\"}} 10")),
        "{metrics}"
    );
    // Undrained, b takes new connections again.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["proxy", "undrain", &b_s, "--admin", &admin_s])
        .output()
        .unwrap();
    assert!(out.status.success());
    let _more = echo_clients(listen, 4).await;
    expect_live(admin, &[(a, 22), (b, 2)]);
}

fn write_config(path: &Path, listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr]) {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    std::fs::write(
        path,
        format!(
            "listen = \"{listen}\"\nadmin = \"{admin}\"\nbackends = [{}]\ndrain_rate = 50\n[health]\nkind = \"tcp\"\ninterval_ms = 200\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_established_websockets_and_drains_what_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, listen, admin) = (free_addr(), free_addr(), free_addr(), free_addr());
    let (_a, _b) = (echo_node(a), echo_node(b));
    let file = dir.path().join("proxy.toml");
    write_config(&file, listen, admin, &[a]);
    let log = dir.path().join("proxy.log");
    let proxy = volley_logging(&["proxy", "--config", file.to_str().unwrap()], Some(&log));
    wait_port(listen);
    wait_port(admin);
    let mut old = echo_clients(listen, 6).await;
    expect_live(admin, &[(a, 6)]);

    // Reload with b added: nothing established moves or closes.
    write_config(&file, listen, admin, &[a, b]);
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("configuration reloaded")
    {
        assert!(
            Instant::now() < deadline,
            "no reload: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for ws in &mut old {
        assert!(echoes(ws).await, "an established WebSocket survives the reload");
    }
    let mut new = echo_clients(listen, 6).await;
    // New connections see the new configuration.
    expect_live(admin, &[(a, 9), (b, 3)]);

    // A broken file is refused and changes nothing.
    std::fs::write(&file, "backends = \"not a list\"").unwrap();
    proxy.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(echoes(&mut old[0]).await);

    // Reload with a removed: its WebSockets are drained with 1012; b's stay.
    write_config(&file, listen, admin, &[b]);
    proxy.signal("HUP");
    let mut on_a = 0;
    for ws in old.iter_mut().chain(new.iter_mut()) {
        match tokio::time::timeout(Duration::from_secs(1), ws.recv()).await {
            Ok(Ok(None)) => {
                assert_eq!(ws.peer_close().map(|c| u16::from(c.code)), Some(1012));
                on_a += 1;
            }
            Err(_) => assert!(echoes(ws).await, "b's WebSockets are kept"),
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(on_a, 9, "a's six old and three new WebSockets were drained");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("reload refused"), "{text}");
    assert!(
        text.contains("client_close=1012"),
        "the access log has the close code: {text}"
    );
}

/// A backend that accepts and closes at once (it dies mid-handshake).
fn dying_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        }
    });
    addr
}

/// A backend that accepts and never answers.
fn silent_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backends_and_bad_requests_get_their_status_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (good, listen) = (free_addr(), free_addr());
    let _good = echo_node(good);
    let (dying, silent, nobody) = (dying_backend(), silent_backend(), free_addr());
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            r#"listen = "{listen}"
backends = ["{good}"]
handshake_timeout_ms = 1000
connect_attempts = 1
[health]
kind = "tcp"
interval_ms = 60000
fall = 3
[[routes]]
path_prefix = "/dies"
backends = ["{dying}"]
[[routes]]
path_prefix = "/silent"
backends = ["{silent}"]
[[routes]]
path_prefix = "/nobody"
backends = ["{nobody}"]
"#
        ),
    )
    .unwrap();
    let _proxy = volley(&["proxy", "--config", file.to_str().unwrap()]);
    wait_port(listen);
    let mut bystander = volley_net::connect(&format!("ws://{listen}/")).await.unwrap();

    assert_eq!(upgrade(listen, "/dies", "").0, 502, "a backend that dies mid-handshake");
    let started = Instant::now();
    assert_eq!(upgrade(listen, "/silent", "").0, 504, "a backend that never answers");
    assert!(started.elapsed() < Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(upgrade(listen, "/nobody", "").0, 502, "a backend that refuses");
    }
    // Three failures in a row take it out: then nobody is available.
    assert_eq!(upgrade(listen, "/nobody", "").0, 503);
    assert_eq!(get(listen, "/nobody").0, 503);

    // Bad handshakes are the proxy's to refuse.
    assert_eq!(
        raw(
            listen,
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .0,
        400,
        "no key"
    );
    let (status, head, _) = upgrade(listen, "/", "");
    assert_eq!(status, 101, "{head}");
    let old = raw(
        listen,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert_eq!(old.0, 426);
    assert!(
        old.1.to_ascii_lowercase().contains("sec-websocket-version: 13"),
        "{}",
        old.1
    );
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(raw(listen, &huge).0, 431);
    // Our own key is checked against the backend's accept, and the client
    // gets the accept for its key.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");

    // A slow head is cut at the handshake timeout.
    let mut slow = TcpStream::connect(listen).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(4), "closed after about 1 s");

    // Through all of it, the bystander's WebSocket went on.
    assert!(echoes(&mut bystander).await);
}

/// `volley-client`'s session behind the proxy: a drain's 1012 names the
/// wait, the session waits exactly that, keeps trying while no backend
/// takes it, and once back it resumes: the message posted meanwhile
/// arrives, and the one queued meanwhile is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_session_waits_as_the_drain_says_and_resumes() {
    use volley_client::chat::{ChatClient, Event, Login, Options, Session};
    use volley_client::Backoff;

    let dir = tempfile::tempdir().unwrap();
    let (a, listen, admin) = (free_addr(), free_addr(), free_addr());
    let _a = node(a, "a", dir.path(), &[]);
    let (a_s, l_s, admin_s) = (a.to_string(), listen.to_string(), admin.to_string());
    let _proxy = volley(&["proxy", "--listen", &l_s, "--backend", &a_s, "--admin", &admin_s]);
    wait_port(listen);
    wait_port(admin);
    let options = Options {
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(300)),
        ..Options::default()
    };
    let mut alice = Session::with_options(&format!("ws://{listen}/ws"), Login::Guest("alice".into()), options);
    async fn next(s: &mut Session) -> Event {
        tokio::time::timeout(Duration::from_secs(20), s.next_event())
            .await
            .expect("an event in time")
            .expect("session goes on")
    }
    assert!(matches!(next(&mut alice).await, Event::Ready { reconnect: false, .. }));
    let room = alice.create_room("drained", false).await.unwrap();
    alice.post(room, "one").await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["proxy", "drain", &a_s, "--admin", &admin_s])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (reason, retry_in) = loop {
        if let Event::Disconnected {
            code, reason, retry_in, ..
        } = next(&mut alice).await
        {
            assert_eq!(code, 1012, "{reason}");
            break (reason, retry_in);
        }
    };
    let hinted: u64 = reason
        .split("reconnect in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {reason:?}"));
    assert_eq!(retry_in, Duration::from_millis(hinted));

    // Meanwhile: bob posts on the node directly, alice queues one.
    let mut bob = ChatClient::connect(&format!("ws://{a}/ws"), Login::Guest("bob".into()), &Default::default())
        .await
        .unwrap();
    bob.request(json!({ "type": "join", "room": room })).await.unwrap();
    bob.post(room, "bob-1", "while drained").await.unwrap();
    let queued = alice.send(room, "queued").await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["proxy", "undrain", &a_s, "--admin", &admin_s])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut seen = Vec::new();
    let mut acked = false;
    while !(acked && seen.len() == 2) {
        match next(&mut alice).await {
            Event::Message(m) => seen.push((m.seq.0, m.text)),
            Event::Acked { id, duplicate, .. } => {
                assert_eq!(id, queued);
                assert!(!duplicate);
                acked = true;
            }
            _ => {}
        }
    }
    assert_eq!(seen, vec![(2, "while drained".to_owned()), (3, "queued".to_owned())]);
    alice.close().await;
}
