//! `volley cluster up` in the foreground, and what the other subcommands
//! do from another terminal through the admin address in the state file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::spec::Spec;
use crate::state::{self, StateFile};
use crate::Error;

/// Bring the cluster up with its admin server; print where everything is.
/// The caller decides how long it runs; [`stop`] ends it.
pub async fn start(mut spec: Spec, admin_port: u16) -> Result<(Arc<Cluster>, u16, Arc<Notify>), Error> {
    spec.dir = std::path::absolute(&spec.dir).map_err(Error::io(format!("{}", spec.dir.display())))?;
    if let Ok(old) = StateFile::read(&spec.dir) {
        if old.alive() {
            return Err(Error::Refused(format!(
                "a cluster already runs from {} (pid {}); `volley cluster down` first, or use another --dir",
                spec.dir.display(),
                old.pid
            )));
        }
        // A cluster whose `up` died: stop what it left behind first.
        kill_leftovers(&old).await;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", admin_port))
        .await
        .map_err(Error::io(format!("the admin address 127.0.0.1:{admin_port}")))?;
    let admin = listener.local_addr().map_err(Error::io("admin address"))?.port();
    let cluster = Cluster::up(spec).await?;
    let stop = Arc::new(Notify::new());
    tokio::spawn(crate::admin::serve(cluster.clone(), listener, stop.clone()));
    crate::admin::write_state(&cluster, admin).await;
    Ok((cluster, admin, stop))
}

/// Stop everything and remove the state file.
pub async fn stop(cluster: &Cluster) {
    cluster.down().await;
    let _ = std::fs::remove_file(state::path(cluster.dir()));
}

/// The endpoints table `up` prints.
pub fn endpoints(cluster: &Cluster, admin: u16) -> String {
    let mut out = String::new();
    let p = cluster.proxy_port;
    out += &format!(
        "  {:<14} http://127.0.0.1:{admin}/   (live page: nodes, health, rates, fault buttons)\n",
        "cluster"
    );
    out += &format!(
        "  {:<14} http://127.0.0.1:{p}/   (through the proxy; the game at /game)\n",
        "chat"
    );
    out += &format!(
        "  {:<14} ws://127.0.0.1:{p}/ws, ws://127.0.0.1:{p}/game/ws\n",
        "websockets"
    );
    out += &format!(
        "  {:<14} http://127.0.0.1:{}/metrics\n",
        "proxy metrics", cluster.proxy_admin_port
    );
    for (name, port) in &cluster.nodes {
        out += &format!(
            "  {:<14} http://127.0.0.1:{port}/   (direct, not through the proxy)\n",
            name
        );
    }
    out += &format!(
        "  {:<14} 127.0.0.1:{} ({})\n",
        "broker",
        cluster.broker_port,
        cluster.spec().broker.name()
    );
    match cluster.store_port {
        Some(port) => out += &format!("  {:<14} postgres://volley@127.0.0.1:{port}/postgres\n", "store"),
        None => {
            out += &format!(
                "  {:<14} SQLite, one file per node under {}\n",
                "store",
                cluster.dir().join("data").display()
            )
        }
    }
    for relay in cluster.relays() {
        out += &format!(
            "  {:<14} 127.0.0.1:{} -> 127.0.0.1:{}\n",
            relay.name, relay.port, relay.upstream
        );
    }
    out += &format!("  {:<14} {}\n", "logs", cluster.dir().join("logs").display());
    out
}

/// Print every service's new log lines with its name in colour, until the
/// process ends.
pub fn stream_logs(cluster: &Cluster) {
    let colours = ["36", "33", "32", "35", "34", "31", "96", "93"];
    let dir = cluster.dir().join("logs");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    let width = files
        .iter()
        .filter_map(|f| f.file_stem()?.to_str().map(str::len))
        .max()
        .unwrap_or(6);
    for (i, file) in files.into_iter().enumerate() {
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_owned();
        let colour = colours[i % colours.len()];
        tokio::task::spawn_blocking(move || tail(&file, &name, colour, width));
    }
}

fn tail(file: &Path, name: &str, colour: &str, width: usize) {
    let mut at = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let mut partial = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(mut f) = std::fs::File::open(file) else { continue };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < at {
            at = 0;
        }
        if len == at || f.seek(SeekFrom::Start(at)).is_err() {
            continue;
        }
        let mut bytes = Vec::new();
        if f.take(len - at).read_to_end(&mut bytes).is_err() {
            continue;
        }
        at = len;
        partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut out = std::io::stdout().lock();
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            let _ = write!(out, "\x1b[{colour}m{name:>width$} |\x1b[0m {line}");
        }
    }
}

async fn kill_leftovers(old: &StateFile) {
    for (_, pid, started) in &old.pids {
        // Only the very process recorded: its pid may belong to another now.
        if crate::process::started_at(*pid) != Some(*started) {
            continue;
        }
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
    if let Some(data) = &old.pg_data {
        if let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) {
            if let Some(pid) = text.lines().next() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await;
            }
        }
    }
}

fn admin_of(dir: &Path) -> Result<StateFile, Error> {
    let file = StateFile::read(dir)?;
    if !file.alive() {
        return Err(Error::NotRunning(format!(
            "{} (its `up`, pid {}, is gone; `volley cluster down` cleans up)",
            dir.display(),
            file.pid
        )));
    }
    Ok(file)
}

/// `GET /api/state` of the cluster running from `dir`.
pub async fn status(dir: &Path) -> Result<serde_json::Value, Error> {
    let file = admin_of(dir)?;
    let (code, body) = tokio::time::timeout(
        Duration::from_secs(20),
        crate::http::request_long(file.admin, "GET", "/api/state", None),
    )
    .await
    .map_err(|_| Error::Refused("the cluster did not answer within 20 s".into()))??;
    if code != 200 {
        return Err(Error::Refused(body));
    }
    serde_json::from_str(&body).map_err(|e| Error::Refused(e.to_string()))
}

/// Inject a fault into the cluster running from `dir`.
pub async fn fault(dir: &Path, action: &str, target: &str, ms: Option<u64>) -> Result<String, Error> {
    let file = admin_of(dir)?;
    post_fault(file.admin, action, target, ms).await
}

/// `POST /api/fault` to a running cluster's admin port: its result, or its
/// refusal. Restarts and drains take longer than a plain request's 5 s.
pub(crate) async fn post_fault(admin: u16, action: &str, target: &str, ms: Option<u64>) -> Result<String, Error> {
    let request = serde_json::json!({ "action": action, "target": target, "ms": ms });
    let (code, body) = tokio::time::timeout(
        Duration::from_secs(90),
        crate::http::request_long(admin, "POST", "/api/fault", Some(&request)),
    )
    .await
    .map_err(|_| Error::Refused("no answer within 90 s".into()))??;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if code == 200 {
        Ok(answer["result"].as_str().unwrap_or_default().to_owned())
    } else {
        Err(Error::Refused(answer["error"].as_str().unwrap_or(&body).to_owned()))
    }
}

/// Stop the cluster running from `dir` (or what is left of one whose
/// `up` was killed); nothing is left running.
pub async fn down(dir: &Path) -> Result<String, Error> {
    let file = StateFile::read(dir)?;
    if file.alive() {
        let _ = crate::http::post(file.admin, "/api/down", &serde_json::json!({})).await;
        // Nodes drain on the way down (up to 20 s each): give it time.
        for _ in 0..1200 {
            if !file.alive() {
                return Ok(format!("stopped the cluster in {}", dir.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", &file.pid.to_string()])
            .status()
            .await;
    }
    kill_leftovers(&file).await;
    let _ = std::fs::remove_file(state::path(dir));
    Ok(format!("stopped what was left of the cluster in {}", dir.display()))
}
