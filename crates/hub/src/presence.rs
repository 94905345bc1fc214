//! Who is online where: a user is online in a room while any of their
//! connections on this node is subscribed to it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{RoomId, UserId};

/// Connection counts per (room, user). `volley_presence_online` gauges the
/// (room, user) pairs online on this node.
#[derive(Debug, Default)]
pub struct Presence {
    rooms: Mutex<HashMap<RoomId, HashMap<UserId, u32>>>,
}

impl Presence {
    /// An empty table.
    pub fn new() -> Presence {
        Presence::default()
    }

    /// One more connection of `user` in `room`; true when the user just came online there.
    pub fn arrive(&self, room: RoomId, user: UserId) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let count = rooms.entry(room).or_default().entry(user).or_insert(0);
        *count += 1;
        if *count == 1 {
            metrics::gauge!("volley_presence_online").increment(1.0);
        }
        *count == 1
    }

    /// One connection fewer; true when the user just went offline there.
    pub fn depart(&self, room: RoomId, user: UserId) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(users) = rooms.get_mut(&room) else {
            return false;
        };
        let Some(count) = users.get_mut(&user) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        users.remove(&user);
        metrics::gauge!("volley_presence_online").decrement(1.0);
        if users.is_empty() {
            rooms.remove(&room);
        }
        true
    }

    /// The users online in `room`.
    pub fn online(&self, room: RoomId) -> Vec<UserId> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut users: Vec<UserId> = rooms
            .get(&room)
            .map(|u| u.keys().copied().collect())
            .unwrap_or_default();
        users.sort_unstable();
        users
    }
}
