//! The game workload: bots through the proxy (`volley_client::game`), all
//! seated in matches of the cluster, steering every tick. A bot whose
//! connection ends (its node drained, killed, cut off) records where it sat
//! (match, seat, mass) and takes its seat back with `rejoin`, which follows
//! `MOVED`, the seat token and `?node=`; then it records where it landed
//! and when its first snapshot came.

use std::time::Duration;

use tokio::sync::watch;
use volley_client::game::{Event, GameClient};
use volley_client::game_protocol::Join;
use volley_client::Backoff;

use super::Recorder;
use crate::history::Op;

/// How the game workload runs.
#[derive(Debug, Clone)]
pub struct GameLoad {
    /// Bots.
    pub bots: usize,
    /// How long a bot keeps trying to come back.
    pub give_up: Duration,
}

/// The running bots.
#[derive(Debug)]
pub struct Game {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Game {
    /// Seat the bots (one by one, so the first opens a match and the
    /// others are placed) and let them play.
    pub async fn start(proxy: u16, load: &GameLoad, recorder: Recorder) -> Game {
        let stop = watch::channel(false).0;
        let url = format!("ws://127.0.0.1:{proxy}/game/ws");
        let tag: u32 = rand::random::<u32>() % 100_000;
        let mut tasks = Vec::new();
        for i in 0..load.bots {
            let name = format!("g{tag}-{i}");
            let join = Join {
                name: name.clone(),
                ..Join::default()
            };
            let mut client = None;
            for _ in 0..50 {
                match GameClient::join(&url, join.clone()).await {
                    Ok(c) => {
                        client = Some(c);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(bot = %name, error = %e, "join failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            let Some(client) = client else {
                tracing::warn!(bot = %name, "never seated");
                recorder.push(Op::Unseated { player: name });
                continue;
            };
            let bot = Bot {
                name,
                url: url.clone(),
                rec: recorder.clone(),
                give_up: load.give_up,
            };
            tasks.push(tokio::spawn(bot.play(client, stop.subscribe())));
        }
        Game { stop, tasks }
    }

    /// Stop the bots (a bot coming back finishes coming back first).
    pub async fn finish(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
        }
    }
}

struct Bot {
    name: String,
    url: String,
    rec: Recorder,
    give_up: Duration,
}

impl Bot {
    async fn play(self, mut client: GameClient, mut stop: watch::Receiver<bool>) {
        let mut t = 0f32;
        loop {
            let ended = tokio::select! {
                next = client.next() => match next {
                    Ok(Some(Event::Snapshot { .. })) => {
                        if !client.header.alive && client.header.tick % 30 == 0 {
                            // Eaten: a new cell, as a player would click.
                            let _ = client.respawn().await;
                        }
                        t += 0.05;
                        let target = ((t.cos() * 120.0) as i16, (t.sin() * 120.0) as i16);
                        let _ = client.input(target, 0).await;
                        false
                    }
                    Ok(Some(_)) => false,
                    Ok(None) | Err(_) => true,
                },
                _ = stop.changed() => {
                    let _ = client.close().await;
                    return;
                }
            };
            if !ended {
                continue;
            }
            let (match_id, seat, mass) = (client.welcome.room.0, client.welcome.player, client.header.mass);
            self.rec.push(Op::SeatBefore {
                player: self.name.clone(),
                at_ms: self.rec.now(),
                match_id,
                seat,
                mass,
            });
            match self.come_back(&client).await {
                Some((mut back, fresh)) => {
                    // Back when the first snapshot arrives (a node paused
                    // right after the rejoin may hold it: wait up to give_up).
                    let mut first = None;
                    while first.is_none() {
                        match tokio::time::timeout(self.give_up, back.next()).await {
                            Ok(Ok(Some(Event::Snapshot { .. }))) => first = Some(self.rec.now()),
                            Ok(Ok(Some(_))) => {}
                            _ => break,
                        }
                    }
                    self.rec.push(Op::SeatAfter {
                        player: self.name.clone(),
                        at_ms: first,
                        match_id: back.welcome.room.0,
                        seat: back.welcome.player,
                        mass: back.header.mass,
                        fresh,
                    });
                    if first.is_none() {
                        return;
                    }
                    client = back;
                }
                None => {
                    self.rec.push(Op::SeatAfter {
                        player: self.name.clone(),
                        at_ms: None,
                        match_id: 0,
                        seat: 0,
                        mass: 0,
                        fresh: false,
                    });
                    return;
                }
            }
        }
    }

    /// Rejoin until the seat is back or `give_up` passes; the client and
    /// whether the seat was a new one.
    async fn come_back(&self, client: &GameClient) -> Option<(GameClient, bool)> {
        let deadline = tokio::time::Instant::now() + self.give_up;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        let connector = volley_net::Connector::default();
        while tokio::time::Instant::now() < deadline {
            match client.rejoin(&connector, &self.url, &mut backoff, 5).await {
                Ok(back) => {
                    let fresh = back.resume_expired || !back.welcome.resumed;
                    return Some((back, fresh));
                }
                Err(e) => tracing::debug!(bot = %self.name, error = %e, "rejoin failed; trying again"),
            }
        }
        None
    }
}
