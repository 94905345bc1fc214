//! A chat session that outlives its connections.
//!
//! One task owns the connection. When it drops, the task waits (jittered
//! backoff, or exactly the wait a 1012 from a draining proxy names),
//! connects again, authenticates with the last sequence number it saw in
//! every room, and the server replays what was missed. Messages sent while
//! offline, or not acknowledged before the drop, wait in a bounded outbox
//! and go again with their original ids: the server stores an id once, so
//! a message whose first ack was lost is acknowledged as a duplicate, never
//! posted twice. Messages already seen (by sequence number) are not passed
//! on again, so the application sees each message once, in room order.
//!
//! The events channel is bounded: an application that stops reading stops
//! the session from reading its socket, the server then drops it as a slow
//! consumer, and the reconnect resumes from durable history. Memory stays
//! bounded either way.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};
use volley_net::{CloseCode, Connector, MaybeTlsStream, Message, WebSocket};
use volley_protocol::chat::{ErrorCode, MessageView, RoomView, ServerMsg, UserView};
use volley_protocol::{RoomId, Seq};

use crate::chat::{ws_close, Login};
use crate::{Backoff, CloseHint, Error, Refused};

/// How a [`Session`] behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// How to connect (TLS roots, headers, deflate).
    pub connector: Connector,
    /// The reconnect schedule.
    pub backoff: Backoff,
    /// Unacknowledged messages kept for re-sending; [`Session::send`]
    /// refuses more with [`Error::OutboxFull`].
    pub outbox_limit: usize,
    /// Events buffered for the application before the session stops reading.
    pub event_buffer: usize,
    /// How long connecting and authenticating may take before it counts as a failure.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connector: Connector::default(),
            backoff: Backoff::default(),
            outbox_limit: 1000,
            event_buffer: 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the session tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Authenticated; after a reconnect, the replay of missed messages follows.
    Ready {
        /// Who we are.
        user: UserView,
        /// Our rooms with their unread counts and who is online.
        rooms: Vec<RoomView>,
        /// This is not the first connection of the session.
        reconnect: bool,
    },
    /// A message not seen before (live, replayed or filling a gap).
    Message(MessageView),
    /// One of our messages is durable under `seq`.
    Acked {
        /// Where it went.
        room: RoomId,
        /// Its id (from [`Session::send`]).
        id: String,
        /// Its place in the room.
        seq: Seq,
        /// The server had it already (the first ack was lost with the connection).
        duplicate: bool,
    },
    /// One of our messages was refused for good (too large, not a member):
    /// it left the outbox. Rate limits and outages are retried instead.
    Rejected {
        /// Where it was going.
        room: RoomId,
        /// Its id.
        id: String,
        /// Why.
        refused: Refused,
    },
    /// Any other server frame: presence, typing, receipt, members,
    /// room_joined, room_left, caught_up, or an error about no request of ours.
    Frame(ServerMsg),
    /// The connection is gone; the next attempt is in `retry_in`.
    Disconnected {
        /// The close code (1006 when the connection broke without one).
        code: u16,
        /// The close reason, or the connection error.
        reason: String,
        /// When the session tries again.
        retry_in: Duration,
    },
    /// The session ended: closed by the application, or the server said
    /// not to come back (1008: credentials refused or disconnected by the
    /// server API). Nothing follows.
    Stopped {
        /// Why.
        reason: String,
    },
}

enum Command {
    Send {
        room: RoomId,
        id: String,
        text: String,
        done: Option<oneshot::Sender<Result<(Seq, bool), Error>>>,
    },
    Request {
        value: Value,
        reply: oneshot::Sender<Result<ServerMsg, Error>>,
    },
    Fire(Value),
    Close(oneshot::Sender<()>),
}

/// A chat connection that reconnects and resumes by itself (see the module notes).
#[derive(Debug)]
pub struct Session {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    outbox: Arc<AtomicUsize>,
    outbox_limit: usize,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send { .. } => "Send",
            Command::Request { .. } => "Request",
            Command::Fire(_) => "Fire",
            Command::Close(_) => "Close",
        })
    }
}

impl Session {
    /// Start a session to `url` (ws://host:port/ws) with default options.
    /// Returns at once; the first event is `Ready` or `Disconnected`.
    pub fn start(url: &str, login: Login) -> Session {
        Session::with_options(url, login, Options::default())
    }

    /// As [`start`](Self::start), with options.
    pub fn with_options(url: &str, login: Login, options: Options) -> Session {
        let (commands, command_rx) = mpsc::channel(64);
        let (event_tx, events) = mpsc::channel(options.event_buffer.max(1));
        let outbox = Arc::new(AtomicUsize::new(0));
        let outbox_limit = options.outbox_limit;
        let task = Task {
            url: url.to_owned(),
            login,
            options,
            commands: command_rx,
            events: event_tx,
            last_seq: HashMap::new(),
            outbox: VecDeque::new(),
            outbox_len: outbox.clone(),
            refs: HashMap::new(),
            next_ref: 1,
            held_until: None,
        };
        tokio::spawn(task.run());
        Session {
            commands,
            events,
            outbox,
            outbox_limit,
        }
    }

    /// The next event; `None` after [`Event::Stopped`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Queue a message for `room` under a fresh id and return the id at
    /// once; [`Event::Acked`] or [`Event::Rejected`] follows, after any
    /// number of reconnects.
    pub async fn send(&self, room: RoomId, text: &str) -> Result<String, Error> {
        let id = fresh_id();
        self.queue(room, id.clone(), text, None).await?;
        Ok(id)
    }

    /// Queue a message under the caller's id (1-64 characters): sending
    /// the same id to the same room again stores nothing new.
    pub async fn send_with_id(&self, room: RoomId, id: &str, text: &str) -> Result<(), Error> {
        self.queue(room, id.to_owned(), text, None).await
    }

    /// Send and wait for the ack, across reconnects: `(seq, duplicate)`.
    pub async fn post(&self, room: RoomId, text: &str) -> Result<(Seq, bool), Error> {
        let (done, wait) = oneshot::channel();
        self.queue(room, fresh_id(), text, Some(done)).await?;
        wait.await.map_err(|_| Error::Stopped)?
    }

    async fn queue(
        &self,
        room: RoomId,
        id: String,
        text: &str,
        done: Option<oneshot::Sender<Result<(Seq, bool), Error>>>,
    ) -> Result<(), Error> {
        let reserved = self.outbox.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.outbox_limit).then_some(n + 1)
        });
        if let Err(n) = reserved {
            return Err(Error::OutboxFull(n));
        }
        let command = Command::Send {
            room,
            id,
            text: text.to_owned(),
            done,
        };
        if self.commands.send(command).await.is_err() {
            self.outbox.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Messages queued and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.load(Ordering::Acquire)
    }

    /// Send a request (`join`, `leave`, `create_room`, `history`, `ping`;
    /// a `ref` is added) and wait for its reply. Fails with
    /// [`Error::Closed`] while offline or if the connection drops first:
    /// unlike messages, these are not queued.
    pub async fn request(&self, value: Value) -> Result<ServerMsg, Error> {
        let (reply, wait) = oneshot::channel();
        self.commands
            .send(Command::Request { value, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        wait.await.map_err(|_| Error::Stopped)?
    }

    /// Join a public room; its traffic follows.
    pub async fn join(&self, room: RoomId) -> Result<(), Error> {
        self.request(json!({ "type": "join", "room": room })).await.map(drop)
    }

    /// Leave a room.
    pub async fn leave(&self, room: RoomId) -> Result<(), Error> {
        self.request(json!({ "type": "leave", "room": room })).await.map(drop)
    }

    /// Create a room (we become its owner and a member) and return its id.
    pub async fn create_room(&self, name: &str, private: bool) -> Result<RoomId, Error> {
        match self
            .request(json!({ "type": "create_room", "name": name, "private": private }))
            .await?
        {
            ServerMsg::Ok { room, .. } => Ok(room),
            other => Err(Error::Unexpected(format!("{other:?} instead of ok"))),
        }
    }

    /// A page of history before `before` (the newest page for `None`),
    /// oldest first, and whether older messages exist.
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, bool), Error> {
        let mut request = json!({ "type": "history", "room": room, "limit": limit });
        if let Some(before) = before {
            request["before"] = json!(before);
        }
        match self.request(request).await? {
            ServerMsg::History { messages, more, .. } => Ok((messages, more)),
            other => Err(Error::Unexpected(format!("{other:?} instead of history"))),
        }
    }

    /// Tell the room we are typing (dropped while offline: it would be stale).
    pub async fn typing(&self, room: RoomId) -> Result<(), Error> {
        self.fire(json!({ "type": "typing", "room": room })).await
    }

    /// Mark `room` read up to `seq` (dropped while offline; send it again after `Ready`).
    pub async fn read(&self, room: RoomId, seq: Seq) -> Result<(), Error> {
        self.fire(json!({ "type": "read", "room": room, "seq": seq })).await
    }

    async fn fire(&self, value: Value) -> Result<(), Error> {
        self.commands
            .send(Command::Fire(value))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Close with 1000 and stop; unacknowledged messages are dropped.
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// 16 random hex digits: unique enough per sender, within the 64-character limit.
fn fresh_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

struct Pending {
    room: RoomId,
    id: String,
    text: String,
    done: Option<oneshot::Sender<Result<(Seq, bool), Error>>>,
    /// Written on the current connection, waiting for its ack.
    in_flight: bool,
}

/// What a connection's end means.
enum Ended {
    /// Try again after this hint.
    Dropped { code: u16, reason: String, hint: CloseHint },
    /// The application closed, or the server said not to come back.
    Stop(String),
    /// Closed by the application; it has been told already.
    Done,
}

enum Reference {
    Send(RoomId, String),
    Request(oneshot::Sender<Result<ServerMsg, Error>>),
}

struct Task {
    url: String,
    login: Login,
    options: Options,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    last_seq: HashMap<RoomId, Seq>,
    outbox: VecDeque<Pending>,
    outbox_len: Arc<AtomicUsize>,
    /// Requests and sends on the current connection, by `ref`.
    refs: HashMap<u64, Reference>,
    next_ref: u64,
    /// A rate limit or outage said to hold sends until then.
    held_until: Option<Instant>,
}

impl Task {
    async fn run(mut self) {
        let mut connections = 0u64;
        loop {
            let connect = timeout(self.options.connect_timeout, self.options.connector.connect(&self.url));
            let ended = match connect.await {
                Ok(Ok(ws)) => {
                    let ended = self.serve(ws, connections > 0).await;
                    connections += 1;
                    ended
                }
                Ok(Err(e)) => Ended::Dropped {
                    code: 1006,
                    reason: e.to_string(),
                    hint: CloseHint::Backoff,
                },
                Err(_) => Ended::Dropped {
                    code: 1006,
                    reason: "connect timed out".into(),
                    hint: CloseHint::Backoff,
                },
            };
            for (_, reference) in self.refs.drain() {
                if let Reference::Request(reply) = reference {
                    let _ = reply.send(Err(Error::Closed {
                        code: 1006,
                        reason: "connection lost before the reply".into(),
                    }));
                }
            }
            for p in &mut self.outbox {
                p.in_flight = false;
            }
            let (code, reason, hint) = match ended {
                Ended::Stop(reason) => return self.stop(reason).await,
                Ended::Done => return,
                Ended::Dropped { code, reason, hint } => (code, reason, hint),
            };
            let retry_in = self.options.backoff.next(hint);
            let _ = self.events.send(Event::Disconnected { code, reason, retry_in }).await;
            let until = Instant::now() + retry_in;
            loop {
                tokio::select! {
                    _ = sleep_until(until) => break,
                    command = self.commands.recv() => match command {
                        None => return self.stop("the session was dropped".into()).await,
                        Some(Command::Close(done)) => {
                            self.stop("closed".into()).await;
                            let _ = done.send(());
                            return;
                        }
                        Some(command) => self.offline(command),
                    },
                }
            }
        }
    }

    async fn stop(&mut self, reason: String) {
        for p in self.outbox.drain(..) {
            if let Some(done) = p.done {
                let _ = done.send(Err(Error::Stopped));
            }
        }
        self.outbox_len.store(0, Ordering::Release);
        self.commands.close();
        let _ = self.events.send(Event::Stopped { reason }).await;
    }

    fn offline(&mut self, command: Command) {
        match command {
            Command::Send { room, id, text, done } => self.outbox.push_back(Pending {
                room,
                id,
                text,
                done,
                in_flight: false,
            }),
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(Error::Closed {
                    code: 1006,
                    reason: "not connected".into(),
                }));
            }
            Command::Fire(_) | Command::Close(_) => {}
        }
    }

    /// One connection, from the auth frame to its end.
    async fn serve(&mut self, mut ws: WebSocket<MaybeTlsStream>, reconnect: bool) -> Ended {
        let resume: HashMap<String, Seq> = self.last_seq.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let auth = match &self.login {
            Login::Token(token) => json!({ "type": "auth", "token": token, "resume": resume }),
            Login::Guest(name) => json!({ "type": "auth", "guest": name, "resume": resume }),
        };
        if let Err(e) = ws.send(Message::Text(auth.to_string().into())).await {
            return dropped(&ws, e.to_string());
        }
        let ready = timeout(self.options.connect_timeout, ws.recv()).await;
        let (user, rooms, token) = match ready {
            Err(_) => return dropped(&ws, "no ready frame in time".into()),
            Ok(Err(e)) => return dropped(&ws, e.to_string()),
            Ok(Ok(None)) => return closed_by_server(&ws),
            Ok(Ok(Some(Message::Text(text)))) => match serde_json::from_str::<ServerMsg>(text.as_str()) {
                Ok(ServerMsg::Ready { user, rooms, token }) => (user, rooms, token),
                Ok(ServerMsg::Error { code, message, .. }) => {
                    // The server closes with 1008 after refusing credentials;
                    // anything else (unavailable) is worth another try.
                    if matches!(
                        code,
                        ErrorCode::AuthFailed | ErrorCode::AuthRequired | ErrorCode::GuestsDisabled
                    ) {
                        return Ended::Stop(format!("{}: {message}", code.as_str()));
                    }
                    return dropped(&ws, format!("{}: {message}", code.as_str()));
                }
                _ => return dropped(&ws, format!("unexpected first frame: {text}")),
            },
            Ok(Ok(Some(Message::Binary(_)))) => return dropped(&ws, "a binary frame".into()),
        };
        if let Some(token) = token {
            // A new guest: come back as the same one.
            self.login = Login::Token(token);
        }
        for room in &rooms {
            self.last_seq.entry(room.id).or_insert(room.last_seq);
        }
        self.options.backoff.reset();
        if self.events.send(Event::Ready { user, rooms, reconnect }).await.is_err() {
            let _ = ws.close(CloseCode::NORMAL, "bye").await;
            return Ended::Stop("the session was dropped".into());
        }
        if let Err(e) = self.transmit_outbox(&mut ws).await {
            return dropped(&ws, e.to_string());
        }
        loop {
            let held = self.held_until;
            tokio::select! {
                frame = ws.recv() => match frame {
                    Ok(Some(Message::Text(text))) => {
                        let Ok(msg) = serde_json::from_str::<ServerMsg>(text.as_str()) else {
                            tracing::debug!(frame = %text.as_str(), "unreadable chat frame ignored");
                            continue;
                        };
                        if !self.on_frame(msg).await {
                            let _ = ws.close(CloseCode::NORMAL, "bye").await;
                            return Ended::Stop("the session was dropped".into());
                        }
                    }
                    Ok(Some(Message::Binary(_))) => {}
                    Ok(None) => return closed_by_server(&ws),
                    Err(e) => return dropped(&ws, e.to_string()),
                },
                command = self.commands.recv() => {
                    let result = match command {
                        None => {
                            let _ = ws.close(CloseCode::NORMAL, "bye").await;
                            return Ended::Stop("the session was dropped".into());
                        }
                        Some(Command::Close(done)) => {
                            let _ = ws.close(CloseCode::NORMAL, "bye").await;
                            self.stop("closed".into()).await;
                            let _ = done.send(());
                            return Ended::Done;
                        }
                        Some(Command::Send { room, id, text, done }) => {
                            self.outbox.push_back(Pending { room, id, text, done, in_flight: false });
                            self.transmit_outbox(&mut ws).await
                        }
                        Some(Command::Request { mut value, reply }) => {
                            let reference = self.next_ref();
                            value["ref"] = json!(reference);
                            self.refs.insert(reference, Reference::Request(reply));
                            ws.send(Message::Text(value.to_string().into())).await
                        }
                        Some(Command::Fire(value)) => ws.send(Message::Text(value.to_string().into())).await,
                    };
                    if let Err(e) = result {
                        return dropped(&ws, e.to_string());
                    }
                }
                _ = sleep_until(held.unwrap_or_else(Instant::now)), if held.is_some() => {
                    self.held_until = None;
                    if let Err(e) = self.transmit_outbox(&mut ws).await {
                        return dropped(&ws, e.to_string());
                    }
                }
            }
        }
    }

    fn next_ref(&mut self) -> u64 {
        let r = self.next_ref;
        self.next_ref += 1;
        r
    }

    /// Write every queued message not yet on this connection, in order.
    async fn transmit_outbox(&mut self, ws: &mut WebSocket<MaybeTlsStream>) -> Result<(), volley_net::Error> {
        if self.held_until.is_some() {
            return Ok(());
        }
        let mut wrote = false;
        for i in 0..self.outbox.len() {
            if self.outbox[i].in_flight {
                continue;
            }
            let reference = self.next_ref();
            let p = &mut self.outbox[i];
            p.in_flight = true;
            let frame = json!({ "type": "send", "room": p.room, "id": p.id, "text": p.text, "ref": reference });
            self.refs.insert(reference, Reference::Send(p.room, p.id.clone()));
            ws.feed(Message::Text(frame.to_string().into())).await?;
            wrote = true;
        }
        if wrote {
            ws.flush().await?;
        }
        Ok(())
    }

    /// Handle one frame; `false` when the application has gone.
    async fn on_frame(&mut self, msg: ServerMsg) -> bool {
        let event = match msg {
            ServerMsg::Message(m) => {
                let last = self.last_seq.entry(m.room).or_default();
                if m.seq <= *last {
                    return true;
                }
                *last = m.seq;
                Event::Message(m)
            }
            ServerMsg::RoomJoined { ref room } => {
                self.last_seq.entry(room.id).or_insert(room.last_seq);
                Event::Frame(msg)
            }
            ServerMsg::RoomLeft { room } => {
                self.last_seq.remove(&room);
                Event::Frame(msg)
            }
            ServerMsg::Ack {
                reference,
                room,
                seq,
                id,
                duplicate,
                ..
            } => {
                if let Some(r) = reference.as_ref().and_then(Value::as_u64) {
                    self.refs.remove(&r);
                }
                if let Some(at) = self.outbox.iter().position(|p| p.room == room && p.id == id) {
                    if let Some(p) = self.outbox.remove(at) {
                        self.outbox_len.fetch_sub(1, Ordering::AcqRel);
                        if let Some(done) = p.done {
                            let _ = done.send(Ok((seq, duplicate)));
                        }
                    }
                }
                Event::Acked {
                    room,
                    id,
                    seq,
                    duplicate,
                }
            }
            ServerMsg::Error {
                reference,
                code,
                message,
                retry_after_ms,
            } => {
                let refused = Refused {
                    code,
                    message,
                    retry_after: retry_after_ms.map(Duration::from_millis),
                    reference: reference.clone(),
                };
                match reference
                    .as_ref()
                    .and_then(Value::as_u64)
                    .and_then(|r| self.refs.remove(&r))
                {
                    Some(Reference::Request(reply)) => {
                        let _ = reply.send(Err(Error::Refused(refused)));
                        return true;
                    }
                    Some(Reference::Send(room, id)) => {
                        let Some(at) = self.outbox.iter().position(|p| p.room == room && p.id == id) else {
                            return true;
                        };
                        if matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable) {
                            // Not stored: hold every send until the server's wait is over.
                            self.outbox[at].in_flight = false;
                            let wait = refused.retry_after.unwrap_or(Duration::from_millis(500));
                            let until = Instant::now() + wait;
                            self.held_until = Some(self.held_until.map_or(until, |h| h.max(until)));
                            return true;
                        }
                        let Some(p) = self.outbox.remove(at) else { return true };
                        self.outbox_len.fetch_sub(1, Ordering::AcqRel);
                        if let Some(done) = p.done {
                            let _ = done.send(Err(Error::Refused(refused.clone())));
                        }
                        Event::Rejected { room, id, refused }
                    }
                    None => Event::Frame(ServerMsg::Error {
                        reference,
                        code,
                        message: refused.message,
                        retry_after_ms,
                    }),
                }
            }
            ServerMsg::Ok { ref reference, .. }
            | ServerMsg::History { ref reference, .. }
            | ServerMsg::Pong { ref reference } => {
                let r = reference.as_ref().and_then(Value::as_u64);
                match r.and_then(|r| self.refs.remove(&r)) {
                    Some(Reference::Request(reply)) => {
                        let _ = reply.send(Ok(msg));
                        return true;
                    }
                    _ => Event::Frame(msg),
                }
            }
            other => Event::Frame(other),
        };
        self.events.send(event).await.is_ok()
    }
}

fn dropped<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(ws: &WebSocket<S>, reason: String) -> Ended {
    let (code, close_reason) = ws_close(ws);
    Ended::Dropped {
        code,
        reason: if close_reason.is_empty() { reason } else { close_reason },
        hint: CloseHint::Backoff,
    }
}

fn closed_by_server<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(ws: &WebSocket<S>) -> Ended {
    let (code, reason) = ws_close(ws);
    match CloseHint::of(CloseCode(code), &reason) {
        CloseHint::Stop if code == 1008 => Ended::Stop(format!("closed by the server: {code} {reason}")),
        // A normal close from the server (it is not ours: we never got
        // here by closing) is a restart without a hint.
        CloseHint::Stop => Ended::Dropped {
            code,
            reason,
            hint: CloseHint::Backoff,
        },
        hint => Ended::Dropped { code, reason, hint },
    }
}
