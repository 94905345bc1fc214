//! The chat protocol: JSON text frames, one object each, tagged by `type`.
//! docs/protocol.md is the reference; this module is its single source in code.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use volley_hub::{MemberRoom, Room, RoomId, Seq, StoredMessage, User, UserId};

pub use crate::refusal::ErrorCode;
use crate::refusal::Refusal;

/// What a client may send.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First frame of every connection (unless the upgrade carried a bearer token).
    Auth {
        /// A JWT from `/api/login`, `/api/register`, `/api/guest` or a trusted issuer; wins over `guest`.
        #[serde(default)]
        token: Option<String>,
        /// A guest name, when guests are allowed and no token is given.
        #[serde(default)]
        guest: Option<String>,
        /// Last sequence number seen per room id (JSON object keys are strings).
        #[serde(default)]
        resume: HashMap<String, Seq>,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Post a message; `id` is the client's idempotency key.
    Send {
        /// Must be a room the sender is a member of, else `not_found`.
        room: RoomId,
        /// 1-64 chars chosen by the client; re-sending it to the same room stores nothing new.
        id: String,
        /// The message body, at most `max_text_bytes` bytes (else `too_large`).
        text: String,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// A page of history before `before` (or the newest).
    History {
        /// The room to read; members only.
        room: RoomId,
        /// Only messages with a smaller `seq`; `None` for the newest page.
        #[serde(default)]
        before: Option<Seq>,
        /// Page size, clamped to 1-200; 50 when absent.
        #[serde(default)]
        limit: Option<u32>,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Join a public room.
    Join {
        /// A public room; private and direct rooms need an invitation.
        room: RoomId,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Leave a room.
    Leave {
        /// The room to leave; every connection of the user gets `room_left`.
        room: RoomId,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Create a room (public unless `private`).
    CreateRoom {
        /// 1-64 printable characters; the creator becomes its owner.
        name: String,
        /// Unlisted, members added by the owner; `false` (public) when absent.
        #[serde(default)]
        private: bool,
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// The sender is typing in `room`.
    Typing {
        /// Gets a `typing` frame at most once per `typing_interval_ms` per user.
        room: RoomId,
    },
    /// The sender has read `room` up to `seq`.
    Read {
        /// The room the receipt is for; its members get a `receipt`.
        room: RoomId,
        /// The highest seq read; clamped to the last message, and never moves a receipt backwards.
        seq: Seq,
    },
    /// Application-level round trip (latency display, liveness through proxies).
    Ping {
        /// Echoed as `ref` on the reply and on any `error` for this request, to match them up.
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
}

/// The `type` values a client may send, to tell an unknown type from a malformed known one.
const CLIENT_TYPES: &[&str] = &[
    "auth",
    "send",
    "history",
    "join",
    "leave",
    "create_room",
    "typing",
    "read",
    "ping",
];

/// Parse a client frame, classifying failures for the error answer.
pub fn parse_client(text: &str) -> Result<ClientMsg, Refusal> {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => {
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    return Err(Refusal::new(ErrorCode::BadJson, format!("not JSON: {e}")));
                }
            };
            let reference = value.get("ref").cloned();
            let kind = value.get("type").and_then(Value::as_str);
            let (code, message) = match kind {
                None => (ErrorCode::BadRequest, "a message needs a string \"type\"".to_owned()),
                Some(t) if !CLIENT_TYPES.contains(&t) => (ErrorCode::UnknownType, format!("unknown type {t:?}")),
                Some(t) => (ErrorCode::BadRequest, format!("invalid {t:?}: {err}")),
            };
            Err(Refusal::new(code, message).to(reference))
        }
    }
}

/// A user as clients see them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    /// Stable for the account's lifetime; what `owner`, `user` and `online` fields refer to.
    pub id: UserId,
    /// Unique display name (guests may get a suffix if theirs was taken).
    pub name: String,
    /// A guest account: token-only, no password to log in again with.
    pub guest: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            name: u.name.clone(),
            guest: u.kind == volley_hub::UserKind::Guest,
        }
    }
}

/// A room as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomView {
    /// The id every room-scoped frame and API path uses.
    pub id: RoomId,
    /// 1-64 printable characters; for public rooms, what `/api/rooms?q=` searches.
    pub name: String,
    /// `"public"`, `"private"` or `"direct"`: who may see and join it.
    pub kind: String,
    /// The creator; only they may remove members or invite to a private room.
    pub owner: UserId,
    /// Seq of the newest message, 0 for an empty room: a client behind it has messages to fetch.
    pub last_seq: Seq,
    /// How many users belong to the room.
    pub members: u64,
    /// Present for the reader's own rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<Seq>,
    /// `last_seq - last_read` on connect, for the reader's own rooms; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// Users online in the room, in the `ready` frame and `room_joined`;
    /// absent when more than `presence_list_max` are (ask `GET /api/rooms/{id}/online`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<UserId>>,
    /// How many users are online in the room, in `ready` and `room_joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<usize>,
}

impl From<&Room> for RoomView {
    fn from(r: &Room) -> Self {
        RoomView {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind.as_str().to_owned(),
            owner: r.owner,
            last_seq: r.last_seq,
            members: r.members,
            last_read: None,
            unread: None,
            online: None,
            online_count: None,
        }
    }
}

impl From<&MemberRoom> for RoomView {
    fn from(m: &MemberRoom) -> Self {
        RoomView {
            last_read: Some(m.last_read),
            unread: Some(m.last_read.until(m.room.last_seq)),
            ..RoomView::from(&m.room)
        }
    }
}

/// A stored message as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    /// The room it was posted in.
    pub room: RoomId,
    /// Its place in the room: 1, 2, 3... with no gaps; ignore a message at or below the last seen.
    pub seq: Seq,
    /// The sender's idempotency key from `send`, to match it with unacked local messages.
    pub id: String,
    /// The sender.
    pub user: UserId,
    /// The sender's name, so clients need no user lookup to display it.
    pub name: String,
    /// The body, at most `max_text_bytes` bytes.
    pub text: String,
    /// When the server stored it, in milliseconds since the Unix epoch (node clock).
    pub ts: i64,
}

impl From<&StoredMessage> for MessageView {
    fn from(m: &StoredMessage) -> Self {
        MessageView {
            room: m.room,
            seq: m.seq,
            id: m.client_id.clone(),
            user: m.user,
            name: m.user_name.clone(),
            text: m.text.clone(),
            ts: m.ts,
        }
    }
}

/// One user's membership change in a `members` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberChange {
    /// Who joined or left.
    pub user: UserView,
    /// The net change over the batch: `true` joined, `false` left or was removed.
    pub joined: bool,
}

/// One user's presence change in a `presence` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PresenceChange {
    /// Whose presence changed.
    pub user: UserId,
    /// Their name, so clients need not look the id up.
    pub name: String,
    /// `true` once any of their connections is up, `false` when the last one closed.
    pub online: bool,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Authenticated; the user's rooms with unread counts and who is online.
    Ready {
        /// The authenticated user.
        user: UserView,
        /// Every room the user belongs to, with `last_read`, `unread` and `online`.
        rooms: Vec<RoomView>,
        /// A token for reconnecting, when the connection authenticated as a new guest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A durable message (live, replayed on resume, or filling a gap).
    Message(MessageView),
    /// The sender's message is durable under `seq`.
    Ack {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room the message went to.
        room: RoomId,
        /// The seq it is stored under (the original one for a duplicate).
        seq: Seq,
        /// The client's idempotency key from `send`.
        id: String,
        /// Storage time in milliseconds since the Unix epoch.
        ts: i64,
        /// The id had already been stored: nothing new was stored or published.
        duplicate: bool,
    },
    /// Replay for `room` is complete up to `seq`; live traffic follows.
    CaughtUp {
        /// A room named in the auth frame's `resume`.
        room: RoomId,
        /// The last seq replayed; live messages continue after it.
        seq: Seq,
    },
    /// A page of history, oldest first; `more` when older messages exist.
    History {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room the page is from.
        room: RoomId,
        /// At most `limit` messages, oldest first.
        messages: Vec<MessageView>,
        /// Older messages exist: ask again with `before` set to the first seq.
        more: bool,
    },
    /// The reader became a member of a room (joined, created, invited, direct).
    RoomJoined {
        /// The room, with `online` filled in; sent to all of the user's connections.
        room: RoomView,
    },
    /// The reader is no longer a member of a room (left or removed).
    RoomLeft {
        /// The room; no more of its traffic follows on this connection.
        room: RoomId,
    },
    /// Members joined or left a room (batched: one frame per room per
    /// batching interval, the net change per user).
    Members {
        /// The room whose membership changed.
        room: RoomId,
        /// One entry per user whose membership changed in the batch.
        changes: Vec<MemberChange>,
    },
    /// Members came online or went offline in a room (batched likewise).
    Presence {
        /// The room the users belong to.
        room: RoomId,
        /// One entry per user whose presence changed in the batch; empty in
        /// rooms with more than `presence_list_max` users online.
        changes: Vec<PresenceChange>,
        /// How many users are online in the room now.
        #[serde(default)]
        online: usize,
    },
    /// A member is typing; show it for `ttl_ms` unless renewed.
    Typing {
        /// Where they are typing.
        room: RoomId,
        /// Who is typing.
        user: UserId,
        /// Their name, for display.
        name: String,
        /// How long to show the indicator, in milliseconds; it expires by itself.
        ttl_ms: u64,
    },
    /// A member has read a room up to `seq`.
    Receipt {
        /// The room read.
        room: RoomId,
        /// The reader.
        user: UserId,
        /// Their read mark: never moves backwards, clamped to the room's last message.
        seq: Seq,
    },
    /// A `join`, `leave` or `create_room` request succeeded (the membership
    /// change itself arrives as `room_joined` / `room_left`).
    Ok {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// The room joined or left, or the id of the room just created.
        room: RoomId,
    },
    /// Answer to `ping`.
    Pong {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// A request failed; the connection stays usable.
    Error {
        /// The request's `ref`, echoed so the client can match the reply; omitted when it had none.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        /// Machine-readable reason (see the error code table).
        code: ErrorCode,
        /// Human-readable detail; not stable, do not match on it.
        message: String,
        /// For `rate_limited`: milliseconds to wait before retrying (at least 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMsg {
    /// Serialize once; the bytes are what every receiver gets.
    pub fn encode(&self) -> Bytes {
        // Serializing these types cannot fail: no maps with non-string keys,
        // no floats that could be NaN.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// As a WebSocket text message, for one receiver.
    pub fn to_message(&self) -> volley_wire::Message {
        volley_wire::Message::Text(serde_json::to_string(self).unwrap_or_default().into())
    }
}

impl From<Refusal> for ServerMsg {
    fn from(refusal: Refusal) -> ServerMsg {
        ServerMsg::Error {
            reference: refusal.reference,
            code: refusal.code,
            message: refusal.message,
            retry_after_ms: refusal.retry_after.map(|d| d.as_millis().max(1) as u64),
        }
    }
}

/// Control events on a user's topic, read by that user's connections.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// Subscribe to this room and tell the client.
    Joined {
        /// The room the user now belongs to.
        room: RoomId,
    },
    /// Unsubscribe from this room and tell the client.
    Left {
        /// The room the user no longer belongs to.
        room: RoomId,
    },
    /// Close the session (1008, "disconnected: REASON"): the server API
    /// disconnected the user everywhere.
    Disconnect {
        /// Why, for the close frame.
        reason: String,
    },
}

impl Control {
    /// JSON for [`Event::control`](volley_hub::Event::control) on the user's topic; the connections decode it back.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_input() {
        assert_eq!(parse_client("{nope").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(
            parse_client(r#"{"type":"dance"}"#).unwrap_err().code,
            ErrorCode::UnknownType
        );
        let missing = parse_client(r#"{"type":"send","ref":7,"room":1}"#).unwrap_err();
        assert_eq!(missing.code, ErrorCode::BadRequest);
        assert_eq!(missing.reference, Some(Value::from(7)));
        assert_eq!(parse_client(r#"[1,2]"#).unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(
            parse_client(r#"{"type":"send","room":1,"id":"a","text":"hi","extra":1}"#)
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn parses_every_client_type() {
        for text in [
            r#"{"type":"auth","token":"t","resume":{"3":10}}"#,
            r#"{"type":"send","room":1,"id":"a","text":"hi","ref":"r"}"#,
            r#"{"type":"history","room":1,"before":10,"limit":5}"#,
            r#"{"type":"join","room":1}"#,
            r#"{"type":"leave","room":1}"#,
            r#"{"type":"create_room","name":"x","private":true}"#,
            r#"{"type":"typing","room":1}"#,
            r#"{"type":"read","room":1,"seq":3}"#,
            r#"{"type":"ping"}"#,
        ] {
            parse_client(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let msg = ServerMsg::Ack {
            reference: Some(Value::from("r1")),
            room: RoomId(4),
            seq: Seq(9),
            id: "c".into(),
            ts: 1,
            duplicate: false,
        };
        let bytes = msg.encode();
        assert!(std::str::from_utf8(&bytes).unwrap().contains(r#""type":"ack""#));
        assert_eq!(serde_json::from_slice::<ServerMsg>(&bytes).unwrap(), msg);
        let err = ServerMsg::from(Refusal::new(ErrorCode::RateLimited, "slow down")).encode();
        assert!(std::str::from_utf8(&err).unwrap().contains(r#""code":"rate_limited""#));
    }
}
