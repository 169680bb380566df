//! How a connection is set up: its role, its limits and timers, and its close rule.

use std::time::Duration;

#[cfg(doc)]
use super::{Connection, Event};
use crate::handshake::deflate::DeflateParams;

/// Which end of the connection this is. It decides the masking rules: a client masks what
/// it sends and refuses masked frames; a server the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepted the connection; receives masked frames.
    Server,
    /// Opened the connection; sends masked frames.
    Client,
}

/// Limits and timers of a connection. `Default` gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest payload of one received frame, in bytes. Default 16 MiB. Over it the
    /// connection fails with 1009 before storing any of the frame.
    pub max_frame_size: usize,
    /// Largest received message (all its frames), in bytes. Default 16 MiB; 1009 over it.
    /// This bounds the memory one connection can make us hold.
    pub max_message_size: usize,
    /// RSV bits a negotiated extension gave a meaning to (RSV1 = 0b100). Default 0: any
    /// RSV bit fails with 1002. permessage-deflate claims RSV1 through
    /// [`deflate`](Self::deflate), not through this field.
    pub allowed_rsv: u8,
    /// How long to wait for the peer's close after sending ours. Default 5 s; then
    /// [`Event::TimedOut`] and the caller drops the TCP connection.
    pub close_timeout: Duration,
    /// With nothing received for half of it, a ping is sent; for all of it,
    /// [`Event::TimedOut`]. Default `None` (no idle timer): the network layer sets 120 s.
    pub idle_timeout: Option<Duration>,
    /// Seeds the generator of client mask keys. The protocol core has no entropy source,
    /// so a client should pass random bits here. Unused by servers. Default 0.
    pub mask_seed: u64,
    /// The permessage-deflate parameters agreed in the handshake
    /// ([`handshake::deflate`](crate::handshake::deflate)); `None` (the default) runs
    /// without compression. With them, RSV1 marks compressed messages: received ones are
    /// inflated (within `max_message_size`), and [`Connection::send_text`] /
    /// [`Connection::send_binary`] compress messages of at least `threshold` bytes.
    /// Ignored when the crate is built without its `deflate` feature.
    pub deflate: Option<DeflateParams>,
    /// When the close frame this end sends on its own goes out: the reply to the peer's
    /// close, and the close after a protocol failure. Default [`CloseReply::Auto`].
    pub close_reply: CloseReply,
}

/// When a connection sends the close frame nobody asked it for: the reply to the peer's
/// close, or the close after a protocol failure (RFC 6455 §5.5.1, §7.1.7).
///
/// Once that frame is queued nothing may follow it, so an owner that answers messages later
/// (on another thread, after the events were taken) would lose the answers to the messages
/// that came just before the close. `Deferred` lets it answer them first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CloseReply {
    /// Queued as soon as the close arrives or the failure happens. For an owner that answers
    /// each event as it takes it.
    #[default]
    Auto,
    /// Kept back: the connection reports the close ([`Event::CloseReceived`]) or the failure
    /// ([`Event::Failed`]) as usual, still accepts [`send_text`](Connection::send_text) and
    /// [`send_binary`](Connection::send_binary) (the answers), and queues the close frame after
    /// them on [`send_close_reply`](Connection::send_close_reply), or when the close timeout
    /// ([`Config::close_timeout`], counted from the read that brought the close) runs out
    /// ([`poll_timeout`](Connection::poll_timeout) includes that deadline).
    Deferred,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            allowed_rsv: 0,
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            mask_seed: 0,
            deflate: None,
            close_reply: CloseReply::Auto,
        }
    }
}

/// Which timer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// Our close frame was not answered within `Config::close_timeout`.
    Close,
    /// Nothing was received within `Config::idle_timeout`.
    Idle,
}
