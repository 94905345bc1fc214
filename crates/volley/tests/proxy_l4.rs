//! `volley proxy --mode tcp` in front of real `volley serve` processes:
//! connections spread over the backends, a backend killed with -9 is taken
//! out (clients go to the other at once) and brought back when it returns,
//! hashing keeps a client on one node, and with PROXY protocol v2 the node
//! counts and limits the real client addresses (clients connect from
//! 127.0.0.2 and 127.0.0.3 so the node can tell them apart from the proxy
//! on 127.0.0.1).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{node, volley, wait_port};
use volley_testkit::free_port;

/// A TCP connection from `from` (a loopback address) to `to` (std cannot
/// bind before connecting; tokio's `TcpSocket` can).
fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// One HTTP/1.1 GET on a fresh connection from `from`: status and the
/// `x-volley-node` header (status 0 when the connection closed without an answer).
fn get_from(from: IpAddr, to: SocketAddr, path: &str) -> (u16, String) {
    let mut s = connect_from(from, to);
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let node = text
        .lines()
        .find_map(|l| l.strip_prefix("x-volley-node: "))
        .unwrap_or("")
        .trim()
        .to_owned();
    (status, node)
}

const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn balances_fails_over_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let b = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let mut node_a = node(a, "a", dir.path(), &[]);
    let _node_b = node(b, "b", dir.path(), &[]);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let (a_s, b_s, l_s, admin_s) = (a.to_string(), b.to_string(), listen.to_string(), admin.to_string());
    let _proxy = volley(&[
        "proxy",
        "--mode",
        "tcp",
        "--listen",
        &l_s,
        "--backend",
        &a_s,
        "--backend",
        &b_s,
        "--admin",
        &admin_s,
    ]);
    wait_port(listen);
    wait_port(admin);

    // Round robin: both nodes answer, in turn (the readiness probe took a
    // turn too, so the split is 3/3 or 4/2, never all on one).
    let seen: Vec<String> = (0..6).map(|_| get_from(ME, listen, "/healthz").1).collect();
    assert!(seen.iter().filter(|n| *n == "a").count() >= 2, "{seen:?}");
    assert!(seen.iter().filter(|n| *n == "b").count() >= 2, "{seen:?}");

    // kill -9 of a: no client is turned away (a failed connect moves on to
    // b at once), and the checks take a out.
    let _ = node_a.0.kill();
    let _ = node_a.0.wait();
    let killed = Instant::now();
    for _ in 0..10 {
        let (status, node) = get_from(ME, listen, "/healthz");
        assert_eq!((status, node.as_str()), (200, "b"), "after the kill");
    }
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "no request waited on the dead node"
    );
    // The admin address shows it: a down, b up, connections counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let down = format!("volley_proxy_backend_up{{backend=\"{a}\"}} 0");
    loop {
        let mut s = TcpStream::connect(admin).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        if text.contains(&down) {
            assert!(
                text.contains(&format!("volley_proxy_backend_up{{backend=\"{b}\"}} 1")),
                "{text}"
            );
            assert!(text.contains("volley_proxy_connections_total"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "a never shown down on /metrics: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // a returns on the same port: after two passed checks it gets traffic again.
    node_a = node(a, "a", dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get_from(ME, listen, "/healthz").1 == "a" {
            break;
        }
        assert!(Instant::now() < deadline, "a never came back into rotation");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(node_a);
}

#[test]
fn hashing_keeps_a_client_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let b = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let _node_a = node(a, "a", dir.path(), &[]);
    let _node_b = node(b, "b", dir.path(), &[]);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let (a_s, b_s, l_s) = (a.to_string(), b.to_string(), listen.to_string());
    let _proxy = volley(&[
        "proxy",
        "--mode",
        "tcp",
        "--balance",
        "hash",
        "--listen",
        &l_s,
        "--backend",
        &a_s,
        "--backend",
        &b_s,
    ]);
    wait_port(listen);
    // 64 clients: all on one node by chance has a probability of 2^-63.
    let mut nodes = std::collections::HashSet::new();
    for last in 2..66u8 {
        let client = IpAddr::from([127, 0, 0, last]);
        let first = get_from(client, listen, "/healthz").1;
        assert_eq!(get_from(client, listen, "/healthz").1, first, "client {client} moved");
        nodes.insert(first);
    }
    assert_eq!(nodes.len(), 2, "64 clients spread over both nodes: {nodes:?}");
}

#[test]
fn proxy_protocol_gives_the_node_the_real_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    // The node believes PROXY headers from 127.0.0.1 (the proxy) only, and
    // allows one connection per client address.
    let _node = node(
        a,
        "a",
        dir.path(),
        &[
            "--proxy-protocol",
            "--trusted-proxies",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ],
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let (a_s, l_s) = (a.to_string(), listen.to_string());
    let _proxy = volley(&[
        "proxy",
        "--mode",
        "tcp",
        "--proxy-protocol",
        "--listen",
        &l_s,
        "--backend",
        &a_s,
    ]);
    wait_port(listen);
    // Wait for the proxy's first health check (sent with a LOCAL header).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_from(IpAddr::from([127, 0, 0, 4]), listen, "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "no answer through the proxy");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 127.0.0.2 holds its one connection open (a head not yet finished).
    let mut held = connect_from(ME, listen);
    held.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    // Once the node has counted it, 127.0.0.2 is over its cap. (Generous:
    // under a loaded `cargo test` a health check can time out and take the
    // only backend out for a moment, answering 0 in between.)
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let status = get_from(ME, listen, "/healthz").0;
        if status == 429 {
            break;
        }
        seen.push(status);
        assert!(Instant::now() < deadline, "the real address is never counted: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another client is not counted with it: the node sees 127.0.0.3, not
    // the proxy's 127.0.0.1 (which would now be over the cap of one).
    assert_eq!(get_from(IpAddr::from([127, 0, 0, 3]), listen, "/healthz").0, 200);
    drop(held);

    // Straight to the node from the trusted address without a header: refused.
    let mut bare = TcpStream::connect(a).unwrap();
    bare.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = bare.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = bare.read_to_string(&mut text);
    assert!(text.is_empty(), "a trusted source must send the header: {text}");
    // From an untrusted address the header is not expected (nor believed).
    assert_eq!(get_from(IpAddr::from([127, 0, 0, 5]), a, "/healthz").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passes_through_routed_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::dev_cert(dir.path(), &["chat.test", "localhost"]);
    let (cert, key) = (std::path::PathBuf::from(cert), std::path::PathBuf::from(key));
    let a = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let b = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--no-http3",
    ];
    let _node_a = node(a, "a", dir.path(), &tls);
    let _node_b = node(b, "b", dir.path(), &tls);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"{listen}\"\nmode = \"tcp\"\nbackends = [\"{b}\"]\n[health]\nkind = \"tcp\"\n\
             [[routes]]\nhost = \"chat.test\"\nbackends = [\"{a}\"]\n"
        ),
    )
    .unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(["proxy", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let _proxy = volley(&["proxy", "--config", file.to_str().unwrap()]);
    wait_port(listen);
    let client_tls = volley_net::tls::client_config(Some(&cert)).unwrap();
    // The node's own certificate answers (the proxy holds no key), and the
    // server name picks the node.
    for (name, want) in [("chat.test", "a"), ("localhost", "b"), ("chat.test", "a")] {
        let h2 = volley_net::H2Connection::connect(
            &listen.to_string(),
            name,
            client_tls.clone(),
            volley_net::Config::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("TLS through the proxy as {name}: {e}"));
        let (status, body) = h2.get("/health").await.unwrap();
        assert_eq!(status, 200);
        let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(health["node"], want, "SNI {name}");
    }
    // Not TLS at all: closed without reaching a node.
    let mut plain = TcpStream::connect(listen).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = plain.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = plain.read_to_string(&mut text);
    assert!(text.is_empty(), "{text}");
}
