//! Presence and membership changes, batched per room.
//!
//! Sent one by one, they grow with the square of a room's size: 5,000 people
//! joining a room is 12.5 million deliveries. Batched per room over a short
//! interval, with only the last change per user kept, a join storm costs one
//! frame per member per interval.
//!
//! Membership changes are facts of the store and go through the broker to
//! every node. Presence changes are each node's own view of the cluster
//! (see `volley_hub::Presence`), so each node tells only its own clients.
//! Rooms with more than `presence_list_max` users online get the count alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use volley_hub::{Change, Event, Hub, RoomId, Topic, User, UserId};

use crate::protocol::{self, MemberChange, PresenceChange, ServerMsg};

#[derive(Debug, Default)]
struct Pending {
    presence: HashMap<UserId, PresenceChange>,
    members: HashMap<UserId, MemberChange>,
}

/// Collects changes and publishes them once per interval per room.
#[derive(Debug)]
pub(crate) struct Batcher {
    hub: Hub,
    interval: Duration,
    list_max: usize,
    rooms: Mutex<HashMap<RoomId, Pending>>,
}

impl Batcher {
    pub(crate) fn new(hub: Hub, interval: Duration, list_max: usize) -> Arc<Batcher> {
        Arc::new(Batcher {
            hub,
            interval,
            list_max,
            rooms: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn presence(self: &Arc<Self>, change: Change) {
        self.add(change.room, |p| {
            p.presence.insert(
                change.user,
                PresenceChange {
                    user: change.user,
                    name: change.name.to_string(),
                    online: change.online,
                },
            );
        });
    }

    pub(crate) fn member(self: &Arc<Self>, room: RoomId, user: &User, joined: bool) {
        self.add(room, |p| {
            p.members.insert(
                user.id,
                MemberChange {
                    user: protocol::user_view(user),
                    joined,
                },
            );
        });
    }

    fn add(self: &Arc<Self>, room: RoomId, change: impl FnOnce(&mut Pending)) {
        let first = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let first = !rooms.contains_key(&room);
            change(rooms.entry(room).or_default());
            first
        };
        if first {
            let batcher = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(batcher.interval).await;
                batcher.flush(room);
            });
        }
    }

    fn flush(&self, room: RoomId) {
        let Some(pending) = self.rooms.lock().unwrap_or_else(|e| e.into_inner()).remove(&room) else {
            return;
        };
        if !pending.members.is_empty() {
            let mut changes: Vec<MemberChange> = pending.members.into_values().collect();
            changes.sort_by_key(|c| c.user.id);
            let msg = ServerMsg::Members { room, changes };
            self.hub.publish(Topic::Room(room), Event::ephemeral(msg.encode()));
        }
        if !pending.presence.is_empty() {
            let presence = self.hub.presence();
            let online = presence.online_count(room);
            let mut changes: Vec<PresenceChange> = if online > self.list_max {
                Vec::new()
            } else {
                // Transitions reach the batch from two tasks (a local
                // connection, the exchange with other nodes) and may arrive
                // out of order: say what is true now, whatever came last.
                pending
                    .presence
                    .into_values()
                    .map(|c| PresenceChange {
                        online: presence.is_online(room, c.user),
                        ..c
                    })
                    .collect()
            };
            changes.sort_by_key(|c| c.user);
            let msg = ServerMsg::Presence { room, changes, online };
            self.hub
                .deliver_local(Topic::Room(room), Event::ephemeral(msg.encode()));
        }
    }
}
