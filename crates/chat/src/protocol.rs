//! The chat protocol: JSON text frames, one object each, tagged by `type`.
//! docs/protocol.md is the reference; this module is its single source in code.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use volley_hub::{MemberRoom, Room, RoomId, StoredMessage, User, UserId};

pub use crate::refusal::ErrorCode;
use crate::refusal::Refusal;

/// What a client may send.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First frame of every connection (unless the upgrade carried a bearer token).
    Auth {
        #[serde(default)]
        token: Option<String>,
        /// A guest name, when guests are allowed and no token is given.
        #[serde(default)]
        guest: Option<String>,
        /// Last sequence number seen per room id (JSON object keys are strings).
        #[serde(default)]
        resume: HashMap<String, u64>,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Post a message; `id` is the client's idempotency key.
    Send {
        room: RoomId,
        id: String,
        text: String,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// A page of history before `before` (or the newest).
    History {
        room: RoomId,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Join a public room.
    Join {
        room: RoomId,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Leave a room.
    Leave {
        room: RoomId,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// Create a room (public unless `private`).
    CreateRoom {
        name: String,
        #[serde(default)]
        private: bool,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
    },
    /// The sender is typing in `room`.
    Typing { room: RoomId },
    /// The sender has read `room` up to `seq`.
    Read { room: RoomId, seq: u64 },
    /// Application-level round trip (latency display, liveness through proxies).
    Ping {
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
    pub id: UserId,
    pub name: String,
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
    pub id: RoomId,
    pub name: String,
    pub kind: String,
    pub owner: UserId,
    pub last_seq: u64,
    pub members: u64,
    /// Present for the reader's own rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// Users online in the room, in the `ready` frame and `room_joined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<UserId>>,
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
        }
    }
}

impl From<&MemberRoom> for RoomView {
    fn from(m: &MemberRoom) -> Self {
        RoomView {
            last_read: Some(m.last_read),
            unread: Some(m.room.last_seq.saturating_sub(m.last_read)),
            ..RoomView::from(&m.room)
        }
    }
}

/// A stored message as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    pub room: RoomId,
    pub seq: u64,
    pub id: String,
    pub user: UserId,
    pub name: String,
    pub text: String,
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
    pub user: UserView,
    pub joined: bool,
}

/// One user's presence change in a `presence` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PresenceChange {
    pub user: UserId,
    pub name: String,
    pub online: bool,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Authenticated; the user's rooms with unread counts and who is online.
    Ready {
        user: UserView,
        rooms: Vec<RoomView>,
        /// A token for reconnecting, when the connection authenticated as a new guest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A durable message (live, replayed on resume, or filling a gap).
    Message(MessageView),
    /// The sender's message is durable under `seq`.
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        room: RoomId,
        seq: u64,
        id: String,
        ts: i64,
        duplicate: bool,
    },
    /// Replay for `room` is complete up to `seq`; live traffic follows.
    CaughtUp { room: RoomId, seq: u64 },
    /// A page of history, oldest first; `more` when older messages exist.
    History {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        room: RoomId,
        messages: Vec<MessageView>,
        more: bool,
    },
    /// The reader became a member of a room (joined, created, invited, direct).
    RoomJoined { room: RoomView },
    /// The reader is no longer a member of a room (left or removed).
    RoomLeft { room: RoomId },
    /// Members joined or left a room (batched: one frame per room per
    /// batching interval, the net change per user).
    Members { room: RoomId, changes: Vec<MemberChange> },
    /// Members came online or went offline in a room (batched likewise).
    Presence { room: RoomId, changes: Vec<PresenceChange> },
    /// A member is typing; show it for `ttl_ms` unless renewed.
    Typing {
        room: RoomId,
        user: UserId,
        name: String,
        ttl_ms: u64,
    },
    /// A member has read a room up to `seq`.
    Receipt { room: RoomId, user: UserId, seq: u64 },
    /// A `join`, `leave` or `create_room` request succeeded (the membership
    /// change itself arrives as `room_joined` / `room_left`).
    Ok {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        room: RoomId,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    /// A request failed; the connection stays usable.
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        code: ErrorCode,
        message: String,
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
    Joined { room: RoomId },
    /// Unsubscribe from this room and tell the client.
    Left { room: RoomId },
}

impl Control {
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
            seq: 9,
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
