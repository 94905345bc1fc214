//! `game`: headless bots over real WebSocket connections to `/game/ws` of
//! `volley serve`. Each bot joins, steers at the browser client's rate
//! (one input per tick), acknowledges snapshots and reads them. Reports the
//! snapshot rate and bandwidth per bot, input-to-snapshot latency (from
//! sending an input to the first snapshot that says the world applied it),
//! and the server's tick time, read from its `/metrics` before and after the
//! measured window.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use volley_client::game::{Event, GameClient};
use volley_client::game_protocol::Join;

use crate::{histogram, Error, Measured, Scenario, Target};

/// The game scenario.
#[derive(Debug, Clone)]
pub struct Game {
    /// Bots over WebSocket connections.
    pub bots: usize,
    /// Inputs per second per bot (the browser sends one per tick: 30).
    pub input_rate: f64,
    /// Measured window.
    pub duration: Duration,
    /// Unmeasured warm-up.
    pub warmup: Duration,
    /// Connections set up at once.
    pub connect_concurrency: usize,
    /// Read the server's `/metrics` at this `host:port` over plain HTTP
    /// instead of the game's own address (a node behind a proxy that keeps
    /// `/metrics` from its clients).
    pub metrics_addr: Option<String>,
}

struct BotStats {
    snapshots: u64,
    bytes: u64,
    errors: u64,
    deaths: u64,
    latency: Histogram<u64>,
    /// Connections made again after the server closed one.
    reconnects: u64,
    /// Of those, the ones that followed a moved match (`MOVED`).
    migrations: u64,
    /// Reconnects that did not get the bot's seat back.
    seats_lost: u64,
    /// Longest time between two snapshots across a reconnect.
    longest_pause: Duration,
    /// The last snapshot before the connection dropped, until the next one.
    pause_from: Option<Instant>,
    last_snapshot: Option<Instant>,
}

impl BotStats {
    fn new() -> BotStats {
        BotStats {
            snapshots: 0,
            bytes: 0,
            errors: 0,
            deaths: 0,
            latency: histogram(),
            reconnects: 0,
            migrations: 0,
            seats_lost: 0,
            longest_pause: Duration::ZERO,
            pause_from: None,
            last_snapshot: None,
        }
    }
}

impl Scenario for Game {
    fn name(&self) -> &'static str {
        "game"
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("bots".into(), self.bots.to_string()),
            ("input_rate".into(), self.input_rate.to_string()),
            ("duration_s".into(), self.duration.as_secs_f64().to_string()),
            ("warmup_s".into(), self.warmup.as_secs_f64().to_string()),
        ])
    }

    fn unit(&self) -> &'static str {
        "snapshots"
    }

    fn expected_duration(&self) -> Duration {
        self.warmup + self.duration + Duration::from_secs(2)
    }

    async fn run(&self, target: &Target) -> Result<Measured, Error> {
        let metrics = match &self.metrics_addr {
            Some(addr) => Metrics::Plain(addr.clone()),
            None => Metrics::for_target(target).await?,
        };
        let shared = match target.transport {
            crate::Transport::Http1 => None,
            _ => Some(std::sync::Arc::new(crate::transport::Shared::connect(target).await?)),
        };
        // The server's memory before any bot: what the bots' connections,
        // seats and snapshot baselines add is measured against it.
        let rss_before = target.server_pid.and_then(crate::sys::rss_bytes);
        let gate = std::sync::Arc::new(Semaphore::new(self.connect_concurrency.max(1)));
        let mut set = JoinSet::new();
        let start = Instant::now() + Duration::from_millis(200) + self.bots as u32 * Duration::from_millis(2);
        let window_start = start + self.warmup;
        let window_end = window_start + self.duration;
        for n in 0..self.bots {
            let (target, shared) = (target.clone(), shared.clone());
            let gate = gate.clone();
            let period = Duration::from_secs_f64(1.0 / self.input_rate.max(0.1));
            set.spawn(async move {
                let join = Join {
                    name: format!("bench {n}"),
                    spectate: false,
                    resume: None,
                    seat: None,
                    account: None,
                };
                let permit = gate.acquire().await;
                let failed = |e: String| {
                    tracing::warn!(error = %e, "bot could not join");
                    BotStats {
                        errors: 1,
                        ..BotStats::new()
                    }
                };
                match shared {
                    // Own connections: through the target's connector (its CA, for wss://).
                    // A closed connection is made again (a drained node, a
                    // moved match), and the seat taken back.
                    None => {
                        let ws = target.connector.connect(&target.url).await;
                        let client = match ws {
                            Ok(ws) => GameClient::join_on(ws, join.clone()).await,
                            Err(e) => Err(e.into()),
                        };
                        let client = match client {
                            // A cluster's node may send a new match elsewhere.
                            Err(volley_client::Error::Moved { node }) => {
                                let url = volley_client::game::with_node(&target.url, &node);
                                match target.connector.connect(&url).await {
                                    Ok(ws) => GameClient::join_on(ws, join).await,
                                    Err(e) => Err(e.into()),
                                }
                            }
                            other => other,
                        };
                        drop(permit);
                        let mut client = match client {
                            Ok(client) => client,
                            Err(e) => return failed(e.to_string()),
                        };
                        let mut stats = BotStats::new();
                        let mut backoff =
                            volley_client::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
                        loop {
                            let dropped = bot(&mut client, &mut stats, period, window_start, window_end).await;
                            if !dropped || Instant::now() >= window_end {
                                break;
                            }
                            let moved = client.moved_to().is_some();
                            match client.rejoin(&target.connector, &target.url, &mut backoff, 5).await {
                                Ok(back) => {
                                    stats.reconnects += 1;
                                    stats.migrations += u64::from(moved);
                                    stats.seats_lost += u64::from(!back.welcome.resumed);
                                    stats.pause_from = stats.last_snapshot;
                                    client = back;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "bot could not come back");
                                    stats.errors += 1;
                                    stats.seats_lost += 1;
                                    break;
                                }
                            }
                        }
                        let _ = client.close().await;
                        stats
                    }
                    // Streams of shared HTTP/2 or HTTP/3 connections.
                    Some(shared) => {
                        let ws = shared.websocket(n).await;
                        play(ws, join, permit, failed, period, window_start, window_end).await
                    }
                }
            });
        }
        tokio::time::sleep_until(window_start).await;
        let before = metrics.scrape().await?;
        let cpu_before = target.server_pid.and_then(crate::sys::pid_cpu_time);
        tokio::time::sleep_until(window_end).await;
        // The node may be gone by now (a drain under the bench): the bots'
        // figures still stand, the server's are then left out.
        let after = match metrics.scrape().await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "the server's /metrics after the window could not be read");
                String::new()
            }
        };
        let cpu_after = target.server_pid.and_then(crate::sys::pid_cpu_time);
        let rss_in_window = target.server_pid.and_then(crate::sys::rss_bytes);
        let mut measured = Measured {
            latency: Some(histogram()),
            elapsed: self.duration,
            ..Measured::default()
        };
        let mut deaths = 0;
        let (mut reconnects, mut migrations, mut seats_lost) = (0, 0, 0);
        let mut longest_pause = Duration::ZERO;
        while let Some(done) = set.join_next().await {
            let stats = done.map_err(|e| Error::Game(format!("bot task: {e}")))?;
            reconnects += stats.reconnects;
            migrations += stats.migrations;
            seats_lost += stats.seats_lost;
            longest_pause = longest_pause.max(stats.longest_pause);
            measured.ops += stats.snapshots;
            measured.bytes += stats.bytes;
            measured.errors += stats.errors;
            deaths += stats.deaths;
            if let Some(h) = measured.latency.as_mut() {
                h.add(&stats.latency).map_err(|e| Error::Game(e.to_string()))?;
            }
        }
        measured.server_cpu = cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b));
        let secs = self.duration.as_secs_f64();
        let bots = self.bots.max(1) as f64;
        let extra = &mut measured.extra;
        extra.insert("snapshots_per_bot_per_s".into(), measured.ops as f64 / bots / secs);
        extra.insert("bytes_per_bot_per_s".into(), measured.bytes as f64 / bots / secs);
        if let Some((before, during)) = rss_before.zip(rss_in_window) {
            extra.insert(
                "server_bytes_per_bot".into(),
                during.saturating_sub(before) as f64 / bots,
            );
        }
        extra.insert("bot_deaths".into(), deaths as f64);
        extra.insert("reconnects".into(), reconnects as f64);
        extra.insert("migrations".into(), migrations as f64);
        extra.insert("seats_lost".into(), seats_lost as f64);
        extra.insert("longest_pause_ms".into(), longest_pause.as_secs_f64() * 1e3);
        for (name, metric) in [
            ("tick", "volley_game_tick_seconds"),
            ("tick_sim", "volley_game_tick_sim_seconds"),
            ("tick_encode", "volley_game_tick_encode_seconds"),
        ] {
            let window = Buckets::delta(&before, &after, metric);
            extra.insert(format!("{name}_count"), window.total());
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                if let Some(v) = window.quantile(q) {
                    extra.insert(format!("{name}_{label}_ms"), v * 1e3);
                }
            }
        }
        for (name, metric) in [
            ("tick_overruns", "volley_game_tick_overruns_total"),
            ("ticks_skipped", "volley_game_ticks_skipped_total"),
            ("server_snapshots_skipped", "volley_game_snapshots_skipped_total"),
        ] {
            extra.insert(name.into(), counter(&after, metric) - counter(&before, metric));
        }
        extra.insert(
            "server_players".into(),
            gauge_sum(&after, "volley_game_players{kind=\"human\"}"),
        );
        extra.insert(
            "server_bots".into(),
            gauge_sum(&after, "volley_game_players{kind=\"bot\"}"),
        );
        Ok(measured)
    }
}

/// Join on an opened WebSocket (or report why not), free the connect
/// slot, and play until the window ends.
async fn play<S, E>(
    ws: Result<volley_net::WebSocket<S>, E>,
    join: Join,
    permit: Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError>,
    failed: impl FnOnce(String) -> BotStats,
    period: Duration,
    window_start: Instant,
    window_end: Instant,
) -> BotStats
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    E: std::fmt::Display,
{
    let client = match ws {
        Ok(ws) => GameClient::join_on(ws, join).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    drop(permit);
    match client {
        Ok(mut client) => {
            let mut stats = BotStats::new();
            if bot(&mut client, &mut stats, period, window_start, window_end).await {
                stats.errors += 1;
            }
            let _ = client.close().await;
            stats
        }
        Err(e) => failed(e),
    }
}

/// One bot: steer toward a wandering point at `period`, acknowledge and
/// read snapshots, respawn when eaten. True when the server closed the
/// connection before the window ended.
async fn bot<S>(
    client: &mut GameClient<S>,
    stats: &mut BotStats,
    period: Duration,
    window_start: Instant,
    window_end: Instant,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut sent: VecDeque<(u32, Instant)> = VecDeque::new();
    let mut last_applied = 0;
    let mut heading = (200i16, 0i16);
    let mut turns = 0u32;
    let mut inputs = tokio::time::interval(period);
    inputs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bytes_at_start = None;
    let mut was_alive = true;
    loop {
        tokio::select! {
            _ = inputs.tick() => {
                let now = Instant::now();
                if now >= window_end {
                    break;
                }
                turns += 1;
                if turns.is_multiple_of(60) {
                    let angle: f32 = rand::rng().random_range(0.0..std::f32::consts::TAU);
                    heading = ((angle.cos() * 200.0) as i16, (angle.sin() * 200.0) as i16);
                }
                match client.input(heading, 0).await {
                    Ok(seq) => {
                        sent.push_back((seq, now));
                        if sent.len() > 512 {
                            sent.pop_front();
                        }
                    }
                    // The server closed (a drain, a moved match): the caller
                    // decides whether to come back.
                    Err(_) => {
                        stats.bytes += client.received_bytes - bytes_at_start.unwrap_or(client.received_bytes);
                        return true;
                    }
                }
            }
            event = client.next() => {
                let now = Instant::now();
                if bytes_at_start.is_none() && now >= window_start {
                    bytes_at_start = Some(client.received_bytes);
                }
                match event {
                    Ok(Some(Event::Snapshot { .. })) => {
                        if let Some(from) = stats.pause_from.take() {
                            stats.longest_pause = stats.longest_pause.max(now - from);
                        }
                        stats.last_snapshot = Some(now);
                        let applied = client.header.input_seq;
                        let in_window = now >= window_start && now < window_end;
                        if in_window {
                            stats.snapshots += 1;
                        }
                        if applied > last_applied {
                            last_applied = applied;
                            while sent.front().is_some_and(|(s, _)| *s < applied) {
                                sent.pop_front();
                            }
                            if let Some((_, at)) = sent.front().filter(|(s, _)| *s == applied) {
                                if in_window {
                                    let _ = stats.latency.record((now - *at).as_micros().max(1) as u64);
                                }
                            }
                        }
                        if was_alive && !client.header.alive {
                            stats.deaths += 1;
                        }
                        if !client.header.alive && client.respawn().await.is_err() {
                            stats.bytes += client.received_bytes - bytes_at_start.unwrap_or(client.received_bytes);
                            return true;
                        }
                        was_alive = client.header.alive;
                    }
                    Ok(Some(Event::Error(code, text))) => {
                        tracing::debug!(?code, text, "server error frame");
                        stats.errors += 1;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        stats.bytes += client.received_bytes - bytes_at_start.unwrap_or(client.received_bytes);
                        return true;
                    }
                }
            }
        }
    }
    stats.bytes += client.received_bytes - bytes_at_start.unwrap_or(client.received_bytes);
    false
}

/// Where the server's `/metrics` is read: the same host and port as the
/// game, over plain HTTP/1.0 for `ws://`, over HTTP/2 for `wss://`.
enum Metrics {
    Plain(String),
    Tls(volley_net::H2Connection),
}

impl Metrics {
    async fn for_target(target: &Target) -> Result<Metrics, Error> {
        let url = volley_wire::handshake::WsUrl::parse(&target.url).map_err(|e| Error::Game(e.to_string()))?;
        let authority = format!("{}:{}", url.host, url.port);
        if !url.secure {
            return Ok(Metrics::Plain(authority));
        }
        let tls = match target.connector.tls_config() {
            Some(tls) => tls,
            None => volley_net::tls::client_config(None).map_err(|e| Error::Game(e.to_string()))?,
        };
        let h2 = volley_net::H2Connection::connect(&authority, &url.host, tls, volley_net::Config::default())
            .await
            .map_err(|e| Error::Game(format!("reading /metrics over HTTP/2: {e}")))?;
        Ok(Metrics::Tls(h2))
    }

    /// GET /metrics.
    async fn scrape(&self) -> Result<String, Error> {
        match self {
            Metrics::Plain(addr) => {
                let mut tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .await?;
                let mut text = String::new();
                tcp.read_to_string(&mut text).await?;
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                Ok(body.to_owned())
            }
            Metrics::Tls(h2) => {
                let (status, body) = h2.get("/metrics").await.map_err(|e| Error::Game(e.to_string()))?;
                if !status.is_success() {
                    return Err(Error::Game(format!("/metrics answered {status}")));
                }
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
        }
    }
}

fn value(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(value)
        .sum()
}

fn gauge_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .filter_map(value)
        .sum()
}

/// A Prometheus histogram's cumulative buckets: (upper bound, count).
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    fn parse(text: &str, metric: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{metric}_bucket{{le=\"");
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (le, _) = rest.split_once('"')?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, value(l)?))
            })
            .collect()
    }

    /// What was recorded between two scrapes.
    fn delta(before: &str, after: &str, metric: &str) -> Buckets {
        let b = Buckets::parse(before, metric);
        let a = Buckets::parse(after, metric);
        Buckets(
            a.iter()
                .map(|&(le, n)| {
                    let earlier = b.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, m)| *m);
                    (le, n - earlier)
                })
                .collect(),
        )
    }

    fn total(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, n)| *n)
    }

    /// The q-quantile, interpolated linearly within its bucket.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.0 {
            if n >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let span = n - lower.1;
                let frac = if span > 0.0 { (rank - lower.1) / span } else { 1.0 };
                return Some(lower.0 + (le - lower.0) * frac);
            }
            lower = (le, n);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_bucket_deltas() {
        let before = "x_bucket{le=\"0.001\"} 10\nx_bucket{le=\"0.002\"} 10\nx_bucket{le=\"+Inf\"} 10\n";
        let after = "x_bucket{le=\"0.001\"} 60\nx_bucket{le=\"0.002\"} 110\nx_bucket{le=\"+Inf\"} 110\n";
        let b = Buckets::delta(before, after, "x");
        assert_eq!(b.total(), 100.0);
        // 50 in (0, 1 ms], 50 in (1, 2 ms].
        assert!((b.quantile(0.5).unwrap_or(0.0) - 0.001).abs() < 1e-9);
        assert!((b.quantile(0.99).unwrap_or(0.0) - 0.00198).abs() < 1e-6);
    }
}
