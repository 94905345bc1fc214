//! The state machine driven with bytes, no sockets.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use volley_wire::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, FrameHeader, Message, OpCode, PreparedMessage, Role,
};

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

/// A client frame built byte by byte, so tests can break every rule.
fn raw_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(b0);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.put_u8(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
    let start = out.len();
    out.put_slice(payload);
    if let Some(key) = mask {
        volley_wire::mask::apply_mask(&mut out[start..], key, 0);
    }
    out.to_vec()
}

fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, payload, Some([0x11, 0x22, 0x33, 0x44]))
}

fn feed(conn: &mut Connection, bytes: &[u8]) -> Vec<Result<Event, Error>> {
    conn.read_buf().extend_from_slice(bytes);
    let mut out = Vec::new();
    loop {
        match conn.poll_event() {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// The close frame the server queued, decoded.
fn queued_close(conn: &mut Connection) -> Option<CloseCode> {
    let buf = conn.write_buf().split().freeze();
    let mut client = Connection::new(Role::Client, Config::default());
    client.read_buf().extend_from_slice(&buf);
    while let Ok(Some(event)) = client.poll_event() {
        if let Event::Close(frame) = event {
            return frame.map(|f| f.code);
        }
    }
    None
}

#[test]
fn rfc_example_masked_hello() {
    let mut s = server();
    let events = feed(
        &mut s,
        &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    );
    assert_eq!(events, vec![Ok(Event::Message(Message::from("Hello")))]);
}

#[test]
fn unfragmented_message_is_not_copied() {
    let mut s = server();
    let frame = masked(0x82, &[7u8; 1000]);
    s.read_buf().reserve(4096);
    s.read_buf().extend_from_slice(&frame);
    let base = s.read_buf().as_ptr() as usize;
    let Ok(Some(Event::Message(Message::Binary(b)))) = s.poll_event() else {
        panic!("expected a binary message");
    };
    assert_eq!(
        b.as_ptr() as usize,
        base + frame.len() - 1000,
        "payload must point into the read buffer"
    );
}

#[test]
fn fragments_with_interleaved_ping() {
    let mut s = server();
    let mut bytes = masked(0x01, b"Hel");
    bytes.extend(masked(0x89, b"are you there"));
    bytes.extend(masked(0x00, b"lo "));
    bytes.extend(masked(0x80, "wörld".as_bytes()));
    let events = feed(&mut s, &bytes);
    assert_eq!(
        events,
        vec![
            Ok(Event::Ping(Bytes::from_static(b"are you there"))),
            Ok(Event::Message(Message::from("Hello wörld")))
        ]
    );
    // The pong went out with the ping's payload.
    let out = s.write_buf().split();
    assert_eq!(&out[..2], &[0x8A, 13]);
    assert_eq!(&out[2..], b"are you there");
}

#[test]
fn protocol_errors_close_with_the_named_code() {
    let cases: Vec<(Vec<u8>, CloseCode)> = vec![
        (raw_frame(0x81, b"unmasked", None), CloseCode::PROTOCOL_ERROR),
        (masked(0xC1, b"rsv1"), CloseCode::PROTOCOL_ERROR),
        (masked(0x83, b"reserved op"), CloseCode::PROTOCOL_ERROR),
        (masked(0x80, b"lonely continuation"), CloseCode::PROTOCOL_ERROR),
        (masked(0x89, &[0u8; 126]), CloseCode::PROTOCOL_ERROR),
        (masked(0x09, b"fragmented ping"), CloseCode::PROTOCOL_ERROR),
        (masked(0x81, &[0xff, 0xfe]), CloseCode::INVALID_PAYLOAD),
        (masked(0x88, &[0x03]), CloseCode::PROTOCOL_ERROR),
        (masked(0x88, &[0x03, 0xED]), CloseCode::PROTOCOL_ERROR), // 1005
        (masked(0x88, &[0x03, 0xE8, 0xC0]), CloseCode::INVALID_PAYLOAD),
        (
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            CloseCode::PROTOCOL_ERROR,
        ),
    ];
    for (bytes, code) in cases {
        let mut s = server();
        let events = feed(&mut s, &bytes);
        assert!(matches!(events.last(), Some(Err(_))), "{bytes:02x?} gave {events:?}");
        assert_eq!(queued_close(&mut s), Some(code), "{bytes:02x?}");
        // Nothing more is accepted after failing.
        assert!(feed(&mut s, &masked(0x81, b"more")).is_empty());
    }
}

#[test]
fn huge_announced_length_allocates_nothing() {
    let mut s = server();
    // 2^62 bytes announced, masked.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let events = feed(&mut s, &header);
    assert!(matches!(events[..], [Err(Error::FrameTooBig { .. })]));
    assert!(s.read_buf().capacity() < 1024, "capacity {}", s.read_buf().capacity());
    assert_eq!(queued_close(&mut s), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn message_limit_applies_across_fragments() {
    let mut s = Connection::new(
        Role::Server,
        Config {
            max_frame_size: 100,
            max_message_size: 150,
        },
    );
    let mut bytes = masked(0x02, &[0; 100]);
    bytes.extend(masked(0x80, &[0; 51]));
    let events = feed(&mut s, &bytes);
    assert!(matches!(events[..], [Err(Error::MessageTooBig { size: 151, .. })]));
    assert_eq!(queued_close(&mut s), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    let mut s = server();
    let frame = masked(0x81, &[b'a', b'b', 0xF4, 0x90, 0x80, 0x80, b'c', b'd']);
    // Header (6 bytes) plus the first four payload bytes: F4 90 is already invalid.
    let events = feed(&mut s, &frame[..10]);
    assert!(matches!(events[..], [Err(Error::InvalidUtf8)]), "{events:?}");
    assert_eq!(queued_close(&mut s), Some(CloseCode::INVALID_PAYLOAD));
}

#[test]
fn invalid_utf8_fails_mid_fragment() {
    let mut s = server();
    let mut bytes = masked(0x01, "κό".as_bytes());
    let second = masked(0x00, &[0xCE, 0xFF, b'x']);
    bytes.extend_from_slice(&second[..second.len() - 1]);
    let events = feed(&mut s, &bytes);
    assert!(matches!(events[..], [Err(Error::InvalidUtf8)]), "{events:?}");
}

#[test]
fn close_handshake_echoes_the_code() {
    let mut s = server();
    let events = feed(&mut s, &masked(0x88, &[0x0B, 0xB8, b'b', b'y', b'e']));
    assert_eq!(
        events,
        vec![Ok(Event::Close(Some(CloseFrame::new(CloseCode(3000), "bye"))))]
    );
    assert!(s.close_sent() && s.close_received() && s.is_done());
    assert_eq!(queued_close(&mut s), Some(CloseCode(3000)));
    assert_eq!(s.send(&Message::from("late")), Err(Error::SendAfterClose));
}

#[test]
fn empty_close_is_echoed_empty() {
    let mut s = server();
    let events = feed(&mut s, &masked(0x88, &[]));
    assert_eq!(events, vec![Ok(Event::Close(None))]);
    assert_eq!(&s.write_buf()[..], &[0x88, 0x00]);
}

#[test]
fn our_close_then_theirs() {
    let mut s = server();
    s.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "shutdown")))
        .unwrap();
    assert!(s.close_sent() && !s.is_done());
    // Data after our close is discarded; their close completes the handshake.
    let mut bytes = masked(0x81, b"ignored");
    bytes.extend(masked(0x88, &[0x03, 0xE9]));
    let events = feed(&mut s, &bytes);
    assert_eq!(
        events,
        vec![Ok(Event::Close(Some(CloseFrame::new(CloseCode::GOING_AWAY, ""))))]
    );
    assert!(s.is_done());
    assert_eq!(
        s.close(Some(CloseFrame::new(CloseCode(1005), ""))),
        Err(Error::InvalidCloseCode(1005))
    );
}

#[test]
fn client_masks_with_fresh_keys_and_server_rejects_masked_frames_from_servers() {
    let mut c = Connection::new(Role::Client, Config::default());
    c.send(&Message::from("same")).unwrap();
    c.send(&Message::from("same")).unwrap();
    let out = c.write_buf().split();
    let (h1, l1) = FrameHeader::parse(&out).unwrap().unwrap();
    let (h2, _) = FrameHeader::parse(&out[l1 + 4..]).unwrap().unwrap();
    assert!(h1.mask.is_some() && h2.mask.is_some());
    assert_ne!(h1.mask, h2.mask);
    // A client refuses a masked frame from a server.
    let mut c = Connection::new(Role::Client, Config::default());
    let events = feed(&mut c, &masked(0x81, b"x"));
    assert!(matches!(events[..], [Err(Error::BadMasking)]));
}

#[test]
fn prepared_frames_equal_normal_server_frames() {
    let msg = Message::from("fan out");
    let prepared = PreparedMessage::new(msg.clone());
    let mut s = server();
    s.send(&msg).unwrap();
    assert_eq!(&s.write_buf()[..], &prepared.plain_frame()[..]);
    let mut s = server();
    s.send_prepared(&prepared).unwrap();
    assert_eq!(&s.write_buf()[..], &prepared.plain_frame()[..]);
}

fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,200}".prop_map(Message::from),
        proptest::collection::vec(any::<u8>(), 0..70_000).prop_map(Message::from),
    ]
}

/// Encode messages as a client would, each cut into fragments at `cuts`.
fn encode_fragmented(messages: &[Message], cuts: &[usize]) -> Vec<u8> {
    let mut c = Connection::new(Role::Client, Config::default());
    for (i, m) in messages.iter().enumerate() {
        let bytes = m.as_bytes();
        let cut = cuts.get(i).copied().unwrap_or(0).min(bytes.len());
        let first = if matches!(m, Message::Text(_)) {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        if cut == 0 {
            c.send(m).unwrap();
        } else {
            c.send_frame(first, false, &bytes[..cut]).unwrap();
            c.ping(b"p").unwrap();
            c.send_frame(OpCode::Continuation, true, &bytes[cut..]).unwrap();
        }
    }
    c.write_buf().split().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_decode_round_trips_under_any_chunking(
        messages in proptest::collection::vec(message_strategy(), 1..6),
        cuts in proptest::collection::vec(0usize..300, 6),
        chunk_sizes in proptest::collection::vec(1usize..5000, 1..20),
    ) {
        let stream = encode_fragmented(&messages, &cuts);
        let mut s = server();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = chunk_sizes[i % chunk_sizes.len()].min(stream.len() - pos);
            i += 1;
            for e in feed(&mut s, &stream[pos..pos + n]) {
                match e {
                    Ok(Event::Message(m)) => got.push(m),
                    Ok(Event::Ping(p)) => prop_assert_eq!(&p[..], b"p"),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            pos += n;
        }
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut s = server();
        let _ = feed(&mut s, &data);
        let mut c = Connection::new(Role::Client, Config::default());
        let _ = feed(&mut c, &data);
    }
}

#[test]
fn large_server_payloads_are_written_without_a_copy_and_in_order() {
    let mut s = server();
    let big = bytes::Bytes::from(vec![7u8; 10_000]);
    s.send(&Message::from("before")).unwrap();
    s.send(&Message::Binary(big.clone())).unwrap();
    s.ping(b"after").unwrap();
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let n = s.output(&mut slices);
    assert_eq!(n, 3, "staged header, shared payload, staged tail");
    assert_eq!(
        slices[1].as_ptr(),
        big.as_ptr(),
        "the payload is the message's own bytes"
    );
    let expected_len = s.write_len();
    // Written out piecewise, the bytes decode to the same three events.
    let mut wire = Vec::new();
    while s.write_len() > 0 {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let n = s.output(&mut slices);
        let first: &[u8] = &slices[..n][0];
        let take = first.len().min(777);
        wire.extend_from_slice(&first[..take]);
        s.advance_output(take);
    }
    assert_eq!(wire.len(), expected_len);
    let mut c = Connection::new(Role::Client, Config::default());
    let events = feed(&mut c, &wire);
    assert_eq!(
        events,
        vec![
            Ok(Event::Message(Message::from("before"))),
            Ok(Event::Message(Message::Binary(big))),
            Ok(Event::Ping(Bytes::from_static(b"after"))),
        ]
    );
}
