//! Arbitrary bytes, split at arbitrary points, into both roles' decoders,
//! with permessage-deflate on or off (chosen by the first byte).
//! Properties: no panic; the read buffer never grows past what was fed plus
//! one read reservation; an error happens at most once and leaves a close frame
//! queued; every text message is valid UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_wire::{Config, Connection, DeflateConfig, DeflateParams, Event, Message, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, data)) = data.split_first() else {
        return;
    };
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 8192,
    };
    for role in [Role::Server, Role::Client] {
        let mut conn = Connection::new(role, config);
        if split_seed & 0x80 != 0 {
            let params = DeflateParams {
                server_no_context_takeover: split_seed & 0x40 != 0,
                client_no_context_takeover: split_seed & 0x40 == 0,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            };
            conn.enable_deflate(params, &DeflateConfig::default());
        }
        let step = (split_seed as usize % 32) + 1;
        let mut failed = false;
        for chunk in data.chunks(step) {
            conn.read_buf().extend_from_slice(chunk);
            loop {
                match conn.poll_event() {
                    Ok(Some(Event::Message(Message::Text(t)))) => assert!(std::str::from_utf8(t.as_bytes()).is_ok()),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        assert!(!failed, "an error is reported once");
                        failed = true;
                        assert!(conn.close_sent());
                        break;
                    }
                }
            }
            assert!(conn.read_buf().len() <= data.len());
        }
    }
});
