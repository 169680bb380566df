//! Per-loop traffic counters: written by their loop alone, summed by whoever reads them.
//!
//! Each counter has one writer (the loop thread that owns it), so an increment is a relaxed
//! load and a relaxed store, never a read-modify-write: on x86-64 and AArch64 that is an
//! ordinary load, add and store, the cost of a plain `u64` field. Readers (a metrics scrape)
//! load every loop's counters and add them up; a value read may be a few increments behind,
//! never torn. The counters sit on their own cache lines, apart from the loop's wake-up flag
//! that other threads write, so counting never takes a line another thread wants.

use std::sync::atomic::{AtomicU64, Ordering};

use wss_proto::CloseCode;

/// Close codes counted one by one: 1000 to 1015 (RFC 6455 §7.4.1 and the IANA registry).
/// Every other code (application codes 3000-4999, say) falls in one last bucket.
const FIRST_CODE: u16 = 1000;
const NAMED_CODES: usize = 16;
const CODE_BUCKETS: usize = NAMED_CODES + 1;

/// Adds `n` to a counter only the calling loop writes.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Subtracts `n` from a gauge only the calling loop writes (it never goes below what was
/// added, as every subtraction undoes an earlier addition).
#[inline]
fn drop_by(gauge: &AtomicU64, n: u64) {
    gauge.store(
        gauge.load(Ordering::Relaxed).wrapping_sub(n),
        Ordering::Relaxed,
    );
}

/// One loop's counters. Aligned to two cache lines (the adjacent-line prefetcher pairs them).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct LoopCounters {
    /// Connections that became WebSockets (101 queued).
    pub(crate) upgrades: AtomicU64,
    /// Messages received, by type: 0 text, 1 binary.
    pub(crate) received: [AtomicU64; 2],
    /// Messages sent, by type: 0 text, 1 binary.
    pub(crate) sent: [AtomicU64; 2],
    /// Payload bytes of the messages received (after inflating).
    pub(crate) app_received: AtomicU64,
    /// Payload bytes of the messages sent (before compressing; a shared frame counts its
    /// payload as framed).
    pub(crate) app_sent: AtomicU64,
    /// Bytes read from sockets (TLS records included, HTTP heads included).
    pub(crate) wire_received: AtomicU64,
    /// Bytes written to sockets (plaintext queue bytes; over TLS the plaintext handed to it).
    pub(crate) wire_sent: AtomicU64,
    /// Bytes queued for upgraded connections and not yet written (a gauge).
    pub(crate) queued: AtomicU64,
    /// Closes by the side that began them (0 client, 1 server) and code bucket.
    closes: [[AtomicU64; CODE_BUCKETS]; 2],
    /// Connections dropped because their outgoing queue passed `max_outgoing`.
    pub(crate) slow_consumers: AtomicU64,
    /// Request heads that did not complete in time (408), or decisions that came too late
    /// (503).
    pub(crate) handshake_timeouts: AtomicU64,
    /// Request heads refused as malformed (400).
    pub(crate) bad_requests: AtomicU64,
    /// Request heads refused as too large (431).
    pub(crate) too_large: AtomicU64,
    /// Reads that put a large payload straight into its message buffer.
    pub(crate) reads_ahead: AtomicU64,
}

impl LoopCounters {
    /// Counts a closed WebSocket connection.
    #[inline]
    pub(crate) fn note_close(&self, by: CloseBy, code: CloseCode) {
        let side = match by {
            CloseBy::Client => 0,
            CloseBy::Server => 1,
        };
        let bucket = usize::from(code.0.wrapping_sub(FIRST_CODE)).min(NAMED_CODES);
        if let Some(c) = self.closes.get(side).and_then(|s| s.get(bucket)) {
            bump(c, 1);
        }
    }

    /// Moves the queued-bytes gauge from `before` to `after` for one connection.
    #[inline]
    pub(crate) fn requeue(&self, before: usize, after: usize) {
        if after > before {
            bump(&self.queued, (after - before) as u64);
        } else if before > after {
            drop_by(&self.queued, (before - after) as u64);
        }
    }

    pub(crate) fn add_to(&self, s: &mut crate::NetStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.upgrades += get(&self.upgrades);
        s.messages_received.text += get(&self.received[0]);
        s.messages_received.binary += get(&self.received[1]);
        s.messages_sent.text += get(&self.sent[0]);
        s.messages_sent.binary += get(&self.sent[1]);
        s.bytes_received += get(&self.app_received);
        s.bytes_sent += get(&self.app_sent);
        s.wire_bytes_received += get(&self.wire_received);
        s.wire_bytes_sent += get(&self.wire_sent);
        s.outgoing_queued_bytes += get(&self.queued);
        s.slow_consumers_dropped += get(&self.slow_consumers);
        s.handshake_timeouts += get(&self.handshake_timeouts);
        s.bad_requests += get(&self.bad_requests);
        s.heads_too_large += get(&self.too_large);
        s.reads_ahead += get(&self.reads_ahead);
        for (side, counts) in self.closes.iter().enumerate() {
            let to = if side == 0 {
                &mut s.closes.by_client
            } else {
                &mut s.closes.by_server
            };
            for (t, c) in to.iter_mut().zip(counts) {
                *t += get(c);
            }
        }
    }
}

/// Which side began the closing of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseBy {
    /// The client sent the first close frame, or vanished (EOF, reset, TLS failure).
    Client,
    /// The server sent the first close frame (a `close`, a shutdown, a protocol failure it
    /// detected) or dropped the connection (a timeout, an overflowing queue, an abort).
    Server,
}

impl CloseBy {
    /// `"client"` or `"server"` (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseBy::Client => "client",
            CloseBy::Server => "server",
        }
    }
}

/// Messages counted by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ByType {
    /// Text messages.
    pub text: u64,
    /// Binary messages.
    pub binary: u64,
}

/// Closed WebSocket connections, by the side that began the close and by code.
///
/// Codes 1000 to 1015 are counted one by one; all others (application codes) together.
/// An abnormal end (no close frame exchanged) counts as 1006.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseCounts {
    by_client: [u64; CODE_BUCKETS],
    by_server: [u64; CODE_BUCKETS],
}

impl CloseCounts {
    /// Every non-zero count: the side, the code (`None` for codes outside 1000-1015), the
    /// count.
    pub fn iter(&self) -> impl Iterator<Item = (CloseBy, Option<u16>, u64)> + '_ {
        [
            (CloseBy::Client, &self.by_client),
            (CloseBy::Server, &self.by_server),
        ]
        .into_iter()
        .flat_map(|(by, counts)| {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(move |(i, n)| {
                    let code = (i < NAMED_CODES).then(|| FIRST_CODE + i as u16);
                    (by, code, *n)
                })
        })
    }

    /// How many connections closed with `code` begun by `by` (codes outside 1000-1015 share
    /// one count).
    pub fn get(&self, by: CloseBy, code: u16) -> u64 {
        let bucket = usize::from(code.wrapping_sub(FIRST_CODE)).min(NAMED_CODES);
        let counts = match by {
            CloseBy::Client => &self.by_client,
            CloseBy::Server => &self.by_server,
        };
        counts.get(bucket).copied().unwrap_or(0)
    }

    /// All closes counted.
    pub fn total(&self) -> u64 {
        self.by_client.iter().chain(&self.by_server).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_bucketed_by_side_and_code() {
        let c = LoopCounters::default();
        c.note_close(CloseBy::Client, CloseCode::NORMAL);
        c.note_close(CloseBy::Client, CloseCode::NORMAL);
        c.note_close(CloseBy::Server, CloseCode::GOING_AWAY);
        c.note_close(CloseBy::Server, CloseCode(4000));
        c.note_close(CloseBy::Client, CloseCode(999));
        let mut s = crate::NetStats::default();
        c.add_to(&mut s);
        assert_eq!(s.closes.get(CloseBy::Client, 1000), 2);
        assert_eq!(s.closes.get(CloseBy::Server, 1001), 1);
        assert_eq!(s.closes.get(CloseBy::Server, 4000), 1);
        assert_eq!(
            s.closes.get(CloseBy::Client, 4999),
            1,
            "999 is an 'other' code"
        );
        assert_eq!(s.closes.total(), 5);
        let listed: Vec<_> = s.closes.iter().collect();
        assert!(listed.contains(&(CloseBy::Client, Some(1000), 2)));
        assert!(listed.contains(&(CloseBy::Server, None, 1)));
        assert_eq!(listed.len(), 4);
    }

    #[test]
    fn queued_gauge_follows_each_connection() {
        let c = LoopCounters::default();
        c.requeue(0, 100);
        c.requeue(0, 50);
        c.requeue(100, 10);
        c.requeue(10, 0);
        assert_eq!(c.queued.load(Ordering::Relaxed), 50);
    }
}
