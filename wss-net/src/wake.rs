//! Commands to a loop, and the rule for waking it: only when it may be asleep.
//!
//! The loop raises `sleeping` before a blocking `poll` and checks its channel once more; a
//! sender pushes its command and then takes the flag down, waking the loop only if it was up.
//! With a SeqCst fence on each side (store, fence, look at the channel / push, fence, swap),
//! at least one of them sees the other: either the loop finds the command and does not block,
//! or the sender finds the flag and wakes it. While the loop is busy the flag is down, so a
//! burst of commands costs one channel push each and no syscall.

use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::Waker;
use wss_proto::CloseCode;

use crate::api::{ConnId, Decision, Outgoing};
use crate::stats::LoopCounters;

/// Work for a loop from another thread (or from itself, through a sink).
pub(crate) enum Command {
    Send(ConnId, Outgoing),
    SendBatch(Vec<(ConnId, Outgoing)>),
    Close(ConnId, CloseCode, String),
    Abort(ConnId),
    Decide(ConnId, Decision),
    /// A socket accepted by the accepting loop, handed over to this one.
    Adopt(Adopted),
    /// An outgoing connection the layer above upgraded, to be run by this loop.
    Connect(Box<crate::client::ClientStream>),
    Shutdown(Option<(CloseCode, Duration)>),
    /// The consumer caught up with this connection's backlog: read it again.
    Resume(ConnId),
    /// The consumer handled a closed connection's events: its deferred close reply may go.
    Answered(ConnId),
    /// A sink this loop waits on caught up: read again the connections stopped on a total.
    ResumeWaiting,
}

/// An accepted, admitted socket on its way to the loop that will own it.
pub(crate) struct Adopted {
    pub(crate) stream: mio::net::TcpStream,
    /// The client's address as `accept` gave it: carried through the handshake so that no
    /// `getpeername` is needed.
    pub(crate) peer: SocketAddr,
    /// It came to a TLS listener.
    pub(crate) tls: bool,
    /// Its entry in the per-address counts (`limits::NO_ADDR` if none).
    pub(crate) addr_slot: u32,
}

/// The half of a loop that other threads touch.
pub(crate) struct LoopShared {
    tx: Sender<Command>,
    waker: Waker,
    sleeping: AtomicBool,
    wakeups: AtomicU64,
    accept_pauses: AtomicU64,
    inbound_pauses: AtomicU64,
    /// Traffic counters, written by this loop alone (see `stats`).
    pub(crate) counters: LoopCounters,
}

impl LoopShared {
    pub(crate) fn new(waker: Waker) -> (LoopShared, Receiver<Command>) {
        // Unbounded on purpose: a bounded channel would block the sender, and the sender may be
        // the thread a sink hands events to, which a blocked loop would never drain (deadlock).
        // Memory stays bounded downstream: each connection's queue has `max_outgoing`.
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = LoopShared {
            tx,
            waker,
            sleeping: AtomicBool::new(false),
            wakeups: AtomicU64::new(0),
            accept_pauses: AtomicU64::new(0),
            inbound_pauses: AtomicU64::new(0),
            counters: LoopCounters::default(),
        };
        (shared, rx)
    }

    /// Queues `cmd` and wakes the loop if it may be asleep.
    pub(crate) fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_err() {
            // The loop has exited (after shutdown): nothing to do.
            return;
        }
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.waker.wake() {
                log::warn!("waking a loop failed: {e}");
            }
        }
    }

    /// Called by the loop before a blocking poll. Returns false when a command is already
    /// waiting, in which case the loop must not block (and the flag is down again).
    pub(crate) fn prepare_sleep(&self, rx: &Receiver<Command>) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if rx.is_empty() {
            true
        } else {
            self.sleeping.store(false, Ordering::SeqCst);
            false
        }
    }

    /// Called by the loop when poll returns.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Accepting paused for lack of descriptors or memory.
    pub(crate) fn note_accept_pause(&self) {
        self.accept_pauses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accept_pauses(&self) -> u64 {
        self.accept_pauses.load(Ordering::Relaxed)
    }

    /// A connection stopped being read because its consumer is behind.
    pub(crate) fn note_inbound_pause(&self) {
        self.inbound_pauses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn inbound_pauses(&self) -> u64 {
        self.inbound_pauses.load(Ordering::Relaxed)
    }
}

/// Takes up to `max` commands without blocking.
pub(crate) fn drain(rx: &Receiver<Command>, max: usize, mut f: impl FnMut(Command)) -> bool {
    for _ in 0..max {
        match rx.try_recv() {
            Ok(cmd) => f(cmd),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};

    fn setup() -> (Poll, LoopShared, Receiver<Command>) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(0)).unwrap();
        let (shared, rx) = LoopShared::new(waker);
        (poll, shared, rx)
    }

    #[test]
    fn busy_loop_is_never_woken() {
        let (_poll, shared, _rx) = setup();
        for _ in 0..100 {
            shared.send(Command::Abort(ConnId::new(0, 0, 0)));
        }
        assert_eq!(shared.wakeups(), 0);
    }

    #[test]
    fn sleeping_loop_is_woken_once_per_sleep() {
        let (mut poll, shared, rx) = setup();
        assert!(shared.prepare_sleep(&rx));
        shared.send(Command::Abort(ConnId::new(0, 0, 0)));
        shared.send(Command::Abort(ConnId::new(0, 0, 0)));
        assert_eq!(shared.wakeups(), 1);
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert!(!events.is_empty(), "the waker fired");
        shared.awake();
        assert_eq!(rx.len(), 2);
    }

    #[test]
    fn loop_with_a_waiting_command_does_not_sleep() {
        let (_poll, shared, rx) = setup();
        shared.send(Command::Abort(ConnId::new(0, 0, 0)));
        assert!(!shared.prepare_sleep(&rx));
        // The flag is down again: the next send does not wake.
        shared.send(Command::Abort(ConnId::new(0, 0, 0)));
        assert_eq!(shared.wakeups(), 0);
    }
}
