//! Players as accounts, across two `volley serve` nodes sharing a real
//! PostgreSQL and Redis: a player signs in to the game with the chat's
//! token; its seat belongs to the account (a second connection takes it
//! over, another node sends it to the node that holds it, and it comes
//! back there with the same player); the roster marks it signed in under
//! the account's name; a bad token is refused with close 4005; the
//! account's best score reaches the all-time leaderboard, which every node
//! reads from the shared store, and the live leaderboard spans the nodes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_addr, volley, wait_port, Proc};
use serde_json::Value;
use volley_client::game::{Event, GameClient};
use volley_client::game_protocol::{ErrorCode, Join};
use volley_client::Error;
use volley_testkit::{Postgres, Redis};

fn node(addr: SocketAddr, name: &str, dir: &std::path::Path, pg: &str, broker: &str) -> Proc {
    let (addr_s, data) = (addr.to_string(), dir.join(name).display().to_string());
    let p = volley(&[
        "serve",
        "--addr",
        &addr_s,
        "--node-id",
        name,
        "--data-dir",
        &data,
        "--store",
        pg,
        "--broker",
        broker,
        "--max-connections-per-ip",
        "0",
        "--account-attempts-per-sec",
        "0",
        "--game-bots-per-room",
        "0",
        "--game-sim-threads",
        "1",
    ]);
    wait_port(addr);
    p
}

fn http(to: SocketAddr, request: &str) -> Value {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn get_json(to: SocketAddr, path: &str) -> Value {
    http(
        to,
        &format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"),
    )
}

fn guest_token(to: SocketAddr, name: &str) -> String {
    let body = format!("{{\"name\":\"{name}\"}}");
    let answer = http(
        to,
        &format!(
            "POST /api/guest HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    answer["token"].as_str().expect("a guest token").to_owned()
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signed_in(token: &str) -> Join {
    Join {
        // Ignored: the account's name wins.
        name: "whoever".into(),
        account: Some(token.to_owned()),
        ..Join::default()
    }
}

async fn join_at(addr: SocketAddr, join: Join) -> Result<GameClient, Error> {
    let ws = volley_net::connect(&format!("ws://{addr}/game/ws")).await?;
    GameClient::join_on(ws, join).await
}

/// Play for `secs`, steering; whether the connection is still open.
async fn play(client: &mut GameClient, secs: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
            Ok(Ok(Some(Event::Snapshot { .. }))) => {
                let _ = client.input((120, 40), 0).await;
            }
            Ok(Ok(Some(_))) => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_player_s_seat_and_best_score_belong_to_the_account_on_every_node() {
    let pg = Postgres::start().unwrap();
    let redis = Redis::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a1, a2) = (free_addr(), free_addr());
    let _n1 = node(a1, "n1", dir.path(), &pg.url(), &redis.url());
    let _n2 = node(a2, "n2", dir.path(), &pg.url(), &redis.url());
    eventually("the two nodes to know each other", 15, || async {
        (get_json(a1, "/api/game/nodes")["nodes"].as_array()?.len() == 2).then_some(())
    })
    .await;

    // Not a token: refused, with its own close code.
    match join_at(a1, signed_in("not.a.token")).await {
        Err(Error::GameRefused { code, .. }) => assert_eq!(code, ErrorCode::AccountRefused),
        other => panic!("a forged account token was not refused: {other:?}"),
    }

    let token = guest_token(a1, "ada");
    let mut first = join_at(a1, signed_in(&token)).await.expect("sign in on n1");
    let (player, room) = (first.welcome.player, first.welcome.room);
    assert!(play(&mut first, 1).await);
    let me = first.roster.iter().find(|p| p.id == player).expect("in the roster");
    assert_eq!(me.name, "ada", "the account's name, not the chosen one");
    assert!(me.account, "marked signed in");

    // The same account again, with no resume token: the seat is its own.
    let mut second = join_at(a1, signed_in(&token)).await.expect("second sign-in");
    assert!(second.welcome.resumed, "took the seat back");
    assert_eq!((second.welcome.player, second.welcome.room), (player, room));
    assert!(!play(&mut first, 3).await, "the replaced connection ends");
    assert!(play(&mut second, 1).await);
    second.close().await.ok();

    // Another node knows, from n1's heartbeat, where the account's seat is.
    let moved = eventually("n2 to send the account to n1", 10, || async {
        match join_at(a2, signed_in(&token)).await {
            Err(Error::Moved { node }) => Some(node),
            Ok(c) => {
                let _ = c.close().await;
                None
            }
            Err(_) => None,
        }
    })
    .await;
    assert_eq!(moved, "n1");
    let mut back = join_at(a1, signed_in(&token)).await.expect("back on n1");
    assert!(back.welcome.resumed);
    assert_eq!((back.welcome.player, back.welcome.room), (player, room));

    // The best score goes to the shared store; n2 reads it.
    let best = eventually("ada's best score on n2's leaderboard", 15, || async {
        let board = get_json(a2, "/api/game/leaderboard");
        board["best"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == "ada")
            .and_then(|e| e["best"].as_u64())
    })
    .await;
    assert!(best > 0);
    let live = get_json(a2, "/api/game/leaderboard");
    let entry = live["live"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == "ada").cloned())
        .expect("ada on the live leaderboard as n2 sees it");
    assert_eq!(entry["account"], true);
    assert_eq!(entry["node"], "n1");
    assert_eq!(entry["match"], room.0);
    assert!(play(&mut back, 1).await);
}
