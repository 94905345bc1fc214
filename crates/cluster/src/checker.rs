//! Judges a recorded history (see [`crate::history`]) after the run, with
//! no clock and no cluster: pure functions of the record, so each promise
//! has a test with a planted violation.
//!
//! Chat: every acknowledged message is delivered exactly once, in room
//! order, to every member; a refused one to nobody; one whose outcome is
//! unknown to every member or to none; no member's sequence has a gap;
//! every node lists the same people online after the heal. Game: every
//! player that lost its connection is back in the same match and seat,
//! with its mass, within the promised pause.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::history::{Op, Outcome};

/// A broken promise, with the events that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An acknowledged message some member never got.
    Lost {
        /// Room, sequence number and message id.
        room: i64,
        /// Its acknowledged sequence number.
        seq: u64,
        /// The sender's id.
        id: String,
        /// The member that lacks it.
        member: String,
    },
    /// A member got the same sequence number twice, or one message was
    /// stored under two sequence numbers.
    Duplicate {
        /// The room.
        room: i64,
        /// The member, or `"store"` for one id under two numbers.
        member: String,
        /// What repeats.
        what: String,
    },
    /// A member got a message after one with a higher sequence number.
    Reordered {
        /// The room.
        room: i64,
        /// The member.
        member: String,
        /// The number that came late, and the one before it.
        seq: u64,
        /// The higher one already delivered.
        after: u64,
    },
    /// A member's sequence numbers skip some (and no acknowledged send
    /// explains them: those are `Lost`).
    Gap {
        /// The room.
        room: i64,
        /// The member.
        member: String,
        /// The missing numbers.
        missing: Vec<u64>,
    },
    /// Two deliveries of one sequence number carry different messages.
    Conflict {
        /// The room.
        room: i64,
        /// The number.
        seq: u64,
        /// The ids seen for it.
        ids: Vec<String>,
    },
    /// A send the server refused was delivered.
    RefusedDelivered {
        /// The room.
        room: i64,
        /// The id.
        id: String,
        /// Who got it anyway.
        member: String,
    },
    /// A send whose outcome is unknown reached some members and not others.
    UnknownPartial {
        /// The room.
        room: i64,
        /// The id.
        id: String,
        /// Who got it.
        got: Vec<String>,
        /// Who did not.
        missing: Vec<String>,
    },
    /// An acknowledgement's sequence number holds another message.
    AckMismatch {
        /// The room.
        room: i64,
        /// The acknowledged number.
        seq: u64,
        /// The id sent.
        id: String,
        /// The id delivered under that number.
        delivered: String,
    },
    /// A delivery of a message nobody is recorded as sending.
    Phantom {
        /// The room.
        room: i64,
        /// Its number and id.
        seq: u64,
        /// The id.
        id: String,
    },
    /// A node lists other people online than are connected, after the heal.
    Presence {
        /// The node.
        node: String,
        /// The room.
        room: i64,
        /// Listed.
        online: Vec<String>,
        /// Connected.
        expected: Vec<String>,
    },
    /// A game player came back to another seat or match, or not at all.
    SeatLost {
        /// The bot.
        player: String,
        /// Before and after, in words.
        detail: String,
    },
    /// A game player came back later than promised.
    TooSlow {
        /// The bot.
        player: String,
        /// Its pause.
        pause_ms: u64,
        /// The promise.
        limit_ms: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Violation::*;
        match self {
            Lost { room, seq, id, member } => {
                write!(
                    f,
                    "lost: room {room} seq {seq} (id {id}) acknowledged, never delivered to {member}"
                )
            }
            Duplicate { room, member, what } => write!(f, "duplicate: room {room}, {member}: {what}"),
            Reordered {
                room,
                member,
                seq,
                after,
            } => {
                write!(f, "reordered: room {room}, {member} got seq {seq} after seq {after}")
            }
            Gap { room, member, missing } => write!(f, "gap: room {room}, {member} never got seqs {missing:?}"),
            Conflict { room, seq, ids } => write!(f, "conflict: room {room} seq {seq} delivered as {ids:?}"),
            RefusedDelivered { room, id, member } => {
                write!(f, "refused but delivered: room {room} id {id} reached {member}")
            }
            UnknownPartial { room, id, got, missing } => write!(
                f,
                "unknown outcome seen partly: room {room} id {id} reached {got:?} but not {missing:?}"
            ),
            AckMismatch {
                room,
                seq,
                id,
                delivered,
            } => write!(
                f,
                "ack mismatch: room {room} seq {seq} acknowledged for id {id}, delivered as id {delivered}"
            ),
            Phantom { room, seq, id } => write!(f, "phantom: room {room} seq {seq} id {id} was never sent"),
            Presence {
                node,
                room,
                online,
                expected,
            } => write!(
                f,
                "presence: {node} lists {online:?} online in room {room}, connected are {expected:?}"
            ),
            SeatLost { player, detail } => write!(f, "seat lost: {player}: {detail}"),
            TooSlow {
                player,
                pause_ms,
                limit_ms,
            } => {
                write!(
                    f,
                    "too slow: {player} was back after {pause_ms} ms (promised {limit_ms} ms)"
                )
            }
        }
    }
}

/// What the run measured besides the verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Sends by outcome.
    pub acked: usize,
    /// Refused sends.
    pub refused: usize,
    /// Sends with no known outcome.
    pub unknown: usize,
    /// Of the unknown ones, those every member got.
    pub unknown_delivered: usize,
    /// Deliveries recorded.
    pub deliveries: usize,
    /// Connection losses and how long each took to come back (ms), sorted.
    pub resumes_ms: Vec<u64>,
    /// Game players that lost their connection, and their pauses (ms), sorted.
    pub game_pauses_ms: Vec<u64>,
}

impl Stats {
    /// The `q` quantile of sorted values (0 when empty).
    pub fn quantile(sorted: &[u64], q: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }
}

/// The verdict on a history.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Every broken promise found (empty: the run passed).
    pub violations: Vec<Violation>,
    /// Counts and latencies.
    pub stats: Stats,
}

/// What the game promised: the longest pause a player may see.
#[derive(Debug, Clone, Copy)]
pub struct Promises {
    /// Longest time from a player's lost connection to its first snapshot
    /// back in its seat.
    pub game_pause_ms: u64,
}

/// Judge a whole history.
pub fn check(history: &[Op], promises: Promises) -> Verdict {
    let mut verdict = Verdict::default();
    check_chat(history, &mut verdict);
    check_presence(history, &mut verdict);
    check_game(history, promises, &mut verdict);
    verdict
}

fn check_chat(history: &[Op], v: &mut Verdict) {
    let mut members: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut sends: HashMap<(i64, &str), &Outcome> = HashMap::new();
    // Per room and member: sequence numbers in the order delivered.
    let mut seen: BTreeMap<(i64, &str), Vec<u64>> = BTreeMap::new();
    // Per room and seq: the ids delivered under it, and who got each seq.
    let mut ids_of: BTreeMap<(i64, u64), BTreeSet<&str>> = BTreeMap::new();
    let mut got: HashMap<(i64, &str), BTreeSet<&str>> = HashMap::new();
    let mut down: HashMap<&str, u64> = HashMap::new();
    for op in history {
        match op {
            Op::Member { client, room } => {
                members.entry(*room).or_default().insert(client);
            }
            Op::Send { room, id, outcome, .. } => {
                sends.insert((*room, id), outcome);
                match outcome {
                    Outcome::Ok { .. } => v.stats.acked += 1,
                    Outcome::Failed { .. } => v.stats.refused += 1,
                    Outcome::Unknown => v.stats.unknown += 1,
                }
            }
            Op::Deliver {
                client, room, seq, id, ..
            } => {
                v.stats.deliveries += 1;
                seen.entry((*room, client)).or_default().push(*seq);
                ids_of.entry((*room, *seq)).or_default().insert(id);
                got.entry((*room, id)).or_default().insert(client);
            }
            Op::Down { client, at_ms } => {
                down.entry(client).or_insert(*at_ms);
            }
            Op::Up { client, at_ms } => {
                if let Some(at) = down.remove(client.as_str()) {
                    v.stats.resumes_ms.push(at_ms.saturating_sub(at));
                }
            }
            _ => {}
        }
    }
    v.stats.resumes_ms.sort_unstable();

    // One id per sequence number, one sequence number per id.
    let mut seq_of_id: HashMap<(i64, &str), BTreeSet<u64>> = HashMap::new();
    for (&(room, seq), ids) in &ids_of {
        if ids.len() > 1 {
            v.violations.push(Violation::Conflict {
                room,
                seq,
                ids: ids.iter().map(|s| s.to_string()).collect(),
            });
        }
        for id in ids {
            seq_of_id.entry((room, id)).or_default().insert(seq);
            if !sends.contains_key(&(room, *id)) {
                v.violations.push(Violation::Phantom {
                    room,
                    seq,
                    id: id.to_string(),
                });
            }
        }
    }
    for (&(room, id), seqs) in &seq_of_id {
        if seqs.len() > 1 {
            v.violations.push(Violation::Duplicate {
                room,
                member: "store".into(),
                what: format!("id {id} stored under seqs {seqs:?}"),
            });
        }
    }

    // Each member: once each, in order, no holes below the room's top.
    let top: BTreeMap<i64, u64> = ids_of.keys().fold(BTreeMap::new(), |mut m, &(room, seq)| {
        let t = m.entry(room).or_insert(0);
        *t = (*t).max(seq);
        m
    });
    let acked_at: HashMap<(i64, u64), &str> = sends
        .iter()
        .filter_map(|(&(room, id), o)| match o {
            Outcome::Ok { seq } => Some(((room, *seq), id)),
            _ => None,
        })
        .collect();
    for (&room, people) in &members {
        let room_top = top.get(&room).copied().unwrap_or(0);
        for &member in people {
            let order = seen.get(&(room, member)).map(Vec::as_slice).unwrap_or(&[]);
            let mut once = BTreeSet::new();
            let mut highest = 0;
            for &seq in order {
                if !once.insert(seq) {
                    v.violations.push(Violation::Duplicate {
                        room,
                        member: member.into(),
                        what: format!("seq {seq} delivered twice"),
                    });
                    continue;
                }
                if seq < highest {
                    v.violations.push(Violation::Reordered {
                        room,
                        member: member.into(),
                        seq,
                        after: highest,
                    });
                }
                highest = highest.max(seq);
            }
            let mut missing = Vec::new();
            for seq in 1..=room_top {
                if once.contains(&seq) {
                    continue;
                }
                match acked_at.get(&(room, seq)) {
                    Some(id) => v.violations.push(Violation::Lost {
                        room,
                        seq,
                        id: id.to_string(),
                        member: member.into(),
                    }),
                    None => missing.push(seq),
                }
            }
            if !missing.is_empty() {
                v.violations.push(Violation::Gap {
                    room,
                    member: member.into(),
                    missing,
                });
            }
        }
    }

    // Acknowledged sends that no delivery shows at all (the room's top is
    // below them), and acknowledgements naming another message.
    for (&(room, id), outcome) in &sends {
        let people = members.get(&room).cloned().unwrap_or_default();
        let reached = got.get(&(room, id)).cloned().unwrap_or_default();
        match outcome {
            Outcome::Ok { seq } => {
                if let Some(ids) = ids_of.get(&(room, *seq)) {
                    if let Some(other) = ids.iter().find(|i| **i != id) {
                        v.violations.push(Violation::AckMismatch {
                            room,
                            seq: *seq,
                            id: id.into(),
                            delivered: other.to_string(),
                        });
                    }
                }
                // Acknowledged means every member gets it, whatever number
                // it went out under.
                for member in people.difference(&reached) {
                    v.violations.push(Violation::Lost {
                        room,
                        seq: *seq,
                        id: id.into(),
                        member: member.to_string(),
                    });
                }
            }
            Outcome::Failed { .. } => {
                for member in &reached {
                    v.violations.push(Violation::RefusedDelivered {
                        room,
                        id: id.into(),
                        member: member.to_string(),
                    });
                }
            }
            Outcome::Unknown => {
                if reached.is_empty() {
                    continue;
                }
                let missing: Vec<String> = people.difference(&reached).map(|s| s.to_string()).collect();
                if missing.is_empty() {
                    v.stats.unknown_delivered += 1;
                } else {
                    v.violations.push(Violation::UnknownPartial {
                        room,
                        id: id.into(),
                        got: reached.iter().map(|s| s.to_string()).collect(),
                        missing,
                    });
                }
            }
        }
    }
    v.violations.sort_by_key(|x| x.to_string());
    v.violations.dedup();
}

fn check_presence(history: &[Op], v: &mut Verdict) {
    for op in history {
        if let Op::Presence {
            node,
            room,
            online,
            expected,
        } = op
        {
            if online != expected {
                v.violations.push(Violation::Presence {
                    node: node.clone(),
                    room: *room,
                    online: online.clone(),
                    expected: expected.clone(),
                });
            }
        }
    }
}

fn check_game(history: &[Op], promises: Promises, v: &mut Verdict) {
    let mut before: HashMap<&str, (u64, u32, u32, u32)> = HashMap::new();
    for op in history {
        match op {
            Op::SeatBefore {
                player,
                at_ms,
                match_id,
                seat,
                mass,
            } => {
                before.insert(player, (*at_ms, *match_id, *seat, *mass));
            }
            Op::SeatAfter {
                player,
                at_ms,
                match_id,
                seat,
                mass,
                fresh,
            } => {
                let Some((down, m0, s0, mass0)) = before.remove(player.as_str()) else {
                    continue;
                };
                let Some(up) = at_ms else {
                    v.violations.push(Violation::SeatLost {
                        player: player.clone(),
                        detail: format!("never came back to match {m0} seat {s0}"),
                    });
                    continue;
                };
                let pause = up.saturating_sub(down);
                v.stats.game_pauses_ms.push(pause);
                // Mass may differ (the play since the last checkpoint is
                // lost by design, and a still cell can be eaten), the seat not.
                if *fresh || (*match_id, *seat) != (m0, s0) {
                    v.violations.push(Violation::SeatLost {
                        player: player.clone(),
                        detail: format!(
                            "was match {m0} seat {s0} mass {mass0}, came back to match {match_id} seat {seat} mass {mass}{}",
                            if *fresh { " (a new seat)" } else { "" }
                        ),
                    });
                }
                if pause > promises.game_pause_ms {
                    v.violations.push(Violation::TooSlow {
                        player: player.clone(),
                        pause_ms: pause,
                        limit_ms: promises.game_pause_ms,
                    });
                }
            }
            Op::Unseated { player } => v.violations.push(Violation::SeatLost {
                player: player.clone(),
                detail: "never got a seat at the start".into(),
            }),
            _ => {}
        }
    }
    for (player, (_, m0, s0, _)) in before {
        v.violations.push(Violation::SeatLost {
            player: player.to_owned(),
            detail: format!("lost its connection in match {m0} seat {s0} and no return was recorded"),
        });
    }
    v.stats.game_pauses_ms.sort_unstable();
}
