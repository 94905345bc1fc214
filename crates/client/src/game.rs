//! The game protocol from Rust: join, steer, and keep the visible world up
//! to date from delta snapshots. Used by the tests, `volley bench game` and
//! bots; [`crate::predict`] turns the snapshots into something to draw.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncWrite};
use volley_net::{Connector, MaybeTlsStream, Message, WebSocket};
pub use volley_protocol::game::{
    apply, kind, ClientMsg, EntityState, ErrorCode, Header, Join, Kind, PlayerEntry, ServerMsg, Snapshot, Welcome,
};

use crate::chat::ws_close;
use crate::{Backoff, CloseHint, Error};

/// Baselines a client keeps (the server never refers to older ones than
/// its own window, 30 by default).
const KEPT_BASELINES: usize = 64;

/// What a received frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `header` and `entities` now hold this tick; `bytes` is the frame size.
    Snapshot {
        /// The tick applied; the next `input` acknowledges it.
        tick: u32,
        /// Size of the snapshot frame in bytes, as received (before delta decoding).
        bytes: usize,
    },
    /// `roster` was replaced with the room's new player list.
    Roster,
    /// `leaderboard` was replaced (the server sends one every second).
    Leaderboard,
    /// Answer to `ping`, carrying the id that was sent.
    Pong(u32),
    /// The server refused something; the connection stays open unless a close follows.
    Error(ErrorCode, String),
    /// A seat token arrived (after the welcome, and renewed): kept for
    /// [`GameClient::rejoin`].
    Seat,
    /// The match moved to the node with this id; close 1012 follows.
    /// [`GameClient::rejoin`] goes there (`?node=ID` through the proxy).
    Moved(String),
}

/// A connected, seated game client, over its own connection
/// (`MaybeTlsStream`, the default) or over an HTTP/2 or HTTP/3 stream
/// (`volley_net::Upgraded`, see [`GameClient::join_on`]).
pub struct GameClient<S = MaybeTlsStream> {
    ws: WebSocket<S>,
    /// The server's answer to the join: player id, room, resume token, tick rate.
    pub welcome: Welcome,
    /// The newest snapshot's header.
    pub header: Header,
    /// What the player sees, sorted by id.
    pub entities: Vec<EntityState>,
    /// Everyone in the room, from the latest roster frame.
    pub roster: Vec<PlayerEntry>,
    /// The latest top 10 as (player id, rounded mass), heaviest first.
    pub leaderboard: Vec<(u32, u32)>,
    /// Bytes of every frame received so far.
    pub received_bytes: u64,
    /// The join asked to resume a seat that was gone (`resume_expired`
    /// came before the welcome): this is a new seat.
    pub resume_expired: bool,
    baselines: VecDeque<(u32, Vec<EntityState>)>,
    seq: u32,
    name: String,
    /// The account token the join carried: a rejoin signs in again.
    account: Option<String>,
    moved_to: Option<String>,
    seat: Option<(String, String)>,
}

impl<S> std::fmt::Debug for GameClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameClient")
            .field("welcome", &self.welcome)
            .field("tick", &self.header.tick)
            .finish()
    }
}

impl GameClient {
    /// Connect to `url` (`ws://host:port/game/ws`) and join. A node of a
    /// cluster may answer that the match should open on another node
    /// (`MOVED`): the join goes there, through the same proxy, once.
    pub async fn join(url: &str, join: Join) -> Result<GameClient, Error> {
        let ws = volley_net::connect(url).await?;
        match GameClient::join_on(ws, join.clone()).await {
            Err(Error::Moved { node }) => {
                let ws = volley_net::connect(&with_node(url, &node)).await?;
                GameClient::join_on(ws, join).await
            }
            other => other,
        }
    }

    /// Come back after the connection dropped: wait as the close asked
    /// (a draining proxy's 1012 names the wait) or on `backoff`, connect to
    /// `url` again and join with the resume token, which takes back the
    /// same cell within the server's grace period. Tries until a join is
    /// answered or `attempts` have failed; a spectator joins as one again.
    pub async fn rejoin(
        &self,
        connector: &Connector,
        url: &str,
        backoff: &mut Backoff,
        attempts: u32,
    ) -> Result<GameClient, Error> {
        let (code, reason) = ws_close(&self.ws);
        let mut hint = CloseHint::of(volley_net::CloseCode(code), &reason);
        let node = self
            .moved_to
            .as_ref()
            .or(self.seat.as_ref().map(|(n, _)| n))
            .filter(|n| !n.is_empty());
        let mut target = match node {
            Some(node) => with_node(url, node),
            None => url.to_owned(),
        };
        let mut last = Error::Closed { code, reason };
        for _ in 0..attempts.max(1) {
            // Refused for cause, or the seat was taken over by another
            // connection (4006): coming back would only take it from that one.
            if (hint == CloseHint::Stop && code == 1008) || code == 4006 {
                return Err(last);
            }
            tokio::time::sleep(backoff.next(hint)).await;
            let join = self.rejoin_frame();
            match connector.connect(&target).await {
                Ok(ws) => match GameClient::join_on(ws, join).await {
                    Ok(client) => {
                        backoff.reset();
                        return Ok(client);
                    }
                    Err(Error::Closed { code, reason }) => {
                        hint = CloseHint::of(volley_net::CloseCode(code), &reason);
                        last = Error::Closed { code, reason };
                    }
                    // The node that got the join knows where the match runs now.
                    Err(Error::Moved { node }) => {
                        target = with_node(url, &node);
                        hint = CloseHint::After(std::time::Duration::ZERO);
                        last = Error::Moved { node };
                    }
                    Err(e @ Error::GameRefused { .. }) => return Err(e),
                    Err(e) => {
                        hint = CloseHint::Backoff;
                        last = e;
                    }
                },
                Err(e) => {
                    hint = CloseHint::Backoff;
                    last = e.into();
                }
            }
        }
        Err(last)
    }
}

impl<S> GameClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Join over an open WebSocket.
    pub async fn join_on(mut ws: WebSocket<S>, join: Join) -> Result<GameClient<S>, Error> {
        let name = join.name.clone();
        let account = join.account.clone();
        ws.send(Message::Binary(ClientMsg::Join(join).encode().into())).await?;
        let mut resume_expired = false;
        let mut received_bytes = 0;
        let welcome = loop {
            let Some(message) = ws.recv().await? else {
                let (code, reason) = ws_close(&ws);
                return Err(Error::Closed { code, reason });
            };
            received_bytes += message.len() as u64;
            match ServerMsg::decode(message.as_bytes())? {
                ServerMsg::Welcome(w) => break w,
                ServerMsg::Error(ErrorCode::ResumeExpired, _) => resume_expired = true,
                ServerMsg::Error(code, message) => return Err(Error::GameRefused { code, message }),
                ServerMsg::Moved(node) => return Err(Error::Moved { node }),
                other => return Err(Error::Unexpected(format!("{other:?} before welcome"))),
            }
        };
        Ok(GameClient {
            ws,
            welcome,
            header: Header::default(),
            entities: Vec::new(),
            roster: Vec::new(),
            leaderboard: Vec::new(),
            received_bytes,
            resume_expired,
            baselines: VecDeque::new(),
            seq: 0,
            name,
            account,
            moved_to: None,
            seat: None,
        })
    }

    /// Read and apply the next frame; `None` when the server closed.
    pub async fn next(&mut self) -> Result<Option<Event>, Error> {
        let Some(message) = self.ws.recv().await? else {
            return Ok(None);
        };
        self.received_bytes += message.len() as u64;
        self.handle(message.as_bytes()).map(Some)
    }

    /// Apply one server frame.
    pub fn handle(&mut self, frame: &[u8]) -> Result<Event, Error> {
        if frame.first() == Some(&kind::SNAPSHOT) {
            let snapshot = Snapshot::decode(frame)?;
            let base: &[EntityState] = if snapshot.header.baseline == 0 {
                &[]
            } else {
                self.baselines
                    .iter()
                    .find(|(t, _)| *t == snapshot.header.baseline)
                    .map(|(_, e)| e.as_slice())
                    .ok_or_else(|| Error::Unexpected(format!("no baseline {}", snapshot.header.baseline)))?
            };
            let entities = apply(base, &snapshot)?;
            let tick = snapshot.header.tick;
            self.header = snapshot.header;
            self.entities = entities.clone();
            if self.baselines.len() >= KEPT_BASELINES {
                self.baselines.pop_front();
            }
            self.baselines.push_back((tick, entities));
            return Ok(Event::Snapshot {
                tick,
                bytes: frame.len(),
            });
        }
        Ok(match ServerMsg::decode(frame)? {
            ServerMsg::Roster(list) => {
                self.roster = list;
                Event::Roster
            }
            ServerMsg::Leaderboard(list) => {
                self.leaderboard = list;
                Event::Leaderboard
            }
            ServerMsg::Pong(id) => Event::Pong(id),
            ServerMsg::Error(code, text) => Event::Error(code, text),
            ServerMsg::Moved(node) => {
                self.moved_to = Some(node.clone());
                Event::Moved(node)
            }
            ServerMsg::Seat { node, token } => {
                self.seat = Some((node, token));
                Event::Seat
            }
            ServerMsg::Welcome(w) => return Err(Error::Unexpected(format!("second welcome {w:?}"))),
        })
    }

    /// Send steering (relative to the own centre) and buttons, acknowledging
    /// the newest snapshot; returns the input's sequence number.
    pub async fn input(&mut self, target: (i16, i16), buttons: u8) -> Result<u32, Error> {
        self.seq += 1;
        let msg = ClientMsg::Input {
            seq: self.seq,
            ack: self.header.tick,
            target,
            buttons,
        };
        self.ws.send(Message::Binary(msg.encode().into())).await?;
        Ok(self.seq)
    }

    /// Send a ping; the server answers at once with a pong carrying `id` (even before a join).
    pub async fn ping(&mut self, id: u32) -> Result<(), Error> {
        self.ws
            .send(Message::Binary(ClientMsg::Ping(id).encode().into()))
            .await?;
        Ok(())
    }

    /// Ask for a new cell after being eaten; ignored while the player is alive.
    pub async fn respawn(&mut self) -> Result<(), Error> {
        self.ws
            .send(Message::Binary(ClientMsg::Respawn.encode().into()))
            .await?;
        Ok(())
    }

    /// The own cells in view.
    pub fn own_cells(&self) -> impl Iterator<Item = &EntityState> {
        let me = self.welcome.player;
        self.entities
            .iter()
            .filter(move |e| e.kind == Kind::Cell && e.owner == me && me != 0)
    }

    /// The node the match moved to, once a `MOVED` frame said so.
    pub fn moved_to(&self) -> Option<&str> {
        self.moved_to.as_deref()
    }

    /// The seat token and the node it names, once a `SEAT` frame came.
    pub fn seat(&self) -> Option<(&str, &str)> {
        self.seat.as_ref().map(|(n, t)| (n.as_str(), t.as_str()))
    }

    /// The join that takes this seat back: the seat token when the server
    /// gave one (it works on whatever node runs the match), else the
    /// welcome's resume token.
    pub fn rejoin_frame(&self) -> Join {
        let player = !self.welcome.spectator;
        Join {
            name: self.name.clone(),
            spectate: self.welcome.spectator,
            resume: (player && self.seat.is_none()).then_some(self.welcome.token),
            seat: self.seat.as_ref().filter(|_| player).map(|(_, t)| t.clone()),
            account: self.account.clone(),
        }
    }

    /// The raw socket (tests send malformed frames through it).
    pub fn socket(&mut self) -> &mut WebSocket<S> {
        &mut self.ws
    }

    /// Close with 1000; the player's cells then stay in the world for the reconnect grace period.
    pub async fn close(mut self) -> Result<(), Error> {
        self.ws.close(volley_net::CloseCode::NORMAL, "bye").await?;
        Ok(())
    }
}

/// `url` with its `node` query parameter set to `node`: how a client asks
/// the proxy for the node that runs its match.
pub fn with_node(url: &str, node: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("node="))
        .collect();
    let pair = format!("node={}", encode_component(node));
    pairs.push(&pair);
    format!("{base}?{}", pairs.join("&"))
}

/// Percent-encoding for a query value (node ids are usually plain already).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_node;

    #[test]
    fn sets_the_node_parameter() {
        assert_eq!(with_node("ws://p/game/ws", "n2"), "ws://p/game/ws?node=n2");
        assert_eq!(
            with_node("ws://p/game/ws?x=1&node=n1", "n3"),
            "ws://p/game/ws?x=1&node=n3"
        );
        assert_eq!(
            with_node("ws://p/game/ws", "10.0.0.1:80"),
            "ws://p/game/ws?node=10.0.0.1%3A80"
        );
    }
}
