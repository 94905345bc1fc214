//! The load generator behind `volley bench`.
//!
//! A scenario drives real WebSocket connections against a running server and
//! returns what it measured; [`run`] wraps any scenario with what every run
//! needs: a progress bar, the generator's own CPU use (so a saturated
//! generator is reported, not mistaken for a slow server), and a [`Report`]
//! printed as a table or as JSON. Chat and game scenarios plug in by
//! implementing [`Scenario`].

mod chat;
mod connect;
mod echo;
mod error;
mod game;
pub mod game_curve;
mod idle;
pub mod plot;
mod raw;
mod report;
mod sys;
mod transport;

pub use chat::Chat;
pub use connect::Connect;
pub use echo::Echo;
pub use error::Error;
pub use game::Game;
pub use idle::Idle;
pub use report::{Latency, Report, ServerMemory};
pub use transport::Transport;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use volley_net::Connector;

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://` or `wss://` URL of the server under test.
    pub url: String,
    /// How to connect (TLS roots, compression offer).
    pub connector: Connector,
    /// The server's process id, when it runs on this machine: lets
    /// scenarios read its memory from `/proc`.
    pub server_pid: Option<u32>,
    /// HTTP/1.1, or streams over HTTP/2 or HTTP/3 (echo and idle).
    pub transport: Transport,
}

impl Target {
    /// Refuse a transport a scenario does not drive yet, saying so.
    pub(crate) fn http1_only(&self, scenario: &str) -> Result<(), Error> {
        if self.transport == Transport::Http1 {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "bench {scenario} measures HTTP/1.1 handshakes only; --http2 and --http3 drive echo, idle, chat and game"
        )))
    }
}

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Completed operations (round trips, connections...).
    pub ops: u64,
    /// Payload bytes moved, each way.
    pub bytes: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Per-operation latency in microseconds.
    pub latency: Option<Histogram<u64>>,
    /// The measured window (warm-up excluded).
    pub elapsed: Duration,
    /// Server memory, for scenarios that read it.
    pub server_memory: Option<ServerMemory>,
    /// CPU time the server used during the measured window (needs its pid).
    pub server_cpu: Option<Duration>,
    /// Scenario-specific figures (name -> value), shown as they are.
    pub extra: BTreeMap<String, f64>,
}

/// A load pattern.
#[allow(async_fn_in_trait)]
pub trait Scenario {
    /// Short name (`echo`, `connect`, ...).
    fn name(&self) -> &'static str;
    /// The parameters, for the report.
    fn params(&self) -> BTreeMap<String, String>;
    /// What one operation is called in the report ("round trips", ...).
    fn unit(&self) -> &'static str;
    /// Expected length, for the progress bar.
    fn expected_duration(&self) -> Duration;
    /// Run against `target`.
    fn run(&self, target: &Target) -> impl Future<Output = Result<Measured, Error>>;
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Run `scenario` with a progress bar and the generator's CPU accounting.
pub async fn run<S: Scenario>(scenario: &S, target: &Target, show_progress: bool) -> Result<Report, Error> {
    let bar = if show_progress {
        let bar = ProgressBar::new(scenario.expected_duration().as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {elapsed}/{duration}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("bench {}", scenario.name()));
        bar
    } else {
        ProgressBar::hidden()
    };
    let ticker = {
        let bar = bar.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(started.elapsed().as_millis() as u64);
            }
        })
    };
    let cpu_before = sys::process_cpu_time();
    let wall = Instant::now();
    let result = scenario.run(target).await;
    let wall = wall.elapsed();
    let cpu = sys::process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    ticker.abort();
    bar.finish_and_clear();
    let measured = result?;
    Ok(Report::new(scenario, target, measured, cpu, wall))
}
