//! QPACK's prefixed integers and string literals (RFC 9204, section 4.1,
//! which takes them from HPACK, RFC 7541, sections 5.1 and 5.2).

use crate::Error;

/// Read an integer whose first byte keeps its low `prefix` bits for it;
/// returns the value and the bytes it took.
pub(crate) fn decode(buf: &[u8], prefix: u8) -> Result<(u64, usize), Error> {
    let truncated = || Error::Qpack("truncated integer".into());
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = *buf.first().ok_or_else(truncated)?;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (i, &byte) in buf[1..].iter().enumerate() {
        if shift > 56 {
            return Err(Error::Qpack("integer too large".into()));
        }
        value = value
            .checked_add(u64::from(byte & 0x7f) << shift)
            .ok_or_else(|| Error::Qpack("integer too large".into()))?;
        if byte & 0x80 == 0 {
            return Ok((value, i + 2));
        }
        shift += 7;
    }
    Err(truncated())
}

/// Append `value` with `flags` in the first byte's bits above the prefix.
pub(crate) fn encode(value: u64, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let mask = ((1u16 << prefix) - 1) as u8;
    if value < u64::from(mask) {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask);
    let mut rest = value - u64::from(mask);
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Read a string literal whose length has a `prefix`-bit integer, with the
/// Huffman flag in the bit just above it. Returns the string and the bytes
/// it took; `limit` bounds the decoded length.
pub(crate) fn decode_string(buf: &[u8], prefix: u8, limit: usize) -> Result<(Vec<u8>, usize), Error> {
    let huffman = buf.first().is_some_and(|b| b & (1 << prefix) != 0);
    let (len, n) = decode(buf, prefix)?;
    let len = usize::try_from(len).map_err(|_| Error::Qpack("string length too large".into()))?;
    let end = n.checked_add(len).filter(|end| *end <= buf.len());
    let Some(end) = end else {
        return Err(Error::Qpack("truncated string".into()));
    };
    let raw = &buf[n..end];
    // The caller's buffer is a whole field section already capped in size,
    // and Huffman codes are at least 5 bits: decoding is bounded by 8/5 of
    // it, so the real length is what is checked against the limit.
    let text = if huffman {
        let mut out = Vec::with_capacity(raw.len() * 8 / 5 + 1);
        httlib_huffman::decode(raw, &mut out, httlib_huffman::DecoderSpeed::FourBits)
            .map_err(|_| Error::Qpack("bad Huffman string".into()))?;
        out
    } else {
        raw.to_vec()
    };
    if text.len() > limit {
        return Err(Error::HeadersTooLarge {
            size: text.len(),
            limit,
        });
    }
    Ok((text, end))
}

/// Append a string literal: Huffman-coded when that is shorter.
pub(crate) fn encode_string(text: &[u8], prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let mut coded = Vec::new();
    if httlib_huffman::encode(text, &mut coded).is_ok() && coded.len() < text.len() {
        encode(coded.len() as u64, prefix, flags | (1 << prefix), out);
        out.extend_from_slice(&coded);
    } else {
        encode(text.len() as u64, prefix, flags, out);
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7541_integer_examples() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix.
        assert_eq!(decode(&[0x0a], 5).unwrap(), (10, 1));
        assert_eq!(decode(&[0x1f, 0x9a, 0x0a], 5).unwrap(), (1337, 3));
        let mut out = Vec::new();
        encode(1337, 5, 0, &mut out);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        assert!(decode(&[0x1f, 0x9a], 5).is_err());
        assert!(decode(&[0xff; 20], 8).is_err(), "overflow is an error, not a wrap");
    }

    #[test]
    fn rfc_7541_huffman_example() {
        // C.4.1: "www.example.com", Huffman-coded.
        let coded = [
            0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let (text, n) = decode_string(&coded, 7, 1024).unwrap();
        assert_eq!(text, b"www.example.com");
        assert_eq!(n, coded.len());
        let mut out = Vec::new();
        encode_string(b"www.example.com", 7, 0, &mut out);
        assert_eq!(out, coded);
    }

    proptest::proptest! {
        #[test]
        fn integers_round_trip(value in 0u64..(1 << 62), prefix in 1u8..=8) {
            let mut out = Vec::new();
            encode(value, prefix, 0, &mut out);
            proptest::prop_assert_eq!(decode(&out, prefix).unwrap(), (value, out.len()));
        }

        #[test]
        fn strings_round_trip(text in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut out = Vec::new();
            encode_string(&text, 7, 0, &mut out);
            proptest::prop_assert_eq!(decode_string(&out, 7, 1024).unwrap(), (text, out.len()));
        }
    }
}
