//! `idle`: N open connections doing nothing; the server's memory per
//! connection, read from its RSS before and after.

use std::collections::BTreeMap;
use std::time::Duration;

use volley_net::CloseCode;

use crate::report::ServerMemory;
use crate::transport::Opened;
use crate::{sys, Error, Measured, Scenario, Target};

/// The idle scenario.
#[derive(Debug, Clone)]
pub struct Idle {
    /// Connections to hold open.
    pub connections: usize,
    /// Wait after the last connection opened, before reading memory.
    pub settle: Duration,
}

impl Scenario for Idle {
    fn name(&self) -> &'static str {
        "idle"
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("connections".into(), self.connections.to_string())])
    }

    fn unit(&self) -> &'static str {
        "connections"
    }

    fn expected_duration(&self) -> Duration {
        self.settle + Duration::from_secs(2)
    }

    async fn run(&self, target: &Target) -> Result<Measured, Error> {
        let before = target.server_pid.and_then(sys::rss_bytes);
        let started = tokio::time::Instant::now();
        let opened = crate::transport::open(target, self.connections, 256).await?;
        let elapsed = started.elapsed();
        tokio::time::sleep(self.settle).await;
        let after = target.server_pid.and_then(sys::rss_bytes);
        let n = opened.len() as u64;
        let server_memory = before.zip(after).map(|(b, a)| ServerMemory {
            rss_before: b,
            rss_after: a,
            connections: n,
            bytes_per_connection: a.saturating_sub(b) as f64 / n.max(1) as f64,
        });
        let errors = self.connections as u64 - n;
        // Close politely, all at once, each bounded.
        let mut closing = tokio::task::JoinSet::new();
        match opened {
            Opened::Sockets(sockets) => {
                for mut ws in sockets {
                    closing.spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(CloseCode::NORMAL, "")).await;
                    });
                }
            }
            Opened::Streams(streams) => {
                for mut ws in streams {
                    closing.spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(CloseCode::NORMAL, "")).await;
                    });
                }
            }
        }
        while closing.join_next().await.is_some() {}
        Ok(Measured {
            ops: n,
            bytes: 0,
            errors,
            latency: None,
            elapsed,
            server_memory,
            ..Measured::default()
        })
    }
}
