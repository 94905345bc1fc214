//! `volley serve`: the chat backend with its web client, on one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tracing::info;
use volley_chat::{ChatConfig, Server};
use volley_game::{GameConfig, Lobby};

/// Options of `volley serve`. Each overrides the same key of the `--config`
/// file; unset options keep the file's value or the default.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings (see docs/deploy.md).
    #[arg(long, env = "VOLLEY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "VOLLEY_ADDR")]
    addr: Option<SocketAddr>,
    /// Directory for the database and the token secret [default: ./volley-data].
    #[arg(long, env = "VOLLEY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// SQLite durability: full (survives power loss) or normal (survives a crash) [default: full].
    #[arg(long, env = "VOLLEY_SQLITE_SYNC")]
    sqlite_sync: Option<String>,
    /// Browser origin allowed to connect besides the server's own; repeatable; `*` allows any.
    #[arg(long = "allow-origin", env = "VOLLEY_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Refuse guests (name-only accounts).
    #[arg(long, env = "VOLLEY_NO_GUESTS")]
    no_guests: bool,
    /// Sustained messages per second per user [default: 10].
    #[arg(long, env = "VOLLEY_MESSAGES_PER_SEC")]
    messages_per_sec: Option<f64>,
    /// Burst of messages per user [default: 20].
    #[arg(long, env = "VOLLEY_MESSAGE_BURST")]
    message_burst: Option<f64>,
    /// Register/login/guest attempts per second per client IP, 0 for no limit [default: 2].
    #[arg(long, env = "VOLLEY_ACCOUNT_ATTEMPTS_PER_SEC")]
    account_attempts_per_sec: Option<f64>,
    /// Connections per user [default: 16].
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_USER")]
    max_connections_per_user: Option<u32>,
    /// Connections per client IP, 0 for no limit [default: 256].
    #[arg(long, env = "VOLLEY_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<u32>,
    /// Deliveries queued per connection before it is closed with 1013 [default: 1024].
    #[arg(long, env = "VOLLEY_OUTBOUND_QUEUE")]
    outbound_queue: Option<usize>,
    /// Largest message text in bytes [default: 4000].
    #[arg(long, env = "VOLLEY_MAX_TEXT_BYTES")]
    max_text_bytes: Option<usize>,
    /// External JWT algorithm: HS256, RS256 or ES256.
    #[arg(long, env = "VOLLEY_JWT_ALGORITHM")]
    jwt_algorithm: Option<String>,
    /// External JWT HS256 secret (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "VOLLEY_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// External JWT public key (PEM) for RS256/ES256.
    #[arg(long, env = "VOLLEY_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Game simulation ticks per second [default: 30].
    #[arg(long, env = "VOLLEY_GAME_TICK_HZ")]
    game_tick_hz: Option<u32>,
    /// Game simulation threads, 0 for one per core [default: 0].
    #[arg(long, env = "VOLLEY_GAME_SIM_THREADS")]
    game_sim_threads: Option<usize>,
    /// People per game room [default: 32].
    #[arg(long, env = "VOLLEY_GAME_ROOM_CAPACITY")]
    game_room_capacity: Option<usize>,
    /// Server bots per game room while places are free [default: 16].
    #[arg(long, env = "VOLLEY_GAME_BOTS_PER_ROOM")]
    game_bots_per_room: Option<usize>,
    /// Pellets per game room [default: 3000].
    #[arg(long, env = "VOLLEY_GAME_PELLETS")]
    game_pellets: Option<usize>,
    /// Side of the square game world [default: 6000].
    #[arg(long, env = "VOLLEY_GAME_WORLD_SIZE")]
    game_world_size: Option<f32>,
}

/// The TOML file: chat settings at the top level, game settings under `[game]`.
#[derive(Debug, Default, serde::Deserialize)]
struct FileConfig {
    #[serde(flatten)]
    chat: toml::Table,
    #[serde(default)]
    game: GameConfig,
}

fn config(args: ServeArgs) -> anyhow::Result<(ChatConfig, GameConfig)> {
    let (mut config, mut game) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
            let chat: ChatConfig = toml::Value::Table(file.chat)
                .try_into()
                .with_context(|| format!("in {}", path.display()))?;
            (chat, file.game)
        }
        None => (ChatConfig::default(), GameConfig::default()),
    };
    macro_rules! game {
        ($($flag:ident => $field:ident),*) => { $(if let Some(v) = args.$flag { game.$field = v; })* };
    }
    game!(
        game_tick_hz => tick_hz,
        game_sim_threads => sim_threads,
        game_room_capacity => room_capacity,
        game_bots_per_room => bots_per_room,
        game_pellets => pellets,
        game_world_size => world_size
    );
    game.validate().map_err(anyhow::Error::msg)?;
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field { config.$field = v; })* };
    }
    set!(
        addr,
        data_dir,
        sqlite_sync,
        messages_per_sec,
        message_burst,
        account_attempts_per_sec,
        max_connections_per_user,
        max_connections_per_ip,
        outbound_queue,
        max_text_bytes
    );
    if !args.allowed_origins.is_empty() {
        config.allowed_origins = args.allowed_origins;
    }
    if args.no_guests {
        config.guests = false;
    }
    if args.jwt_algorithm.is_some() {
        config.jwt.algorithm = args.jwt_algorithm;
    }
    if args.jwt_secret.is_some() {
        config.jwt.secret = args.jwt_secret;
    }
    if args.jwt_public_key.is_some() {
        config.jwt.public_key_file = args.jwt_public_key;
    }
    config.validate()?;
    Ok((config, game))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (config, game) = config(args)?;
    let data_dir = config.data_dir.clone();
    let origins = config.allowed_origins.clone();
    let server = Server::bind(config).await.context("starting the chat server")?;
    let lobby = Lobby::start(game).context("starting the game")?;
    let routes = volley_game::router(lobby, server.shutdown_signal(), origins);
    let server = server.mount(routes);
    let addr = server.local_addr()?;
    info!(%addr, data = %data_dir.display(), "volley serve: open http://{addr}/ (chat) and http://{addr}/game");
    server.run(stop_signal()).await?;
    info!("stopped");
    Ok(())
}
