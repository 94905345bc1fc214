//! The game's capacity curve: what one tick (simulation plus every
//! player's snapshot) costs on one core as the player count grows, measured
//! in-process with [`volley_game::TickBench`] (no sockets: the network side
//! is measured by the `game` scenario), and drawn as an SVG.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use volley_game::{GameConfig, TickBench};

use crate::Error;

/// One player count's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Server bots in the room, each with a viewer that gets a snapshot every tick.
    pub players: usize,
    /// Median tick time (simulation plus snapshot encoding), in milliseconds.
    pub tick_p50_ms: f64,
    /// 99th-percentile tick time in milliseconds: the figure plotted against the tick budget.
    pub tick_p99_ms: f64,
    /// 99th-percentile time of the simulation step alone, in milliseconds.
    pub sim_p99_ms: f64,
    /// 99th-percentile time to build and encode every viewer's snapshot, in milliseconds.
    pub encode_p99_ms: f64,
    /// Snapshot bytes per player per second.
    pub bytes_per_player_per_s: f64,
    /// Ticks longer than the tick period.
    pub overruns: usize,
    /// Ticks measured, after a one-second warm-up that is not counted.
    pub ticks: usize,
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}

/// Run `ticks` ticks (after a one-second warm-up) for each player count.
pub fn measure(config: &GameConfig, players: &[usize], ticks: usize, seed: u64) -> Vec<CurvePoint> {
    let period = Duration::from_secs_f64(1.0 / config.tick_hz as f64);
    players
        .iter()
        .map(|&n| {
            let mut bench = TickBench::new(config.clone(), n, seed);
            for _ in 0..config.tick_hz {
                bench.tick();
            }
            let mut total = Vec::with_capacity(ticks);
            let mut sim = Vec::with_capacity(ticks);
            let mut encode = Vec::with_capacity(ticks);
            let mut bytes = 0;
            for _ in 0..ticks {
                let (cost, b) = bench.tick();
                total.push(cost.sim + cost.encode);
                sim.push(cost.sim);
                encode.push(cost.encode);
                bytes += b;
            }
            let overruns = total.iter().filter(|t| **t > period).count();
            total.sort();
            sim.sort();
            encode.sort();
            CurvePoint {
                players: n,
                tick_p50_ms: quantile(&total, 0.5),
                tick_p99_ms: quantile(&total, 0.99),
                sim_p99_ms: quantile(&sim, 0.99),
                encode_p99_ms: quantile(&encode, 0.99),
                bytes_per_player_per_s: bytes as f64 / ticks as f64 / n.max(1) as f64 * config.tick_hz as f64,
                overruns,
                ticks,
            }
        })
        .collect()
}

/// Players vs p99 tick time (and p50), with the 10 ms target and the tick
/// budget drawn as lines; `network` adds measured points from runs with
/// bots over real connections: (players, p99 ms).
pub fn plot(points: &[CurvePoint], network: &[(f64, f64)], budget_ms: f64, out: &Path) -> Result<(), Error> {
    let err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
    let root = SVGBackend::new(out, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max_x = points.iter().map(|p| p.players).max().unwrap_or(100) as f64;
    let max_y = points
        .iter()
        .map(|p| p.tick_p99_ms)
        .chain(network.iter().map(|n| n.1))
        .fold(budget_ms, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "game tick on one core: simulation + every player's snapshot",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x * 1.05, 0f64..max_y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("players in the room")
        .y_desc("tick time (ms)")
        .draw()
        .map_err(|e| err(&e))?;
    let red = RGBColor(0xd9, 0x48, 0x1c);
    let blue = RGBColor(0x3b, 0x6e, 0xa8);
    let green = RGBColor(0x59, 0xa1, 0x4f);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.players as f64, p.tick_p99_ms)),
            red.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("p99 (in-process)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.players as f64, p.tick_p99_ms), 3, red.filled())),
        )
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.players as f64, p.tick_p50_ms)),
            blue.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("p50 (in-process)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    if !network.is_empty() {
        chart
            .draw_series(
                network
                    .iter()
                    .map(|&(x, y)| TriangleMarker::new((x, y), 7, green.filled())),
            )
            .map_err(|e| err(&e))?
            .label("p99 (server, bots over WebSockets)")
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, green.filled()));
    }
    for (level, label, color) in [
        (10.0, "10 ms target", BLACK),
        (budget_ms, "tick budget", RGBColor(0x88, 0x88, 0x88)),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(0.0, level), (max_x * 1.05, level)],
                color.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
