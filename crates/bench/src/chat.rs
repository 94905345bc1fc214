//! `chat`: N clients in R rooms of `volley serve`, P messages per second in
//! total; how many deliveries per second arrive and how long each takes from
//! send to receipt (persistence included: the server stores before it fans
//! out).
//!
//! Each message carries its send time (nanoseconds since the run's start) in
//! its text, and the sender's id carries it too, so receipts and acks are
//! timed without any bookkeeping shared between tasks. Only messages sent in
//! the measured window count.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::future::Future;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use volley_client::chat::ServerMsg;
use volley_client::chat::{ChatClient, Login};
use volley_net::{CloseCode, MaybeTlsStream, Message, WebSocket};

use crate::{histogram, Error, Measured, Scenario, Target};

/// The chat scenario.
#[derive(Debug, Clone)]
pub struct Chat {
    /// Connected clients.
    pub clients: usize,
    /// Rooms; clients are spread evenly over them.
    pub rooms: usize,
    /// Messages per second published in total.
    pub rate: f64,
    /// Message text size in bytes.
    pub size: usize,
    /// Measured window.
    pub duration: Duration,
    /// Unmeasured warm-up.
    pub warmup: Duration,
    /// Connections being set up at once.
    pub connect_concurrency: usize,
}

/// What one client task saw.
struct ClientStats {
    delivered: u64,
    bytes: u64,
    acked: u64,
    errors: u64,
    latency: Histogram<u64>,
    ack_latency: Histogram<u64>,
}

/// The measured window in nanoseconds since the run's epoch.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        (self.start..self.end).contains(&t)
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// The number right after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

impl Scenario for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("clients".into(), self.clients.to_string()),
            ("rooms".into(), self.rooms.to_string()),
            ("rate_per_s".into(), self.rate.to_string()),
            ("size".into(), self.size.to_string()),
            ("duration_s".into(), self.duration.as_secs_f64().to_string()),
        ])
    }

    fn unit(&self) -> &'static str {
        "deliveries"
    }

    fn expected_duration(&self) -> Duration {
        self.warmup + self.duration + Duration::from_secs(2)
    }

    async fn run(&self, target: &Target) -> Result<Measured, Error> {
        match target.transport {
            crate::Transport::Http1 => self.run_on(target, Direct(target.clone())).await,
            _ => {
                let shared = crate::transport::Shared::connect(target).await?;
                self.run_on(target, Streams(Arc::new(shared))).await
            }
        }
    }
}

/// How the `i`-th client reaches the server.
trait Dial: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn dial(&self, i: usize) -> impl Future<Output = Result<ChatClient<Self::Stream>, Error>> + Send;
}

/// A connection of its own per client (HTTP/1.1 upgrade).
#[derive(Clone)]
struct Direct(Target);

impl Dial for Direct {
    type Stream = MaybeTlsStream;
    async fn dial(&self, i: usize) -> Result<ChatClient, Error> {
        connect(&self.0, i).await
    }
}

/// A stream of a shared HTTP/2 or HTTP/3 connection per client.
#[derive(Clone)]
struct Streams(Arc<crate::transport::Shared>);

impl Dial for Streams {
    type Stream = volley_net::Upgraded;
    async fn dial(&self, i: usize) -> Result<ChatClient<volley_net::Upgraded>, Error> {
        let ws = self.0.websocket(i).await?;
        ChatClient::over(ws, Login::Guest(format!("bot{i}")), &HashMap::new())
            .await
            .map_err(|e| Error::Chat(e.to_string()))
    }
}

impl Chat {
    async fn run_on<D: Dial>(&self, target: &Target, dial: D) -> Result<Measured, Error> {
        let rooms = self.rooms.clamp(1, self.clients.max(1));
        let clients = self.clients.max(rooms);
        let setup_started = Instant::now();
        let rss_before = target.server_pid.and_then(crate::sys::rss_bytes);
        let tag: u32 = rand::random();
        // One owner per room creates it; everyone else joins.
        let mut room_ids = Vec::with_capacity(rooms);
        let mut owners = Vec::with_capacity(rooms);
        for r in 0..rooms {
            let mut owner = dial.dial(r).await?;
            let id = match owner
                .request(json!({ "type": "create_room", "name": format!("bench-{tag:08x}-{r}") }))
                .await
            {
                Ok(ServerMsg::Ok { room, .. }) => room,
                other => return Err(Error::Chat(format!("create_room: {other:?}"))),
            };
            room_ids.push(id);
            owners.push(owner);
        }
        let gate = Arc::new(Semaphore::new(self.connect_concurrency.max(1)));
        let mut joining = JoinSet::new();
        for i in rooms..clients {
            let dial = dial.clone();
            let gate = gate.clone();
            let room = room_ids[i % rooms];
            joining.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let mut client = dial.dial(i).await?;
                match client.request(json!({ "type": "join", "room": room })).await {
                    Ok(ServerMsg::Ok { .. }) => Ok((i, client)),
                    other => Err(Error::Chat(format!("join: {other:?}"))),
                }
            });
        }
        let mut members: Vec<(usize, ChatClient<D::Stream>)> = owners.into_iter().enumerate().collect();
        while let Some(joined) = joining.join_next().await {
            members.push(joined.map_err(|e| Error::Chat(e.to_string()))??);
        }
        let setup = setup_started.elapsed();

        // One clock shared by every task; the window is set once set-up
        // traffic (joins, presence) has died down.
        let epoch = Instant::now();
        let window = Arc::new(OnceLock::new());
        let frames = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(members.len());
        let mut tasks = JoinSet::new();
        let pad = "x".repeat(self.size.saturating_sub(24));
        for (i, client) in members {
            let (tx, rx) = mpsc::channel::<()>(64);
            senders.push(tx);
            let room = room_ids[i % rooms];
            let ws = client.into_socket();
            let ctx = TaskContext {
                me: i,
                room,
                epoch,
                window: window.clone(),
                frames: frames.clone(),
                pad: pad.clone(),
            };
            tasks.spawn(client_task(ws, ctx, rx, stop_rx.clone()));
        }
        let settle_started = Instant::now();
        let mut seen = frames.load(Ordering::Relaxed);
        let mut quiet = 0;
        while quiet < 2 && settle_started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = frames.load(Ordering::Relaxed);
            quiet = if now == seen { quiet + 1 } else { 0 };
            seen = now;
        }
        let settle = settle_started.elapsed();
        // Server memory with every client connected, subscribed and idle.
        let rss_per_client = target
            .server_pid
            .and_then(crate::sys::rss_bytes)
            .zip(rss_before)
            .map(|(after, before)| after.saturating_sub(before) as f64 / clients as f64);
        let start = epoch.elapsed() + self.warmup;
        let _ = window.set(Window {
            start: start.as_nanos() as u64,
            end: (start + self.duration).as_nanos() as u64,
        });
        let publish_start = Instant::now();
        // The server's CPU time over the measured window: its cost per delivery.
        let measure_from = publish_start + self.warmup;
        let measure_to = measure_from + self.duration;
        let server_cpu = target.server_pid.map(|pid| {
            tokio::spawn(async move {
                tokio::time::sleep_until(measure_from).await;
                let before = crate::sys::pid_cpu_time(pid);
                tokio::time::sleep_until(measure_to).await;
                crate::sys::pid_cpu_time(pid)
                    .zip(before)
                    .map(|(a, b)| a.saturating_sub(b))
            })
        });

        // Publish at the configured rate, round-robin over the clients.
        let per_tick = Duration::from_millis(1);
        let mut ticker = tokio::time::interval(per_tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let publish_until = publish_start + self.warmup + self.duration;
        let mut published: u64 = 0;
        let mut skipped: u64 = 0;
        let mut next = 0usize;
        while Instant::now() < publish_until {
            ticker.tick().await;
            let due = (publish_start.elapsed().as_secs_f64() * self.rate) as u64;
            while published < due {
                if senders[next].try_send(()).is_err() {
                    skipped += 1;
                }
                published += 1;
                next = (next + 1) % senders.len();
            }
        }
        // Let the last messages arrive, then stop.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        let mut latency = histogram();
        let mut ack_latency = histogram();
        let (mut delivered, mut bytes, mut acked, mut errors) = (0, 0, 0, skipped);
        while let Some(done) = tasks.join_next().await {
            let s = done.map_err(|e| Error::Chat(e.to_string()))?;
            delivered += s.delivered;
            bytes += s.bytes;
            acked += s.acked;
            errors += s.errors;
            let _ = latency.add(&s.latency);
            let _ = ack_latency.add(&s.ack_latency);
        }
        let members_per_room = clients as f64 / rooms as f64;
        let expected = acked as f64 * members_per_room;
        let mut extra = BTreeMap::from([
            ("setup_s".to_owned(), setup.as_secs_f64()),
            ("settle_s".to_owned(), settle.as_secs_f64()),
            (
                "published_per_s".to_owned(),
                acked as f64 / self.duration.as_secs_f64().max(1e-9),
            ),
            (
                "delivery_ratio".to_owned(),
                if expected > 0.0 {
                    delivered as f64 / expected
                } else {
                    0.0
                },
            ),
            (
                "ack_p50_ms".to_owned(),
                ack_latency.value_at_quantile(0.5) as f64 / 1000.0,
            ),
            (
                "ack_p99_ms".to_owned(),
                ack_latency.value_at_quantile(0.99) as f64 / 1000.0,
            ),
        ]);
        if let Some(bytes) = rss_per_client {
            extra.insert("server_bytes_per_client".to_owned(), bytes);
        }
        let server_cpu = match server_cpu {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        Ok(Measured {
            ops: delivered,
            bytes,
            errors,
            latency: Some(latency),
            elapsed: self.duration,
            server_cpu,
            extra,
            ..Measured::default()
        })
    }
}

/// Client `i` connects to the `i`-th of the target's URLs (comma-separated,
/// in turn), so a room's members spread over every node of a cluster.
async fn connect(target: &Target, i: usize) -> Result<ChatClient, Error> {
    let urls: Vec<&str> = target.url.split(',').map(str::trim).collect();
    let url = urls[i % urls.len()];
    ChatClient::connect_with(&target.connector, url, Login::Guest(format!("bot{i}")), &HashMap::new())
        .await
        .map_err(|e| match e {
            // A load test opens every client from one address: say which
            // server flag lifts the limit it ran into.
            volley_client::Error::Refused(r) if r.code == volley_client::chat::ErrorCode::RateLimited => Error::Chat(format!(
                "{}: start the server with --account-attempts-per-sec 0 for a load test from one address",
                r.message
            )),
            volley_client::Error::Transport(source) if source.to_string().contains("429") => Error::Chat(format!(
                "{source}: the server caps connections per address; start it with --max-connections-per-ip 0 for a load test from one address"
            )),
            volley_client::Error::Transport(source) => Error::Connect {
                url: url.to_owned(),
                source,
            },
            other => Error::Chat(other.to_string()),
        })
}

/// What a client task needs besides its socket and channels.
struct TaskContext {
    me: usize,
    room: volley_client::RoomId,
    epoch: Instant,
    window: Arc<OnceLock<Window>>,
    frames: Arc<AtomicU64>,
    pad: String,
}

async fn client_task<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
    ctx: TaskContext,
    mut sends: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let TaskContext {
        me,
        room,
        epoch,
        window,
        frames,
        pad,
    } = ctx;
    let mut stats = ClientStats {
        delivered: 0,
        bytes: 0,
        acked: 0,
        errors: 0,
        latency: histogram(),
        ack_latency: histogram(),
    };
    loop {
        tokio::select! {
            cmd = sends.recv() => {
                if cmd.is_none() {
                    break;
                }
                let t = nanos_since(epoch);
                let text = format!(
                    r#"{{"type":"send","room":{room},"id":"{me}-{t}","text":"t{t}.{pad}"}}"#
                );
                if ws.send(Message::Text(text.into())).await.is_err() {
                    stats.errors += 1;
                    break;
                }
            }
            frame = ws.recv() => {
                let text = match frame {
                    Ok(Some(Message::Text(text))) => text,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        if !*stop.borrow() {
                            stats.errors += 1;
                        }
                        break;
                    }
                };
                frames.fetch_add(1, Ordering::Relaxed);
                let now = nanos_since(epoch);
                let Some(window) = window.get() else { continue };
                let text = text.as_str();
                if text.starts_with(r#"{"type":"message""#) {
                    if let Some(sent) = number_after(text, r#""text":"t"#) {
                        if window.contains(sent) {
                            stats.delivered += 1;
                            stats.bytes += text.len() as u64;
                            let _ = stats.latency.record((now.saturating_sub(sent) / 1000).max(1));
                        }
                    }
                } else if text.starts_with(r#"{"type":"ack""#) {
                    let marker = format!(r#""id":"{me}-"#);
                    if let Some(sent) = number_after(text, &marker) {
                        if window.contains(sent) {
                            stats.acked += 1;
                            let _ = stats.ack_latency.record((now.saturating_sub(sent) / 1000).max(1));
                        }
                    }
                } else if text.starts_with(r#"{"type":"error""#) {
                    stats.errors += 1;
                }
            }
            _ = stop.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(CloseCode::NORMAL, "")).await;
    stats
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn finds_timestamps() {
        let m = r#"{"type":"message","room":1,"seq":2,"id":"3-99","user":1,"name":"b","text":"t12345.xx","ts":1}"#;
        assert_eq!(number_after(m, r#""text":"t"#), Some(12345));
        assert_eq!(number_after(m, r#""id":"3-"#), Some(99));
        assert_eq!(number_after(m, r#""id":"4-"#), None);
    }
}
