//! Accepting: the listeners (one, or a plain and a TLS one), polled by loop 0, handing
//! admitted sockets round-robin to every loop. Admission (the connection limits) is decided
//! here, before a socket costs more than its descriptor.
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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Registry, Token};

use crate::limits::{Admission, Refusal};
use crate::wake::{Adopted, Command, LoopShared};

/// How long accepting pauses when the process (or system) is out of file descriptors or
/// memory: new connections wait in the kernel's backlog instead of the loop spinning on an
/// `accept` that keeps failing.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Sockets accepted per listener per readiness event before the loop serves its connections
/// again.
const ACCEPT_BATCH: usize = 128;

/// Refused sockets per batch that get a `503`; past it they are closed at once: under a
/// flood of refusals even the write costs too much.
const ANSWERED_REFUSALS: usize = 32;

/// Refusals are logged at most once per this period (with a count), so a flood cannot fill
/// the log.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(1);

/// Most listeners one `Net` has.
pub(crate) const MAX_LISTENERS: usize = 16;

/// The poll token of listener `i` (the top of the token space; slab slots stay below 2^32).
pub(crate) fn listener_token(i: usize) -> Token {
    Token(usize::MAX - 2 - i)
}

pub(crate) fn is_listener(token: Token) -> bool {
    (usize::MAX - 1 - MAX_LISTENERS..=usize::MAX - 2).contains(&token.0)
}

pub(crate) struct Acceptor {
    /// Each listener with whether it speaks TLS.
    listeners: Vec<(TcpListener, bool)>,
    loops: Arc<[Arc<LoopShared>]>,
    own_index: usize,
    next: usize,
    paused_until: Option<Instant>,
    /// The batch ran out with sockets maybe left in the backlog.
    more: bool,
    /// When the next refusal may be logged, and how many went unlogged since the last line.
    refusal_log_after: Option<Instant>,
    unlogged_refusals: u64,
}

impl Acceptor {
    pub(crate) fn new(
        listeners: Vec<(TcpListener, bool)>,
        loops: Arc<[Arc<LoopShared>]>,
        own_index: usize,
    ) -> Acceptor {
        Acceptor {
            listeners,
            loops,
            own_index,
            next: 0,
            paused_until: None,
            more: false,
            refusal_log_after: None,
            unlogged_refusals: 0,
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

    /// Accepts what the backlogs hold (up to a batch each). Admitted sockets for this loop go
    /// to `mine`, the others to their loop's channel; refused ones are answered and closed.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        admission: &Admission,
        mut mine: impl FnMut(Adopted),
    ) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.paused_until = None;
        self.more = false;
        let mut answered = 0;
        for index in 0..self.listeners.len() {
            let mut took = 0;
            loop {
                if took == ACCEPT_BATCH {
                    self.more = true;
                    break;
                }
                let Some((listener, tls)) = self.listeners.get(index) else {
                    break;
                };
                let tls = *tls;
                match listener.accept() {
                    Ok((stream, peer)) => {
                        took += 1;
                        let addr_slot = match admission.admit(peer.ip()) {
                            Ok(slot) => slot,
                            Err(why) => {
                                let answer = !tls && answered < ANSWERED_REFUSALS;
                                answered += usize::from(answer);
                                refuse(stream, why, answer);
                                self.log_refusal(now, peer, why);
                                continue;
                            }
                        };
                        // On Linux the socket inherits TCP_NODELAY from the listener
                        // (`net::listen_on`): one setsockopt less per connection.
                        #[cfg(not(target_os = "linux"))]
                        if let Err(e) = stream.set_nodelay(true) {
                            log::debug!("TCP_NODELAY on {peer}: {e}");
                        }
                        let adopted = Adopted {
                            stream,
                            peer,
                            tls,
                            addr_slot,
                        };
                        let target = self.next % self.loops.len().max(1);
                        self.next = self.next.wrapping_add(1);
                        match self.loops.get(target) {
                            Some(l) if target != self.own_index => l.send(Command::Adopt(adopted)),
                            _ => mine(adopted),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
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
        }
    }

    fn log_refusal(&mut self, now: Instant, peer: SocketAddr, why: Refusal) {
        self.unlogged_refusals += 1;
        if self.refusal_log_after.is_some_and(|t| now < t) {
            return;
        }
        log::warn!(
            "refused a connection from {peer}: {} ({} refused since the last such line)",
            why.text(),
            self.unlogged_refusals
        );
        self.unlogged_refusals = 0;
        self.refusal_log_after = Some(now + REFUSAL_LOG_PERIOD);
    }

    /// Stops accepting now: the listeners leave the poll and are closed.
    pub(crate) fn stop(&mut self, registry: &Registry) {
        for (listener, _) in &mut self.listeners {
            if let Err(e) = registry.deregister(listener) {
                log::debug!("deregistering a listener: {e}");
            }
        }
        self.listeners.clear();
    }
}

/// Whether a failed accept ran out of descriptors, buffers or memory (then accepting pauses
/// instead of spinning), as opposed to a failure of that one connection.
#[cfg(unix)]
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Winsock's codes for the same conditions: `WSAEMFILE` (10024) and `WSAENOBUFS` (10055).
#[cfg(windows)]
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(10024 | 10055)) || e.kind() == io::ErrorKind::OutOfMemory
}

/// Elsewhere only the portable kind is known.
#[cfg(not(any(unix, windows)))]
fn is_exhaustion(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::OutOfMemory
}

/// Past a limit: a best-effort 503 on the fresh socket when `answer` (its send buffer is
/// empty, so the few bytes fit), then close. A TLS socket is closed without a word: it
/// could not read a plain answer, and a TLS one would cost a handshake.
fn refuse(mut stream: TcpStream, why: Refusal, answer: bool) {
    if answer {
        let mut bytes = Vec::new();
        wss_proto::handshake::Response::error(503, why.text()).encode(&mut bytes);
        let _ = stream.write(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}
