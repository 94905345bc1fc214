//! `volley serve`: the chat and the game with their web clients, on one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tracing::info;
use volley_chat::{JwtAlgorithm, Server};
use volley_game::Lobby;
use volley_hub::Synchronous;

use crate::config::ServeConfig;

/// Options of `volley serve`. Each overrides the same key of the `--config`
/// file; unset options keep the file's value or the default. Precedence:
/// flag, then `VOLLEY_*` variable, then the file, then the default.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Print the merged settings (file, environment and flags, validated) as
    /// TOML, with secrets hidden, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// TOML file with any of the settings (see docs/deploy.md).
    #[arg(long, env = "VOLLEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "VOLLEY_ADDR")]
    pub(crate) addr: Option<SocketAddr>,
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
    #[arg(long, env = "VOLLEY_NO_GUESTS")]
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
    /// External JWT public key (PEM) for RS256/ES256.
    #[arg(long, env = "VOLLEY_JWT_PUBLIC_KEY")]
    pub(crate) jwt_public_key: Option<PathBuf>,
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

/// Start the node, or print its settings with `--print-config`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let print = args.print_config;
    let ServeConfig { chat: config, game } = ServeConfig::load(args)?;
    if print {
        // Validation belongs to start-up; here it runs instead of it.
        config.validate()?;
        game.validate()?;
        print!("{}", ServeConfig { chat: config, game }.to_toml()?);
        return Ok(());
    }
    let data_dir = config.data_dir.clone();
    let origins = config.allowed_origins.clone();
    // Each validates its settings as it starts: the game first, so a bad
    // value there stops the node before the chat opens its database.
    let lobby = Lobby::start(game).context("starting the game")?;
    let server = Server::bind(config).await.context("starting the chat server")?;
    let routes = volley_game::router(lobby, server.shutdown_signal(), origins);
    let server = server.mount(routes);
    let addr = server.local_addr()?;
    info!(%addr, data = %data_dir.display(), "volley serve: open http://{addr}/ (chat) and http://{addr}/game");
    server.run(stop_signal()).await?;
    info!("stopped");
    Ok(())
}
