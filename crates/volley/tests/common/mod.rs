//! What the process tests share: volley children killed on drop, waiting
//! for a port, starting a `volley serve` node.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Send a signal (`HUP`, `TERM`, ...) by name.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }
}

/// Start `volley ARGS` with warnings only on stderr (dropped).
pub fn volley(args: &[&str]) -> Proc {
    volley_logging(args, None)
}

/// Start `volley ARGS`, its stderr (at `RUST_LOG=info`) to `log` if given.
pub fn volley_logging(args: &[&str], log: Option<&std::path::Path>) -> Proc {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
        None => Stdio::null(),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(args)
        .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start volley");
    Proc(child)
}

/// Wait until `addr` accepts TCP connections (30 s at most).
pub fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], volley_testkit::free_port().unwrap()))
}

/// A `volley serve` node named `name` on `addr`, its data under `dir`.
pub fn node(addr: SocketAddr, name: &str, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let (addr_s, data) = (addr.to_string(), dir.join(name).display().to_string());
    let mut args = vec!["serve", "--addr", &addr_s, "--node-id", name, "--data-dir", &data];
    args.extend_from_slice(extra);
    let p = volley(&args);
    wait_port(addr);
    p
}

/// `volley dev-cert` into `dir` for `names`: the certificate and key paths.
pub fn dev_cert(dir: &std::path::Path, names: &[&str]) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_volley"));
    command.args([
        "dev-cert",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    for name in names {
        command.args(["--name", name]);
    }
    let status = command.stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    (cert.display().to_string(), key.display().to_string())
}
