//! The one receive loop behind both receive APIs.
//!
//! [`Connection::receive`] (owned events in a queue) and [`Connection::receive_in_place`]
//! (borrowed events handed to a closure) run the same decoder and the same protocol rules
//! (`Connection::run`); they differ only in what they do with a decoded item, which is the
//! [`Mode`] here: copy it out or use it where it lies.

use super::{Connection, Event, EventRef};
use crate::close::CloseCode;
use crate::error::ProtocolError;
use crate::message::{Message, MessageRef};
use crate::text::{self, Kind};
use crate::utf8::Utf8Error;

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
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    ) -> Result<(), Utf8Error>;
    /// A message gathered in a reassembly buffer.
    fn message(&mut self, conn: &mut Connection, message: Message);
    /// A control frame whose effects are already queued.
    fn control(&mut self, conn: &mut Connection, event: ControlEvent<'_>);
    /// The first protocol failure: `conn` has recorded it and queued its close.
    fn failed(&mut self, conn: &mut Connection, error: ProtocolError);
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
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    ) -> Result<(), Utf8Error> {
        let payload = self.input.get(at..at + len).unwrap_or_default();
        let message = text::whole_message(kind, payload, mask)?;
        conn.events.push(Event::Message(message));
        Ok(())
    }

    fn message(&mut self, conn: &mut Connection, message: Message) {
        conn.events.push(Event::Message(message));
    }

    fn control(&mut self, conn: &mut Connection, event: ControlEvent<'_>) {
        conn.events.push(match event {
            ControlEvent::Ping(p) => Event::Ping(p.to_vec()),
            ControlEvent::Pong(p) => Event::Pong(p.to_vec()),
            ControlEvent::Close { code, reason } => Event::CloseReceived {
                code,
                reason: reason.to_owned(),
            },
        });
    }

    fn failed(&mut self, conn: &mut Connection, error: ProtocolError) {
        conn.events.push(Event::Failed(error));
    }
}

/// [`Connection::receive_in_place`]: payload unmasked where it lies, events handed to `f`.
pub(super) struct InPlace<'a, F> {
    pub(super) data: &'a mut [u8],
    pub(super) pos: usize,
    pub(super) f: F,
}

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

    fn message(&mut self, conn: &mut Connection, message: Message) {
        (self.f)(conn, EventRef::Message(MessageRef::from(&message)));
        text::give_spare(message.into_bytes());
    }

    fn control(&mut self, conn: &mut Connection, event: ControlEvent<'_>) {
        let event = match event {
            ControlEvent::Ping(p) => EventRef::Ping(p),
            ControlEvent::Pong(p) => EventRef::Pong(p),
            ControlEvent::Close { code, reason } => EventRef::CloseReceived { code, reason },
        };
        (self.f)(conn, event);
    }

    fn failed(&mut self, conn: &mut Connection, error: ProtocolError) {
        (self.f)(conn, EventRef::Failed(error));
    }
}
