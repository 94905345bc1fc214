//! What `volley cluster up` brings up, as chosen on its command line.

use std::path::PathBuf;
use std::str::FromStr;

/// The broker that carries messages between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `redis-server`.
    Redis,
    /// `nats-server` (with JetStream).
    Nats,
}

/// Where the nodes keep users, rooms and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// One PostgreSQL the nodes share (what a real deployment runs).
    Postgres,
    /// Each node its own SQLite file: accounts and history are per node.
    Sqlite,
}

/// The proxy in front of the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `volley proxy` (layer 7, `?node=` affinity).
    Volley,
    /// HAProxy with a generated configuration.
    Haproxy,
    /// nginx with a generated configuration.
    Nginx,
}

macro_rules! parse_enum {
    ($t:ty, $what:literal, $($name:literal => $v:path),+) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<$t, String> {
                match s {
                    $($name => Ok($v),)+
                    other => Err(format!(concat!("unknown ", $what, " {:?}: one of ") , other) + &[$($name),+].join(", ")),
                }
            }
        }
        impl $t {
            /// The name used on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $($v => $name,)+
                }
            }
        }
    };
}

parse_enum!(BrokerKind, "broker", "redis" => BrokerKind::Redis, "nats" => BrokerKind::Nats);
parse_enum!(StoreKind, "store", "postgres" => StoreKind::Postgres, "sqlite" => StoreKind::Sqlite);
parse_enum!(ProxyKind, "proxy", "volley" => ProxyKind::Volley, "haproxy" => ProxyKind::Haproxy, "nginx" => ProxyKind::Nginx);

/// A cluster to bring up.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `volley serve` nodes, named n1, n2, ...
    pub nodes: usize,
    /// The broker between them.
    pub broker: BrokerKind,
    /// Their store.
    pub store: StoreKind,
    /// The proxy in front.
    pub proxy: ProxyKind,
    /// Where data, logs and the state file go.
    pub dir: PathBuf,
    /// The `volley` binary the nodes and `volley proxy` run (this one).
    pub volley: PathBuf,
    /// How often each game match is checkpointed to another node.
    pub checkpoint_secs: u64,
    /// Print every service's log lines, prefixed with its name.
    pub stream_logs: bool,
}

impl Spec {
    /// The directory `up` uses when none is given, the same for every
    /// terminal: `$TMPDIR/volley-cluster`.
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join("volley-cluster")
    }
}
