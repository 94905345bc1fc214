//! Client side: build the upgrade request, check the server's answer.

use base64::Engine;
use http::{Response, StatusCode, Uri};

use super::{accept_key, check_upgrade_headers, tokens, HandshakeError, MAX_HEADERS, VERSION};
use crate::deflate::{DeflateConfig, DeflateParams};

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the transport must wrap the stream in TLS.
    pub secure: bool,
    /// Host name or address literal (IPv6 without brackets).
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// Path and query to request.
    pub path_and_query: String,
    /// Value for the `Host` header.
    pub authority: String,
}

impl WsUrl {
    /// Parse a URL with the `http` crate's URI parser.
    pub fn parse(url: &str) -> Result<WsUrl, HandshakeError> {
        let bad = |why: &str| HandshakeError::BadUrl(format!("{url}: {why}"));
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad("scheme must be ws or wss")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not supported"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(WsUrl {
            secure,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if secure { 443 } else { 80 }),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            authority: authority.as_str().to_owned(),
        })
    }
}

/// An upgrade request ready to send, and the key its answer must match.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The request head.
    pub bytes: Vec<u8>,
    /// Our `Sec-WebSocket-Key`.
    pub key: String,
}

/// Build the upgrade request for `url`, with a fresh random key.
pub fn client_request(url: &WsUrl, protocols: &[String], extra: &[(String, String)]) -> ClientRequest {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut out = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {VERSION}\r\n",
        url.path_and_query, url.authority
    );
    if !protocols.is_empty() {
        out.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    ClientRequest {
        bytes: out.into_bytes(),
        key,
    }
}

/// Parse a response head from the start of `buf`; `Ok(None)` while
/// incomplete. The body, if any, starts at the returned offset.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response<()>, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    let mut builder = Response::builder().status(resp.code.unwrap_or_default());
    for h in resp.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let response = builder.body(()).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    Ok(Some((response, len)))
}

/// What the server agreed to in its 101 answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agreed {
    /// The chosen subprotocol.
    pub protocol: Option<String>,
    /// permessage-deflate parameters, if the server accepted our offer.
    pub deflate: Option<DeflateParams>,
}

/// Check a 101 answer against RFC 6455 section 4.2.2 (and RFC 7692 when we
/// offered compression). A non-101 status is reported by the caller, which
/// has the body.
pub fn verify_response(
    resp: &Response<()>,
    key: &str,
    protocols: &[String],
    deflate: Option<&DeflateConfig>,
) -> Result<Agreed, HandshakeError> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(HandshakeError::Status {
            status: resp.status().as_u16(),
            body: String::new(),
        });
    }
    let headers = resp.headers();
    check_upgrade_headers(headers)?;
    let expected = accept_key(key.as_bytes());
    match headers.get(http::header::SEC_WEBSOCKET_ACCEPT) {
        Some(v) if v.as_bytes().trim_ascii() == expected.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    let extensions = headers
        .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let deflate = crate::deflate::accept_response(extensions, deflate)?;
    let mut chosen = tokens(headers, "sec-websocket-protocol");
    let protocol = match (chosen.next(), chosen.next()) {
        (None, _) => None,
        (Some(p), None) if protocols.iter().any(|o| o == p) => Some(p.to_owned()),
        (Some(p), _) => return Err(HandshakeError::UnexpectedProtocol(p.to_owned())),
    };
    Ok(Agreed { protocol, deflate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{parse_request, switching_response, validate_request};

    #[test]
    fn urls() {
        let u = WsUrl::parse("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            (u.secure, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (false, "example.com", 80, "/chat?room=1")
        );
        let u = WsUrl::parse("wss://[::1]:9001").unwrap();
        assert_eq!(
            (u.secure, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (true, "::1", 9001, "/")
        );
        assert!(WsUrl::parse("http://example.com").is_err());
        assert!(WsUrl::parse("ws://").is_err());
        assert!(WsUrl::parse("not a url").is_err());
    }

    #[test]
    fn client_request_passes_server_validation_and_back() {
        let url = WsUrl::parse("ws://localhost:9001/x").unwrap();
        let protos = vec!["a".to_owned(), "b".to_owned()];
        let req = client_request(&url, &protos, &[]);
        let (parsed, len) = parse_request(&req.bytes).unwrap().unwrap();
        assert_eq!(len, req.bytes.len());
        let v = validate_request(&parsed).unwrap();
        assert_eq!(v.protocols, protos);
        let resp = switching_response(&v.accept, Some("b"), &[]);
        let (resp, _) = parse_response(&resp).unwrap().unwrap();
        assert_eq!(
            verify_response(&resp, &req.key, &protos, None).map(|a| a.protocol),
            Ok(Some("b".to_owned()))
        );
        assert_eq!(
            verify_response(&resp, "AAAAAAAAAAAAAAAAAAAAAA==", &protos, None),
            Err(HandshakeError::BadAccept)
        );
        assert_eq!(
            verify_response(&resp, &req.key, &[], None),
            Err(HandshakeError::UnexpectedProtocol("b".to_owned()))
        );
    }

    #[test]
    fn non_101_is_reported_with_status() {
        let (resp, len) = parse_response(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
            .unwrap()
            .unwrap();
        assert_eq!(len, 45);
        assert!(matches!(
            verify_response(&resp, "k", &[], None),
            Err(HandshakeError::Status { status: 403, .. })
        ));
    }
}
