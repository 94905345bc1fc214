//! One WebSocket connection of the chat: authenticate, subscribe, replay what
//! the client missed, then serve requests and forward fan-out until either
//! side ends it.
//!
//! Resume without gaps or duplicates rests on two rules: subscribe before
//! reading history, and track the highest sequence number delivered per room.
//! A live message at or below it is a duplicate and is dropped; one beyond
//! the next expected number means the connection missed some (published
//! before it subscribed, or by another node out of order), and they are read
//! from the store before it goes out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use volley_hub::{Appended, Delivery, RoomId, Seq, SubscriberHandle, Topic, User};
use volley_net::{CloseCode, Message, WebSocket};

use crate::protocol::{self, parse_client, ClientMsg, Control, ErrorCode, RoomView, ServerMsg, ToMessage};
use crate::refusal::Refusal;
use crate::service::Chat;

/// Messages read from the store per query while replaying.
const REPLAY_BATCH: u32 = 500;
/// Deliveries written before one flush.
const WRITE_BATCH: usize = 128;

type Ws<S> = WebSocket<S>;

/// Why a session ended, for logs and metrics.
#[derive(Debug)]
enum End {
    Closed,
    Transport(volley_net::Error),
}

impl From<volley_net::Error> for End {
    fn from(e: volley_net::Error) -> End {
        End::Transport(e)
    }
}

/// Run a connection to its end.
pub(crate) async fn run<S>(
    chat: Arc<Chat>,
    mut ws: Ws<S>,
    user: Option<User>,
    ip: std::net::IpAddr,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    metrics::gauge!("volley_connections").increment(1.0);
    let end = Session::start(&chat, &mut ws, user, ip, shutdown).await;
    match end {
        Ok(End::Closed) => {}
        Ok(End::Transport(e)) | Err(e) => tracing::debug!(error = %e, "chat connection ended"),
    }
    metrics::gauge!("volley_connections").decrement(1.0);
}

struct Session<'a> {
    chat: &'a Chat,
    user: User,
    sub: SubscriberHandle,
    /// Highest sequence number delivered, per room this connection is in.
    delivered: HashMap<RoomId, Seq>,
}

impl<'a> Session<'a> {
    async fn start<S>(
        chat: &'a Chat,
        ws: &mut Ws<S>,
        user: Option<User>,
        ip: std::net::IpAddr,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<End, volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (user, resume, token) = match user {
            Some(user) => (user, HashMap::new(), None),
            None => match authenticate(chat, ws, ip).await? {
                Some(found) => found,
                None => return Ok(End::Closed),
            },
        };
        let elsewhere = chat.hub.presence().connections_elsewhere(user.id);
        let Some(_user_slot) = chat.limits.connect_user(user.id, elsewhere) else {
            let msg = format!(
                "{} already has {} connections",
                user.name, chat.config.max_connections_per_user
            );
            ws.send(protocol::error_frame(Refusal::new(ErrorCode::TooManyConnections, &msg)).to_message())
                .await?;
            ws.close(CloseCode::POLICY_VIOLATION, "too many connections").await?;
            return Ok(End::Closed);
        };
        let (sub, rx) = volley_hub::Subscriber::new(chat.config.outbound_queue);
        let mut session = Session {
            chat,
            user,
            sub,
            delivered: HashMap::new(),
        };
        session.chat.hub.presence().connect(session.user.id, &session.user.name);
        let result = session.serve(ws, rx, resume, token, &mut shutdown).await;
        session.finish();
        result
    }

    /// Subscribe to a room and count this connection as present in it.
    fn enter(&mut self, room: RoomId, last_seq: Seq) {
        self.chat.hub.subscribe(Topic::Room(room), &self.sub);
        self.chat.hub.note_position(room, last_seq);
        self.delivered.insert(room, last_seq);
        self.chat.hub.presence().arrive(room, self.user.id, &self.user.name);
    }

    fn exit(&mut self, room: RoomId) {
        if self.delivered.remove(&room).is_none() {
            return;
        }
        self.chat.hub.unsubscribe(Topic::Room(room), self.sub.id());
        self.chat.hub.presence().depart(room, self.user.id, &self.user.name);
    }

    fn finish(&mut self) {
        let rooms: Vec<RoomId> = self.delivered.keys().copied().collect();
        for room in rooms {
            self.exit(room);
        }
        self.chat.hub.unsubscribe(Topic::User(self.user.id), self.sub.id());
        self.chat.hub.presence().disconnect(self.user.id);
    }

    async fn serve<S>(
        &mut self,
        ws: &mut Ws<S>,
        mut rx: mpsc::Receiver<volley_hub::Delivery>,
        resume: HashMap<String, Seq>,
        token: Option<String>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<End, volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Subscribe first, then read: anything published from here on is
        // either in the snapshot below or queued for us.
        self.chat.hub.subscribe(Topic::User(self.user.id), &self.sub);
        let rooms = match self.chat.hub.store().rooms_of(self.user.id).await {
            Ok(rooms) => rooms,
            Err(e) => {
                ws.send(protocol::error_frame(Refusal::from(e)).to_message()).await?;
                ws.close(CloseCode::INTERNAL_ERROR, "storage failure").await?;
                return Ok(End::Closed);
            }
        };
        for r in &rooms {
            self.enter(r.room.id, r.room.last_seq);
        }
        let views = rooms
            .iter()
            .map(|r| self.chat.with_online(protocol::member_room_view(r)))
            .collect();
        ws.send(
            ServerMsg::Ready {
                user: protocol::user_view(&self.user),
                rooms: views,
                token,
            }
            .to_message(),
        )
        .await?;
        for (room, last) in resume {
            let Some(room) = room.parse::<RoomId>().ok().filter(|r| self.delivered.contains_key(r)) else {
                let refusal = match room.parse::<RoomId>() {
                    Ok(id) => crate::service::unseen(id),
                    Err(_) => Refusal::new(ErrorCode::NotFound, format!("no room {room} that you can see")),
                };
                ws.feed(protocol::error_frame(refusal).to_message()).await?;
                continue;
            };
            // A client cannot have seen more than the room had when we
            // subscribed (a mark above it would hide future messages).
            let snapshot = self.delivered.get(&room).copied().unwrap_or_default();
            self.delivered.insert(room, last.min(snapshot));
            let seq = self.replay(ws, room, Seq(u64::MAX)).await?;
            ws.feed(ServerMsg::CaughtUp { room, seq }.to_message()).await?;
        }
        ws.flush().await?;

        // Made once, not per loop turn: a Notify waiter costs a lock to
        // register and to drop, which adds up at 100k deliveries a second.
        let sub = self.sub.clone();
        let kicked = sub.kicked();
        tokio::pin!(kicked);
        if *shutdown.borrow() {
            ws.close(CloseCode::GOING_AWAY, "server shutting down").await?;
            return Ok(End::Closed);
        }
        let stop = shutdown.changed();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                incoming = ws.recv() => match incoming? {
                    Some(Message::Text(text)) => self.request(ws, text.as_str()).await?,
                    Some(Message::Binary(_)) => {
                        let err = protocol::error_frame(Refusal::new(ErrorCode::BadRequest, "the chat protocol uses text frames"));
                        ws.send(err.to_message()).await?;
                    }
                    None => return Ok(End::Closed),
                },
                delivery = rx.recv() => {
                    let Some(delivery) = delivery else { return Ok(End::Closed) };
                    // Writing waits while the peer does not read; the kick
                    // must still get through, so race the two.
                    let written = tokio::select! {
                        written = self.write_batch(ws, delivery, &mut rx) => Some(written),
                        _ = &mut kicked => None,
                    };
                    match written {
                        Some(result) => result?,
                        None => return self.kick(ws).await,
                    }
                }
                _ = &mut kicked => return self.kick(ws).await,
                _ = &mut stop => {
                    ws.close(CloseCode::GOING_AWAY, "server shutting down").await?;
                    return Ok(End::Closed);
                }
            }
        }
    }

    /// Write one delivery and whatever else is queued (up to a batch), then flush once.
    async fn write_batch<S>(
        &mut self,
        ws: &mut Ws<S>,
        first: Delivery,
        rx: &mut mpsc::Receiver<Delivery>,
    ) -> Result<(), volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.deliver(ws, first).await?;
        for _ in 1..WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => self.deliver(ws, more).await?,
                Err(_) => break,
            }
        }
        ws.flush().await
    }

    /// Close a connection that fell behind: 1013, and the client resumes.
    async fn kick<S>(&mut self, ws: &mut Ws<S>) -> Result<End, volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        tracing::info!(user = %self.user.name, "closing a slow consumer");
        ws.close(CloseCode::TRY_AGAIN_LATER, "too slow: resume from your last sequence")
            .await?;
        Ok(End::Closed)
    }

    /// Send stored messages of `room` after the delivered mark, up to `upto`;
    /// returns the new mark.
    async fn replay<S>(&mut self, ws: &mut Ws<S>, room: RoomId, upto: Seq) -> Result<Seq, volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let after = self.delivered.get(&room).copied().unwrap_or_default();
            if after >= upto {
                return Ok(after);
            }
            let want = after.until(upto).min(u64::from(REPLAY_BATCH)) as u32;
            let page = match self.chat.hub.store().since(room, after, want).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, %room, "replay failed");
                    ws.close(CloseCode::INTERNAL_ERROR, "storage failure").await?;
                    return Err(volley_net::Error::Closed);
                }
            };
            let got = page.len();
            for m in &page {
                ws.feed(ServerMsg::Message(protocol::message_view(m)).to_message())
                    .await?;
                self.delivered.insert(room, m.seq);
            }
            metrics::counter!("volley_replayed_total").increment(got as u64);
            if got < want as usize {
                return Ok(self.delivered.get(&room).copied().unwrap_or(after));
            }
        }
    }

    async fn deliver<S>(&mut self, ws: &mut Ws<S>, delivery: Delivery) -> Result<(), volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match delivery {
            Delivery::Frame {
                topic: Topic::Room(room),
                seq,
                frame,
            } => {
                let Some(&mark) = self.delivered.get(&room) else {
                    return Ok(()); // left the room meanwhile
                };
                if let Some(seq) = seq {
                    if seq <= mark {
                        return Ok(()); // already sent (replay or gap fill)
                    }
                    if seq > mark.next() {
                        metrics::counter!("volley_gap_fills_total").increment(1);
                        self.replay(ws, room, Seq(seq.0 - 1)).await?;
                    }
                    self.delivered.insert(room, seq);
                }
                ws.feed_prepared(&frame).await
            }
            Delivery::Frame { frame, .. } => ws.feed_prepared(&frame).await,
            Delivery::Control { payload, .. } => {
                let Ok(control) = serde_json::from_slice::<Control>(&payload) else {
                    return Ok(());
                };
                match control {
                    Control::Joined { room, from } => {
                        if self.delivered.contains_key(&room) {
                            return Ok(());
                        }
                        // A control comes twice (directly and through the
                        // broker) and a later Left may overtake an earlier
                        // Joined: the store says what holds now.
                        if !matches!(self.chat.hub.store().is_member(room, self.user.id).await, Ok(true)) {
                            return Ok(());
                        }
                        let Ok(Some(r)) = self.chat.hub.store().room(room).await else {
                            return Ok(());
                        };
                        let from = from.filter(|f| *f <= r.last_seq).unwrap_or(r.last_seq);
                        self.enter(room, from);
                        let view = self.chat.with_online(RoomView {
                            last_read: Some(Seq::ZERO),
                            unread: Some(r.last_seq.0),
                            ..protocol::room_view(&r)
                        });
                        ws.feed(ServerMsg::RoomJoined { room: view }.to_message()).await?;
                        // What was sent since the join, before this session
                        // subscribed.
                        if r.last_seq > from {
                            self.replay(ws, room, r.last_seq).await?;
                        }
                        Ok(())
                    }
                    Control::Left { room } => {
                        if !self.delivered.contains_key(&room) {
                            return Ok(());
                        }
                        if matches!(self.chat.hub.store().is_member(room, self.user.id).await, Ok(true)) {
                            return Ok(()); // joined again since
                        }
                        self.exit(room);
                        ws.feed(ServerMsg::RoomLeft { room }.to_message()).await
                    }
                    Control::Disconnect { reason } => {
                        tracing::info!(user = %self.user.name, %reason, "disconnected by the server API");
                        ws.close(CloseCode::POLICY_VIOLATION, &format!("disconnected: {reason}"))
                            .await?;
                        Err(volley_net::Error::Closed)
                    }
                }
            }
        }
    }

    fn member(&self, room: RoomId) -> Result<(), Refusal> {
        if self.delivered.contains_key(&room) {
            Ok(())
        } else {
            Err(crate::service::unseen(room))
        }
    }

    async fn request<S>(&mut self, ws: &mut Ws<S>, text: &str) -> Result<(), volley_net::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let msg = match parse_client(text) {
            Ok(msg) => msg,
            Err(rejected) => {
                metrics::counter!("volley_client_errors_total", "code" => rejected.code.as_str()).increment(1);
                return ws.send(protocol::error_frame(rejected).to_message()).await;
            }
        };
        let chat = self.chat;
        // The reply to a membership request; the change itself follows as room_joined/room_left.
        let ok = |reference: &Option<serde_json::Value>, room| {
            Some(ServerMsg::Ok {
                reference: reference.clone(),
                room,
            })
        };
        let (reference, result): (Option<serde_json::Value>, Result<Option<ServerMsg>, Refusal>) = match msg {
            ClientMsg::Auth { reference, .. } => (
                reference,
                Err(Refusal::new(ErrorCode::BadRequest, "already authenticated")),
            ),
            ClientMsg::Send {
                room,
                id,
                text,
                reference,
            } => {
                let result = match self.member(room) {
                    Ok(()) => chat.send(&self.user, room, id, text).await.map(|appended| {
                        let duplicate = matches!(appended, Appended::Duplicate(_));
                        let m = appended.message();
                        Some(ServerMsg::Ack {
                            reference: reference.clone(),
                            room,
                            seq: m.seq,
                            id: m.client_id.clone(),
                            ts: m.ts,
                            duplicate,
                        })
                    }),
                    Err(e) => Err(e),
                };
                (reference, result)
            }
            ClientMsg::History {
                room,
                before,
                limit,
                reference,
            } => {
                let result = chat
                    .history(self.user.id, room, before, limit)
                    .await
                    .map(|(messages, more)| {
                        Some(ServerMsg::History {
                            reference: reference.clone(),
                            room,
                            messages,
                            more,
                        })
                    });
                (reference, result)
            }
            ClientMsg::Join { room, reference } => {
                let result = chat.join(&self.user, room).await.map(|_| ok(&reference, room));
                (reference, result)
            }
            ClientMsg::Leave { room, reference } => {
                let result = chat.leave(&self.user, room).await.map(|_| ok(&reference, room));
                (reference, result)
            }
            ClientMsg::CreateRoom {
                name,
                private,
                reference,
            } => {
                let result = chat
                    .create_room(&self.user, &name, private)
                    .await
                    .map(|r| ok(&reference, r.id));
                (reference, result)
            }
            ClientMsg::Typing { room } => (
                None,
                self.member(room).map(|_| {
                    chat.typing(&self.user, room);
                    None
                }),
            ),
            ClientMsg::Read { room, seq } => {
                let result = match self.member(room) {
                    Ok(()) => chat.read(&self.user, room, seq).await.map(|_| None),
                    Err(e) => Err(e),
                };
                (None, result)
            }
            ClientMsg::Ping { reference } => (reference.clone(), Ok(Some(ServerMsg::Pong { reference }))),
        };
        match result {
            Ok(Some(reply)) => ws.send(reply.to_message()).await,
            Ok(None) => Ok(()),
            Err(fail) => {
                metrics::counter!("volley_client_errors_total", "code" => fail.code.as_str()).increment(1);
                ws.send(protocol::error_frame(fail.to(reference)).to_message()).await
            }
        }
    }
}

/// Wait for the `auth` frame; `None` when the connection was closed for
/// failing to authenticate (the client was told why).
async fn authenticate<S>(
    chat: &Chat,
    ws: &mut Ws<S>,
    ip: std::net::IpAddr,
) -> Result<Option<(User, HashMap<String, Seq>, Option<String>)>, volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Duration::from_millis(chat.config.auth_timeout_ms);
    let first = match tokio::time::timeout(deadline, ws.recv()).await {
        Err(_) => {
            let err = protocol::error_frame(Refusal::new(ErrorCode::AuthRequired, "no auth message in time"));
            ws.send(err.to_message()).await?;
            ws.close(CloseCode::POLICY_VIOLATION, "authentication timeout").await?;
            return Ok(None);
        }
        Ok(frame) => frame?,
    };
    let Some(Message::Text(text)) = first else {
        if first.is_none() {
            return Ok(None);
        }
        ws.send(
            protocol::error_frame(Refusal::new(ErrorCode::AuthRequired, "the first message must be auth")).to_message(),
        )
        .await?;
        ws.close(CloseCode::POLICY_VIOLATION, "authentication required").await?;
        return Ok(None);
    };
    let (token, guest, resume, reference) = match parse_client(text.as_str()) {
        Ok(ClientMsg::Auth {
            token,
            guest,
            resume,
            reference,
        }) => (token, guest, resume, reference),
        Ok(_) => {
            ws.send(
                protocol::error_frame(Refusal::new(ErrorCode::AuthRequired, "the first message must be auth"))
                    .to_message(),
            )
            .await?;
            ws.close(CloseCode::POLICY_VIOLATION, "authentication required").await?;
            return Ok(None);
        }
        Err(rejected) => {
            ws.send(protocol::error_frame(rejected).to_message()).await?;
            ws.close(CloseCode::POLICY_VIOLATION, "authentication required").await?;
            return Ok(None);
        }
    };
    let outcome = match (token, guest) {
        (Some(token), _) => chat.authenticate(&token).await.map(|u| (u, None)),
        (None, Some(name)) => match chat.limit_accounts(ip) {
            Ok(()) => chat.guest(Some(&name)).await.map(|(u, t)| (u, Some(t))),
            Err(fail) => Err(fail),
        },
        (None, None) => Err(Refusal::new(
            ErrorCode::AuthRequired,
            "auth needs a token or a guest name",
        )),
    };
    match outcome {
        Ok((user, token)) => Ok(Some((user, resume, token))),
        Err(fail) => {
            metrics::counter!("volley_auth_failures_total").increment(1);
            ws.send(protocol::error_frame(fail.to(reference)).to_message()).await?;
            ws.close(CloseCode::POLICY_VIOLATION, "authentication failed").await?;
            Ok(None)
        }
    }
}
