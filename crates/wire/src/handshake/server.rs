//! Server side: validate the client's upgrade request, answer 101 or an error.

use base64::Engine;
use http::{HeaderMap, Method, Request, Version};

use super::{accept_key, check_upgrade_headers, tokens, HandshakeError, MAX_HEADERS, VERSION};

/// Parse an HTTP/1.1 request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, and the request with the
/// number of bytes it used otherwise; bytes after that belong to the
/// WebSocket stream. The request is only parsed here, not validated: call
/// [`validate_request`], which also serves requests parsed by hyper.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request<()>, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    let malformed = |e: &dyn std::fmt::Display| HandshakeError::Malformed(e.to_string());
    let mut builder = Request::builder()
        .method(req.method.unwrap_or_default())
        .uri(req.path.unwrap_or_default())
        .version(if req.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        });
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let request = builder.body(()).map_err(|e| malformed(&e))?;
    Ok(Some((request, len)))
}

/// What a valid upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The `Sec-WebSocket-Accept` value to answer with (empty for an
    /// extended CONNECT, which has no key).
    pub accept: String,
    /// Subprotocols the client offered, in its order of preference.
    pub protocols: Vec<String>,
    /// An extended CONNECT over HTTP/2 (RFC 8441) or HTTP/3 (RFC 9220),
    /// answered `200`, rather than an HTTP/1.1 upgrade answered `101`.
    pub extended: bool,
}

/// Check a request against RFC 6455 section 4.2.1.
pub fn validate_request<B>(req: &Request<B>) -> Result<Validated, HandshakeError> {
    validate_head(req.method(), req.version(), req.headers())
}

/// [`validate_request`] for a request head taken apart, as HTTP servers
/// hand it to extractors (`http::request::Parts`), so nothing is copied.
pub fn validate_head(method: &Method, version: Version, headers: &HeaderMap) -> Result<Validated, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::Method(method.to_string()));
    }
    if version < Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    check_upgrade_headers(headers)?;
    let version_ok = headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes().trim_ascii() == VERSION.as_bytes());
    if !version_ok {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = single(headers, http::header::SEC_WEBSOCKET_KEY).ok_or(HandshakeError::BadKey)?;
    let key = key.trim_ascii();
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    Ok(Validated {
        accept: accept_key(key),
        protocols: tokens(headers, "sec-websocket-protocol").map(str::to_owned).collect(),
        extended: false,
    })
}

/// Check an extended CONNECT (RFC 8441 over HTTP/2, RFC 9220 over HTTP/3):
/// `CONNECT` with the `:protocol` pseudo-header `websocket` (given here as
/// `protocol`, which the HTTP layer parsed) and `Sec-WebSocket-Version: 13`.
/// There is no key and no `Upgrade`/`Connection` header: the stream itself is
/// the WebSocket's byte stream once the server answers 200.
pub fn validate_connect(
    method: &Method,
    version: Version,
    protocol: Option<&str>,
    headers: &HeaderMap,
) -> Result<Validated, HandshakeError> {
    let rejected = |reason: &str| HandshakeError::Rejected {
        status: 400,
        reason: reason.to_owned(),
    };
    if method != Method::CONNECT {
        return Err(HandshakeError::Method(method.to_string()));
    }
    if version != Version::HTTP_2 && version != Version::HTTP_3 {
        return Err(rejected("extended CONNECT needs HTTP/2 or HTTP/3"));
    }
    match protocol {
        None => {
            return Err(rejected(
                "CONNECT without :protocol (a WebSocket needs :protocol websocket)",
            ))
        }
        Some(p) if !p.eq_ignore_ascii_case("websocket") => {
            return Err(rejected(&format!(":protocol {p} is not supported (only websocket)")));
        }
        Some(_) => {}
    }
    let version_ok = headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes().trim_ascii() == VERSION.as_bytes());
    if !version_ok {
        return Err(HandshakeError::UnsupportedVersion);
    }
    Ok(Validated {
        accept: String::new(),
        protocols: tokens(headers, "sec-websocket-protocol").map(str::to_owned).collect(),
        extended: true,
    })
}

/// An opening handshake of either kind: an extended CONNECT when the method
/// is CONNECT, an HTTP/1.1 upgrade otherwise.
pub fn validate_opening(
    method: &Method,
    version: Version,
    protocol: Option<&str>,
    headers: &HeaderMap,
) -> Result<Validated, HandshakeError> {
    if method == Method::CONNECT {
        validate_connect(method, version, protocol, headers)
    } else {
        validate_head(method, version, headers)
    }
}

fn single(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&[u8]> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    Some(first.as_bytes())
}

/// The `101 Switching Protocols` answer.
pub fn switching_response(accept: &str, protocol: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(p) = protocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The `101 Switching Protocols` answer as an `http` response, for servers
/// built on hyper or axum that write the response themselves.
pub fn upgrade_response(validated: &Validated, protocol: Option<&str>) -> http::Response<()> {
    let mut response = http::Response::new(());
    if validated.extended {
        // 200 on the stream; no hop-by-hop headers exist in HTTP/2 and 3.
        if let Some(p) = protocol.and_then(|p| http::HeaderValue::from_str(p).ok()) {
            response.headers_mut().insert(http::header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        return response;
    }
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = http::HeaderValue::from_str(&validated.accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(p) = protocol.and_then(|p| http::HeaderValue::from_str(p).ok()) {
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    response
}

/// An error answer whose body says what was wrong. 426 carries the version we
/// support, as section 4.4 requires.
pub fn reject_response(err: &HandshakeError) -> Vec<u8> {
    let status = err.status();
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{err}\n");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 426 {
        out.push_str("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn check(raw: &str) -> Result<Validated, HandshakeError> {
        let (req, _) = parse_request(raw.as_bytes())?.expect("complete");
        validate_request(&req)
    }

    #[test]
    fn accepts_rfc_example() {
        let v = check(GOOD).unwrap();
        assert_eq!(v.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(v.protocols, ["chat", "superchat"]);
    }

    #[test]
    fn incomplete_head_waits() {
        for cut in 0..GOOD.len() - 1 {
            assert!(matches!(parse_request(&GOOD.as_bytes()[..cut]), Ok(None)), "cut {cut}");
        }
    }

    #[test]
    fn leftover_bytes_are_not_consumed() {
        let mut raw = GOOD.as_bytes().to_vec();
        raw.extend_from_slice(&[0x81, 0x80]);
        let (_, len) = parse_request(&raw).unwrap().unwrap();
        assert_eq!(len, GOOD.len());
    }

    #[test]
    fn rejections_carry_the_right_status() {
        let cases = [
            (GOOD.replace("GET", "POST"), 400),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (GOOD.replace("Upgrade: websocket\r\n", ""), 400),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), 400),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400),
            (GOOD.replace("Version: 13", "Version: 8"), 426),
            (GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
        ];
        for (raw, status) in cases {
            let err = check(&raw).unwrap_err();
            assert_eq!(err.status(), status, "{err}");
            let resp = String::from_utf8(reject_response(&err)).unwrap();
            assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
            if status == 426 {
                assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
            }
        }
    }

    #[test]
    fn header_case_and_lists_are_tolerated() {
        let raw = GOOD.replace("Upgrade: websocket", "upgrade: WebSocket").replace(
            "Connection: keep-alive, Upgrade",
            "connection: keep-alive\r\nConnection: UPGRADE",
        );
        assert!(check(&raw).is_ok());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            parse_request(b"\x00\x01\x02 \r\n\r\n"),
            Err(HandshakeError::Malformed(_))
        ));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100));
        assert!(matches!(parse_request(many.as_bytes()), Err(HandshakeError::TooLarge)));
    }
}
