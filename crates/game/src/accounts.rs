//! Players as people: the game checks the chat's access tokens and keeps
//! each account's best score through an [`Accounts`] the server provides
//! (`volley serve` backs it with the chat's auth and store), so the game
//! never depends on the chat.

use async_trait::async_trait;
use volley_hub::UserId;

/// A signed-in player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account, as the chat knows it.
    pub id: UserId,
    /// Its name, shown in the roster instead of a chosen one.
    pub name: String,
}

/// One line of the all-time leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BestScore {
    /// The account's name.
    pub name: String,
    /// The heaviest it has ever been in one life, in mass units.
    pub best: u32,
}

/// Why a token signed nobody in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// The token is invalid or expired, or its kind is not allowed here:
    /// trying again will not help (close 4005).
    Refused(String),
    /// The accounts could not be checked now (the store is down): the
    /// client should come back in a moment (close 1013).
    Unavailable(String),
}

/// The accounts behind the game; errors are a sentence for the player or
/// the log.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Who an access token speaks for.
    async fn verify(&self, token: &str) -> Result<Account, AccountError>;
    /// Raise each account's best score where the given one is higher.
    async fn record_scores(&self, scores: &[(UserId, u32)]) -> Result<(), String>;
    /// The best scores of all time, best first.
    async fn top_scores(&self, limit: u32) -> Result<Vec<BestScore>, String>;
}
