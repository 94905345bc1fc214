//! `volley bench`: the load generator's command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use volley_bench::{Chat, Connect, Echo, Game, Idle, Report, Scenario, Target};
use volley_net::{tls, Config, Connector, DeflateConfig};

/// Options of `volley bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    scenario: ScenarioArgs,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Server under test [default: ws://127.0.0.1:9001/, for chat ws://127.0.0.1:8080/ws]; for chat, several comma-separated (a cluster): client i uses the i-th in turn.
    #[arg(long)]
    url: Option<String>,
    /// Extra CA certificate (PEM) to trust for wss://.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Offer permessage-deflate.
    #[arg(long)]
    deflate: bool,
    /// Process id of the server, when it runs on this machine (memory readings).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Open the WebSockets over HTTP/2 (RFC 8441; wss:// only), as streams of --h2-connections connections (echo, idle, chat, game).
    #[arg(long, conflicts_with = "http3")]
    http2: bool,
    /// HTTP/2 connections the streams are spread over (with --http2).
    #[arg(long, default_value_t = 1, requires = "http2")]
    h2_connections: usize,
    /// Open the WebSockets over HTTP/3 (RFC 9220, QUIC; wss:// only), as streams of --h3-connections connections (echo, idle, chat, game).
    #[arg(long)]
    http3: bool,
    /// HTTP/3 connections the streams are spread over (with --http3).
    #[arg(long, default_value_t = 1, requires = "http3")]
    h3_connections: usize,
}

#[derive(Debug, clap::Subcommand)]
enum ScenarioArgs {
    /// C connections keep K messages of S bytes in flight; round trips/s, MB/s, latency.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(short = 'c', long, default_value_t = 64)]
        connections: usize,
        /// Message size in bytes.
        #[arg(short = 's', long, default_value_t = 64)]
        size: usize,
        /// Messages in flight per connection.
        #[arg(short = 'k', long, default_value_t = 1)]
        in_flight: usize,
        /// Measured seconds.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured warm-up seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Send text messages instead of binary.
        #[arg(long)]
        text: bool,
    },
    /// Connection setup rate and handshake latency (TLS too, with a wss:// URL).
    Connect {
        #[command(flatten)]
        common: Common,
        /// Handshakes under way at once.
        #[arg(short = 'c', long, default_value_t = 16)]
        concurrency: usize,
        /// Measured seconds.
        #[arg(short = 'd', long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Hold N idle connections; server memory per connection (needs --server-pid).
    Idle {
        #[command(flatten)]
        common: Common,
        /// Connections to hold.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to wait before reading the server's memory.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// N clients of `volley serve` in R rooms, P messages/s in total; deliveries/s and send-to-receipt latency.
    Chat {
        #[command(flatten)]
        common: Common,
        /// Connected clients.
        #[arg(short = 'n', long, default_value_t = 1000)]
        clients: usize,
        /// Rooms (clients are spread evenly).
        #[arg(short = 'r', long, default_value_t = 10)]
        rooms: usize,
        /// Messages per second published in total.
        #[arg(short = 'p', long, default_value_t = 100.0)]
        rate: f64,
        /// Message text size in bytes.
        #[arg(short = 's', long, default_value_t = 64)]
        size: usize,
        /// Measured seconds.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured warm-up seconds.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Connections set up at once.
        #[arg(long, default_value_t = 64)]
        connect_concurrency: usize,
    },
    /// Bots over WebSockets in the arena of `volley serve` (/game/ws): snapshot rate and bandwidth per bot,
    /// input-to-snapshot latency, and the server's tick time from its /metrics.
    Game {
        #[command(flatten)]
        common: Common,
        /// Bots, each on its own connection.
        #[arg(short = 'n', long, default_value_t = 100)]
        bots: usize,
        /// Inputs per second per bot (the browser sends one per tick).
        #[arg(long, default_value_t = 30.0)]
        input_rate: f64,
        /// Measured seconds.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured warm-up seconds.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Connections set up at once.
        #[arg(long, default_value_t = 32)]
        connect_concurrency: usize,
        /// Read the server's /metrics at this host:port over plain HTTP (a node behind a proxy) [default: the game's address].
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Tick cost (simulation + every player's snapshot) per player count, in-process on this thread; JSON and SVG.
    GameCurve {
        /// Player counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "50,100,200,300,400,500,600,800")]
        players: Vec<usize>,
        /// Pellets in the room.
        #[arg(long, default_value_t = 5000)]
        pellets: usize,
        /// Side of the world.
        #[arg(long, default_value_t = 6000.0)]
        world_size: f32,
        /// Measured ticks per point.
        #[arg(long, default_value_t = 600)]
        ticks: usize,
        /// Measured points from `bench game` runs to draw beside the curve: players:p99_ms, comma-separated.
        #[arg(long, value_delimiter = ',')]
        network: Vec<String>,
        /// Where to write the points as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Where to draw the SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Draw the comparison written by bench/compare.sh as an SVG.
    Plot {
        /// The comparison JSON.
        #[arg(long)]
        input: PathBuf,
        /// The SVG to write.
        #[arg(long)]
        output: PathBuf,
    },
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Common {
    fn url(&self, scenario: &str) -> String {
        self.url.clone().unwrap_or_else(|| {
            if scenario == "chat" {
                "ws://127.0.0.1:8080/ws".into()
            } else if scenario == "game" {
                "ws://127.0.0.1:8080/game/ws".into()
            } else {
                "ws://127.0.0.1:9001/".into()
            }
        })
    }

    fn target(&self, scenario: &str) -> anyhow::Result<Target> {
        let mut connector = Connector::new(Config {
            // Load, not liveness, is measured: no keepalive traffic.
            ping_interval: None,
            ..Config::default()
        });
        if let Some(ca) = &self.ca {
            connector = connector.tls(tls::client_config(Some(ca))?);
        }
        if self.deflate {
            connector = connector.deflate(DeflateConfig::default());
        }
        Ok(Target {
            url: self.url(scenario),
            connector,
            server_pid: self.server_pid,
            transport: if self.http2 {
                volley_bench::Transport::Http2(self.h2_connections)
            } else if self.http3 {
                volley_bench::Transport::Http3(self.h3_connections)
            } else {
                volley_bench::Transport::Http1
            },
        })
    }
}

/// Run the chosen scenario.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        ScenarioArgs::Echo {
            common,
            connections,
            size,
            in_flight,
            duration,
            warmup,
            text,
        } => {
            let scenario = Echo {
                connections,
                size,
                in_flight,
                duration: secs(duration),
                warmup: secs(warmup),
                text,
            };
            report(&scenario, &common).await
        }
        ScenarioArgs::Connect {
            common,
            concurrency,
            duration,
        } => {
            let scenario = Connect {
                concurrency,
                duration: secs(duration),
            };
            report(&scenario, &common).await
        }
        ScenarioArgs::Idle {
            common,
            connections,
            settle,
        } => {
            let scenario = Idle {
                connections,
                settle: secs(settle),
            };
            report(&scenario, &common).await
        }
        ScenarioArgs::Chat {
            common,
            clients,
            rooms,
            rate,
            size,
            duration,
            warmup,
            connect_concurrency,
        } => {
            let scenario = Chat {
                clients,
                rooms,
                rate,
                size,
                duration: secs(duration),
                warmup: secs(warmup),
                connect_concurrency,
            };
            report(&scenario, &common).await
        }
        ScenarioArgs::Game {
            common,
            bots,
            input_rate,
            duration,
            warmup,
            connect_concurrency,
            metrics_addr,
        } => {
            let scenario = Game {
                bots,
                input_rate,
                duration: secs(duration),
                warmup: secs(warmup),
                connect_concurrency,
                metrics_addr,
            };
            report(&scenario, &common).await
        }
        ScenarioArgs::GameCurve {
            players,
            pellets,
            world_size,
            ticks,
            network,
            json,
            svg,
        } => {
            let config = volley_game::GameConfig {
                pellets,
                world_size,
                ..volley_game::GameConfig::default()
            };
            let network: Vec<(f64, f64)> = network
                .iter()
                .map(|p| {
                    let (n, ms) = p.split_once(':').context("network points are players:p99_ms")?;
                    Ok((n.parse()?, ms.parse()?))
                })
                .collect::<anyhow::Result<_>>()?;
            let points =
                tokio::task::spawn_blocking(move || volley_bench::game_curve::measure(&config, &players, ticks, 7))
                    .await?;
            println!("players  tick p50 ms  tick p99 ms  sim p99 ms  encode p99 ms  B/s per player  overruns");
            for p in &points {
                println!(
                    "{:>7}  {:>11.2}  {:>11.2}  {:>10.2}  {:>13.2}  {:>14.0}  {:>4}/{}",
                    p.players,
                    p.tick_p50_ms,
                    p.tick_p99_ms,
                    p.sim_p99_ms,
                    p.encode_p99_ms,
                    p.bytes_per_player_per_s,
                    p.overruns,
                    p.ticks
                );
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&points)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = svg {
                volley_bench::game_curve::plot(&points, &network, 1000.0 / 30.0, &path)?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        ScenarioArgs::Plot { input, output } => {
            let comparison = volley_bench::plot::read(&input)?;
            volley_bench::plot::plot(&comparison, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
    }
}

async fn report<S: Scenario>(scenario: &S, common: &Common) -> anyhow::Result<()> {
    let target = common.target(scenario.name())?;
    let report: Report = volley_bench::run(scenario, &target, !common.json)
        .await
        .with_context(|| format!("bench {} against {}", scenario.name(), target.url))?;
    if common.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
