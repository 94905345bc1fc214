//! The chat operations, shared by the WebSocket sessions and the HTTP API:
//! each checks permissions, changes the store, then publishes what others
//! must learn (messages, membership, receipts) through the hub.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use volley_hub::{
    Appended, Event, Hub, NewMessage, Room, RoomId, RoomKind, Seq, StoredMessage, Topic, User, UserId, UserKind,
};

use crate::auth::{self, Auth, Identity};
use crate::batch::Batcher;
use crate::config::ChatConfig;
use crate::limits::{Cost, Limits};
use crate::protocol::{self, Control, ErrorCode, MessageView, RoomView, ServerMsg};
use crate::refusal::Refusal;

/// A stored message as the event every receiver gets: encoded once.
pub(crate) fn message_event(stored: &StoredMessage) -> Event {
    Event {
        seq: Some(stored.seq),
        control: false,
        payload: ServerMsg::Message(protocol::message_view(stored)).encode(),
    }
}

/// The answer for a room the caller cannot see, the same whether it does not
/// exist or is private: room ids must not be enumerable.
pub(crate) fn unseen(room: RoomId) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("no room {room} that you can see"))
}

/// The password pool is full: a 503 the client retries in a second.
fn busy(_: auth::Busy) -> Refusal {
    Refusal::new(
        ErrorCode::Unavailable,
        "too many password checks at once; retry shortly",
    )
    .retry_after(Duration::from_secs(1))
}

/// Most messages in one history page.
pub(crate) const MAX_PAGE: u32 = 200;

/// Users of the server API's keys are named `api:KEY_NAME`: no account can
/// be registered with a `:` and no token may name one, so nobody else can
/// take or speak as a key's user.
pub(crate) const SERVICE_PREFIX: &str = "api:";

/// The chat service of one node.
pub struct Chat {
    pub(crate) hub: Hub,
    pub(crate) auth: Auth,
    pub(crate) limits: Arc<Limits>,
    pub(crate) config: ChatConfig,
    batcher: Arc<Batcher>,
    hashing: auth::Hashing,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the configuration: it holds secrets (token_secret, jwt.secret,
        // the store's password), and a Debug ends up in logs.
        f.debug_struct("Chat")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Chat {
    /// A service over `hub` with these settings.
    pub fn new(hub: Hub, config: ChatConfig) -> Result<Chat, crate::Error> {
        config.validate()?;
        Chat::with_valid(hub, config)
    }

    /// [`Chat::new`] for settings the caller has validated.
    pub(crate) fn with_valid(hub: Hub, config: ChatConfig) -> Result<Chat, crate::Error> {
        let auth = Auth::new(&config)?;
        let limits = Arc::new(
            Limits::new(
                config.messages_per_sec,
                config.message_burst,
                config.max_connections_per_user,
                Duration::from_millis(config.typing_interval_ms),
            )
            .with_account_rate(config.account_attempts_per_sec),
        );
        let batcher = Batcher::new(
            hub.clone(),
            Duration::from_millis(config.presence_batch_ms),
            config.presence_list_max,
        );
        let listener = Arc::downgrade(&batcher);
        hub.presence().set_listener(Box::new(move |changes| {
            if let Some(batcher) = listener.upgrade() {
                for change in changes {
                    batcher.presence(change);
                }
            }
        }));
        Ok(Chat {
            hub,
            auth,
            limits,
            config,
            batcher,
            hashing: auth::Hashing::per_core(),
        })
    }

    /// Charge a request to the user's bucket. A user connected to several
    /// nodes gets an even share of the rate on each, so the cluster as a
    /// whole holds the limit without asking the others.
    pub(crate) fn limit(&self, user: UserId, cost: Cost) -> Result<(), Refusal> {
        let share = self.hub.presence().nodes_of(user).max(1);
        self.limits.take(user, cost, share).map_err(|wait| {
            metrics::counter!("volley_rate_limited_total").increment(1);
            let message = match cost {
                Cost::Message => "too many messages, slow down",
                Cost::Request => "too many requests, slow down",
            };
            Refusal::new(ErrorCode::RateLimited, message).retry_after(wait)
        })
    }

    /// Charge an account attempt (register, login, guest) to the client's address.
    pub fn limit_accounts(&self, ip: std::net::IpAddr) -> Result<(), Refusal> {
        self.limits.take_account(ip).map_err(|wait| {
            metrics::counter!("volley_rate_limited_total").increment(1);
            Refusal::new(ErrorCode::RateLimited, "too many account attempts from this address").retry_after(wait)
        })
    }

    /// `view` with who is online: the count always, the list up to
    /// `presence_list_max` users.
    pub(crate) fn with_online(&self, mut view: RoomView) -> RoomView {
        let presence = self.hub.presence();
        let count = presence.online_count(view.id);
        view.online_count = Some(count);
        if count <= self.config.presence_list_max {
            view.online = Some(presence.online(view.id));
        }
        view
    }

    /// This node's id (`--node-id`, or host:port): what the other nodes
    /// and `?node=` at the proxy call it.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The key the game signs seat tokens with: derived from the token
    /// secret, which every node of a cluster shares (`token_secret`).
    pub fn seat_key(&self) -> Vec<u8> {
        self.auth.seat_key().to_vec()
    }

    /// The hub: store, broker, presence.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Register with a password; returns the user and a token.
    pub async fn register(&self, name: &str, password: &str) -> Result<(User, String), Refusal> {
        if !auth::valid_name(name) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "user names are 1-32 letters, digits, '_', '-' or '.'",
            ));
        }
        if !(8..=256).contains(&password.len()) {
            return Err(Refusal::new(ErrorCode::BadRequest, "passwords are 8 to 256 bytes"));
        }
        let hash = self
            .hashing
            .hash(password.to_owned())
            .await
            .map_err(busy)?
            .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
        let user = self
            .hub
            .store()
            .create_user(name, UserKind::Password, Some(hash))
            .await?;
        let token = self.auth.issue(&user);
        Ok((user, token))
    }

    /// Log in with a password.
    pub async fn login(&self, name: &str, password: &str) -> Result<(User, String), Refusal> {
        let denied = || Refusal::new(ErrorCode::AuthFailed, "wrong user name or password");
        let found = self.hub.store().user_by_name(name).await?;
        let Some((user, Some(hash))) = found else {
            // Spend the same time as a wrong password, so the answer's timing
            // does not tell which user names exist.
            self.hashing
                .verify(password.to_owned(), auth::decoy_hash())
                .await
                .map_err(busy)?;
            return Err(denied());
        };
        if !self.hashing.verify(password.to_owned(), hash).await.map_err(busy)? {
            return Err(denied());
        }
        let token = self.auth.issue(&user);
        Ok((user, token))
    }

    /// A guest account under `name` (made unique with a suffix when taken).
    pub async fn guest(&self, name: Option<&str>) -> Result<(User, String), Refusal> {
        if !self.config.guests {
            return Err(Refusal::new(
                ErrorCode::GuestsDisabled,
                "guests are disabled on this server",
            ));
        }
        let base = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("guest");
        if !auth::valid_name(base) || base.len() > 24 {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "guest names are 1-24 letters, digits, '_', '-' or '.'",
            ));
        }
        let mut candidate = base.to_owned();
        for _ in 0..8 {
            match self.hub.store().create_user(&candidate, UserKind::Guest, None).await {
                Ok(user) => {
                    let token = self.auth.issue(&user);
                    return Ok((user, token));
                }
                Err(volley_hub::Error::Taken(_)) => {
                    candidate = format!("{base}-{:04x}", rand::random::<u16>());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Refusal::new(ErrorCode::NameTaken, "could not find a free guest name"))
    }

    /// The user a token speaks for.
    pub async fn authenticate(&self, token: &str) -> Result<User, Refusal> {
        let denied = || Refusal::new(ErrorCode::AuthFailed, "invalid or expired token");
        let user = match self.auth.verify(token).ok_or_else(denied)? {
            Identity::Local(id) => self.hub.store().user(id).await?.ok_or_else(denied)?,
            // `api:` names belong to the server API's keys: no token may speak as one.
            Identity::External(subject) if subject.starts_with(SERVICE_PREFIX) => return Err(denied()),
            Identity::External(subject) => self.hub.store().external_user(&subject).await?,
        };
        if !auth::kind_allowed(user.kind, self.config.guests) {
            return Err(Refusal::new(
                ErrorCode::GuestsDisabled,
                "guests are disabled on this server",
            ));
        }
        Ok(user)
    }

    /// Tell every connection of `user` on every node. This node's own
    /// connections get it directly too, so a join made here takes effect here
    /// while the broker is down; the controls are idempotent, so the copy
    /// that comes back through the broker changes nothing.
    fn control(&self, user: UserId, control: Control) {
        let event = Event::control(control.encode());
        if self.hub.broker().spans_nodes() {
            self.hub.deliver_local(Topic::User(user), event.clone());
        }
        self.hub.publish(Topic::User(user), event);
    }

    fn member_event(&self, room: RoomId, user: &User, joined: bool) {
        self.batcher.member(room, user, joined);
    }

    /// Publish an ephemeral (not stored) event to a room.
    pub(crate) fn broadcast(&self, room: RoomId, msg: &ServerMsg) {
        self.hub.publish(Topic::Room(room), Event::ephemeral(msg.encode()));
    }

    /// Create a room owned by `user`.
    pub async fn create_room(&self, user: &User, name: &str, private: bool) -> Result<Room, Refusal> {
        self.limit(user.id, Cost::Request)?;
        self.create_room_as_service(user, name, private).await
    }

    /// [`Chat::create_room`] for the server API (no per-user rate).
    pub(crate) async fn create_room_as_service(
        &self,
        owner: &User,
        name: &str,
        private: bool,
    ) -> Result<Room, Refusal> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "room names are 1 to 64 printable characters",
            ));
        }
        let kind = if private { RoomKind::Private } else { RoomKind::Public };
        let room = self.hub.store().create_room(name, kind, owner.id).await?;
        self.control(
            owner.id,
            Control::Joined {
                room: room.id,
                from: Some(Seq::ZERO),
            },
        );
        Ok(room)
    }

    /// Remove the user `target` from `room` for the server API; false when
    /// they were not a member. Their sessions on every node leave the room.
    pub(crate) async fn remove_as_service(&self, room: RoomId, target: &str) -> Result<bool, Refusal> {
        let r = self.room(room).await?;
        let user = self.user_named(target).await?;
        if r.kind == RoomKind::Direct {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "a direct room's members cannot be removed (they could never get back in)",
            ));
        }
        if r.owner == user.id {
            return Err(Refusal::new(ErrorCode::BadRequest, "the owner cannot be removed"));
        }
        let removed = self.hub.store().remove_member(room, user.id).await?;
        if removed {
            self.control(user.id, Control::Left { room });
            self.member_event(room, &user, false);
        }
        Ok(removed)
    }

    /// Delete a room for the application's backend: its messages and
    /// memberships go, and every member's sessions, on every node, get
    /// `room_left`. Direct rooms belong to their two users and stay.
    pub(crate) async fn delete_as_service(&self, room: RoomId) -> Result<(), Refusal> {
        let r = self.room(room).await?;
        if r.kind == RoomKind::Direct {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "a direct room belongs to its two users and cannot be deleted",
            ));
        }
        let members = self.hub.store().delete_room(room).await?.ok_or_else(|| unseen(room))?;
        for user in members {
            self.control(user, Control::Left { room });
        }
        Ok(())
    }

    /// Close every session of the user `target`, on every node, with 1008
    /// and `reason`. Their token stays valid: revoke it where it was issued.
    pub(crate) async fn disconnect(&self, target: &str, reason: &str) -> Result<User, Refusal> {
        let user = self.user_named(target).await?;
        if self.hub.broker().spans_nodes() && !self.hub.broker().connected() {
            // The other nodes would not hear it: say so rather than 200.
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "the broker is down: other nodes cannot be told; retry",
            ));
        }
        let mut end = reason.len().min(100);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.control(
            user.id,
            Control::Disconnect {
                reason: reason[..end].to_owned(),
            },
        );
        Ok(user)
    }

    async fn room(&self, id: RoomId) -> Result<Room, Refusal> {
        self.hub.store().room(id).await?.ok_or_else(|| unseen(id))
    }

    /// The room if `user` may see it (public, or a member): otherwise the
    /// very answer a room that does not exist gets.
    async fn visible_room(&self, user: UserId, id: RoomId) -> Result<Room, Refusal> {
        let room = self.room(id).await?;
        if room.kind == RoomKind::Public || self.hub.store().is_member(id, user).await? {
            Ok(room)
        } else {
            Err(unseen(id))
        }
    }

    async fn user_named(&self, name: &str) -> Result<User, Refusal> {
        if name.is_empty() || name.len() > 64 || name.contains('\0') {
            return Err(Refusal::new(ErrorCode::NotFound, "no such user"));
        }
        match self.hub.store().user_by_name(name).await? {
            Some((user, _)) => Ok(user),
            None => Err(Refusal::new(ErrorCode::NotFound, format!("user {name} not found"))),
        }
    }

    /// Join a public room.
    pub async fn join(&self, user: &User, room: RoomId) -> Result<Room, Refusal> {
        self.limit(user.id, Cost::Request)?;
        let r = self.visible_room(user.id, room).await?;
        if self.hub.store().add_member(room, user.id).await? {
            // Messages sent between this answer and the sessions subscribing
            // reach them by replay, not only as an unread count.
            self.control(
                user.id,
                Control::Joined {
                    room,
                    from: Some(r.last_seq),
                },
            );
            self.member_event(room, user, true);
        }
        Ok(r)
    }

    /// Leave a room.
    pub async fn leave(&self, user: &User, room: RoomId) -> Result<(), Refusal> {
        self.limit(user.id, Cost::Request)?;
        if !self.hub.store().remove_member(room, user.id).await? {
            return Err(unseen(room));
        }
        self.control(user.id, Control::Left { room });
        self.member_event(room, user, false);
        Ok(())
    }

    /// Add `target` to `room`: the owner may add to any room, members to public ones.
    pub async fn invite(&self, by: &User, room: RoomId, target: &str) -> Result<User, Refusal> {
        self.limit(by.id, Cost::Request)?;
        let r = self.visible_room(by.id, room).await?;
        let allowed = match r.kind {
            RoomKind::Private => r.owner == by.id,
            RoomKind::Public => self.hub.store().is_member(room, by.id).await?,
            RoomKind::Direct => false,
        };
        if !allowed {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "only the owner can invite to this room",
            ));
        }
        self.add_member(room, target).await
    }

    /// Add the user `target` to `room` (no permission check: the caller has
    /// made it); their sessions on every node enter the room.
    pub(crate) async fn add_member(&self, room: RoomId, target: &str) -> Result<User, Refusal> {
        let user = self.user_named(target).await?;
        if self.hub.store().add_member(room, user.id).await? {
            self.control(user.id, Control::Joined { room, from: None });
            self.member_event(room, &user, true);
        }
        Ok(user)
    }

    /// Remove `target` from `room` (owner only).
    pub async fn remove(&self, by: &User, room: RoomId, target: &str) -> Result<(), Refusal> {
        self.limit(by.id, Cost::Request)?;
        let r = self.visible_room(by.id, room).await?;
        if r.owner != by.id || r.kind == RoomKind::Direct {
            return Err(Refusal::new(ErrorCode::Forbidden, "only the owner can remove members"));
        }
        let user = self.user_named(target).await?;
        if user.id == by.id {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the owner cannot remove themselves; leave instead",
            ));
        }
        if self.hub.store().remove_member(room, user.id).await? {
            self.control(user.id, Control::Left { room });
            self.member_event(room, &user, false);
        }
        Ok(())
    }

    /// The direct room between `user` and `other`.
    pub async fn direct(&self, user: &User, other: &str) -> Result<Room, Refusal> {
        self.limit(user.id, Cost::Request)?;
        let peer = self.user_named(other).await?;
        if peer.id == user.id {
            return Err(Refusal::new(ErrorCode::BadRequest, "a direct room needs another user"));
        }
        let room = self.hub.store().direct_room(user, &peer).await?;
        self.control(
            user.id,
            Control::Joined {
                room: room.id,
                from: None,
            },
        );
        self.control(
            peer.id,
            Control::Joined {
                room: room.id,
                from: None,
            },
        );
        Ok(room)
    }

    /// Public rooms matching `query`.
    pub async fn search(&self, query: &str) -> Result<Vec<RoomView>, Refusal> {
        let rooms = self.hub.store().search_public(query, 50).await?;
        Ok(rooms.iter().map(protocol::room_view).collect())
    }

    async fn require_member(&self, user: UserId, room: RoomId) -> Result<(), Refusal> {
        if self.hub.store().is_member(room, user).await? {
            Ok(())
        } else {
            Err(unseen(room))
        }
    }

    /// A page of history (members only); `more` when older messages exist.
    pub async fn history(
        &self,
        user: UserId,
        room: RoomId,
        before: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<(Vec<MessageView>, bool), Refusal> {
        self.limit(user, Cost::Request)?;
        self.require_member(user, room).await?;
        let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let page = self.hub.store().history(room, before, limit).await?;
        let more = page.first().is_some_and(|m| m.seq > Seq(1));
        Ok((page.iter().map(protocol::message_view).collect(), more))
    }

    /// Store a message and publish it to the room. The caller has checked membership.
    pub async fn send(&self, user: &User, room: RoomId, client_id: String, text: String) -> Result<Appended, Refusal> {
        self.check_message(&client_id, &text)?;
        self.limit(user.id, Cost::Message)?;
        self.append_and_publish(user, room, client_id, text).await
    }

    /// [`Chat::send`] for the server API: the application's backend is
    /// trusted with its own rate, and publishes into any room.
    pub(crate) async fn send_as_service(
        &self,
        user: &User,
        room: RoomId,
        client_id: String,
        text: String,
    ) -> Result<Appended, Refusal> {
        self.check_message(&client_id, &text)?;
        self.append_and_publish(user, room, client_id, text).await
    }

    fn check_message(&self, client_id: &str, text: &str) -> Result<(), Refusal> {
        if text.len() > self.config.max_text_bytes {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!(
                    "text is {} bytes, the limit is {}",
                    text.len(),
                    self.config.max_text_bytes
                ),
            ));
        }
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(Refusal::new(ErrorCode::BadRequest, "id must be 1 to 64 characters"));
        }
        if text.contains('\0') || client_id.contains('\0') {
            return Err(Refusal::new(ErrorCode::BadRequest, "text and id may not contain NUL"));
        }
        Ok(())
    }

    async fn append_and_publish(
        &self,
        user: &User,
        room: RoomId,
        client_id: String,
        text: String,
    ) -> Result<Appended, Refusal> {
        let started = std::time::Instant::now();
        let message = NewMessage {
            room,
            user: user.id,
            user_name: user.name.clone(),
            client_id,
            text,
            ts: now_ms(),
        };
        if let Some(fake) = self.injected_loss(&message).await {
            return Ok(fake);
        }
        let appended = self.hub.store().append(message).await?;
        metrics::histogram!("volley_append_seconds").record(started.elapsed().as_secs_f64());
        if let Appended::New(stored) = &appended {
            metrics::counter!("volley_messages_total").increment(1);
            self.publish_message(stored);
        }
        Ok(appended)
    }

    /// A deliberately broken delivery, for proving that `volley cluster
    /// test` catches one: with `VOLLEY_INJECT_FAULT=ack-without-store` in a
    /// debug build, one message in 20 is acknowledged under the room's next
    /// seq and never stored, so the next message takes that seq and the
    /// acknowledged one reaches nobody. Release builds never read the
    /// variable.
    async fn injected_loss(&self, message: &NewMessage) -> Option<Appended> {
        if !cfg!(debug_assertions) || std::env::var("VOLLEY_INJECT_FAULT").as_deref() != Ok("ack-without-store") {
            return None;
        }
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 20 != 7 {
            return None;
        }
        let room = self.hub.store().room(message.room).await.ok()??;
        tracing::error!(room = %message.room, "VOLLEY_INJECT_FAULT: acknowledging a message that is not stored");
        Some(Appended::New(message.clone().stored(Seq(room.last_seq.0 + 1))))
    }

    fn publish_message(&self, stored: &StoredMessage) {
        self.hub.publish_message(stored.room, stored.seq, message_event(stored));
    }

    /// Record a read receipt and tell the room.
    pub async fn read(&self, user: &User, room: RoomId, seq: Seq) -> Result<Seq, Refusal> {
        self.limit(user.id, Cost::Request)?;
        let recorded = self.hub.store().set_read(room, user.id, seq).await?;
        self.broadcast(
            room,
            &ServerMsg::Receipt {
                room,
                user: user.id,
                seq: recorded,
            },
        );
        Ok(recorded)
    }

    /// Tell a room that `user` is typing, at most once per interval.
    pub fn typing(&self, user: &User, room: RoomId) {
        if self.limits.typing(user.id, room) {
            self.broadcast(
                room,
                &ServerMsg::Typing {
                    room,
                    user: user.id,
                    name: user.name.clone(),
                    ttl_ms: self.config.typing_ttl_ms,
                },
            );
        }
    }
}
