//! Arbitrary bytes, split at arbitrary points, into the HTTP/3 frame
//! decoder (as a request stream and as a control stream would feed it).
//! Properties: no panic; DATA comes out in order and never exceeds what
//! was fed; a non-DATA frame never exceeds the payload limit; after an
//! error the caller stops (the decoder is not polled again).

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_h3::frame::{Frame, FrameDecoder};

const LIMIT: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, data)) = data.split_first() else {
        return;
    };
    let step = (split_seed as usize % 64) + 1;
    let mut decoder = FrameDecoder::new(LIMIT);
    let mut data_bytes = 0usize;
    'feed: for chunk in data.chunks(step) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(Frame::Data(d))) => data_bytes += d.len(),
                Ok(Some(Frame::Headers(block))) => {
                    assert!(block.len() <= LIMIT);
                    // Whatever arrives as a field section goes to QPACK too.
                    if let Ok(fields) = volley_h3::qpack::decode(&block, 4096) {
                        let _ = volley_h3::head::request_from_fields(&fields);
                        let _ = volley_h3::head::response_from_fields(&fields);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(data_bytes <= data.len());
        assert!(decoder.buffered() <= data.len());
    }
});
