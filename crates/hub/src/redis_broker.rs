//! The Redis broker: Redis PUBLISH/SUBSCRIBE between nodes, one broker
//! message per event (never per member), topics sharded over several Redis
//! servers by consistent hashing.
//!
//! Redis pub/sub keeps nothing: a node that is disconnected misses what was
//! published meanwhile. That is allowed here because the store orders and
//! the broker only carries: after every reconnection the broker bumps its
//! reconnection count, and the node fills whatever its rooms missed from the
//! store (see `Hub`). While a shard is down, publishes to it are dropped and
//! counted; the messages are durable already, and reach readers through the
//! gap fill once the shard is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::broker::{channel, decode_event, encode_event, shard_of, topic_of, Broker};
use crate::fanout::{Event, Fanout, Topic};
use crate::Error;

/// Publishes and interest changes queued for one shard's connection task;
/// beyond this, publishes are dropped (and counted) rather than buffered.
const QUEUE: usize = 65_536;
/// Publishes sent to Redis in one pipeline.
const BATCH: usize = 512;
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        Error::storage(e)
    }
}

enum Command {
    Publish(String, bytes::Bytes),
    Interest(String, bool),
}

struct Shard {
    commands: mpsc::Sender<Command>,
    connected: Arc<AtomicBool>,
}

/// The Redis [`Broker`]; one connection pair (publish, subscribe) per shard.
pub struct RedisBroker {
    shards: Vec<Shard>,
    reconnections: watch::Receiver<u64>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("shards", &self.shards.len())
            .field("connected", &self.connected())
            .finish()
    }
}

impl RedisBroker {
    /// Connect to every shard (`redis://HOST:PORT` each) and deliver what
    /// arrives into `fanout`. Fails if a URL is invalid or a shard cannot be
    /// reached at start; later outages are ridden out with reconnection.
    pub async fn connect(urls: &[String], fanout: Arc<Fanout>) -> Result<RedisBroker, Error> {
        if urls.is_empty() {
            return Err(Error::storage("no Redis URL given"));
        }
        let (bump, reconnections) = watch::channel(0u64);
        let bump = Arc::new(bump);
        let mut shards = Vec::new();
        for url in urls {
            let client = redis::Client::open(url.as_str())?;
            // Fail fast on a wrong address rather than retrying forever.
            let first = Link::open(&client).await?;
            let (tx, rx) = mpsc::channel(QUEUE);
            let connected = Arc::new(AtomicBool::new(true));
            let task = ShardTask {
                url: url.clone(),
                client,
                commands: rx,
                fanout: fanout.clone(),
                interested: HashSet::new(),
                connected: connected.clone(),
                reconnections: bump.clone(),
            };
            tokio::spawn(task.run(first));
            shards.push(Shard {
                commands: tx,
                connected,
            });
        }
        Ok(RedisBroker { shards, reconnections })
    }

    fn shard(&self, topic: Topic) -> &Shard {
        &self.shards[shard_of(topic, self.shards.len())]
    }
}

impl Broker for RedisBroker {
    fn publish(&self, topic: Topic, event: Event) {
        let command = Command::Publish(channel(topic), encode_event(&event));
        if self.shard(topic).commands.try_send(command).is_err() {
            metrics::counter!("volley_broker_dropped_total", "broker" => "redis").increment(1);
        }
    }

    fn interest(&self, topic: Topic, on: bool) {
        // Interest must not be lost: a full queue means Redis is far behind;
        // the send finishes in the background.
        let command = Command::Interest(channel(topic), on);
        let commands = self.shard(topic).commands.clone();
        if let Err(mpsc::error::TrySendError::Full(command)) = commands.try_send(command) {
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }

    fn reconnections(&self) -> Option<watch::Receiver<u64>> {
        Some(self.reconnections.clone())
    }

    fn connected(&self) -> bool {
        self.shards.iter().all(|s| s.connected.load(Ordering::Acquire))
    }
}

/// One shard's two connections: commands and subscriptions.
struct Link {
    publish: redis::aio::MultiplexedConnection,
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
}

impl Link {
    async fn open(client: &redis::Client) -> Result<Link, Error> {
        let connect = async {
            let publish = client.get_multiplexed_async_connection().await?;
            let (sink, stream) = client.get_async_pubsub().await?.split();
            Ok::<_, Error>(Link { publish, sink, stream })
        };
        tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| Error::storage("Redis connection timed out"))?
    }
}

struct ShardTask {
    url: String,
    client: redis::Client,
    commands: mpsc::Receiver<Command>,
    fanout: Arc<Fanout>,
    /// Channels this node needs, to subscribe again after a reconnection.
    interested: HashSet<String>,
    connected: Arc<AtomicBool>,
    reconnections: Arc<watch::Sender<u64>>,
}

impl ShardTask {
    async fn run(mut self, first: Link) {
        let mut link = Some(first);
        let mut backoff = BACKOFF_MIN;
        loop {
            let current = match link.take() {
                Some(l) => l,
                None => match Link::open(&self.client).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(url = %self.url, error = %e, ?backoff, "Redis unreachable; retrying");
                        if !self.wait(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            match self.serve(current).await {
                Ok(()) => return, // the broker was dropped
                Err(e) => {
                    self.connected.store(false, Ordering::Release);
                    metrics::counter!("volley_broker_disconnects_total", "broker" => "redis").increment(1);
                    tracing::warn!(url = %self.url, error = %e, "Redis connection lost; reconnecting");
                    backoff = BACKOFF_MIN;
                }
            }
        }
    }

    /// Wait out a backoff while keeping the interest set current (publishes
    /// meanwhile are dropped: the gap fill brings them). False once the
    /// broker is gone.
    async fn wait(&mut self, pause: Duration) -> bool {
        let deadline = tokio::time::sleep(pause);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::Interest(ch, on)) => self.note_interest(ch, on),
                    Some(Command::Publish(..)) => {
                        metrics::counter!("volley_broker_dropped_total", "broker" => "redis").increment(1);
                    }
                },
            }
        }
    }

    fn note_interest(&mut self, channel: String, on: bool) {
        if on {
            self.interested.insert(channel);
        } else {
            self.interested.remove(&channel);
        }
    }

    /// Run one connection until it fails (`Err`) or the broker is dropped.
    async fn serve(&mut self, mut link: Link) -> Result<(), Error> {
        let channels: Vec<&String> = self.interested.iter().collect();
        if !channels.is_empty() {
            link.sink.subscribe(channels).await?;
        }
        self.connected.store(true, Ordering::Release);
        // Whatever was published while we were away is in the store.
        self.reconnections.send_modify(|n| *n += 1);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                got = self.commands.recv_many(&mut batch, BATCH) => {
                    if got == 0 {
                        return Ok(());
                    }
                    self.send(&mut link, &mut batch).await?;
                }
                message = link.stream.next() => {
                    let Some(message) = message else {
                        return Err(Error::storage("Redis subscription closed"));
                    };
                    self.receive(&message);
                }
            }
        }
    }

    async fn send(&mut self, link: &mut Link, batch: &mut Vec<Command>) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        let mut publishes = 0u64;
        for command in batch.drain(..) {
            match command {
                Command::Publish(channel, payload) => {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload.as_ref()).ignore();
                    publishes += 1;
                }
                Command::Interest(channel, on) => {
                    if on {
                        link.sink.subscribe(&channel).await?;
                    } else {
                        link.sink.unsubscribe(&channel).await?;
                    }
                    self.note_interest(channel, on);
                }
            }
        }
        if publishes > 0 {
            let started = std::time::Instant::now();
            pipe.query_async::<()>(&mut link.publish).await?;
            metrics::counter!("volley_broker_published_total", "broker" => "redis").increment(publishes);
            metrics::histogram!("volley_broker_publish_seconds", "broker" => "redis")
                .record(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn receive(&self, message: &redis::Msg) {
        let topic = topic_of(message.get_channel_name());
        let event = decode_event(bytes::Bytes::copy_from_slice(message.get_payload_bytes()));
        match (topic, event) {
            (Some(topic), Some(event)) => {
                metrics::counter!("volley_broker_received_total", "broker" => "redis").increment(1);
                self.fanout.deliver(topic, event);
            }
            _ => {
                metrics::counter!("volley_broker_foreign_total", "broker" => "redis").increment(1);
            }
        }
    }
}
