//! Loop dispatch ([`Dispatch::Loop`](crate::Dispatch::Loop)): each network loop runs the
//! callbacks of its own connections inside its turn, with no hand-over to another thread.
//!
//! Each loop gets a [`Worker`] of its own (its connections, their handlers, its share of a
//! terminate), behind a mutex that only that loop takes on the hot path: `on_connection` runs
//! in the router's call on the loop, the connection callbacks in the loop's `deliver`. A small
//! control thread per server does the rest, as the worker thread does in worker dispatch: the
//! server's `on_open` and `on_error`, `terminate`, the timers, and the server's
//! `on_terminate` at the end. It takes every loop's mutex, in index order, while a server
//! callback runs, so the server handler's callbacks never overlap a connection's callback:
//! with one network thread, every callback of the server runs one at a time.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use wss_net::{Backlog, CloseReply, ConnId, Decision, EventSink, Inbound, NetEvent, NetHandle};

use crate::event::ErrorEvent;
use crate::handler::{ErasedServer, Stored};
use crate::mailbox::{Receiver, RecvError};
use crate::server::WebSocketServer;

use super::batch;
use super::msg::{PendingConnect, WorkerMsg};
use super::{finish, server_error, server_open, Worker};

/// The longest the control thread sleeps: it checks the loops' timers (an accepted
/// connection that never opened, a terminate's deadline) at least this often, as the loops
/// add those without waking it.
const TICK: Duration = Duration::from_secs(1);

thread_local! {
    /// Set on a control thread for its whole life (see [`on_control_thread`]).
    static ON_CONTROL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is a loop-dispatch server's control thread. While it runs a server
/// callback it holds every loop's worker, so it must not wait for the loops (a loop waiting
/// for a worker would never finish its turn).
pub(crate) fn on_control_thread() -> bool {
    ON_CONTROL.with(std::cell::Cell::get)
}

/// A server's per-loop workers.
pub(crate) struct Inline {
    /// One per network loop, indexed by [`ConnId::loop_index`].
    workers: Box<[Mutex<Worker>]>,
}

impl Inline {
    /// Builds a worker per loop and starts the control thread, which owns `mail`. Once the
    /// server's `on_open` has run (A10: before any connection event), the control thread
    /// hands the workers to the server, and from then on the loops take handshakes inline;
    /// until then they reach `on_connection` through the mailbox, after `on_open`.
    pub(crate) fn start(
        server: &WebSocketServer,
        handler: Stored<dyn ErasedServer>,
        mail: Receiver<WorkerMsg>,
    ) -> std::io::Result<()> {
        let loops = server.inner.net.loop_count().max(1);
        let inline = Arc::new_cyclic(|me: &Weak<Inline>| {
            let sink: Arc<dyn EventSink> = Arc::new(LoopSink {
                inline: me.clone(),
                net: server.inner.net.clone(),
                inbound: Arc::clone(&server.inner.inbound),
            });
            Inline {
                workers: (0..loops)
                    .map(|_| {
                        Mutex::new(Worker::with_sink(
                            server.clone(),
                            handler.clone(),
                            Arc::clone(&sink),
                        ))
                    })
                    .collect(),
            }
        });
        let control = Arc::clone(&inline);
        let owner = server.clone();
        std::thread::Builder::new()
            .name(format!(
                "wss-control-{}",
                server.inner.path().unwrap_or("*")
            ))
            .spawn(move || control.run(owner, handler, mail))?;
        Ok(())
    }

    fn worker(&self, loop_index: usize) -> Option<MutexGuard<'_, Worker>> {
        self.workers
            .get(loop_index)
            .map(|w| w.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every worker, locked in index order (the one order anyone takes several in).
    fn all(&self) -> Vec<MutexGuard<'_, Worker>> {
        self.workers
            .iter()
            .map(|w| w.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    /// A handshake, on the loop that owns its connection: `on_connection` runs here and now.
    pub(crate) fn connect(&self, server: &WebSocketServer, p: PendingConnect) -> Decision {
        let Some(mut worker) = self.worker(p.conn.loop_index()) else {
            return super::refusal(503);
        };
        let _entered = batch::enter(&server.inner);
        worker.connect(p)
    }

    /// The control thread: the server's own callbacks, terminate and the timers.
    fn run(
        self: Arc<Inline>,
        server: WebSocketServer,
        handler: Stored<dyn ErasedServer>,
        mut mail: Receiver<WorkerMsg>,
    ) {
        // This thread runs the server's own callbacks for its whole life.
        ON_CONTROL.with(|c| c.set(true));
        let _entered = batch::enter(&server.inner);
        loop {
            let deadline = self.next_deadline().min(Instant::now() + TICK);
            match mail.recv(Some(deadline)) {
                Ok(m) => self.handle(&server, &handler, m),
                Err(RecvError::Timeout) => {}
                Err(RecvError::Disconnected) => self.handle(&server, &handler, WorkerMsg::NetGone),
            }
            let now = Instant::now();
            let mut over = true;
            for mut w in self.all() {
                w.on_timers(now);
                over &= w.is_over();
            }
            super::flush_if_worker(&server.inner);
            if over {
                break;
            }
        }
        {
            // The server's `on_terminate`, one at a time with everything else.
            let _all = self.all();
            finish(&server, &handler, &mut mail);
        }
        // The workers hold the server, and the server holds this: let both go.
        server.inner.set_inline(None);
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + TICK;
        self.all()
            .iter()
            .filter_map(|w| w.next_deadline())
            .min()
            .map_or(far, |d| d.min(far))
    }

    fn handle(
        self: &Arc<Self>,
        server: &WebSocketServer,
        handler: &Stored<dyn ErasedServer>,
        msg: WorkerMsg,
    ) {
        match msg {
            WorkerMsg::Open => {
                {
                    let _all = self.all();
                    server_open(server, handler);
                }
                server.inner.set_inline(Some(Arc::clone(self)));
            }
            WorkerMsg::Error(info) => {
                let _all = self.all();
                server_error(handler, server, ErrorEvent::single(info));
            }
            WorkerMsg::Terminate { timeout, code } => {
                for mut w in self.all() {
                    w.terminate(timeout, code);
                }
            }
            WorkerMsg::NetGone => {
                for mut w in self.all() {
                    w.net_gone();
                }
            }
            // The router hands handshakes to `connect` and the loops their events to
            // `LoopSink` in this mode; should one come here all the same, it is served.
            WorkerMsg::Connect(p) => {
                let conn = p.conn;
                let decision = self.connect(server, *p);
                server.inner.net.decide(conn, decision);
            }
            WorkerMsg::Net(batch) => {
                for e in batch.events {
                    if let Some(mut w) = self.worker(conn_of(&e).loop_index()) {
                        w.net_event(e);
                    }
                }
            }
        }
    }
}

fn conn_of(e: &NetEvent) -> ConnId {
    match e {
        NetEvent::Opened { conn, .. }
        | NetEvent::Message { conn, .. }
        | NetEvent::Closed { conn, .. } => *conn,
    }
}

/// Where the loops deliver the events of a loop-dispatched server: straight into the loop's
/// own worker, on the loop's thread.
struct LoopSink {
    /// Weak: the workers hold this sink.
    inline: Weak<Inline>,
    net: NetHandle,
    /// What one turn may read ahead of the callbacks (`ServerOptions::inbound`).
    inbound: Arc<Inbound>,
}

impl EventSink for LoopSink {
    fn deliver(&self, events: Vec<NetEvent>) {
        let Some(first) = events.first() else {
            return;
        };
        // Added by the loop before this call; given back once the callbacks have run (each
        // connection's share as its message is handled, by the worker).
        let _release = Release {
            inbound: &self.inbound,
            cost: Backlog::of_batch(&events),
        };
        // One loop's turn: every event of the batch is of that loop.
        let worker = self.inline.upgrade();
        let Some(inline) = worker.as_deref() else {
            // The server is over: nobody serves these connections.
            for e in &events {
                match e {
                    NetEvent::Opened { conn, .. } => self.net.abort(*conn),
                    NetEvent::Closed { conn, .. } => self.net.answered(*conn),
                    NetEvent::Message { .. } => {}
                }
            }
            return;
        };
        let Some(mut w) = inline.worker(conn_of(first).loop_index()) else {
            return;
        };
        let server = w.server.clone();
        let _entered = batch::enter(&server.inner);
        for e in events {
            w.net_event(e);
        }
    }

    /// The same limits as the worker's queue: here they bound what one loop turn reads
    /// before its callbacks run (a turn reads up to a budget from every ready socket, and a
    /// flood of large messages on several sockets would otherwise be held all at once).
    fn inbound(&self) -> Option<Arc<Inbound>> {
        Some(Arc::clone(&self.inbound))
    }

    /// The callbacks run inside `deliver`, after this turn's reads: the answers they send to
    /// messages that came before the peer's close must still go out before our close frame,
    /// so the close waits for `answered`, which the worker says right after the `Closed`
    /// (in the same turn: the loop takes the commands its sink queued before it sleeps).
    fn close_reply(&self) -> CloseReply {
        CloseReply::Deferred
    }

    /// The callbacks run inside `deliver`: an echo's or a relay's payload goes out from this
    /// loop and its buffer serves the next read while still in cache, so reading large
    /// payloads straight into their buffers pays here (in worker dispatch it did not).
    fn read_ahead(&self) -> bool {
        true
    }
}

/// Gives a delivered batch's cost back to the server's backlog when dropped, however
/// `deliver` ends.
struct Release<'a> {
    inbound: &'a Inbound,
    cost: Backlog,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.inbound.release(self.cost);
    }
}
