//! The game's players are the chat's accounts: its access tokens sign a
//! player in, and its store keeps their best scores (shared by every node
//! on PostgreSQL).

use std::sync::Arc;

use async_trait::async_trait;
use volley_chat::Chat;
use volley_chat::ErrorCode;
use volley_game::{Account, AccountError, Accounts, BestScore};
use volley_hub::UserId;

/// [`Accounts`] backed by the chat service.
pub(crate) struct ChatAccounts(pub Arc<Chat>);

#[async_trait]
impl Accounts for ChatAccounts {
    async fn verify(&self, token: &str) -> Result<Account, AccountError> {
        let user = self.0.authenticate(token).await.map_err(|r| match r.code {
            ErrorCode::AuthFailed | ErrorCode::AuthRequired | ErrorCode::GuestsDisabled | ErrorCode::Forbidden => {
                AccountError::Refused(r.message)
            }
            _ => AccountError::Unavailable(r.message),
        })?;
        Ok(Account {
            id: user.id,
            name: user.name,
        })
    }

    async fn record_scores(&self, scores: &[(UserId, u32)]) -> Result<(), String> {
        self.0
            .hub()
            .store()
            .record_scores(scores)
            .await
            .map_err(|e| e.to_string())
    }

    async fn top_scores(&self, limit: u32) -> Result<Vec<BestScore>, String> {
        let top = self
            .0
            .hub()
            .store()
            .top_scores(limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(top
            .into_iter()
            .map(|(user, best)| BestScore { name: user.name, best })
            .collect())
    }
}
