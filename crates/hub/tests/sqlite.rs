//! The SQLite store on a real file: sequence numbers under concurrency,
//! idempotency, durability across reopen, read receipts.

use std::sync::Arc;

use volley_hub::{Appended, NewMessage, RoomId, RoomKind, Seq, SqliteStore, Store, Synchronous, UserId, UserKind};

fn message(room: RoomId, user: UserId, id: &str) -> NewMessage {
    NewMessage {
        room,
        user,
        user_name: "u".into(),
        client_id: id.into(),
        text: format!("text of {id}"),
        ts: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_gap_free_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Full).unwrap());
    let user = store.create_user("u", UserKind::Guest, None).await.unwrap();
    let room = store.create_room("r", RoomKind::Public, user.id).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                match store
                    .append(message(room.id, user.id, &format!("{t}-{i}")))
                    .await
                    .unwrap()
                {
                    Appended::New(m) => seqs.push(m.seq),
                    Appended::Duplicate(_) => panic!("fresh ids are never duplicates"),
                }
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender's messages keep their order"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=800).map(Seq).collect::<Vec<_>>());
    // A retransmission returns the stored message.
    match store.append(message(room.id, user.id, "3-7")).await.unwrap() {
        Appended::Duplicate(m) => assert_eq!(m.text, "text of 3-7"),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, Seq(800));
}

#[tokio::test]
async fn history_receipts_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (user_id, room_id) = {
        let store = SqliteStore::open(dir.path(), Synchronous::Full).unwrap();
        let user = store
            .create_user("ann", UserKind::Password, Some("hash".into()))
            .await
            .unwrap();
        assert!(matches!(
            store.create_user("ann", UserKind::Guest, None).await,
            Err(volley_hub::Error::Taken(_))
        ));
        let room = store.create_room("r", RoomKind::Private, user.id).await.unwrap();
        for i in 0..10 {
            store.append(message(room.id, user.id, &i.to_string())).await.unwrap();
        }
        assert_eq!(store.set_read(room.id, user.id, Seq(4)).await.unwrap(), Seq(4));
        assert_eq!(
            store.set_read(room.id, user.id, Seq(2)).await.unwrap(),
            Seq(4),
            "never backwards"
        );
        assert_eq!(
            store.set_read(room.id, user.id, Seq(99)).await.unwrap(),
            Seq(10),
            "clamped to the last message"
        );
        (user.id, room.id)
    };
    let store = SqliteStore::open(dir.path(), Synchronous::Full).unwrap();
    let page = store.history(room_id, Some(Seq(8)), 3).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![5, 6, 7]);
    let since = store.since(room_id, Seq(8), 100).await.unwrap();
    assert_eq!(since.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![9, 10]);
    let rooms = store.rooms_of(user_id).await.unwrap();
    assert_eq!((rooms[0].room.last_seq, rooms[0].last_read), (Seq(10), Seq(10)));
    assert!(
        store.search_public("r", 10).await.unwrap().is_empty(),
        "private rooms are not listed"
    );
    let (user, hash) = store.user_by_name("ann").await.unwrap().unwrap();
    assert_eq!((user.id, hash.as_deref()), (user_id, Some("hash")));
}
