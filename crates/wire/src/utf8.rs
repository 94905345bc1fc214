//! Incremental UTF-8 validation.
//!
//! A text message may arrive in many fragments, and a fragment in many reads.
//! RFC 6455 section 8.1 asks an endpoint to fail the connection as soon as the
//! text is known to be invalid, so the validator is fed every piece as it
//! arrives and carries an incomplete code point (at most 3 bytes) across
//! pieces. The bulk is validated with `simdutf8`.

/// The text seen so far contains an invalid sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Validates a stream of bytes piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate the next piece. Fails as soon as the bytes seen so far cannot
    /// be the prefix of valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Invalid> {
        if self.pending_len > 0 {
            let want = sequence_len(self.pending[0]).ok_or(Invalid)?;
            let take = (want - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            match simdutf8::compat::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Invalid),
                // Still a valid prefix; the piece ran out before the code point ended.
                Err(_) => return Ok(()),
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Invalid),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
        }
    }

    /// Whether the text ended on a code point boundary. Call at the end of the
    /// message.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

fn sequence_len(first: u8) -> Option<usize> {
    match first {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_split(data: &[u8], cuts: &[usize]) -> Result<(), Invalid> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &c in cuts {
            let c = c.min(data.len()).max(start);
            v.feed(&data[start..c])?;
            start = c;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    #[test]
    fn fails_on_first_invalid_prefix() {
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        // 0xF4 0x90 starts a code point above U+10FFFF: invalid before the end.
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Invalid));
    }

    #[test]
    fn code_point_split_across_pieces() {
        let s = "a€b".as_bytes();
        for i in 0..s.len() {
            for j in i..s.len() {
                assert_eq!(feed_split(s, &[i, j]), Ok(()));
            }
        }
    }

    #[test]
    fn truncated_text_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(Invalid));
    }

    proptest! {
        #[test]
        fn agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..5)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(feed_split(&data, &cuts).is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_strings_pass_any_split(s in "\\PC*", cuts in proptest::collection::vec(0usize..64, 0..5)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(feed_split(s.as_bytes(), &cuts), Ok(()));
        }
    }
}
