//! The PostgreSQL store against a real server (Debian's `postgresql`,
//! started by `volley_testkit` on a free port): the shared store cases,
//! with several stores standing for several nodes, plus what only a shared
//! database has: versioned migrations, shared settings, and an outage.

mod common;

use std::sync::Arc;
use std::time::Duration;

use volley_hub::{Appended, PgStore, RoomKind, Store, UserKind, MIGRATIONS};
use volley_testkit::Postgres;

async fn nodes(pg: &Postgres, n: usize) -> Vec<Arc<dyn Store>> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..n {
        stores.push(Arc::new(PgStore::connect(&pg.url()).await.unwrap()));
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_append_to_one_room_without_gaps() {
    let pg = Postgres::start().unwrap();
    common::concurrent_appends_get_gap_free_sequence_numbers(&nodes(&pg, 3).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retransmissions_through_several_nodes_are_stored_once() {
    let pg = Postgres::start().unwrap();
    common::simultaneous_retransmissions_are_stored_once(&nodes(&pg, 2).await).await;
}

#[tokio::test]
async fn history_receipts_survive_a_reconnect() {
    let pg = Postgres::start().unwrap();
    let (user, room) = common::history_and_receipts(&*nodes(&pg, 1).await[0]).await;
    common::still_there(&*nodes(&pg, 1).await[0], user, room).await;
}

#[tokio::test]
async fn rooms_members_and_direct_rooms() {
    let pg = Postgres::start().unwrap();
    common::rooms_members_and_direct_rooms(&*nodes(&pg, 1).await[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let pg = Postgres::start().unwrap();
    let url = pg.url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    for start in starts {
        let store = start.await.unwrap().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len() as i32);
    }
}

#[tokio::test]
async fn the_first_node_decides_a_shared_setting() {
    let pg = Postgres::start().unwrap();
    let a = PgStore::connect(&pg.url()).await.unwrap();
    let b = PgStore::connect(&pg.url()).await.unwrap();
    assert_eq!(a.shared_setting("token_secret", "from-a").await.unwrap(), "from-a");
    assert_eq!(b.shared_setting("token_secret", "from-b").await.unwrap(), "from-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_appends_and_the_store_recovers() {
    let mut pg = Postgres::start().unwrap();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let user = store.create_user("u", UserKind::Guest, None).await.unwrap();
    let room = store.create_room("r", RoomKind::Public, user.id).await.unwrap();
    store.append(common::message(room.id, user.id, "before")).await.unwrap();
    pg.stop().unwrap();
    let failed = tokio::time::timeout(
        Duration::from_secs(20),
        store.append(common::message(room.id, user.id, "during")),
    )
    .await
    .expect("an outage answers with an error, not a hang");
    assert!(matches!(failed, Err(volley_hub::Error::Storage(_))), "{failed:?}");
    assert!(store.ping().await.is_err());
    pg.resume().unwrap();
    // Pooled connections died with the server; new ones are made on demand.
    let mut answer = None;
    for _ in 0..50 {
        match store.append(common::message(room.id, user.id, "during")).await {
            Ok(a) => {
                answer = Some(a);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    match answer {
        Some(Appended::New(m)) => assert_eq!(m.seq.0, 2, "the failed attempt took no number"),
        other => panic!("expected the retry to be stored: {other:?}"),
    }
}

#[tokio::test]
async fn deleted_rooms_are_gone_and_their_ids_never_return() {
    let pg = Postgres::start().unwrap();
    common::deleted_rooms_are_gone_and_their_ids_never_return(&*nodes(&pg, 1).await[0]).await;
}

#[tokio::test]
async fn best_scores_only_rise_across_nodes() {
    let pg = Postgres::start().unwrap();
    let nodes = nodes(&pg, 2).await;
    common::best_scores_only_rise(&*nodes[0]).await;
    let board = nodes[1].top_scores(10).await.unwrap();
    assert_eq!(
        board.first().map(|(u, best)| (u.name.as_str(), *best)),
        Some(("scorer-b", 300))
    );
}
