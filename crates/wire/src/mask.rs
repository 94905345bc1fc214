//! Masking (RFC 6455 section 5.3).
//!
//! Every client-to-server payload byte is XORed with a 4-byte key. This runs on
//! every byte a server receives, so it works on 8 bytes at a time; the compiler
//! turns the loop into SIMD where the target allows.

/// XOR `buf` with `key`, where `buf` starts `offset` bytes into the payload.
///
/// The offset lets a payload be unmasked in pieces as it arrives.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut wide = [0u8; 8];
    for (i, b) in wide.iter_mut().enumerate() {
        *b = key[(offset + i) & 3];
    }
    let word = u64::from_ne_bytes(wide);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // A whole number of 8-byte chunks keeps the key phase, so the tail starts
    // at `wide[0]` again.
    for (b, k) in chunks.into_remainder().iter_mut().zip(wide) {
        *b ^= k;
    }
}

/// The obvious byte-by-byte version, kept as the reference the fast path is
/// tested against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_known_vector() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn fast_path_matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..300), key: [u8; 4], offset in 0usize..16, split in 0usize..300) {
            let mut fast = data.clone();
            let split = split.min(fast.len());
            let (a, b) = fast.split_at_mut(split);
            apply_mask(a, key, offset);
            apply_mask(b, key, offset + split);
            let mut slow = data.clone();
            apply_mask_bytewise(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }
    }
}
