//! The proxy in front of the nodes, as a command line: `volley proxy`, or
//! HAProxy and nginx with configurations written for this cluster's ports
//! in the shape of deploy/ (a match's `?node=` pins its node, other
//! connections are balanced round robin).

use std::path::Path;

use crate::process::find;
use crate::spec::ProxyKind;
use crate::Error;

/// Program and arguments for the proxy listening on `listen`, with its
/// admin (metrics) on `admin` where it has one, in front of `nodes`
/// (name, port of the relay to the node). Writes a configuration under
/// `dir` where the proxy needs one.
pub(crate) fn command(
    kind: ProxyKind,
    volley: &Path,
    dir: &Path,
    listen: u16,
    admin: u16,
    nodes: &[(String, u16)],
) -> Result<Vec<String>, Error> {
    match kind {
        ProxyKind::Volley => {
            // Every client of a local cluster comes from 127.0.0.1: lift the
            // per-address limits that protect a real deployment.
            let config = dir.join("proxy.toml");
            std::fs::write(&config, "max_connections_per_ip = 0\nhandshake_rate = 0\n")
                .map_err(Error::io("write proxy.toml"))?;
            let mut argv = vec![
                volley.display().to_string(),
                "proxy".into(),
                "--config".into(),
                config.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{listen}"),
                "--admin".into(),
                format!("127.0.0.1:{admin}"),
                "--affinity".into(),
                "query:node".into(),
                "--health".into(),
                "http".into(),
            ];
            for (name, port) in nodes {
                argv.push("--backend".into());
                argv.push(format!("{name}=127.0.0.1:{port}"));
            }
            Ok(argv)
        }
        ProxyKind::Haproxy => {
            let bin = find("haproxy", &["/usr/sbin/haproxy"], "haproxy")?;
            let mut cfg = format!(
                "global\n    maxconn 8000\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout http-request 10s\n    \
                 timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\n\
                 frontend volley\n    bind 127.0.0.1:{listen}\n    default_backend nodes\n\n\
                 frontend stats\n    bind 127.0.0.1:{admin}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n\n\
                 backend nodes\n    balance roundrobin\n    retries 2\n    option redispatch 1\n    option httpchk\n    \
                 http-check send meth GET uri /healthz\n    default-server check inter 1s fall 2 rise 2\n"
            );
            for (name, _) in nodes {
                cfg += &format!("    use-server {name} if {{ url_param(node) -m str {name} }}\n");
            }
            for (name, port) in nodes {
                cfg += &format!("    server {name} 127.0.0.1:{port}\n");
            }
            let path = dir.join("haproxy.cfg");
            std::fs::write(&path, cfg).map_err(Error::io("write haproxy.cfg"))?;
            Ok(vec![
                bin.display().to_string(),
                "-W".into(),
                "-db".into(),
                "-f".into(),
                path.display().to_string(),
            ])
        }
        ProxyKind::Nginx => {
            let bin = find("nginx", &["/usr/sbin/nginx"], "nginx")?;
            let mut cfg = format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
                 events {{ worker_connections 8192; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {dir}/nginx-body;\n  proxy_temp_path {dir}/nginx-proxy;\n  \
                 fastcgi_temp_path {dir}/nginx-fastcgi;\n  uwsgi_temp_path {dir}/nginx-uwsgi;\n  scgi_temp_path {dir}/nginx-scgi;\n  \
                 map $http_upgrade $volley_connection {{ default upgrade; '' ''; }}\n  \
                 upstream volley_nodes {{\n",
                dir = dir.display()
            );
            for (_, port) in nodes {
                cfg += &format!("    server 127.0.0.1:{port} max_fails=2 fail_timeout=5s;\n");
            }
            cfg += "  }\n  map $arg_node $volley_upstream {\n    default volley_nodes;\n";
            for (name, _) in nodes {
                cfg += &format!("    {name} volley_{name};\n");
            }
            cfg += "  }\n";
            for (name, port) in nodes {
                cfg +=
                    &format!("  upstream volley_{name} {{ server 127.0.0.1:{port} max_fails=1 fail_timeout=5s; }}\n");
            }
            cfg += &format!(
                "  server {{\n    listen 127.0.0.1:{listen};\n    location / {{\n      proxy_pass http://$volley_upstream;\n      \
                 proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      \
                 proxy_set_header Connection $volley_connection;\n      proxy_set_header Host $host;\n      \
                 proxy_read_timeout 1h;\n      proxy_send_timeout 1h;\n      proxy_connect_timeout 5s;\n      proxy_buffering off;\n    }}\n  }}\n  \
                 server {{\n    listen 127.0.0.1:{admin};\n    location = /metrics {{ stub_status; }}\n  }}\n}}\n"
            );
            let path = dir.join("nginx.conf");
            std::fs::write(&path, cfg).map_err(Error::io("write nginx.conf"))?;
            Ok(vec![
                bin.display().to_string(),
                "-c".into(),
                path.display().to_string(),
                "-e".into(),
                "stderr".into(),
            ])
        }
    }
}

/// The signal that makes the proxy read its configuration again.
pub(crate) fn reload_signal(kind: ProxyKind) -> &'static str {
    match kind {
        // HAProxy's master (-W) reloads on USR2.
        ProxyKind::Haproxy => "USR2",
        ProxyKind::Volley | ProxyKind::Nginx => "HUP",
    }
}
