//! The chat from Rust.
//!
//! [`ChatClient`] is one authenticated connection: it keeps frames that
//! arrive while it waits for a reply, so callers see every server frame
//! exactly once, in order. The integration tests and `volley bench chat`
//! drive it. [`Session`] is what an application or a bot wants: it outlives
//! connections (see the `session` module's notes).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use volley_net::{Connector, MaybeTlsStream, Message, WebSocket};
pub use volley_protocol::chat::{ErrorCode, MessageView, RoomView, ServerMsg, UserView};
use volley_protocol::{RoomId, Seq, UserId};

pub use crate::session::{Event, Options, Session};
use crate::{Error, Refused};

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Login {
    /// A token from `/api/login`, `/api/register`, `/api/guest` or another issuer.
    Token(String),
    /// A new guest with this name (when the server allows guests).
    Guest(String),
}

/// A connected, authenticated chat client, over its own connection
/// (`MaybeTlsStream`, the default) or over an HTTP/2 or HTTP/3 stream
/// (`volley_net::Upgraded`, see [`ChatClient::over`]).
#[derive(Debug)]
pub struct ChatClient<S = MaybeTlsStream> {
    ws: WebSocket<S>,
    /// Who we are.
    pub user: UserView,
    /// Our rooms as of `ready`.
    pub rooms: Vec<RoomView>,
    /// A token for reconnecting, when we logged in as a new guest.
    pub token: Option<String>,
    backlog: VecDeque<ServerMsg>,
    next_ref: u64,
}

impl ChatClient {
    /// Connect to `url` (ws://host:port/ws), authenticate, and resume the rooms
    /// in `resume` from the given sequence numbers.
    pub async fn connect(url: &str, login: Login, resume: &HashMap<RoomId, Seq>) -> Result<ChatClient, Error> {
        Self::connect_with(&Connector::default(), url, login, resume).await
    }

    /// As [`connect`](Self::connect), with a configured connector.
    pub async fn connect_with(
        connector: &Connector,
        url: &str,
        login: Login,
        resume: &HashMap<RoomId, Seq>,
    ) -> Result<ChatClient, Error> {
        let ws = connector.connect(url).await?;
        ChatClient::over(ws, login, resume).await
    }
}

impl<S> ChatClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Authenticate on an open WebSocket (say, a stream of an
    /// `H2Connection` or `H3Connection`), resuming as [`ChatClient::connect`] does.
    pub async fn over(
        mut ws: WebSocket<S>,
        login: Login,
        resume: &HashMap<RoomId, Seq>,
    ) -> Result<ChatClient<S>, Error> {
        let resume: HashMap<String, Seq> = resume.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let auth = match &login {
            Login::Token(token) => json!({ "type": "auth", "token": token, "resume": resume }),
            Login::Guest(name) => json!({ "type": "auth", "guest": name, "resume": resume }),
        };
        ws.send(Message::Text(auth.to_string().into())).await?;
        let mut client = ChatClient {
            ws,
            user: UserView {
                id: UserId(0),
                name: String::new(),
                guest: false,
            },
            rooms: Vec::new(),
            token: None,
            backlog: VecDeque::new(),
            next_ref: 1,
        };
        match client.next_frame().await? {
            Some(ServerMsg::Ready { user, rooms, token }) => {
                client.user = user;
                client.rooms = rooms;
                client.token = token;
                Ok(client)
            }
            Some(ServerMsg::Error {
                code,
                message,
                retry_after_ms,
                reference,
            }) => Err(Error::Refused(refused(code, message, retry_after_ms, reference))),
            None => Err(closed(ws_close(&client.ws))),
            other => Err(Error::Unexpected(format!("{other:?} instead of ready"))),
        }
    }

    /// The socket, for tests that need to misbehave.
    pub fn socket(&mut self) -> &mut WebSocket<S> {
        &mut self.ws
    }

    async fn next_frame(&mut self) -> Result<Option<ServerMsg>, Error> {
        match self.ws.recv().await? {
            None => Ok(None),
            Some(Message::Text(text)) => serde_json::from_str(text.as_str())
                .map(Some)
                .map_err(|e| Error::Unexpected(format!("{e}: {text}"))),
            Some(Message::Binary(_)) => Err(Error::Unexpected("a binary frame".into())),
        }
    }

    /// The next server frame; `None` once the server closed.
    pub async fn recv(&mut self) -> Result<Option<ServerMsg>, Error> {
        if let Some(msg) = self.backlog.pop_front() {
            return Ok(Some(msg));
        }
        self.next_frame().await
    }

    /// Send a raw JSON value (no reply awaited).
    pub async fn send_json(&mut self, value: &Value) -> Result<(), Error> {
        self.ws.send(Message::Text(value.to_string().into())).await?;
        Ok(())
    }

    /// Send `value` with a fresh `ref` and wait for the reply carrying it;
    /// other frames are kept for [`recv`](Self::recv).
    pub async fn request(&mut self, mut value: Value) -> Result<ServerMsg, Error> {
        let reference = Value::from(self.next_ref);
        self.next_ref += 1;
        value["ref"] = reference.clone();
        self.send_json(&value).await?;
        loop {
            let Some(msg) = self.next_frame().await? else {
                return Err(closed(ws_close(&self.ws)));
            };
            let matches = match &msg {
                ServerMsg::Ack { reference: r, .. }
                | ServerMsg::History { reference: r, .. }
                | ServerMsg::Pong { reference: r }
                | ServerMsg::Ok { reference: r, .. }
                | ServerMsg::Error { reference: r, .. } => r.as_ref() == Some(&reference),
                _ => false,
            };
            if matches {
                return match msg {
                    ServerMsg::Error {
                        code,
                        message,
                        retry_after_ms,
                        reference,
                    } => Err(Error::Refused(refused(code, message, retry_after_ms, reference))),
                    other => Ok(other),
                };
            }
            self.backlog.push_back(msg);
        }
    }

    /// Post a message and wait for its ack: `(seq, duplicate)`.
    pub async fn post(&mut self, room: RoomId, id: &str, text: &str) -> Result<(Seq, bool), Error> {
        match self
            .request(json!({ "type": "send", "room": room, "id": id, "text": text }))
            .await?
        {
            ServerMsg::Ack { seq, duplicate, .. } => Ok((seq, duplicate)),
            other => Err(Error::Unexpected(format!("{other:?} instead of ack"))),
        }
    }

    /// The socket alone, for load generators that do their own framing.
    /// Frames kept while waiting for replies are dropped.
    pub fn into_socket(self) -> WebSocket<S> {
        self.ws
    }

    /// Close the connection normally.
    pub async fn close(mut self) -> Result<(), Error> {
        self.ws.close(volley_net::CloseCode::NORMAL, "bye").await?;
        Ok(())
    }
}

fn refused(code: ErrorCode, message: String, retry_after_ms: Option<u64>, reference: Option<Value>) -> Refused {
    Refused {
        code,
        message,
        retry_after: retry_after_ms.map(Duration::from_millis),
        reference,
    }
}

/// The peer's close code and reason (1006 when none came).
pub(crate) fn ws_close<S: AsyncRead + AsyncWrite + Unpin>(ws: &WebSocket<S>) -> (u16, String) {
    match ws.peer_close() {
        Some(frame) => (frame.code.0, frame.reason.as_str().to_owned()),
        None => (1006, String::new()),
    }
}

fn closed((code, reason): (u16, String)) -> Error {
    Error::Closed { code, reason }
}
