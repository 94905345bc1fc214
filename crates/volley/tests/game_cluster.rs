//! The game across nodes: three `volley serve` nodes over a real Redis
//! behind `volley proxy`, players as real WebSocket clients. Joins through
//! the proxy meet in one match on one node; the node is stopped (SIGTERM)
//! while they play, its match moves to another node, and every player is
//! back in its seat there, same player, same cells' mass, within a second.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_addr, volley, wait_port, Proc};
use serde_json::Value;
use volley_client::game::{Event, GameClient};
use volley_client::game_protocol::Join;
use volley_client::Backoff;
use volley_net::Connector;
use volley_testkit::Redis;

fn game_node(addr: SocketAddr, name: &str, dir: &std::path::Path, broker: &str, extra: &[&str]) -> Proc {
    let (addr_s, data) = (addr.to_string(), dir.join(name).display().to_string());
    let log = std::env::var("GAME_CLUSTER_LOGS")
        .ok()
        .map(|d| std::path::PathBuf::from(d).join(format!("{name}.log")));
    let mut args = vec![
        "serve",
        "--addr",
        &addr_s,
        "--node-id",
        name,
        "--data-dir",
        &data,
        "--broker",
        broker,
        "--max-connections-per-ip",
        "0",
        // No bots: nothing but the move may touch a player's cells.
        "--game-bots-per-room",
        "0",
        "--game-sim-threads",
        "1",
        // Shared by the cluster: any node takes any node's seat tokens.
        "--token-secret",
        "the cluster's shared test secret",
    ];
    args.extend_from_slice(extra);
    let p = common::volley_logging(&args, log.as_deref());
    wait_port(addr);
    p
}

fn get_json(to: SocketAddr, path: &str) -> Value {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Which node reports running `id`, by asking `via` for the registry.
fn holder(via: SocketAddr, id: u32) -> Option<String> {
    let nodes = get_json(via, "/api/game/nodes");
    nodes["nodes"].as_array()?.iter().find_map(|n| {
        n["matches"]
            .as_array()?
            .iter()
            .any(|m| m["id"].as_u64() == Some(u64::from(id)))
            .then(|| n["node"].as_str().unwrap_or_default().to_owned())
    })
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What one player saw around the move.
#[derive(Debug)]
struct Trip {
    player: u32,
    moved_to: Option<String>,
    resumed: bool,
    same_player: bool,
    mass_before: u32,
    mass_after: u32,
    /// From the last snapshot before the move to the first after it.
    pause: Duration,
}

/// Play (steer in circles) until the match moves, follow it, play a
/// little more there; what was seen.
async fn play(mut client: GameClient, url: String, attempts: u32) -> Trip {
    let player = client.welcome.player;
    let mut last_snapshot = Instant::now();
    let mut mass_before = 0;
    let mut t = 0f32;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), client.next()).await {
            Ok(Ok(Some(Event::Snapshot { .. }))) => {
                last_snapshot = Instant::now();
                mass_before = client.header.mass;
                t += 0.1;
                let target = ((t.cos() * 150.0) as i16, (t.sin() * 150.0) as i16);
                let _ = client.input(target, 0).await;
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("player {player}: no move within 20 s"),
        }
    }
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
    let moved_to = client.moved_to().map(str::to_owned);
    let mut back = client
        .rejoin(&Connector::default(), &url, &mut backoff, attempts)
        .await
        .unwrap_or_else(|e| panic!("player {player} could not come back: {e}"));
    let mut mass_after = 0;
    let mut pause = Duration::ZERO;
    while let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_secs(5), back.next()).await {
        if let Event::Snapshot { .. } = event {
            if mass_after == 0 {
                pause = last_snapshot.elapsed();
                mass_after = back.header.mass;
            }
            let _ = back.input((100, 0), 0).await;
            if pause > Duration::ZERO && last_snapshot.elapsed() > pause + Duration::from_millis(500) {
                break;
            }
        }
    }
    Trip {
        player,
        moved_to,
        resumed: back.welcome.resumed,
        same_player: back.welcome.player == player,
        mass_before,
        mass_after,
        pause,
    }
}

/// Redis, three game nodes and `volley proxy` routing `?node=` by name.
struct Cluster {
    _redis: Redis,
    _dir: tempfile::TempDir,
    addrs: [SocketAddr; 3],
    nodes: Vec<Option<Proc>>,
    _proxy: Proc,
    url: String,
}

const NAMES: [&str; 3] = ["n1", "n2", "n3"];

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        let redis = Redis::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let addrs = [free_addr(), free_addr(), free_addr()];
        let nodes: Vec<Option<Proc>> = addrs
            .iter()
            .zip(NAMES)
            .map(|(a, n)| Some(game_node(*a, n, dir.path(), &redis.url(), extra)))
            .collect();
        let (listen, admin) = (free_addr(), free_addr());
        let specs: Vec<String> = NAMES.iter().zip(addrs).map(|(n, a)| format!("{n}={a}")).collect();
        let (l_s, admin_s) = (listen.to_string(), admin.to_string());
        let mut args = vec![
            "proxy",
            "--listen",
            &l_s,
            "--admin",
            &admin_s,
            "--affinity",
            "query:node",
            "--health",
            "tcp",
        ];
        for s in &specs {
            args.extend(["--backend", s.as_str()]);
        }
        let proxy = volley(&args);
        wait_port(listen);
        wait_for("the three nodes to know each other", 10, || {
            get_json(addrs[0], "/api/game/nodes")["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == 3)
        });
        Cluster {
            _redis: redis,
            _dir: dir,
            addrs,
            nodes,
            _proxy: proxy,
            url: format!("ws://{listen}/game/ws"),
        }
    }

    /// `n` players through the proxy, all in one match; its id and node.
    async fn players(&self, n: usize) -> (Vec<GameClient>, u32, usize) {
        let join = |i: usize| Join {
            name: format!("p{i}"),
            ..Join::default()
        };
        // The first player opens a match; once the registry knows it, the
        // others, arriving at whichever node the proxy picks, are sent to it.
        let first = GameClient::join(&self.url, join(0)).await.expect("first join");
        let id = first.welcome.room.0;
        wait_for("the registry to list the match", 10, || {
            holder(self.addrs[1], id).is_some()
        });
        let mut clients = vec![first];
        for i in 1..n {
            let c = GameClient::join(&self.url, join(i)).await.expect("join");
            assert_eq!(c.welcome.room.0, id, "player {i} was placed in another match");
            clients.push(c);
        }
        let home = holder(self.addrs[2], id).expect("a holder");
        (clients, id, NAMES.iter().position(|n| *n == home).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_hands_its_match_over_and_every_player_keeps_its_seat() {
    let mut cluster = Cluster::start(&[]);
    let (clients, id, at) = cluster.players(6).await;
    let home = NAMES[at];
    // A spectator may ask any node for the match: it is sent to its node.
    let watch = format!("{}?match={id}", cluster.url);
    let spectate = Join {
        name: "eve".into(),
        spectate: true,
        ..Join::default()
    };
    for _ in 0..3 {
        let eve = GameClient::join(&watch, spectate.clone()).await.expect("spectate");
        assert!(eve.welcome.spectator);
        assert_eq!(eve.welcome.room.0, id, "the spectator watches the match it asked for");
    }
    let players: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(play(c, cluster.url.clone(), 10)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = Instant::now();
    cluster.nodes[at].as_ref().unwrap().signal("TERM");
    let mut trips = Vec::new();
    for p in players {
        trips.push(p.await.expect("player task"));
    }
    let longest = trips.iter().map(|t| t.pause).max().unwrap();
    eprintln!(
        "handed over from {home} in {:?}; longest pause {longest:?}: {trips:#?}",
        stopped.elapsed()
    );
    for t in &trips {
        let to = t
            .moved_to
            .as_deref()
            .unwrap_or_else(|| panic!("player {} was not told where", t.player));
        assert_ne!(to, home);
        assert!(t.resumed && t.same_player, "player {} lost its seat: {t:?}", t.player);
        assert!(
            t.mass_after * 10 >= t.mass_before * 9,
            "player {} lost mass: {t:?}",
            t.player
        );
        assert!(
            t.pause <= Duration::from_secs(1),
            "player {} paused {:?}",
            t.player,
            t.pause
        );
    }
    let to = trips[0].moved_to.clone().unwrap();
    let to_at = NAMES.iter().position(|n| *n == to).unwrap();
    assert_eq!(holder(cluster.addrs[to_at], id).as_deref(), Some(to.as_str()));
    // Spectators find it on its new node; a match no node runs is refused (4004).
    let eve = GameClient::join(&watch, spectate.clone())
        .await
        .expect("spectate after the move");
    assert_eq!(eve.welcome.room.0, id);
    match GameClient::join(&format!("{}?match=1", cluster.url), spectate).await {
        Err(volley_client::Error::GameRefused { .. }) | Err(volley_client::Error::Closed { code: 4004, .. }) => {}
        other => panic!("watching a match that does not run: {other:?}"),
    }
    // The stopped node is gone for good.
    let mut gone = cluster.nodes[at].take().unwrap();
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        gone.0.try_wait().ok().flatten().is_some()
    });
    assert!(exited, "the drained node did not exit");
}

/// kill -9: nothing is handed over, but another node holds the match's
/// last periodic checkpoint (every second here); once the node is missed
/// (a few seconds), that node runs the match from it, and the players,
/// told to wait meanwhile (1013 with a delay), take their seats back
/// there. What is lost: the play since that checkpoint plus the detection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_match_resumes_from_its_last_checkpoint() {
    let mut cluster = Cluster::start(&["--game-checkpoint-secs", "1"]);
    let (clients, id, at) = cluster.players(4).await;
    let home = NAMES[at];
    let players: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(play(c, cluster.url.clone(), 40)))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed = Instant::now();
    drop(cluster.nodes[at].take());
    let mut trips = Vec::new();
    for p in players {
        trips.push(p.await.expect("player task"));
    }
    let longest = trips.iter().map(|t| t.pause).max().unwrap();
    eprintln!(
        "{home} killed; back after {:?}, longest pause {longest:?}: {trips:#?}",
        killed.elapsed()
    );
    for t in &trips {
        assert!(t.resumed && t.same_player, "player {} lost its seat: {t:?}", t.player);
        assert!(
            t.pause <= Duration::from_secs(10),
            "player {} paused {:?}",
            t.player,
            t.pause
        );
    }
    let now_at = (0..3)
        .filter(|&i| i != at)
        .find_map(|i| holder(cluster.addrs[i], id))
        .expect("a node runs the match again");
    assert_ne!(now_at, home);
}

/// A broker outage longer than the heartbeat TTL: every node misses the
/// others and the keeper of a match's checkpoint starts a copy of it. When
/// the broker is back, two nodes list the match; the copy the players are
/// still connected to (here on n2, the larger id) must stay, and the copy
/// restored from the older checkpoint (on n1) give way: the players are
/// never moved and lose no play.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_outage_the_copy_the_players_are_in_stays() {
    let mut redis = Redis::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addrs = [free_addr(), free_addr()];
    let extra = ["--game-checkpoint-secs", "1"];
    let _n1 = game_node(addrs[0], "n1", dir.path(), &redis.url(), &extra);
    let _n2 = game_node(addrs[1], "n2", dir.path(), &redis.url(), &extra);
    wait_for("the two nodes to know each other", 10, || {
        get_json(addrs[0], "/api/game/nodes")["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2)
    });
    // Three players on n2, by name.
    let url = format!("ws://{}/game/ws?node=n2", addrs[1]);
    let mut clients = Vec::new();
    for i in 0..3 {
        let join = Join {
            name: format!("p{i}"),
            ..Join::default()
        };
        clients.push(GameClient::join(&url, join).await.expect("join n2"));
    }
    let id = clients[0].welcome.room.0;
    assert!(clients.iter().all(|c| c.welcome.room.0 == id));
    // Let n1 receive a checkpoint or two.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let players: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(14);
                let (mut snapshots, mut longest, mut last) = (0u32, Duration::ZERO, Instant::now());
                while Instant::now() < until {
                    match tokio::time::timeout(Duration::from_secs(5), c.next()).await {
                        Ok(Ok(Some(Event::Snapshot { .. }))) => {
                            snapshots += 1;
                            longest = longest.max(last.elapsed());
                            last = Instant::now();
                            let _ = c.input((60, 0), 0).await;
                        }
                        Ok(Ok(Some(_))) => {}
                        other => return Err(format!("connection ended: {other:?}, moved to {:?}", c.moved_to())),
                    }
                }
                Ok((snapshots, longest))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    // Longer than the 3 s TTL: n1 misses n2 and recovers its match.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    redis.resume().unwrap();
    for p in players {
        let (snapshots, longest) = p.await.unwrap().expect("a player was moved or dropped");
        assert!(snapshots > 300, "played on: {snapshots} snapshots");
        assert!(longest < Duration::from_millis(500), "a pause of {longest:?}");
    }
    wait_for("the registry to list the match once, on n2", 10, || {
        let nodes = get_json(addrs[0], "/api/game/nodes");
        let holders: Vec<String> = nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["matches"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["id"].as_u64() == Some(u64::from(id))))
            })
            .map(|n| n["node"].as_str().unwrap_or_default().to_owned())
            .collect();
        holders == ["n2"]
    });
}
