//! Who is online, on this node and across the cluster.
//!
//! Each node counts its own connections per user and per (room, user). With
//! a shared broker, it also keeps a replica of every other node's table, fed
//! by the deltas those nodes publish (see [`crate::presence_sync`]), and
//! forgets a node it has not heard from for the presence TTL, so the users of
//! a node killed with -9 go offline everywhere. A user is online in a room
//! while any node has a connection of theirs in it: one device on node A and
//! one on node B keep them online until both are gone.
//!
//! Every node derives the online/offline transitions from its own merged view
//! and hands them to its listener, which tells the clients of that node only.
//! No node announces transitions for the others, so a node that dies cannot
//! leave a transition unsent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::model::{RoomId, UserId};

/// A user came online or went offline in a room, as this node sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The room.
    pub room: RoomId,
    /// Whose presence changed.
    pub user: UserId,
    /// Their display name, carried so no lookup is needed to tell clients.
    pub name: Arc<str>,
    /// Online now (true) or offline now (false).
    pub online: bool,
}

/// Most parts one table may come in (at about 256 KiB each: 1 GiB).
const MAX_PARTS: u32 = 4096;

/// Receives the transitions this node sees, outside any lock.
pub type Listener = Box<dyn Fn(Vec<Change>) + Send + Sync>;

/// One operation in a node's presence delta. Values are absolute (a user's
/// connection count, a pair on or off), so applying one twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Op {
    /// `u` has `c` connections on the node (0: none left).
    User { u: UserId, name: String, c: u32 },
    /// `u` is (`on`) or is no longer in room `r` on the node.
    Room { r: RoomId, u: UserId, on: bool },
}

/// One user in a full table: name, connections and rooms on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncUser {
    pub(crate) u: UserId,
    pub(crate) name: String,
    pub(crate) c: u32,
    pub(crate) r: Vec<RoomId>,
}

#[derive(Debug)]
struct Local {
    name: Arc<str>,
    conns: u32,
}

#[derive(Debug, Default)]
struct Total {
    conns: u32,
    nodes: u32,
}

#[derive(Debug, Default, Clone)]
struct RemoteUser {
    name: Arc<str>,
    conns: u32,
    rooms: HashSet<RoomId>,
}

/// What this node knows of another.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) epoch: u64,
    /// The last delta version applied (or the version of the full table).
    pub(crate) version: u64,
    pub(crate) heard: Instant,
    /// False until a full table of this epoch has been applied; deltas wait for it.
    pub(crate) synced: bool,
    pub(crate) asked: Option<Instant>,
    users: HashMap<UserId, RemoteUser>,
    /// A full table arriving in parts.
    assembly: Option<Assembly>,
}

/// The parts of one send of a node's table received so far.
#[derive(Debug)]
struct Assembly {
    epoch: u64,
    version: u64,
    send: u64,
    seen: HashSet<u32>,
    users: Vec<SyncUser>,
}

impl Remote {
    pub(crate) fn new(epoch: u64, synced: bool) -> Remote {
        Remote {
            epoch,
            version: 0,
            heard: Instant::now(),
            synced,
            asked: None,
            users: HashMap::new(),
            assembly: None,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    users: HashMap<UserId, Local>,
    rooms: HashMap<RoomId, HashMap<UserId, u32>>,
    pub(crate) nodes: HashMap<String, Remote>,
    /// Per room and user: on how many nodes (this one included) the user is in the room.
    merged: HashMap<RoomId, BTreeMap<UserId, u32>>,
    totals: HashMap<UserId, Total>,
    /// Local operations not yet published; only kept when `shared`.
    pub(crate) outbox: Vec<Op>,
    pub(crate) shared: bool,
    /// The last epoch each node said goodbye in: its late messages are ignored.
    pub(crate) gone: HashMap<String, u64>,
}

/// The presence table of one node (see the module documentation).
pub struct Presence {
    state: Mutex<State>,
    listener: RwLock<Option<Listener>>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").finish_non_exhaustive()
    }
}

impl Default for Presence {
    fn default() -> Presence {
        Presence::new()
    }
}

impl Presence {
    /// An empty table.
    pub fn new() -> Presence {
        Presence {
            state: Mutex::new(State::default()),
            listener: RwLock::new(None),
        }
    }

    /// Where transitions go (the chat tells its clients).
    pub fn set_listener(&self, listener: Listener) {
        *self.listener.write().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand transitions to the listener (never under the state lock).
    pub(crate) fn emit(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        if let Some(listener) = &*self.listener.read().unwrap_or_else(|e| e.into_inner()) {
            listener(changes);
        }
    }

    /// One more connection of `user` on this node.
    pub fn connect(&self, user: UserId, name: &str) {
        let mut state = self.state();
        let local = state.users.entry(user).or_insert_with(|| Local {
            name: Arc::from(name),
            conns: 0,
        });
        local.conns += 1;
        let conns = local.conns;
        let name = local.name.to_string();
        let total = state.totals.entry(user).or_default();
        total.conns += 1;
        if conns == 1 {
            total.nodes += 1;
        }
        state.queue(Op::User {
            u: user,
            name,
            c: conns,
        });
    }

    /// One connection of `user` fewer on this node.
    pub fn disconnect(&self, user: UserId) {
        let mut state = self.state();
        let Some(local) = state.users.get_mut(&user) else {
            return;
        };
        local.conns -= 1;
        let conns = local.conns;
        let name = local.name.to_string();
        if conns == 0 {
            state.users.remove(&user);
        }
        state.total_down(user, 1, conns == 0);
        state.queue(Op::User {
            u: user,
            name,
            c: conns,
        });
    }

    /// One more connection of `user` in `room` on this node.
    pub fn arrive(&self, room: RoomId, user: UserId, name: &str) {
        let mut changes = Vec::new();
        {
            let mut state = self.state();
            let count = state.rooms.entry(room).or_default().entry(user).or_insert(0);
            *count += 1;
            if *count == 1 {
                metrics::gauge!("volley_presence_online").increment(1.0);
                state.pair_on(room, user, Arc::from(name), &mut changes);
                state.queue(Op::Room {
                    r: room,
                    u: user,
                    on: true,
                });
            }
        }
        self.emit(changes);
    }

    /// One connection of `user` in `room` fewer on this node.
    pub fn depart(&self, room: RoomId, user: UserId, name: &str) {
        let mut changes = Vec::new();
        {
            let mut state = self.state();
            let Some(users) = state.rooms.get_mut(&room) else {
                return;
            };
            let Some(count) = users.get_mut(&user) else {
                return;
            };
            *count -= 1;
            if *count > 0 {
                return;
            }
            users.remove(&user);
            if users.is_empty() {
                state.rooms.remove(&room);
            }
            metrics::gauge!("volley_presence_online").decrement(1.0);
            state.pair_off(room, user, Arc::from(name), &mut changes);
            state.queue(Op::Room {
                r: room,
                u: user,
                on: false,
            });
        }
        self.emit(changes);
    }

    /// The users online in `room` on any node, in id order.
    pub fn online(&self, room: RoomId) -> Vec<UserId> {
        self.online_page(room, None, usize::MAX)
    }

    /// At most `limit` online users of `room` with ids above `after`, in id order.
    pub fn online_page(&self, room: RoomId, after: Option<UserId>, limit: usize) -> Vec<UserId> {
        let state = self.state();
        let Some(users) = state.merged.get(&room) else {
            return Vec::new();
        };
        let from = match after {
            Some(UserId(id)) => std::ops::Bound::Excluded(UserId(id)),
            None => std::ops::Bound::Unbounded,
        };
        users
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(u, _)| *u)
            .collect()
    }

    /// How many users are online in `room` on any node.
    pub fn online_count(&self, room: RoomId) -> usize {
        self.state().merged.get(&room).map_or(0, BTreeMap::len)
    }

    /// Whether `user` is online in `room` on any node.
    pub fn is_online(&self, room: RoomId, user: UserId) -> bool {
        self.state().merged.get(&room).is_some_and(|u| u.contains_key(&user))
    }

    /// `user`'s connections on every node, this one included.
    pub fn connections(&self, user: UserId) -> u32 {
        self.state().totals.get(&user).map_or(0, |t| t.conns)
    }

    /// `user`'s connections on the other nodes.
    pub fn connections_elsewhere(&self, user: UserId) -> u32 {
        let state = self.state();
        let here = state.users.get(&user).map_or(0, |l| l.conns);
        state.totals.get(&user).map_or(0, |t| t.conns.saturating_sub(here))
    }

    /// On how many nodes `user` has connections: per-user rates are split
    /// over them, so the sum over the cluster stays within the limit.
    pub fn nodes_of(&self, user: UserId) -> u32 {
        self.state().totals.get(&user).map_or(0, |t| t.nodes)
    }

    /// Other nodes this node knows of.
    pub fn peers(&self) -> usize {
        self.state().nodes.len()
    }
}

impl State {
    fn queue(&mut self, op: Op) {
        if self.shared {
            self.outbox.push(op);
        }
    }

    fn total_down(&mut self, user: UserId, conns: u32, node_gone: bool) {
        if let Some(total) = self.totals.get_mut(&user) {
            total.conns = total.conns.saturating_sub(conns);
            if node_gone {
                total.nodes = total.nodes.saturating_sub(1);
            }
            if total.nodes == 0 {
                self.totals.remove(&user);
            }
        }
    }

    fn pair_on(&mut self, room: RoomId, user: UserId, name: Arc<str>, out: &mut Vec<Change>) {
        let count = self.merged.entry(room).or_default().entry(user).or_insert(0);
        *count += 1;
        if *count == 1 {
            out.push(Change {
                room,
                user,
                name,
                online: true,
            });
        }
    }

    fn pair_off(&mut self, room: RoomId, user: UserId, name: Arc<str>, out: &mut Vec<Change>) {
        let Some(users) = self.merged.get_mut(&room) else {
            return;
        };
        let Some(count) = users.get_mut(&user) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            users.remove(&user);
            if users.is_empty() {
                self.merged.remove(&room);
            }
            out.push(Change {
                room,
                user,
                name,
                online: false,
            });
        }
    }

    /// Apply one operation of node `node` (which must be known).
    pub(crate) fn apply(&mut self, node: &str, op: Op, out: &mut Vec<Change>) {
        let Some(mut remote) = self.nodes.remove(node) else {
            return;
        };
        match op {
            Op::User { u, name, c } => self.set_user(&mut remote, u, name, c, out),
            Op::Room { r, u, on: true } => {
                let entry = remote.users.entry(u).or_default();
                if entry.rooms.insert(r) {
                    let name = entry.name.clone();
                    self.pair_on(r, u, name, out);
                }
            }
            Op::Room { r, u, on: false } => {
                if let Some(entry) = remote.users.get_mut(&u) {
                    if entry.rooms.remove(&r) {
                        let name = entry.name.clone();
                        let empty = entry.conns == 0 && entry.rooms.is_empty();
                        self.pair_off(r, u, name, out);
                        if empty {
                            remote.users.remove(&u);
                        }
                    }
                }
            }
        }
        self.nodes.insert(node.to_owned(), remote);
    }

    fn set_user(&mut self, remote: &mut Remote, u: UserId, name: String, c: u32, out: &mut Vec<Change>) {
        let entry = remote.users.entry(u).or_default();
        if &*entry.name != name.as_str() {
            entry.name = Arc::from(name);
        }
        let (old, name) = (entry.conns, entry.name.clone());
        entry.conns = c;
        if old == 0 && c > 0 {
            let total = self.totals.entry(u).or_default();
            total.conns = total.conns.saturating_add(c);
            total.nodes += 1;
        } else if old > 0 && c == 0 {
            self.total_down(u, old, true);
        } else if c > old {
            let total = self.totals.entry(u).or_default();
            total.conns = total.conns.saturating_add(c - old);
        } else {
            self.total_down(u, old - c, false);
        }
        if c == 0 {
            // No connection left there: no room either, whatever was lost on the way.
            if let Some(gone) = remote.users.remove(&u) {
                for r in gone.rooms {
                    self.pair_off(r, u, name.clone(), out);
                }
            }
        }
    }

    /// Forget everything node `node` said (it stopped or went silent).
    pub(crate) fn forget(&mut self, node: &str, out: &mut Vec<Change>) -> Option<Remote> {
        let mut remote = self.nodes.remove(node)?;
        let users: Vec<(UserId, RemoteUser)> = remote.users.drain().collect();
        for (u, user) in users {
            if user.conns > 0 {
                self.total_down(u, user.conns, true);
            }
            for r in user.rooms {
                self.pair_off(r, u, user.name.clone(), out);
            }
        }
        Some(remote)
    }

    /// Replace node `node`'s table with a full one.
    pub(crate) fn replace(
        &mut self,
        node: &str,
        epoch: u64,
        version: u64,
        table: Vec<SyncUser>,
        out: &mut Vec<Change>,
    ) {
        // Arrivals first, then departures: a user present in both tables never flickers.
        let old = self
            .nodes
            .remove(node)
            .map(|mut r| std::mem::take(&mut r.users))
            .unwrap_or_default();
        let mut remote = Remote::new(epoch, true);
        remote.version = version;
        for s in table {
            let user = remote.users.entry(s.u).or_default();
            user.name = Arc::from(s.name);
            user.conns = s.c;
            user.rooms = s.r.into_iter().collect();
        }
        for (u, user) in &remote.users {
            let old_rooms = old.get(u).map(|b| &b.rooms);
            if user.conns > 0 {
                let total = self.totals.entry(*u).or_default();
                total.conns = total.conns.saturating_add(user.conns);
                total.nodes += 1;
            }
            for r in &user.rooms {
                if !old_rooms.is_some_and(|o| o.contains(r)) {
                    self.pair_on(*r, *u, user.name.clone(), out);
                }
            }
        }
        for (u, user) in old {
            if user.conns > 0 {
                self.total_down(u, user.conns, true);
            }
            let now = remote.users.get(&u);
            for r in user.rooms {
                if !now.is_some_and(|n| n.rooms.contains(&r)) {
                    self.pair_off(r, u, user.name.clone(), out);
                }
            }
        }
        self.nodes.insert(node.to_owned(), remote);
    }

    /// This node's whole table, in parts of about `per_part` bytes of JSON.
    pub(crate) fn table(&self, per_part: usize) -> Vec<Vec<SyncUser>> {
        let mut by_user: HashMap<UserId, SyncUser> = self
            .users
            .iter()
            .map(|(u, l)| {
                (
                    *u,
                    SyncUser {
                        u: *u,
                        name: l.name.to_string(),
                        c: l.conns,
                        r: Vec::new(),
                    },
                )
            })
            .collect();
        for (room, users) in &self.rooms {
            for u in users.keys() {
                if let Some(s) = by_user.get_mut(u) {
                    s.r.push(*room);
                }
            }
        }
        // In id order, so two sends of one table split alike.
        let mut users: Vec<SyncUser> = by_user.into_values().collect();
        users.sort_unstable_by_key(|u| u.u);
        let mut parts = vec![Vec::new()];
        let mut size = 0;
        for user in users {
            // About the JSON bytes of the entry: ids, count, name, rooms.
            size += 48 + user.name.len() + 21 * user.r.len();
            if let Some(last) = parts.last_mut() {
                last.push(user);
            }
            if size >= per_part {
                parts.push(Vec::new());
                size = 0;
            }
        }
        if parts.len() > 1 && parts.last().is_some_and(Vec::is_empty) {
            parts.pop();
        }
        parts
    }

    /// Add one part of node `node`'s full table; applies it once complete.
    pub(crate) fn add_part(
        &mut self,
        node: &str,
        (epoch, version, send, part, parts): (u64, u64, u64, u32, u32),
        users: Vec<SyncUser>,
        out: &mut Vec<Change>,
    ) -> bool {
        if part >= parts || parts > MAX_PARTS || !self.current(node, epoch) {
            return false;
        }
        let remote = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| Remote::new(epoch, false));
        remote.heard = Instant::now();
        if remote.synced && remote.epoch == epoch && remote.version >= version {
            return false; // we are at or past it already
        }
        // Parts of one send only: a table sent again is assembled afresh.
        let assembly = match &mut remote.assembly {
            Some(a) if (a.epoch, a.version, a.send) == (epoch, version, send) => a,
            slot => slot.insert(Assembly {
                epoch,
                version,
                send,
                seen: HashSet::new(),
                users: Vec::new(),
            }),
        };
        if assembly.seen.insert(part) {
            assembly.users.extend(users);
        }
        if assembly.seen.len() < parts as usize {
            return false;
        }
        let table = remote.assembly.take().map(|a| a.users).unwrap_or_default();
        self.replace(node, epoch, version, table, out);
        true
    }

    /// Node `node` at epoch `e`. A new epoch is a new life of that node whose
    /// hello we missed: the old life's table goes, the new one comes on request.
    /// `None` for an older epoch than the one known (a stale message, or a
    /// second process wrongly given the same node id: the newer life wins),
    /// or for a life that said goodbye.
    pub(crate) fn renew(&mut self, node: &str, epoch: u64, out: &mut Vec<Change>) -> Option<&mut Remote> {
        if !self.current(node, epoch) {
            return None;
        }
        if self.nodes.get(node).is_some_and(|r| r.epoch != epoch) {
            self.forget(node, out);
        }
        Some(
            self.nodes
                .entry(node.to_owned())
                .or_insert_with(|| Remote::new(epoch, false)),
        )
    }

    /// Whether a message from `node` at `epoch` is worth hearing.
    pub(crate) fn current(&self, node: &str, epoch: u64) -> bool {
        let older = self.nodes.get(node).is_some_and(|r| epoch < r.epoch);
        let gone = self.gone.get(node).is_some_and(|&e| epoch <= e);
        !older && !gone
    }

    /// Nodes not heard from within `ttl`.
    pub(crate) fn silent(&self, ttl: Duration) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, r)| r.heard.elapsed() >= ttl)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listened() -> (Presence, Arc<Mutex<Vec<Change>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Presence::new();
        let s = seen.clone();
        p.set_listener(Box::new(move |c| s.lock().unwrap().extend(c)));
        (p, seen)
    }

    fn take(seen: &Arc<Mutex<Vec<Change>>>) -> Vec<(i64, i64, bool)> {
        seen.lock()
            .unwrap()
            .drain(..)
            .map(|c| (c.room.0, c.user.0, c.online))
            .collect()
    }

    #[test]
    fn a_user_is_online_while_any_connection_is_in_the_room() {
        let (p, seen) = listened();
        p.connect(UserId(1), "ann");
        p.connect(UserId(1), "ann");
        p.arrive(RoomId(10), UserId(1), "ann");
        p.arrive(RoomId(10), UserId(1), "ann");
        assert_eq!(take(&seen), vec![(10, 1, true)]);
        assert_eq!(p.connections(UserId(1)), 2);
        p.depart(RoomId(10), UserId(1), "ann");
        assert!(take(&seen).is_empty());
        p.depart(RoomId(10), UserId(1), "ann");
        assert_eq!(take(&seen), vec![(10, 1, false)]);
        assert_eq!(p.online(RoomId(10)), vec![]);
    }

    #[test]
    fn devices_on_two_nodes_keep_a_user_online_until_both_leave() {
        let (p, seen) = listened();
        p.connect(UserId(1), "ann");
        p.arrive(RoomId(10), UserId(1), "ann");
        let mut out = Vec::new();
        let mut state = p.state();
        state.nodes.insert("b".into(), Remote::new(7, true));
        state.apply(
            "b",
            Op::User {
                u: UserId(1),
                name: "ann".into(),
                c: 1,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::Room {
                r: RoomId(10),
                u: UserId(1),
                on: true,
            },
            &mut out,
        );
        assert!(out.is_empty(), "already online here");
        assert_eq!(state.totals[&UserId(1)].conns, 2);
        assert_eq!(state.totals[&UserId(1)].nodes, 2);
        drop(state);
        take(&seen);
        p.depart(RoomId(10), UserId(1), "ann");
        assert!(take(&seen).is_empty(), "still online on b");
        assert_eq!(p.online(RoomId(10)), vec![UserId(1)]);
        let mut state = p.state();
        state.apply(
            "b",
            Op::Room {
                r: RoomId(10),
                u: UserId(1),
                on: false,
            },
            &mut out,
        );
        assert_eq!(out.iter().map(|c| c.online).collect::<Vec<_>>(), vec![false]);
    }

    #[test]
    fn a_silent_node_is_forgotten_with_its_users() {
        let p = Presence::new();
        let mut out = Vec::new();
        let mut state = p.state();
        state.nodes.insert("b".into(), Remote::new(7, true));
        state.apply(
            "b",
            Op::User {
                u: UserId(2),
                name: "bo".into(),
                c: 3,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::Room {
                r: RoomId(1),
                u: UserId(2),
                on: true,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::Room {
                r: RoomId(2),
                u: UserId(2),
                on: true,
            },
            &mut out,
        );
        assert_eq!(out.len(), 2);
        out.clear();
        assert!(state.silent(Duration::from_secs(60)).is_empty());
        assert_eq!(state.silent(Duration::ZERO), vec!["b".to_owned()]);
        state.forget("b", &mut out);
        assert_eq!(out.iter().filter(|c| !c.online).count(), 2);
        assert!(state.totals.is_empty());
        assert!(state.merged.is_empty());
    }

    #[test]
    fn a_full_table_replaces_the_old_one_with_only_the_differences() {
        let p = Presence::new();
        let mut out = Vec::new();
        let mut state = p.state();
        state.nodes.insert("b".into(), Remote::new(7, true));
        state.apply(
            "b",
            Op::User {
                u: UserId(1),
                name: "a".into(),
                c: 1,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::Room {
                r: RoomId(1),
                u: UserId(1),
                on: true,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::User {
                u: UserId(2),
                name: "b".into(),
                c: 1,
            },
            &mut out,
        );
        state.apply(
            "b",
            Op::Room {
                r: RoomId(1),
                u: UserId(2),
                on: true,
            },
            &mut out,
        );
        out.clear();
        let new = [
            SyncUser {
                u: UserId(1),
                name: "a".into(),
                c: 2,
                r: vec![RoomId(1), RoomId(3)],
            },
            SyncUser {
                u: UserId(4),
                name: "d".into(),
                c: 1,
                r: vec![RoomId(1)],
            },
        ];
        let parts = (7, 9, 1, 0, 2);
        assert!(
            !state.add_part("b", parts, new[..1].to_vec(), &mut out),
            "one part of two"
        );
        assert!(state.add_part("b", (7, 9, 1, 1, 2), new[1..].to_vec(), &mut out));
        let mut got: Vec<_> = out.iter().map(|c| (c.room.0, c.user.0, c.online)).collect();
        got.sort();
        assert_eq!(got, vec![(1, 2, false), (1, 4, true), (3, 1, true)]);
        assert_eq!(state.merged[&RoomId(1)][&UserId(1)], 1, "counted once, not twice");
        assert_eq!(state.totals[&UserId(1)].conns, 2);
        assert_eq!(state.totals[&UserId(1)].nodes, 1);
        assert!(!state.totals.contains_key(&UserId(2)));
        out.clear();
        assert!(
            !state.add_part("b", (7, 9, 2, 0, 1), Vec::new(), &mut out),
            "an old table is ignored"
        );
        assert_eq!(state.nodes["b"].version, 9);
    }

    #[test]
    fn older_lives_and_goodbyes_are_not_heard() {
        let p = Presence::new();
        let mut out = Vec::new();
        let mut state = p.state();
        assert!(state.renew("b", 10, &mut out).is_some());
        assert!(state.renew("b", 9, &mut out).is_none(), "an older epoch");
        assert!(state.renew("b", 11, &mut out).is_some(), "a newer life replaces it");
        state.gone.insert("b".into(), 11);
        assert!(!state.current("b", 11), "said goodbye");
        assert!(state.current("b", 12), "a later life is heard again");
        assert!(
            !state.add_part("c", (1, 1, 1, 5, 5), Vec::new(), &mut out),
            "part beyond parts"
        );
        assert!(
            !state.add_part("c", (1, 1, 1, 0, 100_000), Vec::new(), &mut out),
            "too many parts"
        );
    }

    #[test]
    fn the_local_table_splits_into_parts() {
        let p = Presence::new();
        for u in 0..10 {
            p.connect(UserId(u), "x");
            p.arrive(RoomId(1), UserId(u), "x");
        }
        let state = p.state();
        let parts = state.table(140);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(parts.len(), 5, "two users of about 70 bytes per part");
        let ids: Vec<i64> = parts.iter().flatten().map(|u| u.u.0).collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>(), "in id order");
        assert!(parts.iter().flatten().all(|u| u.r == vec![RoomId(1)] && u.c == 1));
    }

    #[test]
    fn pages_of_online_users_follow_ids() {
        let p = Presence::new();
        for u in [5, 1, 9, 3] {
            p.arrive(RoomId(1), UserId(u), "x");
        }
        assert_eq!(p.online_page(RoomId(1), None, 2), vec![UserId(1), UserId(3)]);
        assert_eq!(p.online_page(RoomId(1), Some(UserId(3)), 2), vec![UserId(5), UserId(9)]);
        assert_eq!(p.online_count(RoomId(1)), 4);
    }
}
