//! `volley cluster`: the whole deployment on this machine (PostgreSQL, a
//! broker, N nodes, a proxy), faults by hand or by a seeded schedule, and
//! a test that runs a workload through it and checks what every client
//! saw. The harness is `volley-cluster`; this module parses its flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use volley_cluster::checker::Promises;
use volley_cluster::run::TestSpec;
use volley_cluster::spec::{BrokerKind, ProxyKind, Spec, StoreKind};
use volley_cluster::workload::chat::ChatLoad;
use volley_cluster::workload::game::GameLoad;

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Args)]
struct Shape {
    /// `volley serve` nodes (n1, n2, ...).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The broker between the nodes: redis or nats.
    #[arg(long, default_value = "redis")]
    broker: BrokerKind,
    /// The store: postgres (shared) or sqlite (one per node).
    #[arg(long, default_value = "postgres")]
    store: StoreKind,
    /// The proxy in front: volley, haproxy or nginx.
    #[arg(long, default_value = "volley")]
    proxy: ProxyKind,
    /// Game checkpoint interval of the nodes, in seconds.
    #[arg(long, default_value_t = 1)]
    checkpoint_secs: u64,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start the cluster in the foreground, print its endpoints, stream its logs; Ctrl-C stops everything.
    Up {
        #[command(flatten)]
        shape: Shape,
        /// Where data, logs and the state file go [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The admin address's port (live page, API); 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        admin_port: u16,
        /// Do not print the services' logs (they are in DIR/logs either way).
        #[arg(long)]
        quiet: bool,
    },
    /// Endpoints, pids, health, connections and rates of the running cluster.
    Status {
        /// The cluster's directory [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the full state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running cluster; nothing is left running.
    Down {
        /// The cluster's directory [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Restart one service (n1, broker, store, proxy): a node drains first (SIGTERM).
    Restart {
        /// The service.
        name: String,
        /// The cluster's directory [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Inject a fault: kill, pause, resume, restart, drain, cut, heal, slow, reset or reload, on a service (n1, broker, store, proxy) or a link (n1-broker, n1-store, proxy-n1; a service's name means all its links; heal all).
    Fault {
        /// What to do.
        action: String,
        /// To whom.
        target: String,
        /// The delay of `slow`, in milliseconds.
        #[arg(long)]
        ms: Option<u64>,
        /// The cluster's directory [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Bring a cluster up, run a workload through its proxy while faults are injected on a seeded schedule, heal, check what every client saw, write a report; exit 1 on any violation.
    Test {
        #[command(flatten)]
        shape: Shape,
        /// chat, game or both.
        #[arg(long, default_value = "both")]
        workload: String,
        /// Fault kinds, comma-separated: kill, pause, drain, broker-restart, store-restart, proxy-reload, cut, slow.
        #[arg(long, default_value = "kill,pause,broker-restart,cut")]
        faults: String,
        /// How long the workload runs (e.g. 60s, 2m).
        #[arg(long, default_value = "60s")]
        duration: String,
        /// The schedule's seed [default: the clock's].
        #[arg(long)]
        seed: Option<u64>,
        /// Where the report goes (report.md, timeline.svg, history.jsonl; the cluster's logs under cluster/).
        #[arg(long, default_value = "reports/cluster")]
        report: PathBuf,
        /// Chat clients (each in every room).
        #[arg(long, default_value_t = 6)]
        clients: usize,
        /// Chat rooms.
        #[arg(long, default_value_t = 2)]
        rooms: usize,
        /// Messages per second per chat client.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Game bots.
        #[arg(long, default_value_t = 6)]
        bots: usize,
        /// The longest pause a game player may see after a fault, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        game_pause_ms: u64,
        /// Test the cluster already running from --dir (`volley cluster up`) instead of bringing one up.
        #[arg(long)]
        running: bool,
        /// With --running: the cluster's directory [default: $TMPDIR/volley-cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn duration(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number
        .parse()
        .with_context(|| format!("a duration like 60s or 2m, not {text:?}"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "ms" => Duration::from_millis(n),
        _ => bail!("a duration like 60s or 2m, not {text:?}"),
    })
}

fn spec(shape: &Shape, dir: PathBuf) -> anyhow::Result<Spec> {
    if shape.nodes == 0 || shape.nodes > 16 {
        bail!("--nodes: 1 to 16");
    }
    Ok(Spec {
        nodes: shape.nodes,
        broker: shape.broker,
        store: shape.store,
        proxy: shape.proxy,
        dir,
        volley: std::env::current_exe().context("this program's path")?,
        checkpoint_secs: shape.checkpoint_secs.max(1),
        stream_logs: true,
    })
}

pub(crate) async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let default_dir = Spec::default_dir;
    match args.command {
        ClusterCommand::Up {
            shape,
            dir,
            admin_port,
            quiet,
        } => {
            let spec = spec(&shape, dir.unwrap_or_else(default_dir))?;
            let dir = spec.dir.clone();
            let (cluster, admin, stop) = volley_cluster::up::start(spec, admin_port).await?;
            println!(
                "volley cluster up: {} nodes, {} broker, {} store, {} proxy ({})\n{}",
                shape.nodes,
                shape.broker.name(),
                shape.store.name(),
                shape.proxy.name(),
                dir.display(),
                volley_cluster::up::endpoints(&cluster, admin)
            );
            println!(
                "network faults: through the fault relays above, one per link (no root needed; netem and network namespaces are not used)"
            );
            println!("open http://127.0.0.1:{admin}/ first; Ctrl-C stops everything\n");
            if !quiet {
                volley_cluster::up::stream_logs(&cluster);
            }
            tokio::select! {
                () = crate::serve::stop_signal() => {}
                () = stop.notified() => {}
            }
            println!("stopping the cluster");
            volley_cluster::up::stop(&cluster).await;
            println!("stopped: nothing left running");
            // The log tails are blocking threads: leave without waiting for them.
            std::process::exit(0);
        }
        ClusterCommand::Status { dir, json } => {
            let dir = dir.unwrap_or_else(default_dir);
            let state = volley_cluster::up::status(&dir).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&state)?);
                return Ok(());
            }
            println!(
                "cluster in {}: up {:.0} s",
                dir.display(),
                state["uptime_ms"].as_f64().unwrap_or(0.0) / 1e3
            );
            println!(
                "  open {}  (game: {})",
                state["url"].as_str().unwrap_or(""),
                state["game_url"].as_str().unwrap_or("")
            );
            println!("  {:<8} {:>6} {:>8} {:>9}", "service", "port", "pid", "state");
            for s in state["services"].as_array().into_iter().flatten() {
                let condition = if s["paused"].as_bool() == Some(true) {
                    "paused"
                } else if s["healthy"].as_bool() == Some(true) {
                    "healthy"
                } else if s["running"].as_bool() == Some(true) {
                    "unhealthy"
                } else {
                    "down"
                };
                println!(
                    "  {:<8} {:>6} {:>8} {:>9}",
                    s["name"].as_str().unwrap_or(""),
                    s["port"],
                    s["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
                    condition
                );
            }
            println!(
                "  {:<8} {:>11} {:>8} {:>10} {:>12} {:>8}",
                "node", "connections", "players", "messages/s", "deliveries/s", "ticks/s"
            );
            for n in state["nodes"].as_array().into_iter().flatten() {
                println!(
                    "  {:<8} {:>11.0} {:>8.0} {:>10.1} {:>12.1} {:>8.0}",
                    n["name"].as_str().unwrap_or(""),
                    n["connections"].as_f64().unwrap_or(0.0),
                    n["players"].as_f64().unwrap_or(0.0),
                    n["messages_per_s"].as_f64().unwrap_or(0.0),
                    n["deliveries_per_s"].as_f64().unwrap_or(0.0),
                    n["ticks_per_s"].as_f64().unwrap_or(0.0)
                );
            }
            let faults = state["relays"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["mode"]["mode"] != "pass");
            for r in faults {
                println!(
                    "  link {} is {}",
                    r["name"].as_str().unwrap_or(""),
                    r["mode"]["mode"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        ClusterCommand::Down { dir } => {
            let dir = dir.unwrap_or_else(default_dir);
            println!("{}", volley_cluster::up::down(&dir).await?);
            Ok(())
        }
        ClusterCommand::Restart { name, dir } => {
            let dir = dir.unwrap_or_else(default_dir);
            println!("{}", volley_cluster::up::fault(&dir, "restart", &name, None).await?);
            Ok(())
        }
        ClusterCommand::Fault {
            action,
            target,
            ms,
            dir,
        } => {
            let dir = dir.unwrap_or_else(default_dir);
            println!("{}", volley_cluster::up::fault(&dir, &action, &target, ms).await?);
            Ok(())
        }
        ClusterCommand::Test {
            shape,
            workload,
            faults,
            duration: length,
            seed,
            report,
            clients,
            rooms,
            rate,
            bots,
            game_pause_ms,
            running,
            dir,
        } => {
            let (chat, game) = match workload.as_str() {
                "chat" => (true, false),
                "game" => (false, true),
                "both" => (true, true),
                other => bail!("--workload: chat, game or both, not {other:?}"),
            };
            let faults = volley_cluster::nemesis::parse_kinds(&faults).map_err(anyhow::Error::msg)?;
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            let _ = std::fs::remove_dir_all(report.join("cluster"));
            let mut cluster = spec(&shape, report.join("cluster"))?;
            cluster.stream_logs = false;
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let spec = TestSpec {
                cluster,
                running: running.then(|| dir.unwrap_or_else(default_dir)),
                chat: chat.then_some(ChatLoad { clients, rooms, rate }),
                game: game.then_some(GameLoad {
                    bots,
                    give_up: Duration::from_secs(60),
                }),
                faults,
                duration: duration(&length)?,
                seed,
                report: report.clone(),
                promises: Promises { game_pause_ms },
                command,
            };
            let verdict = volley_cluster::run::test(spec).await?;
            let s = &verdict.stats;
            println!(
                "\n{} sends acknowledged, {} refused, {} unknown; {} deliveries; {} chat reconnects; {} game returns",
                s.acked,
                s.refused,
                s.unknown,
                s.deliveries,
                s.resumes_ms.len(),
                s.game_pauses_ms.len()
            );
            println!("report: {}", report.join("report.md").display());
            if verdict.violations.is_empty() {
                println!("PASS: no violation");
                Ok(())
            } else {
                for v in &verdict.violations {
                    println!("VIOLATION {v}");
                }
                bail!(
                    "{} violation(s): see {}",
                    verdict.violations.len(),
                    report.join("report.md").display()
                )
            }
        }
    }
}
