//! One loop: a mio `Poll`, the connections it owns, and the turn that drives them.
//!
//! A turn: wait for readiness (or a command, a timer, more work), then in order: socket events,
//! sockets that had more to read than one turn's budget, commands, due timers, flush of the
//! connections commands touched, and finally one `deliver` per sink with the turn's events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use wss_proto::CloseCode;

use crate::accept::{is_listener, Acceptor};
use crate::api::{ConnError, EventSink, NetEvent, Service};
use crate::client::ClientStream;
use crate::config::NetConfig;
use crate::conn::{Conn, Step, Tls};
use crate::inbound::{Backlog, Inbound};
use crate::limits::Admission;
use crate::timers::Timers;
use crate::wake::{self, Adopted, Command, LoopShared};
use crate::ConnId;
use rustls::server::UnbufferedServerConnection;

pub(crate) const WAKER: Token = Token(usize::MAX);

thread_local! {
    /// Set on a loop's thread for its whole life (see [`on_loop_thread`]).
    static ON_LOOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the network loops (of any [`Net`](crate::Net)).
///
/// A layer that runs user code on the loops (callbacks without a worker hop) asks this before
/// it waits for the network: a loop that waits for itself, or joins itself, never returns.
pub fn on_loop_thread() -> bool {
    ON_LOOP.with(std::cell::Cell::get)
}

/// Size of the loop's one read buffer, shared by all its sockets.
const READ_BUF_SIZE: usize = 256 * 1024;

/// Most connection slots reserved up front per loop (see `EventLoop::new`).
const RESERVE_CAP: usize = 1 << 20;

/// Least room made for a sink's events of one turn. The batch is handed over, so it cannot
/// be reused: the next one is sized after the largest of the turn before (up to
/// `EVENTS_HINT_MAX`), because growing a batch of hundreds of events by doubling copied it
/// several times per turn under load.
const EVENTS_HINT: usize = 32;

/// Most room made up front for a sink's events of one turn.
const EVENTS_HINT_MAX: usize = 1024;

/// Commands taken per turn, so a flood of sends cannot starve the sockets.
const COMMANDS_PER_TURN: usize = 16 * 1024;

/// What connection code needs from its loop, apart from the connection table.
pub(crate) struct Ctx {
    pub(crate) index: usize,
    /// The time of this turn (read once after `poll`).
    pub(crate) now: Instant,
    pub(crate) read_buf: Vec<u8>,
    pub(crate) timers: Timers,
    pub(crate) config: Arc<NetConfig>,
    pub(crate) service: Arc<dyn Service>,
    /// Connection counts and limits, shared by every loop.
    pub(crate) admission: Arc<Admission>,
    /// Connections with input left after their read budget: driven again next turn.
    pub(crate) ready: Vec<ConnId>,
    /// Connections touched by commands: flushed once at the end of the command phase.
    dirty: Vec<ConnId>,
    /// This turn's events, one batch per sink (usually one or two sinks: a linear scan).
    batches: Vec<SinkBatch>,
    /// Room for a new batch: the largest of the last turn that delivered, with a margin.
    events_hint: usize,
    /// Connections stopped because their sink's backlog is past its total: read again, all
    /// together, when a sink this loop waits on catches up (`Command::ResumeWaiting`).
    pub(crate) total_blocked: Vec<ConnId>,
    /// This loop's half that other threads touch (a consumer resumes reading through it).
    pub(crate) shared: Arc<LoopShared>,
    pub(crate) shutting_down: bool,
    generation: u32,
    /// The protocol config of the last connection upgraded here, shared with the next one
    /// when equal: a server whose connections agree on their params keeps one copy per loop
    /// instead of one per connection.
    last_proto: Option<Arc<wss_proto::Config>>,
    /// This loop's working memory for the protocol core: the buffers, boxes and rings its
    /// connections borrow while a frame or an event is in flight, and the payload buffers
    /// that go from written frames to the next received messages.
    pub(crate) scratch: wss_proto::Scratch,
}

/// One sink's events of this turn.
struct SinkBatch {
    sink: Arc<dyn EventSink>,
    events: Vec<NetEvent>,
    /// The sink's backlog, when it has one: `cost` is added to it just before delivery.
    inbound: Option<Arc<Inbound>>,
    /// What the batch's messages count for.
    cost: Backlog,
}

impl Ctx {
    /// `config` as an `Arc`, the last one made here when equal (see `last_proto`).
    pub(crate) fn share_proto(&mut self, config: wss_proto::Config) -> Arc<wss_proto::Config> {
        if let Some(last) = self.last_proto.as_ref().filter(|last| ***last == config) {
            return Arc::clone(last);
        }
        let fresh = Arc::new(config);
        self.last_proto = Some(Arc::clone(&fresh));
        fresh
    }

    fn batch_for(&mut self, sink: &Arc<dyn EventSink>) -> &mut SinkBatch {
        let key = Arc::as_ptr(sink) as *const ();
        let found = self
            .batches
            .iter()
            .position(|b| Arc::as_ptr(&b.sink) as *const () == key);
        let i = found.unwrap_or_else(|| {
            self.batches.push(SinkBatch {
                sink: Arc::clone(sink),
                // One allocation per turn for most batches, instead of a doubling per push.
                events: Vec::with_capacity(self.events_hint),
                inbound: None,
                cost: Backlog::default(),
            });
            self.batches.len() - 1
        });
        // `i` is a valid index: found in, or just pushed onto, `batches`.
        &mut self.batches[i]
    }

    /// Queues an event for delivery at the end of the turn.
    pub(crate) fn emit(&mut self, sink: &Arc<dyn EventSink>, event: NetEvent) {
        self.batch_for(sink).events.push(event);
    }

    /// Queues a message event, counted against the sink's backlog (`inbound`) if it has one.
    pub(crate) fn emit_message(
        &mut self,
        sink: &Arc<dyn EventSink>,
        inbound: Option<&Arc<Inbound>>,
        event: NetEvent,
        cost: Backlog,
    ) {
        let batch = self.batch_for(sink);
        if let Some(inbound) = inbound {
            if batch.inbound.is_none() {
                batch.inbound = Some(Arc::clone(inbound));
            }
        }
        batch.cost.add(cost);
        batch.events.push(event);
    }

    /// What this turn has read for `sink` and not delivered yet.
    pub(crate) fn turn_cost(&self, sink: &Arc<dyn EventSink>) -> Backlog {
        let key = Arc::as_ptr(sink) as *const ();
        self.batches
            .iter()
            .find(|b| Arc::as_ptr(&b.sink) as *const () == key)
            .map_or(Backlog::default(), |b| b.cost)
    }
}

/// What every loop of one `Net` shares.
#[derive(Clone)]
pub(crate) struct Common {
    /// Connection counts and limits, all loops together.
    pub(crate) admission: Arc<Admission>,
    pub(crate) config: Arc<NetConfig>,
    pub(crate) service: Arc<dyn Service>,
}

pub(crate) struct EventLoop {
    poll: Poll,
    rx: Receiver<Command>,
    shared: Arc<LoopShared>,
    conns: Slab<Conn>,
    ctx: Ctx,
    acceptor: Option<Acceptor>,
    /// Set by a graceful shutdown: connections still open then are destroyed.
    shutdown_deadline: Option<Instant>,
    /// More commands were waiting when the per-turn budget ran out.
    commands_left: bool,
}

impl EventLoop {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        rx: Receiver<Command>,
        shared: Arc<LoopShared>,
        common: Common,
        acceptor: Option<Acceptor>,
    ) -> EventLoop {
        let Common {
            admission,
            config,
            service,
        } = common;
        // Room for this loop's share of `max_connections` up front. It is address space, not
        // memory: pages are touched only as connections fill them, and the slab never doubles
        // (copying every connection, leaving up to half its pages as slack) while under load.
        let share = (config.max_connections / config.loop_count() + 64).min(RESERVE_CAP);
        let now = Instant::now();
        EventLoop {
            poll,
            rx,
            shared: Arc::clone(&shared),
            conns: Slab::with_capacity(share),
            ctx: Ctx {
                index,
                now,
                read_buf: vec![0; READ_BUF_SIZE],
                // Every deadline the loop sets is computed from a turn's `now`, never earlier.
                timers: Timers::with_capacity(share, now),
                config,
                service,
                admission,
                ready: Vec::new(),
                dirty: Vec::new(),
                batches: Vec::new(),
                events_hint: EVENTS_HINT,
                total_blocked: Vec::new(),
                shared,
                shutting_down: false,
                generation: 0,
                last_proto: None,
                scratch: wss_proto::Scratch::new(),
            },
            acceptor,
            shutdown_deadline: None,
            commands_left: false,
        }
    }

    pub(crate) fn run(mut self) {
        ON_LOOP.with(|on| on.set(true));
        let mut events = Events::with_capacity(1024);
        loop {
            let mut timeout = self.poll_timeout();
            if timeout != Some(Duration::ZERO) && !self.shared.prepare_sleep(&self.rx) {
                timeout = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut events, timeout);
            self.shared.awake();
            if let Err(e) = polled {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("loop {}: poll failed: {e}", self.ctx.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                events.clear();
            }
            self.ctx.now = Instant::now();

            for event in events.iter() {
                match event.token() {
                    t if is_listener(t) => self.accept(),
                    WAKER => {}
                    Token(slot) => {
                        let read_closed = event.is_read_closed();
                        let readable = event.is_readable() || read_closed;
                        let writable = event.is_writable() || event.is_write_closed();
                        let error = event.is_error();
                        if let Some(conn) = self.conns.get_mut(slot) {
                            conn.set_ready(
                                readable || error,
                                writable || error,
                                read_closed || error,
                            );
                            let id = ConnId::new(self.ctx.index, conn.generation, slot);
                            self.drive(id);
                        }
                    }
                }
            }
            if self.acceptor.as_ref().is_some_and(|a| a.due(self.ctx.now)) {
                self.accept();
            }
            self.drive_list(|ctx| &mut ctx.ready);
            self.run_commands();
            self.run_timers();
            self.drive_list(|ctx| &mut ctx.dirty);
            self.deliver();
            // A sink that acts inside `deliver` (callbacks on the loop) queues its sends to this
            // very loop: they go out in this turn, not after another `poll`.
            if !self.rx.is_empty() {
                self.run_commands();
                self.drive_list(|ctx| &mut ctx.dirty);
            }
            if self.should_exit() {
                break;
            }
        }
        let ids: Vec<ConnId> = self.ids();
        for id in ids {
            self.destroy(id, Some(ConnError::Shutdown));
        }
        self.deliver();
        log::debug!("loop {} stopped", self.ctx.index);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ctx.ready.is_empty() || self.commands_left || !self.ctx.batches.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = self.ctx.timers.next_deadline();
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        consider(self.shutdown_deadline);
        consider(self.acceptor.as_ref().and_then(|a| a.paused_until()));
        // `now` is the start of the turn: a little early is fine, the deadline is re-checked.
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn ids(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .map(|(slot, c)| ConnId::new(self.ctx.index, c.generation, slot))
            .collect()
    }

    /// Runs a command on a live connection (ignored if it is gone), then marks it to be
    /// flushed once this turn, or destroys it.
    fn with_conn(&mut self, id: ConnId, f: impl FnOnce(&mut Conn, &mut Ctx) -> Step) {
        let Some(conn) = self
            .conns
            .get_mut(id.slot())
            .filter(|c| c.generation == id.generation())
        else {
            return;
        };
        match f(conn, &mut self.ctx) {
            // Listed once per turn however many commands touch it: a broadcast burst queues
            // many frames for each receiver, and one flush (one write) takes them all.
            Ok(()) => {
                if !conn.flush_listed {
                    conn.flush_listed = true;
                    self.ctx.dirty.push(id);
                }
            }
            Err(error) => self.destroy(id, error),
        }
    }

    fn drive(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.slot()) else {
            return;
        };
        if conn.generation != id.generation() {
            return;
        }
        let step = conn.drive(&mut self.ctx, id);
        self.settle(id, step);
    }

    /// Applies the outcome of a step on a connection.
    fn settle(&mut self, id: ConnId, step: Step) {
        if let Err(error) = step {
            self.destroy(id, error);
        }
    }

    fn destroy(&mut self, id: ConnId, error: Option<ConnError>) {
        let slot = id.slot();
        if self
            .conns
            .get(slot)
            .is_none_or(|c| c.generation != id.generation())
        {
            return;
        }
        let mut conn = self.conns.remove(slot);
        conn.on_destroy(&mut self.ctx, id, error);
        self.release(conn.addr_slot, conn.handshaking);
        // No `deregister`: dropping `conn` closes the socket's only descriptor (it is never
        // duplicated, and it is registered in this loop's poll alone: the accepting loop hands
        // sockets over unregistered), and closing it takes it out of the epoll set. That saves
        // an `epoll_ctl` per connection.
        drop(conn);
    }

    fn run_commands(&mut self) {
        let rx = self.rx.clone();
        self.commands_left = wake::drain(&rx, COMMANDS_PER_TURN, |cmd| self.command(cmd));
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Send(id, msg) => self.with_conn(id, |c, ctx| c.send(ctx, id, msg)),
            Command::SendBatch(batch) => {
                for (id, msg) in batch {
                    self.with_conn(id, |c, ctx| c.send(ctx, id, msg));
                }
            }
            Command::Close(id, code, reason) => {
                self.with_conn(id, |c, ctx| c.close(ctx, id, code, &reason));
            }
            Command::Abort(id) => self.destroy(id, Some(ConnError::Aborted)),
            Command::Decide(id, decision) => {
                self.with_conn(id, |c, ctx| c.decide(ctx, id, decision));
            }
            Command::Adopt(adopted) => self.adopt(adopted),
            Command::Connect(client) => self.adopt_client(*client),
            Command::Shutdown(graceful) => self.begin_shutdown(graceful),
            Command::Answered(id) => self.with_conn(id, |c, ctx| c.answered(ctx, id)),
            Command::Resume(id) => self.with_conn(id, |c, ctx| c.resume(ctx, id, false)),
            Command::ResumeWaiting => {
                for id in std::mem::take(&mut self.ctx.total_blocked) {
                    self.with_conn(id, |c, ctx| c.resume(ctx, id, true));
                }
            }
        }
    }

    fn run_timers(&mut self) {
        while let Some((at, id)) = self.ctx.timers.pop_due(self.ctx.now) {
            let Some(conn) = self.conns.get_mut(id.slot()) else {
                continue;
            };
            if conn.generation != id.generation() {
                continue;
            }
            let step = conn.on_timer(&mut self.ctx, id, at);
            self.settle(id, step);
        }
    }

    /// Hands each sink its batch of this turn. A sink that panics loses the connections its
    /// batch was about: they are closed with 1011 (their `Closed` follows in a later batch).
    fn deliver(&mut self) {
        // Closing a connection can emit events of its own: a few rounds, then the rest waits
        // for the next turn (`poll_timeout` does not sleep while batches wait).
        for _ in 0..3 {
            if self.ctx.batches.is_empty() {
                return;
            }
            let mut failed = Vec::new();
            // Taken and given back, so the list keeps its allocation from turn to turn.
            let mut batches = std::mem::take(&mut self.ctx.batches);
            let largest = batches.iter().map(|b| b.events.len()).max().unwrap_or(0);
            self.ctx.events_hint = (largest + largest / 4).clamp(EVENTS_HINT, EVENTS_HINT_MAX);
            for b in batches.drain(..) {
                // Counted before the consumer can see (and release) it.
                if let Some(inbound) = &b.inbound {
                    inbound.add(b.cost);
                }
                if let Err(conns) = crate::guard::deliver(&*b.sink, b.events) {
                    // Whatever the sink did with the batch, it will not release it.
                    if let Some(inbound) = &b.inbound {
                        inbound.release(b.cost);
                    }
                    failed.extend(conns);
                }
            }
            self.ctx.batches = batches;
            for id in failed {
                self.with_conn(id, |c, ctx| {
                    c.close(ctx, id, CloseCode::INTERNAL_ERROR, "internal error")
                });
            }
            self.drive_list(|ctx| &mut ctx.dirty);
        }
    }

    /// Drives every connection of one of the context's lists and empties it. The list keeps
    /// its allocation from turn to turn (a list of the turn's connections is in use every
    /// turn under load); driving may refill it, and then the new entries wait for the next
    /// call.
    fn drive_list(&mut self, list: fn(&mut Ctx) -> &mut Vec<ConnId>) {
        let mut ids = std::mem::take(list(&mut self.ctx));
        for &id in &ids {
            self.drive(id);
        }
        ids.clear();
        let now = list(&mut self.ctx);
        if now.is_empty() {
            *now = ids;
        }
    }

    /// Gives back the admission a connection (or a socket not yet a connection) held.
    fn release(&self, addr_slot: u32, handshaking: bool) {
        if handshaking {
            self.ctx.admission.handshake_done();
        }
        self.ctx.admission.release(addr_slot);
    }

    /// Takes a socket accepted by the accepting loop (maybe this one).
    pub(crate) fn adopt(&mut self, adopted: Adopted) {
        let Adopted {
            mut stream,
            peer,
            tls,
            addr_slot,
        } = adopted;
        if self.ctx.shutting_down {
            self.release(addr_slot, true);
            return;
        }
        let tls = match (tls, &self.ctx.config.tls) {
            (false, _) => None,
            (true, Some(config)) => match UnbufferedServerConnection::new(Arc::clone(config)) {
                Ok(session) => Some(Box::new(Tls::server(session))),
                Err(e) => {
                    log::warn!("starting a TLS session failed: {e}");
                    self.release(addr_slot, true);
                    return;
                }
            },
            // `Net::bind_all` refuses a TLS listener without a TLS config.
            (true, None) => {
                self.release(addr_slot, true);
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if slot >= u32::MAX as usize {
            self.release(addr_slot, true);
            return;
        }
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("registering a socket failed: {e}");
            self.release(addr_slot, true);
            return;
        }
        self.ctx.generation = self.ctx.generation.wrapping_add(1) & 0xff_ffff;
        let generation = self.ctx.generation;
        let id = ConnId::new(self.ctx.index, generation, slot);
        let mut conn = Conn::new(stream, peer, generation, &self.ctx, tls, addr_slot);
        // Readiness arrives as an event right after registration; only the timer is needed now.
        let step = conn.drive(&mut self.ctx, id);
        entry.insert(conn);
        self.settle(id, step);
    }

    /// Takes an outgoing connection the layer above upgraded (`NetHandle::connect`).
    fn adopt_client(&mut self, client: ClientStream) {
        let ClientStream {
            mut stream,
            peer,
            ws,
            tls,
            sink,
        } = client;
        self.ctx.admission.admit_client();
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        self.ctx.generation = self.ctx.generation.wrapping_add(1) & 0xff_ffff;
        let generation = self.ctx.generation;
        let id = ConnId::new(self.ctx.index, generation, slot);
        let registered = if self.ctx.shutting_down {
            Err(std::io::Error::other("the loop is shutting down"))
        } else if slot >= u32::MAX as usize {
            Err(std::io::Error::other("connection table full"))
        } else {
            self.poll.registry().register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
        };
        let tls = tls.map(|session| Box::new(Tls::client(session)));
        let mut conn = Conn::new_client(stream, peer, generation, tls, ws, sink, &mut self.ctx, id);
        let step = match registered {
            Ok(()) => conn
                .start_client(&mut self.ctx, id)
                .and_then(|()| conn.drive(&mut self.ctx, id)),
            Err(e) => {
                log::warn!("registering a client socket to {peer} failed: {e}");
                Err(Some(ConnError::Io(e.kind())))
            }
        };
        entry.insert(conn);
        self.settle(id, step);
    }

    fn accept(&mut self) {
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        let mut mine = Vec::new();
        acceptor.accept(self.ctx.now, &self.ctx.admission, |adopted| {
            mine.push(adopted);
        });
        for adopted in mine {
            self.adopt(adopted);
        }
    }

    fn begin_shutdown(&mut self, graceful: Option<(CloseCode, Duration)>) {
        if let Some(mut acceptor) = self.acceptor.take() {
            acceptor.stop(self.poll.registry());
        }
        self.ctx.shutting_down = true;
        let Some((code, wait)) = graceful else {
            self.shutdown_deadline = Some(self.ctx.now);
            return;
        };
        let deadline = self.ctx.now + wait;
        self.shutdown_deadline = Some(self.shutdown_deadline.map_or(deadline, |d| d.min(deadline)));
        for id in self.ids() {
            let upgraded = self.conns.get(id.slot()).is_some_and(|c| c.is_upgraded());
            if upgraded {
                self.with_conn(id, |c, ctx| c.close(ctx, id, code, ""));
            } else if !self.conns.get(id.slot()).is_some_and(|c| c.is_finishing()) {
                self.destroy(id, None);
            }
        }
    }

    fn should_exit(&self) -> bool {
        if !self.ctx.shutting_down {
            return false;
        }
        self.conns.is_empty() || self.shutdown_deadline.is_some_and(|d| d <= self.ctx.now)
    }
}
