//! Payload buffers a thread reuses for the messages it receives.
//!
//! [`Connection::receive`](crate::Connection::receive) hands each message over in a buffer of
//! its own. A server that echoes or relays messages frees that buffer on the same thread soon
//! after (once the payload is copied into a frame, or written), and receives the next message
//! of the same size a moment later. glibc's per-thread cache holds 7 chunks of a size, so in
//! a loop turn that receives hundreds of messages most of those allocations and frees took
//! its slow path (bin search, coalescing): a tenth of the loop's user time in a 1 KiB echo.
//! A buffer given back with [`recycle`] is kept here instead and handed to the next message
//! of a size it fits.
//!
//! The pool is bounded (at most [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] of capacity per
//! thread, none over [`MAX_CAPACITY`]), and a buffer is only reused for a message it does
//! not dwarf, so a large buffer never sits under a small message.

use std::cell::RefCell;

/// Buffers one thread keeps: enough for a turn's worth of small messages.
pub const MAX_BUFFERS: usize = 1024;

/// Capacity one thread keeps, all buffers together.
pub const MAX_BYTES: usize = 1 << 20;

/// A buffer larger than this is freed rather than kept.
pub const MAX_CAPACITY: usize = 256 * 1024;

/// How many of the most recently returned buffers a request looks at: a steady size finds
/// its buffer on top, and a mix of a few sizes still finds one without a search.
const SCAN: usize = 4;

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    /// Capacity of `buffers`, summed.
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Whether a buffer of `capacity` may carry a message of `len` bytes: large enough, and not
/// so much larger that it would hold memory the message does not need.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity <= len.saturating_mul(2).max(256)
}

/// Gives a payload buffer back for the next message this thread receives (its contents are
/// dropped). Call it where a received message's buffer would otherwise be freed, on the
/// thread that receives; a buffer over [`MAX_CAPACITY`], or one that would take the thread
/// past [`MAX_BUFFERS`] or [`MAX_BYTES`], is freed.
///
/// # Example
/// ```
/// use std::time::Instant;
/// use wss_proto::{Config, Connection, Event, Message, Role};
///
/// let now = Instant::now();
/// let mut server = Connection::new(Role::Server, Config::default(), now);
/// server.receive(now, &[0x82, 0x83, 0, 0, 0, 0, 1, 2, 3]); // binary [1, 2, 3], zero mask
/// let Some(Event::Message(Message::Binary(first))) = server.poll_event() else { panic!() };
/// let kept = first.as_ptr();
/// wss_proto::internal::pool::recycle(first);
/// server.receive(now, &[0x82, 0x83, 0, 0, 0, 0, 4, 5, 6]);
/// let Some(Event::Message(Message::Binary(second))) = server.poll_event() else { panic!() };
/// assert_eq!(second, [4, 5, 6]);
/// assert_eq!(second.as_ptr(), kept, "the second message reused the first one's buffer");
/// ```
pub fn recycle(mut bytes: Vec<u8>) {
    let capacity = bytes.capacity();
    if capacity == 0 || capacity > MAX_CAPACITY {
        return;
    }
    bytes.clear();
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.buffers.len() < MAX_BUFFERS && pool.bytes + capacity <= MAX_BYTES {
            pool.bytes += capacity;
            pool.buffers.push(bytes);
        }
    });
}

/// An empty buffer with room for `len` bytes: a recycled one when one of the last few given
/// back fits (at least `len`, at most about twice that), a new one otherwise. The protocol
/// takes its message buffers here; a caller that fills buffers of its own on the same thread
/// (a frame queue) may too, and give them back with [`recycle`] once written.
///
/// # Example
/// ```
/// let buffer = wss_proto::internal::pool::take(1000);
/// assert!(buffer.is_empty() && buffer.capacity() >= 1000);
/// ```
pub fn take(len: usize) -> Vec<u8> {
    let found = POOL
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let n = pool.buffers.len();
            let at = (n.saturating_sub(SCAN)..n)
                .rev()
                .find(|&i| pool.buffers.get(i).is_some_and(|b| fits(b.capacity(), len)))?;
            let buffer = pool.buffers.swap_remove(at);
            pool.bytes -= buffer.capacity();
            Some(buffer)
        })
        .ok()
        .flatten();
    found.unwrap_or_else(|| Vec::with_capacity(len))
}

/// Buffers and bytes this thread's pool holds (tests).
#[cfg(test)]
fn held() -> (usize, usize) {
    POOL.with(|p| {
        let p = p.borrow();
        (p.buffers.len(), p.bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_serves_the_next_message_of_its_size() {
        let buffer = vec![7u8; 1000];
        let ptr = buffer.as_ptr();
        recycle(buffer);
        let again = take(1000);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty(), "contents are dropped");
        assert!(again.capacity() >= 1000);
        assert_eq!(held(), (0, 0));
    }

    #[test]
    fn a_buffer_is_not_lent_to_a_message_it_dwarfs_or_cannot_hold() {
        recycle(Vec::with_capacity(4096));
        assert!(take(100).capacity() < 4096, "100 bytes do not get 4 KiB");
        assert!(take(5000).capacity() >= 5000, "too small is never lent");
        assert_eq!(
            held().0,
            1,
            "the 4 KiB buffer waits for a message of its size"
        );
        assert_eq!(take(3000).capacity(), 4096);
        assert_eq!(held(), (0, 0));
    }

    #[test]
    fn the_pool_is_bounded_in_count_bytes_and_buffer_size() {
        recycle(Vec::with_capacity(MAX_CAPACITY + 1));
        assert_eq!(held(), (0, 0), "an oversized buffer is freed");
        for _ in 0..MAX_BYTES / MAX_CAPACITY + 2 {
            recycle(Vec::with_capacity(MAX_CAPACITY));
        }
        assert_eq!(held(), (MAX_BYTES / MAX_CAPACITY, MAX_BYTES));
        while held().0 > 0 {
            take(MAX_CAPACITY);
        }
        for _ in 0..MAX_BUFFERS + 10 {
            recycle(Vec::with_capacity(8));
        }
        assert_eq!(held().0, MAX_BUFFERS);
    }

    #[test]
    fn a_mix_of_sizes_finds_its_buffers_among_the_last_returned() {
        recycle(Vec::with_capacity(1024));
        recycle(Vec::with_capacity(65536));
        assert_eq!(take(1024).capacity(), 1024, "found under the top");
        assert_eq!(take(65536).capacity(), 65536);
        assert_eq!(held(), (0, 0));
    }
}
