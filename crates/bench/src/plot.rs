//! The comparison plot in docs/benchmarks.md: one panel per scenario, one bar
//! per server, the median of the rounds, drawn with plotters as SVG.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What `bench/compare.sh` writes: the medians of every server in every
/// scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Rounds each figure is the median of.
    pub rounds: usize,
    /// The scenarios, in order.
    pub scenarios: Vec<ScenarioResult>,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Title, such as "echo 64 conns x 64 B".
    pub name: String,
    /// What the figure measures, with its unit.
    pub metric: String,
    /// Whether more is better (throughput) or less (latency, memory).
    pub higher_is_better: bool,
    /// Each server's median and runs.
    pub servers: Vec<ServerResult>,
}

/// One server's figures in one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResult {
    /// Implementation name.
    pub name: String,
    /// Median over the rounds.
    pub median: f64,
    /// Every round's figure.
    pub runs: Vec<f64>,
}

const COLORS: [RGBColor; 5] = [
    RGBColor(0xd9, 0x48, 0x1c),
    RGBColor(0x3b, 0x6e, 0xa8),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0x9c, 0x6a, 0xb8),
    RGBColor(0x88, 0x88, 0x88),
];

/// Draw `comparison` into an SVG file at `out`.
pub fn plot(comparison: &Comparison, out: &Path) -> Result<(), Error> {
    let n = comparison.scenarios.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let root = SVGBackend::new(out, (420 * cols as u32, 320 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| Error::Plot(e.to_string()))?;
    let panels = root.split_evenly((rows, cols));
    for (scenario, panel) in comparison.scenarios.iter().zip(panels.iter()) {
        draw_panel(scenario, panel).map_err(|e| Error::Plot(e.to_string()))?;
    }
    root.present().map_err(|e| Error::Plot(e.to_string()))?;
    Ok(())
}

fn draw_panel(
    s: &ScenarioResult,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> Result<(), Box<dyn std::error::Error>> {
    let servers = s.servers.len().max(1);
    let top = s.servers.iter().map(|r| r.median).fold(0.0f64, f64::max).max(1e-9) * 1.2;
    let better = if s.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} ({better})", s.name), ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((0..servers.saturating_sub(1)).into_segmented(), 0.0..top)?;
    let names: Vec<String> = s.servers.iter().map(|r| r.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .y_desc(s.metric.as_str())
        .x_label_style(("sans-serif", 10))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| short(*v))
        .draw()?;
    chart.draw_series(s.servers.iter().enumerate().map(|(i, r)| {
        let color = COLORS[i % COLORS.len()];
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), r.median)],
            color.filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        bar
    }))?;
    chart.draw_series(s.servers.iter().enumerate().map(|(i, r)| {
        Text::new(
            short(r.median),
            (SegmentValue::Exact(i), r.median + top * 0.03),
            ("sans-serif", 12).into_font(),
        )
    }))?;
    Ok(())
}

/// 1234567 -> "1.23M".
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Read a comparison written by `bench/compare.sh`.
pub fn read(path: &Path) -> Result<Comparison, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Data(e.to_string()))
}
