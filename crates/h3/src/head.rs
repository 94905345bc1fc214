//! Request and response heads to and from QPACK field lists, with the rules
//! of RFC 9114, section 4.3 (pseudo-headers) and RFC 9220 (extended CONNECT
//! carries `:protocol`, `:scheme`, `:path` and `:authority`).
//!
//! A head that breaks them is malformed: [`Error::Message`], which the
//! server answers by resetting the stream with H3_MESSAGE_ERROR.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};

use crate::qpack::{self, Field};
use crate::Error;

/// A decoded request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, URI (scheme, authority, path), version HTTP/3, headers.
    pub request: Request<()>,
    /// The `:protocol` pseudo-header of an extended CONNECT.
    pub protocol: Option<String>,
}

/// Headers HTTP/3 forbids (section 4.2): they describe an HTTP/1.1 connection.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn malformed(reason: impl Into<String>) -> Error {
    Error::Message(reason.into())
}

/// Pseudo-headers by name, in the order received.
type Pseudo<'a> = Vec<(&'a str, &'a str)>;

/// Split pseudo-headers from regular ones, enforcing order, case and the
/// connection-specific ban.
fn split<'a>(fields: &'a [Field], allowed: &[&str]) -> Result<(Pseudo<'a>, HeaderMap), Error> {
    let mut pseudo: Vec<(&str, &str)> = Vec::new();
    let mut headers = HeaderMap::new();
    for field in fields {
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).map_err(|_| malformed("pseudo-header is not text"));
        if field.name.first() == Some(&b':') {
            if !headers.is_empty() {
                return Err(malformed("pseudo-header after a regular header"));
            }
            let name = text(&field.name)?;
            if !allowed.contains(&name) {
                return Err(malformed(format!("pseudo-header {name} is not allowed here")));
            }
            if pseudo.iter().any(|(n, _)| *n == name) {
                return Err(malformed(format!("pseudo-header {name} repeated")));
            }
            pseudo.push((name, text(&field.value)?));
            continue;
        }
        if field.name.iter().any(u8::is_ascii_uppercase) {
            return Err(malformed("header names must be lowercase"));
        }
        let name = HeaderName::from_bytes(&field.name).map_err(|_| malformed("invalid header name"))?;
        if CONNECTION_SPECIFIC.contains(&name.as_str()) {
            return Err(malformed(format!("connection-specific header {name}")));
        }
        if name == http::header::TE && field.value != b"trailers" {
            return Err(malformed("te other than trailers"));
        }
        let value = HeaderValue::from_bytes(&field.value).map_err(|_| malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok((pseudo, headers))
}

/// A request head from its decoded fields.
pub fn request_from_fields(fields: &[Field]) -> Result<RequestHead, Error> {
    let (pseudo, headers) = split(fields, &[":method", ":scheme", ":authority", ":path", ":protocol"])?;
    let get = |name: &str| pseudo.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let method = get(":method").ok_or_else(|| malformed("no :method"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| malformed("invalid :method"))?;
    let protocol = get(":protocol").map(str::to_owned);
    let (scheme, authority, path) = (get(":scheme"), get(":authority"), get(":path"));
    if let (Some(authority), Some(host)) = (authority, headers.get(http::header::HOST)) {
        if host.as_bytes() != authority.as_bytes() {
            return Err(malformed(":authority and host differ"));
        }
    }
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(malformed(":authority with userinfo"));
    }
    if protocol.is_some() && method != Method::CONNECT {
        return Err(malformed(":protocol on a request that is not CONNECT"));
    }
    let uri = if method == Method::CONNECT && protocol.is_none() {
        // Classic CONNECT: a tunnel to :authority, no scheme or path.
        if scheme.is_some() || path.is_some() {
            return Err(malformed("CONNECT without :protocol has no :scheme or :path"));
        }
        let authority = authority.ok_or_else(|| malformed("CONNECT without :authority"))?;
        Uri::builder().authority(authority).build()
    } else {
        let scheme = scheme.ok_or_else(|| malformed("no :scheme"))?;
        let path = path.filter(|p| !p.is_empty()).ok_or_else(|| malformed("no :path"))?;
        if protocol.is_some() && authority.is_none() {
            return Err(malformed("extended CONNECT without :authority"));
        }
        let mut uri = Uri::builder().scheme(scheme).path_and_query(path);
        if let Some(authority) = authority {
            uri = uri.authority(authority);
        } else if let Some(host) = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            uri = uri.authority(host);
        }
        uri.build()
    }
    .map_err(|e| malformed(format!("invalid request target: {e}")))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_3;
    *request.headers_mut() = headers;
    Ok(RequestHead { request, protocol })
}

/// A response head from its decoded fields.
pub fn response_from_fields(fields: &[Field]) -> Result<Response<()>, Error> {
    let (pseudo, headers) = split(fields, &[":status"])?;
    let status = pseudo
        .first()
        .and_then(|(_, v)| StatusCode::from_bytes(v.as_bytes()).ok())
        .ok_or_else(|| malformed("no valid :status"))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = Version::HTTP_3;
    *response.headers_mut() = headers;
    Ok(response)
}

fn regular(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .filter(|(name, _)| !CONNECTION_SPECIFIC.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
}

/// The encoded field section of a response head (connection-specific
/// headers an HTTP/1.1-minded handler may have set are left out).
pub fn encode_response(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let status = status.as_str().as_bytes();
    qpack::encode(std::iter::once((b":status".as_slice(), status)).chain(regular(headers)))
}

/// The encoded field section of a request head. `protocol` makes it an
/// extended CONNECT (the method must then be CONNECT).
pub fn encode_request(method: &Method, uri: &Uri, protocol: Option<&str>, headers: &HeaderMap) -> Vec<u8> {
    let mut pseudo: Vec<(&[u8], &[u8])> = vec![(b":method", method.as_str().as_bytes())];
    if let Some(protocol) = protocol {
        pseudo.push((b":protocol", protocol.as_bytes()));
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    pseudo.push((b":scheme", scheme.as_bytes()));
    if let Some(authority) = uri.authority() {
        pseudo.push((b":authority", authority.as_str().as_bytes()));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    pseudo.push((b":path", path.as_bytes()));
    qpack::encode(pseudo.into_iter().chain(regular(headers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Result<RequestHead, Error> {
        request_from_fields(&qpack::decode(block, 16 * 1024)?)
    }

    #[test]
    fn extended_connect_round_trips() {
        let uri: Uri = "https://example.com:8443/chat/ws?x=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        let block = encode_request(&Method::CONNECT, &uri, Some("websocket"), &headers);
        let head = decode(&block).unwrap();
        assert_eq!(head.protocol.as_deref(), Some("websocket"));
        assert_eq!(head.request.method(), Method::CONNECT);
        assert_eq!(head.request.uri(), &uri);
        assert_eq!(head.request.headers()["sec-websocket-version"], "13");
    }

    #[test]
    fn malformed_heads_are_message_errors() {
        let cases: [&[(&str, &str)]; 7] = [
            &[(":method", "GET"), (":scheme", "https")], // no :path
            &[
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/"),
            ], // no :authority
            &[
                (":method", "GET"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            &[(":method", "GET"), (":scheme", "https"), ("x", "1"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "https"), (":path", "/"), ("Upper", "1")],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("connection", "close"),
            ],
        ];
        for case in cases {
            let block = qpack::encode(case.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
            let error = decode(&block).unwrap_err();
            assert_eq!(error.code(), crate::Code::MessageError, "{case:?}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("volley.chat.v1"));
        headers.insert("connection", HeaderValue::from_static("upgrade"));
        let block = encode_response(StatusCode::OK, &headers);
        let response = response_from_fields(&qpack::decode(&block, 4096).unwrap()).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["sec-websocket-protocol"], "volley.chat.v1");
        assert!(
            !response.headers().contains_key("connection"),
            "connection-specific headers are dropped"
        );
    }
}
