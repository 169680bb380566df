//! The upgraded phase: a `wss_proto::Connection` per socket, its events turned into
//! `NetEvent`s, and the rules for when the socket ends.

use std::sync::Arc;
use std::time::Instant;

use wss_proto::{CloseCode, Connection, Event, Message, ReadAhead, Role, State, Timeout};

use super::{Conn, Phase, Step};
use crate::api::{ConnError, EventSink, NetEvent, Outgoing};
use crate::event_loop::Ctx;
use crate::inbound::{self, Backlog, Buffered, ConnFlow, Credit, Gate, Verdict};
use crate::outq::OutQueue;
use crate::stats::{bump, CloseBy, LoopCounters};
use crate::ConnId;

/// State of an upgraded connection.
pub(crate) struct Ws {
    ws: Connection,
    pub(crate) sink: Arc<dyn EventSink>,
    /// What the consumer shares: the queued-bytes count, and the connection's share of its
    /// sink's backlog when the sink has one.
    flow: Arc<ConnFlow>,
    /// The consumer is behind: neither the socket is read nor the protocol's decoded events
    /// taken, until a resume.
    blocked: bool,
    /// The connection's `Closed` went to the sink: ending it must not report another.
    closed_reported: bool,
    /// The code of the close frame we began the closing handshake with (0: we did not), for
    /// the close counts.
    sent_code: u16,
    /// The sink wants large payloads read straight into their buffers
    /// ([`EventSink::read_ahead`]).
    read_ahead: bool,
}

/// How the protocol ended the connection, found while draining its events.
enum End {
    /// The closing handshake completed or the peer failed: write what is queued, then FIN.
    Orderly(CloseCode, String, Option<ConnError>),
    /// A timeout: drop the socket now.
    Drop(ConnError),
}

impl Ws {
    pub(crate) fn new(ws: Connection, sink: Arc<dyn EventSink>, flow: Arc<ConnFlow>) -> Ws {
        let read_ahead = sink.read_ahead();
        Ws {
            ws,
            sink,
            flow,
            blocked: false,
            closed_reported: false,
            sent_code: 0,
            read_ahead,
        }
    }

    /// Whether the socket may be read (false while the consumer is behind).
    pub(crate) fn wants_read(&self) -> bool {
        !self.blocked && !self.ws.close_reply_pending()
    }

    /// The connection's `Closed` was reported already (after the peer's close or a failure,
    /// while its close reply may still wait for the consumer): destroying it must not report another.
    pub(crate) fn reported(&self) -> bool {
        self.closed_reported
    }

    /// Moves the protocol's queued bytes (frames, pongs, close) to the socket queue.
    pub(crate) fn pull_output(&mut self, out: &mut OutQueue) {
        if self.ws.wants_write() {
            // An empty Vec makes the protocol hand over its buffer instead of copying it, and
            // leaves it holding no allocation while idle.
            let mut bytes = Vec::new();
            self.ws.poll_transmit(&mut bytes);
            out.push_owned(bytes);
        }
    }

    /// Publishes the queued-bytes count (`bufferedAmount`) and moves the loop's gauge.
    pub(crate) fn set_buffered(&self, counters: &LoopCounters, n: usize) {
        let (before, after) = self.flow.set_buffered(n);
        if before != after {
            counters.requeue(before as usize, after as usize);
        }
    }

    /// Takes the connection's queued bytes out of the loop's gauge as it leaves the WebSocket
    /// phase (what it still writes is the end of a closed connection, no longer tracked).
    fn untrack(&self, counters: &LoopCounters) {
        counters.requeue(self.flow.buffered_now() as usize, 0);
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.ws.poll_timeout()
    }

    /// Whether the socket may be closed as soon as our close frame is written, without a FIN
    /// first and a wait for the peer's EOF: the closing handshake is complete (the peer's
    /// close frame came, `peer_closed`), we are the server (a client waits for the server to
    /// close TCP, RFC 6455 §7.1.1), the close frame was the last byte the peer sent, and the
    /// socket is plain (over TLS the peer answers our `close_notify` with its own, bytes a
    /// closed socket would answer with a reset).
    fn ends_at_once(&self, peer_closed: bool, plain: bool) -> bool {
        peer_closed && plain && self.ws.role() == Role::Server && !self.ws.input_after_close()
    }

    /// Counts the connection's close: the side that began it and its code.
    fn count_close(&self, ctx: &Ctx, code: CloseCode, error: Option<&ConnError>) {
        let (by, code) = if self.sent_code != 0 {
            (CloseBy::Server, CloseCode(self.sent_code))
        } else {
            match error {
                None => (CloseBy::Client, code),
                Some(ConnError::Io(_) | ConnError::ResetByPeer | ConnError::Tls(_)) => {
                    (CloseBy::Client, code)
                }
                Some(_) => (CloseBy::Server, code),
            }
        };
        ctx.shared.counters.note_close(by, code);
    }

    pub(crate) fn report_abnormal(&mut self, ctx: &mut Ctx, id: ConnId, error: ConnError) {
        self.closed_reported = true;
        self.count_close(ctx, CloseCode::ABNORMAL, Some(&error));
        ctx.emit(
            &self.sink,
            NetEvent::Closed {
                conn: id,
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                error: Some(error),
            },
        );
    }
}

impl Conn {
    /// An outgoing connection, upgraded by the layer above: straight into the WebSocket
    /// phase, reporting `Opened` ([`start_client`](Self::start_client) then reports what the
    /// protocol decoded from the bytes that came with the `101`). Both readiness flags start raised: rustls may hold plaintext already,
    /// which no readiness edge would announce.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_client(
        stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        generation: u32,
        tls: Option<Box<super::Tls>>,
        ws: Connection,
        sink: Arc<dyn EventSink>,
        ctx: &mut Ctx,
        id: ConnId,
    ) -> Conn {
        let link =
            crate::guard::inbound(&*sink).map(|inbound| (inbound, Arc::clone(&ctx.shared), id));
        let flow = Arc::new(ConnFlow::new(link));
        let credit = Credit::new(&flow);
        let buffered = Buffered::new(&flow);
        let deflate = ws.deflate().cloned();
        let w = Ws::new(ws, sink, flow);
        ctx.emit(
            &w.sink,
            NetEvent::Opened {
                conn: id,
                peer,
                buffered,
                deflate,
                credit,
            },
        );
        Conn {
            tls,
            addr_slot: crate::limits::NO_ADDR,
            handshaking: false,
            flush_listed: false,
            stream,
            generation,
            io: super::Io(super::Io::READABLE | super::Io::WRITABLE),
            scheduled: None,
            out: OutQueue::default(),
            phase: Phase::Ws(w),
        }
    }

    /// Takes the events the protocol decoded before the hand-over (frames that came with
    /// the `101`), as if they had come through the loop.
    pub(crate) fn start_client(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        self.ws_pump(ctx, id)
    }

    pub(super) fn ws_bytes(&mut self, ctx: &mut Ctx, id: ConnId, data: &[u8]) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            w.ws.receive(&mut ctx.scratch, ctx.now, data);
        }
        self.ws_pump(ctx, id)
    }

    /// How the next read may put a large payload straight into its message buffer (only
    /// upgraded connections of a sink that asks for it ever have one).
    pub(super) fn ws_read_ahead(&mut self, ctx: &mut Ctx) -> Option<ReadAhead> {
        match &mut self.phase {
            Phase::Ws(w) if w.read_ahead => w.ws.read_ahead(&mut ctx.scratch),
            _ => None,
        }
    }

    /// [`ws_bytes`](Self::ws_bytes) for a read made with `ahead`: `n` bytes, in `buf`'s
    /// first `head_len` bytes, then `ahead`'s payload slice, then the rest of `buf`.
    pub(super) fn ws_bytes_ahead(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        ahead: ReadAhead,
        n: usize,
        buf: &[u8],
    ) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            let (head, rest) = buf.split_at(ahead.head_len().min(buf.len()));
            if w.ws
                .receive_ahead(&mut ctx.scratch, ctx.now, ahead, n, head, rest)
            {
                bump(&ctx.shared.counters.reads_ahead, 1);
            }
        } else {
            ahead.give_back(&mut ctx.scratch);
        }
        self.ws_pump(ctx, id)
    }

    pub(super) fn ws_timer(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            if w.ws.poll_timeout().is_some_and(|at| at <= ctx.now) {
                w.ws.handle_timeout(ctx.now);
            }
        }
        self.ws_pump(ctx, id)
    }

    /// The consumer caught up (`listed`: a sink's total did, and the connection was on the
    /// loop's list): take the held events and read again, unless still behind.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx, id: ConnId, listed: bool) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        if listed {
            inbound::unlist(&w.flow);
        }
        if !w.blocked {
            return Ok(());
        }
        w.blocked = false;
        self.ws_pump(ctx, id)
    }

    /// Turns the protocol's events into `NetEvent`s, moves its output to the queue, and ends
    /// the phase when the protocol is done. While the consumer is behind, the events stay in
    /// the protocol's queue (they are at most one read's worth) and nothing more is read.
    fn ws_pump(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        let mut end = None;
        let mut drained = false;
        while !w.blocked && !drained {
            let sink = &w.sink;
            let mut gate = Gate::open(&w.flow, || ctx.turn_cost(sink));
            let inbound = w.flow.inbound();
            loop {
                if gate.closed() {
                    break;
                }
                let Some(event) = w.ws.poll_event(&mut ctx.scratch) else {
                    drained = true;
                    break;
                };
                let Event::Message(message) = event else {
                    note_end(&mut end, event);
                    continue;
                };
                let cost = Backlog::of(&message);
                let counters = &ctx.shared.counters;
                match &message {
                    Message::Text(t) => {
                        bump(&counters.received[0], 1);
                        bump(&counters.app_received, t.len() as u64);
                    }
                    Message::Binary(b) => {
                        bump(&counters.received[1], 1);
                        bump(&counters.app_received, b.len() as u64);
                    }
                }
                gate.take(cost);
                let event = NetEvent::Message { conn: id, message };
                ctx.emit_message(sink, inbound, event, cost);
            }
            match gate.commit(ctx.turn_cost(sink)) {
                Verdict::Go => {}
                Verdict::Wait => w.blocked = true,
                Verdict::WaitListed => {
                    w.blocked = true;
                    ctx.total_blocked.push(id);
                }
            }
            if w.blocked {
                ctx.shared.note_inbound_pause();
            }
        }
        if end.is_none() && drained && w.ws.state() == State::Closed {
            if w.ws.close_reply_pending() {
                return Ok(());
            }
            if w.closed_reported {
                // A `Closed` reported earlier whose deferred close reply was just queued (the
                // reply is owed after the peer's close, or after a failure).
                let peer_closed = w.ws.error().is_none();
                let at_once = w.ends_at_once(peer_closed, self.tls.is_none());
                w.pull_output(&mut self.out);
                w.set_buffered(&ctx.shared.counters, self.out.len());
                w.untrack(&ctx.shared.counters);
                self.end(ctx.now, at_once);
                return Ok(());
            }
            // Closed without an event explaining it: treat as a failure, never report twice.
            end = Some(End::Drop(ConnError::Io(std::io::ErrorKind::Other)));
        }
        w.pull_output(&mut self.out);
        match end {
            None => Ok(()),
            Some(End::Drop(error)) => Err(Some(error)),
            Some(End::Orderly(code, reason, error)) => {
                let peer_closed = error.is_none();
                w.closed_reported = true;
                w.count_close(ctx, code, error.as_ref());
                ctx.emit(
                    &w.sink,
                    NetEvent::Closed {
                        conn: id,
                        code,
                        reason,
                        error,
                    },
                );
                w.set_buffered(&ctx.shared.counters, self.out.len());
                if !w.ws.close_reply_pending() {
                    // No error: the end is the peer's close frame (a failure carries one).
                    let at_once = w.ends_at_once(peer_closed, self.tls.is_none());
                    w.untrack(&ctx.shared.counters);
                    self.end(ctx.now, at_once);
                }
                Ok(())
            }
        }
    }
}

/// A message's type (0 text, 1 binary) and payload bytes, for the sent counts.
#[inline]
fn sent_count(msg: &Outgoing) -> (usize, u64) {
    match msg {
        Outgoing::Text(t) => (0, t.len() as u64),
        Outgoing::Binary(b) => (1, b.len() as u64),
        Outgoing::Shared(frames) => {
            // Pre-encoded: the first frame's header says its type and payload length.
            let kind = usize::from(frames.first().is_some_and(|b| b & 0x0f == 0x2));
            (kind, shared_payload_len(frames))
        }
    }
}

/// Counts a message the protocol took: its type and its payload bytes.
#[inline]
fn count_sent(counters: &LoopCounters, (kind, len): (usize, u64)) {
    if let Some(c) = counters.sent.get(kind) {
        bump(c, 1);
    }
    bump(&counters.app_sent, len);
}

/// The payload length in the header of an unmasked server frame (0 when it is cut short).
fn shared_payload_len(frame: &[u8]) -> u64 {
    match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => frame
            .get(2..4)
            .map_or(0, |b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
        Some(127) => frame
            .get(2..10)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes),
        Some(n) => u64::from(n),
        None => 0,
    }
}

/// Notes how the protocol ended the connection, from an event that is not a message.
fn note_end(end: &mut Option<End>, event: Event) {
    match event {
        Event::Message(_) | Event::Ping(_) | Event::Pong(_) => {}
        Event::CloseReceived { code, reason } => {
            let code = code.unwrap_or(CloseCode::NO_STATUS);
            end.get_or_insert(End::Orderly(code, reason, None));
        }
        Event::Failed(e) => {
            let code = e.close_code();
            end.get_or_insert(End::Orderly(
                code,
                String::new(),
                Some(ConnError::Protocol(e)),
            ));
        }
        Event::TimedOut(t) => {
            let error = match t {
                Timeout::Close => ConnError::CloseTimeout,
                Timeout::Idle => ConnError::IdleTimeout,
            };
            *end = Some(End::Drop(error));
        }
    }
}

impl Conn {
    /// `NetHandle::send` for this connection: ignored unless upgraded and still open (or
    /// answering before its deferred close reply). The protocol frames the message into the
    /// socket queue, after the frames it queued before (pongs).
    pub(crate) fn send(&mut self, ctx: &mut Ctx, id: ConnId, msg: Outgoing) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        let counted = sent_count(&msg);
        match w.ws.send(msg, &mut self.out.tx(&mut ctx.scratch)) {
            Ok(()) => count_sent(&ctx.shared.counters, counted),
            Err(wss_proto::SendError::Closed) => return Ok(()),
            Err(e) => log::debug!("{id}: send refused: {e}"),
        }
        self.check_bound(ctx)
    }

    fn check_bound(&mut self, ctx: &mut Ctx) -> Step {
        if self.out.len() > ctx.config.max_outgoing {
            // Maybe the socket can take it now; the bound is checked again after the attempt.
            self.flush(ctx)?;
        }
        Ok(())
    }

    /// `NetHandle::answered` for this connection: its deferred close reply goes out after
    /// what was sent meanwhile, then the connection ends.
    pub(crate) fn answered(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        if !w.ws.close_reply_pending() {
            return Ok(());
        }
        w.ws.send_close_reply();
        self.ws_pump(ctx, id)
    }

    /// `NetHandle::close` for this connection. Heads and pending connections are just
    /// dropped; an upgraded one starts the closing handshake.
    pub(crate) fn close(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        code: CloseCode,
        reason: &str,
    ) -> Step {
        match &mut self.phase {
            Phase::Ws(w) => {
                // A deferred close reply already says goodbye: send it instead of waiting.
                w.ws.send_close_reply();
                if w.ws.state() == State::Open {
                    match w.ws.close(ctx.now, code, reason) {
                        Ok(()) => w.sent_code = code.0,
                        Err(e) => log::debug!("{id}: close refused: {e}"),
                    }
                }
                self.ws_pump(ctx, id)
            }
            Phase::Head(_) | Phase::Pending(_) => Err(None),
            Phase::Finishing { .. } => Ok(()),
        }
    }
}
