//! The binary protocol: round trips, and decoders that never panic or
//! over-allocate on hostile bytes (fuzz-style, with proptest).

use proptest::prelude::*;
use volley_game::protocol::{
    apply, encode_snapshot, ClientMsg, DecodeError, EntityState, ErrorCode, Header, Join, Kind, PlayerEntry, ServerMsg,
    Snapshot, Welcome,
};

fn entity() -> impl Strategy<Value = EntityState> {
    (1u32..400, 0u8..3, any::<u16>(), any::<u16>(), 0u16..4000, 1u32..300).prop_map(|(id, k, x, y, r, owner)| {
        let kind = [Kind::Pellet, Kind::Cell, Kind::Blob][k as usize];
        EntityState {
            id,
            kind,
            x,
            y,
            r,
            owner: if kind == Kind::Cell { owner } else { 0 },
        }
    })
}

fn entity_set() -> impl Strategy<Value = Vec<EntityState>> {
    proptest::collection::vec(entity(), 0..120).prop_map(|mut v| {
        v.sort_by_key(|e| e.id);
        v.dedup_by_key(|e| e.id);
        v
    })
}

/// `current` shares ids with `base` (same kind and owner, maybe moved).
fn evolve(base: &[EntityState], moves: &[(i32, i32, bool)], extra: Vec<EntityState>) -> Vec<EntityState> {
    let mut out: Vec<EntityState> = base
        .iter()
        .zip(moves.iter().cycle())
        .filter(|(_, (_, _, keep))| *keep)
        .map(|(e, (dx, dy, _))| EntityState {
            x: (e.x as i32 + dx).clamp(0, u16::MAX as i32) as u16,
            y: (e.y as i32 + dy).clamp(0, u16::MAX as i32) as u16,
            ..*e
        })
        .collect();
    for e in extra {
        if !base.iter().any(|b| b.id == e.id) && !out.iter().any(|o| o.id == e.id) {
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.id);
    out
}

fn header(tick: u32, baseline: u32) -> Header {
    Header {
        tick,
        baseline,
        input_seq: 77,
        alive: true,
        spectator: false,
        mass: 1234,
        killer: 0,
        view_x: 4000,
        view_y: 8000,
        view_scale: 130,
    }
}

proptest! {
    #[test]
    fn delta_round_trip(base in entity_set(), moves in proptest::collection::vec((-300i32..300, -300i32..300, proptest::bool::weighted(0.8)), 1..20), extra in entity_set()) {
        let current = evolve(&base, &moves, extra);
        let mut frame = Vec::new();
        encode_snapshot(&mut frame, &header(10, 9), &base, &current);
        let snapshot = Snapshot::decode(&frame).expect("decodes");
        prop_assert_eq!(snapshot.header, header(10, 9));
        prop_assert_eq!(apply(&base, &snapshot).expect("applies"), current.clone());
        // A full snapshot of the same state gives the same entities.
        let mut full = Vec::new();
        encode_snapshot(&mut full, &header(10, 0), &[], &current);
        prop_assert_eq!(apply(&[], &Snapshot::decode(&full).expect("decodes")).expect("applies"), current);
    }

    #[test]
    fn snapshot_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Snapshot::decode(&bytes);
        let mut framed = vec![0x82];
        framed.extend_from_slice(&bytes);
        if let Ok(s) = Snapshot::decode(&framed) {
            let _ = apply(&[], &s);
        }
    }

    #[test]
    fn mutated_snapshots_never_panic(base in entity_set(), extra in entity_set(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let current = evolve(&base, &[(5, -5, true)], extra);
        let mut frame = Vec::new();
        encode_snapshot(&mut frame, &header(3, 2), &base, &current);
        for (at, byte) in flips {
            let at = at % frame.len();
            frame[at] ^= byte;
        }
        if let Ok(s) = Snapshot::decode(&frame) {
            let _ = apply(&base, &s);
        }
    }

    #[test]
    fn client_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(msg) = ClientMsg::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(msg.encode(), bytes.clone());
        }
        let _ = ServerMsg::decode(&bytes);
    }

    #[test]
    fn input_round_trip(seq in any::<u32>(), ack in any::<u32>(), x in any::<i16>(), y in any::<i16>(), buttons in 0u8..4) {
        let msg = ClientMsg::Input { seq, ack, target: (x, y), buttons };
        prop_assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg));
    }
}

#[test]
fn client_frames_round_trip() {
    for msg in [
        ClientMsg::Join(Join {
            name: "zoë".into(),
            spectate: false,
            resume: None,
            seat: None,
            account: None,
        }),
        ClientMsg::Join(Join {
            name: String::new(),
            spectate: true,
            resume: Some([7; 16]),
            seat: Some("seat.token".into()),
            account: Some("account.token".into()),
        }),
        ClientMsg::Ping(99),
        ClientMsg::Respawn,
    ] {
        assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg));
    }
}

#[test]
fn server_frames_round_trip() {
    for msg in [
        ServerMsg::Welcome(Welcome {
            player: 3,
            room: volley_game::MatchId(9),
            token: [1; 16],
            tick_hz: 30,
            world_size: 6000,
            spectator: false,
            resumed: true,
        }),
        ServerMsg::Pong(5),
        ServerMsg::Roster(vec![PlayerEntry {
            id: 1,
            name: "bot 1".into(),
            bot: true,
            account: false,
        }]),
        ServerMsg::Leaderboard(vec![(1, 500), (2, 12)]),
        ServerMsg::Error(ErrorCode::RateLimited, "slow down".into()),
    ] {
        assert_eq!(ServerMsg::decode(&msg.encode()), Ok(msg));
    }
}

#[test]
fn malformed_client_frames_are_named() {
    assert_eq!(ClientMsg::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(ClientMsg::decode(&[0x7f]), Err(DecodeError::UnknownType(0x7f)));
    assert_eq!(ClientMsg::decode(&[2, 1, 0]), Err(DecodeError::Truncated));
    let mut input = ClientMsg::Input {
        seq: 1,
        ack: 0,
        target: (0, 0),
        buttons: 0,
    }
    .encode();
    input.push(0);
    assert_eq!(ClientMsg::decode(&input), Err(DecodeError::Trailing(1)));
    input.pop();
    input[13] = 0x80;
    assert_eq!(ClientMsg::decode(&input), Err(DecodeError::Invalid("input buttons")));
    // A long name decodes (the session answers `bad_name`); a cut one does not.
    let mut join = vec![1, 0, 30];
    join.extend_from_slice(&[b'a'; 30]);
    assert!(matches!(ClientMsg::decode(&join), Ok(ClientMsg::Join(j)) if j.name.len() == 30));
    join.truncate(20);
    assert!(ClientMsg::decode(&join).is_err());
}

#[test]
fn forged_counts_do_not_allocate() {
    // A snapshot claiming four billion removals in a 20-byte frame fails at once.
    let mut frame = vec![0x82, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(Snapshot::decode(&frame), Err(DecodeError::Count(_))));
}

#[test]
fn delta_against_the_wrong_baseline_is_refused() {
    let base = vec![EntityState {
        id: 5,
        kind: Kind::Cell,
        x: 10,
        y: 10,
        r: 40,
        owner: 1,
    }];
    let moved = vec![EntityState { x: 20, ..base[0] }];
    let mut frame = Vec::new();
    encode_snapshot(&mut frame, &header(2, 1), &base, &moved);
    let snapshot = Snapshot::decode(&frame).expect("decodes");
    assert_eq!(apply(&[], &snapshot), Err(DecodeError::UnknownEntity(5)));
}
