//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split anywhere: across frames, and across the reads that bring
//! one frame's payload. Validating each piece as it arrives lets a bad message fail on the
//! piece holding its first bad byte instead of after the whole message was buffered. The
//! bulk of each piece goes through `simdutf8`; only a code point cut at the end of a piece
//! (at most 3 bytes) is carried over to the next one.

use std::fmt;

/// Why a byte sequence is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Error {
    /// A byte that cannot occur at this position in any UTF-8 text.
    Invalid,
    /// The text ended in the middle of a code point.
    Incomplete,
}

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Utf8Error::Invalid => f.write_str("invalid UTF-8 sequence"),
            Utf8Error::Incomplete => f.write_str("UTF-8 text ends inside a code point"),
        }
    }
}

impl std::error::Error for Utf8Error {}

/// Validates a UTF-8 text fed in arbitrary pieces.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a code point cut at the end of the previous piece.
    pending: [u8; 4],
    pending_len: u8,
}

/// Bytes in the code point that `lead` starts (0 when `lead` cannot start one).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Where the code point that `bytes` ends inside starts, or `bytes.len()` when it does not
/// end inside one. Only the last 3 bytes are looked at: a longer cut sequence is invalid
/// anyway, and the validator of the body reports it.
fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let b = bytes[len - back];
        if b & 0xc0 != 0x80 {
            // Not a continuation byte: the lead of the last sequence (or ASCII, or invalid,
            // for which `sequence_len` is 1 or 0 and the body check decides).
            return if sequence_len(b) > back {
                len - back
            } else {
                len
            };
        }
    }
    len
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the text.
    ///
    /// # Errors
    /// [`Utf8Error::Invalid`] as soon as a piece holds a byte that no continuation could make
    /// valid. Once it failed, the validator must be [`reset`](Self::reset) before reuse.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let need = sequence_len(self.pending[0]);
            let take = need.saturating_sub(have).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            let mut joined = self.pending;
            joined[have..have + take].copy_from_slice(head);
            let joined_len = have + take;
            match simdutf8::compat::from_utf8(&joined[..joined_len]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix: `bytes` was too short to finish the code point.
                    self.pending = joined;
                    self.pending_len = joined_len as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error::Invalid),
            }
            bytes = rest;
        }
        // A code point cut by the end of the piece is held back, so the rest goes through the
        // fast, non-locating validator in one call even when the cut is mid-sequence.
        let (body, tail) = bytes.split_at(incomplete_tail_start(bytes));
        if simdutf8::basic::from_utf8(body).is_err() {
            return Err(Utf8Error::Invalid);
        }
        if !tail.is_empty() {
            // A lead byte and fewer continuation bytes than it announces: fail now if no
            // continuation could make it valid (a surrogate, or above U+10FFFF).
            match simdutf8::compat::from_utf8(tail) {
                Err(e) if e.error_len().is_none() => {}
                _ => return Err(Utf8Error::Invalid),
            }
            self.pending[..tail.len()].copy_from_slice(tail);
            self.pending_len = tail.len() as u8;
        }
        Ok(())
    }

    /// Ends the text.
    ///
    /// # Errors
    /// [`Utf8Error::Incomplete`] when the last piece stopped inside a code point.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            Err(Utf8Error::Incomplete)
        } else {
            Ok(())
        }
    }

    /// Forgets everything, ready for a new text.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(text: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            v.feed(&text[start..cut])?;
            start = cut;
        }
        v.feed(&text[start..])?;
        v.finish()
    }

    #[test]
    fn code_point_split_across_pieces_is_valid() {
        let text = "a€𝄞b".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(feed_split(text, &[a, b]), Ok(()), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_is_valid() {
        let text = "κόσμε 𝄞 €".as_bytes();
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(feed_split(text, &cuts), Ok(()));
    }

    #[test]
    fn invalid_byte_fails_in_the_piece_that_holds_it() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"hello"), Ok(()));
        assert_eq!(v.feed(&[b'x', 0xff]), Err(Utf8Error::Invalid));
    }

    #[test]
    fn impossible_prefix_fails_before_the_code_point_ends() {
        // 0xF4 0x90 would encode a code point above U+10FFFF: no continuation can fix it.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xce, 0xba, 0xf4, 0x90]), Err(Utf8Error::Invalid));
        // The same, split so that the bad second byte arrives in the next piece.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error::Invalid));
    }

    #[test]
    fn surrogates_are_invalid() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xed, 0xa0, 0x80]), Err(Utf8Error::Invalid));
    }

    #[test]
    fn truncated_text_fails_at_finish() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xe2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(Utf8Error::Incomplete));
        v.reset();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn agrees_with_std_on_every_two_byte_sequence() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let bytes = [a, b];
                let whole = std::str::from_utf8(&bytes).is_ok();
                assert_eq!(feed_split(&bytes, &[1]).is_ok(), whole, "{a:x} {b:x}");
            }
        }
    }

    #[test]
    fn agrees_with_std_on_three_and_four_byte_sequences_at_every_split() {
        let interesting = [
            0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
            0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff,
        ];
        for &a in &interesting {
            for &b in &interesting {
                for &c in &interesting {
                    for d in [None, Some(0x80), Some(0xbf), Some(0x41)] {
                        let mut bytes = vec![b'x', a, b, c];
                        bytes.extend(d);
                        let whole = std::str::from_utf8(&bytes).is_ok();
                        for cut in 0..=bytes.len() {
                            let ours = feed_split(&bytes, &[cut]).is_ok();
                            assert_eq!(ours, whole, "{bytes:x?} cut at {cut}");
                        }
                    }
                }
            }
        }
    }
}
