//! Accepting: one listener, polled by loop 0, handing sockets round-robin to every loop.
//!
//! Why one acceptor and not `SO_REUSEPORT` listeners (one per loop): the kernel spreads
//! reuseport connections by a hash of the 4-tuple, which is even only on average (a handful of
//! clients can land on one loop), and a reuseport group lets any process of the same user bind
//! the port and take a share of the connections. Round-robin from one listener is exactly even,
//! stops accepting with one deregistration, and works the same with port 0. Its cost is one
//! channel message per accepted socket (and a wake-up if the target loop sleeps), small next to
//! the handshake that follows; at handshake rates where one thread's `accept` would be the
//! limit, reuseport listeners are the upgrade path.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::Registry;

use crate::config::NetConfig;
use crate::wake::{Command, LoopShared};

/// How long accepting pauses when the process (or system) is out of file descriptors or
/// memory: new connections wait in the kernel's backlog instead of the loop spinning on an
/// `accept` that keeps failing.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Sockets accepted per readiness event before the loop serves its connections again.
const ACCEPT_BATCH: usize = 128;

pub(crate) struct Acceptor {
    listener: TcpListener,
    loops: Arc<[Arc<LoopShared>]>,
    own_index: usize,
    next: usize,
    paused_until: Option<Instant>,
    /// The batch ran out with sockets maybe left in the backlog.
    more: bool,
}

impl Acceptor {
    pub(crate) fn new(
        listener: TcpListener,
        loops: Arc<[Arc<LoopShared>]>,
        own_index: usize,
    ) -> Acceptor {
        Acceptor {
            listener,
            loops,
            own_index,
            next: 0,
            paused_until: None,
            more: false,
        }
    }

    /// When accepting resumes after a pause.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        if self.more {
            return Some(Instant::now());
        }
        self.paused_until
    }

    /// Whether `accept` should run without a readiness event: a pause ended (edge-triggered:
    /// the backlog will not signal again) or the last batch was cut short.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.more || self.paused_until.is_some_and(|t| t <= now)
    }

    /// Accepts what the backlog holds (up to a batch). Sockets for this loop go to `mine`,
    /// the others to their loop's channel.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        live: &AtomicUsize,
        config: &NetConfig,
        mut mine: impl FnMut(TcpStream),
    ) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.paused_until = None;
        self.more = false;
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if live.fetch_add(1, Ordering::Relaxed) >= config.max_connections {
                        live.fetch_sub(1, Ordering::Relaxed);
                        refuse(stream);
                        continue;
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        log::debug!("TCP_NODELAY on {peer}: {e}");
                    }
                    let target = self.next % self.loops.len().max(1);
                    self.next = self.next.wrapping_add(1);
                    match self.loops.get(target) {
                        Some(l) if target != self.own_index => l.send(Command::Adopt(stream)),
                        _ => mine(stream),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_exhaustion(&e) => {
                    log::warn!("accept: {e}; pausing {EXHAUSTED_PAUSE:?}");
                    if let Some(l) = self.loops.get(self.own_index) {
                        l.note_accept_pause();
                    }
                    self.paused_until = Some(now + EXHAUSTED_PAUSE);
                    return;
                }
                // The peer gave up between SYN and accept, or a signal: try the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    log::error!("accept: {e}; pausing {EXHAUSTED_PAUSE:?}");
                    self.paused_until = Some(now + EXHAUSTED_PAUSE);
                    return;
                }
            }
        }
        self.more = true;
    }

    /// Stops accepting now: the listener leaves the poll and is closed.
    pub(crate) fn stop(&mut self, registry: &Registry) {
        if let Err(e) = registry.deregister(&mut self.listener) {
            log::debug!("deregistering the listener: {e}");
        }
    }
}

fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Over `max_connections`: a best-effort 503 on the fresh socket (its send buffer is empty,
/// so the few bytes fit), then close.
fn refuse(mut stream: TcpStream) {
    let mut bytes = Vec::new();
    wss_proto::handshake::Response::error(503, "Too many connections").encode(&mut bytes);
    let _ = stream.write(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
