//! Arbitrary bytes as a QPACK field section (static table and literals,
//! Huffman or not), then as a request and a response head.
//! Properties: no panic; the decoded fields never exceed the size limit
//! (names, values and 32 bytes per field); whatever decodes re-encodes and
//! decodes to the same fields.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_h3::qpack;

const LIMIT: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = qpack::decode(data, LIMIT) else {
        return;
    };
    let size: usize = fields
        .iter()
        .map(|f| f.name.len() + f.value.len() + qpack::FIELD_OVERHEAD)
        .sum();
    assert!(size <= LIMIT);
    let again = qpack::encode(fields.iter().map(|f| (f.name.as_slice(), f.value.as_slice())));
    assert_eq!(qpack::decode(&again, LIMIT).as_ref(), Ok(&fields));
    let _ = volley_h3::head::request_from_fields(&fields);
    let _ = volley_h3::head::response_from_fields(&fields);
});
