//! The connection's timers, kept as the points in time they derive from, with no heap and no
//! process-wide state.
//!
//! The idle ping and the idle timeout both run from the last time bytes arrived, so one
//! point serves both: that is the only point kept here, as the caller's own `Instant` (an
//! `Option<Instant>` is 16 bytes, as its niche holds the `None`). Deadlines are computed when
//! asked for, which keeps `receive` down to one store. The close timer is armed once per
//! connection at most, so its deadline lives in the connection's rarely used box and is passed
//! in; an idle connection does not pay 16 bytes for it.
//!
//! Points are compared exactly (to the nanosecond, as `Instant` is), so a timer fires neither
//! early nor late; a deadline past what `Instant` holds never comes. Nothing depends on the
//! thread a connection was made on: a connection dialled on one thread and driven on another
//! keeps its deadlines.

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

/// `from + after`, or `None` (never) when it is past what `Instant` holds.
pub(crate) fn later(from: Instant, after: Duration) -> Option<Instant> {
    from.checked_add(after)
}

/// The idle timers' point in time. Whether the half-idle ping is still to be sent for the
/// current quiet spell is a flag the connection keeps next to its other flags (here it would
/// cost 8 bytes of padding) and passes in, as it passes the close deadline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    /// When bytes last arrived, while the idle timer runs.
    last_rx: Option<Instant>,
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

    pub(crate) fn stop_all(&mut self) {
        self.last_rx = None;
    }

    fn ping_at(&self, ping: bool, idle: Option<Duration>) -> Option<Instant> {
        if !ping {
            return None;
        }
        later(self.last_rx?, idle? / 2)
    }

    fn idle_at(&self, idle: Option<Duration>) -> Option<Instant> {
        later(self.last_rx?, idle?)
    }

    /// The earliest armed deadline, `close_at` (the close timer's) included.
    pub(crate) fn next(
        &self,
        close_at: Option<Instant>,
        ping: bool,
        idle: Option<Duration>,
    ) -> Option<Instant> {
        [close_at, self.ping_at(ping, idle), self.idle_at(idle)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The most urgent timer that ran out by `now`: close, then idle, then ping.
    pub(crate) fn due(
        &self,
        now: Instant,
        close_at: Option<Instant>,
        ping: bool,
        idle: Option<Duration>,
    ) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if passed(close_at) {
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
        assert_eq!(t.next(None, false, idle), None);
        let ping = t.received(t0, idle);
        assert!(ping);
        assert_eq!(
            t.next(None, ping, idle),
            Some(t0 + Duration::from_secs(5)),
            "ping first"
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(5), None, ping, idle),
            Some(Due::Ping)
        );
        // The ping went out.
        assert_eq!(
            t.next(None, false, idle),
            Some(t0 + Duration::from_secs(10))
        );
        assert_eq!(t.due(t0 + Duration::from_secs(9), None, false, idle), None);
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), None, false, idle),
            Some(Due::Idle)
        );
        let close_at = later(t0, Duration::from_secs(1));
        assert_eq!(
            t.next(close_at, false, idle),
            Some(t0 + Duration::from_secs(1))
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), close_at, false, idle),
            Some(Due::Close)
        );
        t.stop_all();
        assert_eq!(t.next(None, true, idle), None);
    }

    #[test]
    fn deadlines_past_what_instant_holds_never_come() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let ping = t.received(t0, Some(Duration::MAX));
        let close_at = later(t0, Duration::MAX);
        assert_eq!(close_at, None);
        assert_eq!(t.next(close_at, ping, Some(Duration::MAX)), None);
    }

    #[test]
    fn a_deadline_is_due_at_its_instant_not_a_nanosecond_before() {
        let t0 = Instant::now() + Duration::from_nanos(3);
        let idle = Some(Duration::from_nanos(2_000_000_003));
        let mut t = Timers::default();
        let ping = t.received(t0, idle);
        let ping_at = t.next(None, ping, idle).unwrap();
        assert_eq!(ping_at, t0 + Duration::from_nanos(1_000_000_001));
        let before = ping_at - Duration::from_nanos(1);
        assert_eq!(t.due(before, None, ping, idle), None);
        assert_eq!(t.due(ping_at, None, ping, idle), Some(Due::Ping));
    }

    #[test]
    fn timers_made_on_one_thread_run_on_another() {
        // A client connection is made on its dial thread, then driven by an event loop.
        let t0 = Instant::now();
        let idle = Some(Duration::from_millis(10));
        let mut t = Timers::default();
        let ping = t.received(t0, idle);
        let moved = std::thread::spawn(move || t).join().unwrap();
        assert_eq!(
            moved.next(None, ping, idle),
            Some(t0 + Duration::from_millis(5))
        );
        let idle_at = t0 + Duration::from_millis(10);
        assert_eq!(moved.due(idle_at, None, false, idle), Some(Due::Idle));
    }

    #[test]
    fn no_idle_timeout_means_no_idle_timers() {
        let mut t = Timers::default();
        let ping = t.received(Instant::now(), None);
        assert!(!ping);
        assert_eq!(t.next(None, true, None), None);
    }

    #[test]
    fn the_timers_fit_in_the_two_words_an_instant_takes() {
        assert_eq!(
            std::mem::size_of::<Timers>(),
            std::mem::size_of::<Instant>()
        );
    }
}
