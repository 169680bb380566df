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
//! are the connection's own (about 380 KB and 48 KB with 2^15 windows, measured in
//! `tests/deflate_memory.rs`), allocated on the first compressed message.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::utf8::Utf8Validator;

/// What a sync flush ends with, and what a receiver appends (§7.2.1, §7.2.2).
pub(crate) const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's raw deflate does not do 2^8-byte windows; a smaller agreed window means this end
/// does not compress at all.
pub(crate) const MIN_COMPRESS_BITS: u8 = 9;

/// Compressors kept per thread for context-free compression, one per (level, window bits).
const FRESH_CACHE: usize = 4;

/// Idle inflaters a scratch keeps, for peers that reset after every message.
const INFLATER_CACHE: usize = 4;

thread_local! {
    static FRESH: RefCell<Vec<(u32, u8, Compress)>> = const { RefCell::new(Vec::new()) };
}

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

/// Runs `f` with a compressor that has no history, from this thread's cache, and resets it
/// afterwards.
pub(crate) fn with_fresh_compressor<R>(
    level: u32,
    bits: u8,
    f: impl FnOnce(&mut Compress) -> R,
) -> R {
    let cached = FRESH.with(|cache| {
        let mut cache = cache.borrow_mut();
        let at = cache
            .iter()
            .position(|(l, b, _)| *l == level && *b == bits)?;
        Some(cache.swap_remove(at).2)
    });
    let mut compress = cached.unwrap_or_else(|| new_compressor(level, bits));
    let result = f(&mut compress);
    compress.reset();
    FRESH.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= FRESH_CACHE {
            cache.remove(0);
        }
        cache.push((level, bits, compress));
    });
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

/// The compressing half of one connection.
#[derive(Debug)]
pub(crate) struct Deflater {
    /// Present only with context takeover; allocated on the first compressed message.
    own: Option<Box<Compress>>,
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

    /// Appends the compressed payload to `out`; `false` (nothing appended) on failure.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if self.no_context_takeover {
            return with_fresh_compressor(self.level, self.bits, |c| {
                compress_into(c, payload, out)
            });
        }
        let (level, bits) = (self.level, self.bits);
        let compress = self
            .own
            .get_or_insert_with(|| Box::new(new_compressor(level, bits)));
        compress_into(compress, payload, out)
    }

    /// Forgets the history: the next message refers to nothing sent before.
    /// Whether the compressor keeps history between messages (context takeover).
    pub(crate) fn keeps_context(&self) -> bool {
        !self.no_context_takeover
    }

    pub(crate) fn reset(&mut self) {
        if let Some(compress) = self.own.as_mut() {
            compress.reset();
        }
    }
}

/// The inflating half of one connection.
#[derive(Debug)]
pub(crate) struct Inflater {
    /// Taken on the first compressed message; given back to the scratch after each message
    /// when the peer resets anyway.
    inner: Option<Box<Decompress>>,
    bits: u8,
    /// The peer resets after every message, so may we.
    reset_each: bool,
    /// The peer ended the deflate stream (a BFINAL block, §7.2.3.4): the rest of this message
    /// is ignored and the next one starts a new stream.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(bits: u8, reset_each: bool) -> Self {
        Inflater {
            inner: None,
            bits: bits.clamp(MIN_COMPRESS_BITS, 15),
            reset_each,
            ended: false,
        }
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
        let bits = self.bits;
        let d = self.inner.get_or_insert_with(|| cache.take(bits));
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
        if self.ended || self.reset_each {
            if let Some(d) = self.inner.as_mut() {
                d.reset(false);
            }
            self.ended = false;
        }
        if self.reset_each {
            if let Some(d) = self.inner.take() {
                cache.give_back(self.bits, d);
            }
        }
        Ok(())
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
        assert!(deflater.compress(b"Hello", &mut out));
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut inflater = Inflater::new(15, false);
        assert_eq!(inflate_all(&mut inflater, &out, 100).unwrap(), b"Hello");
    }

    #[test]
    fn output_never_passes_the_limit_plus_one() {
        let mut data = Vec::new();
        with_fresh_compressor(1, 15, |c| {
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
    fn exactly_the_limit_fits() {
        let mut data = Vec::new();
        with_fresh_compressor(1, 15, |c| assert!(compress_into(c, &[7; 5000], &mut data)));
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
}
