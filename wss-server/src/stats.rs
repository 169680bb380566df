//! What [`WebServer::stats`](crate::WebServer::stats) and
//! [`WebSocketServer::stats`](crate::WebSocketServer::stats) report, and the counters behind it.
//!
//! Counting follows the threads that do the work. Each server's worker counts its own events
//! (one writer, so an increment is a relaxed load and store, never a read-modify-write); the
//! network loops count theirs the same way ([`wss_net::NetStats`]); handshake refusals are
//! counted once per refused request. Reading adds it all up, on the reader's thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wss_net::{ByType, NetStats};
use wss_proto::Message;

use crate::broker::BrokerStats;
use crate::Backlog;

/// Upper bounds, in seconds, of the callback-duration histogram's buckets (the last bucket,
/// `+Inf`, is implied). From 5 µs (an echo) to a second (a callback that blocks).
pub const CALLBACK_BUCKETS: [f64; 15] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 0.25, 1.0,
];

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// One server's counters, written by its worker thread alone.
#[repr(align(128))]
pub(crate) struct ServerCounters {
    /// Time callbacks (one message in eight, two clock reads each): only when metrics are
    /// served.
    pub(crate) timing: bool,
    opened: AtomicU64,
    accepted: AtomicU64,
    refused_by_handler: AtomicU64,
    received: [AtomicU64; 2],
    bytes_received: AtomicU64,
    panics: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    durations: [AtomicU64; CALLBACK_BUCKETS.len() + 1],
    duration_nanos: AtomicU64,
}

impl ServerCounters {
    pub(crate) fn new(timing: bool) -> ServerCounters {
        ServerCounters {
            timing,
            opened: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused_by_handler: AtomicU64::new(0),
            received: [AtomicU64::new(0), AtomicU64::new(0)],
            bytes_received: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            durations: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn note_opened(&self) {
        bump(&self.opened, 1);
    }

    pub(crate) fn note_accepted(&self) {
        bump(&self.accepted, 1);
    }

    pub(crate) fn note_refused(&self) {
        bump(&self.refused_by_handler, 1);
    }

    pub(crate) fn note_panic(&self) {
        bump(&self.panics, 1);
    }

    #[inline]
    pub(crate) fn note_message(&self, message: &Message) {
        let (kind, len) = match message {
            Message::Text(t) => (0, t.len()),
            Message::Binary(b) => (1, b.len()),
        };
        if let Some(c) = self.received.get(kind) {
            bump(c, 1);
        }
        bump(&self.bytes_received, len as u64);
    }

    /// Counts one callback run of `took`.
    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = CALLBACK_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(CALLBACK_BUCKETS.len());
        if let Some(c) = self.durations.get(i) {
            bump(c, 1);
        }
        bump(
            &self.duration_nanos,
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    pub(crate) fn snapshot(
        &self,
        path: Option<&str>,
        connections: usize,
        queue: Backlog,
    ) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let buckets = self
            .durations
            .iter()
            .map(|c| {
                cumulative += get(c);
                cumulative
            })
            .collect::<Vec<u64>>();
        let mut received = ByType::default();
        received.text = get(&self.received[0]);
        received.binary = get(&self.received[1]);
        ServerStats {
            path: path.map(str::to_owned),
            connections,
            opened: get(&self.opened),
            accepted: get(&self.accepted),
            refused_by_handler: get(&self.refused_by_handler),
            messages_received: received,
            bytes_received: get(&self.bytes_received),
            callback_panics: get(&self.panics),
            worker_queue: queue,
            callback_duration: CallbackDurations {
                count: cumulative,
                sum_seconds: get(&self.duration_nanos) as f64 / 1e9,
                cumulative: buckets,
            },
        }
    }
}

/// A snapshot of one [`WebSocketServer`](crate::WebSocketServer)'s counters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server's path (`None`: the catch-all server).
    pub path: Option<String>,
    /// Connections open now (`connections().len()`).
    pub connections: usize,
    /// Connections that reached `on_open`, since start.
    pub opened: u64,
    /// Handshakes `on_connection` accepted, since start.
    pub accepted: u64,
    /// Handshakes `on_connection` refused (returned `None`, or panicked), since start.
    pub refused_by_handler: u64,
    /// Messages handed to `on_message`, by frame type, since start.
    pub messages_received: ByType,
    /// Their payload bytes, since start.
    pub bytes_received: u64,
    /// Callbacks of this server that panicked, since start.
    pub callback_panics: u64,
    /// What the network has handed the worker and the worker has not taken yet, now.
    pub worker_queue: Backlog,
    /// How long `on_message` callbacks ran, sampled: one message in eight (the first one
    /// included) is timed, and only while metrics are served
    /// ([`WebServerOptions::metrics`](crate::WebServerOptions::metrics)), as each timing costs
    /// two clock reads. `count` is the number of timed callbacks, not of messages.
    pub callback_duration: CallbackDurations,
}

/// A histogram of callback durations over the bounds of [`CALLBACK_BUCKETS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallbackDurations {
    /// Callbacks counted.
    pub count: u64,
    /// Their total duration, in seconds.
    pub sum_seconds: f64,
    /// Callbacks that took at most each bound of [`CALLBACK_BUCKETS`], then all of them
    /// (`+Inf`): one more entry than the bounds.
    pub cumulative: Vec<u64>,
}

/// Handshakes refused by the router, counted once each (never per message).
#[derive(Default)]
pub(crate) struct HandshakeCounters {
    origin: AtomicU64,
    host: AtomicU64,
    bad_request: AtomicU64,
    upgrade_required: AtomicU64,
    too_large: AtomicU64,
    not_found: AtomicU64,
    unavailable: AtomicU64,
}

impl HandshakeCounters {
    /// Counts an upgrade request refused for its `Host` (DNS rebinding policy).
    pub(crate) fn note_host(&self) {
        self.host.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upgrade request answered with `status` instead of a 101 (for its `Host`:
    /// [`note_host`](Self::note_host)).
    pub(crate) fn note(&self, status: u16) {
        let c = match status {
            403 => &self.origin,
            426 => &self.upgrade_required,
            431 => &self.too_large,
            404 => &self.not_found,
            503 => &self.unavailable,
            _ => &self.bad_request,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Handshakes by outcome, all servers of a web server together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeStats {
    /// Accepted by `on_connection` (the 101 follows).
    pub accepted: u64,
    /// Refused by `on_connection` (403).
    pub refused_by_handler: u64,
    /// Refused because of their `Origin` (403).
    pub origin: u64,
    /// Refused because of their `Host` (403, the DNS rebinding policy).
    pub host: u64,
    /// Refused at accept by a connection limit (503).
    pub limit: u64,
    /// Malformed heads and invalid upgrade requests (400).
    pub bad_request: u64,
    /// Upgrade requests for another WebSocket version (426).
    pub upgrade_required: u64,
    /// Heads too large (431).
    pub too_large: u64,
    /// Heads or decisions that did not come in time (408, 503).
    pub timeout: u64,
    /// TLS handshakes that failed.
    pub tls_failed: u64,
    /// Upgrades to a path no server serves (404).
    pub not_found: u64,
    /// Upgrades refused while stopping or overloaded (503).
    pub unavailable: u64,
}

impl HandshakeStats {
    pub(crate) fn gather(
        counters: &HandshakeCounters,
        net: &NetStats,
        servers: &[ServerStats],
    ) -> HandshakeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HandshakeStats {
            accepted: servers.iter().map(|s| s.accepted).sum(),
            refused_by_handler: servers.iter().map(|s| s.refused_by_handler).sum(),
            origin: get(&counters.origin),
            host: get(&counters.host),
            limit: net.refused_connections + net.refused_per_address + net.refused_handshakes,
            bad_request: get(&counters.bad_request) + net.bad_requests,
            upgrade_required: get(&counters.upgrade_required),
            too_large: get(&counters.too_large) + net.heads_too_large,
            timeout: net.handshake_timeouts,
            tls_failed: net.tls_failures,
            not_found: get(&counters.not_found),
            unavailable: get(&counters.unavailable),
        }
    }

    /// Every outcome with its label (`accepted`, `refused_by_handler`, `origin`, ...).
    pub fn iter(&self) -> [(&'static str, u64); 12] {
        [
            ("accepted", self.accepted),
            ("refused_by_handler", self.refused_by_handler),
            ("origin", self.origin),
            ("host", self.host),
            ("limit", self.limit),
            ("bad_request", self.bad_request),
            ("upgrade_required", self.upgrade_required),
            ("too_large", self.too_large),
            ("timeout", self.timeout),
            ("tls_failed", self.tls_failed),
            ("not_found", self.not_found),
            ("unavailable", self.unavailable),
        ]
    }
}

/// A snapshot of a [`WebServer`](crate::WebServer) and the WebSocket servers on it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WebServerStats {
    /// The network loops' counters: connections, bytes, messages sent, closes.
    pub net: NetStats,
    /// Handshakes by outcome.
    pub handshakes: HandshakeStats,
    /// Sessions kept now (0 without scalable sessions).
    pub sessions: usize,
    /// A graceful stop (drain) has begun: `/readyz` answers 503.
    pub draining: bool,
    /// Each live WebSocket server.
    pub servers: Vec<ServerStats>,
    /// The broker's counters, when it reports any (Redis).
    pub broker: Option<BrokerStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_buckets_and_read_cumulative() {
        let c = ServerCounters::new(true);
        c.observe(Duration::from_micros(3)); // <= 5 µs
        c.observe(Duration::from_micros(5)); // <= 5 µs (bounds are inclusive)
        c.observe(Duration::from_micros(700)); // <= 1 ms
        c.observe(Duration::from_secs(2)); // +Inf
        let s = c.snapshot(Some("/p"), 0, Backlog::default());
        let d = &s.callback_duration;
        assert_eq!(d.count, 4);
        assert_eq!(d.cumulative.len(), CALLBACK_BUCKETS.len() + 1);
        assert_eq!(d.cumulative[0], 2);
        let ms = CALLBACK_BUCKETS.iter().position(|&b| b == 0.001).unwrap();
        assert_eq!(d.cumulative[ms - 1], 2);
        assert_eq!(d.cumulative[ms], 3);
        assert_eq!(d.cumulative[CALLBACK_BUCKETS.len() - 1], 3);
        assert_eq!(d.cumulative[CALLBACK_BUCKETS.len()], 4);
        assert!((d.sum_seconds - 2.000_708).abs() < 1e-9);
    }
}
