//! The server's TLS: rustls' unbuffered API, records decrypted in the loop's shared buffer.
//!
//! Reading: the bytes a connection kept from its last read (part of a record, usually none)
//! go to the front of the first half of the loop's buffer, the socket's bytes after them, and
//! rustls decrypts every complete record there, in place. Each record's plaintext is copied
//! into the second half and the phase gets all of a read's plaintext at once, as on a plain
//! socket. Every complete record is processed before the next socket read, so what the
//! connection keeps between reads is never more than one record still arriving (or the
//! records of a handshake message still arriving) and rustls itself holds no plaintext.
//!
//! Writing: queued plaintext is encrypted straight into the connection's outgoing bytes (a
//! buffer from the loop's pool, given back once the socket took it all), at most 64 KiB ahead
//! of the socket as rustls' buffered API allowed; the rest waits in the plaintext queue,
//! which `max_outgoing` bounds.

use std::io::{self, IoSlice, Read, Write};

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};

use super::super::{io_error, Conn, Io, Step, READ_BUDGET};
use super::{Session, Tls};
use crate::api::ConnError;
use crate::event_loop::Ctx;
use crate::stats::{bump, LoopCounters};
use crate::ConnId;
use wss_proto::Scratch;

/// How far encryption may run ahead of the socket (rustls' buffered default).
const OUT_LIMIT: usize = 64 * 1024;

/// Bytes a record adds to its plaintext at most, for sizing an encryption's output before
/// rustls says: header 5, content type 1, AEAD tag 16, and room to spare.
const RECORD_OVERHEAD: usize = 64;

/// The largest plaintext of one record.
const RECORD_PLAINTEXT: usize = 16 * 1024;

/// An unbuffered server session and the few bytes it cannot do without between reads.
pub(super) struct Lean {
    session: UnbufferedServerConnection,
    /// Received bytes rustls has not discarded: a record still arriving, or the records of a
    /// handshake message still arriving. Usually empty, with no allocation.
    unread: Vec<u8>,
    /// Encrypted bytes, `sent` of them written. Empty and unallocated once all are written.
    out: Vec<u8>,
    sent: usize,
}

/// How a pass over the received records ended.
enum Pumped {
    /// Every complete record is processed: more bytes are needed.
    NeedMore,
    /// The peer's `close_notify` came; everything before it is delivered.
    PeerClosed,
}

impl Lean {
    pub(super) fn new(session: UnbufferedServerConnection) -> Lean {
        Lean {
            session,
            unread: Vec::new(),
            out: Vec::new(),
            sent: 0,
        }
    }

    pub(super) fn wants_write(&self) -> bool {
        self.sent < self.out.len()
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// Encodes the records rustls queued after refusing the peer's bytes (its alert) after
    /// the outgoing bytes not written yet, into `alert`. `unread`: the received bytes it has
    /// not discarded.
    pub(super) fn alert(&mut self, unread: &mut [u8], alert: &mut Vec<u8>) {
        let mut unread = unread.to_vec();
        alert.extend_from_slice(self.out.get(self.sent..).unwrap_or_default());
        // A handful of rounds: an alert is one record, and a refused session has nothing
        // else to send.
        for _ in 0..4 {
            let UnbufferedStatus { discard, state } = self.session.process_tls_records(&mut unread);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if encode(&mut e, alert).is_err() {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => return,
            }
            unread.drain(..discard.min(unread.len()));
        }
    }

    /// Encrypts a `close_notify` alert after what is queued (nothing once the handshake is
    /// not done: the peer then only sees the FIN).
    pub(super) fn queue_close_notify(&mut self) {
        let Lean {
            session,
            unread,
            out,
            ..
        } = self;
        let _ = with_write_traffic(session, unread, out, |mut w, out| {
            let at = out.len();
            let n = w
                .queue_close_notify(reserve(out, RECORD_OVERHEAD))
                .unwrap_or(0);
            out.truncate(at + n);
        });
    }
}

/// Brings the session to the state where application data may be encrypted, encoding what
/// it wants sent first, and runs `f` then. Returns `None` (and runs nothing) while the
/// handshake is not done, or if rustls refuses.
fn with_write_traffic<R>(
    session: &mut UnbufferedServerConnection,
    unread: &mut Vec<u8>,
    out: &mut Vec<u8>,
    f: impl FnOnce(WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) -> R,
) -> Option<R> {
    // Every complete record was processed when it was read, so `unread` holds at most a
    // record still arriving: rustls finds nothing to read in it and gets to `WriteTraffic`
    // after the records it wants to send (post-handshake messages, a key update).
    let mut f = Some(f);
    for _ in 0..8 {
        let UnbufferedStatus { discard, state } = session.process_tls_records(unread);
        let result = match state {
            Ok(ConnectionState::WriteTraffic(w)) => Some(f.take().map(|f| f(w, out))),
            Ok(ConnectionState::EncodeTlsData(mut e)) => match encode(&mut e, out) {
                Ok(()) => None,
                Err(_) => Some(None),
            },
            Ok(ConnectionState::TransmitTlsData(t)) => {
                // The records are in `out`, which the socket drains in order.
                t.done();
                None
            }
            _ => Some(None),
        };
        if discard > 0 {
            unread.drain(..discard.min(unread.len()));
        }
        if let Some(result) = result {
            return result;
        }
    }
    None
}

/// Encodes one handshake (or alert) record at the end of `out`.
fn encode(
    e: &mut rustls::unbuffered::EncodeTlsData<'_, ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut need = 512;
    loop {
        let at = out.len();
        out.resize(at + need, 0);
        match e.encode(out.get_mut(at..).unwrap_or_default()) {
            Ok(n) => {
                out.truncate(at + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(size)) => {
                out.truncate(at);
                need = size.required_size;
            }
            Err(e) => {
                out.truncate(at);
                return Err(e);
            }
        }
    }
}

/// Makes room for `n` more (zeroed) bytes at the end of `out` and returns them; the caller
/// truncates to what it wrote.
fn reserve(out: &mut Vec<u8>, n: usize) -> &mut [u8] {
    let at = out.len();
    out.resize(at + n, 0);
    out.get_mut(at..).unwrap_or_default()
}

/// Queued plaintext's way into records: a `Write` that encrypts into the outgoing bytes.
struct Encrypt<'a, 'c> {
    traffic: WriteTraffic<'c, ServerConnectionData>,
    out: &'a mut Vec<u8>,
}

impl Write for Encrypt<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = OUT_LIMIT.saturating_sub(self.out.len());
        let take = data.len().min(room);
        let Some(data) = data.get(..take).filter(|d| !d.is_empty()) else {
            // Full: `write_to` reports `WriteZero`, and the socket drains `out` first.
            return Ok(0);
        };
        let mut need = take + take.div_ceil(RECORD_PLAINTEXT).max(1) * RECORD_OVERHEAD;
        loop {
            let at = self.out.len();
            match self.traffic.encrypt(data, reserve(self.out, need)) {
                Ok(n) => {
                    self.out.truncate(at + n);
                    return Ok(take);
                }
                Err(EncryptError::InsufficientSize(size)) => {
                    self.out.truncate(at);
                    need = size.required_size;
                }
                Err(e) => {
                    self.out.truncate(at);
                    return Err(io::Error::other(e));
                }
            }
        }
    }

    /// Small chunks (frames queued one by one) are gathered into one record: one header,
    /// one tag and one AEAD pass for all of them, as rustls' buffered writer did.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut gathered = 0;
        let mut count = 0;
        for b in bufs {
            if gathered + b.len() > RECORD_PLAINTEXT {
                break;
            }
            gathered += b.len();
            count += 1;
        }
        if count < 2 {
            let first = bufs.iter().find(|b| !b.is_empty());
            return self.write(first.map_or(&[][..], |b| &b[..]));
        }
        let mut joined = Vec::with_capacity(gathered);
        for b in bufs.iter().take(count) {
            joined.extend_from_slice(b);
        }
        self.write(&joined)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn {
    /// Reads and decrypts until the socket is drained (with every complete record processed),
    /// the phase stops wanting input, or the budget is spent.
    pub(in crate::conn) fn read_unbuffered(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        buf: &mut [u8],
    ) -> Step {
        // Records in the first half, their plaintext in the second: a half's records never
        // hold more plaintext than the other half takes.
        let half = buf.len() / 2;
        let (records, plain) = buf.split_at_mut(half);
        let mut budget = READ_BUDGET;
        while self.io.has(Io::READABLE) && self.wants_read() {
            if budget == 0 {
                // Still readable: come back next turn, after the other sockets.
                ctx.ready.push(id);
                return Ok(());
            }
            let Some(Tls {
                session: Session::Server(lean),
                first_byte,
                ..
            }) = self.tls.as_deref_mut()
            else {
                return Ok(());
            };
            // After the bytes kept from the last read (which stay kept until more come).
            let kept = lean.unread.len();
            let Some(free) = records.get_mut(kept..).filter(|f| !f.is_empty()) else {
                // Only a handshake message cut into tiny records can keep this much: refused
                // like one rustls finds too large (an alert before the upgrade).
                let error =
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge);
                let mut unread = std::mem::take(&mut lean.unread);
                return self.tls_failed(ctx, id, &error, &mut unread);
            };
            let n = match (&self.stream).read(free) {
                // TCP EOF without `close_notify`: everything before it was delivered.
                Ok(0) => return self.tls_eof(),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.io.clear(Io::READABLE);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Some(io_error(&e))),
            };
            bump(&ctx.shared.counters.wire_received, n as u64);
            budget = budget.saturating_sub(n);
            if first_byte.is_none() {
                *first_byte = free.first().copied();
            }
            // As on a plain socket: a read that did not fill the space took all the socket
            // held, and bytes arriving later raise a new edge. Not when a FIN was reported:
            // its EOF must still be read.
            if n < free.len() && !self.io.has(Io::READ_CLOSED) {
                self.io.clear(Io::READABLE);
            }
            if let Some(front) = records.get_mut(..kept) {
                front.copy_from_slice(&lean.unread);
            }
            if let Pumped::PeerClosed = self.pump(ctx, id, records, kept + n, plain)? {
                return self.tls_eof();
            }
        }
        Ok(())
    }

    /// Processes every complete record in `records[..end]`: handshake records go to the
    /// outgoing bytes, what is left to the connection's kept bytes, then the plaintext (through
    /// `plain`) to the phase. The phase may flush, which brings the session to `WriteTraffic`
    /// with the kept bytes, so they are kept before it runs.
    fn pump(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        records: &mut [u8],
        end: usize,
        plain: &mut [u8],
    ) -> Result<Pumped, Option<ConnError>> {
        let mut start = 0;
        let mut filled = 0;
        let mut peer_closed = false;
        loop {
            let Some(Tls {
                session: Session::Server(lean),
                ..
            }) = self.tls.as_deref_mut()
            else {
                return Ok(Pumped::NeedMore);
            };
            let Lean {
                session,
                unread,
                out,
                ..
            } = lean;
            let incoming = records.get_mut(start..end).unwrap_or_default();
            let UnbufferedStatus { mut discard, state } = session.process_tls_records(incoming);
            let mut done = false;
            let mut failed = None;
            match state {
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(len) = r.peek_len() {
                        let Some(to) = plain.get_mut(filled..filled + len.get()) else {
                            failed = Some(rustls::Error::General("plaintext overflow".into()));
                            break;
                        };
                        match r.next_record() {
                            Some(Ok(record)) => {
                                to.copy_from_slice(record.payload);
                                filled += len.get();
                                discard += record.discard;
                            }
                            Some(Err(error)) => {
                                failed = Some(error);
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if out.capacity() == 0 {
                        *out = ctx.scratch.take(RECORD_PLAINTEXT);
                    }
                    if let Err(e) = encode(&mut e, out) {
                        failed = Some(rustls::Error::General(e.to_string()));
                    }
                }
                // The records are in `out`, which the socket drains in order.
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                Ok(ConnectionState::PeerClosed) => peer_closed = true,
                // 0-RTT is not offered (rustls' default); were it, its data is dropped.
                Ok(ConnectionState::ReadEarlyData(mut r)) => while r.next_record().is_some() {},
                // `WriteTraffic` or `BlockedHandshake`: nothing complete is left. `Closed`:
                // nothing more will be read.
                Ok(_) => done = true,
                Err(error) => failed = Some(error),
            }
            start += discard;
            if let Some(error) = failed {
                let unread = records.get_mut(start..end).unwrap_or_default();
                return self
                    .tls_failed(ctx, id, &error, unread)
                    .map(|()| Pumped::NeedMore);
            }
            if done || peer_closed {
                // Keep what rustls has not discarded, with no allocation when nothing.
                match records.get(start..end).filter(|l| !l.is_empty()) {
                    Some(left) => {
                        unread.clear();
                        unread.extend_from_slice(left);
                    }
                    None => *unread = Vec::new(),
                }
                break;
            }
        }
        if filled > 0 {
            self.on_bytes(ctx, id, plain.get(..filled).unwrap_or_default())?;
        }
        Ok(if peer_closed {
            Pumped::PeerClosed
        } else {
            Pumped::NeedMore
        })
    }

    /// Encrypts queued plaintext and writes records until both are drained or the socket is
    /// full.
    pub(in crate::conn) fn flush_unbuffered(
        &mut self,
        counters: &LoopCounters,
        scratch: &mut Scratch,
    ) -> Step {
        let Conn {
            stream,
            out: queue,
            tls,
            io: state,
            ..
        } = self;
        let Some(Tls {
            session: Session::Server(lean),
            ..
        }) = tls.as_deref_mut()
        else {
            return Ok(());
        };
        loop {
            if !queue.is_empty() && lean.out.len() < OUT_LIMIT {
                if lean.out.capacity() == 0 {
                    let want = queue.len() + RECORD_OVERHEAD * 4;
                    lean.out = scratch.take(want.min(OUT_LIMIT + RECORD_PLAINTEXT));
                }
                let Lean {
                    session,
                    unread,
                    out,
                    ..
                } = lean;
                let encrypted = with_write_traffic(session, unread, out, |traffic, out| {
                    let mut to = Encrypt { traffic, out };
                    // Everything queued, as far as the limit allows, then one write.
                    while !queue.is_empty() {
                        match queue.write_to(&mut to, scratch) {
                            Ok(_) => {}
                            // `out` is full: write it out first.
                            Err(e) if e.kind() == io::ErrorKind::WriteZero => break,
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                });
                if lean.out.is_empty() {
                    // Nothing encrypted (the handshake is not done): keep no buffer.
                    scratch.recycle(std::mem::take(&mut lean.out));
                }
                if let Some(Err(e)) = encrypted {
                    return Err(Some(io_error(&e)));
                }
            }
            if !lean.wants_write() || !state.has(Io::WRITABLE) {
                return Ok(());
            }
            match (&*stream).write(lean.out.get(lean.sent..).unwrap_or_default()) {
                Ok(n) => {
                    bump(&counters.wire_sent, n as u64);
                    lean.sent += n;
                    if lean.sent == lean.out.len() {
                        scratch.recycle(std::mem::take(&mut lean.out));
                        lean.sent = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.clear(Io::WRITABLE);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Some(io_error(&e))),
            }
        }
    }
}
