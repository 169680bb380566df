//! The upgraded phase: a `wss_proto::Connection` per socket, its events turned into
//! `NetEvent`s, and the rules for when the socket ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wss_proto::close::CloseCode;
use wss_proto::connection::{Connection, Event, Message, Role, State, Timeout};
use wss_proto::frame::{encode_frame, FrameHeader, Opcode};

use super::{Conn, Phase, Step};
use crate::api::{ConnError, EventSink, NetEvent, Outgoing};
use crate::event_loop::Ctx;
use crate::inbound::{self, Backlog, Buffered, ConnFlow, Credit, Gate, Verdict};
use crate::outq::OutQueue;
use crate::stats::{bump, CloseBy, LoopCounters};
use crate::ConnId;

/// Payloads above this size are queued as their own chunk instead of copied.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// Longest a held close frame (a failure's, or the reply to the peer's close behind messages)
/// waits for the consumer's [`release`](crate::NetHandle::release) (the close timeout when
/// shorter).
const CLOSE_HOLD: Duration = Duration::from_secs(1);

/// State of an upgraded connection.
pub(crate) struct Ws {
    ws: Connection,
    pub(crate) sink: Arc<dyn EventSink>,
    /// What the consumer shares: the queued-bytes count, and the connection's share of its
    /// sink's backlog when the sink has one.
    flow: Arc<ConnFlow>,
    /// permessage-deflate with a compressor that keeps history between messages: shared
    /// frames queued past it must cut that history.
    takes_context_over: bool,
    /// The consumer is behind: neither the socket is read nor the protocol's decoded events
    /// taken, until a resume.
    blocked: bool,
    /// The connection's `Closed` went to the sink: ending it must not report another.
    closed_reported: bool,
    /// An outgoing connection (`NetHandle::connect`): its frames are masked, so the protocol
    /// state frames every send. Kept here, in the struct's padding, so a server's send tests
    /// a field instead of calling into the protocol crate.
    client: bool,
    /// The code of the close frame we began the closing handshake with (0: we did not), for
    /// the close counts.
    sent_code: u16,
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
        let takes_context_over = ws.deflate().is_some_and(|p| !p.server_no_context_takeover);
        let client = ws.role() == Role::Client;
        Ws {
            client,
            takes_context_over,
            ws,
            sink,
            flow,
            blocked: false,
            closed_reported: false,
            sent_code: 0,
        }
    }

    /// Whether the socket may be read (false while the consumer is behind).
    pub(crate) fn wants_read(&self) -> bool {
        !self.blocked && !self.ws.is_holding_close()
    }

    /// The connection's `Closed` was reported already (after the peer's close or a failure,
    /// while its close frame may still be held): destroying it must not report another.
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

    /// Right after input reached the protocol, before anything can take the output: holds
    /// the close frame it queued (a failure's, or the reply to the peer's close) when the
    /// sink asks, so the events before it may wait for the consumer (flow control) while
    /// the socket is flushed. The protocol offers a clean close's reply only when messages
    /// came before it in the same input, so a close alone is answered at once.
    fn hold_close_if_asked(&mut self, ctx: &Ctx) {
        if self.ws.state() == State::Closed && self.sink.holds_failure_close() {
            let wait = CLOSE_HOLD.min(ctx.config.proto.close_timeout);
            // Only the close is held: pongs queued before it go out as usual.
            if self.ws.hold_close(ctx.now + wait) {
                inbound::note_close_held(&self.flow);
            }
        }
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
    /// the `101`): their close frame, if they ended the connection, is held as it would be
    /// had they come through the loop.
    pub(crate) fn start_client(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            w.hold_close_if_asked(ctx);
        }
        self.ws_pump(ctx, id)
    }

    pub(super) fn ws_bytes(&mut self, ctx: &mut Ctx, id: ConnId, data: &[u8]) -> Step {
        if let Phase::Ws(w) = &mut self.phase {
            w.ws.receive(ctx.now, data);
            w.hold_close_if_asked(ctx);
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
                let Some(event) = w.ws.poll_event() else {
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
            if w.ws.is_holding_close() {
                return Ok(());
            }
            if w.closed_reported {
                // A `Closed` reported earlier whose held close frame was just released.
                w.pull_output(&mut self.out);
                w.set_buffered(&ctx.shared.counters, self.out.len());
                w.untrack(&ctx.shared.counters);
                self.finish(ctx.now);
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
                if !w.ws.is_holding_close() {
                    w.untrack(&ctx.shared.counters);
                    self.finish(ctx.now);
                }
                Ok(())
            }
        }
    }
}

/// Counts a message handed to a connection: its type and its payload bytes.
#[inline]
fn count_sent(counters: &LoopCounters, msg: &Outgoing) {
    let (kind, len) = match msg {
        Outgoing::Text(t) => (0, t.len() as u64),
        Outgoing::Binary(b) => (1, b.len() as u64),
        Outgoing::Shared(frames) => {
            // Pre-encoded: the first frame's header says its type and payload length.
            let kind = usize::from(frames.first().is_some_and(|b| b & 0x0f == 0x2));
            (kind, shared_payload_len(frames))
        }
    };
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
    /// `NetHandle::send` for this connection: ignored unless upgraded and still open.
    pub(crate) fn send(&mut self, ctx: &mut Ctx, id: ConnId, msg: Outgoing) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        if !w.ws.can_send() && !w.ws.is_holding_close() {
            return Ok(());
        }
        // Frames the protocol queued (pongs) keep their place before this message.
        w.pull_output(&mut self.out);
        count_sent(&ctx.shared.counters, &msg);
        if w.client {
            // A client masks every frame: the protocol state frames (and compresses) it.
            let sent = match &msg {
                Outgoing::Text(text) => w.ws.send_text(text),
                Outgoing::Binary(bytes) => w.ws.send_binary(bytes),
                // Pre-encoded frames are unmasked server frames: never valid from a client.
                Outgoing::Shared(_) => {
                    log::debug!("{id}: shared frames cannot go out on a client connection");
                    Ok(())
                }
            };
            if let Err(e) = sent {
                log::debug!("{id}: send refused: {e}");
            }
            w.pull_output(&mut self.out);
            return self.check_bound(ctx);
        }
        let (opcode, payload) = match msg {
            Outgoing::Text(text) if w.ws.would_compress(text.len()) => {
                // Compression writes a new payload anyway: the protocol frames it.
                if let Err(e) = w.ws.send_text(&text) {
                    log::debug!("{id}: send refused: {e}");
                }
                w.pull_output(&mut self.out);
                return self.check_bound(ctx);
            }
            Outgoing::Binary(bytes) if w.ws.would_compress(bytes.len()) => {
                if let Err(e) = w.ws.send_binary(&bytes) {
                    log::debug!("{id}: send refused: {e}");
                }
                w.pull_output(&mut self.out);
                return self.check_bound(ctx);
            }
            Outgoing::Text(text) => (Opcode::Text, text.into_bytes()),
            Outgoing::Binary(bytes) => (Opcode::Binary, bytes),
            Outgoing::Shared(frames) => {
                if w.takes_context_over {
                    // The peer's window now holds what these frames carry, which our
                    // compressor never saw: it must not refer back past them.
                    w.ws.note_external_frames(&frames);
                }
                self.out.push_shared(frames);
                return self.check_bound(ctx);
            }
        };
        // Server frames are unmasked, so the payload goes out as it is: a small one is copied
        // once, after its header, into the queue's tail; a large one is queued without a copy.
        // The protocol's state was checked above (`can_send`); this connection never sends
        // fragmented messages, so no fragment state can be interleaved.
        if payload.len() > ZERO_COPY_MIN {
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            self.out
                .push_with(FrameHeader::MAX_SIZE, |v| header.encode(v));
            self.out.push_owned(payload);
        } else {
            self.out
                .push_with(FrameHeader::MAX_SIZE + payload.len(), |v| {
                    encode_frame(v, true, opcode, &payload, None);
                });
            // Most often a received message sent back or on: its buffer serves the next
            // message this loop receives.
            wss_proto::pool::recycle(payload);
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

    /// `NetHandle::release` for this connection: the held close frame (a failure's, or the
    /// reply to the peer's close) goes out after what was sent meanwhile, then the connection
    /// ends.
    pub(crate) fn release_close(&mut self, ctx: &mut Ctx, id: ConnId) -> Step {
        let Phase::Ws(w) = &mut self.phase else {
            return Ok(());
        };
        if !w.ws.is_holding_close() {
            return Ok(());
        }
        w.ws.release_held_close();
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
                // A held close frame already says goodbye: send it instead of waiting.
                w.ws.release_held_close();
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
