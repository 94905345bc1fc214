//! `volley serve`: the chat and the game with their web clients, on one node.

use anyhow::Context;
use tracing::info;
use volley_chat::Server;
use volley_game::Lobby;

use crate::config::{ServeArgs, ServeConfig};

/// Resolves on SIGTERM or Ctrl-C (also what stops `volley cluster up`).
pub(crate) async fn stop_signal() {
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
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
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
    let scheme = if config.tls_cert.is_some() || config.self_signed {
        "https"
    } else {
        "http"
    };
    // Each validates its settings as it starts: the game first, so a bad
    // value there stops the node before the chat opens its database.
    let lobby = Lobby::start(game).context("starting the game")?;
    let server = Server::bind(config).await.context("starting the chat server")?;
    lobby.register_metrics();
    // With a broker, the game joins the other nodes: a registry of their
    // load, new matches where there is headroom, matches handed over on
    // a drain.
    let chat = server.chat();
    // Seat tokens signed with the shared token secret: any node of the
    // cluster takes any node's.
    lobby.set_seat_key(&chat.seat_key());
    // Players may sign in with the chat's tokens; their best scores go to
    // the chat's store.
    lobby.set_accounts(std::sync::Arc::new(crate::accounts::ChatAccounts(chat.clone())));
    let cluster = chat
        .hub()
        .broker()
        .spans_nodes()
        .then(|| volley_game::Cluster::start(lobby.clone(), chat.node_id(), chat.hub().link()));
    let scores = lobby.clone();
    let routes = volley_game::router(lobby, server.shutdown_signal(), origins);
    let server = server.mount(routes);
    let addr = server.local_addr()?;
    info!(%addr, data = %data_dir.display(), "volley serve: open {scheme}://{addr}/ (chat) and {scheme}://{addr}/game");
    let stop = async move {
        stop_signal().await;
        // SIGTERM: hand the running matches to the other nodes first, so
        // their players move instead of losing them.
        if let Some(cluster) = &cluster {
            let report = cluster.drain().await;
            info!(
                moved = report.moved.len(),
                kept = report.kept.len(),
                "game matches handed over"
            );
        }
    };
    server.run(stop).await?;
    // The best scores of the last seconds, not left to the 5 s flush.
    scores.store_scores().await;
    info!("stopped");
    Ok(())
}
