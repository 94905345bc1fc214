//! What matchmaking needs to know of the other nodes, as data and a
//! trait: the lobby asks a [`Directory`] (the cluster implements it), so
//! the lobby never imports the cluster, which drives the lobby.

use serde::{Deserialize, Serialize};

use volley_hub::UserId;

use crate::protocol::MatchId;

/// One match as its node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchLoad {
    /// The match.
    pub id: u32,
    /// People seated or on their way back.
    pub humans: u32,
    /// What its ticks cost, in microseconds (averaged over about a second).
    pub tick_micros: u64,
    /// The accounts seated in it (signed-in players, also those on their
    /// way back): a join with one of them is sent to this match.
    #[serde(default)]
    pub accounts: Vec<i64>,
    /// Its heaviest players, heaviest first: the cluster's live leaderboard.
    #[serde(default)]
    pub leaders: Vec<Leader>,
    /// Connections attached to it now: of two copies of one match (a node
    /// that was only cut off, and the copy recovered from its checkpoint),
    /// the one its players are still connected to is the one that stays.
    #[serde(default)]
    pub attached: u32,
}

/// A player on a match's leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    /// Display name (the account's, for a signed-in player).
    pub name: String,
    /// Signed in, rather than a guest or a bot.
    pub account: bool,
    /// Current mass.
    pub mass: u32,
}

/// What a node runs and can take, as its last heartbeat said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// The node's id (`--node-id`); what `?node=` names at the proxy.
    pub node: String,
    /// Handing its matches away; takes none.
    pub draining: bool,
    /// Simulation threads.
    pub threads: u32,
    /// Most matches it may run.
    pub max_rooms: u32,
    /// Its matches.
    pub matches: Vec<MatchLoad>,
    /// When this life of the node began (nanoseconds of the clock): a new
    /// value means it restarted, and the matches it ran before and no
    /// longer lists died with the old life.
    #[serde(default)]
    pub life: u64,
}

impl NodeLoad {
    /// Tick time per simulation thread, in microseconds per tick: how busy
    /// the node's simulation is. Lower is more headroom.
    pub fn cost(&self) -> f64 {
        let total: u64 = self.matches.iter().map(|m| m.tick_micros).sum();
        total as f64 / f64::from(self.threads.max(1))
    }

    /// It may take one more match.
    pub fn has_room(&self) -> bool {
        !self.draining && (self.matches.len() as u32) < self.max_rooms
    }
}

/// Where a match is, as this node knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A live node runs it.
    At(String),
    /// Its node went silent; a checkpoint may bring it back shortly.
    Recovering,
    /// No node this one hears from runs it.
    Unknown,
}

/// Where matches run and where a new one should open; the cluster answers.
pub trait Directory: Send + Sync {
    /// This node's id.
    fn node(&self) -> &str;
    /// Every node heard from lately, this one included.
    fn nodes(&self) -> Vec<NodeLoad>;
    /// Where match `id` runs, as far as this node knows.
    fn locate(&self, id: MatchId) -> Located;
    /// Where the match holding `account`'s seat runs, as far as this node
    /// knows (`Unknown`: no node lists the account).
    fn locate_account(&self, account: UserId) -> Located;
    /// Another node running a match with a free place (of `capacity`).
    fn node_with_a_place(&self, capacity: usize) -> Option<String>;
    /// The node a new match should open on, if not this one.
    fn better_node_for_a_new_match(&self) -> Option<String>;
}
