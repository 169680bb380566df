//! Masking (RFC 6455 §5.3): XOR of the payload with a repeating 4-byte key.
//!
//! This is the hottest loop of a server, so it works on 64-byte steps against a key pattern
//! built once per call (which the compiler turns into SIMD loads, XORs and stores) instead
//! of byte by byte, and never allocates. `chunks_exact` and fixed-size arrays let the compiler
//! drop the bounds checks. The one `unsafe` line is [`extend_masked`]'s `set_len`, after it
//! wrote the new bytes into the vector's spare capacity.

use std::mem::MaybeUninit;

/// Bytes handled per step: four 16-byte vectors, so the compiler emits straight-line SIMD
/// loads, XORs and stores for each step, with no per-byte key arithmetic.
const STEP: usize = 64;

/// The key repeated over a step, rotated so that byte 0 lines up with payload byte `offset`.
#[inline]
fn key_pattern(key: [u8; 4], offset: usize) -> [u8; STEP] {
    // Rotating the key word by whole bytes puts key byte `offset % 4` first in memory.
    let shift = 8 * (offset & 3) as u32;
    let word = if cfg!(target_endian = "little") {
        u32::from_ne_bytes(key).rotate_right(shift)
    } else {
        u32::from_ne_bytes(key).rotate_left(shift)
    };
    // Four copies of the word in one 16-byte value: the pattern is then four plain stores.
    let wide = u128::from(word) * 0x0000_0001_0000_0001_0000_0001_0000_0001;
    let mut pattern = [0u8; STEP];
    for lane in pattern.chunks_exact_mut(16) {
        lane.copy_from_slice(&wide.to_ne_bytes());
    }
    pattern
}

/// The first 8 bytes of a key pattern as one word: the key twice, in phase with the pattern.
#[inline]
fn pattern_word(pattern: &[u8; STEP]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&pattern[..8]);
    u64::from_ne_bytes(first)
}

/// XORs `buf` in place with `key`, as if `buf` started at payload byte 0.
///
/// Masking and unmasking are the same operation.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_offset(buf, key, 0);
}

/// XORs `buf` in place with `key`, where `buf[0]` is payload byte `offset`.
///
/// Use it when a frame's payload arrives in pieces: pass the number of payload bytes
/// already unmasked so the key stays in phase.
pub fn apply_mask_offset(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < STEP {
        return mask_short(buf, key, offset);
    }
    let pattern = key_pattern(key, offset);
    let mut steps = buf.chunks_exact_mut(STEP);
    for step in &mut steps {
        xor_step(step, &pattern);
    }
    // Every full step is a multiple of 4 bytes, so the pattern is still in phase. The tail
    // goes 8 bytes at a time: a 16-byte message is two word XORs instead of a 16-turn byte
    // loop (about 40 instructions of the ~190 a small message cost on the borrowed path).
    let tail = steps.into_remainder();
    let key_word = pattern_word(&pattern);
    let mut words = tail.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ key_word).to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(&pattern) {
        *b ^= k;
    }
}

/// [`apply_mask_offset`] for less than one step: a 64-byte pattern would cost more to build
/// than the XOR itself, so the key goes in one 8-byte word (about 15 instructions for a
/// 16-byte payload instead of 35).
#[inline]
fn mask_short(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Byte j of the little-endian word is key[(offset + j) % 4].
    let word = u32::from_le_bytes(key).rotate_right(8 * (offset & 3) as u32);
    let wide = u64::from(word) * 0x0000_0001_0000_0001;
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_le_bytes(bytes) ^ wide).to_le_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(wide.to_le_bytes()) {
        *b ^= k;
    }
}

#[inline(always)]
fn xor_step(step: &mut [u8], pattern: &[u8; STEP]) {
    for (b, k) in step.iter_mut().zip(pattern) {
        *b ^= k;
    }
}

/// Appends `src` to `dst`, XORed with `key` (with `src[0]` being payload byte `offset`).
///
/// This is the one copy a received payload makes: from the caller's input into the
/// message buffer. Each 64-byte step is loaded, XORed and stored once, straight into the
/// buffer's spare capacity, so the data crosses memory in a single pass (a `memcpy` followed
/// by an in-place XOR would read the destination back, and glibc's `rep movsb` copy is very
/// slow on some CPUs for some source/destination offsets). `dst` grows by exactly
/// `src.len()`.
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    dst.reserve(src.len());
    let len = dst.len();
    let Some(spare) = dst.spare_capacity_mut().get_mut(..src.len()) else {
        unreachable!("reserve made room for src")
    };
    write_masked(spare, src, key, offset);
    // SAFETY: `reserve` made the capacity at least `len + src.len()`, and `write_masked`
    // initialised each of the `src.len()` bytes after `len` (it writes every byte of `spare`,
    // which is exactly that range; the tests check the output byte for byte).
    unsafe { dst.set_len(len + src.len()) };
}

/// Writes `src ^ key` into `dst` (the same length), every byte of it.
#[inline]
fn write_masked(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4], offset: usize) {
    let pattern = key_pattern(key, offset);
    let mut out = dst.chunks_exact_mut(STEP);
    let mut steps = src.chunks_exact(STEP);
    // Fixed-size steps on both sides: four vector loads, XORs and stores each, no bounds checks.
    for (o, s) in (&mut out).zip(&mut steps) {
        for ((o, s), k) in o.iter_mut().zip(s).zip(&pattern) {
            o.write(s ^ k);
        }
    }
    // Every full step is a multiple of 4 bytes, so the pattern is still in phase for the tail,
    // which goes 8 bytes at a time (one load, XOR and store each), then byte by byte.
    let key_word = pattern_word(&pattern);
    let mut out = out.into_remainder().chunks_exact_mut(8);
    let mut words = steps.remainder().chunks_exact(8);
    for (o, s) in (&mut out).zip(&mut words) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(s);
        let masked = (u64::from_ne_bytes(bytes) ^ key_word).to_ne_bytes();
        for (o, b) in o.iter_mut().zip(masked) {
            o.write(b);
        }
    }
    for ((o, s), k) in out
        .into_remainder()
        .iter_mut()
        .zip(words.remainder())
        .zip(&pattern)
    {
        o.write(s ^ k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn word_mask_matches_bytewise_mask_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..200 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask_offset(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_input() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut buf = data.clone();
        apply_mask(&mut buf, key);
        assert_ne!(buf, data);
        apply_mask(&mut buf, key);
        assert_eq!(buf, data);
    }

    #[test]
    fn extend_masked_matches_in_place_mask_across_blocks() {
        let key = [9, 8, 7, 6];
        let data: Vec<u8> = (0..(STEP * 70 + 13)).map(|i| (i * 31) as u8).collect();
        for offset in [0, 1, 3, 5] {
            let mut dst = vec![0xaa];
            extend_masked(&mut dst, &data, key, offset);
            let mut expected = data.clone();
            naive(&mut expected, key, offset);
            assert_eq!(dst[0], 0xaa);
            assert_eq!(&dst[1..], &expected[..]);
        }
    }

    #[test]
    fn extend_masked_matches_bytewise_mask_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..200 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                let mut dst = vec![7u8; 3];
                extend_masked(&mut dst, &data, key, offset);
                let mut expected = data.clone();
                naive(&mut expected, key, offset);
                assert_eq!(&dst[..3], [7, 7, 7]);
                assert_eq!(&dst[3..], &expected[..], "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn extend_masked_into_spare_capacity_keeps_the_prefix_and_sets_the_length() {
        // Room already there (no reallocation), then none (reserve grows it).
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..300).map(|i| (i * 5) as u8).collect();
        for capacity in [1000, 4] {
            let mut dst = Vec::with_capacity(capacity);
            dst.extend_from_slice(&[1, 2, 3, 4]);
            extend_masked(&mut dst, &data, key, 2);
            extend_masked(&mut dst, &[], key, 0);
            let mut expected = data.clone();
            naive(&mut expected, key, 2);
            assert_eq!(dst.len(), 304);
            assert_eq!(&dst[..4], [1, 2, 3, 4]);
            assert_eq!(&dst[4..], &expected[..]);
        }
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut buf = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut buf, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&buf, b"Hello");
    }
}
