//! Masking (RFC 6455 §5.3): XOR of the payload with a repeating 4-byte key.
//!
//! This is the hottest loop of a server, so it works on 8 bytes at a time (which the
//! compiler widens to SIMD registers) instead of byte by byte, and never allocates.
//! Everything here is safe code: `chunks_exact` lets the compiler drop the bounds checks.

/// Bytes copied per block by [`extend_masked`]: small enough that the block is still in
/// L1 cache when it is XORed in place right after the copy.
const BLOCK: usize = 4096;

/// The key repeated over 8 bytes, rotated so that byte 0 of the word lines up with payload
/// byte `offset`.
#[inline]
fn key_word(key: [u8; 4], offset: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = key[(offset + i) & 3];
    }
    u64::from_ne_bytes(bytes)
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
    let word = key_word(key, offset);
    // 32-byte steps give the vectoriser four independent words per iteration.
    let mut wide = buf.chunks_exact_mut(32);
    for chunk in &mut wide {
        for lane in chunk.chunks_exact_mut(8) {
            xor_word(lane, word);
        }
    }
    let rest = wide.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for lane in &mut words {
        xor_word(lane, word);
    }
    // Every full step above is a multiple of 4 bytes, so the key phase of the tail is
    // still `offset`.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[inline(always)]
fn xor_word(lane: &mut [u8], word: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(lane);
    let v = u64::from_ne_bytes(bytes) ^ word;
    lane.copy_from_slice(&v.to_ne_bytes());
}

/// Appends `src` to `dst`, XORed with `key` (with `src[0]` being payload byte `offset`).
///
/// This is the one copy a received payload makes: from the caller's input into the
/// message buffer. It copies a cache-sized block, then unmasks that block while it is
/// still hot, so the data crosses memory once. `dst` grows by exactly `src.len()`.
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    dst.reserve(src.len());
    let mut phase = offset;
    for block in src.chunks(BLOCK) {
        let start = dst.len();
        dst.extend_from_slice(block);
        if let Some(tail) = dst.get_mut(start..) {
            apply_mask_offset(tail, key, phase);
        }
        phase = phase.wrapping_add(block.len());
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
        for len in 0..80 {
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
        let data: Vec<u8> = (0..(BLOCK * 2 + 13)).map(|i| (i * 31) as u8).collect();
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
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut buf = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut buf, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&buf, b"Hello");
    }
}
