//! The chat protocol on the server's side: parsing client frames into
//! refusals, and views of the store's records. The frames themselves are
//! `volley_protocol::chat`, shared with the Rust client.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use volley_hub::{MemberRoom, Room, RoomId, StoredMessage, User};
pub use volley_protocol::chat::{
    ClientMsg, ErrorCode, MemberChange, MessageView, PresenceChange, RoomView, ServerMsg, UserView,
};

use crate::refusal::Refusal;

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
pub fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        name: u.name.clone(),
        guest: u.kind == volley_hub::UserKind::Guest,
    }
}

/// A room as clients see it, without the reader's own marks.
pub fn room_view(r: &Room) -> RoomView {
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

/// One of the reader's rooms, with their read mark and unread count.
pub fn member_room_view(m: &MemberRoom) -> RoomView {
    RoomView {
        last_read: Some(m.last_read),
        unread: Some(m.last_read.until(m.room.last_seq)),
        ..room_view(&m.room)
    }
}

/// A stored message as clients see it.
pub fn message_view(m: &StoredMessage) -> MessageView {
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

/// The `error` frame that carries a refusal.
pub fn error_frame(refusal: Refusal) -> ServerMsg {
    ServerMsg::Error {
        reference: refusal.reference,
        code: refusal.code,
        message: refusal.message,
        retry_after_ms: refusal.retry_after.map(|d| d.as_millis().max(1) as u64),
    }
}

/// A server frame as a WebSocket text message, for one receiver.
pub trait ToMessage {
    /// Serialize for one connection.
    fn to_message(&self) -> volley_wire::Message;
}

impl ToMessage for ServerMsg {
    fn to_message(&self) -> volley_wire::Message {
        volley_wire::Message::Text(serde_json::to_string(self).unwrap_or_default().into())
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
        /// The room's last seq when the user joined: what came after it
        /// (before this session subscribed) is replayed, not just counted
        /// as unread. `None`: from when the session subscribes.
        #[serde(default)]
        from: Option<volley_hub::Seq>,
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
    fn refusals_become_error_frames() {
        let err = error_frame(Refusal::new(ErrorCode::RateLimited, "slow down")).encode();
        assert!(std::str::from_utf8(&err).unwrap().contains(r#""code":"rate_limited""#));
    }
}
