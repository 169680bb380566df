//! The publish-to-delivery lag, measured on this node's own messages.
//!
//! Redis sends a node its own publishes back on every channel it is subscribed to (they are
//! skipped, see `Stats::own_skipped`). The time from `publish` to that echo is the path every
//! other node's copy takes too: this node's queue, the PUBLISH, Redis, a subscriber's socket.
//! Measured on one clock, it needs no timestamp in the envelope (so nodes of different
//! versions still understand each other) and suffers no clock skew between machines.
//!
//! One probe is in flight at a time: a publish arms it when none is (its frame's length and
//! hash, and the instant), the subscriber disarms it when that frame comes back and counts the
//! lag. Between probes a publish costs one relaxed load. A probe whose echo never comes (a
//! message lost, or a room this node does not subscribe to) is dropped after `PROBE_EXPIRY`.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wss_server::{BrokerLag, BROKER_LAG_BUCKETS};

use crate::shared::lock;

/// A probe unanswered this long is given up.
const PROBE_EXPIRY: Duration = Duration::from_secs(5);

struct Probe {
    len: usize,
    digest: u64,
    at: Instant,
}

fn digest(frame: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(frame);
    h.finish()
}

/// The probe and the lag histogram.
pub(crate) struct Lag {
    armed: AtomicBool,
    probe: Mutex<Option<Probe>>,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: [AtomicU64; BROKER_LAG_BUCKETS.len() + 1],
    nanos: AtomicU64,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            armed: AtomicBool::new(false),
            probe: Mutex::new(None),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            nanos: AtomicU64::new(0),
        }
    }
}

impl Lag {
    /// A frame is being published now: it becomes the probe unless one is in flight.
    pub(crate) fn on_publish(&self, frame: &[u8]) {
        if self.armed.load(Ordering::Relaxed) {
            return;
        }
        let mut probe = lock(&self.probe);
        if probe.is_none() {
            *probe = Some(Probe {
                len: frame.len(),
                digest: digest(frame),
                at: Instant::now(),
            });
            self.armed.store(true, Ordering::Relaxed);
        }
    }

    /// One of this node's frames came back from Redis: if it is the probe, count its lag.
    pub(crate) fn on_own_echo(&self, frame: &[u8]) {
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let mut probe = lock(&self.probe);
        let Some(p) = probe.as_ref() else { return };
        if p.len == frame.len() && p.digest == digest(frame) {
            self.observe(p.at.elapsed());
            *probe = None;
            self.armed.store(false, Ordering::Relaxed);
        }
    }

    /// Gives up a probe whose echo is overdue (called on any received message).
    pub(crate) fn expire(&self) {
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let mut probe = lock(&self.probe);
        if probe
            .as_ref()
            .is_some_and(|p| p.at.elapsed() > PROBE_EXPIRY)
        {
            *probe = None;
            self.armed.store(false, Ordering::Relaxed);
        }
    }

    fn observe(&self, lag: Duration) {
        let secs = lag.as_secs_f64();
        let i = BROKER_LAG_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BROKER_LAG_BUCKETS.len());
        if let Some(c) = self.buckets.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.nanos.fetch_add(
            u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn snapshot(&self) -> BrokerLag {
        let mut lag = BrokerLag::default();
        let mut total = 0;
        for (c, out) in self.buckets.iter().zip(lag.cumulative.iter_mut()) {
            total += c.load(Ordering::Relaxed);
            *out = total;
        }
        lag.count = total;
        lag.sum_seconds = self.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_counted_when_its_own_frame_comes_back() {
        let lag = Lag::default();
        lag.on_publish(b"first");
        lag.on_publish(b"second"); // one probe at a time: ignored
        lag.on_own_echo(b"second"); // not the probe
        assert_eq!(lag.snapshot().count, 0);
        lag.on_own_echo(b"first");
        let s = lag.snapshot();
        assert_eq!(s.count, 1);
        assert_eq!(s.cumulative[0], 1, "well under the first bound");
        assert_eq!(s.cumulative[BROKER_LAG_BUCKETS.len()], 1);
        // Disarmed: the next publish is the next probe.
        lag.on_publish(b"third");
        lag.on_own_echo(b"third");
        assert_eq!(lag.snapshot().count, 2);
    }

    #[test]
    fn an_overdue_probe_is_given_up() {
        let lag = Lag::default();
        lag.on_publish(b"lost");
        if let Some(p) = lock(&lag.probe).as_mut() {
            p.at =
                p.at.checked_sub(PROBE_EXPIRY + Duration::from_secs(1))
                    .expect("the clock is past 6 s");
        }
        lag.expire();
        assert!(!lag.armed.load(Ordering::Relaxed));
        lag.on_own_echo(b"lost");
        assert_eq!(lag.snapshot().count, 0);
    }
}
