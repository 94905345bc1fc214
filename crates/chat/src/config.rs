//! Settings of `volley serve`. Every field has a default; a TOML file may set
//! any of them (same names), and flags or `VOLLEY_*` variables override the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use volley_hub::Synchronous;

/// The chat server's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// This node's name in a cluster (`/health`, the `x-volley-node` header,
    /// logs); empty means `HOST:PORT` of the listening address.
    pub node_id: String,
    /// The durable store: unset is SQLite in `data_dir`.
    pub store: Option<StoreUrl>,
    /// What carries events between nodes.
    pub broker: BrokerUrl,
    /// How often each served room is checked against the store for messages
    /// the broker lost (a quiet room's last message), in milliseconds.
    pub catch_up_ms: u64,
    /// With a network broker: a node not heard from for this long is taken
    /// for dead and its users shown offline on the others, in milliseconds.
    /// Nodes send a heartbeat every quarter of it.
    pub presence_ttl_ms: u64,
    /// Rooms with more users online than this get a count instead of the
    /// list of who is online (in `ready`, `room_joined` and `presence`
    /// frames); the list is one request away (`GET /api/rooms/{id}/online`).
    pub presence_list_max: usize,
    /// Directory for the SQLite database and the token secret.
    pub data_dir: PathBuf,
    /// `full` (an acked message survives power loss) or `normal` (survives a process crash).
    pub sqlite_sync: Synchronous,
    /// Origins allowed to open WebSockets, besides the server's own
    /// (same-origin) and clients that send no Origin (non-browsers). `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Whether guests (name only, no password) may connect.
    pub guests: bool,
    /// Lifetime of tokens issued by this server, in seconds.
    pub token_ttl_secs: u64,
    /// HS256 secret for tokens this server issues; generated into the data
    /// directory on first start when unset (so tokens survive restarts).
    pub token_secret: Option<String>,
    /// Tokens minted by another application ("bring your own JWT").
    pub jwt: ExternalJwt,
    /// Largest message text, in bytes.
    pub max_text_bytes: usize,
    /// Largest WebSocket message accepted from a client, in bytes (1009 beyond).
    pub max_frame_bytes: usize,
    /// Deliveries queued for one connection before it is closed with 1013.
    pub outbound_queue: usize,
    /// Sustained messages per second per user.
    pub messages_per_sec: f64,
    /// Burst of messages a user may send at once.
    pub message_burst: f64,
    /// Register, login and guest attempts per second per client IP (burst:
    /// four times that); 0 is unlimited. Password hashing is deliberately
    /// slow, so this also bounds the CPU one address can make us spend.
    pub account_attempts_per_sec: f64,
    /// Simultaneous connections per user.
    pub max_connections_per_user: u32,
    /// Open connections per client address, of every kind (WebSocket or
    /// HTTP, handshake finished or not), on every path (0: unlimited).
    pub max_connections_per_ip: u32,
    /// Serve TLS with this PEM certificate chain (with `tls_key`): HTTP/2
    /// and HTTP/1.1 by ALPN, WebSockets over both.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a fresh self-signed certificate for localhost (for
    /// development), written to `self_signed_cert_out` for clients to trust.
    pub self_signed: bool,
    /// Where `self_signed` writes its certificate.
    pub self_signed_cert_out: PathBuf,
    /// Without TLS, also speak HTTP/2 with prior knowledge (h2c).
    pub h2c: bool,
    /// With TLS, also serve HTTP/3 (QUIC) on the same port number over UDP,
    /// announced by `Alt-Svc`.
    pub http3: bool,
    /// Connections from `trusted_proxies` start with a PROXY protocol v2
    /// header naming the real client (a layer-4 proxy in front), which is
    /// then the address limits, logs and `/metrics` see.
    pub proxy_protocol: bool,
    /// Addresses or CIDR blocks whose PROXY headers are believed (with
    /// `proxy_protocol`); connections from anywhere else are taken as they come.
    pub trusted_proxies: Vec<String>,
    /// Serve `/metrics` on this address alone (for Prometheus); unset, it
    /// is on the main port for clients on this machine only.
    pub metrics_addr: Option<SocketAddr>,
    /// A request head must arrive whole within this (and a keep-alive
    /// connection with no request in flight is closed after it), in ms.
    pub head_timeout_ms: u64,
    /// Largest request head in bytes (431 beyond).
    pub max_head_bytes: usize,
    /// Most header fields in a request (431 beyond).
    pub max_headers: usize,
    /// Time a connection has to authenticate, in milliseconds.
    pub auth_timeout_ms: u64,
    /// How long typing indicators show, in milliseconds.
    pub typing_ttl_ms: u64,
    /// Fewest milliseconds between two typing events of a user in a room.
    pub typing_interval_ms: u64,
    /// Presence and membership changes are sent per room at most this often,
    /// in milliseconds (batched, so large rooms do not get one frame per change).
    pub presence_batch_ms: u64,
    /// Longest wait for connections to close on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Compress frames with permessage-deflate when the client offers it.
    pub deflate: bool,
    /// Keys of the server API (`/api/server/...`, `Authorization: ApiKey
    /// KEY`): what an application's own backend uses to publish, read
    /// history and presence, create rooms, remove and disconnect users.
    pub api_keys: Vec<ApiKey>,
}

/// One server API key: its name (also the name messages it publishes come
/// from), the secret, and what it may do.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// 1 to 32 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    /// The secret, at least 24 characters (random: `openssl rand -hex 24`).
    pub key: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("key", &"(hidden)")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What a server API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Publish into any room.
    Publish,
    /// Read any room's history.
    History,
    /// Read who is online in any room.
    Presence,
    /// Create rooms.
    Rooms,
    /// Remove users from rooms; disconnect users everywhere.
    Users,
}

impl Scope {
    /// The name in configuration and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::History => "history",
            Scope::Presence => "presence",
            Scope::Rooms => "rooms",
            Scope::Users => "users",
        }
    }

    /// Read a name.
    pub fn parse(name: &str) -> Option<Scope> {
        [
            Scope::Publish,
            Scope::History,
            Scope::Presence,
            Scope::Rooms,
            Scope::Users,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Verification settings for tokens minted elsewhere.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalJwt {
    /// `HS256`, `RS256` or `ES256`; unset disables external tokens.
    pub algorithm: Option<JwtAlgorithm>,
    /// The shared secret for HS256.
    pub secret: Option<String>,
    /// A PEM public key file for RS256 or ES256.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
}

/// Where the durable store lives: `sqlite:DIR` (one node) or
/// `postgres://USER@HOST:PORT/DB` (shared by every node).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreUrl {
    /// SQLite in this directory (with the token secret beside it).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreUrl, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a directory (sqlite:volley-data)".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(s.to_owned()));
        }
        Err(format!("{s:?} is not sqlite:DIR or postgres://USER@HOST:PORT/DB"))
    }
}

impl TryFrom<String> for StoreUrl {
    type Error = String;

    fn try_from(s: String) -> Result<StoreUrl, String> {
        s.parse()
    }
}

impl From<StoreUrl> for String {
    fn from(url: StoreUrl) -> String {
        match url {
            StoreUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => url,
        }
    }
}

/// What carries events between nodes: `memory` (this node only),
/// `redis://HOST:PORT` (several separated by commas shard rooms over several
/// Redis servers) or `nats://HOST:PORT`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum BrokerUrl {
    /// In-process: one node.
    #[default]
    Memory,
    /// Redis pub/sub, one URL per shard.
    Redis(Vec<String>),
    /// NATS core publish/subscribe.
    Nats(String),
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<BrokerUrl, String> {
        if s == "memory" {
            return Ok(BrokerUrl::Memory);
        }
        let urls: Vec<String> = s.split(',').map(|u| u.trim().to_owned()).collect();
        if urls
            .iter()
            .all(|u| u.starts_with("redis://") && u.len() > "redis://".len())
        {
            return Ok(BrokerUrl::Redis(urls));
        }
        if s.starts_with("nats://") && s.len() > "nats://".len() && !s.contains(',') {
            return Ok(BrokerUrl::Nats(s.to_owned()));
        }
        Err(format!(
            "{s:?} is not memory, redis://HOST:PORT[,redis://HOST:PORT...] or nats://HOST:PORT"
        ))
    }
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;

    fn try_from(s: String) -> Result<BrokerUrl, String> {
        s.parse()
    }
}

impl From<BrokerUrl> for String {
    fn from(url: BrokerUrl) -> String {
        match url {
            BrokerUrl::Memory => "memory".into(),
            BrokerUrl::Redis(urls) => urls.join(","),
            BrokerUrl::Nats(url) => url,
        }
    }
}

/// The signature algorithms accepted for external tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret (`jwt.secret`).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256 and a public key (`jwt.public_key_file`).
    RS256,
    /// ECDSA P-256 with SHA-256 and a public key (`jwt.public_key_file`).
    ES256,
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<JwtAlgorithm, String> {
        match s {
            "HS256" => Ok(JwtAlgorithm::HS256),
            "RS256" => Ok(JwtAlgorithm::RS256),
            "ES256" => Ok(JwtAlgorithm::ES256),
            other => Err(format!("{other:?} is not one of HS256, RS256, ES256")),
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        let front = volley_net::front::FrontLimits::default();
        ChatConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            node_id: String::new(),
            store: None,
            broker: BrokerUrl::Memory,
            catch_up_ms: 3_000,
            presence_ttl_ms: 8_000,
            presence_list_max: 200,
            data_dir: PathBuf::from("volley-data"),
            sqlite_sync: Synchronous::Full,
            allowed_origins: Vec::new(),
            guests: true,
            token_ttl_secs: 7 * 24 * 3600,
            token_secret: None,
            jwt: ExternalJwt::default(),
            max_text_bytes: 4000,
            max_frame_bytes: 64 * 1024,
            outbound_queue: 1024,
            messages_per_sec: 10.0,
            message_burst: 20.0,
            account_attempts_per_sec: 2.0,
            max_connections_per_user: 16,
            max_connections_per_ip: front.per_address,
            tls_cert: None,
            tls_key: None,
            self_signed: false,
            self_signed_cert_out: std::env::temp_dir().join("volley-dev-cert.pem"),
            h2c: false,
            http3: true,
            proxy_protocol: false,
            trusted_proxies: vec!["127.0.0.1".into(), "::1".into()],
            metrics_addr: None,
            // The front door's defaults, which are `volley echo`'s.
            head_timeout_ms: front.head_timeout.as_millis() as u64,
            max_head_bytes: front.max_head_bytes,
            max_headers: front.max_headers,
            auth_timeout_ms: 10_000,
            typing_ttl_ms: 5_000,
            typing_interval_ms: 2_000,
            presence_batch_ms: 250,
            shutdown_grace_ms: 10_000,
            deflate: true,
            api_keys: Vec::new(),
        }
    }
}

impl ChatConfig {
    /// Check the values types cannot: ranges and settings that need each
    /// other. The one place they are checked; the error names the key, its
    /// value and what is allowed.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| {
            Err(volley_net::InvalidSetting::new(key, value, allowed).into())
        };
        if self.max_text_bytes == 0 || self.max_text_bytes > self.max_frame_bytes {
            let allowed = format!("1 to max_frame_bytes ({})", self.max_frame_bytes);
            return bad("max_text_bytes", &self.max_text_bytes, &allowed);
        }
        for key in &self.api_keys {
            let name_ok = (1..=32).contains(&key.name.len())
                && key
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !name_ok {
                return bad("api_keys.name", &key.name, "1 to 32 of a-z, 0-9, - and _");
            }
            if key.key.len() < 24
                || key
                    .key
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == ',')
            {
                return bad(
                    "api_keys.key",
                    &"(hidden)",
                    "at least 24 characters, no spaces, ':' or ','",
                );
            }
            if key.scopes.is_empty() {
                return bad(
                    "api_keys.scopes",
                    &key.name,
                    "at least one of publish, history, presence, rooms, users",
                );
            }
            if self
                .api_keys
                .iter()
                .filter(|k| k.name == key.name || k.key == key.key)
                .count()
                > 1
            {
                return bad("api_keys", &key.name, "names and keys unique");
            }
        }
        if self.catch_up_ms < 100 {
            return bad("catch_up_ms", &self.catch_up_ms, "at least 100");
        }
        if !(1_000..=600_000).contains(&self.presence_ttl_ms) {
            return bad("presence_ttl_ms", &self.presence_ttl_ms, "1000 to 600000");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad(
                "tls_cert",
                &"(one of tls_cert, tls_key)",
                "both tls_cert and tls_key, or neither",
            );
        }
        if self.self_signed && self.tls_cert.is_some() {
            return bad("self_signed", &true, "not together with tls_cert");
        }
        if let Err(e) = volley_net::proxy_protocol::Trusted::parse(&self.trusted_proxies) {
            return bad("trusted_proxies", &e, "addresses or CIDR blocks (10.0.0.0/8, ::1)");
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return bad(
                "trusted_proxies",
                &"[]",
                "at least one address with proxy_protocol (whose headers would be believed?)",
            );
        }
        if !(100..=600_000).contains(&self.head_timeout_ms) {
            return bad("head_timeout_ms", &self.head_timeout_ms, "100 to 600000");
        }
        if !(1024..=1 << 20).contains(&self.max_head_bytes) {
            return bad("max_head_bytes", &self.max_head_bytes, "1024 to 1048576");
        }
        if !(8..=1000).contains(&self.max_headers) {
            return bad("max_headers", &self.max_headers, "8 to 1000");
        }
        if self.outbound_queue == 0 {
            return bad("outbound_queue", &0, "at least 1");
        }
        // Written so that NaN (which compares false either way) is refused too.
        if self.messages_per_sec.is_nan() || self.messages_per_sec <= 0.0 {
            return bad("messages_per_sec", &self.messages_per_sec, "more than 0");
        }
        if self.message_burst.is_nan() || self.message_burst < 1.0 {
            return bad("message_burst", &self.message_burst, "at least 1");
        }
        if self.account_attempts_per_sec.is_nan() || self.account_attempts_per_sec < 0.0 {
            return bad(
                "account_attempts_per_sec",
                &self.account_attempts_per_sec,
                "0 (no limit) or more",
            );
        }
        if self.max_connections_per_user == 0 {
            return bad("max_connections_per_user", &0, "at least 1");
        }
        if let Some(secret) = &self.token_secret {
            if secret.len() < 16 {
                return bad("token_secret", &"(hidden)", "at least 16 bytes");
            }
        }
        match self.jwt.algorithm {
            Some(JwtAlgorithm::HS256) if self.jwt.secret.is_none() => {
                bad("jwt.secret", &"(unset)", "a secret, which jwt.algorithm HS256 needs")
            }
            Some(JwtAlgorithm::RS256 | JwtAlgorithm::ES256) if self.jwt.public_key_file.is_none() => bad(
                "jwt.public_key_file",
                &"(unset)",
                "a PEM file, which jwt.algorithm RS256 and ES256 need",
            ),
            _ => Ok(()),
        }
    }
}
