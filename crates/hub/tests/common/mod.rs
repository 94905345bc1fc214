//! What every [`Store`] must do, written once and run against each engine
//! (SQLite on a file, PostgreSQL on a real server).

use std::sync::Arc;

use volley_hub::{Appended, NewMessage, RoomId, RoomKind, Seq, Store, UserId, UserKind};

/// A message from `user` to `room` with client id `id`.
pub(crate) fn message(room: RoomId, user: UserId, id: &str) -> NewMessage {
    NewMessage {
        room,
        user,
        user_name: "u".into(),
        client_id: id.into(),
        text: format!("text of {id}"),
        ts: 1,
    }
}

/// 8 writers x 100 messages into one room: numbers 1..=800, no gap, no
/// repeat, each writer's in its own order; a retransmission is answered
/// with the stored message and takes no number.
pub(crate) async fn concurrent_appends_get_gap_free_sequence_numbers(stores: &[Arc<dyn Store>]) {
    let store = &stores[0];
    let user = store.create_user("u", UserKind::Guest, None).await.unwrap();
    let room = store.create_room("r", RoomKind::Public, user.id).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        // Writers spread over the stores given: one per node when there are several.
        let store = stores[t % stores.len()].clone();
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
    match store.append(message(room.id, user.id, "3-7")).await.unwrap() {
        Appended::Duplicate(m) => assert_eq!(m.text, "text of 3-7"),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, Seq(800));
}

/// The same message sent at once through every store (a client retrying on
/// another node while the first attempt is still in flight): stored once.
pub(crate) async fn simultaneous_retransmissions_are_stored_once(stores: &[Arc<dyn Store>]) {
    let store = &stores[0];
    let user = store.create_user("twice", UserKind::Guest, None).await.unwrap();
    let room = store.create_room("r2", RoomKind::Public, user.id).await.unwrap();
    for round in 0..20 {
        let id = format!("retry-{round}");
        let mut tasks = Vec::new();
        for copy in 0..4 {
            let store = stores[copy % stores.len()].clone();
            let m = message(room.id, user.id, &id);
            tasks.push(tokio::spawn(async move { store.append(m).await.unwrap() }));
        }
        let mut new = 0;
        let mut seqs = Vec::new();
        for t in tasks {
            let appended = t.await.unwrap();
            new += matches!(appended, Appended::New(_)) as usize;
            seqs.push(appended.message().seq);
        }
        assert_eq!(new, 1, "exactly one copy stored");
        assert!(
            seqs.iter().all(|s| *s == Seq(round + 1)),
            "all answered with its seq: {seqs:?}"
        );
    }
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, Seq(20), "no gap");
}

/// Read marks, history pages and membership; returns what
/// [`still_there`] checks after a reopen.
pub(crate) async fn history_and_receipts(store: &dyn Store) -> (UserId, RoomId) {
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
    assert!(matches!(
        store.set_read(room.id, UserId(user.id.0 + 1000), Seq(1)).await,
        Err(volley_hub::Error::NotFound(_))
    ));
    // Marks beyond what SQL integers hold (a client's `read` or resume) clamp.
    assert_eq!(store.set_read(room.id, user.id, Seq(u64::MAX)).await.unwrap(), Seq(10));
    assert!(store.since(room.id, Seq(u64::MAX), 10).await.unwrap().is_empty());
    assert_eq!(store.history(room.id, Some(Seq(u64::MAX)), 2).await.unwrap().len(), 2);
    (user.id, room.id)
}

/// What [`history_and_receipts`] stored is all still there.
pub(crate) async fn still_there(store: &dyn Store, user_id: UserId, room_id: RoomId) {
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

/// Rooms: search, membership, direct rooms found again by the pair.
pub(crate) async fn rooms_members_and_direct_rooms(store: &dyn Store) {
    let a = store.create_user("amy", UserKind::Guest, None).await.unwrap();
    let b = store.create_user("bo", UserKind::Guest, None).await.unwrap();
    let public = store
        .create_room("lobby 50%_off", RoomKind::Public, a.id)
        .await
        .unwrap();
    assert_eq!(public.members, 1, "the owner is a member");
    assert_eq!(
        store.search_public("50%_", 10).await.unwrap().len(),
        1,
        "LIKE characters are literal"
    );
    assert!(store.search_public("60%", 10).await.unwrap().is_empty());
    assert!(store.add_member(public.id, b.id).await.unwrap());
    assert!(!store.add_member(public.id, b.id).await.unwrap(), "already a member");
    assert!(matches!(
        store.add_member(RoomId(public.id.0 + 999), b.id).await,
        Err(volley_hub::Error::NotFound(_))
    ));
    assert!(store.is_member(public.id, b.id).await.unwrap());
    let names: Vec<String> = store
        .members(public.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["amy", "bo"]);
    assert!(store.remove_member(public.id, b.id).await.unwrap());
    assert!(!store.is_member(public.id, b.id).await.unwrap());
    let direct = store.direct_room(&a, &b).await.unwrap();
    assert_eq!(
        store.direct_room(&b, &a).await.unwrap().id,
        direct.id,
        "one room per pair"
    );
    assert!(store.is_member(direct.id, a.id).await.unwrap() && store.is_member(direct.id, b.id).await.unwrap());
    let ext = store.external_user("sub-1").await.unwrap();
    assert_eq!(store.external_user("sub-1").await.unwrap().id, ext.id);
    assert!(
        matches!(store.external_user("amy").await, Err(volley_hub::Error::Taken(_))),
        "a local name is not taken over"
    );
    assert_eq!(store.user(ext.id).await.unwrap().unwrap().kind, UserKind::External);
}

/// A deleted room is gone for every read and append, its members with it,
/// and the next room gets a new id even though the deleted one was the newest.
pub(crate) async fn deleted_rooms_are_gone_and_their_ids_never_return(store: &dyn Store) {
    let a = store.create_user("dee", UserKind::Guest, None).await.unwrap();
    let b = store.create_user("eli", UserKind::Guest, None).await.unwrap();
    let room = store.create_room("doomed", RoomKind::Public, a.id).await.unwrap();
    assert!(store.add_member(room.id, b.id).await.unwrap());
    let message = |text: &str| NewMessage {
        room: room.id,
        user: a.id,
        user_name: "dee".into(),
        client_id: text.into(),
        text: text.into(),
        ts: 1,
    };
    store.append(message("m1")).await.unwrap();
    let mut members = store.delete_room(room.id).await.unwrap().expect("it existed");
    members.sort();
    assert_eq!(members, vec![a.id, b.id]);
    assert!(store.room(room.id).await.unwrap().is_none());
    assert!(store.rooms_of(b.id).await.unwrap().is_empty());
    assert!(store.search_public("doomed", 10).await.unwrap().is_empty());
    assert!(store.history(room.id, None, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.append(message("m2")).await,
        Err(volley_hub::Error::NotFound(_))
    ));
    assert!(matches!(
        store.add_member(room.id, b.id).await,
        Err(volley_hub::Error::NotFound(_))
    ));
    assert!(
        store.delete_room(room.id).await.unwrap().is_none(),
        "twice: no such room"
    );
    let next = store.create_room("next", RoomKind::Public, a.id).await.unwrap();
    assert!(next.id > room.id, "{:?} reuses {:?}", next.id, room.id);
}

/// Best game scores only rise, a batch may name a user twice, and the
/// board lists the best first with the users' names.
pub(crate) async fn best_scores_only_rise(store: &dyn Store) {
    let a = store.create_user("scorer-a", UserKind::Guest, None).await.unwrap();
    let b = store.create_user("scorer-b", UserKind::Guest, None).await.unwrap();
    let c = store.create_user("scorer-c", UserKind::Guest, None).await.unwrap();
    assert!(store.top_scores(10).await.unwrap().is_empty());
    store.record_scores(&[(a.id, 120), (b.id, 300)]).await.unwrap();
    store
        .record_scores(&[(a.id, 90), (b.id, 250), (c.id, 40), (a.id, 200)])
        .await
        .unwrap();
    store.record_scores(&[]).await.unwrap();
    let board: Vec<(String, u32)> = store
        .top_scores(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, best)| (u.name, best))
        .collect();
    assert_eq!(
        board,
        vec![
            ("scorer-b".into(), 300),
            ("scorer-a".into(), 200),
            ("scorer-c".into(), 40)
        ]
    );
    assert_eq!(store.top_scores(1).await.unwrap().len(), 1);
}
