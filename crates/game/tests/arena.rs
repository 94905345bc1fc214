//! The game over real WebSockets: a real server (axum + our WebSocket core +
//! simulation threads) and real clients on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use volley_client::game::{Event, GameClient};
use volley_game::protocol::{ErrorCode, Join, Kind};
use volley_game::{GameConfig, Lobby};
use volley_net::{CloseCode, Message};

struct Server {
    addr: SocketAddr,
    lobby: std::sync::Arc<Lobby>,
    _stop: watch::Sender<bool>,
}

impl Server {
    fn url(&self) -> String {
        format!("ws://{}/game/ws", self.addr)
    }
}

async fn start(config: GameConfig) -> Server {
    let lobby = Lobby::start(config).expect("lobby");
    let (stop, shutdown) = watch::channel(false);
    let app = volley_game::router(lobby.clone(), shutdown, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        lobby,
        _stop: stop,
    }
}

fn small() -> GameConfig {
    GameConfig {
        world_size: 1500.0,
        pellets: 300,
        bots_per_room: 4,
        sim_threads: 1,
        ..GameConfig::default()
    }
}

fn join(name: &str) -> Join {
    Join {
        name: name.into(),
        spectate: false,
        resume: None,
        seat: None,
        account: None,
    }
}

/// Read frames until `until` holds for the client (or time runs out).
async fn read_until(client: &mut GameClient, secs: u64, mut until: impl FnMut(&GameClient, &Event) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), client.next()).await {
            Ok(Ok(Some(event))) => {
                if until(client, &event) {
                    return true;
                }
            }
            Ok(Ok(None)) | Err(_) => return false,
            Ok(Err(e)) => panic!("client error: {e}"),
        }
    }
    false
}

/// Count snapshots over `window`, answering with inputs (acks) as a client does.
async fn snapshots_in(client: &mut GameClient, window: Duration) -> u32 {
    let deadline = Instant::now() + window;
    let mut n = 0;
    while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline.into(), client.next()).await {
        if let Event::Snapshot { .. } = event {
            n += 1;
            client.input((0, 0), 0).await.expect("input");
        }
    }
    n
}

fn own_x(client: &GameClient) -> Option<u16> {
    client.own_cells().next().map(|c| c.x)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_share_a_room_steer_and_get_deltas() {
    let server = start(small()).await;
    let mut a = GameClient::join(&server.url(), join("alice")).await.expect("join");
    let mut b = GameClient::join(&server.url(), join("bob")).await.expect("join");
    assert_eq!(a.welcome.room, b.welcome.room, "matchmaking fills one room first");
    assert_ne!(a.welcome.player, b.welcome.player);
    assert_eq!(a.welcome.tick_hz, 30);

    // Full snapshot first, then deltas against acknowledged ticks.
    assert!(read_until(&mut a, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);
    assert_eq!(a.header.baseline, 0, "the first snapshot is full");
    assert!(a.own_cells().count() == 1 || !a.header.alive);
    let mut deltas = 0;
    for _ in 0..30 {
        a.input((0, 0), 0).await.expect("ack");
        assert!(read_until(&mut a, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);
        deltas += (a.header.baseline != 0) as u32;
    }
    assert!(deltas >= 25, "only {deltas} of 30 snapshots were deltas");
    assert!(a.entities.iter().any(|e| e.kind == Kind::Pellet), "pellets in view");
    assert!(read_until(&mut a, 5, |c, _| c.roster.iter().any(|p| p.name == "bob")).await);

    // Steering right moves the own cell right, and the input is acknowledged.
    let mut moved = false;
    for _ in 0..3 {
        if !a.header.alive {
            a.respawn().await.expect("respawn");
            read_until(&mut a, 5, |c, _| c.header.alive).await;
        }
        let start = own_x(&a);
        let mut seq = 0;
        for _ in 0..30 {
            seq = a.input((200, 0), 0).await.expect("input");
            read_until(&mut a, 2, |_, e| matches!(e, Event::Snapshot { .. })).await;
        }
        if let (Some(x0), Some(x1)) = (start, own_x(&a)) {
            if x1 > x0 + 100 && a.header.input_seq > seq - 10 {
                moved = true;
                break;
            }
        }
    }
    assert!(moved, "steering did not move the cell");
    // The other player keeps receiving at the tick rate meanwhile.
    let n = snapshots_in(&mut b, Duration::from_secs(1)).await;
    assert!(n >= 20, "bob got {n} snapshots in a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_others_keep_playing() {
    let server = start(small()).await;
    let mut good = GameClient::join(&server.url(), join("good")).await.expect("join");

    // Garbage: an error frame, and the connection keeps getting snapshots.
    let mut bad = GameClient::join(&server.url(), join("bad")).await.expect("join");
    bad.socket()
        .send(Message::Binary(vec![0x02, 1, 2].into()))
        .await
        .expect("send");
    bad.socket()
        .send(Message::Binary(vec![0x55].into()))
        .await
        .expect("send");
    let mut codes = Vec::new();
    assert!(
        read_until(&mut bad, 5, |_, e| {
            if let Event::Error(code, _) = e {
                codes.push(*code);
            }
            codes.len() == 2
        })
        .await
    );
    assert_eq!(codes, vec![ErrorCode::BadFrame, ErrorCode::BadFrame]);
    bad.socket()
        .send(Message::Binary(vec![0x01, 0, 1, b'x'].into()))
        .await
        .expect("send");
    assert!(
        read_until(&mut bad, 5, |_, e| matches!(
            e,
            Event::Error(ErrorCode::AlreadyJoined, _)
        ))
        .await
    );
    assert!(read_until(&mut bad, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);

    // A forged steering vector is ignored (counted), not applied.
    let x0 = own_x(&bad);
    for _ in 0..10 {
        bad.input((30000, 0), 0).await.expect("send");
        read_until(&mut bad, 1, |_, e| matches!(e, Event::Snapshot { .. })).await;
    }
    if bad.header.alive {
        assert_eq!(own_x(&bad), x0, "an out-of-range target moved the cell");
    }

    // A flood: rate-limited first, then closed with 1008.
    let mut flooder = GameClient::join(&server.url(), join("flood")).await.expect("join");
    for _ in 0..2000 {
        if flooder.input((10, 10), 0).await.is_err() {
            break;
        }
    }
    let mut limited = false;
    while let Ok(Ok(Some(e))) = tokio::time::timeout(Duration::from_secs(3), flooder.next()).await {
        limited |= matches!(e, Event::Error(ErrorCode::RateLimited, _));
    }
    assert!(limited, "no rate-limit error before the close");
    let close = flooder.socket().peer_close().map(|c| c.code);
    assert_eq!(close, Some(CloseCode::POLICY_VIOLATION));

    // Text frames are not the protocol: 1003. Oversized frames: 1009.
    let mut texter = GameClient::join(&server.url(), join("text")).await.expect("join");
    texter.socket().send("hello").await.expect("send");
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_secs(3), texter.next()).await {}
    assert_eq!(
        texter.socket().peer_close().map(|c| c.code),
        Some(CloseCode::UNSUPPORTED_DATA)
    );
    let mut big = GameClient::join(&server.url(), join("big")).await.expect("join");
    big.socket()
        .send(Message::Binary(vec![2; 4096].into()))
        .await
        .expect("send");
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_secs(3), big.next()).await {}
    assert_eq!(
        big.socket().peer_close().map(|c| c.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );

    // Through all of it, the good client kept its snapshot rate.
    let n = snapshots_in(&mut good, Duration::from_secs(1)).await;
    assert!(n >= 20, "good client got {n} snapshots in a second");

    // A join that is not a join: errors, then the join works.
    let mut ws = volley_net::connect(&server.url()).await.expect("connect");
    ws.send(Message::Binary(vec![0x04].into())).await.expect("send");
    let reply = ws.recv().await.expect("recv").expect("frame");
    assert_eq!(
        volley_game::protocol::ServerMsg::decode(reply.as_bytes()),
        Ok(volley_game::protocol::ServerMsg::Error(
            ErrorCode::NotJoined,
            "send a join first".into()
        ))
    );
    GameClient::join_on(ws, join("late"))
        .await
        .expect("join after an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_grace_gets_the_cell_back() {
    let server = start(GameConfig {
        reconnect_grace_secs: 2,
        ..small()
    })
    .await;
    let mut a = GameClient::join(&server.url(), join("ann")).await.expect("join");
    let token = a.welcome.token;
    let player = a.welcome.player;
    assert!(read_until(&mut a, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);
    a.close().await.expect("close");

    // Within the grace period: same player, resumed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = GameClient::join(
        &server.url(),
        Join {
            resume: Some(token),
            seat: None,
            account: None,
            ..join("ann")
        },
    )
    .await
    .expect("resume");
    assert!(back.welcome.resumed);
    assert!(!back.resume_expired);
    assert_eq!(back.welcome.player, player);
    assert!(read_until(&mut back, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);
    assert_eq!(
        back.header.baseline, 0,
        "a resumed connection starts from a full snapshot"
    );
    // The new connection numbers its inputs from 1 again, and the world
    // applies them (before: ignored until past the old connection's count).
    let first = back.input((100, 0), 0).await.expect("input");
    assert_eq!(first, 1);
    assert!(
        read_until(&mut back, 5, |c, e| matches!(e, Event::Snapshot { .. })
            && c.header.input_seq >= 1)
        .await,
        "the resumed seat's input 1 was applied"
    );
    back.close().await.expect("close");

    // After the grace period: a new player.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let late = GameClient::join(
        &server.url(),
        Join {
            resume: Some(token),
            seat: None,
            account: None,
            ..join("ann")
        },
    )
    .await
    .expect("join");
    assert!(!late.welcome.resumed);
    assert!(late.resume_expired, "told that the old seat is gone");
    assert_ne!(late.welcome.player, player);
}

/// Names: 24 bytes join; 25 bytes (or a control character) get `bad_name`,
/// not `bad_frame`, and the connection may try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_long_is_a_bad_name() {
    let server = start(small()).await;
    let long = GameClient::join(&server.url(), join(&"n".repeat(25))).await;
    let err = long.expect_err("25 bytes refused").to_string();
    assert!(err.contains("BadName"), "{err}");
    let ok = GameClient::join(&server.url(), join(&"n".repeat(24)))
        .await
        .expect("24 bytes join");
    assert_eq!(ok.welcome.tick_hz, 30);
    let control = GameClient::join(&server.url(), join("a\u{7}b")).await;
    assert!(control.expect_err("refused").to_string().contains("BadName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_fill_open_and_close() {
    let server = start(GameConfig {
        room_capacity: 2,
        empty_room_secs: 1,
        reconnect_grace_secs: 0,
        ..small()
    })
    .await;
    let a = GameClient::join(&server.url(), join("a")).await.expect("join");
    let b = GameClient::join(&server.url(), join("b")).await.expect("join");
    let c = GameClient::join(&server.url(), join("c")).await.expect("join");
    assert_eq!(a.welcome.room, b.welcome.room);
    assert_ne!(
        a.welcome.room, c.welcome.room,
        "a full room sends the third player to a new one"
    );
    assert_eq!(server.lobby.rooms(), 2);
    let newest = c.welcome.room;

    // A spectator watches the fuller room and gets snapshots without a cell.
    let mut s = GameClient::join(
        &server.url(),
        Join {
            spectate: true,
            ..join("eye")
        },
    )
    .await
    .expect("spectate");
    assert!(s.welcome.spectator);
    assert_eq!(s.welcome.room, a.welcome.room);
    assert!(
        read_until(&mut s, 5, |c, e| matches!(e, Event::Snapshot { .. })
            && c.header.spectator)
        .await
    );
    assert!(
        s.entities.iter().any(|e| e.kind == Kind::Cell),
        "a spectator sees cells"
    );

    for client in [a, b, c, s] {
        client.close().await.expect("close");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.lobby.rooms() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.lobby.rooms(), 0, "empty rooms close");
    // And a new join opens a room again.
    let d = GameClient::join(&server.url(), join("d")).await.expect("join");
    assert_eq!(server.lobby.rooms(), 1);
    assert!(d.welcome.room > newest, "closed rooms are not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_slow_the_room() {
    let server = start(small()).await;
    let mut reader = GameClient::join(&server.url(), join("reader")).await.expect("join");
    let stalled = GameClient::join(&server.url(), join("stalled")).await.expect("join");
    // `stalled` reads nothing for three seconds; the other player still
    // gets the full tick rate.
    let n = snapshots_in(&mut reader, Duration::from_secs(3)).await;
    assert!(n >= 75, "reader got {n} snapshots in 3 s while another client stalled");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_resumes_everyone() {
    let server = start(GameConfig {
        room_capacity: 64,
        ..small()
    })
    .await;
    let mut seats = Vec::new();
    for n in 0..60 {
        let client = GameClient::join(&server.url(), join(&format!("p{n}")))
            .await
            .expect("join");
        seats.push((client.welcome.player, client.welcome.token));
        // Drop without a close handshake, like a network cut.
        drop(client);
    }
    // All come back at once.
    let mut set = tokio::task::JoinSet::new();
    for (player, token) in seats.clone() {
        let url = server.url();
        set.spawn(async move {
            let mut client = GameClient::join(
                &url,
                Join {
                    resume: Some(token),
                    seat: None,
                    account: None,
                    ..join("again")
                },
            )
            .await
            .expect("resume");
            let got_snapshot = read_until(&mut client, 10, |_, e| matches!(e, Event::Snapshot { .. })).await;
            (player, client.welcome.player, client.welcome.resumed, got_snapshot)
        });
    }
    let mut resumed = 0;
    while let Some(done) = set.join_next().await {
        let (before, after, was_resumed, got_snapshot) = done.expect("task");
        assert!(was_resumed && before == after, "player {before} came back as {after}");
        assert!(got_snapshot, "player {before} got no snapshot after resuming");
        resumed += 1;
    }
    assert_eq!(resumed, 60);
    assert_eq!(server.lobby.rooms(), 1, "everyone is back in the one room");
}

/// Send a join on a fresh connection; the error frame and close code that follow.
async fn refused_join(url: &str, join: Join) -> (ErrorCode, u16) {
    let mut ws = volley_net::connect(url).await.expect("connect");
    ws.send(Message::Binary(
        volley_client::game_protocol::ClientMsg::Join(join).encode().into(),
    ))
    .await
    .unwrap();
    let mut code = None;
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(message)) = ws.recv().await {
            if let Ok(volley_client::game_protocol::ServerMsg::Error(c, _)) =
                volley_client::game_protocol::ServerMsg::decode(message.as_bytes())
            {
                code = Some(c);
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the join was neither refused nor closed within 10 s");
    let close = ws.peer_close().map_or(1006, |c| c.code.0);
    (code.expect("an error frame"), close)
}

/// A seat token takes the seat back once; used again (or the resume token
/// it replaced) it is refused as replayed (4003), and an altered one as
/// invalid (4001).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_tokens_work_once_and_forged_or_replayed_ones_are_refused() {
    let server = start(small()).await;
    let mut a = GameClient::join(&server.url(), join("sam")).await.expect("join");
    let (player, first_secret) = (a.welcome.player, a.welcome.token);
    assert!(
        read_until(&mut a, 5, |_, e| matches!(e, Event::Seat)).await,
        "a seat token after the welcome"
    );
    let (node, t1) = a.seat().map(|(n, t)| (n.to_owned(), t.to_owned())).unwrap();
    assert_eq!(node, "", "a node outside a cluster has no id to route by");
    a.close().await.unwrap();

    let mut back = GameClient::join(
        &server.url(),
        Join {
            seat: Some(t1.clone()),
            account: None,
            ..join("sam")
        },
    )
    .await
    .expect("the seat token takes the seat back");
    assert!(back.welcome.resumed && back.welcome.player == player);
    assert_ne!(
        back.welcome.token, first_secret,
        "the secret rotates on every take-over"
    );
    assert!(read_until(&mut back, 5, |_, e| matches!(e, Event::Seat)).await);
    let t2 = back.seat().unwrap().1.to_owned();
    assert_ne!(t2, t1);
    // Until the new connection sends something, its welcome may have been
    // lost: the old token would still work once. Once it has, it is spent.
    back.input((10, 0), 0).await.unwrap();
    assert!(
        read_until(&mut back, 5, |c, e| matches!(e, Event::Snapshot { .. })
            && c.header.input_seq >= 1)
        .await
    );

    let seat = |t: &str| Join {
        seat: Some(t.to_owned()),
        ..join("sam")
    };
    assert_eq!(
        refused_join(&server.url(), seat(&t1)).await,
        (ErrorCode::SeatReplayed, 4003)
    );
    let raw = Join {
        resume: Some(first_secret),
        ..join("sam")
    };
    assert_eq!(refused_join(&server.url(), raw).await, (ErrorCode::SeatReplayed, 4003));
    // One character of the signature changed (not the last: its low bits
    // are padding).
    let mut forged: Vec<char> = t2.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    assert_eq!(
        refused_join(&server.url(), seat(&forged)).await,
        (ErrorCode::SeatInvalid, 4001)
    );
    assert_eq!(
        refused_join(&server.url(), seat("not.a.token")).await,
        (ErrorCode::SeatInvalid, 4001)
    );
    // None of that disturbed the seat's holder.
    assert!(read_until(&mut back, 5, |_, e| matches!(e, Event::Snapshot { .. })).await);
    assert_eq!(back.welcome.player, player);
}
