//! TLS under the connection phases: rustls driven sans-IO from the loop.
//!
//! The phases (head, pending, ws, finishing) see plaintext and queue plaintext, exactly as on
//! a plain socket; only the socket side differs. Readiness stays edge-triggered: `readable` is
//! cleared only when both rustls and the socket have nothing more.
//!
//! Two drivings, one per role:
//!
//! - **Server** (`unbuffered.rs`): rustls' unbuffered API. Records are read into the loop's
//!   shared buffer and decrypted there; a connection keeps only the bytes of a record still
//!   arriving (usually none) and the encrypted bytes the socket has not taken yet (usually
//!   none), so an idle TLS connection holds no record buffer.
//! - **Client** (this file): rustls' buffered API, because the layer above (`wss-client`)
//!   runs the handshake itself with a `rustls::ClientConnection` and hands over the
//!   established session, which cannot change API midway. Reading: plaintext rustls already
//!   holds is taken first, and only when it has none is the socket read (`read_tls`, then
//!   `process_new_packets`). Writing: queued plaintext is encrypted into rustls' outgoing
//!   buffer as far as its 64 KiB limit allows (the rest waits in the connection's queue, which
//!   `max_outgoing` bounds), and `write_tls` drains it until the socket is full.
//!
//! A plain socket pays one `Option` test per read and per flush for all this.

mod unbuffered;

use std::io::{self, Read};

use super::{io_error, Conn, Io, Phase, Step, READ_BUDGET};
use crate::api::ConnError;
use crate::event_loop::Ctx;
use crate::stats::{bump, LoopCounters};
use crate::tls::TlsFailure;
use crate::ConnId;
use wss_proto::Scratch;

use unbuffered::Lean;

/// A fatal `decode_error` alert record in the clear, as sent before a handshake completes.
const DECODE_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50];

/// The TLS state of one connection.
pub(crate) struct Tls {
    session: Session,
    /// The first byte the peer sent, once known: a plain-HTTP request on the TLS port starts
    /// with a method's capital letter instead of a handshake record.
    first_byte: Option<u8>,
    /// Our `close_notify` is queued.
    notified: bool,
}

/// The rustls session, by role.
enum Session {
    /// An accepted socket: unbuffered, decrypting in the loop's buffer.
    Server(Lean),
    /// An outgoing connection: buffered (see the module's comment).
    Client(rustls::Connection),
}

impl Tls {
    /// The TLS state of an accepted socket.
    pub(crate) fn server(session: rustls::server::UnbufferedServerConnection) -> Tls {
        Tls::with(Session::Server(Lean::new(session)))
    }

    /// The TLS state of an outgoing connection, its handshake done by the layer above.
    pub(crate) fn client(session: rustls::ClientConnection) -> Tls {
        Tls::with(Session::Client(session.into()))
    }

    fn with(session: Session) -> Tls {
        Tls {
            session,
            first_byte: None,
            notified: false,
        }
    }

    /// Encrypted bytes are waiting to be written.
    pub(crate) fn wants_write(&self) -> bool {
        match &self.session {
            Session::Server(lean) => lean.wants_write(),
            Session::Client(session) => session.wants_write(),
        }
    }

    fn is_handshaking(&self) -> bool {
        match &self.session {
            Session::Server(lean) => lean.is_handshaking(),
            Session::Client(session) => session.is_handshaking(),
        }
    }

    /// The alert rustls queued after refusing the peer's bytes, encoded. `unread` holds the
    /// received bytes rustls has not discarded (the unbuffered session needs them back).
    fn alert(&mut self, unread: &mut [u8]) -> Vec<u8> {
        let mut alert = Vec::new();
        match &mut self.session {
            Session::Server(lean) => lean.alert(unread, &mut alert),
            Session::Client(session) => {
                while session.wants_write() {
                    if session.write_tls(&mut alert).is_err() {
                        break;
                    }
                }
            }
        }
        alert
    }
}

/// The socket as rustls' reader, noting the first byte read.
struct FirstRead<'a> {
    stream: &'a mio::net::TcpStream,
    first: &'a mut Option<u8>,
}

impl Read for FirstRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        if self.first.is_none() && n > 0 {
            *self.first = buf.first().copied();
        }
        Ok(n)
    }
}

impl Conn {
    /// Reads through TLS until rustls and the socket are both drained, the phase stops
    /// wanting input, or the budget is spent.
    pub(super) fn read_tls_into(&mut self, ctx: &mut Ctx, id: ConnId, buf: &mut [u8]) -> Step {
        match self.tls.as_deref().map(|t| &t.session) {
            Some(Session::Server(_)) => self.read_unbuffered(ctx, id, buf),
            Some(Session::Client(_)) => self.read_buffered(ctx, id, buf),
            None => Ok(()),
        }
    }

    /// The buffered (client) reading.
    fn read_buffered(&mut self, ctx: &mut Ctx, id: ConnId, buf: &mut [u8]) -> Step {
        let mut budget = READ_BUDGET;
        while self.io.has(Io::READABLE) && self.wants_read() {
            if budget == 0 {
                ctx.ready.push(id);
                return Ok(());
            }
            let Some(Tls {
                session: Session::Client(session),
                first_byte,
                ..
            }) = self.tls.as_deref_mut()
            else {
                return Ok(());
            };
            match session.reader().read(buf) {
                // `close_notify` received and everything before it taken.
                Ok(0) => return self.tls_eof(),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.on_bytes(ctx, id, buf.get(..n).unwrap_or_default())?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP EOF without `close_notify`, everything before it taken.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.tls_eof(),
                Err(e) => return Err(Some(io_error(&e))),
            }
            let mut from = FirstRead {
                stream: &self.stream,
                first: first_byte,
            };
            match session.read_tls(&mut from) {
                // rustls noted the EOF: the reader reports it (after any last plaintext).
                Ok(0) => {}
                Ok(n) => {
                    bump(&ctx.shared.counters.wire_received, n as u64);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.io.clear(Io::READABLE);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Some(io_error(&e))),
            }
            if let Err(error) = session.process_new_packets() {
                return self.tls_failed(ctx, id, &error, &mut []);
            }
        }
        Ok(())
    }

    fn tls_eof(&mut self) -> Step {
        self.io.clear(Io::READABLE);
        self.io.raise(Io::EOF, true);
        self.on_eof()
    }

    /// rustls refused the peer's bytes. Before the upgrade the peer gets a clear answer and
    /// the socket an orderly end: a plain `400` when it spoke plain HTTP to the TLS port, the
    /// TLS alert rustls chose otherwise. After it, the connection ends with `ConnError::Tls`.
    /// `unread`: the received bytes rustls has not discarded (unbuffered sessions).
    fn tls_failed(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        error: &rustls::Error,
        unread: &mut [u8],
    ) -> Step {
        ctx.admission.note_tls_failure();
        log::debug!("{id}: TLS failed: {error}");
        if matches!(self.phase, Phase::Ws(_)) {
            return Err(Some(ConnError::Tls(TlsFailure::from(error))));
        }
        let Some(mut tls) = self.tls.take() else {
            return Err(None);
        };
        // From here the socket is plain again: what is queued goes out as it is.
        self.out.clear();
        let spoke_http = tls.first_byte.is_some_and(|b| b.is_ascii_uppercase());
        if spoke_http {
            let response = wss_proto::handshake::Response::error(
                400,
                "This port speaks TLS: use https:// or wss://",
            );
            self.out.push_with(0, |v| response.encode(v));
        } else {
            let mut alert = tls.alert(unread);
            if alert.is_empty() && tls.is_handshaking() {
                // rustls queues no alert for some refusals (an oversized handshake message);
                // the peer still deserves to learn why the socket closes.
                alert.extend_from_slice(&DECODE_ERROR_ALERT);
            }
            self.out.push_owned(alert);
        }
        self.finish(ctx.now);
        Ok(())
    }

    /// Encrypts queued plaintext and writes TLS records until both are drained or the socket
    /// is full.
    pub(super) fn flush_tls(&mut self, counters: &LoopCounters, scratch: &mut Scratch) -> Step {
        match self.tls.as_deref().map(|t| &t.session) {
            Some(Session::Server(_)) => self.flush_unbuffered(counters, scratch),
            Some(Session::Client(_)) => self.flush_buffered(counters, scratch),
            None => Ok(()),
        }
    }

    /// The buffered (client) writing.
    fn flush_buffered(&mut self, counters: &LoopCounters, scratch: &mut Scratch) -> Step {
        let Conn {
            stream,
            out,
            tls,
            io: state,
            ..
        } = self;
        let Some(Tls {
            session: Session::Client(session),
            ..
        }) = tls.as_deref_mut()
        else {
            return Ok(());
        };
        loop {
            // Plaintext before the handshake ends would only be buffered twice; nothing is
            // queued then anyway (the first request comes after it).
            if !out.is_empty() && !session.is_handshaking() {
                match out.write_to(&mut session.writer(), scratch) {
                    Ok(_) => {}
                    // rustls' outgoing buffer is full: write it out first.
                    Err(e) if e.kind() == io::ErrorKind::WriteZero => {}
                    Err(e) => return Err(Some(io_error(&e))),
                }
            }
            if !session.wants_write() || !state.has(Io::WRITABLE) {
                return Ok(());
            }
            match session.write_tls(&mut &*stream) {
                Ok(n) => bump(&counters.wire_sent, n as u64),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.clear(Io::WRITABLE);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Some(io_error(&e))),
            }
        }
    }

    /// Before the FIN of a TLS connection: queue `close_notify` once and write it. Returns
    /// whether everything is written (the FIN may follow).
    pub(super) fn tls_close_notify(
        &mut self,
        counters: &LoopCounters,
    ) -> Result<bool, Option<ConnError>> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        if !tls.notified {
            tls.notified = true;
            match &mut tls.session {
                Session::Server(lean) => lean.queue_close_notify(),
                Session::Client(session) => session.send_close_notify(),
            }
        }
        // Only called once the queue is empty: no buffer goes back to a scratch here.
        self.flush_tls(counters, &mut Scratch::new())?;
        Ok(!self.tls.as_deref().is_some_and(Tls::wants_write))
    }
}

impl From<&rustls::Error> for TlsFailure {
    fn from(e: &rustls::Error) -> TlsFailure {
        match e {
            rustls::Error::DecryptError => TlsFailure::Decrypt,
            rustls::Error::AlertReceived(alert) => TlsFailure::AlertReceived(u8::from(*alert)),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsFailure::BadMessage
            }
            rustls::Error::PeerMisbehaved(_) => TlsFailure::PeerMisbehaved,
            _ => TlsFailure::Other,
        }
    }
}
