//! Message buffers, and the one place where received bytes become a `String` without a
//! second UTF-8 pass.
//!
//! A text message is validated as its bytes arrive (so a bad byte fails the connection at
//! once, even inside a frame whose end has not come). Running `String::from_utf8` over the
//! whole message afterwards would validate it a second time, with std's scalar validator:
//! that second pass cost more than the copy and the first pass together (8.7 instructions
//! per byte on mixed text, against 0.3 for copy + unmask + SIMD validation). The types here
//! keep the bytes and the validator that saw them together, so the conversion can rely on
//! the first pass.

#[cfg(feature = "in-place")]
use crate::mask::apply_mask_offset;
use crate::mask::extend_masked;
use crate::message::Message;
#[cfg(feature = "in-place")]
use crate::message::MessageRef;
use crate::pool::Buffers;
use crate::utf8::{Utf8Error, Utf8Validator};

/// A large text payload is copied and validated in blocks of this size, so each block is
/// validated while it is still in L1 cache.
const BLOCK: usize = 16 * 1024;

/// What a [`MessageBuf`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any bytes.
    Binary,
    /// UTF-8, validated as it is appended.
    Text,
}

/// The payload of a data message being received.
///
/// Invariant (what [`into_message`](Self::into_message) relies on): for [`Kind::Text`], every
/// byte in `bytes` was put there by [`received`](Self::received) or [`append`](Self::append),
/// each of which fed exactly those bytes, in order, to `utf8`, and `failed` is set if any of
/// those feeds failed. The
/// fields are private to this module and `kind` never changes, so nothing else can add,
/// remove or change a byte behind the validator's back.
#[derive(Debug)]
pub(crate) struct MessageBuf {
    bytes: Vec<u8>,
    utf8: Utf8Validator,
    kind: Kind,
    failed: bool,
}

impl MessageBuf {
    /// An empty buffer with room for `capacity` bytes.
    #[cfg(test)]
    pub(crate) fn with_capacity(kind: Kind, capacity: usize) -> Self {
        MessageBuf {
            bytes: Vec::with_capacity(capacity),
            utf8: Utf8Validator::new(),
            kind,
            failed: false,
        }
    }

    /// An empty buffer that reuses the allocation of `bytes` (a pooled or spare buffer).
    pub(crate) fn reusing(kind: Kind, mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        MessageBuf {
            bytes,
            utf8: Utf8Validator::new(),
            kind,
            failed: false,
        }
    }

    /// A buffer holding `bytes`, payload already unmasked (a socket read straight into it):
    /// text is validated here, as [`append`](Self::append) would have.
    pub(crate) fn received(kind: Kind, bytes: Vec<u8>) -> Self {
        let mut buf = MessageBuf {
            bytes,
            utf8: Utf8Validator::new(),
            kind,
            failed: false,
        };
        if kind == Kind::Text {
            // Block by block, as `append`, so each is validated while in cache.
            for block in buf.bytes.chunks(BLOCK) {
                if buf.utf8.feed(block).is_err() {
                    buf.failed = true;
                    break;
                }
            }
        }
        buf
    }

    /// Whether appending or receiving found bytes that cannot be UTF-8 text.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Makes room for `take` more bytes of a frame that has `remaining` bytes left (`take`
    /// included). Capacity doubles, as `Vec` would, but never past the end of the frame: a
    /// message whose last frame has arrived holds no slack, and a slow sender pins at most
    /// about twice what it actually sent.
    pub(crate) fn grow_for(&mut self, take: usize, remaining: u64) {
        let buf = &mut self.bytes;
        let need = buf.len().saturating_add(take);
        if buf.capacity() >= need {
            return;
        }
        let frame_end =
            usize::try_from(remaining).map_or(usize::MAX, |r| buf.len().saturating_add(r));
        let target = buf.capacity().saturating_mul(2).min(frame_end).max(need);
        buf.reserve_exact(target - buf.len());
    }

    /// Appends `src`, unmasked with `mask` when given (`src[0]` being payload byte `phase`
    /// of its frame). Text is validated as it is appended.
    ///
    /// # Errors
    /// [`Utf8Error::Invalid`] when the appended bytes cannot continue a UTF-8 text. The
    /// buffer must then be dropped.
    pub(crate) fn append(
        &mut self,
        src: &[u8],
        mask: Option<[u8; 4]>,
        phase: usize,
    ) -> Result<(), Utf8Error> {
        if self.kind == Kind::Binary {
            copy(&mut self.bytes, src, mask, phase);
            return Ok(());
        }
        let mut phase = phase;
        for block in src.chunks(BLOCK) {
            let start = self.bytes.len();
            copy(&mut self.bytes, block, mask, phase);
            if let Err(e) = self.utf8.feed(self.bytes.get(start..).unwrap_or_default()) {
                self.failed = true;
                return Err(e);
            }
            phase = phase.wrapping_add(block.len());
        }
        Ok(())
    }

    /// The finished message.
    ///
    /// # Errors
    /// [`Utf8Error::Incomplete`] when a text stops inside a code point.
    pub(crate) fn into_message(mut self) -> Result<Message, Utf8Error> {
        match self.kind {
            Kind::Binary => Ok(Message::Binary(self.bytes)),
            Kind::Text => {
                if self.failed {
                    return Err(Utf8Error::Invalid);
                }
                self.utf8.finish()?;
                // SAFETY: by the struct invariant, `utf8` was fed every byte of `bytes`, in
                // order and nothing else; no feed failed (`failed` is clear), and `finish`
                // just confirmed that no code point is left open. `Utf8Validator` accepts
                // exactly the byte sequences that are valid UTF-8 (tested against std below
                // and in `utf8.rs`), so `bytes` is valid UTF-8.
                Ok(Message::Text(unsafe {
                    String::from_utf8_unchecked(self.bytes)
                }))
            }
        }
    }
}

/// The message whose whole payload is `src` (masked with `mask` when given), in one
/// buffer of at least its size (a recycled one when `buffers` has one that fits).
///
/// # Errors
/// [`Utf8Error`] for a text that is not UTF-8.
#[inline]
pub(crate) fn whole_message(
    buffers: &mut Buffers,
    kind: Kind,
    src: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<Message, Utf8Error> {
    if kind == Kind::Text && src.len() > BLOCK {
        // Validate block by block while each is in cache.
        let mut buf = MessageBuf::reusing(kind, buffers.take(src.len()));
        buf.append(src, mask, 0)?;
        return buf.into_message();
    }
    let mut bytes = buffers.take(src.len());
    copy(&mut bytes, src, mask, 0);
    match kind {
        Kind::Binary => Ok(Message::Binary(bytes)),
        Kind::Text => string_from_utf8(bytes).map(Message::Text),
    }
}

/// Unmasks a whole message's payload where it lies and validates it when it is text: the
/// borrowed counterpart of [`whole_message`], with no copy and no allocation.
///
/// # Errors
/// [`Utf8Error`] for a text that is not UTF-8 (the bytes are then unmasked in part or whole).
#[cfg(feature = "in-place")]
#[inline]
pub(crate) fn message_in_place(
    kind: Kind,
    buf: &mut [u8],
    mask: Option<[u8; 4]>,
) -> Result<MessageRef<'_>, Utf8Error> {
    if kind == Kind::Binary {
        if let Some(key) = mask {
            apply_mask_offset(buf, key, 0);
        }
        return Ok(MessageRef::Binary(buf));
    }
    if buf.len() < SHORT_TEXT {
        if let Some(key) = mask {
            apply_mask_offset(buf, key, 0);
        }
        if !is_short_utf8(buf) {
            return Err(Utf8Error::Invalid);
        }
        // SAFETY: `is_short_utf8` accepted exactly these bytes (nothing changes them after),
        // and it accepts exactly the valid UTF-8 sequences: checked against std on every
        // input of up to 3 bytes, every 4-byte lead/second-byte pair, and random mixes at
        // every alignment (tests below).
        return Ok(MessageRef::Text(unsafe {
            std::str::from_utf8_unchecked(buf)
        }));
    }
    if buf.len() <= BLOCK {
        if let Some(key) = mask {
            apply_mask_offset(buf, key, 0);
        }
        return simdutf8::basic::from_utf8(buf)
            .map(MessageRef::Text)
            .map_err(|_| Utf8Error::Invalid);
    }
    // Large text: unmask and validate block by block while each block is in cache.
    let mut utf8 = Utf8Validator::new();
    let mut phase = 0;
    for block in buf.chunks_mut(BLOCK) {
        if let Some(key) = mask {
            apply_mask_offset(block, key, phase);
        }
        utf8.feed(block)?;
        phase = phase.wrapping_add(block.len());
    }
    utf8.finish()?;
    // SAFETY: `utf8` was fed every byte of `buf`, in order and nothing else, after the last
    // change to each byte (its block's unmasking); no feed failed (each returned early on
    // error) and `finish` confirmed no code point is left open. `Utf8Validator` accepts
    // exactly the valid UTF-8 byte sequences (tested against std here and in `utf8.rs`).
    Ok(MessageRef::Text(unsafe {
        std::str::from_utf8_unchecked(buf)
    }))
}

/// Below this length text is validated by [`is_short_utf8`]: on 16 bytes of mixed text,
/// `simdutf8` (setup) and `std::str::from_utf8` (a byte at a time) both cost about 200
/// instructions (callgrind), more than the whole rest of a message's receive.
#[cfg(feature = "in-place")]
const SHORT_TEXT: usize = 64;

/// Whether `bytes` is UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
/// One pass with an iterator (no bounds checks): about 5 instructions per ASCII byte and 15
/// per multi-byte sequence, which beats both library validators on short text.
// (Only the borrowed receive path validates in place; its tests run either way.)
#[cfg_attr(not(feature = "in-place"), allow(dead_code))]
fn is_short_utf8(bytes: &[u8]) -> bool {
    let cont = |c: Option<&u8>| c.is_some_and(|&c| c & 0xC0 == 0x80);
    let mut it = bytes.iter();
    while let Some(&lead) = it.next() {
        if lead < 0x80 {
            continue;
        }
        let (more, lo, hi) = match lead {
            0xC2..=0xDF => (0, 0x80, 0xBF),
            0xE0 => (1, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (1, 0x80, 0xBF),
            0xED => (1, 0x80, 0x9F),
            0xF0 => (2, 0x90, 0xBF),
            0xF1..=0xF3 => (2, 0x80, 0xBF),
            0xF4 => (2, 0x80, 0x8F),
            _ => return false,
        };
        if !it.next().is_some_and(|c| (lo..=hi).contains(c)) {
            return false;
        }
        for _ in 0..more {
            if !cont(it.next()) {
                return false;
            }
        }
    }
    true
}

/// Largest reassembly buffer a scratch keeps for reuse. A bigger message allocates its own,
/// which costs little next to copying that many bytes.
#[cfg(feature = "in-place")]
const MAX_SPARE: usize = 256 * 1024;

/// Returns a buffer whose message was delivered to `spare` (a scratch's one reassembly buffer
/// for the borrowed receive path): kept when it is the larger one and not over
/// [`MAX_SPARE`], dropped otherwise. So a fragmented (or split, or compressed) message costs
/// no allocation once the scratch has seen one of its size, while an idle connection still
/// holds no buffer of its own.
#[cfg(feature = "in-place")]
pub(crate) fn give_spare(spare: &mut Vec<u8>, mut bytes: Vec<u8>) {
    if bytes.capacity() > MAX_SPARE || bytes.capacity() <= spare.capacity() {
        return;
    }
    bytes.clear();
    *spare = bytes;
}

fn copy(dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>, phase: usize) {
    match mask {
        Some(key) => extend_masked(dst, src, key, phase),
        None => dst.extend_from_slice(src),
    }
}

/// `String::from_utf8` with the SIMD validator: for bytes that were not validated on the way
/// in (a small whole message, validated in one go; inflated text, checked as it comes out
/// but by code outside this module).
///
/// # Errors
/// [`Utf8Error::Invalid`] when `bytes` is not UTF-8.
pub(crate) fn string_from_utf8(bytes: Vec<u8>) -> Result<String, Utf8Error> {
    if simdutf8::basic::from_utf8(&bytes).is_err() {
        return Err(Utf8Error::Invalid);
    }
    // SAFETY: `simdutf8::basic::from_utf8` just accepted exactly these bytes, and it accepts
    // only valid UTF-8.
    Ok(unsafe { String::from_utf8_unchecked(bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(pieces: &[&[u8]]) -> Result<Message, Utf8Error> {
        let mut buf = MessageBuf::with_capacity(Kind::Text, 0);
        for piece in pieces {
            buf.append(piece, None, 0)?;
        }
        buf.into_message()
    }

    #[test]
    fn text_split_inside_code_points_becomes_the_same_string() {
        let text = "aé€𝄞z".repeat(3);
        let bytes = text.as_bytes();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let got = text_of(&[&bytes[..a], &bytes[a..b], &bytes[b..]]);
                assert_eq!(got, Ok(Message::Text(text.clone())), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn text_conversion_agrees_with_std_on_every_two_and_three_byte_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let two = [a, b];
                let ours = text_of(&[&two[..1], &two[1..]]).is_ok();
                assert_eq!(ours, std::str::from_utf8(&two).is_ok(), "{a:x} {b:x}");
            }
        }
        for lead in 0xe0..=0xf4u8 {
            for b in 0x70..=0xc0u8 {
                for c in [0x41, 0x80, 0x9f, 0xa0, 0xbf, 0xc0] {
                    let three = [lead, b, c];
                    let ours = text_of(&[&three]).is_ok();
                    assert_eq!(ours, std::str::from_utf8(&three).is_ok(), "{three:x?}");
                }
            }
        }
    }

    #[test]
    fn invalid_byte_fails_in_the_append_that_holds_it() {
        let mut buf = MessageBuf::with_capacity(Kind::Text, 0);
        assert_eq!(buf.append(b"fine ", None, 0), Ok(()));
        assert_eq!(buf.append(&[b'x', 0xff], None, 0), Err(Utf8Error::Invalid));
    }

    #[test]
    fn text_that_failed_once_never_converts() {
        let mut buf = MessageBuf::with_capacity(Kind::Text, 0);
        assert!(buf.append(&[0xff], None, 0).is_err());
        assert_eq!(buf.append(b"more", None, 0), Ok(()));
        assert_eq!(buf.into_message(), Err(Utf8Error::Invalid));
    }

    #[test]
    fn text_ending_inside_a_code_point_is_refused() {
        assert_eq!(text_of(&[b"ok", &[0xe2, 0x82]]), Err(Utf8Error::Incomplete));
    }

    #[test]
    fn masked_text_across_blocks_is_unmasked_and_validated() {
        let text = "ça va — ✓ ".repeat(BLOCK / 5);
        let key = [9, 8, 7, 6];
        let mut masked = text.as_bytes().to_vec();
        crate::mask::apply_mask(&mut masked, key);
        let mut buf = MessageBuf::with_capacity(Kind::Text, masked.len());
        let (a, b) = masked.split_at(BLOCK + 3);
        buf.append(a, Some(key), 0).unwrap();
        buf.append(b, Some(key), a.len()).unwrap();
        assert_eq!(buf.into_message(), Ok(Message::Text(text)));
    }

    #[test]
    fn binary_is_not_validated() {
        let mut buf = MessageBuf::with_capacity(Kind::Binary, 0);
        buf.append(&[0xff, 0xfe], None, 0).unwrap();
        assert_eq!(buf.into_message(), Ok(Message::Binary(vec![0xff, 0xfe])));
    }

    #[test]
    fn growth_doubles_but_stops_at_the_end_of_the_frame() {
        let mut buf = MessageBuf::with_capacity(Kind::Binary, 0);
        buf.grow_for(100, 1000);
        assert_eq!(
            buf.bytes.capacity(),
            100,
            "first piece: exactly what arrived"
        );
        buf.append(&[0; 100], None, 0).unwrap();
        buf.grow_for(50, 900);
        assert_eq!(buf.bytes.capacity(), 200, "doubles");
        buf.append(&[0; 100], None, 0).unwrap();
        buf.grow_for(10, 10);
        assert_eq!(buf.bytes.capacity(), 210, "never past the frame end");
    }

    #[test]
    fn whole_messages_are_unmasked_and_checked_at_every_size() {
        let key = [1, 2, 3, 4];
        for len in [0, 1, 100, BLOCK, BLOCK + 1, 3 * BLOCK + 7] {
            let text = "é".repeat(len / 2);
            let mut masked = text.as_bytes().to_vec();
            crate::mask::apply_mask(&mut masked, key);
            let got = whole_message(&mut Buffers::default(), Kind::Text, &masked, Some(key));
            assert_eq!(got, Ok(Message::Text(text.clone())), "len {len}");
            let got = whole_message(&mut Buffers::default(), Kind::Binary, text.as_bytes(), None);
            assert_eq!(got, Ok(Message::Binary(text.clone().into_bytes())));
            let mut bad = text.into_bytes();
            bad.push(0xc3);
            let got = whole_message(&mut Buffers::default(), Kind::Text, &bad, None);
            assert!(got.is_err(), "len {len}: a text cut inside a code point");
            let mut bad = vec![b'a'; len];
            bad.insert(len / 2, 0xff);
            let got = whole_message(&mut Buffers::default(), Kind::Text, &bad, None);
            assert_eq!(got, Err(Utf8Error::Invalid), "len {len}");
        }
    }

    #[test]
    fn short_validator_agrees_with_std_on_every_input_up_to_three_bytes() {
        assert!(is_short_utf8(b""));
        for a in 0..=255u8 {
            assert_eq!(
                is_short_utf8(&[a]),
                std::str::from_utf8(&[a]).is_ok(),
                "{a:x}"
            );
            for b in 0..=255u8 {
                let two = [a, b];
                assert_eq!(is_short_utf8(&two), std::str::from_utf8(&two).is_ok());
                if a >= 0xc0 {
                    for c in 0..=255u8 {
                        let three = [a, b, c];
                        let std_ok = std::str::from_utf8(&three).is_ok();
                        assert_eq!(is_short_utf8(&three), std_ok, "{three:x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn short_validator_agrees_with_std_on_four_byte_sequences_at_every_alignment() {
        for lead in 0xf0..=0xf8u8 {
            for second in 0x70..=0xc0u8 {
                for (third, fourth) in [(0x80, 0x80), (0xbf, 0xbf), (0x41, 0x80), (0x80, 0xc0)] {
                    for ascii in 0..12 {
                        let mut bytes = vec![b'a'; ascii];
                        bytes.extend_from_slice(&[lead, second, third, fourth]);
                        bytes.extend_from_slice(b"tail...");
                        let std_ok = std::str::from_utf8(&bytes).is_ok();
                        assert_eq!(is_short_utf8(&bytes), std_ok, "{bytes:x?}");
                        bytes.truncate(ascii + 3);
                        assert!(!is_short_utf8(&bytes), "cut: {bytes:x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn short_validator_agrees_with_std_on_random_mixes() {
        // A fixed xorshift stream: mostly ASCII with multi-byte pieces and stray bytes.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let pieces: [&[u8]; 8] = [
            b"a",
            b"hello ",
            "é".as_bytes(),
            "✓".as_bytes(),
            "𝄞".as_bytes(),
            &[0x80],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
        ];
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            while bytes.len() < 63 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pick = (x % 40) as usize;
                bytes.extend_from_slice(pieces[if pick < 8 { pick } else { pick % 3 }]);
            }
            bytes.truncate((x >> 32) as usize % 64);
            assert_eq!(
                is_short_utf8(&bytes),
                std::str::from_utf8(&bytes).is_ok(),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn checked_conversion_refuses_invalid_bytes() {
        assert_eq!(string_from_utf8(b"ok".to_vec()), Ok("ok".to_owned()));
        assert_eq!(string_from_utf8(vec![b'a', 0xc0]), Err(Utf8Error::Invalid));
    }
}
