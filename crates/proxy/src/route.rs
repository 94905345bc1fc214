//! Layer-7 routes: which backends (and which affinity) a request gets, by
//! host, path prefix and header. Built from the configuration at start and
//! at each reload; the backends themselves outlast reloads
//! ([`crate::pool::Backends`]).

use std::sync::Arc;

use http::request::Parts;
use http::HeaderName;

use crate::affinity::Affinity;
use crate::config::RouteConfig;
use crate::pool::{Backends, Pool};
use crate::{Error, ProxyConfig};

/// One route, ready to match.
#[derive(Debug)]
pub struct Route {
    /// For logs and metrics: the configured name, `routes[i]`, or `default`.
    pub name: String,
    host: Option<String>,
    path_prefix: Option<String>,
    header: Option<(HeaderName, Option<String>)>,
    /// Where its requests go.
    pub pool: Pool,
    /// Where its affinity key comes from, if it has one.
    pub affinity: Option<Affinity>,
}

impl Route {
    fn matches(&self, host: Option<&str>, parts: &Parts) -> bool {
        if let Some(want) = &self.host {
            if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                return false;
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !parts.uri.path().starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some((name, value)) = &self.header {
            let found = parts.headers.get_all(name).iter().any(|v| match value {
                None => true,
                Some(want) => v.to_str().is_ok_and(|v| v.trim() == want),
            });
            if !found {
                return false;
            }
        }
        true
    }
}

/// The routes of one configuration, the default last.
#[derive(Debug)]
pub struct Table {
    routes: Vec<Route>,
}

/// The host a request names, without its port: `Host`, or the URI's
/// authority (HTTP/2 and HTTP/3 carry it as `:authority`).
pub fn host_of(parts: &Parts) -> Option<&str> {
    let raw = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    // Strip a port, keeping IPv6 brackets' contents whole.
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    Some(raw.rsplit_once(':').map_or(raw, |(h, _)| h))
}

impl Table {
    /// The routes of `config`, their backends taken from `backends`.
    pub fn new(config: &ProxyConfig, backends: &Backends) -> Result<Table, Error> {
        let default_affinity = config
            .affinity
            .as_deref()
            .map(Affinity::parse)
            .transpose()
            .map_err(Error::Config)?;
        let pool_of = |addrs: &[String]| Pool::of(addrs.iter().map(|a| backends.get(a).0).collect(), config.balance);
        let mut routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            routes.push(Self::route(i, r, config, &default_affinity, pool_of)?);
        }
        if !config.backends.is_empty() {
            routes.push(Route {
                name: "default".into(),
                host: None,
                path_prefix: None,
                header: None,
                pool: pool_of(&config.backends),
                affinity: default_affinity,
            });
        }
        Ok(Table { routes })
    }

    fn route(
        i: usize,
        r: &RouteConfig,
        config: &ProxyConfig,
        default_affinity: &Option<Affinity>,
        pool_of: impl Fn(&[String]) -> Pool,
    ) -> Result<Route, Error> {
        let header = match &r.header {
            None => None,
            Some(h) => {
                let (name, value) = match h.split_once(':') {
                    Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
                    None => (h.trim(), None),
                };
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::Config(format!("routes[{i}]: bad header name {name}")))?;
                Some((name, value))
            }
        };
        let affinity = match &r.affinity {
            Some(spec) => Some(Affinity::parse(spec).map_err(Error::Config)?),
            None => default_affinity.clone(),
        };
        let backends = if r.backends.is_empty() {
            &config.backends
        } else {
            &r.backends
        };
        Ok(Route {
            name: r.name.clone().unwrap_or_else(|| format!("routes[{i}]")),
            host: r.host.clone(),
            path_prefix: r.path_prefix.clone(),
            header,
            pool: pool_of(backends),
            affinity,
        })
    }

    /// The route a request takes, if any.
    pub fn route_for(&self, parts: &Parts) -> Option<&Route> {
        let host = host_of(parts);
        self.routes.iter().find(|r| r.matches(host, parts))
    }

    /// Layer 4: the route for a TLS server name (or for none: a client
    /// that sent no SNI, or no TLS), by host alone.
    pub fn route_for_sni(&self, name: Option<&str>) -> Option<&Route> {
        self.routes.iter().find(|r| match &r.host {
            None => true,
            Some(want) => name.is_some_and(|n| n.eq_ignore_ascii_case(want)),
        })
    }

    /// Whether any route names a host (layer 4 then reads the TLS hello).
    pub fn routes_by_host(&self) -> bool {
        self.routes.iter().any(|r| r.host.is_some())
    }
}

/// The configuration in force and its routes, swapped whole by a reload.
#[derive(Debug)]
pub struct Current {
    /// The settings new connections get.
    pub config: Arc<ProxyConfig>,
    /// Its routes.
    pub table: Table,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host_prefix_and_header_in_order() {
        let text = r#"
backends = ["10.0.0.1:80"]
[[routes]]
name = "game"
path_prefix = "/game"
backends = ["10.0.0.2:80"]
affinity = "path:2"
[[routes]]
host = "admin.example"
header = "x-team: ops"
backends = ["10.0.0.3:80"]
"#;
        let config = ProxyConfig::from_toml(text).unwrap();
        config.validate().unwrap();
        let table = Table::new(&config, &Backends::default()).unwrap();
        let pick = |uri: &str, headers: &[(&str, &str)]| {
            let mut b = http::Request::builder().uri(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let parts = b.body(()).unwrap().into_parts().0;
            table.route_for(&parts).map(|r| r.name.clone())
        };
        assert_eq!(pick("/game/m1/ws", &[]).as_deref(), Some("game"));
        assert_eq!(pick("/ws", &[]).as_deref(), Some("default"));
        assert_eq!(
            pick("/x", &[("host", "ADMIN.example:8443"), ("x-team", "ops")]).as_deref(),
            Some("routes[1]")
        );
        assert_eq!(pick("/x", &[("host", "admin.example")]).as_deref(), Some("default"));
        assert_eq!(
            pick("https://admin.example/x", &[("x-team", "ops")]).as_deref(),
            Some("routes[1]")
        );
    }
}
