#![doc = include_str!("../README.md")]
//!
//! # Design
//!
//! ## Each payload byte is copied once, or not at all
//! Received payload goes from the caller's buffer straight into the message's own `Vec`,
//! unmasked on the way (`mask::extend_masked`, 64 bytes at a time). A one-frame message
//! that arrived whole gets one allocation of exactly its size. Only a partial header
//! (at most 14 bytes) is ever held back.
//!
//! `Connection::receive_in_place` (feature `in-place`) goes further when the caller's buffer
//! may be written: a message that arrived whole is unmasked where it lies and lent to a
//! closure as a [`MessageRef`] (no copy, no allocation); one that needs gathering reuses the
//! scratch's spare buffer. Both APIs run the same loop and the same decoder.
//!
//! ## The caller owns the working memory
//! A connection holds no buffer while idle; what it needs while a frame is part-way across
//! reads, while events wait, or for a received message's payload is lent from a [`Scratch`]
//! the caller keeps (one per thread) and passes in. There is no process-wide or per-thread
//! state (no clock epoch, no thread-local cache): a connection made on one thread runs on
//! another.
//!
//! ## Memory is bounded by what the peer actually sent
//! Frame and message limits ([`Config`]) are checked on the header, before any payload is
//! stored, and buffers grow with the bytes that arrive, not with the length a header
//! announces.
//!
//! ## Bad input fails fast, once, with the right code
//! Every broken rule has its own [`ProtocolError`] variant and close code (1002, 1007 or
//! 1009). Text is validated as it arrives, so an invalid byte fails the connection even
//! inside a frame whose end has not come. The first failure is reported once
//! ([`Event::Failed`]), its close frame is queued, and nothing after it is read. Mistakes of
//! the local caller are a different type, [`SendError`], and change nothing.
//!
//! ## Timers are a table, time is a parameter
//! The close timeout and the idle timer (ping at half, give up at full) are deadlines in a
//! fixed table; [`Connection::poll_timeout`] gives the earliest and
//! [`Connection::handle_timeout`] runs them. Tests drive a client and a server against each
//! other with a fake clock.
//!
//! ## Compression costs memory only while it works
//! permessage-deflate (RFC 7692, the default `deflate` feature) is negotiated in
//! [`handshake::deflate`] and switched on with [`Config::deflate`]. A compressed message is
//! inflated as its bytes arrive and refused one byte past the message limit, so a compression
//! bomb costs no more than an honest message. A direction without context takeover borrows
//! its inflater or compressor from the [`Scratch`] for each message and holds nothing
//! between messages; with context
//! takeover the connection keeps its own (about 410 KiB for both at 2^15 windows) while it
//! works, and only the last bytes of each direction (about 40 KiB) once it is quiet:
//! [`Connection::hibernate`], done at the idle ping, drops the zlib state and the next message
//! rebuilds it from those bytes. A broadcast is compressed once for all receivers with
//! [`frame::encode_message_deflated`].
//!
//! ## Room for other extensions
//! Other RSV bits are checked against [`Config::allowed_rsv`], so another extension can claim
//! them without touching the frame code.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod close;
mod connection;
#[cfg(feature = "deflate")]
mod deflate;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod message;
mod pool;
mod text;
mod utf8;

pub use close::{CloseCode, MAX_REASON_LEN};
#[cfg(feature = "in-place")]
pub use connection::EventRef;
pub use connection::{
    CloseReply, Config, Connection, Event, Outgoing, ReadAhead, Role, Scratch, State, Timeout,
    Transmit,
};
pub use error::{ProtocolError, SendError};
#[cfg(feature = "deflate")]
pub use frame::encode_message_deflated;
pub use frame::{encode_frame, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, RSV1};
pub use handshake::deflate::{DeflateConfig, DeflateParams};
pub use message::{Message, MessageRef};

/// What only this workspace's own layers (wss-net, wss-server, the benches, the fuzz
/// drivers) use: codec pieces and the scratch's buffer bounds. Not part of the stable API: it
/// may change in any release.
#[doc(hidden)]
pub mod internal {
    pub use crate::close::{parse_close_payload, truncate_reason};
    pub use crate::mask::{apply_mask, apply_mask_offset, extend_masked};
    pub use crate::utf8::{Utf8Error, Utf8Validator};

    /// The bounds of a [`Scratch`](crate::Scratch)'s payload buffers.
    pub mod pool {
        pub use crate::pool::{MAX_BUFFERS, MAX_BYTES, MAX_CAPACITY};
    }
}
