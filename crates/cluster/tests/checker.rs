//! The checker against synthetic histories: a correct one passes, and each
//! planted violation (a lost message, a duplicate, a reordering, a gap, an
//! unknown outcome seen by only some members, a refused send delivered, a
//! lost seat, a slow return, diverged presence) is caught and quoted.

use volley_cluster::checker::{check, Promises, Violation};
use volley_cluster::history::{parse, Op, Outcome};

const PROMISES: Promises = Promises { game_pause_ms: 1000 };

fn member(client: &str) -> Op {
    Op::Member {
        client: client.into(),
        room: 1,
    }
}

fn send(id: &str, outcome: Outcome) -> Op {
    Op::Send {
        client: "ann".into(),
        room: 1,
        id: id.into(),
        at_ms: 0,
        done_ms: 5,
        outcome,
    }
}

fn ok(seq: u64) -> Outcome {
    Outcome::Ok { seq }
}

fn deliver(client: &str, seq: u64, id: &str) -> Op {
    Op::Deliver {
        client: client.into(),
        room: 1,
        seq,
        id: id.into(),
        at_ms: 10,
    }
}

/// Two members; three acknowledged messages, each delivered to both once,
/// in order; one unknown outcome that reached both; one refused that
/// reached nobody; a connection loss with its resume.
fn correct() -> Vec<Op> {
    let mut h = vec![member("ann"), member("bob")];
    for (seq, id) in [(1, "a1"), (2, "a2"), (3, "a3")] {
        h.push(send(id, ok(seq)));
    }
    h.push(send("a4", Outcome::Unknown));
    h.push(send("a5", Outcome::Failed { why: "too long".into() }));
    h.push(Op::Down {
        client: "bob".into(),
        at_ms: 100,
    });
    h.push(Op::Up {
        client: "bob".into(),
        at_ms: 340,
    });
    for c in ["ann", "bob"] {
        for (seq, id) in [(1, "a1"), (2, "a2"), (3, "a3"), (4, "a4")] {
            h.push(deliver(c, seq, id));
        }
    }
    h.push(Op::Presence {
        node: "n1".into(),
        room: 1,
        online: vec!["ann".into(), "bob".into()],
        expected: vec!["ann".into(), "bob".into()],
    });
    h.push(Op::SeatBefore {
        player: "p1".into(),
        at_ms: 1000,
        match_id: 7,
        seat: 3,
        mass: 40,
    });
    h.push(Op::SeatAfter {
        player: "p1".into(),
        at_ms: Some(1090),
        match_id: 7,
        seat: 3,
        mass: 40,
        fresh: false,
    });
    h
}

fn violations(h: &[Op]) -> Vec<Violation> {
    check(h, PROMISES).violations
}

/// Replace the first op matching `pick` (or append when `with` is given and nothing matches).
fn without(mut h: Vec<Op>, pick: impl Fn(&Op) -> bool) -> Vec<Op> {
    let at = h.iter().position(pick).expect("the op to remove");
    h.remove(at);
    h
}

#[test]
fn a_correct_history_passes_and_is_measured() {
    let verdict = check(&correct(), PROMISES);
    assert_eq!(verdict.violations, vec![], "{:?}", verdict.violations);
    let s = verdict.stats;
    assert_eq!((s.acked, s.refused, s.unknown, s.unknown_delivered), (3, 1, 1, 1));
    assert_eq!(s.resumes_ms, vec![240]);
    assert_eq!(s.game_pauses_ms, vec![90]);
}

#[test]
fn a_history_survives_its_own_file_format() {
    let text: String = correct().iter().map(|op| op.to_line() + "\n").collect();
    assert_eq!(parse(&text).unwrap(), correct());
    assert!(parse("{\"op\":\"nonsense\"}").unwrap_err().contains("line 1"));
}

#[test]
fn a_lost_acknowledged_message_is_caught() {
    let h = without(correct(), |op| *op == deliver("bob", 2, "a2"));
    let v = violations(&h);
    assert!(v.contains(&Violation::Lost {
        room: 1,
        seq: 2,
        id: "a2".into(),
        member: "bob".into()
    }));
    assert!(v[0].to_string().contains("never delivered to bob"), "{}", v[0]);
}

#[test]
fn the_newest_acknowledged_message_missing_everywhere_is_lost_too() {
    let mut h = correct();
    h.push(send("a6", ok(5)));
    let v = violations(&h);
    assert_eq!(
        v.iter().filter(|x| matches!(x, Violation::Lost { seq: 5, .. })).count(),
        2,
        "{v:?}"
    );
}

#[test]
fn a_duplicate_delivery_is_caught() {
    let mut h = correct();
    h.push(deliver("ann", 2, "a2"));
    assert!(violations(&h)
        .iter()
        .any(|x| matches!(x, Violation::Duplicate { member, .. } if member == "ann")));
}

#[test]
fn one_message_stored_twice_is_caught() {
    let mut h = correct();
    for c in ["ann", "bob"] {
        h.push(deliver(c, 5, "a1"));
    }
    assert!(violations(&h)
        .iter()
        .any(|x| matches!(x, Violation::Duplicate { member, what, .. } if member == "store" && what.contains("a1"))));
}

#[test]
fn a_reordering_is_caught() {
    let mut h = without(correct(), |op| *op == deliver("bob", 2, "a2"));
    h.push(deliver("bob", 2, "a2"));
    let v = violations(&h);
    assert!(v.contains(&Violation::Reordered {
        room: 1,
        member: "bob".into(),
        seq: 2,
        after: 4
    }));
}

#[test]
fn a_gap_no_send_explains_is_caught() {
    // Seq 4 was the unknown send's: without it for bob, bob has a gap and
    // the unknown outcome is partial.
    let h = without(correct(), |op| *op == deliver("bob", 4, "a4"));
    let v = violations(&h);
    assert!(v.contains(&Violation::Gap {
        room: 1,
        member: "bob".into(),
        missing: vec![4]
    }));
    assert!(v
        .iter()
        .any(|x| matches!(x, Violation::UnknownPartial { id, .. } if id == "a4")));
}

#[test]
fn an_unknown_outcome_counted_wrongly_is_caught() {
    // Seen by nobody: fine ("nowhere"); by one member only: a violation.
    let mut h: Vec<Op> = correct()
        .into_iter()
        .filter(|op| !matches!(op, Op::Deliver { id, .. } if id == "a4"))
        .collect();
    assert_eq!(violations(&h), vec![]);
    h.push(deliver("ann", 4, "a4"));
    let v = violations(&h);
    assert!(v.contains(&Violation::UnknownPartial {
        room: 1,
        id: "a4".into(),
        got: vec!["ann".into()],
        missing: vec!["bob".into()]
    }));
}

#[test]
fn a_refused_send_that_was_delivered_is_caught() {
    let mut h = correct();
    for c in ["ann", "bob"] {
        h.push(deliver(c, 5, "a5"));
    }
    assert!(violations(&h)
        .iter()
        .any(|x| matches!(x, Violation::RefusedDelivered { id, .. } if id == "a5")));
}

#[test]
fn an_acknowledgement_naming_another_message_is_caught() {
    let mut h = correct();
    h.push(send("a7", ok(2)));
    assert!(violations(&h)
        .iter()
        .any(|x| matches!(x, Violation::AckMismatch { id, delivered, .. } if id == "a7" && delivered == "a2")));
}

#[test]
fn a_message_nobody_sent_is_caught() {
    let mut h = correct();
    for c in ["ann", "bob"] {
        h.push(deliver(c, 5, "ghost"));
    }
    assert!(violations(&h)
        .iter()
        .any(|x| matches!(x, Violation::Phantom { id, .. } if id == "ghost")));
}

#[test]
fn diverged_presence_is_caught() {
    let mut h = correct();
    h.push(Op::Presence {
        node: "n2".into(),
        room: 1,
        online: vec!["ann".into(), "bob".into(), "carl".into()],
        expected: vec!["ann".into(), "bob".into()],
    });
    let v = violations(&h);
    assert_eq!(v.len(), 1);
    assert!(v[0].to_string().contains("n2 lists"), "{}", v[0]);
}

fn seat_after(at_ms: Option<u64>, match_id: u32, seat: u32, mass: u32, fresh: bool) -> Op {
    Op::SeatAfter {
        player: "p1".into(),
        at_ms,
        match_id,
        seat,
        mass,
        fresh,
    }
}

#[test]
fn a_lost_seat_is_caught_in_each_of_its_forms() {
    for after in [
        seat_after(Some(1090), 7, 4, 40, false),
        seat_after(Some(1090), 8, 3, 40, false),
        seat_after(Some(1090), 7, 3, 40, true),
        seat_after(None, 0, 0, 0, false),
    ] {
        let mut h = without(correct(), |op| matches!(op, Op::SeatAfter { .. }));
        h.push(after.clone());
        let v = violations(&h);
        assert!(
            v.iter().any(|x| matches!(x, Violation::SeatLost { .. })),
            "{after:?} passed"
        );
    }
    let h = without(correct(), |op| matches!(op, Op::SeatAfter { .. }));
    assert!(matches!(&violations(&h)[..], [Violation::SeatLost { .. }]));
    // A bot that never got a seat cannot pass by having nothing to check.
    let mut h = correct();
    h.push(Op::Unseated { player: "p9".into() });
    assert!(matches!(&violations(&h)[..], [Violation::SeatLost { player, .. }] if player == "p9"));
    // A seat kept with a smaller mass (eaten while away) is kept.
    let mut h = without(correct(), |op| matches!(op, Op::SeatAfter { .. }));
    h.push(seat_after(Some(1090), 7, 3, 0, false));
    assert_eq!(violations(&h), vec![]);
}

#[test]
fn a_return_slower_than_promised_is_caught() {
    let mut h = without(correct(), |op| matches!(op, Op::SeatAfter { .. }));
    h.push(seat_after(Some(2500), 7, 3, 40, false));
    assert_eq!(
        violations(&h),
        vec![Violation::TooSlow {
            player: "p1".into(),
            pause_ms: 1500,
            limit_ms: 1000
        }]
    );
}
