//! The SQLite store on a real file: the shared store cases, and durability
//! across reopen.

mod common;

use std::sync::Arc;

use volley_hub::{SqliteStore, Store, Synchronous};

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir, Synchronous::Full).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_gap_free_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    common::concurrent_appends_get_gap_free_sequence_numbers(&[open(dir.path())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_retransmissions_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    common::simultaneous_retransmissions_are_stored_once(&[open(dir.path())]).await;
}

#[tokio::test]
async fn history_receipts_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (user, room) = common::history_and_receipts(&*open(dir.path())).await;
    common::still_there(&*open(dir.path()), user, room).await;
}

#[tokio::test]
async fn rooms_members_and_direct_rooms() {
    let dir = tempfile::tempdir().unwrap();
    common::rooms_members_and_direct_rooms(&*open(dir.path())).await;
}

#[tokio::test]
async fn deleted_rooms_are_gone_and_their_ids_never_return() {
    let dir = tempfile::tempdir().unwrap();
    common::deleted_rooms_are_gone_and_their_ids_never_return(&*open(dir.path())).await;
}

#[tokio::test]
async fn best_scores_only_rise_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    common::best_scores_only_rise(&*open(dir.path())).await;
    let board = open(dir.path()).top_scores(10).await.unwrap();
    assert_eq!(
        board.first().map(|(u, best)| (u.name.as_str(), *best)),
        Some(("scorer-b", 300))
    );
}
