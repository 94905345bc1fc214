//! Plain HTTP/1.1 requests to the cluster's own loopback services (health
//! checks, metrics, the admin API between terminals), with hyper.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::Error;

/// `GET path` on 127.0.0.1:port: status and body.
pub(crate) async fn get(port: u16, path: &str) -> Result<(u16, String), Error> {
    request(port, "GET", path, None, &[]).await
}

/// `POST path` with a JSON body: status and body.
pub(crate) async fn post(port: u16, path: &str, json: &serde_json::Value) -> Result<(u16, String), Error> {
    request(port, "POST", path, Some(json.to_string()), &[]).await
}

/// A request that may take longer than 5 s (a restart; the state while nodes hang): the caller bounds it.
pub(crate) async fn request_long(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), Error> {
    exchange(port, method, path, json.map(|j| j.to_string()), &[]).await
}

/// A request with optional body and extra headers; 5 s at most.
pub(crate) async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), Error> {
    tokio::time::timeout(Duration::from_secs(5), exchange(port, method, path, body, headers))
        .await
        .map_err(|_| Error::Refused(format!("127.0.0.1:{port}{path}: no answer within 5 s")))?
}

async fn exchange(
    port: u16,
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), Error> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(Error::io(format!("connect 127.0.0.1:{port}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Refused(format!("127.0.0.1:{port}: {e}")))?;
    tokio::spawn(conn);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| Error::Refused(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::Refused(format!("127.0.0.1:{port}{path}: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::Refused(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
