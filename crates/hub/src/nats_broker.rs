//! The NATS broker: core NATS publish/subscribe between nodes, one broker
//! message per event, subjects `volley.r.{room}` and `volley.u.{user}`.
//!
//! Like Redis pub/sub, core NATS keeps nothing for a disconnected node. The
//! client library reconnects and subscribes again by itself; each
//! reconnection bumps the broker's count, and the node fills what its rooms
//! missed from the store (the store orders, the broker only carries).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broker::{channel, decode_event, encode_event, Broker};
use crate::fanout::{Event, Fanout, Topic};
use crate::Error;

/// Publishes queued for the connection; beyond this they are dropped and
/// counted (the gap fill brings durable ones back).
const QUEUE: usize = 65_536;
/// Publishes handed to the client per wake-up.
const BATCH: usize = 512;

/// The NATS [`Broker`].
pub struct NatsBroker {
    client: async_nats::Client,
    fanout: Arc<Fanout>,
    publishes: mpsc::Sender<(String, bytes::Bytes)>,
    subscriptions: Mutex<HashMap<String, JoinHandle<()>>>,
    connected: Arc<AtomicBool>,
    reconnections: watch::Receiver<u64>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl NatsBroker {
    /// Connect to `url` (`nats://HOST:PORT`) and deliver what arrives into
    /// `fanout`. Fails if the server cannot be reached at start; later
    /// outages are ridden out by the client's reconnection.
    pub async fn connect(url: &str, fanout: Arc<Fanout>) -> Result<NatsBroker, Error> {
        let connected = Arc::new(AtomicBool::new(true));
        let (bump, reconnections) = watch::channel(0u64);
        let events = (connected.clone(), Arc::new(bump));
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| Duration::from_millis((50u64 << attempts.min(6)).min(2_000)))
            .event_callback(move |event| {
                let (connected, bump) = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.store(true, Ordering::Release);
                            // Whatever was published while away is in the store.
                            bump.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected => {
                            connected.store(false, Ordering::Release);
                            metrics::counter!("volley_broker_disconnects_total", "broker" => "nats").increment(1);
                            tracing::warn!("NATS connection lost; reconnecting");
                        }
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            });
        let client = options.connect(url).await.map_err(Error::storage)?;
        let (publishes, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_loop(client.clone(), rx));
        Ok(NatsBroker {
            client,
            fanout,
            publishes,
            subscriptions: Mutex::new(HashMap::new()),
            connected,
            reconnections,
        })
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for NatsBroker {
    fn drop(&mut self) {
        for (_, task) in self.subscriptions().drain() {
            task.abort();
        }
    }
}

async fn publish_loop(client: async_nats::Client, mut rx: mpsc::Receiver<(String, bytes::Bytes)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let started = std::time::Instant::now();
        let count = batch.len() as u64;
        for (subject, payload) in batch.drain(..) {
            if let Err(e) = client.publish(subject, payload).await {
                metrics::counter!("volley_broker_dropped_total", "broker" => "nats").increment(1);
                tracing::debug!(error = %e, "NATS publish failed");
            }
        }
        metrics::counter!("volley_broker_published_total", "broker" => "nats").increment(count);
        metrics::histogram!("volley_broker_publish_seconds", "broker" => "nats")
            .record(started.elapsed().as_secs_f64());
    }
}

impl Broker for NatsBroker {
    fn publish(&self, topic: Topic, event: Event) {
        if self.publishes.try_send((channel(topic), encode_event(&event))).is_err() {
            metrics::counter!("volley_broker_dropped_total", "broker" => "nats").increment(1);
        }
    }

    fn interest(&self, topic: Topic, on: bool) {
        let subject = channel(topic);
        let mut subscriptions = self.subscriptions();
        if !on {
            // Dropping the subscriber unsubscribes.
            if let Some(task) = subscriptions.remove(&subject) {
                task.abort();
            }
            return;
        }
        if subscriptions.contains_key(&subject) {
            return;
        }
        let client = self.client.clone();
        let fanout = self.fanout.clone();
        let name = subject.clone();
        let task = tokio::spawn(async move {
            let mut subscriber = match client.subscribe(name.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(subject = %name, error = %e, "NATS subscribe failed");
                    return;
                }
            };
            while let Some(message) = subscriber.next().await {
                match decode_event(message.payload) {
                    Some(event) => {
                        metrics::counter!("volley_broker_received_total", "broker" => "nats").increment(1);
                        fanout.deliver(topic, event);
                    }
                    None => metrics::counter!("volley_broker_foreign_total", "broker" => "nats").increment(1),
                }
            }
        });
        subscriptions.insert(subject, task);
    }

    fn reconnections(&self) -> Option<watch::Receiver<u64>> {
        Some(self.reconnections.clone())
    }

    fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}
