//! QUIC variable-length integers (RFC 9000, section 16): the two high bits
//! of the first byte give the length (1, 2, 4 or 8 bytes), the rest is the
//! value, big-endian. HTTP/3 frames and stream types are written with them.

/// The largest value a varint holds (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Decode one varint from the front of `buf`: the value and the bytes it
/// took, or `None` when `buf` does not hold the whole integer yet.
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut value = u64::from(first & 0x3f);
    for &byte in &buf[1..len] {
        value = (value << 8) | u64::from(byte);
    }
    Some((value, len))
}

/// How many bytes `value` takes (values above [`MAX`] are clamped to it).
pub fn size(value: u64) -> usize {
    match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Append `value` in its shortest form (values above [`MAX`] are clamped).
pub fn encode(value: u64, out: &mut Vec<u8>) {
    let value = value.min(MAX);
    match size(value) {
        1 => out.push(value as u8),
        2 => out.extend_from_slice(&((value as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((value as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_9000_examples() {
        // RFC 9000, appendix A.1.
        assert_eq!(
            decode(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
            Some((151_288_809_941_952_652, 8))
        );
        assert_eq!(decode(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494_878_333, 4)));
        assert_eq!(decode(&[0x7b, 0xbd]), Some((15_293, 2)));
        assert_eq!(decode(&[0x25]), Some((37, 1)));
        assert_eq!(decode(&[0x40, 0x25]), Some((37, 2)));
        assert_eq!(decode(&[0x7b]), None);
        assert_eq!(decode(&[]), None);
    }

    proptest::proptest! {
        #[test]
        fn round_trip(value in 0..=MAX) {
            let mut out = Vec::new();
            encode(value, &mut out);
            proptest::prop_assert_eq!(out.len(), size(value));
            proptest::prop_assert_eq!(decode(&out), Some((value, out.len())));
        }
    }
}
