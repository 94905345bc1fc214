//! The settings of `volley serve`, merged from their three sources into one
//! typed value: the TOML file (`--config`), then `VOLLEY_*` variables, then
//! flags (clap reads a flag's variable when the flag is absent), each
//! overriding the one before, over the defaults. Values are parsed into
//! enums and numbers here; ranges are checked once, when the chat and the
//! game start (`ChatConfig::validate`, `GameConfig::validate`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use volley_chat::{BrokerUrl, ChatConfig, JwtAlgorithm, StoreUrl};
use volley_game::GameConfig;
use volley_hub::Synchronous;

/// Options of `volley serve`. Each overrides the same key of the `--config`
/// file; unset options keep the file's value or the default. Precedence:
/// flag, then `VOLLEY_*` variable, then the file, then the default.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Print the merged settings (file, environment and flags, validated) as
    /// TOML, without secrets, and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// TOML file with any of the settings (see docs/deploy.md).
    #[arg(long, env = "VOLLEY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "VOLLEY_ADDR")]
    pub(crate) addr: Option<SocketAddr>,
    /// This node's name in a cluster [default: HOST:PORT].
    #[arg(long, env = "VOLLEY_NODE_ID")]
    pub(crate) node_id: Option<String>,
    /// Durable store: sqlite:DIR or postgres://USER@HOST:PORT/DB [default: SQLite in --data-dir].
    #[arg(long, env = "VOLLEY_STORE")]
    pub(crate) store: Option<StoreUrl>,
    /// Between nodes: memory (one node), redis://HOST:PORT (comma-separated to shard) or nats://HOST:PORT [default: memory].
    #[arg(long, env = "VOLLEY_BROKER")]
    pub(crate) broker: Option<BrokerUrl>,
    /// Directory for the database and the token secret [default: ./volley-data].
    #[arg(long, env = "VOLLEY_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// SQLite durability: full (survives power loss) or normal (survives a crash) [default: full].
    #[arg(long, env = "VOLLEY_SQLITE_SYNC")]
    pub(crate) sqlite_sync: Option<Synchronous>,
    /// Browser origin allowed to connect besides the server's own; repeatable; `*` allows any.
    #[arg(long = "allow-origin", env = "VOLLEY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub(crate) allowed_origins: Vec<String>,
    /// Refuse guests (name-only accounts).
    #[arg(long, env = "VOLLEY_NO_GUESTS", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) no_guests: bool,
    /// Sustained messages per second per user [default: 10].
    #[arg(long, env = "VOLLEY_MESSAGES_PER_SEC")]
    pub(crate) messages_per_sec: Option<f64>,
    /// Burst of messages per user [default: 20].
    #[arg(long, env = "VOLLEY_MESSAGE_BURST")]
    pub(crate) message_burst: Option<f64>,
    /// Register/login/guest attempts per second per client IP, 0 for no limit [default: 2].
    #[arg(long, env = "VOLLEY_ACCOUNT_ATTEMPTS_PER_SEC")]
    pub(crate) account_attempts_per_sec: Option<f64>,
    /// Connections per user [default: 16].
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_USER")]
    pub(crate) max_connections_per_user: Option<u32>,
    /// Connections per client IP, 0 for no limit [default: 256].
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_IP")]
    pub(crate) max_connections_per_ip: Option<u32>,
    /// PEM certificate chain: serve TLS (HTTP/2 and HTTP/1.1 by ALPN on TCP, HTTP/3 on UDP; wss:// and https://).
    #[arg(long, requires = "tls_key", conflicts_with = "self_signed", env = "VOLLEY_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert", env = "VOLLEY_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve TLS with a fresh self-signed certificate for localhost, 127.0.0.1 and ::1 (development only).
    #[arg(long)]
    pub(crate) self_signed: bool,
    /// Where --self-signed writes its certificate (PEM), for clients to trust [default: $TMPDIR/volley-dev-cert.pem].
    #[arg(long)]
    pub(crate) self_signed_cert_out: Option<PathBuf>,
    /// Without TLS, also accept HTTP/2 with prior knowledge (h2c).
    #[arg(long, env = "VOLLEY_H2C", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) h2c: bool,
    /// Expect a PROXY protocol v2 header from --trusted-proxies (a layer-4 proxy in front) and take its client address.
    #[arg(long, env = "VOLLEY_PROXY_PROTOCOL", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) proxy_protocol: bool,
    /// Addresses or CIDR blocks whose PROXY headers are believed, comma-separated [default: 127.0.0.1,::1].
    #[arg(long, env = "VOLLEY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Vec<String>,
    /// With TLS, do not serve HTTP/3 (QUIC) on the port's UDP twin.
    #[arg(long, env = "VOLLEY_NO_HTTP3", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) no_http3: bool,
    /// Serve /metrics on this address only (for Prometheus) [default: on --addr, to clients on this machine only].
    #[arg(long, env = "VOLLEY_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Deliveries queued per connection before it is closed with 1013 [default: 1024].
    #[arg(long, env = "VOLLEY_OUTBOUND_QUEUE")]
    pub(crate) outbound_queue: Option<usize>,
    /// Largest message text in bytes [default: 4000].
    #[arg(long, env = "VOLLEY_MAX_TEXT_BYTES")]
    pub(crate) max_text_bytes: Option<usize>,
    /// External JWT algorithm: HS256, RS256 or ES256.
    #[arg(long, env = "VOLLEY_JWT_ALGORITHM")]
    pub(crate) jwt_algorithm: Option<JwtAlgorithm>,
    /// External JWT HS256 secret (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "VOLLEY_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// The HS256 secret for the tokens this node issues (sessions, seat
    /// tokens), at least 16 bytes; every node of a cluster needs the same
    /// (prefer the environment variable: flags show in `ps`) [default: generated into the data directory].
    #[arg(long, env = "VOLLEY_TOKEN_SECRET", hide_env_values = true)]
    pub(crate) token_secret: Option<String>,
    /// External JWT public key (PEM) for RS256/ES256.
    #[arg(long, env = "VOLLEY_JWT_PUBLIC_KEY")]
    pub(crate) jwt_public_key: Option<PathBuf>,
    /// A server API key, NAME:KEY:SCOPE[+SCOPE...] (scopes: publish, history, presence, rooms, users); repeatable (prefer the environment variable, comma-separated: flags show in `ps`).
    #[arg(
        long = "api-key",
        env = "VOLLEY_API_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) api_keys: Vec<String>,
    /// Game simulation ticks per second [default: 30].
    #[arg(long, env = "VOLLEY_GAME_TICK_HZ")]
    pub(crate) game_tick_hz: Option<u32>,
    /// Game simulation threads, 0 for one per core [default: 0].
    #[arg(long, env = "VOLLEY_GAME_SIM_THREADS")]
    pub(crate) game_sim_threads: Option<usize>,
    /// People per game room [default: 32].
    #[arg(long, env = "VOLLEY_GAME_ROOM_CAPACITY")]
    pub(crate) game_room_capacity: Option<usize>,
    /// Server bots per game room while places are free [default: 16].
    #[arg(long, env = "VOLLEY_GAME_BOTS_PER_ROOM")]
    pub(crate) game_bots_per_room: Option<usize>,
    /// Pellets per game room [default: 3000].
    #[arg(long, env = "VOLLEY_GAME_PELLETS")]
    pub(crate) game_pellets: Option<usize>,
    /// Side of the square game world [default: 6000].
    #[arg(long, env = "VOLLEY_GAME_WORLD_SIZE")]
    pub(crate) game_world_size: Option<f32>,
    /// With a broker: seconds between a game match's checkpoints sent to another node (recovery after kill -9); 0 for none [default: 5].
    #[arg(long, env = "VOLLEY_GAME_CHECKPOINT_SECS")]
    pub(crate) game_checkpoint_secs: Option<u64>,
}

/// Everything `volley serve` runs with.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct ServeConfig {
    /// The chat's settings: the file's top level.
    #[serde(flatten)]
    pub(crate) chat: ChatConfig,
    /// The game's settings: the file's `[game]` table.
    pub(crate) game: GameConfig,
}

impl ServeConfig {
    /// Read the file (if any) and apply the flags and variables over it.
    pub(crate) fn load(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                ServeConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        config.apply(args)?;
        Ok(config)
    }

    /// Parse a TOML file: chat keys at the top level, game keys under
    /// `[game]`; an unknown key is an error naming it (typos must not pass).
    pub(crate) fn from_toml(text: &str) -> anyhow::Result<ServeConfig> {
        let mut table: toml::Table = toml::from_str(text)?;
        let game = match table.remove("game") {
            Some(game) => game.try_into().context("in [game]")?,
            None => GameConfig::default(),
        };
        let chat = toml::Value::Table(table).try_into()?;
        Ok(ServeConfig { chat, game })
    }

    fn apply(&mut self, args: ServeArgs) -> anyhow::Result<()> {
        let (chat, game) = (&mut self.chat, &mut self.game);
        macro_rules! set {
            ($target:ident: $($flag:ident => $field:ident),* $(,)?) => {
                $(if let Some(v) = args.$flag { $target.$field = v; })*
            };
        }
        set!(game:
            game_tick_hz => tick_hz,
            game_sim_threads => sim_threads,
            game_room_capacity => room_capacity,
            game_bots_per_room => bots_per_room,
            game_pellets => pellets,
            game_world_size => world_size,
            game_checkpoint_secs => checkpoint_secs,
        );
        set!(chat:
            addr => addr,
            node_id => node_id,
            broker => broker,
            data_dir => data_dir,
            sqlite_sync => sqlite_sync,
            messages_per_sec => messages_per_sec,
            message_burst => message_burst,
            account_attempts_per_sec => account_attempts_per_sec,
            max_connections_per_user => max_connections_per_user,
            max_connections_per_ip => max_connections_per_ip,
            outbound_queue => outbound_queue,
            max_text_bytes => max_text_bytes,
        );
        if !args.allowed_origins.is_empty() {
            chat.allowed_origins = args.allowed_origins;
        }
        if args.no_guests {
            chat.guests = false;
        }
        if let Some(addr) = args.metrics_addr {
            chat.metrics_addr = Some(addr);
        }
        if let Some(cert) = args.tls_cert {
            chat.tls_cert = Some(cert);
            chat.self_signed = false;
        }
        if let Some(key) = args.tls_key {
            chat.tls_key = Some(key);
        }
        if args.self_signed {
            chat.self_signed = true;
            chat.tls_cert = None;
            chat.tls_key = None;
        }
        if let Some(out) = args.self_signed_cert_out {
            chat.self_signed_cert_out = out;
        }
        if args.h2c {
            chat.h2c = true;
        }
        if args.no_http3 {
            chat.http3 = false;
        }
        if args.proxy_protocol {
            chat.proxy_protocol = true;
        }
        if !args.trusted_proxies.is_empty() {
            chat.trusted_proxies = args.trusted_proxies;
        }
        if let Some(store) = args.store {
            chat.store = Some(store);
        }
        if let Some(algorithm) = args.jwt_algorithm {
            chat.jwt.algorithm = Some(algorithm);
        }
        if let Some(secret) = args.jwt_secret {
            chat.jwt.secret = Some(secret);
        }
        if !args.api_keys.is_empty() {
            // Parsed here, not by clap, whose error would print the value,
            // secret included.
            chat.api_keys = args
                .api_keys
                .iter()
                .map(|text| parse_api_key(text))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--api-key / VOLLEY_API_KEYS: {e}"))?;
        }
        if let Some(path) = args.jwt_public_key {
            chat.jwt.public_key_file = Some(path);
        }
        if let Some(secret) = args.token_secret {
            chat.token_secret = Some(secret);
        }
        Ok(())
    }

    /// The settings as a TOML file would hold them, without the secrets:
    /// their keys are named in a comment, never given a value, so the output
    /// saved as a file cannot carry a known placeholder as a real secret.
    pub(crate) fn to_toml(&self) -> anyhow::Result<String> {
        let mut shown = ServeConfig {
            chat: self.chat.clone(),
            game: self.game.clone(),
        };
        let mut left_out = Vec::new();
        if shown.chat.token_secret.take().is_some() {
            left_out.push("token_secret");
        }
        if shown.chat.jwt.secret.take().is_some() {
            left_out.push("jwt.secret");
        }
        if !std::mem::take(&mut shown.chat.api_keys).is_empty() {
            left_out.push("api_keys");
        }
        if let Some(volley_chat::StoreUrl::Postgres(url)) = &mut shown.chat.store {
            // postgres://USER:PASSWORD@HOST: keep the user, drop the password.
            if let Some((before, after)) = url.split_once('@') {
                if let Some((scheme_user, _password)) = before.rsplit_once(':') {
                    if scheme_user.contains("://") {
                        *url = format!("{scheme_user}@{after}");
                        left_out.push("the store URL's password");
                    }
                }
            }
        }
        let mut text = String::new();
        if !left_out.is_empty() {
            text.push_str(&format!("# set but not shown: {}\n", left_out.join(", ")));
        }
        text.push_str(&toml::to_string(&shown)?);
        Ok(text)
    }
}

/// `NAME:KEY:SCOPE[+SCOPE...]` as a server API key. Errors name the key's
/// NAME, never its secret.
fn parse_api_key(text: &str) -> Result<volley_chat::config::ApiKey, String> {
    let usage = "expected NAME:KEY:SCOPE[+SCOPE...] (scopes: publish, history, presence, rooms, users)";
    let mut parts = text.splitn(3, ':');
    let (Some(name), Some(key), Some(scopes)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage.into());
    };
    let scopes = scopes
        .split('+')
        .map(|s| {
            volley_chat::config::Scope::parse(s.trim()).ok_or_else(|| format!("key {name}: unknown scope {s}: {usage}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(volley_chat::config::ApiKey {
        name: name.trim().to_owned(),
        key: key.trim().to_owned(),
        scopes,
    })
}
