//! A node killed with -9 in a two-node cluster of real `volley serve`
//! processes over a real PostgreSQL and Redis: its clients reconnect to the
//! other node and resume; no acknowledged message is lost; a send whose
//! answer died with the node, sent again with the same id, is stored once;
//! the member on the surviving node sees every message once, in order; the
//! users left on the dead node go offline there within 10 s, and a user who
//! moved to the surviving node never shows offline. A node stopped with
//! SIGSTOP slows nobody else, and its members get everything once it resumes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use volley_chat::protocol::ServerMsg;
use volley_chat::RoomId;
use volley_client::chat::{ChatClient, Login};
use volley_testkit::{free_port, signal, Nats, Postgres, Redis};

/// A `volley serve` process, killed (-9) when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(name: &str, pg: &Postgres, broker: &str, dir: &std::path::Path) -> Node {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let child = Command::new(env!("CARGO_BIN_EXE_volley"))
            .args(["serve", "--addr", &addr.to_string(), "--node-id", name])
            .args(["--store", &pg.url(), "--broker", broker])
            .args(["--max-connections-per-ip", "0", "--account-attempts-per-sec", "0"])
            .args(["--messages-per-sec", "1000", "--message-burst", "1000"])
            .arg("--data-dir")
            .arg(dir.join(name))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start volley serve");
        let node = Node { child, addr };
        node.wait_healthy();
        node
    }

    /// Ready is `/health` answering 200, not a sleep.
    fn wait_healthy(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node on {} never became healthy", self.addr);
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET with a bearer token over a plain socket: status and body.
fn http_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

async fn expect_joined(client: &mut ChatClient, name: &str) -> RoomId {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.recv()).await {
            Ok(Ok(Some(ServerMsg::RoomJoined { room }))) if room.name == name => return room.id,
            Ok(Ok(Some(_))) => {}
            other => panic!("waiting for room_joined: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_9_loses_no_acknowledged_message_over_redis() {
    let redis = Redis::start().unwrap();
    a_node_killed_with_9_loses_no_acknowledged_message(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_9_loses_no_acknowledged_message_over_nats() {
    let nats = Nats::start().unwrap();
    a_node_killed_with_9_loses_no_acknowledged_message(&nats.url()).await;
}

async fn a_node_killed_with_9_loses_no_acknowledged_message(broker: &str) {
    let pg = Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Node::start("node-a", &pg, broker, dir.path());
    let b = Node::start("node-b", &pg, broker, dir.path());

    let mut alice = ChatClient::connect(&a.url(), Login::Guest("alice".into()), &HashMap::new())
        .await
        .unwrap();
    let alice_token = alice.token.clone().unwrap();
    alice
        .send_json(&serde_json::json!({ "type": "create_room", "name": "fault" }))
        .await
        .unwrap();
    let room = expect_joined(&mut alice, "fault").await;
    let mut bob = ChatClient::connect(&b.url(), Login::Guest("bob".into()), &HashMap::new())
        .await
        .unwrap();
    let bob_token = bob.token.clone().unwrap();
    bob.send_json(&serde_json::json!({ "type": "join", "room": room }))
        .await
        .unwrap();
    expect_joined(&mut bob, "fault").await;
    // Carol stays on node a and dies with it.
    let mut carol = ChatClient::connect(&a.url(), Login::Guest("carol".into()), &HashMap::new())
        .await
        .unwrap();
    let carol_id = carol.user.id;
    carol
        .send_json(&serde_json::json!({ "type": "join", "room": room }))
        .await
        .unwrap();
    expect_joined(&mut carol, "fault").await;

    let reader = tokio::spawn(async move {
        let mut seen: Vec<(u64, String)> = Vec::new();
        let mut presence: Vec<(Instant, String, bool)> = Vec::new();
        let mut last = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), bob.recv()).await {
                Ok(Ok(Some(ServerMsg::Message(m)))) => {
                    last |= m.id == "last";
                    seen.push((m.seq.0, m.id));
                }
                Ok(Ok(Some(ServerMsg::Presence { changes, .. }))) => {
                    for c in changes {
                        presence.push((Instant::now(), c.name, c.online));
                    }
                }
                Ok(Ok(Some(_))) => {}
                other => panic!("bob: {other:?} after {seen:?}"),
            }
            let carol_gone = presence.iter().any(|(_, name, online)| name == "carol" && !online);
            if last && carol_gone {
                return (seen, presence);
            }
        }
    });
    // Bob sees carol arrive before anything dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(b.addr, &format!("/api/rooms/{room}/online"), &bob_token);
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        if body["online"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(carol_id.0))
        {
            break;
        }
        assert!(Instant::now() < deadline, "node b never saw carol online: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut acked = Vec::new();
    for i in 0..30 {
        let id = format!("m{i}");
        acked.push((alice.post(room, &id, "before the crash").await.unwrap().0, id));
    }
    // One send in flight when the node dies: its outcome is unknown.
    alice
        .send_json(&serde_json::json!({ "type": "send", "room": room, "id": "in-flight", "text": "maybe" }))
        .await
        .unwrap();
    a.kill();
    let killed = Instant::now();

    // Alice reconnects to the surviving node and resumes from what she saw.
    let last_acked = acked.last().map(|(s, _)| *s).unwrap();
    let mut alice = ChatClient::connect(
        &b.url(),
        Login::Token(alice_token),
        &HashMap::from([(room, last_acked)]),
    )
    .await
    .expect("node a's token is good on node b");
    let (retry_seq, _) = alice.post(room, "in-flight", "maybe").await.unwrap();
    acked.push((retry_seq, "in-flight".into()));
    for i in 30..40 {
        let id = format!("m{i}");
        acked.push((alice.post(room, &id, "after the crash").await.unwrap().0, id));
    }
    acked.push((alice.post(room, "last", "the end").await.unwrap().0, "last".into()));

    let (seen, presence) = reader.await.unwrap();
    let carol_off = presence
        .iter()
        .find(|(_, name, online)| name == "carol" && !online)
        .map(|(at, _, _)| at.duration_since(killed))
        .unwrap();
    assert!(
        carol_off < Duration::from_secs(10),
        "carol shown offline {carol_off:?} after her node died"
    );
    assert!(
        !presence
            .iter()
            .any(|(at, name, online)| name == "alice" && !online && *at > killed),
        "alice moved to node b and must not flicker offline: {presence:?}"
    );
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat, in order"
    );
    let ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    for (seq, id) in &acked {
        assert!(
            seen.iter().any(|(s, i)| *s == seq.0 && i == id),
            "acknowledged {id} (seq {seq}) never reached bob: {ids:?}"
        );
    }
    assert_eq!(
        ids.iter().filter(|id| **id == "in-flight").count(),
        1,
        "stored once: {ids:?}"
    );
    assert_eq!(seen.len(), acked.len(), "nothing but what was sent: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_slows_nobody_over_redis() {
    let redis = Redis::start().unwrap();
    a_stopped_node_slows_nobody(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_slows_nobody_over_nats() {
    let nats = Nats::start().unwrap();
    a_stopped_node_slows_nobody(&nats.url()).await;
}

/// Node a is stopped (SIGSTOP) for three seconds while bob on node b keeps
/// sending: bob's acknowledgements and dave's deliveries on node b stay fast,
/// and alice on node a gets every message once, in order, after SIGCONT.
async fn a_stopped_node_slows_nobody(broker: &str) {
    const N: usize = 60;
    let pg = Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start("node-a", &pg, broker, dir.path());
    let b = Node::start("node-b", &pg, broker, dir.path());
    let guest = |url: String, name: &'static str| async move {
        ChatClient::connect(&url, Login::Guest(name.into()), &HashMap::new())
            .await
            .unwrap()
    };
    let mut bob = guest(b.url(), "bob").await;
    bob.send_json(&serde_json::json!({ "type": "create_room", "name": "pause" }))
        .await
        .unwrap();
    let room = expect_joined(&mut bob, "pause").await;
    let mut members = Vec::new();
    for (url, name) in [(a.url(), "alice"), (b.url(), "dave")] {
        let mut c = guest(url, name).await;
        c.send_json(&serde_json::json!({ "type": "join", "room": room }))
            .await
            .unwrap();
        expect_joined(&mut c, "pause").await;
        members.push(c);
    }
    let mut dave = members.pop().unwrap();
    let mut alice = members.pop().unwrap();

    signal(a.child.id(), "STOP").unwrap();
    let stopped = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..N {
        let sent = Instant::now();
        bob.post(room, &format!("m{i}"), "while node a sleeps").await.unwrap();
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dave_seqs = read_messages(&mut dave, N, Duration::from_secs(5)).await;
    let dave_done = stopped.elapsed();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed()));
    signal(a.child.id(), "CONT").unwrap();
    let alice_seqs = read_messages(&mut alice, N, Duration::from_secs(15)).await;

    let expected: Vec<u64> = (1..=N as u64).collect();
    assert_eq!(dave_seqs, expected, "dave on node b: every message once, in order");
    assert_eq!(alice_seqs, expected, "alice on the stopped node, after it resumed");
    assert!(
        slowest < Duration::from_millis(500),
        "a send took {slowest:?} while node a was stopped"
    );
    assert!(
        dave_done < Duration::from_secs(3),
        "node b delivered while node a was still stopped ({dave_done:?})"
    );
}

/// The seqs of the next `n` messages, skipping other frames; fails after `within`.
async fn read_messages(client: &mut ChatClient, n: usize, within: Duration) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seqs = Vec::new();
    while seqs.len() < n {
        match tokio::time::timeout_at(deadline, client.recv()).await {
            Ok(Ok(Some(ServerMsg::Message(m)))) => seqs.push(m.seq.0),
            Ok(Ok(Some(_))) => {}
            other => panic!("after {seqs:?}: {other:?}"),
        }
    }
    seqs
}
