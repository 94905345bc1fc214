//! The settings of `volley serve`, merged from their three sources into one
//! typed value: the TOML file (`--config`), then `VOLLEY_*` variables, then
//! flags (clap reads a flag's variable when the flag is absent), each
//! overriding the one before, over the defaults. Values are parsed into
//! enums and numbers here; ranges are checked once, when the chat and the
//! game start (`ChatConfig::validate`, `GameConfig::validate`).

use anyhow::Context;
use volley_chat::ChatConfig;
use volley_game::GameConfig;

use crate::serve::ServeArgs;

/// Everything `volley serve` runs with.
#[derive(Debug, Default, serde::Serialize)]
pub struct ServeConfig {
    /// The chat's settings: the file's top level.
    #[serde(flatten)]
    pub chat: ChatConfig,
    /// The game's settings: the file's `[game]` table.
    pub game: GameConfig,
}

impl ServeConfig {
    /// Read the file (if any) and apply the flags and variables over it.
    pub fn load(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                ServeConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        config.apply(args);
        Ok(config)
    }

    /// Parse a TOML file: chat keys at the top level, game keys under
    /// `[game]`; an unknown key is an error naming it (typos must not pass).
    pub fn from_toml(text: &str) -> anyhow::Result<ServeConfig> {
        let mut table: toml::Table = toml::from_str(text)?;
        let game = match table.remove("game") {
            Some(game) => game.try_into().context("in [game]")?,
            None => GameConfig::default(),
        };
        let chat = toml::Value::Table(table).try_into()?;
        Ok(ServeConfig { chat, game })
    }

    fn apply(&mut self, args: ServeArgs) {
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
        );
        set!(chat:
            addr => addr,
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
        if let Some(algorithm) = args.jwt_algorithm {
            chat.jwt.algorithm = Some(algorithm);
        }
        if let Some(secret) = args.jwt_secret {
            chat.jwt.secret = Some(secret);
        }
        if let Some(path) = args.jwt_public_key {
            chat.jwt.public_key_file = Some(path);
        }
    }

    /// The settings as a TOML file would hold them, secrets hidden.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let hidden = || Some("(hidden)".to_owned());
        let mut shown = ServeConfig {
            chat: self.chat.clone(),
            game: self.game.clone(),
        };
        if shown.chat.token_secret.is_some() {
            shown.chat.token_secret = hidden();
        }
        if shown.chat.jwt.secret.is_some() {
            shown.chat.jwt.secret = hidden();
        }
        Ok(toml::to_string(&shown)?)
    }
}
