//! `connect`: how fast the server sets up connections (TCP, TLS if the URL
//! says wss://, and the WebSocket handshake), and how long each takes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use volley_net::{CloseCode, MaybeTlsStream, WebSocket};

use crate::{histogram, Error, Measured, Scenario, Target};

/// The connect scenario.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Connection attempts under way at once.
    pub concurrency: usize,
    /// Measured window.
    pub duration: Duration,
}

impl Scenario for Connect {
    fn name(&self) -> &'static str {
        "connect"
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("concurrency".into(), self.concurrency.to_string()),
            ("duration_s".into(), self.duration.as_secs_f64().to_string()),
        ])
    }

    fn unit(&self) -> &'static str {
        "connections"
    }

    fn expected_duration(&self) -> Duration {
        self.duration
    }

    async fn run(&self, target: &Target) -> Result<Measured, Error> {
        target.http1_only("connect")?;
        // Fail fast, with the reason, if the server is not there at all.
        let first = target
            .connector
            .connect(&target.url)
            .await
            .map_err(|source| Error::Connect {
                url: target.url.clone(),
                source,
            })?;
        drop(first);
        let deadline = Instant::now() + self.duration;
        let mut tasks = JoinSet::new();
        for _ in 0..self.concurrency.max(1) {
            let target = target.clone();
            tasks.spawn(async move {
                let mut hist = histogram();
                let (mut ok, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    match target.connector.connect(&target.url).await {
                        Ok(mut ws) => {
                            let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                            ok += 1;
                            let _ = ws.close(CloseCode::NORMAL, "").await;
                        }
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (hist, ok, errors)
            });
        }
        let started = Instant::now();
        let mut total = Measured {
            latency: Some(histogram()),
            ..Measured::default()
        };
        while let Some(joined) = tasks.join_next().await {
            let Ok((hist, ok, errors)) = joined else {
                total.errors += 1;
                continue;
            };
            if let Some(h) = total.latency.as_mut() {
                let _ = h.add(&hist);
            }
            total.ops += ok;
            total.errors += errors;
        }
        total.elapsed = self
            .duration
            .max(started.elapsed().min(self.duration + Duration::from_secs(1)));
        Ok(total)
    }
}

/// Open `n` connections, at most `parallel` handshakes at a time. Fails only
/// if none could be opened; otherwise returns those that were.
pub(crate) async fn open_many(
    target: &Target,
    n: usize,
    parallel: usize,
) -> Result<Vec<WebSocket<MaybeTlsStream>>, Error> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let target = target.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            target.connector.connect(&target.url).await
        });
    }
    let mut sockets = Vec::with_capacity(n);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(ws)) => sockets.push(ws),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    match first_error {
        Some(source) if sockets.is_empty() => Err(Error::Connect {
            url: target.url.clone(),
            source,
        }),
        _ => Ok(sockets),
    }
}
