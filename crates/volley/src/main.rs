//! `volley`: the one binary. Each subcommand lives in its own module; this
//! file only parses arguments and sets up logging.

mod accounts;
mod bench;
mod cluster;
mod config;
mod devcert;
mod echo;
mod proxy;
mod serve;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// volley: a real-time backend over WebSockets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The group chat (`/`) and the game arena (`/game`) with their web clients.
    Serve(Box<config::ServeArgs>),
    /// Echo every text and binary message back (conformance and benchmarks).
    Echo(echo::EchoArgs),
    /// Load generator: echo, connect, idle, chat and game scenarios, and the game's cost curve.
    Bench(bench::BenchArgs),
    /// Write a self-signed certificate and key (PEM) for local TLS testing.
    DevCert(devcert::DevCertArgs),
    /// The proxy in front of volley nodes: layer 7 (TLS, HTTP/1.1, HTTP/2, HTTP/3 WebSockets, affinity, paced drain) or layer 4 (--mode tcp).
    Proxy(proxy::ProxyArgs),
    /// The whole deployment on this machine (PostgreSQL, a broker, nodes, a proxy) with fault injection, and a test that checks what every client saw.
    Cluster(cluster::ClusterArgs),
}

fn main() -> anyhow::Result<()> {
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // `VOLLEY_THREADS` sets the worker threads (the benchmark scripts pin
    // server and load generator to one core each); default: one per core.
    let threads: Option<usize> = std::env::var("VOLLEY_THREADS").ok().and_then(|v| v.parse().ok());
    // A proxy on one thread runs a current-thread runtime: its run queue is
    // first in, first out. On the multi-thread scheduler (one worker), the
    // slot that lets a just-woken task run next favoured busy connections:
    // with 1,000 WebSockets the proxy's p99 was 34-52 ms against 16-17 ms
    // on a current-thread runtime, same throughput (docs/benchmarks.md,
    // "Proxies").
    let mut builder = if threads == Some(1) && matches!(cli.command, Command::Proxy(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = threads {
            builder.worker_threads(n);
        }
        builder
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Echo(args) => echo::run(args).await,
            Command::DevCert(args) => devcert::run(args),
            Command::Bench(args) => bench::run(args).await,
            Command::Proxy(args) => proxy::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
        }
    })
}
