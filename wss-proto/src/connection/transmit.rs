//! Where a connection's frames go: the caller's transmit queue, as chunks.
//!
//! [`Connection::send`](crate::Connection::send) writes every frame into a queue the caller
//! owns (the network layer's per-socket queue, written with `writev`), so the protocol core
//! stays the only writer of frame headers while a large payload or a broadcast frame reaches
//! the socket without a copy.

use std::sync::Arc;

/// A message to send: owned bytes the connection frames (and compresses when
/// permessage-deflate was negotiated and the message reaches its threshold), or frames
/// encoded once for many connections.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// Already-encoded, unmasked frame(s), from [`encode_frame`](crate::encode_frame) or
    /// `encode_message_deflated` (with the `deflate` feature): the same bytes can
    /// go to many server connections (broadcast: encode once, share the `Arc`). They are
    /// queued as they are. A compressed frame (RSV1) may only go to a connection that
    /// negotiated permessage-deflate with a server window at least as large as the one it was
    /// compressed with; the connection's own compressor then drops its history, so later
    /// messages stay decodable. Refused on a client connection, whose frames must be masked.
    Shared(Arc<[u8]>),
}

/// A queue of outgoing byte chunks owned by the caller, in order.
///
/// `Vec<u8>` implements it by appending (a copy), which suits tests and simple callers; a
/// network layer keeps owned and shared chunks apart and writes them with one `writev`.
pub trait Transmit {
    /// Appends the bytes `encode` writes to the end of the `Vec` it is given (`size` is a
    /// hint of how many).
    fn push_with(&mut self, size: usize, encode: impl FnOnce(&mut Vec<u8>));
    /// Appends a buffer the queue may keep as it is.
    fn push_owned(&mut self, bytes: Vec<u8>);
    /// Appends bytes shared with other queues.
    fn push_shared(&mut self, bytes: Arc<[u8]>);
    /// The scratch of the thread that owns this queue, if it lends one: a payload buffer
    /// whose bytes were copied into the queue goes back to it (for the next message the
    /// thread receives), and a message compressed without context takeover borrows its
    /// compressor from it. By default none: the buffer is dropped and such a compressor is
    /// made for the message.
    #[inline]
    fn scratch(&mut self) -> Option<&mut crate::Scratch> {
        None
    }
}

impl Transmit for Vec<u8> {
    fn push_with(&mut self, size: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        self.reserve(size);
        encode(self);
    }

    fn push_owned(&mut self, bytes: Vec<u8>) {
        if self.is_empty() {
            *self = bytes;
        } else {
            self.extend_from_slice(&bytes);
        }
    }

    fn push_shared(&mut self, bytes: Arc<[u8]>) {
        self.extend_from_slice(&bytes);
    }
}
