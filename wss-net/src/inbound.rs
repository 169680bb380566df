//! Backpressure from a slower consumer to the sockets.
//!
//! A loop reads as fast as the kernel hands it bytes; the layer above may take messages more
//! slowly (a worker thread running user callbacks, say). Whatever the loop has handed over and
//! the consumer has not taken yet is memory, and a queue in front of one consumer is also
//! latency for everyone behind it. An [`Inbound`] bounds both, per connection and per sink,
//! by pushing back on the peers that send too fast: a connection past its share is simply not
//! read any more, its bytes wait in the kernel, TCP's window closes and the sender blocks.
//!
//! - The loop counts each message it hands to a sink (its payload bytes and one message)
//!   against the connection's [`Credit`] and against the sink's [`Inbound`]. The consumer gives
//!   them back once done with the messages: [`Credit::release`] for the connection,
//!   [`Inbound::release`] for the sink (once per batch is enough).
//! - A connection stops being read as soon as its own backlog or its sink's is past the limit;
//!   the message that crosses the limit is still handed over, so any message, however large,
//!   gets through. Messages the protocol already decoded from the last read wait in the
//!   connection's protocol state, not in the sink's queue.
//! - Reading resumes when the consumer brings the backlog back to half the limit: the release
//!   that crosses half sends the loop one command (a wake-up only if the loop sleeps). A
//!   connection that keeps a slow consumer busy thus costs one command per half-limit of
//!   messages, never one per message.
//!
//! The hot path pays one atomic add per read on the connection's counter (bytes and messages
//! share one word) and two per loop turn on the sink's; the consumer pays one atomic update per
//! release. Nothing is allocated per message.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wss_proto::Message;

use crate::api::{ConnId, NetEvent};
use crate::wake::{Command, LoopShared};

/// An amount of messages handed to a consumer and not yet given back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Number of messages.
    pub messages: usize,
    /// Their payload bytes (a text message counts its UTF-8 bytes).
    pub bytes: usize,
}

impl Backlog {
    /// What one message counts for: one message and its payload length.
    pub fn of(message: &Message) -> Backlog {
        Backlog {
            messages: 1,
            bytes: message.len(),
        }
    }

    /// What the messages of a batch count for (other events count for nothing).
    pub fn of_batch(events: &[NetEvent]) -> Backlog {
        let mut total = Backlog::default();
        for event in events {
            if let NetEvent::Message { message, .. } = event {
                total.add(Backlog::of(message));
            }
        }
        total
    }

    /// Adds `other` (saturating).
    pub fn add(&mut self, other: Backlog) {
        self.messages = self.messages.saturating_add(other.messages);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    /// True when nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.messages == 0 && self.bytes == 0
    }

    fn plus(mut self, other: Backlog) -> Backlog {
        self.add(other);
        self
    }
}

/// How much a consumer may have in hand before the loops stop reading its connections.
///
/// Each limit is a high-water mark: a connection is read while the backlog is at or under it,
/// so the message that crosses it is still delivered, and reading resumes once the consumer
/// is back at half of it. `usize::MAX` turns a limit off.
///
/// The defaults are sized for a consumer that takes messages one at a time on one thread:
/// enough in hand to never starve it, little enough that memory stays near a few MiB per busy
/// connection and that a message arriving behind a backlog waits for at most a few thousand
/// messages. With several loops, each loop enforces the sink-wide limits against what it saw
/// delivered plus what it read itself this turn, so the sink's backlog may briefly reach the
/// loop count times the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundLimits {
    /// Payload bytes one connection may have waiting for the consumer. Default 1 MiB: a
    /// connection sending large messages has one or two in hand (a message larger than this
    /// still goes through, one at a time). Lower it to bound memory more tightly per
    /// connection; raise it for consumers that gain from larger batches.
    pub connection_bytes: usize,
    /// Messages one connection may have waiting. Default 256: bounds what a peer sending
    /// small messages can queue in front of everyone else (256 times the consumer's time per
    /// message) while leaving enough in hand that a fast consumer never waits for the loop.
    pub connection_messages: usize,
    /// Payload bytes all connections of the sink may have waiting together. Default 16 MiB:
    /// the memory a slow consumer can make the process hold for it, however many connections
    /// send at once.
    pub total_bytes: usize,
    /// Messages all connections of the sink may have waiting together. Default 4096: the
    /// longest queue (in messages) that a newcomer's first message can find in front of it.
    pub total_messages: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            connection_bytes: 1 << 20,
            connection_messages: 256,
            total_bytes: 16 << 20,
            total_messages: 4096,
        }
    }
}

/// A connection's counter packs bytes (low 40 bits) and messages (high 24 bits) in one word,
/// so the loop pays a single atomic add per read for both. Per-connection limits are clamped
/// so that neither field can overflow: a connection is read only while under them, and it
/// overshoots by at most one message.
const BYTES_BITS: u32 = 40;
const BYTES_MASK: u64 = (1 << BYTES_BITS) - 1;
/// Largest per-connection byte limit (256 GiB: far past any sane setting).
const MAX_CONN_BYTES: usize = 1 << 38;
/// Largest per-connection message limit.
const MAX_CONN_MESSAGES: usize = 1 << 22;

fn pack(b: Backlog) -> u64 {
    let bytes = (b.bytes as u64).min(BYTES_MASK);
    let messages = (b.messages as u64).min((1 << (64 - BYTES_BITS)) - 1);
    (messages << BYTES_BITS) | bytes
}

fn unpack(v: u64) -> Backlog {
    Backlog {
        messages: (v >> BYTES_BITS) as usize,
        bytes: (v & BYTES_MASK) as usize,
    }
}

fn over(b: Backlog, bytes: usize, messages: usize) -> bool {
    b.bytes > bytes || b.messages > messages
}

fn at_low_water(b: Backlog, bytes: usize, messages: usize) -> bool {
    b.bytes <= bytes / 2 && b.messages <= messages / 2
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The backlog of one sink, shared by the loops (which add) and the consumer (which
/// releases). Give it to the loops through [`EventSink::inbound`](crate::EventSink::inbound).
pub struct Inbound {
    limits: InboundLimits,
    bytes: AtomicUsize,
    messages: AtomicUsize,
    /// Some loop has a connection stopped on this sink's total: the release that brings it
    /// to low water must resume them.
    waiting: AtomicBool,
    /// The loops to resume (each once).
    waiters: Mutex<Vec<Arc<LoopShared>>>,
}

impl Inbound {
    /// A sink's backlog with these limits (per-connection limits above 2^38 bytes or 2^22
    /// messages are taken as those values).
    pub fn new(limits: InboundLimits) -> Inbound {
        let limits = InboundLimits {
            connection_bytes: limits.connection_bytes.min(MAX_CONN_BYTES),
            connection_messages: limits.connection_messages.min(MAX_CONN_MESSAGES),
            ..limits
        };
        Inbound {
            limits,
            bytes: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> InboundLimits {
        self.limits
    }

    /// What the sink's consumer has been handed and not released yet.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            messages: self.messages.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
        }
    }

    /// The consumer is done with `done` (what the messages of one or more batches counted
    /// for, [`Backlog::of_batch`]). Releasing more than was handed over stops at zero.
    pub fn release(&self, done: Backlog) {
        if done.is_empty() {
            return;
        }
        let sub = |counter: &AtomicUsize, n: usize| {
            let prev = counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                    Some(v.saturating_sub(n))
                })
                .unwrap_or_else(|v| v);
            prev.saturating_sub(n)
        };
        let after = Backlog {
            messages: sub(&self.messages, done.messages),
            bytes: sub(&self.bytes, done.bytes),
        };
        if at_low_water(after, self.limits.total_bytes, self.limits.total_messages)
            && self.waiting.load(Ordering::SeqCst)
            && self.waiting.swap(false, Ordering::SeqCst)
        {
            let loops = std::mem::take(&mut *lock(&self.waiters));
            for l in loops {
                l.send(Command::ResumeWaiting);
            }
        }
    }

    /// Loop side: a batch that counts for `cost` is about to be delivered.
    pub(crate) fn add(&self, cost: Backlog) {
        self.messages.fetch_add(cost.messages, Ordering::SeqCst);
        self.bytes.fetch_add(cost.bytes, Ordering::SeqCst);
    }

    fn over(&self, b: Backlog) -> bool {
        over(b, self.limits.total_bytes, self.limits.total_messages)
    }

    /// Loop side: registers `at` to be resumed once the backlog is at low water. Returns
    /// false when it already is (counting `unsent`, what the loop read this turn and has not
    /// delivered yet): then the caller need not wait.
    fn wait(&self, at: &Arc<LoopShared>, unsent: Backlog) -> bool {
        {
            let mut waiters = lock(&self.waiters);
            if !waiters.iter().any(|w| Arc::ptr_eq(w, at)) {
                waiters.push(Arc::clone(at));
            }
        }
        self.waiting.store(true, Ordering::SeqCst);
        // Either the releasing thread sees `waiting`, or this load sees its release.
        let now = self.backlog().plus(unsent);
        !at_low_water(now, self.limits.total_bytes, self.limits.total_messages)
    }
}

/// Flag bits of `ConnFlow::flags`.
///
/// The loop stopped reading for this connection's own backlog; the release that brings it to
/// low water resumes it.
const PARKED: u8 = 1;
/// The consumer dropped its `Credit`: nobody releases any more, so no limit applies.
const DETACHED: u8 = 2;
/// Loop-only: the connection is in its loop's list of those stopped on the sink's total.
const LISTED: u8 = 4;

/// What an upgraded connection's loop shares with the consumer: the bytes queued for the
/// socket (`bufferedAmount`), and its share of the sink's backlog when the sink has one.
///
/// One allocation per connection for both, sized for the allocator: 40 bytes, so that with
/// the reference counts it takes a 64-byte chunk (a `usize` counter and separate flags would
/// make it 80; two allocations took 96).
pub(crate) struct ConnFlow {
    /// Bytes queued and not yet written, saturating at `u32::MAX` (4 GiB, far past any
    /// `max_outgoing`: the connection is dropped past that bound anyway).
    buffered: AtomicU32,
    /// `PARKED`, `DETACHED`, `LISTED`: updated with read-modify-writes only,
    /// as the loop and the consumer both change bits of it.
    flags: AtomicU8,
    /// Packed backlog (see `pack`).
    pending: AtomicU64,
    /// `None` when the sink keeps no backlog: then no limit applies and only `buffered` is used.
    link: Option<FlowLink>,
}

/// Where a flow-controlled connection's backlog counts and who resumes it.
struct FlowLink {
    inbound: Arc<Inbound>,
    at: Arc<LoopShared>,
    id: ConnId,
}

impl ConnFlow {
    /// A connection's shared state; `link`: the sink's backlog, the connection's loop and id,
    /// when the sink has a backlog.
    pub(crate) fn new(link: Option<(Arc<Inbound>, Arc<LoopShared>, ConnId)>) -> ConnFlow {
        ConnFlow {
            buffered: AtomicU32::new(0),
            flags: AtomicU8::new(0),
            pending: AtomicU64::new(0),
            link: link.map(|(inbound, at, id)| FlowLink { inbound, at, id }),
        }
    }

    /// Whether the sink keeps a backlog (then the consumer gets a [`Credit`]).
    pub(crate) fn is_limited(&self) -> bool {
        self.link.is_some()
    }

    /// The sink's backlog, when it has one.
    pub(crate) fn inbound(&self) -> Option<&Arc<Inbound>> {
        self.link.as_ref().map(|l| &l.inbound)
    }

    /// Loop side: `n` bytes are queued for the socket now.
    /// The queued-bytes count as last set.
    pub(crate) fn buffered_now(&self) -> u32 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Sets the queued-bytes count (saturated at `u32::MAX`); returns `(before, after)` as
    /// stored, for the loop's gauge.
    pub(crate) fn set_buffered(&self, n: usize) -> (u32, u32) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        // Most flushes leave it as it was (0 after an echo): no store then, so the cache line
        // the consumer updates on each release is not taken from it for nothing.
        let before = self.buffered.load(Ordering::Relaxed);
        if before != n {
            self.buffered.store(n, Ordering::Relaxed);
        }
        (before, n)
    }

    fn pending(&self) -> Backlog {
        unpack(self.pending.load(Ordering::SeqCst))
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.load(Ordering::SeqCst) & flag != 0
    }

    /// Sets `flag`; returns whether it was set before.
    fn raise(&self, flag: u8) -> bool {
        self.flags.fetch_or(flag, Ordering::SeqCst) & flag != 0
    }

    /// Clears `flag`; returns whether it was set before.
    fn lower(&self, flag: u8) -> bool {
        self.flags.fetch_and(!flag, Ordering::SeqCst) & flag != 0
    }
}

/// What a connection does after handing messages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep reading.
    Go,
    /// Stop reading until resumed.
    Wait,
    /// Stop reading until resumed, and put the connection on the loop's list of those stopped
    /// on their sink's total (it was not on it yet).
    WaitListed,
}

/// The loop's view of one connection's flow while it hands messages over: read once per
/// pump, counted locally, committed with one atomic add.
pub(crate) struct Gate<'a> {
    flow: Option<(&'a ConnFlow, &'a FlowLink)>,
    /// The connection's backlog when the pump began, plus what it took since.
    conn: Backlog,
    /// The sink's backlog plus what this loop read for it this turn, plus what it took since.
    total: Backlog,
    taken: Backlog,
}

impl<'a> Gate<'a> {
    /// `unsent`: what this loop's turn already holds for the connection's sink (asked only
    /// when the connection is flow-controlled).
    pub(crate) fn open(flow: &'a ConnFlow, unsent: impl FnOnce() -> Backlog) -> Gate<'a> {
        let flow = flow
            .link
            .as_ref()
            .filter(|_| !flow.has(DETACHED))
            .map(|link| (flow, link));
        let (conn, total) = match flow {
            Some((f, link)) => (f.pending(), link.inbound.backlog().plus(unsent())),
            None => Default::default(),
        };
        Gate {
            flow,
            conn,
            total,
            taken: Backlog::default(),
        }
    }

    /// Whether the connection must stop taking messages now.
    pub(crate) fn closed(&self) -> bool {
        let Some((_, link)) = self.flow else {
            return false;
        };
        let l = &link.inbound.limits;
        over(self.conn, l.connection_bytes, l.connection_messages) || link.inbound.over(self.total)
    }

    /// Counts a message handed over.
    pub(crate) fn take(&mut self, cost: Backlog) {
        if self.flow.is_some() {
            self.conn.add(cost);
            self.total.add(cost);
            self.taken.add(cost);
        }
    }

    /// Publishes what was taken. Then, if the connection must stop, arranges for it to be
    /// resumed. `unsent`: what this loop's turn holds for the sink now.
    pub(crate) fn commit(self, unsent: Backlog) -> Verdict {
        let Some((f, link)) = self.flow else {
            return Verdict::Go;
        };
        let mut conn = self.conn;
        if !self.taken.is_empty() {
            let prev = f.pending.fetch_add(pack(self.taken), Ordering::SeqCst);
            conn = unpack(prev).plus(self.taken);
        }
        let l = &link.inbound.limits;
        if over(conn, l.connection_bytes, l.connection_messages) {
            f.raise(PARKED);
            // Either the consumer sees `parked`, or this load sees its release.
            let now = f.pending();
            if !at_low_water(now, l.connection_bytes, l.connection_messages) {
                return Verdict::Wait;
            }
            // Caught up meanwhile: go on. If the consumer took `parked` first, the resume it
            // sends finds the connection reading and does nothing.
            f.lower(PARKED);
            return Verdict::Go;
        }
        if !link.inbound.over(self.total) {
            return Verdict::Go;
        }
        let first = !f.raise(LISTED);
        if !link.inbound.wait(&link.at, unsent) {
            // Caught up meanwhile. The loop's registration stays: a spurious resume later
            // is harmless.
            if first {
                f.lower(LISTED);
            }
            return Verdict::Go;
        }
        if first {
            Verdict::WaitListed
        } else {
            Verdict::Wait
        }
    }
}

/// Loop side: the connection's entry in the loop's list of those stopped on the total is
/// being taken out.
pub(crate) fn unlist(flow: &ConnFlow) {
    flow.lower(LISTED);
}

/// A connection's share of its sink's backlog, handed to the consumer in
/// [`NetEvent::Opened`](crate::NetEvent::Opened) when the sink has an [`Inbound`].
///
/// Release what each message counted for ([`Backlog::of`]) once done with it, on this
/// connection's credit and (per batch is enough) on the sink's [`Inbound`]. Keep it until the
/// connection's `Closed` is handled: dropping it lifts the connection's own limit (nobody
/// would release it any more); the sink's total still applies.
pub struct Credit {
    flow: Arc<ConnFlow>,
}

impl Credit {
    /// The consumer's credit on `flow`; `None` when its sink keeps no backlog.
    pub(crate) fn new(flow: &Arc<ConnFlow>) -> Option<Credit> {
        flow.is_limited().then(|| Credit {
            flow: Arc::clone(flow),
        })
    }

    /// The consumer is done with messages that counted for `done`. If that brings the
    /// connection back to half its limits while its loop stopped reading it, the loop is told
    /// to resume. Releasing more than was handed over stops at zero.
    pub fn release(&self, done: Backlog) {
        if done.is_empty() {
            return;
        }
        let f = &*self.flow;
        let Some(link) = &f.link else {
            return;
        };
        let sub = |v: u64| {
            let b = unpack(v);
            pack(Backlog {
                messages: b.messages.saturating_sub(done.messages),
                bytes: b.bytes.saturating_sub(done.bytes),
            })
        };
        let prev = f
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(sub(v)))
            .unwrap_or_else(|v| v);
        let after = unpack(sub(prev));
        let l = &link.inbound.limits;
        if at_low_water(after, l.connection_bytes, l.connection_messages)
            && f.has(PARKED)
            && f.lower(PARKED)
        {
            link.at.send(Command::Resume(link.id));
        }
    }

    /// What this connection has handed over and not had released yet.
    pub fn backlog(&self) -> Backlog {
        self.flow.pending()
    }
}

/// Bytes queued for one connection and not yet written to its socket, kept current by its
/// loop: what `bufferedAmount` reports. Handed over in
/// [`NetEvent::Opened`](crate::NetEvent::Opened); cheap to clone, readable from any thread.
#[derive(Clone)]
pub struct Buffered {
    flow: Arc<ConnFlow>,
}

impl Buffered {
    pub(crate) fn new(flow: &Arc<ConnFlow>) -> Buffered {
        Buffered {
            flow: Arc::clone(flow),
        }
    }

    /// The bytes queued now (a snapshot: the loop updates it after each write). Saturates at
    /// `u32::MAX`, far past any outgoing bound (the connection is dropped past that bound).
    pub fn get(&self) -> usize {
        self.flow.buffered.load(Ordering::Relaxed) as usize
    }
}

impl std::fmt::Debug for Buffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Buffered").field(&self.get()).finish()
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("limits", &self.limits)
            .field("backlog", &self.backlog())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credit")
            .field("conn", &self.flow.link.as_ref().map(|l| l.id))
            .field("backlog", &self.backlog())
            .finish_non_exhaustive()
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        let f = &*self.flow;
        f.raise(DETACHED);
        if f.lower(PARKED) {
            if let Some(link) = &f.link {
                link.at.send(Command::Resume(link.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With its reference counts (16 bytes) the shared state must stay within a 64-byte
    /// allocator chunk: glibc rounds `size + 8` up to 16, so at most 56 bytes of `ArcInner`.
    #[test]
    fn the_shared_state_fits_a_64_byte_chunk() {
        let size = std::mem::size_of::<ConnFlow>();
        assert!(size + 16 <= 56, "ConnFlow is {size} bytes");
    }

    #[test]
    fn packing_keeps_both_counts() {
        let b = Backlog {
            messages: 300,
            bytes: (1 << 38) + 5,
        };
        assert_eq!(unpack(pack(b)), b);
        let sum = pack(b).wrapping_add(pack(Backlog {
            messages: 1,
            bytes: 1,
        }));
        assert_eq!(
            unpack(sum),
            Backlog {
                messages: 301,
                bytes: (1 << 38) + 6
            }
        );
    }

    #[test]
    fn the_total_release_stops_at_zero() {
        let inbound = Inbound::new(InboundLimits::default());
        inbound.add(Backlog {
            messages: 2,
            bytes: 10,
        });
        inbound.release(Backlog {
            messages: 3,
            bytes: 4,
        });
        assert_eq!(
            inbound.backlog(),
            Backlog {
                messages: 0,
                bytes: 6
            }
        );
    }

    #[test]
    fn limits_are_high_water_marks_and_resume_at_half() {
        assert!(!over(
            Backlog {
                messages: 4,
                bytes: 0
            },
            100,
            4
        ));
        assert!(over(
            Backlog {
                messages: 5,
                bytes: 0
            },
            100,
            4
        ));
        assert!(at_low_water(
            Backlog {
                messages: 2,
                bytes: 50
            },
            100,
            4
        ));
        assert!(!at_low_water(
            Backlog {
                messages: 2,
                bytes: 51
            },
            100,
            4
        ));
    }
}
