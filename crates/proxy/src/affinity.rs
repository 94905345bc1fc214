//! Where a request's affinity key comes from: a query parameter, a path
//! segment, a header or a cookie (`--affinity query:room`, `path:2`,
//! `header:x-room`, `cookie:NAME`). Requests with the same key (the members
//! of a room, the players of a match) meet on one backend.

use http::request::Parts;
use http::HeaderName;

/// Keys longer than this are cut: a key is an id, and the table of live keys
/// must not hold whatever a client sends.
const MAX_KEY: usize = 256;

/// The source of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// `query:NAME`: the query parameter NAME.
    Query(String),
    /// `path:N`: the Nth segment of the path, from 1 (`/game/ROOM`: 2).
    Path(usize),
    /// `header:NAME`: the header NAME.
    Header(HeaderName),
    /// `cookie:NAME`: the cookie NAME.
    Cookie(String),
}

impl Affinity {
    /// Read a SPEC; the error says what is accepted.
    pub fn parse(spec: &str) -> Result<Affinity, String> {
        let usage = || format!("{spec}: expected query:NAME, path:N, header:NAME or cookie:NAME");
        let (kind, arg) = spec.split_once(':').ok_or_else(usage)?;
        let arg = arg.trim();
        if arg.is_empty() {
            return Err(usage());
        }
        match kind.trim() {
            "query" => Ok(Affinity::Query(arg.to_owned())),
            "path" => match arg.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Affinity::Path(n)),
                _ => Err(format!("{spec}: path segments count from 1")),
            },
            "header" => HeaderName::from_bytes(arg.as_bytes())
                .map(Affinity::Header)
                .map_err(|_| format!("{spec}: {arg} is not a header name")),
            "cookie" => Ok(Affinity::Cookie(arg.to_owned())),
            _ => Err(usage()),
        }
    }

    /// The key of a request, if it carries one.
    pub fn key(&self, parts: &Parts) -> Option<String> {
        let key = match self {
            Affinity::Query(name) => parts.uri.query().and_then(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.to_owned())
            }),
            Affinity::Path(n) => parts
                .uri
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(n - 1)
                .map(str::to_owned),
            Affinity::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned()),
            Affinity::Cookie(name) => parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_owned()),
        }?;
        if key.is_empty() {
            return None;
        }
        let mut end = key.len().min(MAX_KEY);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        Some(key[..end].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_from_each_source() {
        let p = parts(
            "/game/m42/ws?x=1&room=lobby",
            &[("x-room", " r7 "), ("cookie", "a=1; match=m9")],
        );
        let key = |spec: &str| Affinity::parse(spec).unwrap().key(&p);
        assert_eq!(key("query:room").as_deref(), Some("lobby"));
        assert_eq!(key("query:none"), None);
        assert_eq!(key("path:2").as_deref(), Some("m42"));
        assert_eq!(key("path:9"), None);
        assert_eq!(key("header:x-room").as_deref(), Some("r7"));
        assert_eq!(key("cookie:match").as_deref(), Some("m9"));
        for bad in ["room", "query:", "path:0", "path:x", "header:bad header", "body:x"] {
            assert!(Affinity::parse(bad).is_err(), "{bad}");
        }
        let long = parts(&format!("/?room={}", "x".repeat(1000)), &[]);
        assert_eq!(
            Affinity::parse("query:room").unwrap().key(&long).unwrap().len(),
            MAX_KEY
        );
    }
}
