//! The proxy's settings: a TOML file (`volley proxy --config FILE`, checked
//! by `volley proxy check FILE`) or the quick flags for the common case.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which layer the proxy works at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Layer 4: bytes spliced between client and backend.
    Tcp,
    /// Layer 7: HTTP and WebSockets understood (not built yet).
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

/// Everything `volley proxy` needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    /// Open client connections at most (new ones wait in the kernel's queue).
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
        if self.backends.is_empty() {
            return bad("backends", "at least one backend (host:port)".into());
        }
        for backend in &self.backends {
            let ok = backend
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
            if !ok {
                return bad("backends", format!("{backend} is not host:port"));
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
        Ok(())
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
