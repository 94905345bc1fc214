//! The node's catch-up from the store: the broker only carries, so what it
//! lost (a broker restart, a dropped publish, the last message of a quiet
//! room) is read back from the store, which orders.
//!
//! Every few seconds, and at once after the broker reconnects, each room this
//! node serves is checked: if the store holds messages past the last one the
//! node handed out, they are delivered to the node's subscribers, who drop
//! what they already have (by seq). A connection also fills its own gaps as
//! soon as a later message shows one; this loop is for gaps nothing later
//! reveals.

use std::sync::Weak;
use std::time::Duration;

use volley_hub::{RoomId, Seq, Topic};

use crate::service::{message_event, Chat};

/// Messages read per query while catching up.
const PAGE: u32 = 500;

/// Run until `chat` is dropped.
pub(crate) async fn run(chat: Weak<Chat>, every: Duration) {
    let mut reconnections = match chat.upgrade() {
        Some(chat) => chat.hub().broker().reconnections(),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reconnected = async {
            match reconnections.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            alive = reconnected => {
                if !alive {
                    reconnections = None;
                }
                metrics::counter!("volley_catch_up_after_reconnect_total").increment(1);
            }
        }
        let Some(chat) = chat.upgrade() else { return };
        for (room, position) in chat.hub().served_rooms() {
            let Some(position) = position else { continue };
            if let Err(e) = catch_up(&chat, room, position).await {
                tracing::warn!(%room, error = %e, "catch-up from the store failed; next round retries");
            }
        }
    }
}

/// Deliver the room's messages after `from` that the store has.
async fn catch_up(chat: &Chat, room: RoomId, from: Seq) -> Result<(), volley_hub::Error> {
    let store = chat.hub().store();
    let Some(stored) = store.room(room).await? else {
        return Ok(());
    };
    let mut after = from;
    while after < stored.last_seq {
        let page = store.since(room, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        metrics::counter!("volley_gap_fills_total", "by" => "node").increment(page.len() as u64);
        for message in &page {
            chat.hub().deliver_local(Topic::Room(room), message_event(message));
        }
    }
    Ok(())
}
