//! The permessage-deflate codec (RFC 7692 §7.2) over flate2's raw deflate streams.
//!
//! Sending: a message is compressed with a sync flush and its final `00 00 ff ff` removed.
//! Receiving: the compressed bytes are inflated as they arrive, into a buffer that never grows
//! past the message limit plus one byte, so a compression bomb is refused after producing at
//! most that much; the four bytes are appended at the end of the message.
//!
//! A compressor or inflater that resets after every message keeps no state between them, so
//! those live in small per-thread caches instead of in each connection: between messages, a
//! server connection that negotiated `server_no_context_takeover` holds no compressor, and
//! one that negotiated `client_no_context_takeover` no inflater. With context takeover both
//! are the connection's own, allocated on the first compressed message: zlib-rs's compressor
//! is about 370 KiB with a 2^15 window (a fixed 128 KiB hash table, two windows' worth of
//! sliding window, the chain links, the symbol buffers), its inflater about 43 KiB.
//!
//! # Hibernation
//!
//! A quiet connection need not keep either. Between two messages, all the state that matters
//! to the peer is the last 2^w bytes of each direction's uncompressed stream: the peer's
//! inflater holds exactly those as its window, and every message ends on a sync flush at a
//! byte boundary, so a fresh compressor given those bytes as its dictionary continues the
//! stream the peer is decoding (it may refer back into them, never further), and a fresh
//! raw inflater given the last 2^w bytes it produced decodes whatever the peer's compressor
//! sends next. A compressor may even be given less (any suffix of the peer's window): it then
//! refers only to that. So each half with context takeover keeps a copy of its last bytes (a
//! ring filled as messages pass, one copy per message, no allocation once it is full): the
//! inflater its whole window, the compressor its last [`COMPRESSOR_KEEP`] bytes at most; and
//! [`Deflater::hibernate`] / [`Inflater::hibernate`] drop the zlib state, leaving those. The next message rebuilds it
//! (`set_dictionary`), once. The connection hibernates when its idle ping goes out and when
//! its owner asks (`Connection::hibernate`).
//!
//! zlib's `memLevel` is not offered: zlib-rs sizes its hash table (128 KiB) whatever the
//! level, so the smallest awake compressor is still over 128 KiB; hibernation is what
//! brings an idle connection under it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::utf8::Utf8Validator;

/// What a sync flush ends with, and what a receiver appends (§7.2.1, §7.2.2).
pub(crate) const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's raw deflate does not do 2^8-byte windows; a smaller agreed window means this end
/// does not compress at all.
pub(crate) const MIN_COMPRESS_BITS: u8 = 9;

/// Compressors a scratch keeps for context-free compression, one per (level, window bits).
const FRESH_CACHE: usize = 4;

/// Idle inflaters a scratch keeps, for peers that reset after every message.
const INFLATER_CACHE: usize = 4;

/// Most a compressor keeps of its input for a wake. Any suffix of what the peer's window holds
/// is a valid dictionary (the rebuilt compressor refers only to what it was given), so this
/// may be less than the window, unlike an inflater's. Measured on the chat-JSON benchmark
/// (`benches/examples/deflate_settings.rs`), waking before every message: 8 KiB gives a ratio
/// of 3.27 against 3.28 with the whole 32 KiB, for a wake about three times cheaper (less to
/// hash) and 24 KiB less per hibernated connection.
const COMPRESSOR_KEEP: usize = 8 * 1024;

/// Idle compressors of a [`Scratch`](crate::Scratch), lent for one message to connections
/// (and broadcasts) that compress without context takeover. A compressor at 2^15 is about
/// 300 KiB that zlib must also initialise: one kept per setting spares each message that.
#[derive(Default)]
pub(crate) struct Compressors(Vec<(u32, u8, Compress)>);

/// Idle inflaters of a [`Scratch`](crate::Scratch) (the caller's, passed in on receive), for
/// peers that reset after every message.
#[derive(Debug, Default)]
pub(crate) struct Inflaters(Vec<(u8, Box<Decompress>)>);

impl Inflaters {
    /// A reset inflater for windows of 2^`bits`, a kept one or new.
    fn take(&mut self, bits: u8) -> Box<Decompress> {
        match self.0.iter().position(|(b, _)| *b == bits) {
            Some(at) => self.0.swap_remove(at).1,
            None => Box::new(Decompress::new_with_window_bits(false, bits)),
        }
    }

    /// Keeps a reset inflater, unless enough are kept.
    fn give_back(&mut self, bits: u8, inflater: Box<Decompress>) {
        if self.0.len() < INFLATER_CACHE {
            self.0.push((bits, inflater));
        }
    }
}

fn new_compressor(level: u32, bits: u8) -> Compress {
    Compress::new_with_window_bits(
        Compression::new(level.min(9)),
        false,
        bits.clamp(MIN_COMPRESS_BITS, 15),
    )
}

/// Runs `f` with a compressor that has no history: one kept in `cache` (the caller's
/// scratch) when there is one, then reset and kept again; without a cache a new one, dropped
/// afterwards.
pub(crate) fn with_fresh_compressor<R>(
    cache: Option<&mut Compressors>,
    level: u32,
    bits: u8,
    f: impl FnOnce(&mut Compress) -> R,
) -> R {
    let Some(cache) = cache else {
        return f(&mut new_compressor(level, bits));
    };
    let kept = cache
        .0
        .iter()
        .position(|(l, b, _)| *l == level && *b == bits)
        .map(|at| cache.0.swap_remove(at).2);
    let mut compress = kept.unwrap_or_else(|| new_compressor(level, bits));
    let result = f(&mut compress);
    compress.reset();
    if cache.0.len() >= FRESH_CACHE {
        cache.0.remove(0);
    }
    cache.0.push((level, bits, compress));
    result
}

/// Appends `payload` compressed (sync flush, trailer removed) to `out`. On a compressor
/// error `out` is left as it was and `false` returned: the caller sends the message plain.
pub(crate) fn compress_into(compress: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let start_in = compress.total_in();
    // Text usually shrinks a lot; start with half and grow.
    out.reserve(payload.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in() - start_in).unwrap_or(usize::MAX);
        let rest = payload.get(consumed..).unwrap_or_default();
        if compress
            .compress_vec(rest, out, FlushCompress::Sync)
            .is_err()
        {
            out.truncate(start);
            return false;
        }
        let consumed = usize::try_from(compress.total_in() - start_in).unwrap_or(usize::MAX);
        // zlib has flushed everything once it leaves output space unused.
        if consumed >= payload.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.len() >= start + TRAILER.len() && out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
    }
    true
}

/// The last bytes of one direction's uncompressed stream, at most the window (`cap` bytes):
/// what a hibernated compressor or inflater is rebuilt from. Grows with what passes (never
/// past `cap`), then wraps.
#[derive(Debug, Default)]
struct History {
    /// At most `cap` bytes; once full, a ring whose oldest byte is at `start`.
    buf: Vec<u8>,
    start: usize,
}

impl History {
    /// Appends `data`, forgetting what falls out of the last `cap` bytes.
    fn push(&mut self, data: &[u8], cap: usize) {
        if cap == 0 {
            return;
        }
        if data.len() >= cap {
            self.buf.clear();
            self.start = 0;
            self.grow(cap, cap);
            self.buf
                .extend_from_slice(data.get(data.len() - cap..).unwrap_or_default());
            return;
        }
        // Fill up to `cap` first (the ring has not started, `start` is 0)...
        let fill = data.len().min(cap - self.buf.len().min(cap));
        let (head, mut rest) = data.split_at(fill);
        if !head.is_empty() {
            self.grow(self.buf.len() + head.len(), cap);
            self.buf.extend_from_slice(head);
        }
        // ...then overwrite the oldest bytes.
        while !rest.is_empty() {
            let at = self.start.min(self.buf.len());
            let n = rest.len().min(self.buf.len() - at);
            let (now, later) = rest.split_at(n);
            if let Some(dst) = self.buf.get_mut(at..at + n) {
                dst.copy_from_slice(now);
            }
            self.start = (at + n) % self.buf.len().max(1);
            rest = later;
        }
    }

    /// Makes room for `want` bytes in all: at least doubling, so a history is copied a few
    /// times while it fills, and never past `cap`, what it will ever hold.
    fn grow(&mut self, want: usize, cap: usize) {
        if want > self.buf.capacity() {
            let target = want
                .max(self.buf.capacity() * 2)
                .max(256)
                .min(cap)
                .max(want);
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    /// The bytes, oldest first (puts the ring in order; only when a state is rebuilt).
    fn in_order(&mut self) -> &[u8] {
        let start = self.start.min(self.buf.len());
        self.buf.rotate_left(start);
        self.start = 0;
        &self.buf
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The compressing half of one connection.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// Present only with context takeover; allocated on the first compressed message, dropped
    /// by [`hibernate`](Self::hibernate) and rebuilt from `history` by the next one.
    own: Option<Box<Compress>>,
    /// With context takeover, the last bytes `own` was given (at most its window and
    /// [`COMPRESSOR_KEEP`]).
    history: History,
    level: u32,
    bits: u8,
    no_context_takeover: bool,
    /// Messages shorter than this go out plain.
    threshold: usize,
}

impl Deflater {
    pub(crate) fn new(level: u32, bits: u8, no_context_takeover: bool, threshold: usize) -> Self {
        Deflater {
            own: None,
            history: History::default(),
            level: level.min(9),
            bits,
            no_context_takeover,
            threshold,
        }
    }

    /// Whether a message of `len` bytes is to be compressed.
    pub(crate) fn wants(&self, len: usize) -> bool {
        self.bits >= MIN_COMPRESS_BITS && len >= self.threshold.max(1)
    }

    /// How much of its input the compressor keeps for a wake: its window, at most
    /// [`COMPRESSOR_KEEP`].
    fn keep(&self) -> usize {
        (1usize << self.bits.clamp(MIN_COMPRESS_BITS, 15)).min(COMPRESSOR_KEEP)
    }

    /// Appends the compressed payload to `out`; `false` (nothing appended) on failure.
    /// Without context takeover the compressor is lent by `fresh` (the caller's scratch), or
    /// made for this message when there is none.
    pub(crate) fn compress(
        &mut self,
        fresh: Option<&mut Compressors>,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.no_context_takeover {
            return with_fresh_compressor(fresh, self.level, self.bits, |c| {
                compress_into(c, payload, out)
            });
        }
        if self.own.is_none() {
            self.own = Some(self.wake());
        }
        let Some(compress) = self.own.as_mut() else {
            return false;
        };
        if compress_into(compress, payload, out) {
            let keep = self.keep();
            self.history.push(payload, keep);
            return true;
        }
        // The compressor may have taken part of the payload that never went out: start a
        // stream that refers to nothing before it (always decodable by the peer).
        self.own = None;
        self.history.clear();
        false
    }

    /// A compressor that continues the stream: new, with the history as its dictionary.
    #[cold]
    fn wake(&mut self) -> Box<Compress> {
        let mut compress = Box::new(new_compressor(self.level, self.bits));
        if !self.history.is_empty() && compress.set_dictionary(self.history.in_order()).is_err() {
            // Without the dictionary the next message refers to nothing before it: valid,
            // only less compressed.
            compress.reset();
            self.history.clear();
        }
        compress
    }

    /// Whether the compressor keeps history between messages (context takeover).
    pub(crate) fn keeps_context(&self) -> bool {
        !self.no_context_takeover
    }

    /// Forgets the history: the next message refers to nothing sent before.
    pub(crate) fn reset(&mut self) {
        if let Some(compress) = self.own.as_mut() {
            compress.reset();
        }
        self.history.clear();
    }

    /// Drops the compressor, keeping only the window it would refer to (see the module's
    /// documentation). Messages are compressed whole, so this is always between two.
    pub(crate) fn hibernate(&mut self) {
        self.own = None;
    }

    /// Whether the compressor is hibernating (or was never needed).
    #[cfg(test)]
    pub(crate) fn is_hibernating(&self) -> bool {
        self.own.is_none()
    }
}

/// The inflating half of one connection.
#[derive(Debug)]
pub(crate) struct Inflater {
    /// Taken on the first compressed message; given back to the scratch after each message
    /// when the peer resets anyway. With context takeover, dropped by
    /// [`hibernate`](Self::hibernate) and rebuilt from `history` by the next message.
    inner: Option<Box<Decompress>>,
    /// With context takeover, the last 2^bits bytes inflated.
    history: History,
    bits: u8,
    /// The peer resets after every message, so may we.
    reset_each: bool,
    /// The peer ended the deflate stream (a BFINAL block, §7.2.3.4): the rest of this message
    /// is ignored and the next one starts a new stream.
    ended: bool,
    /// A compressed message is part-way through: the inflater cannot be dropped now.
    mid_message: bool,
}

impl Inflater {
    pub(crate) fn new(bits: u8, reset_each: bool) -> Self {
        Inflater {
            inner: None,
            history: History::default(),
            bits: bits.clamp(MIN_COMPRESS_BITS, 15),
            reset_each,
            ended: false,
            mid_message: false,
        }
    }

    /// An inflater that continues the stream: reset, with the history as its dictionary.
    #[cold]
    fn wake(&mut self, cache: &mut Inflaters) -> Result<Box<Decompress>, ProtocolError> {
        let mut d = cache.take(self.bits);
        if !self.reset_each && !self.history.is_empty() {
            // Raw inflate takes a dictionary at any time; failing here would leave the peer's
            // references unresolvable, so it fails the message rather than guess.
            d.set_dictionary(self.history.in_order())
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
        }
        Ok(d)
    }

    /// Drops the inflater between messages, keeping only its window (see the module's
    /// documentation). Does nothing while a compressed message is part-way through, or when
    /// the peer resets after every message (the inflater is then the thread's, not ours).
    pub(crate) fn hibernate(&mut self) {
        if !self.mid_message && !self.reset_each {
            self.inner = None;
        }
    }

    /// Whether the inflater is hibernating (or was never needed).
    #[cfg(test)]
    pub(crate) fn is_hibernating(&self) -> bool {
        self.inner.is_none()
    }

    /// Inflates `input` (a piece of a compressed message) onto `out`. `out` never holds more
    /// than `max + 1` bytes: past `max` the message is too big. New text is checked as it
    /// comes out.
    pub(crate) fn inflate(
        &mut self,
        cache: &mut Inflaters,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        mut utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        self.mid_message = true;
        if self.inner.is_none() {
            self.inner = Some(self.wake(cache)?);
        }
        let Some(d) = self.inner.as_mut() else {
            return Err(ProtocolError::InvalidCompressedData);
        };
        let cap = max.saturating_add(1);
        while !self.ended {
            if out.len() == out.capacity() {
                if out.len() >= cap {
                    return Err(ProtocolError::MessageTooBig {
                        len: out.len() as u64,
                        max,
                    });
                }
                // Double, from a guess of 4x the compressed piece, never past the limit.
                let want = out.capacity().max(input.len().saturating_mul(4)).max(256);
                out.reserve_exact(want.min(cap - out.len()));
            }
            let (in_before, out_before, len_before) = (d.total_in(), d.total_out(), out.len());
            let status = d
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > max {
                return Err(ProtocolError::MessageTooBig {
                    len: out.len() as u64,
                    max,
                });
            }
            if let Some(v) = utf8.as_deref_mut() {
                if v.feed(out.get(len_before..).unwrap_or_default()).is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
            }
            let consumed = usize::try_from(d.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                self.ended = true;
                break;
            }
            let produced = d.total_out() != out_before;
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if consumed == 0 && !produced && out.len() < out.capacity() {
                // Output space and input, yet no progress: the stream is broken.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
        Ok(())
    }

    /// Ends a compressed message: inflates the trailer, then resets if the stream ended or
    /// the peer does not take context over.
    pub(crate) fn finish(
        &mut self,
        cache: &mut Inflaters,
        out: &mut Vec<u8>,
        max: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        self.inflate(cache, &TRAILER, out, max, utf8)?;
        self.mid_message = false;
        if self.ended || self.reset_each {
            if let Some(d) = self.inner.as_mut() {
                d.reset(false);
            }
            self.ended = false;
            self.history.clear();
        } else {
            // The message is the newest part of the window the peer may refer to.
            self.history.push(out, 1 << self.bits);
        }
        if self.reset_each {
            if let Some(d) = self.inner.take() {
                cache.give_back(self.bits, d);
            }
        }
        Ok(())
    }
}

/// Hibernates the compression state of a connection, each half that has one (see the
/// module's documentation).
pub(crate) fn hibernate(deflater: Option<&mut Deflater>, inflater: Option<&mut Inflater>) {
    if let Some(d) = deflater {
        d.hibernate();
    }
    if let Some(i) = inflater {
        i.hibernate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(
        inflater: &mut Inflater,
        data: &[u8],
        max: usize,
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        let cache = &mut Inflaters::default();
        inflater.inflate(cache, data, &mut out, max, None)?;
        inflater.finish(cache, &mut out, max, None)?;
        Ok(out)
    }

    #[test]
    fn hello_matches_rfc_7692_and_round_trips() {
        let mut deflater = Deflater::new(6, 15, false, 0);
        let mut out = Vec::new();
        assert!(deflater.compress(None, b"Hello", &mut out));
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut inflater = Inflater::new(15, false);
        assert_eq!(inflate_all(&mut inflater, &out, 100).unwrap(), b"Hello");
    }

    #[test]
    fn output_never_passes_the_limit_plus_one() {
        let mut data = Vec::new();
        with_fresh_compressor(None, 1, 15, |c| {
            assert!(compress_into(c, &[0; 100_000], &mut data))
        });
        let mut inflater = Inflater::new(15, false);
        let mut out = Vec::new();
        let cache = &mut Inflaters::default();
        let err = inflater
            .inflate(cache, &data, &mut out, 1000, None)
            .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::MessageTooBig { max: 1000, .. }
        ));
        assert!(out.capacity() <= 1001, "capacity {}", out.capacity());
    }

    #[test]
    fn a_scratch_lends_the_same_fresh_compressor_to_each_message() {
        let mut cache = Compressors::default();
        let mut first = Vec::new();
        let mut second = Vec::new();
        with_fresh_compressor(Some(&mut cache), 1, 15, |c| {
            assert!(compress_into(c, b"Hello Hello", &mut first));
        });
        assert_eq!(cache.0.len(), 1, "kept for the next message");
        with_fresh_compressor(Some(&mut cache), 1, 15, |c| {
            assert!(compress_into(c, b"Hello Hello", &mut second));
        });
        assert_eq!(cache.0.len(), 1, "the same one, kept again");
        assert_eq!(
            first, second,
            "reset between messages: no history carried over"
        );
        with_fresh_compressor(Some(&mut cache), 1, 10, |_| ());
        assert_eq!(cache.0.len(), 2, "one per window size");
    }

    #[test]
    fn exactly_the_limit_fits() {
        let mut data = Vec::new();
        with_fresh_compressor(None, 1, 15, |c| {
            assert!(compress_into(c, &[7; 5000], &mut data))
        });
        let mut inflater = Inflater::new(15, false);
        assert_eq!(inflate_all(&mut inflater, &data, 5000).unwrap(), [7; 5000]);
    }

    #[test]
    fn garbage_is_invalid_compressed_data() {
        let mut inflater = Inflater::new(15, false);
        assert_eq!(
            inflate_all(&mut inflater, &[0xff; 16], 1000),
            Err(ProtocolError::InvalidCompressedData)
        );
    }

    /// Chat-like messages: much repeated between messages, so context takeover matters.
    fn chat(i: usize) -> Vec<u8> {
        let users = ["alice", "bob", "carol", "dave"];
        format!(
            "{{\"type\":\"message\",\"room\":\"general\",\"user\":\"{}\",\"seq\":{i},\
             \"text\":\"message number {} about the weather in {} today\"}}",
            users[i % users.len()],
            i * 7919 % 1000,
            ["Paris", "Oslo", "Lima"][i % 3],
        )
        .into_bytes()
    }

    #[test]
    fn history_keeps_the_last_cap_bytes_in_order() {
        let mut all = Vec::new();
        let mut h = History::default();
        let mut seed = 7u32;
        for round in 0..400 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = match round % 5 {
                0 => (seed >> 8) as usize % 3000,
                1 => 0,
                _ => (seed >> 8) as usize % 200,
            };
            let piece: Vec<u8> = (0..len).map(|j| (round * 31 + j) as u8).collect();
            h.push(&piece, 1024);
            all.extend_from_slice(&piece);
            assert!(h.buf.capacity() <= 1024, "capacity {}", h.buf.capacity());
            if round % 7 == 0 {
                let want = &all[all.len().saturating_sub(1024)..];
                assert_eq!(h.in_order(), want, "round {round}");
            }
        }
    }

    /// Compresses `messages` with `deflater`, hibernating both ends after the ones `pause`
    /// picks, and inflates each with `inflater`; returns the compressed bytes in all.
    fn converse(
        deflater: &mut Deflater,
        inflater: &mut Inflater,
        messages: &[Vec<u8>],
        pause: impl Fn(usize) -> bool,
    ) -> usize {
        let mut wire = 0;
        for (i, m) in messages.iter().enumerate() {
            let mut data = Vec::new();
            assert!(deflater.compress(None, m, &mut data));
            wire += data.len();
            let got = inflate_all(inflater, &data, 1 << 20).unwrap();
            assert_eq!(&got, m, "message {i}");
            if pause(i) {
                deflater.hibernate();
                inflater.hibernate();
                assert!(deflater.is_hibernating());
                assert!(inflater.is_hibernating());
            }
        }
        wire
    }

    #[test]
    fn a_conversation_that_hibernates_decodes_exactly_and_compresses_as_well() {
        let messages: Vec<Vec<u8>> = (0..200).map(chat).collect();
        for (bits, no_takeover) in [(15, false), (12, false), (9, false), (15, true)] {
            let pair = || {
                (
                    Deflater::new(1, bits, no_takeover, 0),
                    Inflater::new(bits, no_takeover),
                )
            };
            let (mut d, mut i) = pair();
            let awake = converse(&mut d, &mut i, &messages, |_| false);
            let (mut d, mut i) = pair();
            let every = converse(&mut d, &mut i, &messages, |_| true);
            let (mut d, mut i) = pair();
            let some = converse(&mut d, &mut i, &messages, |n| n % 3 == 1);
            // A rebuilt compressor refers back as the old one did: the same ratio within a
            // few bytes per message (its hash chains start from the dictionary alone).
            for (what, wire) in [("every", every), ("some", some)] {
                assert!(
                    wire <= awake + awake / 20,
                    "bits {bits} {what}: {wire} bytes against {awake} awake"
                );
            }
        }
    }

    #[test]
    fn a_woken_compressor_refers_to_what_was_sent_before_it_slept() {
        let m = chat(1);
        let mut d = Deflater::new(1, 15, false, 0);
        let mut i = Inflater::new(15, false);
        let mut first = Vec::new();
        assert!(d.compress(None, &m, &mut first));
        assert_eq!(inflate_all(&mut i, &first, 1000).unwrap(), m);
        d.hibernate();
        i.hibernate();
        let mut again = Vec::new();
        assert!(d.compress(None, &m, &mut again));
        // One back-reference instead of the message again.
        assert!(
            again.len() < 12,
            "{} bytes, first {}",
            again.len(),
            first.len()
        );
        assert_eq!(inflate_all(&mut i, &again, 1000).unwrap(), m);
    }

    #[test]
    fn a_woken_inflater_decodes_a_stream_that_never_paused() {
        // The peer's compressor runs on; only our inflater sleeps, with messages larger than
        // the window so that the history wraps.
        for bits in [9u8, 15] {
            let mut peer = Compress::new_with_window_bits(Compression::new(6), false, bits);
            let mut i = Inflater::new(bits, false);
            for n in 0..60 {
                let mut m = Vec::new();
                for k in 0..(n % 7 + 1) * 40 {
                    m.extend_from_slice(&chat(n * 13 + k % 5));
                }
                let mut data = Vec::new();
                assert!(compress_into(&mut peer, &m, &mut data));
                assert_eq!(
                    inflate_all(&mut i, &data, 1 << 20).unwrap(),
                    m,
                    "bits {bits} message {n}"
                );
                if n % 2 == 0 {
                    i.hibernate();
                    assert!(i.is_hibernating());
                }
            }
            assert!(i.history.buf.capacity() <= 1 << bits);
        }
    }

    #[test]
    fn an_inflater_in_the_middle_of_a_message_does_not_hibernate() {
        let m: Vec<u8> = (0..20).flat_map(chat).collect();
        let mut d = Deflater::new(1, 15, false, 0);
        let mut data = Vec::new();
        assert!(d.compress(None, &m, &mut data));
        let mut i = Inflater::new(15, false);
        let cache = &mut Inflaters::default();
        let mut out = Vec::new();
        let (a, b) = data.split_at(data.len() / 2);
        i.inflate(cache, a, &mut out, 1 << 20, None).unwrap();
        i.hibernate();
        assert!(!i.is_hibernating());
        i.inflate(cache, b, &mut out, 1 << 20, None).unwrap();
        i.finish(cache, &mut out, 1 << 20, None).unwrap();
        assert_eq!(out, m);
        i.hibernate();
        assert!(i.is_hibernating());
    }

    #[test]
    fn a_reset_compressor_that_slept_refers_to_nothing_before() {
        let m = chat(3);
        let mut d = Deflater::new(1, 15, false, 0);
        let mut first = Vec::new();
        assert!(d.compress(None, &m, &mut first));
        d.hibernate();
        d.reset();
        let mut second = Vec::new();
        assert!(d.compress(None, &m, &mut second));
        // A fresh inflater (a peer that saw nothing else) decodes it: no reference back.
        let mut i = Inflater::new(15, false);
        assert_eq!(inflate_all(&mut i, &second, 1000).unwrap(), m);
        assert_eq!(second.len(), first.len());
    }
}
