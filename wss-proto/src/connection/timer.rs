//! The connection's timers, kept as the two instants they derive from, with no heap.
//!
//! The idle ping and the idle timeout both run from the last time bytes arrived, so one
//! instant serves both; the close timer has its own deadline. Deadlines are computed when
//! asked for, which keeps `receive` down to one store.

use std::time::{Duration, Instant};

/// A timer that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Our close frame was not answered in time.
    Close,
    /// Nothing was received for the whole idle timeout.
    Idle,
    /// Nothing was received for half of it: send a ping.
    Ping,
}

/// The timers' instants. Whether the half-idle ping is still to be sent for the current quiet
/// spell is a flag the connection keeps next to its other flags (here it would cost 8 bytes
/// of padding) and passes in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    /// When bytes last arrived, while the idle timer runs.
    last_rx: Option<Instant>,
    /// The deadline for the peer's close.
    close_at: Option<Instant>,
}

impl Timers {
    /// Bytes arrived at `now`: the idle timer (if any) starts over. Returns whether the
    /// half-idle ping is now armed.
    #[inline]
    pub(crate) fn received(&mut self, now: Instant, idle: Option<Duration>) -> bool {
        if idle.is_some() {
            self.last_rx = Some(now);
        }
        idle.is_some()
    }

    /// Arms the close timer for `now + after`; a sum past what `Instant` holds means never.
    pub(crate) fn arm_close(&mut self, now: Instant, after: Duration) {
        self.close_at = now.checked_add(after);
    }

    pub(crate) fn stop_all(&mut self) {
        *self = Timers::default();
    }

    fn ping_at(&self, ping: bool, idle: Option<Duration>) -> Option<Instant> {
        if !ping {
            return None;
        }
        self.last_rx?.checked_add(idle? / 2)
    }

    fn idle_at(&self, idle: Option<Duration>) -> Option<Instant> {
        self.last_rx?.checked_add(idle?)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self, ping: bool, idle: Option<Duration>) -> Option<Instant> {
        [self.close_at, self.ping_at(ping, idle), self.idle_at(idle)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The most urgent timer that ran out by `now`: close, then idle, then ping.
    pub(crate) fn due(&self, now: Instant, ping: bool, idle: Option<Duration>) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if passed(self.close_at) {
            Some(Due::Close)
        } else if passed(self.idle_at(idle)) {
            Some(Due::Idle)
        } else if passed(self.ping_at(ping, idle)) {
            Some(Due::Ping)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let t0 = Instant::now();
        let idle = Some(Duration::from_secs(10));
        let mut t = Timers::default();
        assert_eq!(t.next(false, idle), None);
        let ping = t.received(t0, idle);
        assert!(ping);
        assert_eq!(
            t.next(ping, idle),
            Some(t0 + Duration::from_secs(5)),
            "ping first"
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(5), ping, idle),
            Some(Due::Ping)
        );
        // The ping went out.
        assert_eq!(t.next(false, idle), Some(t0 + Duration::from_secs(10)));
        assert_eq!(t.due(t0 + Duration::from_secs(9), false, idle), None);
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), false, idle),
            Some(Due::Idle)
        );
        t.arm_close(t0, Duration::from_secs(1));
        assert_eq!(t.next(false, idle), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), false, idle),
            Some(Due::Close)
        );
        t.stop_all();
        assert_eq!(t.next(true, idle), None);
    }

    #[test]
    fn deadlines_past_what_instant_holds_never_come() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let ping = t.received(t0, Some(Duration::MAX));
        t.arm_close(t0, Duration::MAX);
        assert_eq!(t.next(ping, Some(Duration::MAX)), None);
    }

    #[test]
    fn no_idle_timeout_means_no_idle_timers() {
        let mut t = Timers::default();
        let ping = t.received(Instant::now(), None);
        assert!(!ping);
        assert_eq!(t.next(true, None), None);
    }
}
