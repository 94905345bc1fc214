//! One game connection: join, then relay inputs into the room's queue and
//! the room's latest snapshot (and room frames) out to the socket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use volley_net::{CloseCode, Message, WebSocket};

use crate::accounts::AccountError;
use crate::lobby::{Lobby, Refused, Seat, SEAT_TOKEN_MARGIN_SECS};
use crate::protocol::{ClientMsg, ErrorCode, Join, MatchId, ServerMsg, MAX_NAME_BYTES};
use crate::room::Command;
use crate::seat::SeatError;

/// Time a connection has to send its join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Undecodable frames tolerated before the connection is closed (1008).
const MAX_BAD_FRAMES: u32 = 32;
/// A connection sending this many times its input allowance within a
/// second is closed (1008): it is flooding, not lagging.
const FLOOD_FACTOR: u32 = 10;

/// Counts a seated connection for the bandwidth gauge while it lives.
struct Connected<'a>(&'a Lobby);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn send_error<S>(ws: &mut WebSocket<S>, code: ErrorCode, text: &str) -> Result<(), volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Binary(ServerMsg::Error(code, text.to_owned()).encode().into()))
        .await
}

/// An account's name cut to what the roster carries, on a character boundary.
fn shortened(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return Some("player".to_owned());
    }
    if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return None;
    }
    Some(name.to_owned())
}

/// Wait for the join frame, answering pings; `None` if the connection ends
/// or misbehaves first (it has then been closed).
async fn first_join<S>(ws: &mut WebSocket<S>) -> Result<Option<Join>, volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut bad = 0;
    loop {
        let message = match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(message) => message?,
            Err(_) => {
                ws.close(CloseCode::POLICY_VIOLATION, "join timeout").await?;
                return Ok(None);
            }
        };
        let Some(message) = message else { return Ok(None) };
        let Message::Binary(frame) = message else {
            ws.close(CloseCode::UNSUPPORTED_DATA, "the game protocol is binary")
                .await?;
            return Ok(None);
        };
        match ClientMsg::decode(&frame) {
            Ok(ClientMsg::Join(mut join)) => match valid_name(&join.name) {
                Some(name) => {
                    join.name = name;
                    return Ok(Some(join));
                }
                None => send_error(ws, ErrorCode::BadName, "names are 1 to 24 printable bytes").await?,
            },
            Ok(ClientMsg::Ping(id)) => ws.send(Message::Binary(ServerMsg::Pong(id).encode().into())).await?,
            Ok(_) => send_error(ws, ErrorCode::NotJoined, "send a join first").await?,
            Err(e) => {
                metrics::counter!("volley_game_bad_frames_total").increment(1);
                send_error(ws, ErrorCode::BadFrame, &e.to_string()).await?;
            }
        }
        bad += 1;
        if bad >= MAX_BAD_FRAMES {
            ws.close(CloseCode::POLICY_VIOLATION, "too many bad frames").await?;
            return Ok(None);
        }
    }
}

/// Token bucket for inputs, refilled continuously.
struct Allowance {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    dropped_this_second: u32,
    second: Instant,
    warned: Option<Instant>,
}

impl Allowance {
    fn new(rate: u32, burst: u32) -> Allowance {
        let now = Instant::now();
        Allowance {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: now,
            dropped_this_second: 0,
            second: now,
            warned: None,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if now.duration_since(self.second) >= Duration::from_secs(1) {
            self.second = now;
            self.dropped_this_second = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped_this_second += 1;
            false
        }
    }

    /// Whether to tell the client (at most once a second).
    fn should_warn(&mut self) -> bool {
        let now = Instant::now();
        if self
            .warned
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.warned = Some(now);
            true
        } else {
            false
        }
    }
}

/// Resolves once shutdown begins (holds no borrow of the flag across awaits).
/// A seat token that cannot take a seat: the error frame, then its own
/// close code (4001 invalid, 4002 expired, 4003 replayed).
async fn refuse_seat<S>(ws: &mut WebSocket<S>, code: ErrorCode, close: u16, why: &str) -> Result<(), volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    metrics::counter!("volley_game_seat_tokens_refused_total", "reason" => why.to_owned()).increment(1);
    send_error(ws, code, why).await?;
    ws.close(CloseCode(close), why).await
}

/// The match was handed to `node`: say where, then 1012 (this service
/// restarting) with no wait, since the match already runs there.
async fn tell_moved<S>(ws: &mut WebSocket<S>, node: &str, sent: &impl Fn(usize)) -> Result<(), volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let moved = ServerMsg::Moved(node.to_owned()).encode();
    sent(moved.len());
    ws.feed(Message::Binary(moved.into())).await?;
    ws.close(CloseCode::SERVICE_RESTART, "match moved; reconnect in 0 ms")
        .await
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

pub(crate) async fn run<S>(
    lobby: Arc<Lobby>,
    mut ws: WebSocket<S>,
    shutdown: watch::Receiver<bool>,
    pinned: Option<String>,
    watch: Option<MatchId>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = serve(&lobby, &mut ws, shutdown, pinned.as_deref(), watch).await {
        tracing::debug!(error = %e, "game connection ended");
    }
}

async fn serve<S>(
    lobby: &Lobby,
    ws: &mut WebSocket<S>,
    mut shutdown: watch::Receiver<bool>,
    pinned: Option<&str>,
    watch: Option<MatchId>,
) -> Result<(), volley_net::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut join) = first_join(ws).await? else {
        return Ok(());
    };
    // An account token makes the seat the account's, under its name.
    let mut account = None;
    if let Some(token) = join.account.take() {
        match lobby.verify_account(&token).await {
            Ok(signed_in) => {
                join.name = shortened(&signed_in.name);
                account = Some(signed_in.id);
            }
            Err(AccountError::Refused(why)) => {
                metrics::counter!("volley_game_accounts_refused_total").increment(1);
                send_error(ws, ErrorCode::AccountRefused, &why).await?;
                ws.close(CloseCode(4005), "account token refused").await?;
                return Ok(());
            }
            // The store is down, not the token bad: come back soon.
            Err(AccountError::Unavailable(why)) => {
                tracing::warn!(error = %why, "an account could not be checked");
                ws.close(CloseCode::TRY_AGAIN_LATER, "accounts unavailable; reconnect in 1000 ms")
                    .await?;
                return Ok(());
            }
        }
    }
    // A seat token stands for its seat's resume secret, once checked.
    if let Some(token) = join.seat.take() {
        if !join.spectate {
            match lobby.verify_seat(&token) {
                Ok(claims) => join.resume = Some(claims.secret),
                Err(SeatError::Invalid) => {
                    return refuse_seat(ws, ErrorCode::SeatInvalid, 4001, "seat token invalid").await;
                }
                Err(SeatError::Expired) => {
                    return refuse_seat(ws, ErrorCode::SeatExpired, 4002, "seat token expired").await;
                }
            }
        }
    }
    let Seat {
        room,
        joined,
        resume_expired,
    } = match match watch.filter(|_| join.spectate) {
        Some(id) => lobby.watch(join, id, pinned).await,
        None => lobby.join(join, pinned, account).await,
    } {
        Ok(seat) => seat,
        Err(Refused::Elsewhere(node)) => {
            ws.feed(Message::Binary(ServerMsg::Moved(node).encode().into())).await?;
            ws.close(
                CloseCode::SERVICE_RESTART,
                "the match is on another node; reconnect in 0 ms",
            )
            .await?;
            return Ok(());
        }
        Err(Refused::NoSuchMatch) => {
            send_error(ws, ErrorCode::NoRoom, "no node runs that match").await?;
            ws.close(CloseCode(4004), "no such match").await?;
            return Ok(());
        }
        Err(Refused::Recovering) => {
            ws.close(
                CloseCode::TRY_AGAIN_LATER,
                "the match's node stopped; its match is being recovered: reconnect in 1000 ms",
            )
            .await?;
            return Ok(());
        }
        Err(Refused::Code(ErrorCode::SeatReplayed)) => {
            return refuse_seat(ws, ErrorCode::SeatReplayed, 4003, "seat token already used").await;
        }
        Err(Refused::Code(code)) => {
            send_error(ws, code, "no room can take you now").await?;
            ws.close(CloseCode::TRY_AGAIN_LATER, "no room").await?;
            return Ok(());
        }
    };
    lobby.connected.fetch_add(1, Ordering::AcqRel);
    let _connected = Connected(lobby);
    let key = joined.key;
    let attach = joined.attach;
    let mut snapshots = joined.snapshots;
    let mut roster = joined.roster;
    let mut board = joined.board;
    let taken = joined.taken;
    let result = async {
        let sent = |n: usize| {
            lobby.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
            room.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
            metrics::counter!("volley_game_bytes_sent_total").increment(n as u64);
        };
        if resume_expired {
            // Said before the welcome, so the client knows its old cell is
            // gone and the welcome is a fresh seat.
            let error = ServerMsg::Error(ErrorCode::ResumeExpired, "that seat is gone; you have a new one".into()).encode();
            sent(error.len());
            ws.feed(Message::Binary(error.into())).await?;
        }
        let (room_id, player, secret) = (joined.welcome.room, joined.welcome.player, joined.welcome.token);
        let seat = move || {
            (player != 0).then(|| {
                let node = lobby.cluster().map(|c| c.node().to_owned()).unwrap_or_default();
                ServerMsg::Seat {
                    node,
                    token: lobby.seat_token(room_id, player, &secret),
                }
                .encode()
            })
        };
        let welcome = ServerMsg::Welcome(joined.welcome).encode();
        sent(welcome.len());
        ws.feed(Message::Binary(welcome.into())).await?;
        if let Some(frame) = seat() {
            sent(frame.len());
            ws.feed(Message::Binary(frame.into())).await?;
        }
        let mut renew = tokio::time::interval(Duration::from_secs(SEAT_TOKEN_MARGIN_SECS / 3));
        renew.tick().await;
        let frame = roster.borrow_and_update().clone();
        if !frame.is_empty() {
            sent(frame.len());
            ws.feed(Message::Binary(frame)).await?;
        }
        ws.flush().await?;
        let config = lobby.config();
        let mut allowance = Allowance::new(config.input_rate(), config.tick_hz);
        let mut bad = 0;
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => {
                    if let Some(node) = room.moved.get() {
                        return tell_moved(ws, node, &sent).await;
                    }
                    ws.close(CloseCode::GOING_AWAY, "server shutting down").await?;
                    return Ok(());
                }
                message = ws.recv() => {
                    let Some(message) = message? else { return Ok(()) };
                    let Message::Binary(frame) = message else {
                        ws.close(CloseCode::UNSUPPORTED_DATA, "the game protocol is binary").await?;
                        return Ok(());
                    };
                    match ClientMsg::decode(&frame) {
                        Ok(ClientMsg::Input { seq, ack, target, buttons }) => {
                            if !allowance.take() {
                                metrics::counter!("volley_game_inputs_rejected_total", "reason" => "rate").increment(1);
                                if allowance.dropped_this_second > FLOOD_FACTOR * config.input_rate() {
                                    ws.close(CloseCode::POLICY_VIOLATION, "input flood").await?;
                                    return Ok(());
                                }
                                if allowance.should_warn() {
                                    send_error(ws, ErrorCode::RateLimited, "too many inputs; the excess was dropped").await?;
                                }
                                continue;
                            }
                            let command = Command::Input { key, attach, seq, ack, target, buttons };
                            if room.commands.try_send(command).is_err() {
                                metrics::counter!("volley_game_inputs_rejected_total", "reason" => "queue_full").increment(1);
                            }
                        }
                        Ok(ClientMsg::Ping(id)) => {
                            let pong = ServerMsg::Pong(id).encode();
                            sent(pong.len());
                            ws.send(Message::Binary(pong.into())).await?;
                        }
                        Ok(ClientMsg::Respawn) => {
                            if room.commands.try_send(Command::Respawn { key }).is_err() {
                                metrics::counter!("volley_game_inputs_rejected_total", "reason" => "queue_full").increment(1);
                            }
                        }
                        Ok(ClientMsg::Join(_)) => send_error(ws, ErrorCode::AlreadyJoined, "already in a room").await?,
                        Err(e) => {
                            metrics::counter!("volley_game_bad_frames_total").increment(1);
                            bad += 1;
                            if bad >= MAX_BAD_FRAMES {
                                ws.close(CloseCode::POLICY_VIOLATION, "too many bad frames").await?;
                                return Ok(());
                            }
                            send_error(ws, ErrorCode::BadFrame, &e.to_string()).await?;
                        }
                    }
                }
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        if let Some(node) = room.moved.get() {
                            return tell_moved(ws, node, &sent).await;
                        }
                        if room.closed.load(Ordering::Acquire) {
                            // The room ended under us (a copy dropped, a
                            // thread lost): the match may run elsewhere.
                            ws.close(CloseCode::TRY_AGAIN_LATER, "the match stopped here; reconnect in 1000 ms").await?;
                            return Ok(());
                        }
                        // A newer connection took this seat over (its token, or
                        // the same account): 4006, so the client does not take it
                        // back in turn and the two never fight over it.
                        ws.close(CloseCode(4006), "seat taken over by another connection").await?;
                        return Ok(());
                    }
                    let latest: Option<(u32, Bytes)> = snapshots.borrow_and_update().clone();
                    if let Some((tick, frame)) = latest {
                        taken.store(tick, Ordering::Release);
                        sent(frame.len());
                        ws.send(Message::Binary(frame)).await?;
                    }
                }
                Ok(()) = roster.changed() => {
                    let frame = roster.borrow_and_update().clone();
                    sent(frame.len());
                    ws.send(Message::Binary(frame)).await?;
                }
                _ = renew.tick() => {
                    if let Some(frame) = seat() {
                        sent(frame.len());
                        ws.send(Message::Binary(frame.into())).await?;
                    }
                }
                Ok(()) = board.changed() => {
                    let frame = board.borrow_and_update().clone();
                    sent(frame.len());
                    ws.send(Message::Binary(frame)).await?;
                }
            }
        }
    }
    .await;
    // The seat stays (for a reconnect within the grace period) or goes
    // (spectators); either way the room must hear of it.
    let detach = Command::Detach { key, attach };
    let _ = tokio::time::timeout(Duration::from_secs(5), room.commands.send(detach)).await;
    result
}
