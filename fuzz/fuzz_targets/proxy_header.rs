//! Arbitrary bytes (behind the v2 signature half the time) as a PROXY
//! protocol v2 header. Properties: no panic; a parsed header never claims
//! more bytes than it was given; a header we encode parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_net::proxy_protocol::{encode, parse, Header, SIGNATURE};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::new();
    if seed & 1 == 1 {
        input.extend_from_slice(&SIGNATURE);
    }
    input.extend_from_slice(rest);
    if let Ok(Some((_, used))) = parse(&input) {
        assert!(used <= input.len());
    }
    if rest.len() >= 12 {
        let v4 = |b: &[u8]| std::net::SocketAddr::from(([b[0], b[1], b[2], b[3]], u16::from_be_bytes([b[4], b[5]])));
        let (source, destination) = (v4(&rest[..6]), v4(&rest[6..12]));
        let bytes = encode(source, destination);
        assert_eq!(parse(&bytes), Ok(Some((Header::Proxied { source, destination }, bytes.len()))));
    }
});
