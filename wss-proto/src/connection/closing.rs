//! The closing handshake and the timers: starting a close, the close reply this end owes
//! (sent at once or deferred for the owner, see [`CloseReply`]), and the deadlines.

use std::time::Instant;

use super::timer::{later, Due};
use super::{CloseReply, Closing, Connection, Event, Rare, State, Timeout};
use crate::close::CloseCode;
use crate::error::SendError;
use crate::frame::Opcode;

impl Connection {
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
        let until = later(now, self.config.close_timeout);
        let config = &self.config;
        // Closing is once per connection: its deadline costs an idle connection nothing.
        self.rare.get_or_insert_with(|| Rare::new(config)).closing = Closing::Awaiting { until };
        Ok(())
    }

    /// With [`CloseReply::Deferred`]: the owner has queued its answers to every event before
    /// the peer's close or the failure (the messages it was still handling), so the close
    /// frame kept back goes out now, after them. Does nothing when no reply waits (in
    /// `Auto` mode, or already sent).
    pub fn send_close_reply(&mut self) {
        let Some(rare) = self.rare.as_deref_mut() else {
            return;
        };
        let Closing::Reply { code, .. } = std::mem::take(&mut rare.closing) else {
            return;
        };
        self.push_close(code, "");
    }

    /// Whether a deferred close reply waits for [`send_close_reply`](Self::send_close_reply)
    /// (see [`CloseReply::Deferred`]).
    pub fn close_reply_pending(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| matches!(r.closing, Closing::Reply { .. }))
    }

    /// The earliest deadline (close timer, idle ping, idle timeout), if any: call
    /// [`handle_timeout`](Self::handle_timeout) once it has passed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(until) = self.reply_deadline() {
            return Some(until);
        }
        self.timers
            .next(self.close_at(), self.ping_armed, self.config.idle_timeout)
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
        let (close_at, idle) = (self.close_at(), self.config.idle_timeout);
        let kind = match self.timers.due(now, close_at, self.ping_armed, idle) {
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
        // No scratch here: a timeout is rare, so its ring (if none is lent) is allocated, and
        // goes to the scratch that takes the event.
        self.events.push_unlent(Event::TimedOut(kind));
    }

    /// The close frame this end owes (the reply to the peer's close, or a failure's): queued
    /// now, or kept back for the owner under [`CloseReply::Deferred`] (its deadline is set
    /// when the read that brought it ends, see [`run`](Self::run)).
    pub(super) fn reply_close(&mut self, code: Option<CloseCode>) {
        match self.config.close_reply {
            CloseReply::Auto => self.push_close(code, ""),
            CloseReply::Deferred => {
                let config = &self.config;
                let rare = self.rare.get_or_insert_with(|| Rare::new(config));
                rare.closing = Closing::Reply { code, until: None };
            }
        }
    }

    /// The deadline for the peer's close, once ours went out.
    fn close_at(&self) -> Option<Instant> {
        match self.rare.as_ref()?.closing {
            Closing::Awaiting { until } => until,
            _ => None,
        }
    }

    /// When a deferred close reply goes out on its own.
    pub(super) fn reply_deadline(&self) -> Option<Instant> {
        match self.rare.as_ref()?.closing {
            Closing::Reply { until, .. } => until,
            _ => None,
        }
    }

    /// Starts the wait of a close reply deferred during the read at `now`.
    #[cold]
    pub(super) fn start_reply_wait(&mut self, now: Instant) {
        let wait = self.config.close_timeout;
        if let Some(Closing::Reply { until, .. }) = self.rare.as_deref_mut().map(|r| &mut r.closing)
        {
            until.get_or_insert_with(|| now.checked_add(wait).unwrap_or(now));
        }
    }

    pub(super) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.timers.stop_all();
        if let Some(rare) = self.rare.as_deref_mut() {
            if let Closing::Awaiting { .. } = rare.closing {
                rare.closing = Closing::None;
            }
        }
        self.ping_armed = false;
    }
}
