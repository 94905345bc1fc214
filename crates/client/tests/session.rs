//! The client against real servers over real sockets: a chat session that
//! rides out a server restart (reconnect, resume, offline queue), bounds
//! its outbox, passes refusals on, and stops on refused credentials; a game
//! client that takes its cell back with `rejoin`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use volley_chat::{ChatConfig, Server};
use volley_client::chat::{ChatClient, ErrorCode, Event, Login, Options, Session};
use volley_client::game::GameClient;
use volley_client::game_protocol::Join;
use volley_client::{Backoff, Error, RoomId, Seq};
use volley_net::Connector;

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stops")
            .expect("server task");
    }
}

fn config(dir: &Path, addr: SocketAddr) -> ChatConfig {
    ChatConfig {
        addr,
        data_dir: dir.to_path_buf(),
        messages_per_sec: 10_000.0,
        message_burst: 10_000.0,
        account_attempts_per_sec: 0.0,
        shutdown_grace_ms: 2_000,
        max_text_bytes: 100,
        ..ChatConfig::default()
    }
}

async fn start(dir: &Path, addr: SocketAddr) -> (SocketAddr, Running) {
    let server = Server::bind(config(dir, addr)).await.expect("bind");
    let addr = server.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async move {
                let _ = rx.await;
            })
            .await
            .expect("server run");
    });
    (addr, Running { stop, task })
}

fn fast() -> Options {
    Options {
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(400)),
        ..Options::default()
    }
}

async fn next(session: &mut Session, what: &str) -> Event {
    timeout(Duration::from_secs(15), session.next_event())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("session ended while waiting for {what}"))
}

/// Events until `pick` accepts one; the skipped ones are returned too.
async fn until<T>(session: &mut Session, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> (T, Vec<Event>) {
    let mut seen = Vec::new();
    loop {
        let event = next(session, what).await;
        if let Some(found) = pick(&event) {
            seen.push(event);
            return (found, seen);
        }
        seen.push(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_rides_out_a_restart_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("ws://{addr}/ws");

    let mut alice = Session::with_options(&url, Login::Guest("alice".into()), fast());
    let (reconnect, _) = until(&mut alice, "ready", |e| match e {
        Event::Ready { reconnect, .. } => Some(*reconnect),
        _ => None,
    })
    .await;
    assert!(!reconnect);
    let room = alice.create_room("lobby", false).await.expect("create room");
    let mut bob = ChatClient::connect(&url, Login::Guest("bob".into()), &HashMap::new())
        .await
        .unwrap();
    let bob_token = bob.token.clone().expect("guest token");
    bob.request(serde_json::json!({ "type": "join", "room": room }))
        .await
        .unwrap();
    for i in 0..5 {
        let (seq, duplicate) = alice.post(room, &format!("before {i}")).await.unwrap();
        assert!(!duplicate);
        assert_eq!(seq, Seq(i + 1));
    }

    // The server goes away (graceful: 1001); alice keeps writing.
    server.stop().await;
    let (code, _) = until(&mut alice, "disconnected", |e| match e {
        Event::Disconnected { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert!(code == 1001 || code == 1006, "close code {code}");
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(alice.send(room, &format!("offline {i}")).await.unwrap());
    }
    assert_eq!(alice.unacknowledged(), 3);
    assert!(matches!(
        alice.request(serde_json::json!({ "type": "ping" })).await,
        Err(Error::Closed { .. })
    ));

    // Back on the same port and data; bob posts before alice is back.
    let (_, server) = start(dir.path(), addr).await;
    let mut bob = loop {
        match ChatClient::connect(&url, Login::Token(bob_token.clone()), &HashMap::new()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    for i in 0..2 {
        bob.post(room, &format!("bob-{i}"), &format!("while away {i}"))
            .await
            .unwrap();
    }

    let (reconnect, _) = until(&mut alice, "second ready", |e| match e {
        Event::Ready { reconnect, .. } => Some(*reconnect),
        _ => None,
    })
    .await;
    assert!(reconnect);
    let mut acked = HashSet::new();
    let mut seqs = Vec::new();
    while acked.len() < queued.len() || seqs.len() < 5 {
        match next(&mut alice, "acks and messages").await {
            Event::Acked { id, duplicate, .. } => {
                assert!(!duplicate);
                assert!(acked.insert(id));
            }
            Event::Message(m) => {
                assert_eq!(m.room, room);
                seqs.push(m.seq.0);
            }
            _ => {}
        }
    }
    assert_eq!(acked, queued.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(alice.unacknowledged(), 0);
    // Bob's two (replayed) and alice's three, each once, in room order.
    assert_eq!(seqs, vec![6, 7, 8, 9, 10]);

    let (page, more) = alice.history(room, None, 50).await.unwrap();
    assert!(!more);
    assert_eq!(page.len(), 10);
    for id in &queued {
        assert_eq!(page.iter().filter(|m| &m.id == id).count(), 1, "{id} stored once");
    }
    alice.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_bounded_and_refusals_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens yet: sends queue up to the limit.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let url = format!("ws://{addr}/ws");
    let options = Options {
        outbox_limit: 2,
        ..fast()
    };
    let mut carol = Session::with_options(&url, Login::Guest("carol".into()), options);
    assert!(matches!(
        next(&mut carol, "disconnected").await,
        Event::Disconnected { .. }
    ));
    let room = RoomId(1);
    carol.send(room, "one").await.unwrap();
    carol.send(room, "two").await.unwrap();
    assert!(matches!(carol.send(room, "three").await, Err(Error::OutboxFull(2))));

    // Room 1 does not exist: both come back refused for good, not retried.
    let (_, server) = start(dir.path(), addr).await;
    let mut rejected = 0;
    while rejected < 2 {
        if let Event::Rejected { refused, .. } = next(&mut carol, "rejections").await {
            assert_eq!(refused.code, ErrorCode::NotFound);
            rejected += 1;
        }
    }
    assert_eq!(carol.unacknowledged(), 0);
    let own = carol.create_room("mine", false).await.unwrap();
    match carol.post(own, &"x".repeat(101)).await {
        Err(Error::Refused(r)) => assert_eq!(r.code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
    assert_eq!(carol.post(own, "fits").await.unwrap().0, Seq(1));
    carol.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = start(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let mut session = Session::with_options(&format!("ws://{addr}/ws"), Login::Token("forged".into()), fast());
    match next(&mut session, "stop").await {
        Event::Stopped { reason } => assert!(reason.contains("auth_failed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(session.next_event().await.is_none());
    assert!(matches!(session.send(RoomId(1), "x").await, Err(Error::Stopped)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_rejoins_into_the_same_cell() {
    let config = volley_game::GameConfig {
        world_size: 1500.0,
        pellets: 100,
        bots_per_room: 2,
        sim_threads: 1,
        ..volley_game::GameConfig::default()
    };
    let lobby = volley_game::Lobby::start(config).expect("lobby");
    let (_stop, shutdown) = watch::channel(false);
    let app = volley_game::router(lobby, shutdown, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/game/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let join = Join {
        name: "dana".into(),
        spectate: false,
        resume: None,
        seat: None,
        account: None,
    };
    let mut player = GameClient::join(&url, join).await.unwrap();
    while player.header.tick == 0 {
        player.next().await.unwrap().expect("snapshots");
    }
    let first = player.welcome.clone();
    // The player leaves (the page closed); the cell waits out the grace period.
    player
        .socket()
        .close(volley_net::CloseCode::NORMAL, "bye")
        .await
        .unwrap();
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(100));
    let back = player
        .rejoin(&Connector::default(), &url, &mut backoff, 5)
        .await
        .expect("rejoin");
    assert!(back.welcome.resumed, "{:?}", back.welcome);
    assert_eq!(back.welcome.player, first.player);
    assert_eq!(back.welcome.room, first.room);
}
