//! The chat workload: clients (guests) that all belong to a few rooms,
//! each a `volley_client::chat::Session` through the proxy (it reconnects
//! and resumes by itself), sending at a steady rate with their own ids.
//! Recorded: memberships, every send with its outcome, every message the
//! session hands over, every loss and return of a connection; after the
//! heal, who each node lists online.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use volley_client::chat::{Event, Login, Options, Session};
use volley_client::{Backoff, RoomId};

use super::Recorder;
use crate::history::{Op, Outcome};
use crate::Error;

/// Sends not yet answered: id → (room, invoked at, client).
type Pending = Arc<Mutex<HashMap<String, (i64, u64, String)>>>;

/// How the chat workload runs.
#[derive(Debug, Clone)]
pub struct ChatLoad {
    /// Clients.
    pub clients: usize,
    /// Rooms every client belongs to.
    pub rooms: usize,
    /// Messages per second per client.
    pub rate: f64,
}

/// The workload's clients, once set up.
pub struct Chat {
    proxy: u16,
    names: Vec<(String, String, i64)>,
    rooms: Vec<i64>,
    /// Unanswered sends.
    pending: Pending,
    /// Per client: connected now (its last event was Ready).
    up: Arc<Mutex<BTreeMap<String, bool>>>,
    /// Per client and room: the highest seq handed over.
    highest: Arc<Mutex<HashMap<(String, i64), u64>>>,
    /// Per room: the highest acknowledged seq.
    acked_top: Arc<Mutex<HashMap<i64, u64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    recorder: Recorder,
    sending: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("clients", &self.names.len()).finish()
    }
}

async fn api(port: u16, method: &str, path: &str, token: Option<&str>, body: Value) -> Result<Value, Error> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    for attempt in 0..20 {
        match crate::http::request(port, method, path, Some(body.to_string()), &headers).await {
            Ok((code, text)) if (200..300).contains(&code) => {
                return serde_json::from_str(&text).map_err(|e| Error::Refused(e.to_string()))
            }
            Ok((code, text)) if code < 500 => return Err(Error::Refused(format!("{method} {path}: {code} {text}"))),
            _ if attempt < 19 => tokio::time::sleep(Duration::from_millis(250)).await,
            other => return Err(Error::Refused(format!("{method} {path}: {other:?}"))),
        }
    }
    unreachable!("the loop returns")
}

impl Chat {
    /// Create the clients and rooms through the proxy, and connect them.
    pub async fn start(proxy: u16, load: &ChatLoad, recorder: Recorder) -> Result<Chat, Error> {
        let tag: u32 = rand::random::<u32>() % 100_000;
        let mut names = Vec::new();
        for i in 0..load.clients {
            let name = format!("c{tag}-{i}");
            let answer = api(proxy, "POST", "/api/guest", None, json!({ "name": name })).await?;
            let token = answer["token"].as_str().unwrap_or_default().to_owned();
            let id = answer["user"]["id"].as_i64().unwrap_or_default();
            names.push((name, token, id));
        }
        let mut rooms = Vec::new();
        for r in 0..load.rooms {
            let room = api(
                proxy,
                "POST",
                "/api/rooms",
                Some(&names[0].1),
                json!({ "name": format!("test {tag} {r}") }),
            )
            .await?;
            let id = room["id"].as_i64().unwrap_or_default();
            for (_, token, _) in &names[1..] {
                api(proxy, "POST", &format!("/api/rooms/{id}/join"), Some(token), json!({})).await?;
            }
            for (name, _, _) in &names {
                recorder.push(Op::Member {
                    client: name.clone(),
                    room: id,
                });
            }
            rooms.push(id);
        }
        let mut chat = Chat {
            proxy,
            names,
            rooms,
            pending: Arc::default(),
            up: Arc::default(),
            highest: Arc::default(),
            acked_top: Arc::default(),
            tasks: Vec::new(),
            recorder,
            sending: watch::channel(true).0,
            stop: watch::channel(false).0,
        };
        chat.connect(load).await;
        Ok(chat)
    }

    async fn connect(&mut self, load: &ChatLoad) {
        let url = format!("ws://127.0.0.1:{}/ws", self.proxy);
        let period = Duration::from_secs_f64(1.0 / load.rate.max(0.1));
        for (i, (name, token, _)) in self.names.clone().into_iter().enumerate() {
            let options = Options {
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
                ..Options::default()
            };
            let session = Session::with_options(&url, Login::Token(token), options);
            let client = Client {
                name,
                rooms: self.rooms.clone(),
                rec: self.recorder.clone(),
                pending: self.pending.clone(),
                up: self.up.clone(),
                highest: self.highest.clone(),
                acked_top: self.acked_top.clone(),
            };
            let (sending, stop) = (self.sending.subscribe(), self.stop.subscribe());
            // Spread the clients' sends over the period.
            let offset = period.mul_f64(i as f64 / self.names.len().max(1) as f64);
            self.tasks
                .push(tokio::spawn(client.run(session, period, offset, sending, stop)));
        }
    }

    /// Stop sending (the run is over); sessions stay connected for the checks.
    pub fn stop_sending(&self) {
        self.sending.send_replace(false);
    }

    /// Wait (at most `within`) until every client is connected, nothing is
    /// pending, and every client has every room up to its highest
    /// acknowledged message; whether that happened.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all_up = {
                let up = lock(&self.up);
                self.names.iter().all(|(n, _, _)| up.get(n).copied().unwrap_or(false))
            };
            let caught_up = {
                let tops = lock(&self.acked_top);
                let highest = lock(&self.highest);
                self.names.iter().all(|(n, _, _)| {
                    self.rooms.iter().all(|r| {
                        let top = tops.get(r).copied().unwrap_or(0);
                        highest.get(&(n.clone(), *r)).copied().unwrap_or(0) >= top
                    })
                })
            };
            if all_up && caught_up && lock(&self.pending).is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ask every node directly who is online in each room, until they all
    /// list exactly the clients (or `within` passes); record the last answers.
    pub async fn check_presence(&self, nodes: &[(String, u16)], within: Duration) {
        let mut expected: Vec<String> = self.names.iter().map(|(_, _, id)| id.to_string()).collect();
        expected.sort();
        let token = self.names[0].1.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut answers = Vec::new();
            for (node, port) in nodes {
                for room in &self.rooms {
                    let online = api(
                        *port,
                        "GET",
                        &format!("/api/rooms/{room}/online"),
                        Some(&token),
                        json!({}),
                    )
                    .await
                    .ok()
                    .and_then(|v| {
                        v["online"]
                            .as_array()
                            .map(|a| a.iter().map(|u| u.to_string()).collect::<Vec<_>>())
                    })
                    .unwrap_or_default();
                    let mut online = online;
                    online.sort();
                    answers.push((node.clone(), *room, online));
                }
            }
            let converged = answers.iter().all(|(_, _, online)| *online == expected);
            if converged || tokio::time::Instant::now() >= deadline {
                for (node, room, online) in answers {
                    self.recorder.push(Op::Presence {
                        node,
                        room,
                        online,
                        expected: expected.clone(),
                    });
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Close every session; sends still unanswered are recorded as unknown.
    pub async fn finish(mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let now = self.recorder.now();
        for (id, (room, at, client)) in lock(&self.pending).drain() {
            self.recorder.push(Op::Send {
                client,
                room,
                id,
                at_ms: at,
                done_ms: now,
                outcome: Outcome::Unknown,
            });
        }
    }
}

/// One client's task: its session's events recorded, its sends on a timer.
struct Client {
    name: String,
    rooms: Vec<i64>,
    rec: Recorder,
    pending: Pending,
    up: Arc<Mutex<BTreeMap<String, bool>>>,
    highest: Arc<Mutex<HashMap<(String, i64), u64>>>,
    acked_top: Arc<Mutex<HashMap<i64, u64>>>,
}

impl Client {
    async fn run(
        self,
        mut session: Session,
        period: Duration,
        offset: Duration,
        mut sending: watch::Receiver<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period + offset, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        let mut was_up = false;
        loop {
            tokio::select! {
                event = session.next_event() => {
                    let Some(event) = event else { break };
                    self.record(event, &mut was_up);
                }
                _ = tick.tick(), if *sending.borrow_and_update() => {
                    n += 1;
                    let room = self.rooms[(n as usize) % self.rooms.len()];
                    let id = format!("{}-{n}", self.name);
                    lock(&self.pending).insert(id.clone(), (room, self.rec.now(), self.name.clone()));
                    if let Err(e) = session.send_with_id(RoomId(room), &id, &format!("message {n} from {}", self.name)).await {
                        // Not sent at all (the outbox is full): refused here, never on the wire.
                        if let Some((room, at, client)) = lock(&self.pending).remove(&id) {
                            self.rec.push(Op::Send {
                                client,
                                room,
                                id,
                                at_ms: at,
                                done_ms: self.rec.now(),
                                outcome: Outcome::Failed { why: e.to_string() },
                            });
                        }
                    }
                }
                _ = stop.changed() => {
                    // Hand over what is already here, then close.
                    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), session.next_event()).await {
                        self.record(event, &mut was_up);
                    }
                    session.close().await;
                    break;
                }
            }
        }
    }

    fn record(&self, event: Event, was_up: &mut bool) {
        let rec = &self.rec;
        let who = &self.name;
        match event {
            Event::Ready { .. } => {
                if !*was_up {
                    rec.push(Op::Up {
                        client: who.clone(),
                        at_ms: rec.now(),
                    });
                }
                *was_up = true;
                lock(&self.up).insert(who.clone(), true);
            }
            Event::Disconnected { .. } => {
                if *was_up {
                    rec.push(Op::Down {
                        client: who.clone(),
                        at_ms: rec.now(),
                    });
                }
                *was_up = false;
                lock(&self.up).insert(who.clone(), false);
            }
            Event::Message(m) => {
                rec.push(Op::Deliver {
                    client: who.clone(),
                    room: m.room.0,
                    seq: m.seq.0,
                    id: m.id.clone(),
                    at_ms: rec.now(),
                });
                let mut h = lock(&self.highest);
                let top = h.entry((who.clone(), m.room.0)).or_insert(0);
                *top = (*top).max(m.seq.0);
            }
            Event::Acked { room, id, seq, .. } => {
                if let Some((room_id, at, client)) = lock(&self.pending).remove(&id) {
                    rec.push(Op::Send {
                        client,
                        room: room_id,
                        id,
                        at_ms: at,
                        done_ms: rec.now(),
                        outcome: Outcome::Ok { seq: seq.0 },
                    });
                    let mut tops = lock(&self.acked_top);
                    let top = tops.entry(room.0).or_insert(0);
                    *top = (*top).max(seq.0);
                }
            }
            Event::Rejected { id, refused, .. } => {
                if let Some((room, at, client)) = lock(&self.pending).remove(&id) {
                    rec.push(Op::Send {
                        client,
                        room,
                        id,
                        at_ms: at,
                        done_ms: rec.now(),
                        outcome: Outcome::Failed {
                            why: refused.message.clone(),
                        },
                    });
                }
            }
            Event::Frame(_) | Event::Stopped { .. } => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
