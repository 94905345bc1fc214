//! Drives the Autobahn|Testsuite `fuzzingserver` (or kosoku in that mode)
//! with volley's client: fetch the case count, echo every case, then ask the
//! server to write its reports.
//!
//! ```text
//! cargo run --release -p volley-net --example autobahn_client -- ws://127.0.0.1:9001 [PARALLEL]
//! ```
//!
//! PARALLEL cases run at once (default 1); each case is its own connection,
//! so this only shortens the run.

use volley_net::{Config, Connector, DeflateConfig, Error};

const AGENT: &str = "volley";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let parallel: u32 = std::env::args().nth(2).and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    // Offer compression with the client_no_context_takeover hint: the
    // suite's servers accept some offers only when it is present. Threshold
    // 0: kosoku 0.1.0 cannot hash an uncompressed echo in the compression
    // cases (a Python 3 port bug), so every message is compressed here.
    let connector = Connector::new(Config {
        ping_interval: None,
        ..Config::default()
    })
    .deflate(DeflateConfig {
        client_no_context_takeover: true,
        threshold: 0,
        ..DeflateConfig::default()
    });
    let count = case_count(&connector, &base).await?;
    eprintln!("{count} cases");
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (connector, base, next) = (connector.clone(), base.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let case = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if case > count {
                    return;
                }
                let url = format!("{base}/runCase?case={case}&agent={AGENT}");
                if let Err(e) = run_case(&connector, &url).await {
                    eprintln!("case {case}: {e}");
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    // The server writes its reports and hangs up; how it hangs up is not
    // part of any case.
    let mut ws = connector
        .connect(&format!("{base}/updateReports?agent={AGENT}"))
        .await?;
    while let Ok(Some(_)) = ws.recv().await {}
    Ok(())
}

async fn case_count(connector: &Connector, base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let mut ws = connector.connect(&format!("{base}/getCaseCount")).await?;
    let message = ws.recv().await?.ok_or("no case count")?;
    let count = std::str::from_utf8(message.as_bytes())?.trim().parse()?;
    while ws.recv().await?.is_some() {}
    Ok(count)
}

async fn run_case(connector: &Connector, url: &str) -> Result<(), Error> {
    let mut ws = connector.connect(url).await?;
    while let Some(message) = ws.recv().await? {
        ws.feed(message).await?;
    }
    Ok(())
}
