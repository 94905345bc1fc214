//! The result of one run, for people (a table) and machines (JSON).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{sys, Measured, Scenario, Target};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest seen.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Samples.
    pub samples: u64,
}

/// The server's memory around a scenario.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ServerMemory {
    /// RSS before the connections were opened.
    pub rss_before: u64,
    /// RSS with all connections open.
    pub rss_after: u64,
    /// Connections held open.
    pub connections: u64,
    /// `(after - before) / connections`.
    pub bytes_per_connection: f64,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario parameters.
    pub params: BTreeMap<String, String>,
    /// Server URL.
    pub url: String,
    /// What an operation is.
    pub unit: String,
    /// Operations completed in the measured window.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Payload megabytes (10^6) per second, each way.
    pub mb_per_sec: f64,
    /// Failed operations.
    pub errors: u64,
    /// Latency, where the scenario measures it.
    pub latency: Option<Latency>,
    /// Server memory, where the scenario measures it.
    pub server_memory: Option<ServerMemory>,
    /// Server CPU use during the measured window, as a share of one core.
    pub server_cpu: Option<f64>,
    /// Server CPU microseconds per operation: its efficiency, independent
    /// of whether the generator kept it busy.
    pub server_cpu_us_per_op: Option<f64>,
    /// Length of the measured window, seconds.
    pub measured_secs: f64,
    /// Generator CPU use, as a share of the cores it may use (0-1).
    pub generator_cpu: Option<f64>,
    /// Cores the generator may use.
    pub generator_cores: usize,
    /// Whether the generator itself was the bottleneck (above 90% CPU).
    pub generator_saturated: bool,
    /// Scenario-specific figures.
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

impl Report {
    pub(crate) fn new<S: Scenario>(
        scenario: &S,
        target: &Target,
        m: Measured,
        cpu: Option<Duration>,
        wall: Duration,
    ) -> Report {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let cores = sys::cores();
        let generator_cpu = cpu.map(|c| c.as_secs_f64() / wall.as_secs_f64().max(1e-9) / cores as f64);
        let latency = m.latency.as_ref().filter(|h| !h.is_empty()).map(|h| Latency {
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
            samples: h.len(),
        });
        Report {
            scenario: scenario.name().to_owned(),
            params: {
                let mut params = scenario.params();
                params.insert("transport".into(), target.transport.label());
                params
            },
            url: target.url.clone(),
            unit: scenario.unit().to_owned(),
            ops: m.ops,
            ops_per_sec: m.ops as f64 / secs,
            mb_per_sec: m.bytes as f64 / secs / 1e6,
            errors: m.errors,
            latency,
            server_memory: m.server_memory,
            server_cpu: m.server_cpu.map(|c| c.as_secs_f64() / secs),
            server_cpu_us_per_op: m
                .server_cpu
                .filter(|_| m.ops > 0)
                .map(|c| c.as_secs_f64() * 1e6 / m.ops as f64),
            measured_secs: secs,
            generator_cpu,
            generator_cores: cores,
            generator_saturated: generator_cpu.is_some_and(|c| c > 0.9),
            extra: m.extra,
        }
    }
}

/// "round trips" -> "round trip", "deliveries" -> "delivery".
fn singular(unit: &str) -> String {
    match unit.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => unit.trim_end_matches('s').to_owned(),
    }
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(f, "{:<16}{} ({})", "scenario", self.scenario, params.join(", "))?;
        writeln!(f, "{:<16}{}", "server", self.url)?;
        writeln!(f, "{:<16}{:.1}s", "measured", self.measured_secs)?;
        writeln!(f, "{:<16}{} ({:.0}/s)", self.unit, self.ops, self.ops_per_sec)?;
        if self.mb_per_sec > 0.0 {
            writeln!(f, "{:<16}{:.2} MB/s each way", "throughput", self.mb_per_sec)?;
        }
        if let Some(l) = &self.latency {
            writeln!(
                f,
                "{:<16}p50 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
                "latency",
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                l.samples
            )?;
        }
        if let Some(m) = &self.server_memory {
            writeln!(
                f,
                "{:<16}{:.0} bytes per connection (RSS {} -> {} KiB, {} connections)",
                "server memory",
                m.bytes_per_connection,
                m.rss_before / 1024,
                m.rss_after / 1024,
                m.connections
            )?;
        }
        if let (Some(share), Some(per_op)) = (self.server_cpu, self.server_cpu_us_per_op) {
            writeln!(
                f,
                "{:<16}{:.0}% of a core, {:.2} µs per {}",
                "server CPU",
                share * 100.0,
                per_op,
                singular(&self.unit)
            )?;
        }
        for (name, value) in &self.extra {
            writeln!(f, "{name:<15} {value:.3}")?;
        }
        writeln!(f, "{:<16}{}", "errors", self.errors)?;
        match self.generator_cpu {
            Some(c) => writeln!(
                f,
                "{:<16}{:.0}% of {} core(s){}",
                "generator CPU",
                c * 100.0,
                self.generator_cores,
                if self.generator_saturated {
                    " (SATURATED: the generator, not the server, may be the limit)"
                } else {
                    " (not saturated)"
                }
            ),
            None => writeln!(f, "{:<16}unknown", "generator CPU"),
        }
    }
}
