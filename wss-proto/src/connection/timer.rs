//! The connection's timers: a fixed table, one slot per kind, no heap.

use std::time::{Duration, Instant};

/// Every timer a connection can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// We sent close: the peer's close must arrive before this.
    Close = 0,
    /// Nothing received for half the idle timeout: send a ping to provoke traffic.
    Ping = 1,
    /// Nothing received for the whole idle timeout: give up.
    Idle = 2,
}

const COUNT: usize = 3;

#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    /// Arms `timer` for `now + after`; a sum past what `Instant` holds means never.
    pub(crate) fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.deadlines[timer as usize] = now.checked_add(after);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadlines[timer as usize].is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set_after(Timer::Idle, t0, Duration::from_secs(10));
        t.set_after(Timer::Ping, t0, Duration::from_secs(5));
        t.set_after(Timer::Close, t0, Duration::MAX);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(5)));
        t.stop(Timer::Ping);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(10)));
        assert!(!t.is_expired(Timer::Idle, t0));
        assert!(t.is_expired(Timer::Idle, t0 + Duration::from_secs(10)));
        t.stop_all();
        assert_eq!(t.next(), None);
    }
}
