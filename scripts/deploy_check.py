#!/usr/bin/env python3
"""The deployment artifacts of deploy/ hold up, as far as this machine allows.

- deploy/systemd/*.service: `systemd-analyze verify` (with ExecStart pointed
  at the built binary, which verify requires to exist), and `systemd-analyze
  security --offline` at an exposure of at most 2.0 ("OK");
- deploy/prometheus/: `promtool check config` (which checks the alert rules
  too);
- every metric the Grafana dashboard and the alert rules query is one volley
  exports: a real `volley serve` and a real `volley proxy` in front of it get
  chat and game traffic, a refused handshake, a drain; their /metrics pages
  are scraped, and each queried name must be on them or, for metrics that
  only appear once their event happens (tick overruns, broker disconnects),
  be declared in the source (`counter!("name"` and the like). A name that is
  neither is a typo or a rename: the check fails and names it.

Usage: scripts/deploy_check.py PATH_TO_VOLLEY
"""
import json
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"deploy: nothing listens on {port}")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def declared():
    names = set()
    pattern = re.compile(r'(?:counter|gauge|histogram)!\(\s*"(volley_[a-z0-9_]+)"')
    for path in (ROOT / "crates").glob("*/src/**/*.rs"):
        names.update(pattern.findall(path.read_text()))
    return names


def queried():
    dashboard = json.loads((ROOT / "deploy/grafana/volley-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += re.findall(r"expr:\s*(.+)", (ROOT / "deploy/prometheus/volley-alerts.yml").read_text())
    return {name for e in exprs for name in re.findall(r"\bvolley_[a-z0-9_]+", e)}


def systemd(volley):
    if not shutil.which("systemd-analyze"):
        print("  systemd-analyze missing: units not checked")
        return
    with tempfile.TemporaryDirectory() as tmp:
        units = []
        for unit in sorted((ROOT / "deploy/systemd").glob("*.service")):
            text = unit.read_text().replace("/usr/local/bin/volley", str(pathlib.Path(volley).resolve()))
            copy = pathlib.Path(tmp) / unit.name
            copy.write_text(text)
            units.append(str(copy))
        subprocess.run(["systemd-analyze", "verify", *units], check=True)
        for unit in units:
            out = subprocess.run(
                ["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit],
                capture_output=True,
                text=True,
            )
            level = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
            if out.returncode != 0:
                sys.exit(f"deploy: {pathlib.Path(unit).name} exposure above 2.0: {level}")
            print(f"  {pathlib.Path(unit).name}: verify ok; {level.strip()}")


def main():
    volley = sys.argv[1]
    systemd(volley)
    subprocess.run(["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")], check=True,
                   stdout=subprocess.DEVNULL)
    print("  prometheus.yml and volley-alerts.yml: promtool ok")

    node, metrics, listen, admin = free_port(), free_port(), free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as data:
        try:
            procs.append(subprocess.Popen(
                [volley, "serve", "--addr", f"127.0.0.1:{node}", "--data-dir", data, "--metrics-addr",
                 f"127.0.0.1:{metrics}", "--max-connections-per-ip", "0", "--account-attempts-per-sec", "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(node)
            procs.append(subprocess.Popen(
                [volley, "proxy", "--listen", f"127.0.0.1:{listen}", "--backend", f"127.0.0.1:{node}",
                 "--admin", f"127.0.0.1:{admin}", "--health", "tcp"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(listen)
            wait_port(admin)
            bench = [volley, "bench"]
            subprocess.run(bench + ["chat", "--url", f"ws://127.0.0.1:{listen}/ws", "-n", "8", "-r", "2", "-p", "20",
                                    "-d", "2", "--warmup", "0", "--json"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(bench + ["game", "--url", f"ws://127.0.0.1:{listen}/game/ws", "--metrics-addr",
                                    f"127.0.0.1:{metrics}", "-n", "4", "-d", "2", "--warmup", "0", "--json"],
                           check=True, stdout=subprocess.DEVNULL)
            # A refused handshake (no key), then a drain of the node.
            with socket.create_connection(("127.0.0.1", node)) as s:
                s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
                s.recv(1024)
            subprocess.run([volley, "proxy", "drain", f"127.0.0.1:{node}", "--admin", f"127.0.0.1:{admin}"],
                           check=True, stdout=subprocess.DEVNULL)
            live = scrape(metrics) | scrape(admin)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    known = declared()
    wanted = queried()
    base = lambda n: re.sub(r"_(bucket|sum|count)$", "", n)
    seen = {n for n in wanted if n in live}
    only_declared = {n for n in wanted - seen if base(n) in known}
    missing = sorted(wanted - seen - only_declared)
    print(f"  dashboard and alerts query {len(wanted)} volley metrics: {len(seen)} on the live pages, "
          f"{len(only_declared)} declared but not seen in this run ({', '.join(sorted(only_declared)) or 'none'})")
    if missing:
        sys.exit(f"deploy: queried but never exported: {', '.join(missing)}")
    if len(seen) < len(wanted) // 2:
        sys.exit("deploy: fewer than half the queried metrics were seen live; the traffic did not happen")


if __name__ == "__main__":
    main()
