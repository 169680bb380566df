//! Payload buffers reused for the messages a thread receives, kept in its [`Scratch`](crate::Scratch).
//!
//! [`Connection::receive`](crate::Connection::receive) hands each message over in a buffer of
//! its own. A server that echoes or relays messages frees that buffer on the same thread soon
//! after (once the payload is copied into a frame, or written), and receives the next message
//! of the same size a moment later. glibc's per-thread cache holds 7 chunks of a size, so in
//! a loop turn that receives hundreds of messages most of those allocations and frees took
//! its slow path (bin search, coalescing): a tenth of the loop's user time in a 1 KiB echo.
//! A buffer given back with [`Scratch::recycle`](crate::Scratch::recycle) is kept here instead
//! and handed to the next message of a size it fits.
//!
//! The pool is bounded (at most [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] of capacity per
//! scratch, none over [`MAX_CAPACITY`]), and a buffer is only reused for a message it does
//! not dwarf, so a large buffer never sits under a small message.
//!
//! A kept buffer keeps its length (its old bytes) until it is taken: [`Buffers::take`] empties
//! it, while [`Buffers::take_filled`] lends it at a given length for a socket read to
//! overwrite, and only zeroes what the old bytes do not cover (it never zeroes a new buffer
//! whole: with no kept buffer, there is no read ahead). A read straight into a message
//! buffer (`Connection::read_ahead`) then costs no `memset` in a steady stream of one size.
//! Old bytes are never handed out as payload: the read overwrites them, and the buffer is cut
//! to what the read wrote.

/// Buffers a pool keeps: enough for a turn's worth of small messages.
pub const MAX_BUFFERS: usize = 1024;

/// Capacity a pool keeps, all buffers together.
pub const MAX_BYTES: usize = 1 << 20;

/// A buffer larger than this is freed rather than kept.
pub const MAX_CAPACITY: usize = 256 * 1024;

/// How many of the most recently returned buffers a request looks at: a steady size finds
/// its buffer on top, and a mix of a few sizes still finds one without a search.
const SCAN: usize = 4;

/// The payload buffers of one [`Scratch`](crate::Scratch).
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    buffers: Vec<Vec<u8>>,
    /// Capacity of `buffers`, summed.
    bytes: usize,
}

/// Whether a buffer of `capacity` may carry a message of `len` bytes: large enough, and not
/// so much larger that it would hold memory the message does not need.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity <= len.saturating_mul(2).max(256)
}

impl Buffers {
    /// Keeps `bytes` for a later [`take`](Self::take), unless it is over [`MAX_CAPACITY`] or
    /// would take the pool past [`MAX_BUFFERS`] or [`MAX_BYTES`].
    #[inline]
    pub(crate) fn recycle(&mut self, bytes: Vec<u8>) {
        let capacity = bytes.capacity();
        if capacity == 0 || capacity > MAX_CAPACITY {
            return;
        }
        if self.buffers.len() < MAX_BUFFERS && self.bytes + capacity <= MAX_BYTES {
            self.bytes += capacity;
            self.buffers.push(bytes);
        }
    }

    /// An empty buffer with room for `len` bytes: one of the last few given back when it fits
    /// (at least `len`, at most about twice that), a new one otherwise.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Vec<u8> {
        let mut buffer = self.find_or_new(len);
        buffer.clear();
        buffer
    }

    /// A kept buffer of at least `min` bytes' capacity, at its capacity or `max` bytes
    /// (whichever is less), for a read to overwrite: its old bytes, and zeroes past them.
    /// `None` when no kept buffer fits: a new one would have to be zeroed whole, a pass over
    /// memory as costly as the copy a read into it saves.
    pub(crate) fn take_filled(&mut self, min: usize, max: usize) -> Option<Vec<u8>> {
        let mut buffer = self.find(min)?;
        let len = buffer.capacity().min(max).max(min);
        buffer.resize(len, 0);
        Some(buffer)
    }

    /// A kept buffer that fits `len` (as it was given back), or a new empty one.
    #[inline]
    fn find_or_new(&mut self, len: usize) -> Vec<u8> {
        self.find(len).unwrap_or_else(|| Vec::with_capacity(len))
    }

    /// A kept buffer that fits `len`, as it was given back.
    #[inline]
    fn find(&mut self, len: usize) -> Option<Vec<u8>> {
        let n = self.buffers.len();
        let at = (n.saturating_sub(SCAN)..n)
            .rev()
            .find(|&i| self.buffers.get(i).is_some_and(|b| fits(b.capacity(), len)))?;
        let buffer = self.buffers.swap_remove(at);
        self.bytes -= buffer.capacity();
        Some(buffer)
    }

    /// Buffers and bytes held.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.buffers.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Buffers {
        Buffers::default()
    }

    #[test]
    fn a_recycled_buffer_serves_the_next_message_of_its_size() {
        let mut p = pool();
        let buffer = vec![7u8; 1000];
        let ptr = buffer.as_ptr();
        p.recycle(buffer);
        let again = p.take(1000);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty(), "contents are dropped");
        assert!(again.capacity() >= 1000);
        assert_eq!(p.held(), (0, 0));
    }

    #[test]
    fn a_filled_buffer_keeps_the_old_bytes_it_covers_and_zeroes_the_rest() {
        let mut p = pool();
        let mut buffer = Vec::with_capacity(1000);
        buffer.extend_from_slice(&[7u8; 600]);
        let ptr = buffer.as_ptr();
        p.recycle(buffer);
        let filled = p.take_filled(800, 800).expect("the kept buffer fits");
        assert_eq!(filled.as_ptr(), ptr, "the kept buffer is reused");
        assert_eq!(filled.len(), 800);
        assert!(
            filled[..600].iter().all(|&b| b == 7),
            "old bytes are not rewritten"
        );
        assert!(filled[600..].iter().all(|&b| b == 0));
        let none = p.take_filled(300, 300);
        assert!(none.is_none(), "no new buffer is zeroed whole");
        p.recycle(filled);
        let cut = p.take_filled(500, 600).map(|b| b.len());
        assert_eq!(
            cut,
            Some(600),
            "a longer kept buffer is cut at the most asked"
        );
        let mut exact = Vec::with_capacity(20_000);
        exact.resize(20_000, 1);
        p.recycle(exact);
        let at_capacity = p.take_filled(19_969, 20_032).map(|b| b.len());
        assert_eq!(at_capacity, Some(20_000), "no more than its capacity");
    }

    #[test]
    fn a_buffer_is_not_lent_to_a_message_it_dwarfs_or_cannot_hold() {
        let mut p = pool();
        p.recycle(Vec::with_capacity(4096));
        assert!(p.take(100).capacity() < 4096, "100 bytes do not get 4 KiB");
        assert!(p.take(5000).capacity() >= 5000, "too small is never lent");
        assert_eq!(
            p.held().0,
            1,
            "the 4 KiB buffer waits for a message of its size"
        );
        assert_eq!(p.take(3000).capacity(), 4096);
        assert_eq!(p.held(), (0, 0));
    }

    #[test]
    fn the_pool_is_bounded_in_count_bytes_and_buffer_size() {
        let mut p = pool();
        p.recycle(Vec::with_capacity(MAX_CAPACITY + 1));
        assert_eq!(p.held(), (0, 0), "an oversized buffer is freed");
        for _ in 0..MAX_BYTES / MAX_CAPACITY + 2 {
            p.recycle(Vec::with_capacity(MAX_CAPACITY));
        }
        assert_eq!(p.held(), (MAX_BYTES / MAX_CAPACITY, MAX_BYTES));
        while p.held().0 > 0 {
            p.take(MAX_CAPACITY);
        }
        for _ in 0..MAX_BUFFERS + 10 {
            p.recycle(Vec::with_capacity(8));
        }
        assert_eq!(p.held().0, MAX_BUFFERS);
    }

    #[test]
    fn a_mix_of_sizes_finds_its_buffers_among_the_last_returned() {
        let mut p = pool();
        p.recycle(Vec::with_capacity(1024));
        p.recycle(Vec::with_capacity(65536));
        assert_eq!(p.take(1024).capacity(), 1024, "found under the top");
        assert_eq!(p.take(65536).capacity(), 65536);
        assert_eq!(p.held(), (0, 0));
    }
}
