//! `volley cluster test`: a cluster of its own, the workload through its
//! proxy while the nemesis follows its schedule, then the heal, the final
//! reads, the checker's verdict and the report.

use std::path::PathBuf;
use std::time::Duration;

use crate::checker::{self, Promises, Verdict};
use crate::cluster::Cluster;
use crate::history::Op;
use crate::nemesis::{self, Step};
use crate::report::{self, Run};
use crate::spec::Spec;
use crate::target::Target;
use crate::workload::chat::{Chat, ChatLoad};
use crate::workload::game::{Game, GameLoad};
use crate::workload::Recorder;
use crate::Error;

/// What a test runs.
#[derive(Debug, Clone)]
pub struct TestSpec {
    /// The cluster to bring up (its directory is under the report's).
    pub cluster: Spec,
    /// Run against the cluster already running from this directory
    /// (`volley cluster up`) instead of bringing one up.
    pub running: Option<PathBuf>,
    /// Run the chat workload.
    pub chat: Option<ChatLoad>,
    /// Run the game workload.
    pub game: Option<GameLoad>,
    /// Fault kinds for the nemesis (see [`nemesis::KINDS`]).
    pub faults: Vec<String>,
    /// How long the workload runs while faults are injected.
    pub duration: Duration,
    /// The schedule's seed.
    pub seed: u64,
    /// Where the report goes.
    pub report: PathBuf,
    /// What the checker holds the game to.
    pub promises: Promises,
    /// The command line, for the report.
    pub command: String,
}

/// Run it; the verdict (its violations are also in the report).
pub async fn test(spec: TestSpec) -> Result<Verdict, Error> {
    let duration_ms = spec.duration.as_millis() as u64;
    let (target, shape) = match &spec.running {
        Some(dir) => {
            let target = Target::running(dir).await?;
            let shape = match &target {
                Target::Running { shape, .. } => shape.clone(),
                Target::Own(_) => String::new(),
            };
            (target, shape)
        }
        None => {
            let c = &spec.cluster;
            let shape = format!(
                "{} nodes, {} broker, {} store, {} proxy",
                c.nodes,
                c.broker.name(),
                c.store.name(),
                c.proxy.name()
            );
            (Target::Own(Cluster::up(c.clone()).await?), shape)
        }
    };
    let nodes = target.nodes().len();
    let schedule = nemesis::schedule(&spec.faults, nodes, target.postgres(), duration_ms, spec.seed);
    println!("cluster: {shape}, proxy on 127.0.0.1:{}", target.proxy_port());
    println!(
        "seed {}: {} fault steps over {:?}",
        spec.seed,
        schedule.len(),
        spec.duration
    );
    for step in &schedule {
        println!(
            "  {:>6.1} s  {} {}{}",
            step.at_ms as f64 / 1e3,
            step.action.name(),
            step.target,
            step.ms.map(|m| format!(" {m} ms")).unwrap_or_default()
        );
    }
    let result = drive(&spec, &target, &schedule).await;
    let injected = target.injected().await;
    if let Target::Own(cluster) = &target {
        cluster.down().await;
    }
    let (history, settled, workload_start) = result?;
    let verdict = checker::check(&history, spec.promises);
    let run = Run {
        command: spec.command.clone(),
        seed: spec.seed,
        schedule: &schedule,
        injected: &injected,
        workload_start_ms: workload_start,
        cluster: shape,
        history: &history,
        verdict: &verdict,
        settled,
    };
    report::write(&spec.report, &run)?;
    Ok(verdict)
}

async fn drive(spec: &TestSpec, cluster: &Target, schedule: &[Step]) -> Result<(Vec<Op>, bool, u64), Error> {
    let recorder = Recorder::new();
    let workload_start = cluster.now_ms().await;
    let chat = match &spec.chat {
        Some(load) => Some(Chat::start(cluster.proxy_port(), load, recorder.clone()).await?),
        None => None,
    };
    let game = match &spec.game {
        Some(load) => Some(Game::start(cluster.proxy_port(), load, recorder.clone()).await),
        None => None,
    };
    println!("workload running for {:?}", spec.duration);
    // The nemesis, on the workload's clock.
    let nemesis = {
        let (cluster, recorder, steps) = (cluster.clone(), recorder.clone(), schedule.to_vec());
        tokio::spawn(async move {
            for step in steps {
                let wait = step.at_ms.saturating_sub(recorder.now());
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let result = cluster.fault(step.action, &step.target, step.ms).await;
                let text = match &result {
                    Ok(t) => t.clone(),
                    Err(e) => format!("failed: {e}"),
                };
                println!("  {:>6.1} s  {text}", recorder.now() as f64 / 1e3);
                recorder.push(Op::Fault {
                    at_ms: recorder.now(),
                    action: step.action.name().into(),
                    target: step.target.clone(),
                });
            }
        })
    };
    tokio::time::sleep(spec.duration).await;
    if let Some(chat) = &chat {
        chat.stop_sending();
    }
    let _ = nemesis.await;
    for done in cluster.heal_all().await {
        println!("  heal: {done}");
    }
    // Final reads: every client back, resumed and caught up.
    let mut settled = true;
    if let Some(chat) = &chat {
        settled = chat.settle(Duration::from_secs(45)).await;
        println!("chat clients settled: {settled}");
        chat.check_presence(&cluster.nodes(), Duration::from_secs(20)).await;
    }
    if let Some(game) = game {
        game.finish().await;
    }
    if let Some(chat) = chat {
        chat.finish().await;
    }
    Ok((recorder.ops(), settled, workload_start))
}
