//! One shape for every refused chat request, whatever carried it: an `error`
//! frame on the WebSocket, a JSON body with its HTTP status on the API, and
//! `Error::Refused` in the Rust client (`volley-client`).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub use volley_protocol::chat::ErrorCode;

/// A refused request: the code, a message for people, when to retry (rate
/// limits), and the request's `ref` so the client can match it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// What kind of refusal; decides the HTTP status.
    pub code: ErrorCode,
    /// Why, in words.
    pub message: String,
    /// How long to wait before trying again, when waiting helps.
    pub retry_after: Option<Duration>,
    /// The `ref` of the request refused (WebSocket only).
    pub reference: Option<Value>,
}

impl Refusal {
    /// A refusal with no retry hint and no `ref`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            retry_after: None,
            reference: None,
        }
    }

    /// The same refusal, answering the request with this `ref`.
    pub fn to(mut self, reference: Option<Value>) -> Refusal {
        self.reference = reference;
        self
    }

    /// The same refusal, telling the client when to try again.
    pub fn retry_after(mut self, wait: Duration) -> Refusal {
        self.retry_after = Some(wait);
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Refusal {}

/// When a client should try again after a storage failure.
const STORE_RETRY: Duration = Duration::from_secs(1);

impl From<volley_hub::Error> for Refusal {
    fn from(e: volley_hub::Error) -> Refusal {
        match e {
            volley_hub::Error::Taken(what) => Refusal::new(ErrorCode::NameTaken, format!("{what} is already taken")),
            volley_hub::Error::NotFound(what) => Refusal::new(ErrorCode::NotFound, format!("{what} not found")),
            other => {
                tracing::error!(error = %other, "store failure");
                // Storage failures are mostly outages (a restarting database,
                // a lost connection): tell the client to send it again.
                Refusal::new(ErrorCode::Unavailable, "the store is unavailable; send it again").retry_after(STORE_RETRY)
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        let Some(wait) = self.retry_after else {
            return (status, Json(body)).into_response();
        };
        body["error"]["retry_after_ms"] = json!(wait.as_millis().max(1) as u64);
        // And the header HTTP clients and proxies know, in whole seconds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        (
            status,
            [(http::header::RETRY_AFTER, seconds.max(1).to_string())],
            Json(body),
        )
            .into_response()
    }
}
