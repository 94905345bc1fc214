//! The proxy's own answers when it cannot pass a request on: a status and a
//! one-line reason, counted by status.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::connect::NoBackend;

/// A plain-text refusal.
pub(crate) fn refuse(status: StatusCode, why: &str) -> Response {
    metrics::counter!("volley_proxy_errors_total", "status" => status.as_str().to_owned()).increment(1);
    let mut response = (status, format!("{why}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The answer when no backend took a request.
pub(crate) fn no_backend(why: NoBackend) -> Response {
    match why {
        NoBackend::Unavailable => refuse(StatusCode::SERVICE_UNAVAILABLE, "no backend is available"),
        NoBackend::Failed => refuse(StatusCode::BAD_GATEWAY, "no backend answered"),
    }
}
