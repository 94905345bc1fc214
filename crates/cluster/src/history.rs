//! What a test run's clients did and saw, as they recorded it: one
//! operation per line of `history.jsonl` in the report directory, in the
//! manner of Jepsen (an invocation and its outcome, which may be unknown;
//! every delivery as the client's library handed it to the application).
//! The checker judges only this record, so it can be read, replayed and
//! re-checked without the cluster.

use serde::{Deserialize, Serialize};

/// How a chat send ended, as its client knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: stored under this sequence number.
    Ok {
        /// The room's sequence number the server gave it.
        seq: u64,
    },
    /// Refused for good (the server said so): it must never be delivered.
    Failed {
        /// The server's words.
        why: String,
    },
    /// No answer before the run ended or the connection died for good: it
    /// may or may not have happened, so it must be everywhere or nowhere.
    Unknown,
}

/// One recorded operation. Times are milliseconds since the run began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `client` is a member of `room` from the start (joined before any send).
    Member {
        /// The client's user name.
        client: String,
        /// The room.
        room: i64,
    },
    /// A send: invoked at `at_ms`, ended at `done_ms`.
    Send {
        /// Who sent.
        client: String,
        /// Where.
        room: i64,
        /// The client's message id (what the server deduplicates on).
        id: String,
        /// Invoked.
        at_ms: u64,
        /// Answered, or given up on.
        done_ms: u64,
        /// How it ended.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// A message handed to `client`'s application, live or on a resume.
    Deliver {
        /// Who got it.
        client: String,
        /// The room.
        room: i64,
        /// Its sequence number.
        seq: u64,
        /// The sender's message id.
        id: String,
        /// When.
        at_ms: u64,
    },
    /// `client`'s connection was lost.
    Down {
        /// Whose.
        client: String,
        /// When.
        at_ms: u64,
    },
    /// `client` is connected again and has resumed every room.
    Up {
        /// Whose.
        client: String,
        /// When.
        at_ms: u64,
    },
    /// After the heal: who `node` lists online in `room`, and who should be.
    Presence {
        /// The node asked.
        node: String,
        /// The room.
        room: i64,
        /// Its answer, sorted.
        online: Vec<String>,
        /// The clients connected at the time, sorted.
        expected: Vec<String>,
    },
    /// The nemesis did something.
    Fault {
        /// When.
        at_ms: u64,
        /// What (`kill`, `pause`, `resume`, `cut`, `heal`, ...).
        action: String,
        /// To whom (`n2`, `broker`, `n1-broker`, ...).
        target: String,
    },
    /// A game player in its seat just before its connection was lost.
    SeatBefore {
        /// The bot's name.
        player: String,
        /// When its connection went.
        at_ms: u64,
        /// The match.
        match_id: u32,
        /// Its player id in the match.
        seat: u32,
        /// Its mass in the last snapshot.
        mass: u32,
    },
    /// A game bot that never got a seat at the start (every join refused).
    Unseated {
        /// The bot's name.
        player: String,
    },
    /// The same player back (or not) after the loss.
    SeatAfter {
        /// The bot's name.
        player: String,
        /// When its first snapshot came, `None` if it never came back.
        at_ms: Option<u64>,
        /// The match it got.
        match_id: u32,
        /// Its player id there.
        seat: u32,
        /// Its mass in the first snapshot.
        mass: u32,
        /// The server said the old seat was gone.
        fresh: bool,
    },
}

impl Op {
    /// One JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Read a `history.jsonl`; a line that does not parse is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Op>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("history line {}: {e}", i + 1)))
        .collect()
}
