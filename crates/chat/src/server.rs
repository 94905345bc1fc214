//! Start-up and shutdown of `volley serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use volley_hub::{Broker, Fanout, Hub, MemoryBroker, NatsBroker, PgStore, RedisBroker, SqliteStore, Store};
use volley_net::{Acceptor, DeflateConfig};

use crate::config::{BrokerUrl, ChatConfig, StoreUrl};
use crate::http::{router, App, Sessions};
use crate::service::Chat;
use crate::Error;

/// The process-wide Prometheus recorder (metrics has one global recorder).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Tick times need finer buckets than request latencies: the
            // game budget is 33 ms and its target 10 ms.
            let tick_buckets = [
                0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.007,
                0.008, 0.009, 0.010, 0.012, 0.015, 0.020, 0.025, 0.033, 0.050, 0.100, 0.250,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Prefix("volley_game_tick".into()),
                    &tick_buckets,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                        &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // A recorder installed by the embedding program wins; ours then renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Read the certificate files again on every SIGHUP (a renewed
/// certificate, without dropping a connection).
async fn reload_on_hangup(pair: Arc<volley_net::tls::Reloadable>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: certificates will not be reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        match pair.reload() {
            Ok(()) => tracing::info!("SIGHUP: certificate reloaded; new connections use it"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: certificate not reloaded; still serving the previous one"),
        }
    }
}

/// Name a start-up connection failure by what was being reached.
fn connecting(what: &'static str) -> impl FnOnce(volley_hub::Error) -> Error {
    move |source| Error::Connect { what, source }
}

/// A bound, not yet serving chat server.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificate files, read again on SIGHUP.
    reload: Option<Arc<volley_net::tls::Reloadable>>,
    app: Arc<App>,
    shutdown_tx: watch::Sender<bool>,
    grace: Duration,
    extra: Option<axum::Router>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Server {
    /// Check the settings, then open the store in the data directory and
    /// bind the address: a bad setting touches neither disk nor port.
    pub async fn bind(mut config: ChatConfig) -> Result<Server, Error> {
        config.validate()?;
        let store: Arc<dyn Store> = match config.store.clone() {
            None => Arc::new(SqliteStore::open(&config.data_dir, config.sqlite_sync)?),
            Some(StoreUrl::Sqlite(dir)) => {
                config.data_dir = dir;
                Arc::new(SqliteStore::open(&config.data_dir, config.sqlite_sync)?)
            }
            Some(StoreUrl::Postgres(url)) => {
                let store = PgStore::connect(&url)
                    .await
                    .map_err(connecting("the PostgreSQL store"))?;
                if config.token_secret.is_none() {
                    // Every node signs and checks tokens with the same
                    // secret: the first node to start chooses it.
                    let proposed: String = (0..48)
                        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
                        .collect();
                    config.token_secret = Some(store.shared_setting("token_secret", &proposed).await?);
                }
                Arc::new(store)
            }
        };
        let fanout = Arc::new(Fanout::new());
        let broker: Arc<dyn Broker> = match &config.broker {
            BrokerUrl::Memory => Arc::new(MemoryBroker::new(fanout.clone())),
            BrokerUrl::Redis(urls) => Arc::new(
                RedisBroker::connect(urls, fanout.clone())
                    .await
                    .map_err(connecting("the Redis broker"))?,
            ),
            BrokerUrl::Nats(url) => Arc::new(
                NatsBroker::connect(url, fanout.clone())
                    .await
                    .map_err(connecting("the NATS broker"))?,
            ),
        };
        let hub = Hub::new(store, broker, fanout);
        // Certificates are read before the port is taken: a bad path fails
        // the start with nothing bound.
        let mut reload = None;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let pair = volley_net::tls::Reloadable::load(cert, key)?;
                let tls = pair.server_config()?;
                reload = Some(pair);
                Some(tls)
            }
            _ if config.self_signed => {
                let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
                let (tls, pem) = volley_net::tls::self_signed(&names)?;
                std::fs::write(&config.self_signed_cert_out, pem)?;
                tracing::info!(cert = %config.self_signed_cert_out.display(), "self-signed certificate written; trust it in clients");
                Some(tls)
            }
            _ => None,
        };
        let listener = volley_net::front::bind(config.addr)?;
        let mut server = Server::assemble(hub, config, listener)?;
        server.tls = tls;
        server.reload = reload;
        if let Some(addr) = server.app.chat.config.metrics_addr {
            server.metrics_listener = Some(volley_net::front::bind(addr)?);
        }
        Ok(server)
    }

    /// A server over any hub (other stores and brokers) on a bound listener.
    pub fn with_hub(hub: Hub, config: ChatConfig, listener: TcpListener) -> Result<Server, Error> {
        config.validate()?;
        Server::assemble(hub, config, listener)
    }

    /// The server around settings already validated.
    fn assemble(hub: Hub, mut config: ChatConfig, listener: TcpListener) -> Result<Server, Error> {
        if config.node_id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            config.node_id = format!("{}:{}", host.trim(), listener.local_addr()?.port());
        }
        hub.join_cluster(&config.node_id, Duration::from_millis(config.presence_ttl_ms));
        let _ = metrics_handle(); // the recorder first, so the zeros below land in it
        crate::telemetry::register(match &config.broker {
            BrokerUrl::Memory => None,
            BrokerUrl::Redis(_) => Some("redis"),
            BrokerUrl::Nats(_) => Some("nats"),
        });
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let mut transport = volley_net::Config::default();
        transport.protocol.max_frame_size = config.max_frame_bytes;
        transport.protocol.max_message_size = config.max_frame_bytes;
        transport.write_buffer_limit = 256 * 1024;
        let mut acceptor = Acceptor::new(transport);
        if config.deflate {
            // Our compressor resets per message, so one compressed frame is
            // shared by every receiver of a fan-out.
            acceptor = acceptor.deflate(DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            });
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        acceptor = acceptor
            .allow_origins(config.allowed_origins.clone())
            .closing(shutdown.clone());
        let catch_up = Duration::from_millis(config.catch_up_ms);
        let chat = Arc::new(Chat::with_valid(hub, config)?);
        if chat.hub().broker().reconnections().is_some() {
            tokio::spawn(crate::catch_up::run(Arc::downgrade(&chat), catch_up));
        }
        let app = Arc::new(App {
            chat,
            acceptor,
            shutdown,
            sessions: Arc::new(Sessions::default()),
            metrics: metrics_handle(),
        });
        Ok(Server {
            listener,
            metrics_listener: None,
            tls: None,
            reload: None,
            app,
            shutdown_tx,
            grace,
            extra: None,
        })
    }

    /// Serve more routes beside the chat's (the game, for one). They see the
    /// same listener, `/metrics` and shutdown.
    pub fn mount(mut self, routes: axum::Router) -> Server {
        self.extra = Some(match self.extra.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    /// Turns true when shutdown begins: mounted services close their
    /// connections with 1001 on it.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.app.shutdown.clone()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The chat service, for embedding and tests.
    pub fn chat(&self) -> Arc<Chat> {
        self.app.chat.clone()
    }

    /// Serve until `signal` resolves; then stop accepting, close every
    /// WebSocket with 1001 (clients reconnect and resume), wait for them up to
    /// the grace period, and return.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let Server {
            listener,
            metrics_listener,
            tls,
            reload,
            app,
            shutdown_tx,
            grace,
            extra,
        } = self;
        let stop = app.shutdown.clone();
        let mut routes = router(app.clone()).merge(crate::server_api::routes(app.clone()));
        if let Some(extra) = extra {
            routes = routes.merge(extra);
        }
        // Every answer names the node that gave it (the WebSocket handshake
        // included), so a client or a proxy test can tell where it landed.
        let node = http::HeaderValue::from_str(&app.chat.config.node_id)
            .unwrap_or_else(|_| http::HeaderValue::from_static("unnamed"));
        let routes = routes.layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| {
                let node = node.clone();
                async move {
                    response.headers_mut().insert("x-volley-node", node);
                    response
                }
            },
        ));
        let config = &app.chat.config;
        let limits = volley_net::front::FrontLimits {
            head_timeout: Duration::from_millis(config.head_timeout_ms),
            max_head_bytes: config.max_head_bytes,
            max_headers: config.max_headers,
            per_address: config.max_connections_per_ip,
        };
        if let Some(metrics_listener) = metrics_listener {
            let handle = app.metrics.clone();
            let page = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let handle = handle.clone();
                    async move { crate::http::metrics_page(&handle) }
                }),
            );
            let stop = stop.clone();
            tokio::spawn(async move {
                let limits = volley_net::front::FrontLimits::default();
                let plain = volley_net::front::Transport::default();
                if let Err(e) = volley_net::front::serve(metrics_listener, page, limits, plain, stop).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        if let Some(pair) = reload {
            tokio::spawn(reload_on_hangup(pair));
        }
        let proxy_protocol = if config.proxy_protocol {
            volley_net::proxy_protocol::Trusted::parse(&config.trusted_proxies).unwrap_or_default()
        } else {
            volley_net::proxy_protocol::Trusted::default()
        };
        let transport = volley_net::front::Transport {
            tls,
            h2c: config.h2c,
            h3: config.http3,
            proxy_protocol,
        };
        let server = volley_net::front::serve(listener, routes, limits, transport, stop.clone());
        let shutdown_tx = Arc::new(shutdown_tx);
        let trigger = {
            let tx = shutdown_tx.clone();
            tokio::spawn(async move {
                signal.await;
                tracing::info!("shutting down: closing connections with 1001");
                let _ = tx.send(true);
            })
        };
        let served = server.await;
        trigger.abort();
        let _ = shutdown_tx.send(true);
        served?;
        let live = app.sessions.live();
        if live > 0 && tokio::time::timeout(grace, app.sessions.drained()).await.is_err() {
            tracing::warn!(
                left = app.sessions.live(),
                "connections still open after the grace period"
            );
        }
        // Best effort: the others forget this node now instead of after the
        // presence TTL, if the goodbye leaves before the process does.
        app.chat.hub().leave_cluster();
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }
}
