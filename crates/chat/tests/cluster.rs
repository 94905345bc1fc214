//! Chat on several nodes over a real PostgreSQL and a real broker, Redis and
//! NATS each (started by `volley_testkit` on free ports): members on
//! different nodes talk, resume on any node, share tokens, and lose nothing
//! when the broker or the database dies.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{create_room, expect, guest, http, join, start, Running};
use volley_chat::protocol::ServerMsg;
use volley_chat::{BrokerUrl, RoomId, Seq, StoreUrl};
use volley_client::chat::{ChatClient, Login};
use volley_testkit::{Nats, Postgres, Redis};

/// The broker under test, killed and restarted by the fault scenarios.
enum BrokerServer {
    Redis(Redis),
    Nats(Nats),
}

#[derive(Clone, Copy)]
enum Kind {
    Redis,
    Nats,
}

impl BrokerServer {
    fn start(kind: Kind) -> BrokerServer {
        match kind {
            Kind::Redis => BrokerServer::Redis(Redis::start().unwrap()),
            Kind::Nats => BrokerServer::Nats(Nats::start().unwrap()),
        }
    }

    fn url(&self) -> BrokerUrl {
        match self {
            BrokerServer::Redis(r) => BrokerUrl::Redis(vec![r.url()]),
            BrokerServer::Nats(n) => BrokerUrl::Nats(n.url()),
        }
    }

    fn kill(&mut self) {
        match self {
            BrokerServer::Redis(r) => r.kill(),
            BrokerServer::Nats(n) => n.kill(),
        }
    }

    fn resume(&mut self) {
        match self {
            BrokerServer::Redis(r) => r.resume().unwrap(),
            BrokerServer::Nats(n) => n.resume().unwrap(),
        }
    }
}

async fn node(name: &str, pg: &Postgres, broker: &BrokerServer, dir: &std::path::Path) -> Running {
    node_with(name, pg, broker, dir, |_| {}).await
}

async fn node_with(
    name: &str,
    pg: &Postgres,
    broker: &BrokerServer,
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut volley_chat::ChatConfig),
) -> Running {
    let mut config = common::config(dir);
    tweak(&mut config);
    config.node_id = name.into();
    config.store = Some(StoreUrl::Postgres(pg.url()));
    config.broker = broker.url();
    config.catch_up_ms = 500;
    config.max_connections_per_ip = 0;
    start(config).await
}

/// Who node `addr` says is online in `room`, polled until `done` holds (10 s at most).
async fn online_until(
    addr: std::net::SocketAddr,
    token: &str,
    room: RoomId,
    done: impl Fn(&[i64]) -> bool,
) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(addr, "GET", &format!("/api/rooms/{room}/online"), Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<i64> = body["online"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        assert_eq!(body["count"].as_u64(), Some(ids.len() as u64), "{body}");
        if done(&ids) {
            return ids;
        }
        assert!(tokio::time::Instant::now() < deadline, "node {addr} still says {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seqs of the next `n` messages of `room`, skipping other frames.
async fn messages(client: &mut ChatClient, room: RoomId, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let seq = expect(client, "a message", |m| match m {
            ServerMsg::Message(m) if m.room == room => Some(m.seq.0),
            _ => None,
        })
        .await;
        seen.push(seq);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_nodes_chat_resume_anywhere_and_share_tokens_over_redis() {
    members_on_two_nodes_chat_resume_anywhere_and_share_tokens(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_nodes_chat_resume_anywhere_and_share_tokens_over_nats() {
    members_on_two_nodes_chat_resume_anywhere_and_share_tokens(Kind::Nats).await;
}

async fn members_on_two_nodes_chat_resume_anywhere_and_share_tokens(kind: Kind) {
    let (pg, broker) = (Postgres::start().unwrap(), BrokerServer::start(kind));
    let dir = tempfile::tempdir().unwrap();
    let a = node("node-a", &pg, &broker, dir.path()).await;
    let b = node("node-b", &pg, &broker, dir.path()).await;

    let mut alice = guest(&a, "alice").await;
    let mut bob = guest(&b, "bob").await;
    let room = create_room(&mut alice, "across").await;
    join(&mut bob, room).await;
    for i in 0..5 {
        alice.post(room, &format!("a{i}"), "from node a").await.unwrap();
    }
    assert_eq!(
        messages(&mut bob, room, 5).await,
        [1, 2, 3, 4, 5],
        "bob on b sees a's messages in order"
    );
    bob.post(room, "b0", "from node b").await.unwrap();
    assert_eq!(messages(&mut alice, room, 6).await, [1, 2, 3, 4, 5, 6]);

    // A token issued by node a is good on node b: one secret for the cluster.
    let token = alice.token.clone().expect("a guest gets a token");
    let on_b = ChatClient::connect(&b.url(), Login::Token(token), &HashMap::new())
        .await
        .expect("node a's token accepted by node b");
    assert_eq!(on_b.user.name, "alice");

    // Bob leaves node b, misses three messages, and resumes on node a.
    let bob_token = bob.token.clone().unwrap();
    drop(bob);
    for i in 1..=3 {
        alice
            .post(room, &format!("a-late{i}"), "while bob was away")
            .await
            .unwrap();
    }
    let mut bob = ChatClient::connect(&a.url(), Login::Token(bob_token), &HashMap::from([(room, Seq(6))]))
        .await
        .unwrap();
    assert_eq!(
        messages(&mut bob, room, 3).await,
        [7, 8, 9],
        "resume on another node: no gap, no repeat"
    );
    let caught_up = expect(&mut bob, "caught_up", |m| match m {
        ServerMsg::CaughtUp { room: r, seq } if r == room => Some(seq),
        _ => None,
    })
    .await;
    assert_eq!(caught_up, Seq(9));

    for (server, name) in [(&a, "node-a"), (&b, "node-b")] {
        let (status, health) = http(server.addr, "GET", "/health", None, None).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["node"], name);
        assert_eq!(
            (health["store"].as_str(), health["broker"].as_str()),
            (Some("ok"), Some("ok"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_per_user_limits_span_nodes_over_redis() {
    presence_and_per_user_limits_span_nodes(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_per_user_limits_span_nodes_over_nats() {
    presence_and_per_user_limits_span_nodes(Kind::Nats).await;
}

/// Members on two nodes see each other online; a user with a device on each
/// node stays online until both are gone; the per-user connection cap counts
/// connections on every node.
async fn presence_and_per_user_limits_span_nodes(kind: Kind) {
    let (pg, broker) = (Postgres::start().unwrap(), BrokerServer::start(kind));
    let dir = tempfile::tempdir().unwrap();
    let cap = |c: &mut volley_chat::ChatConfig| c.max_connections_per_user = 2;
    let a = node_with("node-a", &pg, &broker, dir.path(), cap).await;
    let b = node_with("node-b", &pg, &broker, dir.path(), cap).await;

    let mut alice = guest(&a, "alice").await;
    let (alice_id, alice_token) = (alice.user.id, alice.token.clone().unwrap());
    let room = create_room(&mut alice, "presence").await;
    let mut bob = guest(&b, "bob").await;
    let (bob_id, bob_token) = (bob.user.id, bob.token.clone().unwrap());
    join(&mut bob, room).await;

    // Each node learns who is online on the other.
    let both = |ids: &[i64]| ids.contains(&alice_id.0) && ids.contains(&bob_id.0);
    online_until(b.addr, &bob_token, room, both).await;
    online_until(a.addr, &alice_token, room, both).await;
    expect(&mut alice, "bob online, as node a sees it", |m| match m {
        ServerMsg::Presence { changes, .. } if changes.iter().any(|c| c.user == bob_id && c.online) => Some(()),
        _ => None,
    })
    .await;

    // A second device on node b: two connections in all, the cap.
    let alice2 = ChatClient::connect(&b.url(), Login::Token(alice_token.clone()), &HashMap::new())
        .await
        .expect("a second connection is within the cap");
    // A third anywhere is refused, though node a itself holds only one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match ChatClient::connect(&a.url(), Login::Token(alice_token.clone()), &HashMap::new()).await {
            Err(e) => {
                assert!(e.to_string().contains("connections"), "{e}");
                break;
            }
            Ok(extra) => {
                // Node b's count has not reached node a yet (a delta is 50 ms away).
                extra.close().await.unwrap();
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cap never counted node b's connection"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // Alice's device on node a leaves: she is still online through node b.
    alice.close().await.unwrap();
    let quiet = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(frame) = tokio::time::timeout_at(quiet, bob.recv()).await {
        if let Some(ServerMsg::Presence { changes, .. }) = frame.unwrap() {
            assert!(
                !changes.iter().any(|c| c.user == alice_id && !c.online),
                "alice went offline though her device on node b is connected: {changes:?}"
            );
        }
    }
    online_until(a.addr, &bob_token, room, |ids| ids.contains(&alice_id.0)).await;

    // Her last device leaves: offline on both nodes.
    alice2.close().await.unwrap();
    expect(&mut bob, "alice offline", |m| match m {
        ServerMsg::Presence { changes, online, .. } if changes.iter().any(|c| c.user == alice_id && !c.online) => {
            Some(online)
        }
        _ => None,
    })
    .await;
    online_until(a.addr, &bob_token, room, |ids| ids == [bob_id.0]).await;
    online_until(b.addr, &bob_token, room, |ids| ids == [bob_id.0]).await;
    let (_, health) = http(a.addr, "GET", "/health", None, None).await;
    assert_eq!(health["peers"], 1, "{health}");
}

/// The handshake names the node that answered.
#[tokio::test]
async fn every_answer_names_its_node() {
    let (pg, broker) = (Postgres::start().unwrap(), BrokerServer::start(Kind::Redis));
    let dir = tempfile::tempdir().unwrap();
    let a = node("node-a", &pg, &broker, dir.path()).await;
    let mut ws = tokio::net::TcpStream::connect(a.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 1024];
    let n = ws.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("x-volley-node: node-a"), "{head}");
}

/// The broker killed and restarted while messages keep coming from two of
/// three nodes: sends are stored and acknowledged throughout (the store
/// orders), and the member on the third node receives every one exactly
/// once, in order, once the broker is back (the node and the connection fill
/// gaps from the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_and_doubles_nothing() {
    a_broker_restart_loses_nothing_and_doubles_nothing(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_nothing_and_doubles_nothing() {
    a_broker_restart_loses_nothing_and_doubles_nothing(Kind::Nats).await;
}

async fn a_broker_restart_loses_nothing_and_doubles_nothing(kind: Kind) {
    const N: u64 = 120;
    let (pg, mut broker) = (Postgres::start().unwrap(), BrokerServer::start(kind));
    let dir = tempfile::tempdir().unwrap();
    let a = node("node-a", &pg, &broker, dir.path()).await;
    let b = node("node-b", &pg, &broker, dir.path()).await;
    let c = node("node-c", &pg, &broker, dir.path()).await;
    let mut alice = guest(&a, "alice").await;
    let mut bob = guest(&b, "bob").await;
    let mut carol = guest(&c, "carol").await;
    let room = create_room(&mut alice, "restart").await;
    join(&mut bob, room).await;
    join(&mut carol, room).await;
    let alice_token = alice.token.clone().unwrap();
    let (alice_id, carol_id) = (alice.user.id.0, carol.user.id.0);
    let mut dave = None;

    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.last().copied() != Some(N) {
            match tokio::time::timeout(Duration::from_secs(30), bob.recv()).await {
                Ok(Ok(Some(ServerMsg::Message(m)))) => seen.push(m.seq.0),
                Ok(Ok(Some(_))) => {}
                other => panic!("bob on node b: {other:?} after {seen:?}"),
            }
        }
        seen
    });
    for i in 1..=N {
        if i == N / 3 {
            broker.kill();
        }
        if i == N / 2 {
            // Dave comes online on node c while the broker is down: the
            // other nodes learn it once it is back.
            let mut d = guest(&c, "dave").await;
            join(&mut d, room).await;
            dave = Some(d);
        }
        if i == 2 * N / 3 {
            broker.resume();
        }
        // Two senders on two nodes, taking turns: the room's order comes
        // from the store, whichever node each message entered by.
        let sender = if i % 2 == 1 { &mut alice } else { &mut carol };
        let (seq, duplicate) = sender.post(room, &format!("m{i}"), "keeps coming").await.unwrap();
        assert_eq!(
            (seq, duplicate),
            (Seq(i), false),
            "acknowledged while the broker is down too"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every message once, in order");
    // Bob's connection ended with the reader; the other three are online everywhere.
    let dave_id = dave.as_ref().unwrap().user.id.0;
    let expected = [alice_id, carol_id, dave_id];
    for server in [&a, &b, &c] {
        online_until(server.addr, &alice_token, room, |ids| {
            expected.iter().all(|u| ids.contains(u))
        })
        .await;
    }
    // The fault bit: connections were lost and messages came from the store.
    let metrics = http(b.addr, "GET", "/metrics", None, None).await.1;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    };
    let label = match kind {
        Kind::Redis => "broker=\"redis\"",
        Kind::Nats => "broker=\"nats\"",
    };
    let disconnects: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("volley_broker_disconnects_total") && l.contains(label))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    assert!(disconnects >= 1.0, "{label}: {metrics}");
    assert!(
        total("volley_gap_fills_total") >= 1.0,
        "nothing was filled from the store: {metrics}"
    );
}

/// PostgreSQL stopped: a send gets `unavailable` with a retry hint and no
/// acknowledgement, the connections stay open, and once the database is back
/// the same message (same id) is stored once and reaches the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_refuses_sends_retryably_and_recovers_over_redis() {
    a_database_outage_refuses_sends_retryably_and_recovers(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_refuses_sends_retryably_and_recovers_over_nats() {
    a_database_outage_refuses_sends_retryably_and_recovers(Kind::Nats).await;
}

async fn a_database_outage_refuses_sends_retryably_and_recovers(kind: Kind) {
    let (mut pg, broker) = (Postgres::start().unwrap(), BrokerServer::start(kind));
    let dir = tempfile::tempdir().unwrap();
    let a = node("node-a", &pg, &broker, dir.path()).await;
    let b = node("node-b", &pg, &broker, dir.path()).await;
    let mut alice = guest(&a, "alice").await;
    let mut bob = guest(&b, "bob").await;
    let room = create_room(&mut alice, "outage").await;
    join(&mut bob, room).await;
    alice.post(room, "before", "stored").await.unwrap();

    pg.stop().unwrap();
    match alice.post(room, "during", "waits for the database").await {
        Err(volley_client::Error::Refused(refusal)) => {
            assert_eq!(refusal.code, volley_chat::ErrorCode::Unavailable, "{refusal:?}");
            assert!(refusal.retry_after.is_some(), "a retry hint: {refusal:?}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // The connection is still there and answers.
    let pong = alice.request(serde_json::json!({ "type": "ping" })).await.unwrap();
    assert!(matches!(pong, ServerMsg::Pong { .. }), "{pong:?}");
    let (status, health) = http(a.addr, "GET", "/health", None, None).await;
    assert_eq!(status, 503, "{health}");

    pg.resume().unwrap();
    let mut stored = None;
    for _ in 0..50 {
        match alice.post(room, "during", "waits for the database").await {
            Ok(ack) => {
                stored = Some(ack);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(stored, Some((Seq(2), false)), "stored once, under the next seq");
    assert_eq!(
        alice.post(room, "during", "waits for the database").await.unwrap(),
        (Seq(2), true),
        "a later retry is the same message"
    );
    assert_eq!(messages(&mut bob, room, 2).await, [1, 2]);
}
