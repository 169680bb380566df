//! One WebSocket connection after the handshake, as a state machine.
//!
//! Feed it what the socket read ([`Connection::receive`]), take what happened
//! ([`Connection::poll_event`]) and what to write ([`Connection::poll_transmit`]), and tell
//! it when its deadline passed ([`Connection::handle_timeout`]). It never reads a clock and
//! never touches a socket.

mod decoder;
mod events;
mod receive;
mod timer;
mod transmit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::close::{encode_close_payload, parse_close_payload, CloseCode};
#[cfg(feature = "deflate")]
use crate::deflate::Deflater;
use crate::error::{ProtocolError, SendError};
use crate::frame::{encode_frame, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD};
use crate::handshake::deflate::DeflateParams;
pub use crate::message::{Message, MessageRef};
use decoder::{Decoder, Inflater, Item, Limits};
use events::EventQueue;
use receive::{ControlEvent, InPlace, Mode, Owned};
use timer::{Due, Timers};
pub use transmit::{Outgoing, Transmit};

/// Payloads above this size are queued by [`Connection::send`] as their own chunk instead of
/// copied after their header.
const ZERO_COPY_MIN: usize = 16 * 1024;

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

/// What [`Connection::receive_in_place`] found, borrowing its payload: the counterpart of
/// [`Event`] for everything that comes from received bytes (timeouts come from
/// [`Connection::handle_timeout`] and stay in [`Connection::poll_event`]).
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
/// use wss_proto::{Config, Connection, Event, Message, Role};
///
/// let now = Instant::now();
/// let mut server = Connection::new(Role::Server, Config::default(), now);
/// // A masked text frame "Hi", as a client sends it.
/// server.receive(now, &[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
/// while let Some(event) = server.poll_event() {
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
/// compression state and the error are boxed, each timer is an 8-byte tick, no buffer
/// keeps capacity once drained, and what is needed only while a frame is part-way across reads
/// or while events wait to be taken lives in boxes lent from small per-thread pools (bounded)
/// while in use. An idle connection is `size_of::<Connection>()` bytes (80 on 64-bit
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
    /// The close frame [`CloseReply::Deferred`] keeps back until the owner's
    /// [`send_close_reply`](Connection::send_close_reply) or its deadline.
    reply: Option<PendingReply>,
}

/// A deferred close reply: the code it carries (none: an empty close), and when it goes out
/// on its own (set at the end of the read that brought it).
#[derive(Debug)]
struct PendingReply {
    code: Option<CloseCode>,
    until: Option<Instant>,
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
            reply: None,
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
        }
    }

    /// Call with every chunk the socket read, in order, split anywhere (down to one byte).
    ///
    /// Payload is unmasked while it is copied into the message buffer: one copy. Events and
    /// automatic replies (pongs, the close echo, the close after a failure) are queued;
    /// take them with [`poll_event`](Self::poll_event) and
    /// [`poll_transmit`](Self::poll_transmit). Input after `Closed` or a failure is ignored.
    ///
    /// [`receive_in_place`](Self::receive_in_place) does the same without copying or
    /// allocating, when the caller's buffer may be written to.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        self.run(now, &mut Owned { input: data });
    }

    /// As [`receive`](Self::receive), but payload stays in `data`: each message is unmasked
    /// where it lies and handed to `on_event` as an [`EventRef`] borrowing it, so a message
    /// that arrived whole costs no copy and no allocation. `on_event` also gets the
    /// connection, to answer right away ([`send_text`](Self::send_text) and the rest).
    ///
    /// Same rules, same limits, same errors, same replies as `receive` (the two share one
    /// loop); the only differences are where the events go and what `data` holds afterwards:
    /// the bytes of frames read here are unmasked in place, so treat `data` as consumed.
    /// A message that is fragmented, compressed, or split across calls is gathered in a
    /// buffer taken from a per-thread spare and given back after `on_event` returns, so it
    /// too costs no allocation once the thread has seen one as large (up to 256 KiB).
    ///
    /// Events are reported in the order they happened, [`EventRef::Failed`] at most once
    /// and last. Timeouts still go through [`poll_event`](Self::poll_event). Calling
    /// `receive` or `receive_in_place` again from inside `on_event` is allowed but reads the
    /// new bytes before the rest of `data`: do not.
    ///
    /// # Example
    /// ```
    /// use std::time::Instant;
    /// use wss_proto::{Config, Connection, EventRef, MessageRef, Role};
    ///
    /// let now = Instant::now();
    /// let mut server = Connection::new(Role::Server, Config::default(), now);
    /// // What a socket read: a masked text frame "Hi" and a masked ping "p".
    /// let mut read_buf = vec![0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2,
    ///                         0x89, 0x81, 5, 6, 7, 8, b'p' ^ 5];
    /// let mut seen = Vec::new();
    /// server.receive_in_place(now, &mut read_buf, |conn, event| {
    ///     if let EventRef::Message(MessageRef::Text(text)) = &event {
    ///         conn.send_text(text).unwrap();           // echo, no copy of our own
    ///     }
    ///     seen.push(event.to_event());                 // (the test keeps owned copies)
    /// });
    /// assert_eq!(seen.len(), 2);
    /// let mut wire = Vec::new();
    /// server.poll_transmit(&mut wire);
    /// assert_eq!(wire, [0x81, 0x02, b'H', b'i', 0x8a, 0x01, b'p']); // echo, then the pong
    /// ```
    pub fn receive_in_place<F>(&mut self, now: Instant, data: &mut [u8], on_event: F)
    where
        F: FnMut(&mut Connection, EventRef<'_>),
    {
        let mut mode = InPlace {
            data,
            pos: 0,
            f: on_event,
        };
        self.run(now, &mut mode);
    }

    /// The receive loop of both APIs: decode, apply the protocol's effects, report through
    /// `mode`.
    #[inline]
    fn run<M: Mode>(&mut self, now: Instant, mode: &mut M) {
        if self.state == State::Closed || mode.input().is_empty() {
            return;
        }
        self.decode(now, mode);
        if self.state == State::Closed {
            self.start_reply_wait(now);
        }
    }

    #[inline]
    fn decode<M: Mode>(&mut self, now: Instant, mode: &mut M) {
        let config = &*self.config;
        if self.timers.received(now, config.idle_timeout) {
            self.ping_armed = true;
        }
        let limits = Limits {
            role: self.role,
            allowed_rsv: config.allowed_rsv,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            recycle: M::RECYCLE,
        };
        loop {
            let input = mode.input();
            if input.is_empty() {
                return;
            }
            let (used, item) = match self.decoder.whole_message(input, limits) {
                Some((used, item)) => (used, Some(item)),
                None => self
                    .decoder
                    .step(input, limits, inflater_of(&mut self.rare)),
            };
            match item {
                None => mode.advance(used),
                Some(Item::Whole {
                    kind,
                    at,
                    len,
                    mask,
                }) => {
                    let delivered = mode.whole(self, kind, at, len, mask);
                    mode.advance(used);
                    if delivered.is_err() {
                        return self.fail_in(mode, ProtocolError::InvalidUtf8);
                    }
                }
                Some(Item::Message(message)) => {
                    mode.advance(used);
                    mode.message(self, message);
                }
                Some(Item::Control {
                    opcode,
                    at,
                    len,
                    mask,
                }) => {
                    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                    let len = len.min(MAX_CONTROL_PAYLOAD);
                    let src = input.get(at..at + len).unwrap_or_default();
                    let dst = payload.get_mut(..src.len()).unwrap_or_default();
                    dst.copy_from_slice(src);
                    if let Some(key) = mask {
                        crate::mask::apply_mask(dst, key);
                    }
                    mode.advance(used);
                    self.on_control(mode, opcode, payload.get(..len).unwrap_or_default());
                }
                Some(Item::ControlBuffered(opcode)) => {
                    mode.advance(used);
                    let (payload, len) = self.decoder.take_control();
                    self.on_control(mode, opcode, payload.get(..len).unwrap_or_default());
                }
                Some(Item::Failed(e)) => return self.fail_in(mode, e),
            }
            if self.state == State::Closed {
                return;
            }
        }
    }

    /// Call when the peer closed TCP (read returned 0). The connection becomes `Closed`
    /// and its timers stop. Nothing is reported: if no close frame was exchanged the
    /// closure was abnormal and the caller reports 1006.
    pub fn handle_eof(&mut self) {
        self.enter_closed();
    }

    /// The next event, oldest first. Call after [`receive`](Self::receive) and
    /// [`handle_timeout`](Self::handle_timeout) until it returns `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Queues a text message as one frame, compressed when permessage-deflate was negotiated
    /// and the text is at least the threshold long.
    ///
    /// # Errors
    /// [`SendError::Closed`] once close was sent or the connection closed;
    /// [`SendError::MessageInProgress`] during a fragmented send.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_message(Opcode::Text, text.as_bytes())
    }

    /// Queues a binary message as one frame, compressed as for
    /// [`send_text`](Self::send_text). Errors as for `send_text`.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_message(Opcode::Binary, data)
    }

    fn send_message(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), SendError> {
        if !self.can_send() && !self.close_reply_pending() {
            return Err(SendError::Closed);
        }
        if self.sending_fragments {
            return Err(SendError::MessageInProgress);
        }
        #[cfg(feature = "deflate")]
        if let Some(rare) = self.rare.as_deref_mut() {
            if let Some(deflater) = rare.deflater.as_mut().filter(|d| d.wants(payload.len())) {
                let mask = match self.role {
                    Role::Client => Some(next_mask(&mut rare.mask_state)),
                    Role::Server => None,
                };
                let rsv = crate::frame::RSV1;
                let out = &mut self.out;
                if crate::frame::encode_frame_with(out, true, rsv, opcode, mask, |v| {
                    deflater.compress(payload, v)
                }) {
                    return Ok(());
                }
            }
        }
        self.push_frame(true, opcode, payload);
        Ok(())
    }

    /// Drops the permessage-deflate state of a quiet connection (about 410 KiB with context
    /// takeover and 2^15 windows), keeping only the last window it received and the last
    /// 8 KiB it sent (about 40 KiB); the next compressed message rebuilds it, exactly. Done on its own when
    /// the idle ping goes out; call it when this connection is known to be quiet. Cheap and
    /// harmless at any time (a message part-way through keeps its inflater).
    pub fn hibernate(&mut self) {
        #[cfg(feature = "deflate")]
        if let Some(rare) = self.rare.as_deref_mut() {
            crate::deflate::hibernate(rare.deflater.as_mut(), rare.inflater.as_mut());
        }
    }

    /// The permessage-deflate parameters in force, if negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.config.deflate.as_ref()
    }

    /// Sends a message into the caller's transmit queue `tx`, after everything this
    /// connection queued before it (pongs, close): the network layer's send. Frames as
    /// [`send_text`](Self::send_text) / [`send_binary`](Self::send_binary) do, but an
    /// uncompressed server frame's payload is not copied into this connection's buffer: a
    /// large one becomes its own chunk (`push_owned`), a small one is copied once after its
    /// header and its buffer kept for the next message this thread receives. A shared frame is queued as
    /// it is; with context takeover, a compressed one cuts this side's compressor history
    /// (the peer's window now holds a message our compressor never saw).
    ///
    /// # Errors
    /// As for `send_text`, plus [`SendError::SharedOnClient`]. Nothing is queued then.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Instant;
    /// use wss_proto::{Config, Connection, Outgoing, Role};
    ///
    /// let mut server = Connection::new(Role::Server, Config::default(), Instant::now());
    /// let mut wire = Vec::new();
    /// server.send(Outgoing::Text("Hi".into()), &mut wire).unwrap();
    /// let shared: Arc<[u8]> = Arc::from(&[0x82, 0x01, 7][..]);
    /// server.send(Outgoing::Shared(shared), &mut wire).unwrap();
    /// assert_eq!(wire, [0x81, 0x02, b'H', b'i', 0x82, 0x01, 7]);
    /// ```
    pub fn send(&mut self, message: Outgoing, tx: &mut impl Transmit) -> Result<(), SendError> {
        if !self.can_send() && !self.close_reply_pending() {
            return Err(SendError::Closed);
        }
        if self.sending_fragments {
            return Err(SendError::MessageInProgress);
        }
        // Frames queued here before (pongs) keep their place ahead of this message.
        self.transmit_into(tx);
        let (opcode, payload) = match message {
            Outgoing::Shared(frames) => {
                if self.role == Role::Client {
                    return Err(SendError::SharedOnClient);
                }
                self.note_shared_frames(&frames);
                tx.push_shared(frames);
                return Ok(());
            }
            Outgoing::Text(text) => (Opcode::Text, text.into_bytes()),
            Outgoing::Binary(bytes) => (Opcode::Binary, bytes),
        };
        if self.role == Role::Client || self.compresses(payload.len()) {
            // Masking or compression writes a new payload anyway: framed in our buffer.
            self.send_message(opcode, &payload)?;
            self.transmit_into(tx);
            return Ok(());
        }
        // A server's frame is unmasked, so the payload goes out as it is: a large one as its
        // own chunk, a small one copied once after its header.
        if payload.len() > ZERO_COPY_MIN {
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            tx.push_with(FrameHeader::MAX_SIZE, |v| header.encode(v));
            tx.push_owned(payload);
        } else {
            tx.push_with(FrameHeader::MAX_SIZE + payload.len(), |v| {
                encode_frame(v, true, opcode, &payload, None);
            });
            // Most often a received message sent back or on: its buffer serves the next
            // message this thread receives.
            crate::pool::recycle(payload);
        }
        Ok(())
    }

    /// Moves what this connection queued (control frames, compressed or masked messages)
    /// into `tx`, handing its buffer over when it can.
    fn transmit_into(&mut self, tx: &mut impl Transmit) {
        if !self.out.is_empty() {
            tx.push_owned(std::mem::take(&mut self.out));
        }
    }

    /// Whether a message of `len` bytes would go out compressed.
    fn compresses(&self, len: usize) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(deflater) = self.rare.as_ref().and_then(|r| r.deflater.as_ref()) {
            return deflater.wants(len);
        }
        let _ = len;
        false
    }

    /// Shared frames went out past this side's compressor: when one of them is a compressed
    /// message and the compressor keeps history, that history is cut, or the next compressed
    /// message could refer to bytes at the wrong distance in the peer's window. Bytes that do
    /// not parse as whole frames are treated as compressed.
    fn note_shared_frames(&mut self, mut frames: &[u8]) {
        #[cfg(feature = "deflate")]
        if let Some(deflater) = self.rare.as_mut().and_then(|r| r.deflater.as_mut()) {
            if !deflater.keeps_context() {
                return;
            }
            while !frames.is_empty() {
                let Ok(Some((header, len))) = FrameHeader::parse(frames) else {
                    return deflater.reset();
                };
                if header.rsv & crate::frame::RSV1 != 0 {
                    return deflater.reset();
                }
                let end = usize::try_from(header.payload_len)
                    .ok()
                    .and_then(|n| n.checked_add(len));
                frames = end.and_then(|end| frames.get(end..)).unwrap_or_default();
            }
        }
        let _ = &mut frames;
    }

    /// Queues one frame: a fragment of a message (Text/Binary with `fin: false`, then
    /// Continuation frames, the last with `fin: true`), or a ping or pong.
    ///
    /// Text fragments are not checked for UTF-8 on their own, since a code point may
    /// straddle two fragments; the caller sends whole UTF-8 text across them. Fragments are
    /// never compressed (RSV1 clear), which permessage-deflate allows for any message.
    ///
    /// # Errors
    /// [`SendError::Closed`] after close; [`SendError::UseCloseMethod`] for close frames;
    /// [`SendError::ControlPayloadTooBig`] / [`SendError::FragmentedControlFrame`] for bad
    /// control frames; [`SendError::NoMessageInProgress`] / [`SendError::MessageInProgress`]
    /// for fragments out of order.
    pub fn send_frame(
        &mut self,
        opcode: Opcode,
        fin: bool,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if !self.can_send() {
            return Err(SendError::Closed);
        }
        match opcode {
            Opcode::Close => return Err(SendError::UseCloseMethod),
            Opcode::Ping | Opcode::Pong => {
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    return Err(SendError::ControlPayloadTooBig);
                }
                if !fin {
                    return Err(SendError::FragmentedControlFrame);
                }
            }
            Opcode::Continuation => {
                if !self.sending_fragments {
                    return Err(SendError::NoMessageInProgress);
                }
                self.sending_fragments = !fin;
            }
            Opcode::Text | Opcode::Binary => {
                if self.sending_fragments {
                    return Err(SendError::MessageInProgress);
                }
                self.sending_fragments = !fin;
            }
        }
        self.push_frame(fin, opcode, payload);
        Ok(())
    }

    /// Queues a ping (at most 125 bytes of payload). The peer answers with a pong event.
    ///
    /// # Errors
    /// [`SendError::Closed`] after close; [`SendError::ControlPayloadTooBig`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Ping, true, payload)
    }

    /// Starts the closing handshake: queues a close frame, moves to `Closing` and arms the
    /// close timer (`now + close_timeout`). The reason is cut to 123 bytes on a char boundary.
    ///
    /// # Errors
    /// [`SendError::Closed`] if close was already sent or received, or the connection
    /// failed; [`SendError::InvalidCloseCode`] for a code not valid on the wire (1005 and
    /// 1006 included).
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        self.push_close(Some(code), reason);
        self.state = State::Closing;
        self.timers.arm_close(now, self.config.close_timeout);
        Ok(())
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

    /// The protocol failure that stopped the connection, if any. It stays set (sticky).
    pub fn error(&self) -> Option<&ProtocolError> {
        self.rare.as_ref().and_then(|r| r.error.as_ref())
    }

    /// With [`CloseReply::Deferred`]: the owner has queued its answers to every event before
    /// the peer's close or the failure (the messages it was still handling), so the close
    /// frame kept back goes out now, after them. Does nothing when no reply waits (in
    /// `Auto` mode, or already sent).
    pub fn send_close_reply(&mut self) {
        let Some(reply) = self.rare.as_deref_mut().and_then(|r| r.reply.take()) else {
            return;
        };
        self.push_close(reply.code, "");
    }

    /// Whether a deferred close reply waits for [`send_close_reply`](Self::send_close_reply)
    /// (see [`CloseReply::Deferred`]).
    pub fn close_reply_pending(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.reply.is_some())
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

    /// The earliest deadline (close timer, idle ping, idle timeout), if any: call
    /// [`handle_timeout`](Self::handle_timeout) once it has passed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(until) = self.reply_deadline() {
            return Some(until);
        }
        self.timers.next(self.ping_armed, self.config.idle_timeout)
    }

    /// Runs the timers due at `now`. Calling it early or twice does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reply_deadline().is_some_and(|until| until <= now) {
            // The owner did not answer in time: the close goes out without its answers.
            self.send_close_reply();
        }
        if self.state == State::Closed {
            return;
        }
        let kind = match self
            .timers
            .due(now, self.ping_armed, self.config.idle_timeout)
        {
            None => return,
            Some(Due::Close) => Timeout::Close,
            Some(Due::Idle) => Timeout::Idle,
            Some(Due::Ping) => {
                self.ping_armed = false;
                if self.state == State::Open {
                    self.push_frame(true, Opcode::Ping, &[]);
                }
                // Quiet for half the idle timeout: at most one wake per quiet spell.
                self.hibernate();
                return;
            }
        };
        self.enter_closed();
        self.events.push(Event::TimedOut(kind));
    }

    fn on_control<M: Mode>(&mut self, mode: &mut M, opcode: Opcode, payload: &[u8]) {
        match opcode {
            Opcode::Ping => {
                if self.state == State::Open {
                    self.push_frame(true, Opcode::Pong, payload);
                }
                mode.control(self, ControlEvent::Ping(payload));
            }
            Opcode::Pong => mode.control(self, ControlEvent::Pong(payload)),
            _ => match parse_close_payload(payload) {
                Ok((code, reason)) => {
                    if self.state == State::Open {
                        self.reply_close(code);
                    }
                    self.enter_closed();
                    mode.control(self, ControlEvent::Close { code, reason });
                }
                Err(e) => self.fail_in(mode, e),
            },
        }
    }

    /// Records a failure and reports it through `mode`, the first time only.
    fn fail_in<M: Mode>(&mut self, mode: &mut M, error: ProtocolError) {
        if self.record_failure(&error) {
            mode.failed(self, error);
        }
    }

    /// Records a failure: the close frame with its code queued, `Closed`, the error kept.
    /// Returns false (and does nothing) if the connection had already failed.
    fn record_failure(&mut self, error: &ProtocolError) -> bool {
        if self.error().is_some() {
            return false;
        }
        if self.state == State::Open {
            self.reply_close(Some(error.close_code()));
        }
        self.enter_closed();
        let config = &self.config;
        let rare = self.rare.get_or_insert_with(|| Rare::new(config));
        rare.error = Some(error.clone());
        true
    }

    /// The close frame this end owes (the reply to the peer's close, or a failure's): queued
    /// now, or kept back for the owner under [`CloseReply::Deferred`] (its deadline is set
    /// when the read that brought it ends, see [`run`](Self::run)).
    fn reply_close(&mut self, code: Option<CloseCode>) {
        match self.config.close_reply {
            CloseReply::Auto => self.push_close(code, ""),
            CloseReply::Deferred => {
                let config = &self.config;
                let rare = self.rare.get_or_insert_with(|| Rare::new(config));
                rare.reply = Some(PendingReply { code, until: None });
            }
        }
    }

    /// When a deferred close reply goes out on its own.
    fn reply_deadline(&self) -> Option<Instant> {
        self.rare.as_ref()?.reply.as_ref()?.until
    }

    /// Starts the wait of a close reply deferred during the read at `now`.
    #[cold]
    fn start_reply_wait(&mut self, now: Instant) {
        let wait = self.config.close_timeout;
        if let Some(reply) = self.rare.as_deref_mut().and_then(|r| r.reply.as_mut()) {
            reply
                .until
                .get_or_insert_with(|| now.checked_add(wait).unwrap_or(now));
        }
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.timers.stop_all();
        self.ping_armed = false;
    }

    fn push_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
        encode_close_payload(&mut payload, code, reason);
        self.push_frame(true, Opcode::Close, &payload);
    }

    fn push_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let mask = match self.role {
            Role::Client => {
                let config = &self.config;
                let rare = self.rare.get_or_insert_with(|| Rare::new(config));
                Some(next_mask(&mut rare.mask_state))
            }
            Role::Server => None,
        };
        encode_frame(&mut self.out, fin, opcode, payload, mask);
    }
}

/// splitmix64: cheap, and every seed (0 included) gives a full-period sequence.
fn next_mask(state: &mut u64) -> [u8; 4] {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A server holds one `Connection` per client, most of them idle: this is most of what
    /// an idle client costs. It was 384 bytes before the config was shared and the rare
    /// state boxed, and 224 before the partial receive state and the event queue were lent
    /// from pools and the timers became ticks. Run with `--nocapture` for the parts.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn connection_stays_small() {
        use std::mem::size_of;
        let size = size_of::<Connection>();
        println!(
            "Connection {size} = config {} + decoder {} + events {} + out {} + timers {} + \
             rare {} + role, state, 2 flags",
            size_of::<Arc<Config>>(),
            size_of::<Decoder>(),
            size_of::<EventQueue>(),
            size_of::<Vec<u8>>(),
            size_of::<Timers>(),
            size_of::<Option<Box<Rare>>>(),
        );
        let limit = 80;
        assert!(size <= limit, "Connection is {size} bytes, limit {limit}");
    }
}

/// The per-thread pools behind the decoder's partial state and the event queue: what one
/// connection leaves in a lent box must never reach the next connection that borrows it.
#[cfg(test)]
mod pool_tests {
    use super::*;

    const KEY: [u8; 4] = [9, 8, 7, 6];

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, opcode, payload, Some(KEY));
        out
    }

    fn server(now: Instant) -> Connection {
        Connection::new(Role::Server, Config::default(), now)
    }

    fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    /// Another connection on this thread, fed a fragmented text, a ping and a binary message
    /// in reads of `piece` bytes, must see exactly them.
    fn assert_next_connection_decodes(now: Instant, piece: usize) {
        let mut wire = frame(false, Opcode::Text, b"he");
        wire.extend(frame(true, Opcode::Ping, b"ping"));
        wire.extend(frame(true, Opcode::Continuation, b"llo"));
        wire.extend(frame(true, Opcode::Binary, &[5; 300]));
        let mut conn = server(now);
        let mut seen = Vec::new();
        for chunk in wire.chunks(piece) {
            conn.receive(now, chunk);
            seen.extend(events(&mut conn));
        }
        assert_eq!(
            seen,
            [
                Event::Ping(b"ping".to_vec()),
                Event::Message(Message::Text("hello".into())),
                Event::Message(Message::Binary(vec![5; 300])),
            ],
            "reads of {piece} bytes"
        );
        assert!(conn.error().is_none());
    }

    #[test]
    fn a_connection_dropped_mid_header_leaves_nothing_behind() {
        let now = Instant::now();
        let mut dropped = server(now);
        // The first two bytes of a header announcing a 16-bit length.
        dropped.receive(now, &[0x82, 0xfe]);
        drop(dropped);
        assert_next_connection_decodes(now, 1);
        assert_next_connection_decodes(now, 7);
    }

    #[test]
    fn a_connection_dropped_mid_frame_and_mid_message_leaves_nothing_behind() {
        let now = Instant::now();
        // In the middle of a ping's payload.
        let ping = frame(true, Opcode::Ping, b"0123456789");
        let mut dropped = server(now);
        dropped.receive(now, &ping[..9]);
        drop(dropped);
        assert_next_connection_decodes(now, 3);
        // In a fragmented message, in the middle of its second frame.
        let mut wire = frame(false, Opcode::Text, b"abc");
        let second = frame(false, Opcode::Continuation, b"defghij");
        wire.extend(&second[..second.len() - 2]);
        let mut dropped = server(now);
        dropped.receive(now, &wire);
        drop(dropped);
        assert_next_connection_decodes(now, 5);
    }

    #[test]
    fn a_connection_that_failed_mid_message_leaves_nothing_behind() {
        let now = Instant::now();
        let mut wire = frame(false, Opcode::Text, b"ok so far");
        // Invalid UTF-8 in a continuation split across reads.
        let bad = frame(true, Opcode::Continuation, &[0xff, 0xfe, b'a', b'b']);
        wire.extend(&bad[..bad.len() - 1]);
        let mut failed = server(now);
        failed.receive(now, &wire);
        failed.receive(now, &bad[bad.len() - 1..]);
        assert_eq!(failed.error(), Some(&ProtocolError::InvalidUtf8));
        // Failing in the middle of a header: a control frame over 125 bytes.
        let mut failed_header = server(now);
        failed_header.receive(now, &[0x89]);
        failed_header.receive(now, &[0xfe, 0, 200, 1, 2, 3, 4]);
        assert!(failed_header.error().is_some());
        drop(failed);
        drop(failed_header);
        assert_next_connection_decodes(now, 2);
        assert_next_connection_decodes(now, 1000);
    }

    #[test]
    fn events_left_queued_survive_other_connections_on_the_thread() {
        let now = Instant::now();
        let mut blocked = server(now);
        let mut wire = Vec::new();
        for n in 0..3u8 {
            wire.extend(frame(true, Opcode::Binary, &[n; 10]));
        }
        blocked.receive(now, &wire);
        // The caller takes one event, then stops (its consumer is behind).
        assert_eq!(
            blocked.poll_event(),
            Some(Event::Message(Message::Binary(vec![0; 10])))
        );
        for _ in 0..5 {
            assert_next_connection_decodes(now, 4);
            let mut dropped = server(now);
            dropped.receive(now, &wire);
            drop(dropped);
        }
        assert_eq!(
            events(&mut blocked),
            [
                Event::Message(Message::Binary(vec![1; 10])),
                Event::Message(Message::Binary(vec![2; 10])),
            ]
        );
        assert_eq!(blocked.poll_event(), None);
    }

    #[test]
    fn idle_timers_never_fire_early() {
        // Odd durations and starting points: every deadline must be exact to the nanosecond.
        let base = Instant::now();
        for (start, idle) in [
            (0u64, 10_000_000_001u64),
            (1, 3),
            (999_999_999, 7_777),
            (13, 1),
        ] {
            let t0 = base + Duration::from_nanos(start);
            let idle = Duration::from_nanos(idle);
            let config = Config {
                idle_timeout: Some(idle),
                ..Config::default()
            };
            let mut conn = Connection::new(Role::Server, config, t0);
            let ping_at = t0 + idle / 2;
            assert_eq!(conn.poll_timeout(), Some(ping_at));
            conn.handle_timeout(ping_at - Duration::from_nanos(1));
            assert!(!conn.wants_write(), "ping before its deadline");
            conn.handle_timeout(ping_at);
            assert!(conn.wants_write(), "ping at its deadline");
            let idle_at = t0 + idle;
            assert_eq!(conn.poll_timeout(), Some(idle_at));
            conn.handle_timeout(idle_at - Duration::from_nanos(1));
            assert_eq!(conn.poll_event(), None, "timed out before the deadline");
            conn.handle_timeout(idle_at);
            assert_eq!(conn.poll_event(), Some(Event::TimedOut(Timeout::Idle)));
        }
    }

    #[test]
    fn the_close_timer_never_fires_early() {
        let t0 = Instant::now() + Duration::from_nanos(123_456_789);
        let config = Config {
            close_timeout: Duration::from_nanos(5_000_000_007),
            ..Config::default()
        };
        let at = t0 + config.close_timeout;
        let mut conn = Connection::new(Role::Server, config, t0);
        assert_eq!(conn.poll_timeout(), None);
        conn.close(t0, CloseCode::NORMAL, "").unwrap();
        assert_eq!(conn.poll_timeout(), Some(at));
        conn.handle_timeout(at - Duration::from_nanos(1));
        assert_eq!(conn.poll_event(), None);
        conn.handle_timeout(at);
        assert_eq!(conn.poll_event(), Some(Event::TimedOut(Timeout::Close)));
    }
}
