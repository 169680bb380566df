//! One WebSocket connection after the handshake, as a state machine.
//!
//! Feed it what the socket read ([`Connection::receive`]), take what happened
//! ([`Connection::poll_event`]) and what to write ([`Connection::poll_transmit`]), and tell
//! it when its deadline passed ([`Connection::handle_timeout`]). It never reads a clock and
//! never touches a socket.
//!
//! The type and its state live here; its methods are split by job: `receive` (the receive
//! loop and what a received control frame does), `send` (framing what the owner sends),
//! `closing` (the closing handshake, the deferred close reply and the timers).

mod ahead;
mod closing;
mod config;
mod decoder;
mod events;
mod receive;
mod scratch;
mod send;
mod timer;
mod transmit;

use std::sync::Arc;
use std::time::Instant;

use crate::close::CloseCode;
#[cfg(feature = "deflate")]
use crate::deflate::Deflater;
use crate::error::ProtocolError;
use crate::handshake::deflate::DeflateParams;
use crate::message::Message;
#[cfg(feature = "in-place")]
use crate::message::MessageRef;
pub use ahead::ReadAhead;
pub use config::{CloseReply, Config, Role, Timeout};
use decoder::{Decoder, Inflater};
use events::EventQueue;
pub use scratch::Scratch;
use timer::Timers;
pub use transmit::{Outgoing, Transmit};

/// Something that happened on the connection, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole data message.
    Message(Message),
    /// A ping. Its pong (same payload) is already queued, unless we had sent close.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame. If we had not sent close yet, the echo (same code, empty
    /// reason) is already queued. `code: None` is reported upward as 1005.
    CloseReceived {
        /// The peer's code; `None` when the frame had no payload.
        code: Option<CloseCode>,
        /// The peer's reason (may be empty).
        reason: String,
    },
    /// The peer broke the protocol. The close frame with `error.close_code()` is queued and
    /// nothing more is read: write the output, then close TCP. Reported once.
    Failed(ProtocolError),
    /// A timer ran out: drop the TCP connection now (reported upward as 1006).
    TimedOut(Timeout),
}

/// What [`Connection::receive_in_place`] (feature `in-place`) found, borrowing its payload: the counterpart of
/// [`Event`] for everything that comes from received bytes (timeouts come from
/// [`Connection::handle_timeout`] and stay in [`Connection::poll_event`]).
#[cfg(feature = "in-place")]
#[cfg_attr(docsrs, doc(cfg(feature = "in-place")))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRef<'a> {
    /// A whole data message.
    Message(MessageRef<'a>),
    /// A ping. Its pong (same payload) is already queued, unless we had sent close.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame; as [`Event::CloseReceived`].
    CloseReceived {
        /// The peer's code; `None` when the frame had no payload.
        code: Option<CloseCode>,
        /// The peer's reason (may be empty).
        reason: &'a str,
    },
    /// The peer broke the protocol; as [`Event::Failed`]. Reported once, and last.
    Failed(ProtocolError),
}

#[cfg(feature = "in-place")]
impl EventRef<'_> {
    /// The owned event that [`Connection::receive`] would have queued for the same bytes.
    pub fn to_event(&self) -> Event {
        match self {
            EventRef::Message(m) => Event::Message(m.to_message()),
            EventRef::Ping(p) => Event::Ping(p.to_vec()),
            EventRef::Pong(p) => Event::Pong(p.to_vec()),
            EventRef::CloseReceived { code, reason } => Event::CloseReceived {
                code: *code,
                reason: (*reason).to_owned(),
            },
            EventRef::Failed(e) => Event::Failed(e.clone()),
        }
    }
}

/// Where the closing handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent close and wait for the peer's; received messages are still delivered.
    Closing,
    /// The handshake finished, failed or timed out: flush the output, then close TCP.
    Closed,
}

/// A WebSocket connection in either role, after the opening handshake.
///
/// # Example
/// ```
/// use std::time::Instant;
/// use wss_proto::{Config, Connection, Event, Message, Role, Scratch};
///
/// let mut scratch = Scratch::new(); // one per thread, for all its connections
/// let now = Instant::now();
/// let mut server = Connection::new(Role::Server, Config::default(), now);
/// // A masked text frame "Hi", as a client sends it.
/// server.receive(&mut scratch, now, &[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
/// while let Some(event) = server.poll_event(&mut scratch) {
///     if let Event::Message(Message::Text(text)) = event {
///         server.send_text(&text).unwrap();
///     }
/// }
/// let mut wire = Vec::new();
/// server.poll_transmit(&mut wire);
/// assert_eq!(wire, [0x81, 0x02, b'H', b'i']);
/// ```
///
/// # Memory
/// A connection is kept small because a server holds one per client, most of them idle:
/// the [`Config`] is shared (the caller passes one `Arc` to connections with equal configs),
/// compression state, the error and the close deadline are boxed, the idle timers are one
/// `Instant`, no buffer keeps capacity once drained, and what is needed only while a frame is
/// part-way across reads or while events wait to be taken lives in boxes lent from the
/// caller's [`Scratch`] while in use. An idle connection is `size_of::<Connection>()` bytes (80 on 64-bit
/// targets, checked by a test) and owns no heap memory, unless permessage-deflate is on.
#[derive(Debug)]
pub struct Connection {
    config: Arc<Config>,
    decoder: Decoder,
    events: EventQueue,
    out: Vec<u8>,
    timers: Timers,
    /// What most server connections never need, boxed so it costs one pointer until then.
    rare: Option<Box<Rare>>,
    role: Role,
    state: State,
    /// We are in the middle of sending a fragmented message.
    sending_fragments: bool,
    /// The half-idle ping is still to be sent for the current quiet spell.
    ping_armed: bool,
    /// `receive` was handed bytes after the connection closed (they were ignored).
    input_after_close: bool,
    /// How the next read may put a large payload straight into its buffer: a guess from
    /// how the last read ended, 0 for none (see `ahead`). Fits in the struct's padding.
    ahead: u16,
}

/// Connection state that a plain server connection without failures never uses.
#[derive(Debug)]
struct Rare {
    /// Set once by the first protocol failure; nothing is read after it.
    error: Option<ProtocolError>,
    /// The client's mask-key generator.
    mask_state: u64,
    /// Compresses what we send, once permessage-deflate was negotiated.
    #[cfg(feature = "deflate")]
    deflater: Option<Deflater>,
    /// Inflates what we receive, once permessage-deflate was negotiated: RSV1 then marks
    /// compressed messages. Lent to the decoder on each receive.
    #[cfg(feature = "deflate")]
    inflater: Option<Inflater>,
    /// What the closing handshake waits for, with its deadline.
    closing: Closing,
}

/// A wait of the closing handshake. The two never overlap: we owe a reply only when the
/// peer's close (or a failure) came while open, and we wait for the peer's close only after
/// sending ours while open. One field for both keeps the rare box as small as one.
#[derive(Debug, Default)]
enum Closing {
    #[default]
    None,
    /// We sent close; the peer's is due by `until` (`None`: past what `Instant` holds).
    Awaiting { until: Option<Instant> },
    /// The close frame [`CloseReply::Deferred`] keeps back until the owner's
    /// [`send_close_reply`](Connection::send_close_reply) or its deadline: the code it carries
    /// (none: an empty close), and when it goes out on its own (set at the end of the read that
    /// brought it).
    Reply {
        code: Option<CloseCode>,
        until: Option<Instant>,
    },
}

impl Rare {
    fn new(config: &Config) -> Box<Rare> {
        Box::new(Rare {
            error: None,
            mask_state: config.mask_seed,
            #[cfg(feature = "deflate")]
            deflater: None,
            #[cfg(feature = "deflate")]
            inflater: None,
            closing: Closing::None,
        })
    }
}

/// The connection's inflater, when permessage-deflate was negotiated.
fn inflater_of(rare: &mut Option<Box<Rare>>) -> Option<&mut Inflater> {
    #[cfg(feature = "deflate")]
    return rare.as_deref_mut()?.inflater.as_mut();
    #[cfg(not(feature = "deflate"))]
    {
        let _ = rare;
        None
    }
}

impl Connection {
    /// A connection whose handshake just completed at `now` (the idle timer starts here).
    ///
    /// `config` is a [`Config`] or an `Arc<Config>`: a server that makes many connections
    /// from equal configs passes clones of one `Arc`, so they share one copy.
    pub fn new(role: Role, config: impl Into<Arc<Config>>, now: Instant) -> Connection {
        let config: Arc<Config> = config.into();
        #[allow(unused_mut)]
        let mut rare = None;
        #[cfg(feature = "deflate")]
        if let Some(params) = config.deflate.as_ref() {
            let peer = match role {
                Role::Server => Role::Client,
                Role::Client => Role::Server,
            };
            let mut fresh = Rare::new(&config);
            let (peer_resets, peer_bits) = params.sender(peer);
            fresh.inflater = Some(Inflater::new(peer_bits, peer_resets));
            let (resets, bits) = params.sender(role);
            fresh.deflater = Some(Deflater::new(params.level, bits, resets, params.threshold));
            rare = Some(fresh);
        }
        let mut timers = Timers::default();
        let ping_armed = timers.received(now, config.idle_timeout);
        Connection {
            config,
            decoder: Decoder::default(),
            events: EventQueue::default(),
            out: Vec::new(),
            timers,
            rare,
            role,
            state: State::Open,
            sending_fragments: false,
            ping_armed,
            input_after_close: false,
            ahead: 0,
        }
    }

    /// Call when the peer closed TCP (read returned 0). The connection becomes `Closed`
    /// and its timers stop. Nothing is reported: if no close frame was exchanged the
    /// closure was abnormal and the caller reports 1006.
    pub fn handle_eof(&mut self) {
        self.enter_closed();
    }

    /// The next event, oldest first. Call after [`receive`](Self::receive) and
    /// [`handle_timeout`](Self::handle_timeout) until it returns `None`. Taking the last one
    /// gives the queue's storage back to `scratch`.
    #[must_use]
    pub fn poll_event(&mut self, scratch: &mut Scratch) -> Option<Event> {
        self.events.pop(scratch)
    }

    /// The permessage-deflate parameters in force, if negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.config.deflate.as_ref()
    }

    /// True while data messages may be queued: `Open` (not failed, close not sent).
    pub fn can_send(&self) -> bool {
        self.state == State::Open
    }

    /// Where the closing handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration the connection was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether [`receive`](Self::receive) was handed bytes after the frame that closed the
    /// connection (the peer's close, or the frame that failed it), or after it had closed:
    /// they were ignored. False while the closing frame was the last byte received, which is
    /// what lets a server close TCP at once after the closing handshake (RFC 6455 §7.1.1)
    /// instead of reading on until the peer's EOF.
    pub fn input_after_close(&self) -> bool {
        self.input_after_close
    }

    /// Drops the permessage-deflate state of a quiet connection (about 410 KiB with context
    /// takeover and 2^15 windows), keeping only the last window it received and the last
    /// 8 KiB it sent (about 40 KiB); the next compressed message rebuilds it, exactly. Done on
    /// its own when the idle ping goes out; call it when this connection is known to be
    /// quiet. Cheap and harmless at any time (a message part-way through keeps its inflater).
    pub fn hibernate(&mut self) {
        #[cfg(feature = "deflate")]
        if let Some(rare) = self.rare.as_deref_mut() {
            crate::deflate::hibernate(rare.deflater.as_mut(), rare.inflater.as_mut());
        }
    }

    /// The protocol failure that stopped the connection, if any. It stays set (sticky).
    pub fn error(&self) -> Option<&ProtocolError> {
        self.rare.as_ref().and_then(|r| r.error.as_ref())
    }

    /// True when output is queued: ask the socket for writability.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Moves all queued output to the end of `out`. When `out` is empty the buffers are
    /// swapped instead of copied, so a caller that drains `out` fully keeps reusing both.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out.clear();
        }
    }
}

#[cfg(test)]
mod tests;
