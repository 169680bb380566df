//! The working memory a thread lends to the connections it drives.
//!
//! A connection holds nothing while it is idle: what a frame split across reads, a queued
//! event or a received message needs is lent for that time from a [`Scratch`] and given back
//! to it. One scratch serves every connection a thread drives; the caller owns it and passes
//! it in, so the protocol core has no hidden per-thread state.

use super::decoder::{Inflaters, Partials};
use super::events::Rings;
use crate::pool::Buffers;

/// Reusable memory for the connections one thread drives: payload buffers for received
/// messages, the boxes a frame split across reads is gathered in, the rings events wait in,
/// the inflaters and compressors lent for one message where a direction has no context
/// takeover, and (with the
/// `in-place` feature) the reassembly buffer of
/// [`receive_in_place`](crate::Connection::receive_in_place).
///
/// Make one per thread that drives connections and pass it by `&mut` to the methods that
/// need it ([`receive`](crate::Connection::receive),
/// [`poll_event`](crate::Connection::poll_event)). A network layer keeps one per event-loop
/// thread; a test or a blocking client keeps one next to its connection. Which scratch a
/// connection is used with may change from call to call (a connection dialled on one thread
/// and then driven by an event loop on another works): whatever a connection holds between
/// calls is its own.
///
/// Why not per-thread statics: the owner decides how long the memory lives and where
/// (dropping the scratch frees it all), nothing is shared behind the caller's back, and a
/// field access is cheaper than a thread-local lookup.
///
/// Everything kept is bounded: at most [`MAX_BUFFERS`](crate::internal::pool::MAX_BUFFERS)
/// payload buffers and [`MAX_BYTES`](crate::internal::pool::MAX_BYTES) of their capacity,
/// 64 partial-frame boxes (about 250 bytes each), 64 event rings, and 4 inflaters and 4
/// compressors (one per window size and level in use).
///
/// # Example
/// ```
/// use std::time::Instant;
/// use wss_proto::{Config, Connection, Event, Message, Role, Scratch};
///
/// let mut scratch = Scratch::new();
/// let now = Instant::now();
/// let mut server = Connection::new(Role::Server, Config::default(), now);
/// server.receive(&mut scratch, now, &[0x82, 0x83, 0, 0, 0, 0, 1, 2, 3]); // binary [1, 2, 3]
/// let Some(Event::Message(Message::Binary(first))) = server.poll_event(&mut scratch) else {
///     panic!()
/// };
/// // Done with the payload: its buffer serves the next message of its size.
/// let kept = first.as_ptr();
/// scratch.recycle(first);
/// server.receive(&mut scratch, now, &[0x82, 0x83, 0, 0, 0, 0, 4, 5, 6]);
/// let Some(Event::Message(Message::Binary(second))) = server.poll_event(&mut scratch) else {
///     panic!()
/// };
/// assert_eq!(second, [4, 5, 6]);
/// assert_eq!(second.as_ptr(), kept, "the second message reused the first one's buffer");
/// ```
#[derive(Default)]
pub struct Scratch {
    pub(crate) buffers: Buffers,
    pub(crate) partials: Partials,
    pub(crate) rings: Rings,
    /// Inflaters borrowed for one compressed message from peers without context takeover.
    pub(crate) inflaters: Inflaters,
    /// Compressors lent for one message when this side compresses without context takeover
    /// (through a transmit queue that lends its scratch, [`Transmit::scratch`](crate::Transmit::scratch)).
    #[cfg(feature = "deflate")]
    pub(crate) compressors: crate::deflate::Compressors,
    /// The reassembly buffer of the borrowed receive path.
    #[cfg(feature = "in-place")]
    pub(crate) spare: Vec<u8>,
}

impl Scratch {
    /// An empty scratch: it allocates nothing until connections give memory back to it.
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// Gives a payload buffer back (its contents are never handed out again): call it where a received
    /// message's buffer, or a written frame buffer, would otherwise be freed. The next
    /// message received with this scratch, or the next [`take`](Self::take), of a size it
    /// fits gets it. A buffer over 256 KiB, or one past the scratch's bounds, is freed.
    #[inline]
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        self.buffers.recycle(bytes);
    }

    /// An empty buffer with room for `len` bytes: a recycled one when one of the last few
    /// given back fits (at least `len`, at most about twice that), a new one otherwise. The
    /// connections take their message buffers here; a caller that fills buffers of its own
    /// (a frame queue) may too, and [`recycle`](Self::recycle) them once written.
    ///
    /// # Example
    /// ```
    /// let mut scratch = wss_proto::Scratch::new();
    /// let buffer = scratch.take(1000);
    /// assert!(buffer.is_empty() && buffer.capacity() >= 1000);
    /// ```
    #[inline]
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        self.buffers.take(len)
    }
}

/// Counts, not contents: a scratch's buffers hold only bytes it will never hand out.
impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("buffers", &self.buffers.held())
            .field("partials", &self.partials.len())
            .field("rings", &self.rings.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_can_move_to_another_thread() {
        fn send<T: Send>(_: &T) {}
        send(&Scratch::new());
    }
}
