//! permessage-deflate through the state machine, no sockets.

use bytes::BufMut;
use proptest::prelude::*;
use volley_wire::deflate::{accept_response, client_offer, negotiate};
use volley_wire::{
    CloseCode, Config, Connection, DeflateConfig, DeflateParams, Error, Event, Message, PreparedMessage, Role,
};

fn pair(server_cfg: &DeflateConfig, client_cfg: &DeflateConfig, limits: Config) -> (Connection, Connection) {
    let offer = client_offer(client_cfg);
    let (params, answer) = negotiate([offer.as_str()].into_iter(), server_cfg).expect("offer accepted");
    let client_params = accept_response([answer.as_str()].into_iter(), Some(client_cfg))
        .unwrap()
        .unwrap();
    assert_eq!(params, client_params);
    let mut server = Connection::new(Role::Server, limits);
    server.enable_deflate(params, server_cfg);
    let mut client = Connection::new(Role::Client, limits);
    client.enable_deflate(client_params, client_cfg);
    (server, client)
}

fn pump(from: &mut Connection, to: &mut Connection) -> Vec<Result<Event, Error>> {
    let bytes = from.write_buf().split();
    to.read_buf().extend_from_slice(&bytes);
    let mut out = Vec::new();
    loop {
        match to.poll_event() {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

fn queued_close_code(conn: &mut Connection) -> Option<u16> {
    let out = conn.write_buf().split();
    let i = out.iter().position(|&b| b == 0x88)?;
    Some(u16::from_be_bytes([out[i + 2], out[i + 3]]))
}

#[test]
fn compressed_messages_both_ways_with_every_parameter_combination() {
    for snct in [false, true] {
        for cnct in [false, true] {
            for bits in [9u8, 11, 15] {
                let cfg = DeflateConfig {
                    server_no_context_takeover: snct,
                    client_no_context_takeover: cnct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                    ..DeflateConfig::default()
                };
                let (mut s, mut c) = pair(&cfg, &cfg, Config::default());
                for i in 0..4 {
                    let text = Message::from(format!("{i}: {}", "the quick brown fox ".repeat(50 * i + 3)));
                    c.send(&text).unwrap();
                    // The frame on the wire is compressed (RSV1) and smaller.
                    assert_eq!(c.write_buf()[0] & 0x40, 0x40);
                    assert!(c.write_buf().len() < text.len());
                    assert_eq!(pump(&mut c, &mut s), vec![Ok(Event::Message(text.clone()))]);
                    s.send(&text).unwrap();
                    assert_eq!(pump(&mut s, &mut c), vec![Ok(Event::Message(text))]);
                }
            }
        }
    }
}

#[test]
fn small_messages_skip_compression() {
    let cfg = DeflateConfig::default();
    let (mut s, mut c) = pair(&cfg, &cfg, Config::default());
    s.send(&Message::from("hi")).unwrap();
    assert_eq!(s.write_buf()[0], 0x81, "no RSV1 below the threshold");
    assert_eq!(pump(&mut s, &mut c), vec![Ok(Event::Message(Message::from("hi")))]);
}

#[test]
fn fragmented_compressed_message_with_rsv1_only_on_the_first_frame() {
    let cfg = DeflateConfig::default();
    let (mut s, mut c) = pair(&cfg, &cfg, Config::default());
    let text = "fragmented and compressed ".repeat(100);
    // Compress with the client, then re-frame its payload as three fragments.
    c.send(&Message::from(text.as_str())).unwrap();
    let wire = c.write_buf().split();
    let (header, header_len) = volley_wire::FrameHeader::parse(&wire).unwrap().unwrap();
    let mut payload = wire[header_len..].to_vec();
    volley_wire::mask::apply_mask(&mut payload, header.mask.unwrap(), 0);
    let third = payload.len() / 3;
    let parts = [&payload[..third], &payload[third..2 * third], &payload[2 * third..]];
    let mut stream = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let b0 = match i {
            0 => 0x41, // text, RSV1, not fin
            2 => 0x80, // continuation, fin
            _ => 0x00, // continuation
        };
        stream.extend(masked_frame(b0, part));
    }
    s.read_buf().extend_from_slice(&stream);
    assert_eq!(s.poll_event(), Ok(Some(Event::Message(Message::from(text.as_str())))));

    // RSV1 on a continuation frame is a protocol error.
    let (mut s, _) = pair(&cfg, &cfg, Config::default());
    let mut bad = masked_frame(0x41, parts[0]);
    bad.extend(masked_frame(0xC0, parts[1]));
    s.read_buf().extend_from_slice(&bad);
    assert_eq!(s.poll_event(), Err(Error::ReservedBits));
    assert_eq!(queued_close_code(&mut s), Some(1002));
}

fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut out = bytes::BytesMut::new();
    out.put_u8(b0);
    match payload.len() {
        n @ 0..=125 => out.put_u8(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.put_u8(0x80 | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(0x80 | 127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out.to_vec()
}

#[test]
fn rsv1_without_negotiation_is_refused() {
    let mut s = Connection::new(Role::Server, Config::default());
    s.read_buf()
        .extend_from_slice(&masked_frame(0xC1, b"\xf2\x48\xcd\xc9\xc9\x07\x00"));
    assert_eq!(s.poll_event(), Err(Error::ReservedBits));
    assert_eq!(queued_close_code(&mut s), Some(1002));
}

#[test]
fn corrupt_deflate_closes_with_1007() {
    let cfg = DeflateConfig::default();
    let (mut s, _) = pair(&cfg, &cfg, Config::default());
    s.read_buf().extend_from_slice(&masked_frame(0xC2, &[0xff; 40]));
    assert_eq!(s.poll_event(), Err(Error::BadDeflate));
    assert_eq!(queued_close_code(&mut s), Some(1007));
}

#[test]
fn invalid_utf8_inside_compressed_text_closes_with_1007() {
    let cfg = DeflateConfig::default();
    let (mut s, mut c) = pair(&cfg, &cfg, Config::default());
    // Compress invalid UTF-8 by sending it as binary, then flip the opcode to text.
    c.send(&Message::from(vec![0xC0u8; 100])).unwrap();
    let mut wire = c.write_buf().split();
    wire[0] = (wire[0] & 0xF0) | 0x1;
    s.read_buf().extend_from_slice(&wire);
    assert_eq!(s.poll_event(), Err(Error::InvalidUtf8));
}

#[test]
fn decompression_bomb_stops_at_the_message_limit() {
    // 1 GiB of zeros, compressed in 1 MiB steps, sent as 64 KiB fragments.
    let limit = 4 << 20;
    let cfg = DeflateConfig::default();
    let (mut s, _) = pair(
        &cfg,
        &cfg,
        Config {
            max_frame_size: 1 << 20,
            max_message_size: limit,
        },
    );
    let mut compressor = flate2::Compress::new_with_window_bits(flate2::Compression::best(), false, 15);
    let zeros = vec![0u8; 1 << 20];
    let mut compressed = Vec::with_capacity(2 << 20);
    for _ in 0..1024 {
        compressed.reserve(64 << 10);
        compressor
            .compress_vec(&zeros, &mut compressed, flate2::FlushCompress::None)
            .unwrap();
    }
    assert!(compressed.len() < 2 << 20, "{}", compressed.len());
    let mut first = true;
    let mut result = Ok(None);
    for chunk in compressed.chunks(64 << 10) {
        let b0 = if first { 0x42 } else { 0x00 };
        first = false;
        s.read_buf().extend_from_slice(&masked_frame(b0, chunk));
        result = s.poll_event();
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(Error::MessageTooBig { .. })), "{result:?}");
    assert_eq!(queued_close_code(&mut s), Some(CloseCode::MESSAGE_TOO_BIG.0));
}

#[test]
fn prepared_message_shares_one_compressed_frame() {
    let cfg = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let msg = Message::from("shared payload ".repeat(40));
    let prepared = PreparedMessage::new(msg.clone());
    let mut frames = Vec::new();
    for _ in 0..3 {
        let (mut s, mut c) = pair(&cfg, &DeflateConfig::default(), Config::default());
        s.send_prepared(&prepared).unwrap();
        frames.push(s.write_buf().clone());
        assert_eq!(pump(&mut s, &mut c), vec![Ok(Event::Message(msg.clone()))]);
    }
    assert_eq!(frames[0][0] & 0x40, 0x40, "compressed");
    assert!(frames.windows(2).all(|w| w[0] == w[1]));
    // The bytes are the prepared frame itself, built once.
    assert_eq!(&frames[0][..], &prepared.compressed_frame(15, 6)[..]);
    // With context takeover the connection compresses for itself, still correctly.
    let (mut s, mut c) = pair(&DeflateConfig::default(), &DeflateConfig::default(), Config::default());
    for _ in 0..2 {
        s.send_prepared(&prepared).unwrap();
        assert_eq!(pump(&mut s, &mut c), vec![Ok(Event::Message(msg.clone()))]);
    }
}

fn params_strategy() -> impl Strategy<Value = DeflateParams> {
    (any::<bool>(), any::<bool>(), 9u8..=15, 9u8..=15).prop_map(|(a, b, c, d)| DeflateParams {
        server_no_context_takeover: a,
        client_no_context_takeover: b,
        server_max_window_bits: c,
        client_max_window_bits: d,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn compressed_round_trip_under_any_chunking(
        params in params_strategy(),
        messages in proptest::collection::vec(
            prop_oneof![
                "[a-c ]{0,3000}".prop_map(Message::from),
                proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::from),
            ],
            1..6,
        ),
        chunk in 1usize..700,
    ) {
        let cfg = DeflateConfig { threshold: 0, ..DeflateConfig::default() };
        let mut s = Connection::new(Role::Server, Config::default());
        s.enable_deflate(params, &cfg);
        let mut c = Connection::new(Role::Client, Config::default());
        c.enable_deflate(params, &cfg);
        for m in &messages {
            c.send(m).unwrap();
        }
        let stream = c.write_buf().split();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            s.read_buf().extend_from_slice(piece);
            while let Some(e) = s.poll_event().unwrap() {
                if let Event::Message(m) = e { got.push(m) }
            }
        }
        prop_assert_eq!(got, messages);
    }
}
