//! `echo`: C connections each keep K messages of S bytes in flight against an
//! echo server; round trips, throughput and round-trip latency.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio::time::Instant;
use volley_net::{CloseCode, Message};

use crate::transport::Opened;
use crate::{histogram, Error, Measured, Scenario, Target};

/// The echo scenario.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Connections.
    pub connections: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub in_flight: usize,
    /// Measured window.
    pub duration: Duration,
    /// Unmeasured run-up.
    pub warmup: Duration,
    /// Text instead of binary messages.
    pub text: bool,
}

impl Scenario for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("connections".into(), self.connections.to_string()),
            ("size".into(), self.size.to_string()),
            ("in_flight".into(), self.in_flight.to_string()),
            ("duration_s".into(), self.duration.as_secs_f64().to_string()),
            ("type".into(), if self.text { "text" } else { "binary" }.into()),
        ])
    }

    fn unit(&self) -> &'static str {
        "round trips"
    }

    fn expected_duration(&self) -> Duration {
        self.warmup + self.duration
    }

    async fn run(&self, target: &Target) -> Result<Measured, Error> {
        let payload = Bytes::from(vec![b'x'; self.size]);
        let message = if self.text {
            Message::Text(String::from_utf8_lossy(&payload).into_owned().into())
        } else {
            Message::Binary(payload.clone())
        };
        let (mut sockets, mut streams) = (Vec::new(), Vec::new());
        match crate::transport::open(target, self.connections, 128).await? {
            Opened::Sockets(s) => sockets = s,
            Opened::Streams(s) => streams = s,
        }
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let deadline = measure_from + self.duration;
        let mut tasks = JoinSet::new();
        for ws in streams {
            // Streams of HTTP/2 or HTTP/3 connections: the full client.
            tasks.spawn(full(ws, message.clone(), self.in_flight.max(1), measure_from, deadline));
        }
        let (raw_frame, echo_header) = crate::raw::frames(self.size);
        for ws in sockets {
            let message = message.clone();
            let in_flight = self.in_flight.max(1);
            if !ws.deflate_enabled() && !self.text {
                // Fixed-size binary echoes: the cheap raw client (see raw.rs).
                let (frame, header, size) = (raw_frame.clone(), echo_header.clone(), self.size);
                tasks.spawn(async move {
                    let o = crate::raw::run(ws, frame, header, size, in_flight, measure_from, deadline).await;
                    (o.hist, o.ops, o.bytes, o.errors)
                });
                continue;
            }
            // Compressed or text: the full client, which decodes every echo.
            tasks.spawn(full(ws, message, in_flight, measure_from, deadline));
        }
        // The server's CPU time over exactly the measured window: its cost per
        // round trip, which holds even when the generator is the limit.
        let server_cpu = target.server_pid.map(|pid| {
            tokio::spawn(async move {
                tokio::time::sleep_until(measure_from).await;
                let before = crate::sys::pid_cpu_time(pid);
                tokio::time::sleep_until(deadline).await;
                crate::sys::pid_cpu_time(pid)
                    .zip(before)
                    .map(|(a, b)| a.saturating_sub(b))
            })
        });
        let mut total = Measured {
            latency: Some(histogram()),
            ..Measured::default()
        };
        while let Some(joined) = tasks.join_next().await {
            let Ok((hist, ops, bytes, errors)) = joined else {
                total.errors += 1;
                continue;
            };
            if let Some(h) = total.latency.as_mut() {
                let _ = h.add(&hist);
            }
            total.ops += ops;
            total.bytes += bytes;
            total.errors += errors;
        }
        total.elapsed = self.duration;
        if let Some(task) = server_cpu {
            total.server_cpu = task.await.ok().flatten();
        }
        Ok(total)
    }
}

/// One connection of the full client: keep `in_flight` messages out,
/// decode every echo, time the round trips inside the window.
async fn full<S>(
    mut ws: volley_net::WebSocket<S>,
    message: Message,
    in_flight: usize,
    measure_from: Instant,
    deadline: Instant,
) -> (hdrhistogram::Histogram<u64>, u64, u64, u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut hist = histogram();
    let (mut ops, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut sent_at = VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        if ws.feed(message.clone()).await.is_err() {
            return (hist, 0, 0, 1);
        }
        sent_at.push_back(Instant::now());
    }
    loop {
        match ws.recv().await {
            Ok(Some(echo)) => {
                let now = Instant::now();
                let sent = sent_at.pop_front().unwrap_or(now);
                if now >= measure_from && now < deadline {
                    let _ = hist.record((now - sent).as_micros().max(1) as u64);
                    ops += 1;
                    bytes += echo.len() as u64;
                }
                if now >= deadline {
                    break;
                }
                // Queued, not flushed: `recv` writes it out with
                // any other replies before it waits for input.
                if ws.feed(message.clone()).await.is_err() {
                    errors += 1;
                    break;
                }
                sent_at.push_back(now);
            }
            Ok(None) | Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(CloseCode::NORMAL, "")).await;
    (hist, ops, bytes, errors)
}
