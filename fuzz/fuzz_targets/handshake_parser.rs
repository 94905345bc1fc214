//! Arbitrary bytes as an HTTP upgrade request and as a server's answer.
//! Properties: no panic; a parsed request either validates or yields an error
//! with a 4xx status, and the rejection response is well-formed HTTP.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_wire::handshake::{parse_request, parse_response, reject_response, validate_request, verify_response};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Some((request, len))) => {
            assert!(len <= data.len());
            if let Err(e) = validate_request(&request) {
                let status = e.status();
                assert!((400..500).contains(&status));
                let resp = reject_response(&e);
                assert!(matches!(parse_response(&resp), Ok(Some(_))));
            }
        }
        Ok(None) => {}
        Err(e) => {
            let resp = reject_response(&e);
            assert!(matches!(parse_response(&resp), Ok(Some(_))));
        }
    }
    if let Ok(Some((response, _))) = parse_response(data) {
        let _ = verify_response(
            &response,
            "dGhlIHNhbXBsZSBub25jZQ==",
            &["chat".to_owned()],
            Some(&Default::default()),
        );
    }
});
