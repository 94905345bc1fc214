//! The nemesis: a schedule of faults drawn from a seed (the same seed, the
//! same schedule), each one injected and then healed, one at a time.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::Action;

/// The kinds of fault a test may ask for (`--faults`).
pub const KINDS: &[&str] = &[
    "kill",
    "pause",
    "drain",
    "broker-restart",
    "store-restart",
    "proxy-reload",
    "cut",
    "slow",
];

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// When, in milliseconds from the start of the workload.
    pub at_ms: u64,
    /// What.
    pub action: Action,
    /// To whom (a service or a link).
    pub target: String,
    /// The delay of a `slow`.
    pub ms: Option<u64>,
    /// The kind of fault it belongs to (`kill` for both the kill and the restart).
    pub kind: String,
}

/// Check a `--faults` list against [`KINDS`].
pub fn parse_kinds(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            if KINDS.contains(&k) {
                Ok(k.to_owned())
            } else {
                Err(format!("unknown fault {k:?}: any of {}", KINDS.join(", ")))
            }
        })
        .collect()
}

/// The schedule for a run of `duration_ms` over nodes n1..n`nodes`: a
/// fault every few seconds, from the first at 3 s, each healed before the
/// next begins, the last healed 5 s before the end. `store` is whether
/// there is a PostgreSQL to restart or cut.
pub fn schedule(kinds: &[String], nodes: usize, store: bool, duration_ms: u64, seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return steps;
    }
    let mut order: Vec<&String> = kinds.iter().filter(|k| store || *k != "store-restart").collect();
    if order.is_empty() {
        return steps;
    }
    order.shuffle(&mut rng);
    let mut at = 3_000;
    let end = duration_ms.saturating_sub(5_000);
    let mut i = 0;
    let step = |at_ms: u64, action: Action, target: &str, ms: Option<u64>, kind: &str| Step {
        at_ms,
        action,
        target: target.to_owned(),
        ms,
        kind: kind.to_owned(),
    };
    while at < end {
        let kind = order[i % order.len()].as_str();
        i += 1;
        let node = format!("n{}", rng.random_range(1..=nodes));
        let hold = rng.random_range(2_000..4_000u64);
        let healed = (at + hold).min(end);
        match kind {
            "kill" => {
                steps.push(step(at, Action::Kill, &node, None, kind));
                steps.push(step(healed, Action::Restart, &node, None, kind));
            }
            "pause" => {
                steps.push(step(at, Action::Pause, &node, None, kind));
                steps.push(step(healed, Action::Resume, &node, None, kind));
            }
            "drain" => {
                steps.push(step(at, Action::Drain, &node, None, kind));
                steps.push(step(healed, Action::Restart, &node, None, kind));
            }
            "broker-restart" => {
                steps.push(step(at, Action::Kill, "broker", None, kind));
                steps.push(step(healed, Action::Restart, "broker", None, kind));
            }
            "store-restart" => {
                steps.push(step(at, Action::Kill, "store", None, kind));
                steps.push(step(healed, Action::Restart, "store", None, kind));
            }
            "proxy-reload" => steps.push(step(at, Action::Reload, "proxy", None, kind)),
            "cut" | "slow" => {
                let mut links = vec![format!("{node}-broker"), format!("proxy-{node}"), node.clone()];
                if store {
                    links.push(format!("{node}-store"));
                }
                let link = links[rng.random_range(0..links.len())].clone();
                if kind == "cut" {
                    steps.push(step(at, Action::Cut, &link, None, kind));
                } else {
                    steps.push(step(at, Action::Slow, &link, Some(rng.random_range(100..400)), kind));
                }
                steps.push(step(healed, Action::Heal, &link, None, kind));
            }
            _ => {}
        }
        at = healed + rng.random_range(2_000..4_000u64);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_every_fault_is_healed() {
        let kinds = parse_kinds("kill,pause,broker-restart,cut").unwrap();
        let a = schedule(&kinds, 3, true, 60_000, 7);
        assert_eq!(a, schedule(&kinds, 3, true, 60_000, 7));
        assert_ne!(a, schedule(&kinds, 3, true, 60_000, 8));
        assert!(a.len() >= 8, "{a:?}");
        assert!(a.iter().all(|s| s.at_ms <= 55_000));
        for kind in ["kill", "pause", "broker-restart", "cut"] {
            let of: Vec<&Step> = a.iter().filter(|s| s.kind == kind).collect();
            assert!(
                !of.is_empty() && of.len().is_multiple_of(2),
                "{kind}: injected and healed"
            );
        }
        assert!(parse_kinds("kill,flood").is_err());
    }
}
