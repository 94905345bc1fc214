//! `volley cluster` as a user runs it, from other terminals: `up` brings a
//! three-node cluster (PostgreSQL, Redis, `volley proxy`) to health,
//! `status --json` shows it, faults and restarts act on it, `down` leaves
//! no process behind. And `cluster test` fails, quoting the violation,
//! against nodes with a deliberately broken delivery (a debug-build-only
//! fault that acknowledges a message it never stores).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn volley(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run volley");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn status(dir: &str) -> Option<Value> {
    let (ok, text) = volley(&["cluster", "status", "--dir", dir, "--json"]);
    ok.then(|| serde_json::from_str(&text).ok()).flatten()
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn service<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no service {name} in {state}"))
}

#[test]
fn up_status_faults_and_down_leave_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let mut up = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["cluster", "up", "--dir", &d, "--nodes", "3", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("volley cluster up");
    let deadline = Instant::now() + Duration::from_secs(90);
    let state = loop {
        if let Some(s) = status(&d) {
            if s["services"]
                .as_array()
                .is_some_and(|l| l.iter().all(|x| x["healthy"] == true))
            {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "the cluster never became healthy");
        assert!(up.try_wait().unwrap().is_none(), "cluster up exited early");
        std::thread::sleep(Duration::from_millis(300));
    };
    let names: Vec<&str> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "broker", "n1", "n2", "n3", "proxy"]);
    assert_eq!(state["nodes"].as_array().unwrap().len(), 3);
    let pids: Vec<u64> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap())
        .collect();
    // The chat answers through the proxy.
    let url = state["url"].as_str().unwrap();
    let port: u16 = url.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // kill -9 a node: it shows down; restart: healthy again, a new pid.
    let (ok, text) = volley(&["cluster", "fault", "kill", "n2", "--dir", &d]);
    assert!(ok, "{text}");
    let s = status(&d).unwrap();
    assert_eq!(service(&s, "n2")["running"], false);
    let (ok, text) = volley(&["cluster", "restart", "n2", "--dir", &d]);
    assert!(ok, "{text}");
    let s = status(&d).unwrap();
    assert_eq!(service(&s, "n2")["healthy"], true);
    assert_ne!(service(&s, "n2")["pid"], state["services"][3]["pid"]);
    // A pause shows, and a cut link shows; bad names are refused by name.
    assert!(volley(&["cluster", "fault", "pause", "n3", "--dir", &d]).0);
    assert_eq!(service(&status(&d).unwrap(), "n3")["paused"], true);
    assert!(volley(&["cluster", "fault", "resume", "n3", "--dir", &d]).0);
    let (ok, text) = volley(&["cluster", "fault", "cut", "n1-broker", "--dir", &d]);
    assert!(ok && text.contains("n1-broker"), "{text}");
    let s = status(&d).unwrap();
    let relay = s["relays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "n1-broker")
        .unwrap();
    assert_eq!(relay["mode"]["mode"], "cut");
    assert!(volley(&["cluster", "fault", "heal", "all", "--dir", &d]).0);
    let (ok, text) = volley(&["cluster", "fault", "kill", "n9", "--dir", &d]);
    assert!(!ok && text.contains("no service \"n9\""), "{text}");
    let (ok, text) = volley(&["cluster", "fault", "explode", "n1", "--dir", &d]);
    assert!(!ok && text.contains("unknown fault"), "{text}");

    let (ok, text) = volley(&["cluster", "down", "--dir", &d]);
    assert!(ok, "{text}");
    let _ = up.wait();
    std::thread::sleep(Duration::from_millis(500));
    let mut pids = pids;
    pids.push(service(&s, "n2")["pid"].as_u64().unwrap());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
    let (ok, text) = volley(&["cluster", "status", "--dir", &d]);
    assert!(!ok && text.contains("no cluster is running"), "{text}");
}

#[test]
fn a_test_run_against_a_broken_delivery_fails_and_quotes_the_violation() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args([
            "cluster",
            "test",
            "--workload",
            "chat",
            "--faults",
            "",
            "--duration",
            "8s",
        ])
        .args(["--nodes", "2", "--seed", "1", "--report"])
        .arg(&report)
        .env("VOLLEY_INJECT_FAULT", "ack-without-store")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("volley cluster test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken delivery passed:\n{text}");
    assert!(text.contains("VIOLATION lost:"), "{text}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("**FAIL**") && md.contains("- lost: room"), "{md}");
    assert!(report.join("timeline.svg").is_file() && report.join("history.jsonl").is_file());
}
