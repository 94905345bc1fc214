//! The proxy's settings: a TOML file (`volley proxy --config FILE`, checked
//! by `volley proxy check FILE`) or the quick flags for the common case.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which layer the proxy works at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Layer 4: bytes spliced between client and backend.
    Tcp,
    /// Layer 7: HTTP and WebSockets understood; TLS ended here; HTTP/1.1,
    /// HTTP/2 and HTTP/3 from clients, HTTP/1.1 to the backends.
    #[default]
    Http,
}

/// How a backend is chosen for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// The healthy backend with the fewest open connections.
    LeastConn,
    /// A consistent hash of the client's address: the same client reaches
    /// the same backend while it is healthy, and a backend leaving moves
    /// only its own clients.
    Hash,
}

/// How a backend's health is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    /// A TCP connection opens.
    Tcp,
    /// `GET /healthz` over HTTP/1.1 answers 2xx.
    #[default]
    Http,
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// What is checked.
    pub kind: HealthKind,
    /// The path of an HTTP check.
    pub path: String,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
    /// A check that takes longer fails, in milliseconds.
    pub timeout_ms: u64,
    /// Failed checks (or failed connections) in a row that take a backend out.
    pub fall: u32,
    /// Passed checks in a row that bring it back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            kind: HealthKind::Http,
            path: "/healthz".into(),
            interval_ms: 1000,
            timeout_ms: 1000,
            fall: 2,
            rise: 2,
        }
    }
}

impl HealthConfig {
    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A certificate for one SNI name (layer 7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    /// The server name clients ask for.
    pub name: String,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A layer-7 route: requests that match every condition given go to its
/// backends (or the top-level ones), with its affinity (or the top-level
/// one). Routes are tried in order; a request no route takes goes to the
/// top-level backends.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for logs and metrics.
    pub name: Option<String>,
    /// The `Host` (or `:authority`) without its port, exactly (ASCII case
    /// ignored); in layer 4, the SNI name of the client's TLS hello (TLS
    /// passes through to the route's backends).
    pub host: Option<String>,
    /// The path starts with this.
    pub path_prefix: Option<String>,
    /// `name` (the header is present) or `name: value` (it has this value).
    pub header: Option<String>,
    /// Its backends, `host:port` each; empty: the top-level ones.
    pub backends: Vec<String>,
    /// Its affinity SPEC (see [`ProxyConfig::affinity`]).
    pub affinity: Option<String>,
}

/// Everything `volley proxy` needs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The backends, `host:port` each.
    pub backends: Vec<String>,
    /// Layer 4 or layer 7.
    pub mode: Mode,
    /// How a backend is chosen.
    pub balance: Balance,
    /// Send a PROXY protocol v2 header to the backends first (they must
    /// expect it: `volley serve --proxy-protocol`).
    pub proxy_protocol: bool,
    /// Connecting to a backend takes at most this, in milliseconds; then the
    /// next healthy backend is tried.
    pub connect_timeout_ms: u64,
    /// Backends tried for one client before it is turned away.
    pub connect_attempts: u32,
    /// Layer 4: open client connections at most (new ones wait in the
    /// kernel's queue). Layer 7: WebSockets and requests in flight at most
    /// (beyond: 429).
    pub max_connections: usize,
    /// A connection with no byte either way for this long is closed, in
    /// milliseconds (volley pings a silent WebSocket every 30 s, so a live
    /// one never idles this long).
    pub idle_timeout_ms: u64,
    /// Once one side has finished, the other gets this long to finish too,
    /// in milliseconds (a WebSocket's closing handshake), then both close.
    pub fin_timeout_ms: u64,
    /// Serve `GET /metrics` (Prometheus) on this address: backend health,
    /// open connections, bytes, refusals. Keep it off public interfaces.
    pub admin: Option<SocketAddr>,
    /// Health checks.
    pub health: HealthConfig,
    /// Layer 7: keep a key's connections on one backend, the key taken from
    /// `query:NAME`, `path:N` (the Nth path segment, from 1), `header:NAME`
    /// or `cookie:NAME` (a room id, a match id). Requests without the key
    /// are balanced as usual.
    pub affinity: Option<String>,
    /// Bounded loads: a new key is not placed on a backend already above
    /// (1 + this) times the mean load; it goes to the next on the ring.
    pub affinity_epsilon: f64,
    /// Layer 7: end TLS with this PEM certificate chain (and `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Layer 7: end TLS with a self-signed certificate (development only).
    pub self_signed: bool,
    /// Certificates for particular SNI names; others get `tls_cert`.
    pub sni: Vec<SniCert>,
    /// With TLS, also serve HTTP/3 on the listen port over UDP.
    pub http3: bool,
    /// Layer 7 routes, tried in order.
    pub routes: Vec<RouteConfig>,
    /// Draining closes at most this many live connections per second (each
    /// WebSocket with close code 1012), so clients do not reconnect at once.
    pub drain_rate: u32,
    /// The close reason tells each client to come back within a random
    /// delay up to this, in milliseconds, spreading reconnects further.
    pub drain_reconnect_ms: u64,
    /// Layer 7: open connections per client address, and WebSockets and
    /// requests in flight per client address (HTTP/2 and HTTP/3 carry many
    /// on one connection); IPv6 per /64; beyond, 429. 0: no limit.
    pub max_connections_per_ip: u32,
    /// Layer 7: WebSocket handshakes per second per client address (bursts
    /// of twice this); beyond, 429. 0: no limit.
    pub handshake_rate: u32,
    /// Layer 7: a request head must arrive within this, and a backend must
    /// answer a handshake within this, in milliseconds (408 or 504 after).
    pub handshake_timeout_ms: u64,
    /// Layer 7: largest request head in bytes (431 beyond).
    pub max_head_bytes: usize,
    /// Log one line per proxied WebSocket at its end (target
    /// `volley_proxy::access`): client, backend, duration, bytes, close codes.
    pub access_log: bool,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            backends: Vec::new(),
            mode: Mode::Http,
            balance: Balance::RoundRobin,
            proxy_protocol: false,
            connect_timeout_ms: 2000,
            connect_attempts: 3,
            max_connections: 10_000,
            idle_timeout_ms: 300_000,
            fin_timeout_ms: 10_000,
            admin: None,
            health: HealthConfig::default(),
            affinity: None,
            affinity_epsilon: 0.25,
            tls_cert: None,
            tls_key: None,
            self_signed: false,
            sni: Vec::new(),
            http3: true,
            routes: Vec::new(),
            drain_rate: 100,
            drain_reconnect_ms: 5000,
            max_connections_per_ip: 256,
            handshake_rate: 50,
            handshake_timeout_ms: 10_000,
            max_head_bytes: 16 * 1024,
            access_log: true,
        }
    }
}

impl ProxyConfig {
    /// Read a TOML file's text.
    pub fn from_toml(text: &str) -> Result<ProxyConfig, Error> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// The settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Check every setting, naming the key at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("{key}: {why}")));
        let routed = !self.routes.is_empty() && self.routes.iter().all(|r| !r.backends.is_empty());
        if self.backends.is_empty() && !routed {
            return bad("backends", "at least one backend (host:port)".into());
        }
        let mut names = std::collections::HashMap::new();
        for backend in self.backends.iter().chain(self.routes.iter().flat_map(|r| &r.backends)) {
            let (name, addr) = split_name(backend);
            if let Some(name) = name {
                // One name, one address (a route may list the same backend again).
                if names.insert(name, addr).is_some_and(|other| other != addr) {
                    return bad("backends", format!("the name {name} is given to two addresses"));
                }
            }
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
            let named_ok = name.is_none_or(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
            if !ok || !named_ok {
                return bad(
                    "backends",
                    format!("{backend} is not host:port or NAME=host:port (NAME: letters, digits, - _ .)"),
                );
            }
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "at least 1".into());
        }
        if self.connect_attempts == 0 {
            return bad("connect_attempts", "at least 1".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections", "at least 1".into());
        }
        if self.idle_timeout_ms < 1000 {
            return bad("idle_timeout_ms", "at least 1000".into());
        }
        if self.fin_timeout_ms == 0 {
            return bad("fin_timeout_ms", "at least 1".into());
        }
        let h = &self.health;
        if h.interval_ms < 50 || h.timeout_ms == 0 || h.fall == 0 || h.rise == 0 {
            return bad(
                "health",
                "interval_ms at least 50, timeout_ms, fall and rise at least 1".into(),
            );
        }
        if h.kind == HealthKind::Http && !h.path.starts_with('/') {
            return bad("health.path", format!("{} must start with /", h.path));
        }
        if let Some(spec) = &self.affinity {
            if let Err(e) = crate::affinity::Affinity::parse(spec) {
                return bad("affinity", e);
            }
        }
        if !(0.0..=100.0).contains(&self.affinity_epsilon) {
            return bad("affinity_epsilon", "between 0 and 100".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert", "tls_cert and tls_key go together".into());
        }
        if self.self_signed && self.tls_cert.is_some() {
            return bad("self_signed", "either self_signed or tls_cert, not both".into());
        }
        if !self.sni.is_empty() && !self.tls() {
            return bad("sni", "needs tls_cert/tls_key (the default certificate)".into());
        }
        if self.mode == Mode::Tcp && (self.tls() || self.affinity.is_some()) {
            return bad("mode", "tls and affinity are layer 7 (mode = \"http\")".into());
        }
        if self.mode == Mode::Tcp {
            // Layer 4 routes TLS passthrough by SNI: a host and backends only.
            for (i, route) in self.routes.iter().enumerate() {
                if route.host.is_none()
                    || route.path_prefix.is_some()
                    || route.header.is_some()
                    || route.affinity.is_some()
                {
                    return bad(
                        &format!("routes[{i}]"),
                        "in mode = \"tcp\" a route is a host (the TLS SNI name) and its backends".into(),
                    );
                }
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if let Some(prefix) = &route.path_prefix {
                if !prefix.starts_with('/') {
                    return bad(&key, format!("path_prefix {prefix} must start with /"));
                }
            }
            if let Some(header) = &route.header {
                let name = header.split_once(':').map_or(header.as_str(), |(n, _)| n).trim();
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return bad(&key, format!("header {header}: not a header name"));
                }
            }
            if let Some(spec) = &route.affinity {
                if let Err(e) = crate::affinity::Affinity::parse(spec) {
                    return bad(&key, e);
                }
            }
        }
        if self.drain_rate == 0 {
            return bad("drain_rate", "at least 1 per second".into());
        }
        if self.handshake_timeout_ms < 100 {
            return bad("handshake_timeout_ms", "at least 100".into());
        }
        if self.max_head_bytes < 1024 {
            return bad("max_head_bytes", "at least 1024".into());
        }
        Ok(())
    }

    /// Whether layer 7 ends TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() || self.self_signed
    }

    /// Every backend named anywhere, once each, in order of appearance.
    pub fn all_backends(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for b in self.backends.iter().chain(self.routes.iter().flat_map(|r| &r.backends)) {
            if !all.contains(b) {
                all.push(b.clone());
            }
        }
        all
    }

    /// The handshake timeout as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// The half-close timeout as a duration.
    pub fn fin_timeout(&self) -> Duration {
        Duration::from_millis(self.fin_timeout_ms)
    }

    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// `NAME=host:port` into its name and address; a plain `host:port` has no name.
pub(crate) fn split_name(spec: &str) -> (Option<&str>, &str) {
    match spec.split_once('=') {
        Some((name, addr)) => (Some(name), addr),
        None => (None, spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_bad_values_name_their_key() {
        let text = r#"
listen = "127.0.0.1:9000"
backends = ["127.0.0.1:8081", "node2.internal:8080"]
mode = "tcp"
balance = "least-conn"
proxy_protocol = true
[health]
kind = "tcp"
interval_ms = 200
"#;
        let config = ProxyConfig::from_toml(text).unwrap();
        assert_eq!(config.mode, Mode::Tcp);
        assert_eq!(config.balance, Balance::LeastConn);
        assert_eq!(config.health.kind, HealthKind::Tcp);
        assert_eq!(config.health.rise, 2, "defaults fill the rest");
        config.validate().unwrap();
        assert_eq!(ProxyConfig::from_toml(&config.to_toml()).unwrap(), config);

        let mut broken = config.clone();
        broken.backends = vec!["nohost".into()];
        assert!(broken.validate().unwrap_err().to_string().contains("backends"));
        assert!(ProxyConfig::from_toml("listen = \"x\"").is_err());
        assert!(ProxyConfig::from_toml("unknown_key = 1").is_err());
    }
}
