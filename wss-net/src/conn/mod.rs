//! One accepted socket and what must survive between its events.
//!
//! A connection goes through phases: `Head` (reading request heads, answering plain HTTP
//! requests, possibly several on one keep-alive connection), `Pending` (a decision is awaited
//! from another thread), `Ws` (upgraded: a `wss_proto::Connection` does the protocol) and
//! `Finishing` (last bytes are written, then FIN, then input is discarded until the peer's
//! EOF or a short deadline; or, after a clean closing handshake on a plain server socket, the
//! socket is closed as soon as the last bytes are written). The phase methods live in
//! `head.rs` and `ws.rs`; this file holds the socket side: reading until `WouldBlock` within a
//! budget, writing until `WouldBlock`, and the timer. On a TLS socket `tls.rs` sits between
//! the socket and the phases.

mod head;
mod tls;
mod ws;

use std::io::{self, IoSliceMut, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::api::ConnError;
use crate::event_loop::Ctx;
use crate::outq::OutQueue;
use crate::stats::bump;
use crate::timers::Tick;
use crate::ConnId;

pub(crate) use head::Head;
pub(crate) use tls::Tls;
pub(crate) use ws::Ws;

/// Bytes read from one socket in one loop turn before the others get their turn.
const READ_BUDGET: usize = 1 << 20;

/// How long a finished connection waits for the peer's EOF after our FIN before the socket is
/// closed anyway. Waiting lets the peer read everything we wrote: closing a socket with unread
/// input sends a reset, which can destroy the last response in flight.
const LINGER: Duration = Duration::from_secs(2);

/// Why a step ended the connection: `None` for an orderly end (or one already reported),
/// `Some` with the reason otherwise.
pub(crate) type Step = Result<(), Option<ConnError>>;

// The large variant is the one connections live in; the transient ones are boxed instead.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Phase {
    Head(Box<Head>),
    /// Boxed: a transient phase should not widen every slab slot.
    Pending(Box<Pending>),
    /// Inline: it is the phase connections spend their life in, and a box would add an
    /// allocation's header and rounding (about 24 bytes) to every idle connection.
    Ws(Ws),
    Finishing {
        deadline: Instant,
        fin_sent: bool,
        /// The peer is done (its close frame was the last thing it sent and we read all of
        /// it): the socket is closed once our last bytes are written, with no FIN and wait
        /// for its EOF first. Cleared if any byte arrives after all.
        at_once: bool,
    },
}

pub(crate) struct Pending {
    /// The client's address (from `accept`), for the decision's `Opened` and the next head.
    peer: SocketAddr,
    /// Bytes that followed the head, replayed once decided.
    held: Vec<u8>,
    deadline: Instant,
    client_keep_alive: bool,
}

/// A connection's socket state, as flags.
#[derive(Clone, Copy)]
struct Io(u8);

impl Io {
    /// Readiness as last reported by the kernel (edge-triggered: cleared only on WouldBlock).
    const READABLE: u8 = 1;
    const WRITABLE: u8 = 2;
    /// The peer closed its side (read returned 0).
    const EOF: u8 = 4;
    /// The kernel reported the peer's FIN (or an error) with the last readiness: a short read
    /// does not prove the socket drained then, so reading goes on until `WouldBlock` or EOF.
    const READ_CLOSED: u8 = 8;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Sets `flag` when `on` (never clears it).
    fn raise(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        }
    }

    fn clear(&mut self, flag: u8) {
        self.0 &= !flag;
    }
}

pub(crate) struct Conn {
    stream: TcpStream,
    pub(crate) generation: u32,
    /// Readiness and end of input: one byte of flags rather than four bools, which keeps the
    /// slot 8 bytes smaller (the slot is rounded to 8).
    io: Io,
    /// Earliest deadline this connection has in the loop's timer heap.
    pub(crate) scheduled: Option<Tick>,
    out: OutQueue,
    phase: Phase,
    /// `Some` on a TLS listener's socket; boxed, so a plain socket pays 8 bytes for it.
    tls: Option<Box<Tls>>,
    /// The connection's entry in the per-address counts (`limits::NO_ADDR` if none).
    pub(crate) addr_slot: u32,
    /// Counted among the handshakes in progress (until the first request is answered).
    pub(crate) handshaking: bool,
    /// On the loop's list of connections to flush this turn (so it is listed once).
    pub(crate) flush_listed: bool,
}

impl Conn {
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        generation: u32,
        ctx: &Ctx,
        tls: Option<Box<Tls>>,
        addr_slot: u32,
    ) -> Conn {
        Conn {
            tls,
            addr_slot,
            handshaking: true,
            flush_listed: false,
            stream,
            generation,
            io: Io(Io::WRITABLE),
            scheduled: None,
            out: OutQueue::default(),
            phase: Phase::Head(Box::new(Head::new(ctx, peer))),
        }
    }

    /// The kernel reported readiness; `read_closed`: the peer's FIN or an error came with it.
    pub(crate) fn set_ready(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.io.raise(Io::READABLE, readable);
        self.io.raise(Io::WRITABLE, writable);
        self.io.raise(Io::READ_CLOSED, read_closed);
    }

    pub(crate) fn is_upgraded(&self) -> bool {
        matches!(self.phase, Phase::Ws(_))
    }

    pub(crate) fn is_finishing(&self) -> bool {
        matches!(self.phase, Phase::Finishing { .. })
    }

    /// Whether input should be read now (false while a decision is pending, while plain HTTP
    /// responses are backed up, while the consumer of a WebSocket's messages is behind, and
    /// after EOF).
    fn wants_read(&self) -> bool {
        if self.io.has(Io::EOF) {
            return false;
        }
        match &self.phase {
            Phase::Head(h) => !h.is_paused(),
            Phase::Pending(_) => false,
            Phase::Ws(w) => w.wants_read(),
            Phase::Finishing { .. } => true,
        }
    }

    /// Does everything the connection can do now: replay held input, read, write. Returns
    /// `Err` when the connection must be destroyed.
    pub(crate) fn drive(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        // This drive flushes: a send after it must list the connection again.
        self.flush_listed = false;
        // A few rounds, because writing can unblock held input and input can produce output.
        for _ in 0..4 {
            let replayed = self.replay_held(ctx, id)?;
            if self.io.has(Io::READABLE) && self.wants_read() {
                self.read(ctx, id)?;
            }
            self.flush(ctx)?;
            self.after_flush(ctx)?;
            if !replayed {
                break;
            }
        }
        self.schedule(ctx, id);
        Ok(())
    }

    fn read(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        // The loop's buffer is lent out for the call, so phase code can take `&mut Ctx`.
        let mut buf = std::mem::take(&mut ctx.read_buf);
        let result = if self.tls.is_some() {
            self.read_tls_into(ctx, id, &mut buf)
        } else {
            self.read_into(ctx, id, &mut buf)
        };
        ctx.read_buf = buf;
        result
    }

    fn read_into(&mut self, ctx: &mut Ctx, id: ConnId, buf: &mut [u8]) -> Step {
        let mut budget = READ_BUDGET;
        while self.io.has(Io::READABLE) && self.wants_read() {
            if budget == 0 {
                // Still readable: come back next turn, after the other sockets.
                ctx.ready.push(id);
                return Ok(());
            }
            // After a large whole message, the next payload is read straight into the
            // buffer that becomes its message (wss-proto's `ReadAhead`).
            let mut ahead = self.ws_read_ahead(ctx);
            let capacity = ahead.as_ref().map_or(buf.len(), |a| a.capacity(buf.len()));
            let read = match ahead.as_mut() {
                Some(a) => {
                    let (head, rest) = buf.split_at_mut(a.head_len().min(buf.len()));
                    let mut slices = [
                        IoSliceMut::new(head),
                        IoSliceMut::new(a.payload()),
                        IoSliceMut::new(rest),
                    ];
                    (&self.stream).read_vectored(&mut slices)
                }
                None => (&self.stream).read(buf),
            };
            match read {
                Ok(0) => {
                    if let Some(a) = ahead {
                        a.give_back(&mut ctx.scratch);
                    }
                    self.io.clear(Io::READABLE);
                    self.io.raise(Io::EOF, true);
                    return self.on_eof();
                }
                Ok(n) => {
                    bump(&ctx.shared.counters.wire_received, n as u64);
                    budget = budget.saturating_sub(n);
                    // A read that did not fill the buffer took everything the socket held:
                    // bytes arriving later raise a new edge, so the read that would only
                    // return `WouldBlock` (one syscall per message at low load) is skipped.
                    // Not when a FIN was reported: its EOF must still be read.
                    if n < capacity && !self.io.has(Io::READ_CLOSED) {
                        self.io.clear(Io::READABLE);
                    }
                    match ahead {
                        Some(a) => self.ws_bytes_ahead(ctx, id, a, n, buf)?,
                        None => self.on_bytes(ctx, id, buf.get(..n).unwrap_or_default())?,
                    }
                }
                Err(e) => {
                    if let Some(a) = ahead {
                        a.give_back(&mut ctx.scratch);
                    }
                    match e.kind() {
                        io::ErrorKind::WouldBlock => self.io.clear(Io::READABLE),
                        io::ErrorKind::Interrupted => {}
                        _ => return Err(Some(io_error(&e))),
                    }
                }
            }
        }
        Ok(())
    }

    fn on_bytes(&mut self, ctx: &mut Ctx, id: ConnId, data: &[u8]) -> Step {
        match &mut self.phase {
            Phase::Head(_) => self.head_bytes(ctx, id, data),
            Phase::Ws(_) => self.ws_bytes(ctx, id, data),
            Phase::Pending(p) => {
                p.held.extend_from_slice(data);
                Ok(())
            }
            Phase::Finishing { at_once, .. } => {
                // Bytes after the peer's close: it is not done sending, and closing now would
                // answer its next bytes with a reset. Back to FIN, drain, wait for EOF.
                *at_once = false;
                Ok(())
            }
        }
    }

    fn on_eof(&mut self) -> Step {
        match &self.phase {
            // A client may half-close after its last request: still answer it.
            Phase::Head(_) if self.unsent() => {
                self.phase = Phase::Finishing {
                    deadline: Instant::now() + LINGER,
                    fin_sent: false,
                    at_once: false,
                };
                Ok(())
            }
            Phase::Head(_) | Phase::Pending(_) => Err(None),
            Phase::Ws(_) => Err(Some(ConnError::Io(io::ErrorKind::UnexpectedEof))),
            Phase::Finishing { fin_sent, .. } => {
                if *fin_sent || !self.unsent() {
                    Err(None)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Writes queued bytes until the queue is empty or the socket is full.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            w.pull_output(&mut self.out);
        }
        if self.tls.is_some() {
            self.flush_tls(&ctx.shared.counters, &mut ctx.scratch)?;
        } else {
            while self.io.has(Io::WRITABLE) && !self.out.is_empty() {
                match self.out.write_to(&mut &self.stream, &mut ctx.scratch) {
                    Ok(n) => bump(&ctx.shared.counters.wire_sent, n as u64),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(Io::WRITABLE),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Some(io_error(&e))),
                }
            }
        }
        if let Phase::Ws(w) = &self.phase {
            w.set_buffered(&ctx.shared.counters, self.out.len());
            // Only WebSocket traffic is bounded here: in the HTTP phase one response at a time
            // is queued (pipelining pauses), whatever its size.
            if self.out.len() > ctx.config.max_outgoing {
                bump(&ctx.shared.counters.slow_consumers, 1);
                return Err(Some(ConnError::OutgoingOverflow {
                    limit: ctx.config.max_outgoing,
                }));
            }
        }
        Ok(())
    }

    /// Once the last bytes of a finishing connection are out: FIN, or the end if the peer is
    /// already gone or done.
    fn after_flush(&mut self, ctx: &Ctx) -> Step {
        if let Phase::Finishing { at_once: true, .. } = self.phase {
            // Closing the socket now (instead of FIN, then a read for the peer's EOF) is safe
            // only if no byte of the peer's can be unread: with data in the receive queue,
            // close() sends a reset instead of a FIN, and a reset may make the peer's stack
            // drop our close frame before its reader takes it. Here the read that brought the
            // peer's close frame took all the socket held (READABLE is cleared, the protocol
            // saw no byte after the frame) and nothing came since (any byte clears
            // `at_once`). With no SO_LINGER set, close() then sends our FIN after the queued
            // bytes and the kernel delivers them on its own. A peer that keeps sending after
            // its close frame breaks RFC 6455 §5.5.1 and may get a reset; the peer's FIN
            // arriving later is simply answered. The server thus closes TCP first, as
            // §7.1.1 asks, keeps the TIME_WAIT, and saves a `shutdown` and a read.
            if self.out.is_empty() && !self.io.has(Io::READABLE) {
                return Err(None);
            }
        }
        let ready_for_fin = matches!(
            self.phase,
            Phase::Finishing {
                fin_sent: false,
                ..
            }
        ) && self.out.is_empty();
        // TLS: `close_notify` first, so the peer can tell our end from a truncation.
        if ready_for_fin && !self.io.has(Io::EOF) && !self.tls_close_notify(&ctx.shared.counters)? {
            return Ok(());
        }
        if let Phase::Finishing { fin_sent, .. } = &mut self.phase {
            if !*fin_sent && self.out.is_empty() {
                if self.io.has(Io::EOF) {
                    return Err(None);
                }
                *fin_sent = true;
                if self.stream.shutdown(Shutdown::Write).is_err() {
                    return Err(None);
                }
            }
        }
        Ok(())
    }

    /// Bytes are waiting to be written: plaintext queued, or TLS records.
    fn unsent(&self) -> bool {
        !self.out.is_empty() || self.tls.as_deref().is_some_and(Tls::wants_write)
    }

    /// Ends the connection in an orderly way: queued bytes are written, then FIN.
    pub(crate) fn finish(&mut self, now: Instant) {
        self.end(now, false);
    }

    /// Ends the connection after queued bytes are written: with `at_once` the socket is
    /// closed then (the peer is done sending), otherwise FIN, then the wait for its EOF.
    fn end(&mut self, now: Instant, at_once: bool) {
        self.phase = Phase::Finishing {
            deadline: now + LINGER,
            fin_sent: false,
            at_once,
        };
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Head(h) => Some(h.deadline()),
            Phase::Pending(p) => Some(p.deadline),
            Phase::Finishing { deadline, .. } => Some(*deadline),
            Phase::Ws(w) => w.deadline(),
        }
    }

    fn schedule(&mut self, ctx: &mut Ctx, id: ConnId) {
        if let Some(at) = self.deadline() {
            ctx.timers.schedule(&mut self.scheduled, at, id);
        }
    }

    /// A timer entry for this connection came due. `at` is the entry's deadline: only the
    /// connection's current entry counts, stale ones are skipped.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx, id: ConnId, at: Tick) -> Step {
        if self.scheduled != Some(at) {
            return Ok(());
        }
        self.scheduled = None;
        let now = ctx.now;
        match &mut self.phase {
            Phase::Head(h) if h.deadline() <= now => {
                if h.started() {
                    bump(&ctx.shared.counters.handshake_timeouts, 1);
                    let response = wss_proto::handshake::Response::error(408, "Request Timeout");
                    self.out.push_with(0, |v| response.encode(v));
                    self.finish(now);
                } else {
                    return Err(None);
                }
            }
            Phase::Pending(p) if p.deadline <= now => {
                bump(&ctx.shared.counters.handshake_timeouts, 1);
                let response = wss_proto::handshake::Response::error(503, "Service Unavailable");
                self.out.push_with(0, |v| response.encode(v));
                self.finish(now);
            }
            Phase::Ws(_) => self.ws_timer(ctx, id)?,
            Phase::Finishing { deadline, .. } if *deadline <= now => return Err(None),
            _ => {}
        }
        self.drive(ctx, id)
    }

    /// The connection is being destroyed: an upgraded one reports its `Closed` (1006 with
    /// `error`, which defaults to an unexpected EOF).
    pub(crate) fn on_destroy(&mut self, ctx: &mut Ctx, id: ConnId, error: Option<ConnError>) {
        if let Phase::Ws(w) = &mut self.phase {
            if !w.reported() {
                w.report_abnormal(
                    ctx,
                    id,
                    error.unwrap_or(ConnError::Io(io::ErrorKind::UnexpectedEof)),
                );
            }
            self.out.clear();
            w.set_buffered(&ctx.shared.counters, 0);
        }
        self.phase = Phase::Finishing {
            deadline: ctx.now,
            fin_sent: true,
            at_once: false,
        };
    }
}

fn io_error(e: &io::Error) -> ConnError {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ConnError::ResetByPeer,
        kind => ConnError::Io(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slab slot is this big, whatever the phase, and an idle upgraded connection costs
    /// its slot plus one small shared allocation (`ConnFlow`: the queued-bytes count and the
    /// flow share, 64 bytes with the allocator's header) and a 16-byte timer entry. Past the
    /// protocol state (`wss_proto::Connection`, measured apart so its size is charged to its
    /// crate), the loop's own part is bounded here: in `Ws` the sink, the shared state's
    /// pointer and three flags; in `Conn` the phase (its tag in a niche of `Ws`), the socket
    /// (4 bytes in a release build, more with mio's debug assertions), the timer record, an
    /// 8-byte output queue, the TLS pointer, the generation, the address slot and one byte of
    /// socket flags with two more flags.
    #[test]
    fn connection_state_stays_small() {
        let conn = std::mem::size_of::<Conn>();
        let ws = std::mem::size_of::<Ws>();
        let phase = std::mem::size_of::<Phase>();
        let stream = std::mem::size_of::<TcpStream>();
        let proto = std::mem::size_of::<wss_proto::Connection>();
        eprintln!("Conn {conn} Phase {phase} Ws {ws} wss_proto::Connection {proto}");
        assert_eq!(
            std::mem::size_of::<OutQueue>(),
            8,
            "an empty queue is one pointer"
        );
        assert_eq!(
            std::mem::size_of::<Option<Tick>>(),
            8,
            "the timer record is 8 bytes"
        );
        assert!(
            ws <= proto + 32,
            "Ws is {ws} bytes (wss_proto::Connection: {proto})"
        );
        assert!(
            conn <= ws + stream + 40,
            "Conn is {conn} bytes (Ws: {ws}, Phase: {phase}, TcpStream: {stream})"
        );
    }
}
