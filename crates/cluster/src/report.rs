//! The report of a test run, readable without the tool: `report.md` (the
//! seed and exact schedule first, then what was measured and every
//! violation quoted) and `timeline.svg` (deliveries and acknowledgements
//! per second, ack latency, reconnects, the faults as bands).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::checker::{Stats, Verdict};
use crate::cluster::Injected;
use crate::history::{Op, Outcome};
use crate::nemesis::Step;
use crate::Error;

/// What a report says about its run.
#[derive(Debug)]
pub struct Run<'a> {
    /// The command line, as run.
    pub command: String,
    /// The seed of the schedule.
    pub seed: u64,
    /// The planned schedule.
    pub schedule: &'a [Step],
    /// The faults as injected (with their results).
    pub injected: &'a [Injected],
    /// Where the cluster's clock was when the workload began.
    pub workload_start_ms: u64,
    /// The cluster: nodes, broker, store, proxy.
    pub cluster: String,
    /// The history.
    pub history: &'a [Op],
    /// The verdict.
    pub verdict: &'a Verdict,
    /// Whether the clients settled after the heal.
    pub settled: bool,
}

fn ms(v: u64) -> String {
    format!("{v} ms")
}

/// Write `report.md`, `timeline.svg` and `history.jsonl` into `dir`.
pub fn write(dir: &Path, run: &Run<'_>) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let history: String = run.history.iter().map(|op| op.to_line() + "\n").collect();
    std::fs::write(dir.join("history.jsonl"), history).map_err(Error::io("write history.jsonl"))?;
    timeline(&dir.join("timeline.svg"), run)?;
    std::fs::write(dir.join("report.md"), markdown(run)).map_err(Error::io("write report.md"))
}

/// The Markdown report.
pub fn markdown(run: &Run<'_>) -> String {
    let mut md = String::new();
    let v = run.verdict;
    let s: &Stats = &v.stats;
    let _ = writeln!(md, "# volley cluster test\n");
    let _ = writeln!(
        md,
        "**{}**: {} violation(s).\n",
        if v.violations.is_empty() { "PASS" } else { "FAIL" },
        v.violations.len()
    );
    let _ = writeln!(md, "- command: `{}`", run.command);
    let _ = writeln!(md, "- seed: **{}** (the same seed gives the same schedule)", run.seed);
    let _ = writeln!(md, "- cluster: {}", run.cluster);
    let _ = writeln!(
        md,
        "- clients settled after the heal: {}\n",
        if run.settled { "yes" } else { "no (see the violations)" }
    );
    let _ = writeln!(md, "## Schedule\n\n| at | fault | target | result |\n|---|---|---|---|");
    for step in run.schedule {
        let result = run
            .injected
            .iter()
            .find(|i| {
                i.action == step.action
                    && i.target == step.target
                    && i.at_ms + 2_000 >= run.workload_start_ms + step.at_ms
            })
            .map_or("not injected", |i| i.result.as_str());
        let _ = writeln!(
            md,
            "| {:.1} s | {}{} | {} | {} |",
            step.at_ms as f64 / 1e3,
            step.action.name(),
            step.ms.map(|m| format!(" {m} ms")).unwrap_or_default(),
            step.target,
            result
        );
    }
    let _ = writeln!(md, "\n## Measured\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| chat sends acknowledged | {} |", s.acked);
    let _ = writeln!(md, "| refused | {} |", s.refused);
    let _ = writeln!(
        md,
        "| outcome unknown | {} ({} delivered to every member, the rest to none) |",
        s.unknown, s.unknown_delivered
    );
    let _ = writeln!(md, "| deliveries | {} |", s.deliveries);
    let r = &s.resumes_ms;
    let _ = writeln!(
        md,
        "| chat reconnects | {} (back and resumed after p50 {}, p99 {}, max {}) |",
        r.len(),
        ms(Stats::quantile(r, 0.5)),
        ms(Stats::quantile(r, 0.99)),
        ms(r.last().copied().unwrap_or(0))
    );
    let g = &s.game_pauses_ms;
    let _ = writeln!(
        md,
        "| game players back in their seats | {} (pause p50 {}, p99 {}, max {}) |",
        g.len(),
        ms(Stats::quantile(g, 0.5)),
        ms(Stats::quantile(g, 0.99)),
        ms(g.last().copied().unwrap_or(0))
    );
    let per_fault = after_each_fault(run);
    if !per_fault.is_empty() {
        let _ = writeln!(
            md,
            "\n### After each fault\n\nChat connections lost from the fault until the next one, and how long each took to come back and resume; game players' pauses likewise.\n\n| at | fault | chat reconnects | back after p50 / p99 / max | game returns | pause p50 / max |\n|---|---|---|---|---|---|"
        );
        for line in per_fault {
            let _ = writeln!(md, "{line}");
        }
    }
    let _ = writeln!(md, "\n![timeline](timeline.svg)\n");
    let _ = writeln!(md, "## Violations\n");
    if v.violations.is_empty() {
        let _ = writeln!(md, "None: every acknowledged message reached every member once, in order, with no gap; no refused message was delivered; every unknown outcome was everywhere or nowhere; presence converged; every game player came back to its seat in time.");
    }
    for violation in &v.violations {
        let _ = writeln!(md, "- {violation}");
    }
    let _ = writeln!(
        md,
        "\nThe whole history is `history.jsonl` beside this file (one operation per line)."
    );
    md
}

/// One table line per injected fault: the reconnects and game returns
/// whose loss began between it and the next fault.
fn after_each_fault(run: &Run<'_>) -> Vec<String> {
    let injections: Vec<&Step> = run
        .schedule
        .iter()
        .filter(|s| !matches!(s.action.name(), "restart" | "resume" | "heal"))
        .collect();
    let mut downs: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut resumes: Vec<(u64, u64)> = Vec::new();
    let mut seats: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut pauses: Vec<(u64, u64)> = Vec::new();
    for op in run.history {
        match op {
            Op::Down { client, at_ms } => {
                downs.entry(client).or_insert(*at_ms);
            }
            Op::Up { client, at_ms } => {
                if let Some(at) = downs.remove(client.as_str()) {
                    resumes.push((at, at_ms - at));
                }
            }
            Op::SeatBefore { player, at_ms, .. } => {
                seats.insert(player, *at_ms);
            }
            Op::SeatAfter {
                player,
                at_ms: Some(up),
                ..
            } => {
                if let Some(at) = seats.remove(player.as_str()) {
                    pauses.push((at, up.saturating_sub(at)));
                }
            }
            _ => {}
        }
    }
    let mut lines = Vec::new();
    for (i, step) in injections.iter().enumerate() {
        let from = step.at_ms;
        let to = injections.get(i + 1).map_or(u64::MAX, |s| s.at_ms);
        let window = |list: &[(u64, u64)]| {
            let mut v: Vec<u64> = list
                .iter()
                .filter(|(at, _)| (from..to).contains(at))
                .map(|(_, d)| *d)
                .collect();
            v.sort_unstable();
            v
        };
        let (r, g) = (window(&resumes), window(&pauses));
        let fmt3 = |v: &[u64]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{} / {} / {} ms",
                    Stats::quantile(v, 0.5),
                    Stats::quantile(v, 0.99),
                    v.last().copied().unwrap_or(0)
                )
            }
        };
        let fmt2 = |v: &[u64]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{} / {} ms", Stats::quantile(v, 0.5), v.last().copied().unwrap_or(0))
            }
        };
        lines.push(format!(
            "| {:.1} s | {} {} | {} | {} | {} | {} |",
            from as f64 / 1e3,
            step.action.name(),
            step.target,
            r.len(),
            fmt3(&r),
            g.len(),
            fmt2(&g)
        ));
    }
    lines
}

fn timeline(path: &Path, run: &Run<'_>) -> Result<(), Error> {
    let end_ms = run
        .history
        .iter()
        .filter_map(|op| match op {
            Op::Deliver { at_ms, .. } | Op::Down { at_ms, .. } | Op::Up { at_ms, .. } => Some(*at_ms),
            Op::Send { done_ms, .. } => Some(*done_ms),
            _ => None,
        })
        .max()
        .unwrap_or(1000)
        .max(1000);
    let secs = (end_ms / 1000 + 1) as usize;
    let mut deliveries = vec![0u32; secs];
    let mut acks = vec![0u32; secs];
    let mut latency: Vec<Vec<u64>> = vec![Vec::new(); secs];
    let mut downs = Vec::new();
    for op in run.history {
        match op {
            Op::Deliver { at_ms, .. } => deliveries[(*at_ms / 1000) as usize] += 1,
            Op::Send {
                done_ms,
                at_ms,
                outcome: Outcome::Ok { .. },
                ..
            } => {
                acks[(*done_ms / 1000) as usize] += 1;
                latency[(*at_ms / 1000) as usize].push(done_ms - at_ms);
            }
            Op::Down { at_ms, .. } => downs.push(*at_ms),
            _ => {}
        }
    }
    let p99: Vec<f64> = latency
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            Stats::quantile(l, 0.99) as f64
        })
        .collect();
    let top = deliveries.iter().chain(acks.iter()).copied().max().unwrap_or(1).max(1) as f64 * 1.15;
    let top_latency = p99.iter().copied().fold(10.0, f64::max) * 1.15;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(340);
        let x = 0f64..secs as f64;
        let mut chart = ChartBuilder::on(&upper)
            .caption("messages per second (faults shaded)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x.clone(), 0f64..top)?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        // Faults: a band from injection to heal, labelled.
        let start = run.workload_start_ms;
        let mut open: Vec<(f64, String)> = Vec::new();
        for step in run.schedule {
            let at = step.at_ms as f64 / 1e3;
            match step.action.name() {
                "kill" | "pause" | "drain" | "cut" | "slow" => {
                    open.push((at, format!("{} {}", step.action.name(), step.target)))
                }
                _ => {
                    let (from, label) = match open.pop() {
                        Some(o) => o,
                        None => (at, format!("{} {}", step.action.name(), step.target)),
                    };
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(from, 0.0), ((at).max(from + 0.2), top)],
                        RGBColor(255, 120, 80).mix(0.18).filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        label,
                        (from, top * 0.97),
                        ("sans-serif", 12).into_font(),
                    )))?;
                }
            }
        }
        let _ = start;
        chart
            .draw_series(LineSeries::new(
                deliveries.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v as f64)),
                &BLUE,
            ))?
            .label("deliveries")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                acks.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v as f64)),
                &GREEN,
            ))?
            .label("acknowledged sends")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
        chart
            .draw_series(
                downs
                    .iter()
                    .map(|d| Circle::new((*d as f64 / 1e3, top * 0.05), 3, RED.filled())),
            )?
            .label("a client's connection lost")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, RED.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        let mut lat = ChartBuilder::on(&lower)
            .caption("send-to-ack latency p99 per second (ms)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x, 0f64..top_latency)?;
        lat.configure_mesh().x_desc("seconds").draw()?;
        lat.draw_series(LineSeries::new(
            p99.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v)),
            &MAGENTA,
        ))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Io("timeline.svg".into(), std::io::Error::other(e.to_string())))
}
