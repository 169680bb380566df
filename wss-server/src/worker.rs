//! The worker: one thread per WebSocketServer that runs all its callbacks, one at a time, in
//! the order events arrive (SPEC Part A point 5), and turns network events into 4D events
//! (A8, A11, A12, A13, A15).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wss_net::{
    Backlog, CloseReply, ConnError, ConnId, Credit, Decision, EventSink, Inbound, NetEvent,
    Outgoing,
};
use wss_proto::handshake::UpgradeRequest;
use wss_proto::CloseCode;
use wss_proto::Message;

use crate::connection::{ConnInner, WebSocketConnection};
use crate::data::{Data, DataType};
use crate::error::{codes, ErrorInfo};
use crate::event::{
    ConnectionEvent, ErrorEvent, MessageEvent, OpenEvent, Request, ServerTerminateEvent,
    TerminateEvent,
};
use crate::handler::{self, ConnectionHandler, ErasedServer, Stored};
use crate::mailbox::{Receiver, RecvError, Sender};
use crate::server::{ServerInner, WebSocketServer};
use crate::topics;

/// What the worker's mailboxes carry: `Net` and `NetGone` come through the data mailbox, the
/// rest through the control mailbox, which the worker reads first.
pub(crate) enum WorkerMsg {
    /// Run the server's `on_open`.
    Open,
    /// An upgrade request waits for `on_connection` (the client waits for our decision).
    Connect(Box<PendingConnect>),
    /// One network loop turn's events for this server.
    Net(NetBatch),
    /// A server-level error to report (e.g. a handshake refused by the origin policy).
    Error(ErrorInfo),
    /// Close every connection with `code`; destroy the rest after `timeout`.
    Terminate {
        timeout: Option<Duration>,
        code: CloseCode,
    },
    /// The network threads are gone: whatever is still open is over.
    NetGone,
}

pub(crate) struct PendingConnect {
    pub(crate) conn: ConnId,
    pub(crate) request: Request,
    pub(crate) upgrade: UpgradeRequest,
    pub(crate) extra_headers: Vec<(String, String)>,
}

/// One loop turn's events, and what their messages count for in the server's backlog.
pub(crate) struct NetBatch {
    events: Vec<NetEvent>,
    release: Release,
}

/// Gives a batch's count back to the backlog when dropped: once the worker is done with it,
/// or if it is never handled (the worker is gone), so the backlog cannot leak.
struct Release {
    inbound: Arc<Inbound>,
    cost: Backlog,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.inbound.release(self.cost);
    }
}

/// Where the network loops deliver this server's connection events: one mailbox message per
/// loop turn. The loops stop reading connections whose messages wait past `inbound`'s limits.
struct Sink {
    tx: Sender<WorkerMsg>,
    inbound: Arc<Inbound>,
}

impl EventSink for Sink {
    fn deliver(&self, events: Vec<NetEvent>) {
        let release = Release {
            inbound: Arc::clone(&self.inbound),
            cost: Backlog::of_batch(&events),
        };
        // Refused once the worker is gone: the batch drops here and releases its cost.
        let _ = self.tx.send(WorkerMsg::Net(NetBatch { events, release }));
    }

    fn inbound(&self) -> Option<Arc<Inbound>> {
        Some(Arc::clone(&self.inbound))
    }

    /// Callbacks run later, on the worker: the answers they send to messages that came before
    /// the peer's close or a protocol failure must reach the peer before our close frame
    /// (the worker says `answered` once it has handled the `Closed`).
    fn close_reply(&self) -> CloseReply {
        CloseReply::Deferred
    }
}

/// Sends queued by callbacks go out in one `send_batch` per mailbox message; past this many
/// they go out early so the buffer stays small.
const MAX_BATCH: usize = 1024;
/// After an abort, how long to wait for the network's `Closed` before assuming it.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// Slack past the handshake timeout before an accepted but never opened connection is
/// forgotten.
const OPEN_GRACE: Duration = Duration::from_secs(2);

struct Batch {
    server: u64,
    sends: Vec<(ConnId, Outgoing)>,
}

thread_local! {
    /// Set on a worker thread: its server id and the sends queued by the running callbacks.
    static CURRENT: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// The server whose worker runs on this thread, if any.
pub(crate) fn current_server() -> Option<u64> {
    CURRENT.with(|c| c.borrow().as_ref().map(|b| b.server))
}

/// Queues `out` for `conn` of `server`: batched when called from that server's worker,
/// straight to the network otherwise.
pub(crate) fn send(server: &ServerInner, conn: ConnId, out: Outgoing) {
    // Pushed straight onto the batch: no `Vec` per message on the hot path.
    let queued = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id => {
            b.sends.push((conn, out));
            Ok((b.sends.len() >= MAX_BATCH).then(|| take_sends(b)))
        }
        _ => Err(out),
    });
    match queued {
        Ok(Some(batch)) => server.net.send_batch(batch),
        Ok(None) => {}
        Err(out) => server.net.send(conn, out),
    }
}

/// The queued sends, leaving room for as many in the next batch (one allocation per batch,
/// not one per doubling). The room is what the last batch needed, not its length: a batch of
/// broadcasts grows by a hundred entries at a time and would otherwise reallocate several
/// times on every turn. A batch that used under a quarter of it shrinks the room back.
fn take_sends(b: &mut Batch) -> Vec<(ConnId, Outgoing)> {
    let (len, cap) = (b.sends.len(), b.sends.capacity());
    let room = if len * 4 >= cap { cap } else { len };
    let room = room.min(2 * MAX_BATCH);
    std::mem::replace(&mut b.sends, Vec::with_capacity(room))
}

/// As [`send`], for several messages (a broadcast).
pub(crate) fn send_many(server: &ServerInner, mut cmds: Vec<(ConnId, Outgoing)>) {
    let full = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id => {
            b.sends.append(&mut cmds);
            (b.sends.len() >= MAX_BATCH).then(|| take_sends(b))
        }
        _ => None,
    });
    if let Some(batch) = full {
        server.net.send_batch(batch);
    } else if cmds.len() == 1 {
        if let Some((conn, out)) = cmds.pop() {
            server.net.send(conn, out);
        }
    } else if !cmds.is_empty() {
        server.net.send_batch(cmds);
    }
}

/// Sends what the running callbacks queued, when on `server`'s worker. Called before a close
/// or abort so that messages queued earlier are not overtaken.
pub(crate) fn flush_if_worker(server: &ServerInner) {
    let sends = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id && !b.sends.is_empty() => take_sends(b),
        _ => Vec::new(),
    });
    if !sends.is_empty() {
        server.net.send_batch(sends);
    }
}

/// What the worker keeps per connection: 32 bytes, its entry in the worker's `SlotTable`, as
/// it is most of an idle connection's cost on this side. The handler's `Any` half lives in
/// the connection handle; whether `on_open` ran (and the open deadline) in `Worker::opening`,
/// only while it matters.
struct Slot {
    ws: WebSocketConnection,
    handler: Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    /// The connection's share of the backlog, from its `Opened`: each message is released on
    /// it once its callback has run.
    credit: Option<Credit>,
}

/// What a `SlotTable` entry is keyed by: the id of the connection it stands for.
trait Keyed {
    fn conn(&self) -> ConnId;
}

impl Keyed for Slot {
    fn conn(&self) -> ConnId {
        self.ws.inner.conn
    }
}

/// Entries per page of a `SlotTable` (a page of `Slot`s is 16 KiB).
const PAGE: usize = 512;

/// `PAGE` entries of a `SlotTable`, each `None` or a connection's.
type Page<T> = Box<[Option<T>]>;

/// The worker's connections, indexed by loop and slot: the loops keep their slots dense, so
/// an entry costs its 32 bytes and no hash table overhead (a `HashMap` of 10 000 entries has
/// 16 384 buckets of key, value and control byte: 67 bytes per connection).
///
/// Pages are allocated as slots are first used and kept, as the loops keep their slabs, so a
/// table never doubles and copies. An entry is found by its whole id: a slot reused by a later
/// connection (another generation) never answers for an earlier one. The network reuses a
/// slot as soon as a connection ends, and a handshake can reach the worker before the end
/// of the connection that had its slot: that one is moved to `spill` (usually empty) until its
/// `Closed` arrives.
struct SlotTable<T> {
    /// Per loop, its pages; `None` for a page no slot has used yet.
    loops: Vec<Vec<Option<Page<T>>>>,
    /// Entries displaced from the table by a newer connection on their slot.
    spill: IdMap<T>,
    len: usize,
}

impl<T: Keyed> SlotTable<T> {
    fn new() -> SlotTable<T> {
        SlotTable {
            loops: Vec::new(),
            spill: IdMap::default(),
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table cell for `conn`'s slot, if its page exists.
    fn cell(&self, conn: ConnId) -> Option<&Option<T>> {
        let pages = self.loops.get(conn.loop_index())?;
        let page = pages.get(conn.slot() / PAGE)?.as_deref()?;
        page.get(conn.slot() % PAGE)
    }

    fn cell_mut(&mut self, conn: ConnId) -> Option<&mut Option<T>> {
        let pages = self.loops.get_mut(conn.loop_index())?;
        let page = pages.get_mut(conn.slot() / PAGE)?.as_deref_mut()?;
        page.get_mut(conn.slot() % PAGE)
    }

    fn get(&self, conn: ConnId) -> Option<&T> {
        let here = self.cell(conn).and_then(Option::as_ref);
        match here.filter(|e| e.conn() == conn) {
            Some(e) => Some(e),
            None => self.spill.get(&conn),
        }
    }

    fn get_mut(&mut self, conn: ConnId) -> Option<&mut T> {
        let here = self.cell(conn).and_then(Option::as_ref);
        if here.is_some_and(|e| e.conn() == conn) {
            return self.cell_mut(conn).and_then(Option::as_mut);
        }
        self.spill.get_mut(&conn)
    }

    /// Adds the entry of a new connection (one per id: the worker inserts each id once).
    fn insert(&mut self, entry: T) {
        let conn = entry.conn();
        let (l, p) = (conn.loop_index(), conn.slot() / PAGE);
        if self.loops.len() <= l {
            self.loops.resize_with(l + 1, Vec::new);
        }
        let pages = &mut self.loops[l];
        if pages.len() <= p {
            pages.resize_with(p + 1, || None);
        }
        let page = pages[p].get_or_insert_with(|| (0..PAGE).map(|_| None).collect());
        let cell = &mut page[conn.slot() % PAGE];
        if let Some(older) = cell.replace(entry) {
            self.spill.insert(older.conn(), older);
        }
        self.len += 1;
    }

    fn remove(&mut self, conn: ConnId) -> Option<T> {
        let removed = match self.cell_mut(conn) {
            Some(cell) if cell.as_ref().is_some_and(|e| e.conn() == conn) => cell.take(),
            _ => self.spill.remove(&conn),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The ids of every entry.
    fn ids(&self) -> Vec<ConnId> {
        let mut ids = Vec::with_capacity(self.len);
        let pages = self.loops.iter().flatten().flatten();
        ids.extend(pages.flat_map(|page| page.iter().flatten().map(Keyed::conn)));
        ids.extend(self.spill.keys().copied());
        ids
    }
}

/// Hashes a `ConnId` with one multiplication. Ids are chosen by the loops, not by peers, so
/// no flooding attack can aim at the table: SipHash would only cost time on every lookup.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The table takes its index from the low bits and a tag from the top 7: fold the
        // well-mixed high half down so both are spread.
        self.0 = h ^ (h >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// With metrics on, one `on_message` in this many is timed for the duration histogram.
const TIMING_SAMPLE: u64 = 8;

/// The small maps the worker keeps by id: connections being opened, displaced entries.
type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

struct Term {
    deadline: Instant,
    aborted_at: Option<Instant>,
}

pub(crate) struct Worker {
    server: WebSocketServer,
    handler: Stored<dyn ErasedServer>,
    /// Both mailboxes: control messages come out first, then network events.
    mail: Receiver<WorkerMsg>,
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
    pub(crate) fn new(
        server: WebSocketServer,
        handler: Stored<dyn ErasedServer>,
        mail: Receiver<WorkerMsg>,
    ) -> Worker {
        let sink: Arc<dyn EventSink> = Arc::new(Sink {
            tx: server.inner.data_tx.clone(),
            inbound: Arc::clone(&server.inner.inbound),
        });
        Worker {
            server,
            handler,
            mail,
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

    pub(crate) fn run(mut self) {
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
            match self.mail.recv(deadline) {
                Ok(m) => self.handle(m),
                Err(RecvError::Timeout) => {}
                // Unreachable while we hold the server (it owns a sender); treat as gone.
                Err(RecvError::Disconnected) => self.handle(WorkerMsg::NetGone),
            }
            self.on_timers(Instant::now());
            flush_if_worker(&self.server.inner);
            if self.term.is_some() && self.slots.is_empty() {
                break;
            }
        }
        self.finish();
    }

    /// Handles whatever control messages wait (between two network events).
    fn run_control(&mut self) {
        while let Some(m) = self.mail.try_control() {
            self.handle(m);
        }
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

    fn handle(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Open => {
                let server = self.server.clone();
                call_server(&self.handler, &server, "on_open", |h| {
                    h.on_open(&server, &OpenEvent)
                });
            }
            WorkerMsg::Connect(p) => self.connect(*p),
            WorkerMsg::Net(NetBatch { events, release }) => {
                for event in events {
                    self.net_event(event);
                    // A handshake must not wait for the rest of a large batch.
                    if self.mail.has_control() {
                        self.run_control();
                    }
                }
                drop(release);
            }
            WorkerMsg::Error(info) => {
                let server = self.server.clone();
                server_error(&self.handler, &server, ErrorEvent::single(info));
            }
            WorkerMsg::Terminate { timeout, code } => self.terminate(timeout, code),
            WorkerMsg::NetGone => {
                self.net_gone = true;
                self.terminate(Some(Duration::ZERO), CloseCode::GOING_AWAY);
            }
        }
    }

    fn connect(&mut self, p: PendingConnect) {
        let net = self.inner().net.clone();
        if self.term.is_some() || self.server.terminated() {
            net.decide(p.conn, refusal(503));
            return;
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
                net.decide(p.conn, refusal(403));
                return;
            }
            Err(panic) => {
                // A3: a failing on_connection cancels the connection and is reported.
                server.inner.counters.note_refused();
                server.inner.counters.note_panic();
                net.decide(p.conn, refusal(403));
                server_error(
                    &self.handler,
                    &server,
                    ErrorEvent::single(panic_info("on_connection", &panic)),
                );
                return;
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
        net.decide(
            p.conn,
            Decision::Upgrade {
                upgrade: p.upgrade,
                extra_headers,
                sink: self.sink.clone(),
            },
        );
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
                match to_data(self.server.inner.options.data_type, message) {
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

    fn finish(mut self) {
        let server = self.server.clone();
        call_server(&self.handler, &server, "on_terminate", |h| {
            h.on_terminate(&server, &ServerTerminateEvent)
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
        for msg in self.mail.close() {
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
}

/// A plain HTTP refusal of a handshake (A2).
pub(crate) fn refusal(status: u16) -> Decision {
    Decision::Respond {
        // A short text body: one `Content-Type`, `nosniff` and a `Date` like every answer.
        response: crate::site::finished(crate::site::text(
            status,
            &format!("{}\n", wss_proto::handshake::reason_phrase(status)),
            false,
        )),
        keep_alive: false,
    }
}

/// The `data` of a message for the server's data type (SPEC Part A point 2, A5).
pub(crate) fn to_data(data_type: DataType, message: Message) -> Result<Data, ErrorInfo> {
    match (data_type, message) {
        (DataType::Text, Message::Text(t)) => Ok(Data::Text(t)),
        (DataType::Text, Message::Binary(b)) | (DataType::Blob, Message::Binary(b)) => {
            Ok(Data::Blob(b))
        }
        (DataType::Blob, Message::Text(t)) => Ok(Data::Blob(t.into_bytes())),
        (DataType::Object, Message::Text(t)) => parse_json(t.as_bytes()),
        (DataType::Object, Message::Binary(b)) => parse_json(&b),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Data, ErrorInfo> {
    let json_error = |detail: String| {
        ErrorInfo::new(
            codes::INVALID_JSON,
            format!("Invalid JSON payload: {detail}"),
            "JSON",
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|e| json_error(e.to_string()))?;
    serde_json::from_str(text)
        .map(Data::Object)
        .map_err(|e| json_error(e.to_string()))
}

/// A12/A13/A15: the `on_error` (if any) and `on_terminate` of a closed connection.
///
/// `local`: this side started the close (terminate), so its end is no error.
pub(crate) fn close_outcome(
    code: u16,
    reason: &str,
    error: Option<&ConnError>,
    local: bool,
    fill_standard_reason: bool,
) -> (Option<ErrorInfo>, TerminateEvent) {
    let transport = |c: u16| {
        Some(ErrorInfo::new(
            i64::from(c),
            CloseCode(c).standard_text(),
            "HTTP",
        ))
    };
    let error_info = match error {
        None if code == 1000 || code == 1005 || local => None,
        None => transport(code),
        // Requested here (terminate(0), web server stop): not an error (A15, A16).
        Some(ConnError::Aborted | ConnError::Shutdown) => None,
        Some(ConnError::CloseTimeout) if local => None,
        Some(ConnError::Protocol(e)) => transport(e.close_code().0),
        Some(_) => transport(code),
    };
    let reason = if !reason.is_empty() {
        Some(reason.to_owned())
    } else if fill_standard_reason {
        Some(CloseCode(code).standard_text().to_owned())
    } else {
        None
    };
    (error_info, TerminateEvent { code, reason })
}

fn panic_info(callback: &str, panic: &Box<dyn std::any::Any + Send>) -> ErrorInfo {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    ErrorInfo::new(
        codes::CALLBACK_PANICKED,
        format!("panic in {callback}: {text}"),
        codes::COMPONENT,
    )
}

/// Runs a connection callback; a panic goes to the same handler's `on_error` (A17). Returns
/// whether it panicked (for the counts).
fn call_conn(
    handler: &Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    ws: &WebSocketConnection,
    name: &str,
    f: impl FnOnce(&mut dyn ConnectionHandler, &WebSocketConnection),
) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler::enter(handler);
        f(&mut *run.guard, ws)
    }));
    if let Err(panic) = result {
        conn_error(handler, ws, ErrorEvent::single(panic_info(name, &panic)));
        return true;
    }
    false
}

/// Runs a connection's `on_error`; a panic there is only logged (Part A point 7).
fn conn_error(
    handler: &Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    ws: &WebSocketConnection,
    e: ErrorEvent,
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler::enter(handler);
        run.guard.on_error(ws, &e)
    }));
    if result.is_err() {
        log::error!("connection {}: on_error panicked; ignored", ws.id());
    }
}

/// Runs a server callback; a panic goes to the server's `on_error`.
fn call_server(
    handler: &Stored<dyn ErasedServer>,
    server: &WebSocketServer,
    name: &str,
    f: impl FnOnce(&mut dyn ErasedServer),
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler.enter();
        f(&mut *run.guard)
    }));
    if let Err(panic) = result {
        server.inner.counters.note_panic();
        server_error(
            handler,
            server,
            ErrorEvent::single(panic_info(name, &panic)),
        );
    }
}

fn server_error(handler: &Stored<dyn ErasedServer>, server: &WebSocketServer, e: ErrorEvent) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler.enter();
        run.guard.on_error(server, &e)
    }));
    if result.is_err() {
        log::error!(
            "server {:?}: on_error panicked; ignored",
            server.path().unwrap_or("*")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wss_proto::ProtocolError;

    /// An idle connection costs, on this side, its table entry, its handle's shared state and
    /// its handler: bounded here so a field added to either shows up (the whole server's
    /// figure is measured with `wsbench idle`, see the crate README).
    #[test]
    fn per_connection_state_stays_small() {
        let slot = std::mem::size_of::<Slot>();
        let entry = std::mem::size_of::<Option<Slot>>();
        let inner = std::mem::size_of::<ConnInner>();
        eprintln!("Slot {slot} (table entry {entry}) ConnInner {inner}");
        assert!(entry <= 32, "a table entry is {entry} bytes");
        assert!(inner <= 88, "ConnInner is {inner} bytes");
    }

    /// A table entry standing for whatever connection `id` names.
    struct Entry(ConnId, &'static str);

    impl Keyed for Entry {
        fn conn(&self) -> ConnId {
            self.0
        }
    }

    #[test]
    fn a_stale_id_never_reaches_the_connection_on_its_slot() {
        let old = ConnId::from_parts(1, 7, 600);
        let new = ConnId::from_parts(1, 8, 600);
        let mut table = SlotTable::new();
        table.insert(Entry(new, "new"));
        assert!(table.get(old).is_none());
        assert!(table.get_mut(old).is_none());
        assert!(table.remove(old).is_none());
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        // Another loop's connection on the same slot is another connection too.
        assert!(table.get(ConnId::from_parts(0, 8, 600)).is_none());
        assert_eq!(table.remove(new).map(|e| e.1), Some("new"));
        assert!(table.is_empty());
    }

    #[test]
    fn a_slot_reused_before_the_old_end_keeps_both() {
        // The handshake of the slot's next connection can reach the worker before the
        // `Closed` of the one that had it.
        let old = ConnId::from_parts(0, 1, 3);
        let new = ConnId::from_parts(0, 2, 3);
        let mut table = SlotTable::new();
        table.insert(Entry(old, "old"));
        table.insert(Entry(new, "new"));
        assert_eq!(table.get(old).map(|e| e.1), Some("old"));
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        let mut ids = table.ids();
        ids.sort();
        assert_eq!(ids, vec![old, new]);
        assert_eq!(table.remove(old).map(|e| e.1), Some("old"));
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        assert_eq!(table.remove(new).map(|e| e.1), Some("new"));
        assert!(table.is_empty() && table.ids().is_empty());
    }

    #[test]
    fn slots_on_several_pages_and_loops_are_all_listed() {
        let mut table = SlotTable::new();
        let ids: Vec<ConnId> = [(0, 0), (0, PAGE + 1), (2, 5 * PAGE), (2, 0)]
            .iter()
            .map(|&(l, s)| ConnId::from_parts(l, 1, s))
            .collect();
        for &id in &ids {
            table.insert(Entry(id, "x"));
        }
        for &id in &ids {
            assert!(table.get(id).is_some(), "{id:?}");
        }
        let mut listed = table.ids();
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want);
        // Pages no slot used are not allocated.
        assert!(table.loops[2][1..5].iter().all(Option::is_none));
    }

    #[test]
    fn id_hasher_spreads_dense_slots() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IdHasher>::default();
        let hash = |id: u64| build.hash_one(id);
        // Consecutive slots must land in distinct low-bit buckets and carry varied top bits.
        let low: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(i) & 1023).collect();
        assert!(low.len() > 600, "{} distinct buckets of 1024", low.len());
        let top: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(i) >> 57).collect();
        assert!(top.len() > 64, "{} distinct tags", top.len());
    }

    #[test]
    fn text_type_keeps_binary_frames_as_blobs() {
        assert_eq!(
            to_data(DataType::Text, Message::Binary(vec![0xff, 0])),
            Ok(Data::Blob(vec![0xff, 0]))
        );
        assert_eq!(
            to_data(DataType::Text, Message::Text("é".into())),
            Ok(Data::Text("é".into()))
        );
        assert_eq!(
            to_data(DataType::Blob, Message::Text("a".into())),
            Ok(Data::Blob(b"a".to_vec()))
        );
    }

    #[test]
    fn object_type_parses_json_and_reports_bad_json() {
        assert_eq!(
            to_data(DataType::Object, Message::Text("{\"a\":1}".into())),
            Ok(Data::Object(serde_json::json!({"a": 1})))
        );
        assert_eq!(
            to_data(DataType::Object, Message::Binary(b"[1,2]".to_vec())),
            Ok(Data::Object(serde_json::json!([1, 2])))
        );
        let err = to_data(DataType::Object, Message::Text("{oops".into())).err();
        let err = err.expect("bad JSON is an error");
        assert_eq!(err.err_code, 1007);
        assert_eq!(err.component_signature, "JSON");
        assert!(to_data(DataType::Object, Message::Binary(vec![0xff])).is_err());
    }

    #[test]
    fn close_rules_of_a12() {
        // Normal close: no error, reason kept.
        let (e, t) = close_outcome(1000, "bye", None, false, false);
        assert!(e.is_none());
        assert_eq!(
            t,
            TerminateEvent {
                code: 1000,
                reason: Some("bye".into())
            }
        );
        // No status code: 1005, no error, reason absent.
        let (e, t) = close_outcome(1005, "", None, false, false);
        assert!(e.is_none());
        assert_eq!(t.reason, None);
        // Going away: error first, with 4D's text and component.
        let (e, t) = close_outcome(1001, "", None, false, false);
        let e = e.expect("1001 raises on_error");
        assert_eq!(e.err_code, 1001);
        assert_eq!(e.component_signature, "HTTP");
        assert_eq!(e.message, CloseCode(1001).standard_text());
        assert_eq!(t.code, 1001);
        // Dropped TCP: 1006 with error.
        let drop = ConnError::Io(std::io::ErrorKind::UnexpectedEof);
        let (e, t) = close_outcome(1006, "", Some(&drop), false, false);
        assert_eq!(e.map(|e| e.err_code), Some(1006));
        assert_eq!(t.code, 1006);
        // Protocol violation: the code sent.
        let bad = ConnError::Protocol(ProtocolError::InvalidUtf8);
        let (e, t) = close_outcome(1007, "", Some(&bad), false, false);
        assert_eq!(e.map(|e| e.err_code), Some(1007));
        assert_eq!(t.code, 1007);
        // Our own terminate: no error, even with a custom code or a close timeout.
        assert!(close_outcome(3001, "", None, true, false).0.is_none());
        assert!(
            close_outcome(1006, "", Some(&ConnError::CloseTimeout), true, false)
                .0
                .is_none()
        );
        // terminate(0) and web stop: no error.
        assert!(
            close_outcome(1006, "", Some(&ConnError::Aborted), false, false)
                .0
                .is_none()
        );
        // The A12 switch.
        let (_, t) = close_outcome(1000, "", None, false, true);
        assert_eq!(t.reason.as_deref(), Some(CloseCode(1000).standard_text()));
    }
}
