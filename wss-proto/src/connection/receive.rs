//! The one receive loop behind both receive APIs.
//!
//! [`Connection::receive`] (owned events in a queue) and `Connection::receive_in_place`
//! (borrowed events handed to a closure, with the `in-place` feature) run the same decoder and the same protocol rules
//! (`Connection::run`); they differ only in what they do with a decoded item, which is the
//! [`Mode`] here: copy it out or use it where it lies. What a received control frame does
//! (the pong, the close echo) and how a failure is recorded are here too.

use std::time::Instant;

use super::decoder::{Item, Limits};
#[cfg(feature = "in-place")]
use super::EventRef;
use super::{inflater_of, Connection, Event, Rare, Scratch, State};
use crate::close::{parse_close_payload, CloseCode};
use crate::error::ProtocolError;
use crate::frame::{Opcode, MAX_CONTROL_PAYLOAD};
use crate::message::Message;
#[cfg(feature = "in-place")]
use crate::message::MessageRef;
use crate::text::{self, Kind};
use crate::utf8::Utf8Error;

impl Connection {
    /// Call with every chunk the socket read, in order, split anywhere (down to one byte).
    ///
    /// Payload is unmasked while it is copied into the message buffer: one copy. Events and
    /// automatic replies (pongs, the close echo, the close after a failure) are queued;
    /// take them with [`poll_event`](Self::poll_event) and
    /// [`poll_transmit`](Self::poll_transmit). Input after `Closed` or a failure is ignored.
    ///
    /// `scratch` is the calling thread's [`Scratch`]: message buffers come from it, and what
    /// a frame split across reads needs is lent from it while the frame is incomplete.
    pub fn receive(&mut self, scratch: &mut Scratch, now: Instant, data: &[u8]) {
        self.run(scratch, now, &mut Owned { input: data });
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
    /// buffer taken from `scratch`'s spare and given back after `on_event` returns, so it
    /// too costs no allocation once the scratch has seen one as large (up to 256 KiB).
    ///
    /// Behind the `in-place` feature (off by default): a network layer that hands messages
    /// to another thread needs them owned anyway, so an in-place unmask would still be
    /// followed by a copy; it serves a caller that handles each message on the reading
    /// thread (the fuzz drivers and the codec benchmarks use it).
    ///
    /// Events are reported in the order they happened, [`EventRef::Failed`] at most once
    /// and last. Timeouts still go through [`poll_event`](Self::poll_event). Calling
    /// `receive` or `receive_in_place` again from inside `on_event` is allowed but reads the
    /// new bytes before the rest of `data`: do not.
    ///
    /// # Example
    /// ```
    /// use std::time::Instant;
    /// use wss_proto::{Config, Connection, EventRef, MessageRef, Role, Scratch};
    ///
    /// let mut scratch = Scratch::new();
    /// let now = Instant::now();
    /// let mut server = Connection::new(Role::Server, Config::default(), now);
    /// // What a socket read: a masked text frame "Hi" and a masked ping "p".
    /// let mut read_buf = vec![0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2,
    ///                         0x89, 0x81, 5, 6, 7, 8, b'p' ^ 5];
    /// let mut seen = Vec::new();
    /// server.receive_in_place(&mut scratch, now, &mut read_buf, |conn, event| {
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
    #[cfg(feature = "in-place")]
    #[cfg_attr(docsrs, doc(cfg(feature = "in-place")))]
    pub fn receive_in_place<F>(
        &mut self,
        scratch: &mut Scratch,
        now: Instant,
        data: &mut [u8],
        on_event: F,
    ) where
        F: FnMut(&mut Connection, EventRef<'_>),
    {
        let mut mode = InPlace {
            data,
            pos: 0,
            f: on_event,
        };
        self.run(scratch, now, &mut mode);
    }

    /// The receive loop of both APIs: decode, apply the protocol's effects, report through
    /// `mode`.
    #[inline]
    pub(super) fn run<M: Mode>(&mut self, scratch: &mut Scratch, now: Instant, mode: &mut M) {
        if self.state == State::Closed || mode.input().is_empty() {
            self.input_after_close |= !mode.input().is_empty();
            return;
        }
        self.decode(scratch, now, mode);
        if self.state == State::Closed {
            self.input_after_close |= !mode.input().is_empty();
            self.start_reply_wait(now);
        }
    }

    /// Bytes arrived at `now`: the idle timer starts over.
    #[inline]
    pub(super) fn note_received(&mut self, now: Instant) {
        if self.timers.received(now, self.config.idle_timeout) {
            self.ping_armed = true;
        }
    }

    /// The decoder's limits, from the shared config, for a receive in mode `M`.
    #[inline]
    pub(super) fn limits<M: Mode>(&self) -> Limits {
        let config = &*self.config;
        Limits {
            role: self.role,
            allowed_rsv: config.allowed_rsv,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            recycle: M::RECYCLE,
        }
    }

    #[inline]
    pub(super) fn decode<M: Mode>(&mut self, scratch: &mut Scratch, now: Instant, mode: &mut M) {
        self.note_received(now);
        let limits = self.limits::<M>();
        // Guessed again below if this read ends with a large whole frame.
        self.ahead = 0;
        loop {
            let input = mode.input();
            if input.is_empty() {
                return;
            }
            let (used, item) = match self.decoder.whole_message(input, limits) {
                Some((used, item)) => (used, Some(item)),
                None => self
                    .decoder
                    .step(scratch, input, limits, inflater_of(&mut self.rare)),
            };
            match item {
                None => mode.advance(used),
                Some(Item::Whole {
                    kind,
                    at,
                    len,
                    mask,
                }) => {
                    let delivered = mode.whole(self, scratch, kind, at, len, mask);
                    mode.advance(used);
                    if delivered.is_err() {
                        return self.fail_in(scratch, mode, ProtocolError::InvalidUtf8);
                    }
                    if mode.input().is_empty() {
                        // The read ended with this frame: the next may be read ahead.
                        self.ahead = super::ahead::guess(len, at);
                    }
                }
                Some(Item::Message(message)) => {
                    mode.advance(used);
                    mode.message(self, scratch, message);
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
                    let payload = payload.get(..len).unwrap_or_default();
                    self.on_control(scratch, mode, opcode, payload);
                }
                Some(Item::ControlBuffered(opcode)) => {
                    mode.advance(used);
                    let (payload, len) = self.decoder.take_control(scratch);
                    let payload = payload.get(..len).unwrap_or_default();
                    self.on_control(scratch, mode, opcode, payload);
                }
                Some(Item::Failed(e)) => return self.fail_in(scratch, mode, e),
            }
            if self.state == State::Closed {
                return;
            }
        }
    }

    pub(super) fn on_control<M: Mode>(
        &mut self,
        scratch: &mut Scratch,
        mode: &mut M,
        opcode: Opcode,
        payload: &[u8],
    ) {
        match opcode {
            Opcode::Ping => {
                if self.state == State::Open {
                    self.push_frame(true, Opcode::Pong, payload);
                }
                mode.control(self, scratch, ControlEvent::Ping(payload));
            }
            Opcode::Pong => mode.control(self, scratch, ControlEvent::Pong(payload)),
            _ => match parse_close_payload(payload) {
                Ok((code, reason)) => {
                    if self.state == State::Open {
                        self.reply_close(code);
                    }
                    self.enter_closed();
                    mode.control(self, scratch, ControlEvent::Close { code, reason });
                }
                Err(e) => self.fail_in(scratch, mode, e),
            },
        }
    }

    /// Records a failure and reports it through `mode`, the first time only.
    pub(super) fn fail_in<M: Mode>(
        &mut self,
        scratch: &mut Scratch,
        mode: &mut M,
        error: ProtocolError,
    ) {
        if self.record_failure(&error) {
            mode.failed(self, scratch, error);
        }
    }

    /// Records a failure: the close frame with its code queued, `Closed`, the error kept.
    /// Returns false (and does nothing) if the connection had already failed.
    pub(super) fn record_failure(&mut self, error: &ProtocolError) -> bool {
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
}

/// A close, ping or pong, as the loop reports it once its effects (pong, close echo) are
/// queued.
#[derive(Debug, Clone, Copy)]
pub(super) enum ControlEvent<'a> {
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close {
        code: Option<CloseCode>,
        reason: &'a str,
    },
}

/// What a receive call does with the items the decoder finds.
pub(super) trait Mode {
    /// Hand reassembled messages' buffers back for reuse.
    const RECYCLE: bool;
    /// The input not consumed yet.
    fn input(&self) -> &[u8];
    /// Consumes `n` bytes of [`input`](Self::input).
    fn advance(&mut self, n: usize);
    /// An unfragmented data message at `input()[at..at + len]`, masked with `mask`.
    fn whole(
        &mut self,
        conn: &mut Connection,
        scratch: &mut Scratch,
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    ) -> Result<(), Utf8Error>;
    /// A message gathered in a reassembly buffer.
    fn message(&mut self, conn: &mut Connection, scratch: &mut Scratch, message: Message);
    /// A control frame whose effects are already queued.
    fn control(&mut self, conn: &mut Connection, scratch: &mut Scratch, event: ControlEvent<'_>);
    /// The first protocol failure: `conn` has recorded it and queued its close.
    fn failed(&mut self, conn: &mut Connection, scratch: &mut Scratch, error: ProtocolError);
}

/// [`Connection::receive`]: payload copied (and unmasked) into owned messages, events queued.
pub(super) struct Owned<'a> {
    pub(super) input: &'a [u8],
}

impl Mode for Owned<'_> {
    const RECYCLE: bool = false;

    #[inline]
    fn input(&self) -> &[u8] {
        self.input
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.input = self.input.get(n..).unwrap_or_default();
    }

    #[inline]
    fn whole(
        &mut self,
        conn: &mut Connection,
        scratch: &mut Scratch,
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    ) -> Result<(), Utf8Error> {
        let payload = self.input.get(at..at + len).unwrap_or_default();
        let message = text::whole_message(&mut scratch.buffers, kind, payload, mask)?;
        conn.events.push(scratch, Event::Message(message));
        Ok(())
    }

    fn message(&mut self, conn: &mut Connection, scratch: &mut Scratch, message: Message) {
        conn.events.push(scratch, Event::Message(message));
    }

    fn control(&mut self, conn: &mut Connection, scratch: &mut Scratch, event: ControlEvent<'_>) {
        let event = match event {
            ControlEvent::Ping(p) => Event::Ping(p.to_vec()),
            ControlEvent::Pong(p) => Event::Pong(p.to_vec()),
            ControlEvent::Close { code, reason } => Event::CloseReceived {
                code,
                reason: reason.to_owned(),
            },
        };
        conn.events.push(scratch, event);
    }

    fn failed(&mut self, conn: &mut Connection, scratch: &mut Scratch, error: ProtocolError) {
        conn.events.push(scratch, Event::Failed(error));
    }
}

/// [`Connection::receive_in_place`]: payload unmasked where it lies, events handed to `f`.
#[cfg(feature = "in-place")]
pub(super) struct InPlace<'a, F> {
    pub(super) data: &'a mut [u8],
    pub(super) pos: usize,
    pub(super) f: F,
}

#[cfg(feature = "in-place")]
impl<F: FnMut(&mut Connection, EventRef<'_>)> Mode for InPlace<'_, F> {
    const RECYCLE: bool = true;

    #[inline]
    fn input(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    #[inline]
    fn whole(
        &mut self,
        conn: &mut Connection,
        _: &mut Scratch,
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    ) -> Result<(), Utf8Error> {
        let start = self.pos + at;
        let payload = self.data.get_mut(start..start + len).unwrap_or_default();
        let message = text::message_in_place(kind, payload, mask)?;
        (self.f)(conn, EventRef::Message(message));
        Ok(())
    }

    fn message(&mut self, conn: &mut Connection, scratch: &mut Scratch, message: Message) {
        (self.f)(conn, EventRef::Message(MessageRef::from(&message)));
        text::give_spare(&mut scratch.spare, message.into_bytes());
    }

    fn control(&mut self, conn: &mut Connection, _: &mut Scratch, event: ControlEvent<'_>) {
        let event = match event {
            ControlEvent::Ping(p) => EventRef::Ping(p),
            ControlEvent::Pong(p) => EventRef::Pong(p),
            ControlEvent::Close { code, reason } => EventRef::CloseReceived { code, reason },
        };
        (self.f)(conn, event);
    }

    fn failed(&mut self, conn: &mut Connection, _: &mut Scratch, error: ProtocolError) {
        (self.f)(conn, EventRef::Failed(error));
    }
}
