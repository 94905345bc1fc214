//! Print what a tick costs for a number of players (no sockets, no threads):
//! `cargo run --release -p volley-game --example tick_cost -- 200 5000`.

use std::time::Duration;

use volley_game::{GameConfig, TickBench};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let players = args.next().unwrap_or(200);
    let pellets = args.next().unwrap_or(5000);
    let config = GameConfig {
        pellets,
        ..GameConfig::default()
    };
    let mut bench = TickBench::new(config, players, 7);
    let mut times = Vec::new();
    let mut bytes = 0;
    for i in 0..600 {
        let (cost, b) = bench.tick();
        if i >= 60 {
            times.push((cost.sim, cost.encode));
            bytes += b;
        }
    }
    let mut total: Vec<Duration> = times.iter().map(|(s, e)| *s + *e).collect();
    total.sort();
    let mut sim: Vec<Duration> = times.iter().map(|(s, _)| *s).collect();
    sim.sort();
    let q = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "players {players} pellets {pellets}: tick p50 {:.2} ms p99 {:.2} ms (sim p50 {:.2} p99 {:.2}); {:.0} B/s per player; cells {}",
        q(&total, 0.5),
        q(&total, 0.99),
        q(&sim, 0.5),
        q(&sim, 0.99),
        bytes as f64 / times.len() as f64 / players as f64 * 30.0,
        bench.world().cells().len()
    );
}
