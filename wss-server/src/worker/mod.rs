//! The worker: turns network events into 4D events and runs the callbacks (A8, A11, A12,
//! A13, A15).
//!
//! [`Worker`] is the state and the rules, whichever thread runs them. In worker dispatch
//! (the default) one thread per WebSocketServer owns one `Worker` and runs all its callbacks,
//! one at a time, in the order events arrive (SPEC Part A point 5): [`Worker::run`] below. In
//! loop dispatch each network loop has a `Worker` of its own and runs it inside its turn:
//! see `inline.rs`.

mod batch;
mod helpers;
mod inline;
mod msg;
mod sink;
mod slots;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wss_net::{Backlog, ConnId, Decision, EventSink, NetEvent};
use wss_proto::CloseCode;

use crate::connection::{ConnInner, WebSocketConnection};
use crate::error::ErrorInfo;
use crate::event::{
    ConnectionEvent, ErrorEvent, MessageEvent, OpenEvent, ServerTerminateEvent, TerminateEvent,
};
use crate::handler::{ErasedServer, Stored};
use crate::mailbox::{Receiver, RecvError};
use crate::server::{ServerInner, WebSocketServer};
use crate::topics;

pub(crate) use batch::{current_server, flush_if_worker, send, send_many};
use batch::{Batch, CURRENT};
pub(crate) use helpers::refusal;
use helpers::{call_conn, call_server, close_outcome, conn_error, panic_info, server_error};
pub(crate) use inline::{on_control_thread, Inline};
pub(crate) use msg::{NetBatch, PendingConnect, WorkerMsg};
use sink::Sink;
use slots::{IdMap, Slot, SlotTable};

/// After an abort, how long to wait for the network's `Closed` before assuming it.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// Slack past the handshake timeout before an accepted but never opened connection is
/// forgotten.
const OPEN_GRACE: Duration = Duration::from_secs(2);

/// With metrics on, one `on_message` in this many is timed for the duration histogram.
const TIMING_SAMPLE: u64 = 8;

struct Term {
    deadline: Instant,
    aborted_at: Option<Instant>,
}

pub(crate) struct Worker {
    server: WebSocketServer,
    handler: Stored<dyn ErasedServer>,
    /// Where the network reports the connections this worker accepts.
    sink: Arc<dyn EventSink>,
    slots: SlotTable<Slot>,
    /// Accepted connections not opened yet, with the instant they are forgotten after (their
    /// client left during the handshake). Usually empty: searched on every wake-up.
    opening: IdMap<Instant>,
    term: Option<Term>,
    net_gone: bool,
    /// Messages seen while callbacks are timed (metrics on): picks the sampled ones.
    sampled: u64,
}

impl Worker {
    /// The worker of worker dispatch: the network hands it its events through the mailbox.
    pub(crate) fn new(server: WebSocketServer, handler: Stored<dyn ErasedServer>) -> Worker {
        let sink: Arc<dyn EventSink> = Arc::new(Sink {
            tx: server.inner.data_tx.clone(),
            inbound: Arc::clone(&server.inner.inbound),
        });
        Worker::with_sink(server, handler, sink)
    }

    fn with_sink(
        server: WebSocketServer,
        handler: Stored<dyn ErasedServer>,
        sink: Arc<dyn EventSink>,
    ) -> Worker {
        Worker {
            server,
            handler,
            sink,
            slots: SlotTable::new(),
            opening: IdMap::default(),
            term: None,
            net_gone: false,
            sampled: 0,
        }
    }

    fn inner(&self) -> &ServerInner {
        &self.server.inner
    }

    /// Worker dispatch: the worker thread's life, from `on_open` to the server's
    /// `on_terminate`.
    pub(crate) fn run(mut self, mut mail: Receiver<WorkerMsg>) {
        let id = self.inner().id;
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(Batch {
                server: id,
                sends: Vec::new(),
            })
        });
        loop {
            // Control first; waits until the next deadline at most.
            let deadline = self.next_deadline();
            match mail.recv(deadline) {
                Ok(m) => self.handle(m, &mut mail),
                Err(RecvError::Timeout) => {}
                // Unreachable while we hold the server (it owns a sender); treat as gone.
                Err(RecvError::Disconnected) => self.handle(WorkerMsg::NetGone, &mut mail),
            }
            self.on_timers(Instant::now());
            flush_if_worker(&self.server.inner);
            if self.is_over() {
                break;
            }
        }
        let server = self.server.clone();
        finish(&server, &self.handler, &mut mail);
    }

    /// Terminated, and every connection ended: the server's `on_terminate` may run.
    fn is_over(&self) -> bool {
        self.term.is_some() && self.slots.is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let opening = self.opening.values().min().copied();
        let term = self.term.as_ref().map(|t| match t.aborted_at {
            Some(a) => a + ABORT_GRACE,
            None => t.deadline,
        });
        match (opening, term) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle(&mut self, msg: WorkerMsg, mail: &mut Receiver<WorkerMsg>) {
        match msg {
            WorkerMsg::Open => server_open(&self.server, &self.handler),
            WorkerMsg::Connect(p) => {
                let conn = p.conn;
                let decision = self.connect(*p);
                self.inner().net.decide(conn, decision);
            }
            WorkerMsg::Net(NetBatch { events, release }) => {
                for event in events {
                    self.net_event(event);
                    // A handshake must not wait for the rest of a large batch.
                    while let Some(m) = mail.try_control() {
                        self.handle(m, mail);
                    }
                }
                drop(release);
            }
            WorkerMsg::Error(info) => {
                let server = self.server.clone();
                server_error(&self.handler, &server, ErrorEvent::single(info));
            }
            WorkerMsg::Terminate { timeout, code } => self.terminate(timeout, code),
            WorkerMsg::NetGone => self.net_gone(),
        }
    }

    /// The network threads are gone: whatever is still open is over.
    fn net_gone(&mut self) {
        self.net_gone = true;
        self.terminate(Some(Duration::ZERO), CloseCode::GOING_AWAY);
    }

    /// Runs `on_connection` for a handshake and says what to answer.
    fn connect(&mut self, p: PendingConnect) -> Decision {
        if self.term.is_some() || self.server.terminated() {
            return refusal(503);
        }
        let event = ConnectionEvent::new(p.request, p.upgrade.protocols.clone());
        let server = self.server.clone();
        let accepted = catch_unwind(AssertUnwindSafe(|| {
            let mut run = self.handler.enter();
            run.guard.on_connection(&server, &event)
        }));
        let stored = match accepted {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                server.inner.counters.note_refused();
                return refusal(403);
            }
            Err(panic) => {
                // A3: a failing on_connection cancels the connection and is reported.
                server.inner.counters.note_refused();
                server.inner.counters.note_panic();
                server_error(
                    &self.handler,
                    &server,
                    ErrorEvent::single(panic_info("on_connection", &panic)),
                );
                return refusal(403);
            }
        };
        let ws = WebSocketConnection {
            inner: Arc::new(ConnInner::new(p.conn, server.clone(), stored.any.clone())),
        };
        server
            .inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ws.id(), ws.clone());
        let mut extra_headers = p.extra_headers;
        if let Some(protocol) = event.selected_protocol() {
            extra_headers.push(("Sec-WebSocket-Protocol".into(), protocol.to_owned()));
        }
        self.slots.insert(Slot {
            ws,
            handler: stored.cell,
            credit: None,
        });
        server.inner.counters.note_accepted();
        let open_by = Instant::now() + self.inner().handshake_timeout + OPEN_GRACE;
        self.opening.insert(p.conn, open_by);
        Decision::Upgrade {
            upgrade: p.upgrade,
            extra_headers,
            sink: self.sink.clone(),
        }
    }

    fn net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Opened {
                conn,
                buffered,
                deflate,
                credit,
                ..
            } => {
                let Some(slot) = self.slots.get_mut(conn) else {
                    // Forgotten meanwhile (terminate, open timeout): nobody will serve it.
                    self.inner().net.abort(conn);
                    return;
                };
                // Out of `opening`: `on_open` runs now (so `on_terminate` must).
                self.opening.remove(&conn);
                slot.credit = credit;
                slot.ws.inner.set_opened(buffered, deflate);
                let counters = &self.server.inner.counters;
                counters.note_opened();
                if call_conn(&slot.handler, &slot.ws, "on_open", |h, ws| {
                    h.on_open(ws, &OpenEvent)
                }) {
                    counters.note_panic();
                }
                if let Some(term) = &self.term {
                    // Accepted just before terminate() and not closed by it (its handshake
                    // reached us after): close it like the others.
                    if term.aborted_at.is_none() && !slot.ws.inner.closed_locally() {
                        flush_if_worker(&self.server.inner);
                        slot.ws.inner.begin_local_close();
                        self.server
                            .inner
                            .net
                            .close(conn, CloseCode::NORMAL, String::new());
                    }
                }
            }
            NetEvent::Message { conn, message } => {
                // Without a slot the connection is being aborted: its credit is gone already.
                if self.opening.contains_key(&conn) {
                    return;
                }
                let Some(slot) = self.slots.get(conn) else {
                    return;
                };
                let cost = Backlog::of(&message);
                let counters = &self.server.inner.counters;
                counters.note_message(&message);
                match self.server.inner.options.data_type.decode(message) {
                    Ok(data) => {
                        let event = MessageEvent { data };
                        // One message in TIMING_SAMPLE is timed (two clock reads), the first
                        // one included, so timing costs a fraction of a clock read per message.
                        let timed = counters.timing && {
                            self.sampled = self.sampled.wrapping_add(1);
                            self.sampled % TIMING_SAMPLE == 1
                        };
                        let started = timed.then(Instant::now);
                        let panicked = call_conn(&slot.handler, &slot.ws, "on_message", |h, ws| {
                            h.on_message_owned(ws, event)
                        });
                        if let Some(t) = started {
                            counters.observe(t.elapsed());
                        }
                        if panicked {
                            counters.note_panic();
                        }
                    }
                    Err(info) => conn_error(&slot.handler, &slot.ws, ErrorEvent::single(info)),
                }
                if let Some(credit) = &slot.credit {
                    credit.release(cost);
                }
            }
            NetEvent::Closed {
                conn,
                code,
                reason,
                error,
            } => {
                let opened = self.opening.remove(&conn).is_none();
                if let Some(slot) = self.slots.remove(conn) {
                    let local = slot.ws.inner.closed_locally();
                    let outcome = close_outcome(
                        code.0,
                        &reason,
                        error.as_ref(),
                        local,
                        self.server.inner.options.fill_standard_reason,
                    );
                    self.end(slot, opened, Some(outcome));
                }
                // The callbacks for every event before the close or the failure have run: their
                // sends go first, on the same channel, then the close reply the net defers.
                flush_if_worker(&self.server.inner);
                self.server.inner.net.answered(conn);
            }
        }
    }

    /// Removes a connection: status `Closed`, out of `connections()`, then (if it had
    /// opened) `on_error` when due and `on_terminate` (A8, A12).
    fn end(&self, slot: Slot, opened: bool, outcome: Option<(Option<ErrorInfo>, TerminateEvent)>) {
        slot.ws.inner.set_closed();
        topics::forget(&slot.ws);
        self.server
            .inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&slot.ws.id());
        if !opened {
            return;
        }
        let (error, event) = outcome.unwrap_or((
            None,
            TerminateEvent {
                code: CloseCode::ABNORMAL.0,
                reason: None,
            },
        ));
        if let Some(info) = error {
            conn_error(&slot.handler, &slot.ws, ErrorEvent::single(info));
        }
        if call_conn(&slot.handler, &slot.ws, "on_terminate", |h, ws| {
            h.on_terminate(ws, &event)
        }) {
            self.server.inner.counters.note_panic();
        }
    }

    fn terminate(&mut self, timeout: Option<Duration>, code: CloseCode) {
        self.server.inner.mark_terminated();
        let now = Instant::now();
        let span = timeout.unwrap_or(self.server.inner.options.terminate_cap);
        let deadline = now
            .checked_add(span)
            .unwrap_or(now + Duration::from_secs(86_400));
        if let Some(term) = &mut self.term {
            // A second call may only bring the end closer (A15).
            if deadline < term.deadline {
                term.deadline = deadline;
            }
            return;
        }
        self.term = Some(Term {
            deadline,
            aborted_at: None,
        });
        flush_if_worker(&self.server.inner);
        let net = self.server.inner.net.clone();
        if span.is_zero() || self.net_gone {
            // Nobody waits for a close frame: the unopened go now, on_timers aborts the rest.
            let unopened: Vec<ConnId> = self.opening.drain().map(|(c, _)| c).collect();
            for conn in unopened {
                if let Some(slot) = self.slots.remove(conn) {
                    net.abort(conn);
                    self.end(slot, false, None);
                }
            }
            return;
        }
        // Accepted but not opened here yet: their 101 is on its way (the net applies our
        // accept before this close), so the client is a WebSocket peer and gets the same close
        // frame as everyone else, not a dropped socket. Their `Opened` still runs `on_open`.
        for conn in self.opening.keys() {
            if let Some(slot) = self.slots.get(*conn) {
                slot.ws.inner.begin_local_close();
            }
        }
        for conn in self.slots.ids() {
            net.close(conn, code, String::new());
        }
    }

    fn on_timers(&mut self, now: Instant) {
        let stale: Vec<ConnId> = self
            .opening
            .iter()
            .filter(|(_, open_by)| **open_by <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in stale {
            self.opening.remove(&conn);
            if let Some(slot) = self.slots.remove(conn) {
                self.server.inner.net.abort(conn);
                self.end(slot, false, None);
            }
        }
        let Some(term) = &mut self.term else {
            return;
        };
        if term.aborted_at.is_none() && (now >= term.deadline || self.net_gone) {
            term.aborted_at = Some(now);
            flush_if_worker(&self.server.inner);
            if !self.net_gone {
                for conn in self.slots.ids() {
                    self.server.inner.net.abort(conn);
                }
            }
        }
        let give_up = term
            .aborted_at
            .is_some_and(|a| self.net_gone || now >= a + ABORT_GRACE);
        if give_up {
            // The network will not report these any more: end them as destroyed (A15, A16).
            let rest = self.slots.ids();
            for conn in rest {
                let opened = self.opening.remove(&conn).is_none();
                if let Some(slot) = self.slots.remove(conn) {
                    self.end(slot, opened, None);
                }
            }
        }
    }
}

/// Runs the server's `on_open` (A10: before any connection event).
fn server_open(server: &WebSocketServer, handler: &Stored<dyn ErasedServer>) {
    call_server(handler, server, "on_open", |h| {
        h.on_open(server, &OpenEvent)
    });
}

/// The end of a server, once every connection has ended: its `on_terminate`, then it leaves
/// the broker and the router, answers what still waits in its mailbox, and is done.
fn finish(
    server: &WebSocketServer,
    handler: &Stored<dyn ErasedServer>,
    mail: &mut Receiver<WorkerMsg>,
) {
    call_server(handler, server, "on_terminate", |h| {
        h.on_terminate(server, &ServerTerminateEvent)
    });
    flush_if_worker(&server.inner);
    CURRENT.with(|c| *c.borrow_mut() = None);
    let inner = &server.inner;
    inner.broker.unsubscribe(&inner.topic, &inner.inbox());
    if let Some(router) = server.inner.router.upgrade() {
        router.unregister(&server.inner);
    }
    // Handshakes that reached the mailbox after the end still wait for an answer.
    let net = server.inner.net.clone();
    // Closed first, so nothing can slip in after this drain unanswered: later sends fail
    // and their senders answer (the router refuses the handshake).
    for msg in mail.close() {
        match msg {
            WorkerMsg::Connect(p) => net.decide(p.conn, refusal(503)),
            WorkerMsg::Net(batch) => {
                for e in batch.events {
                    if let NetEvent::Opened { conn, .. } = e {
                        net.abort(conn);
                    }
                }
            }
            _ => {}
        }
    }
    server.inner.set_done();
}
