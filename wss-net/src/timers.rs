//! Per-loop deadlines: a min-heap of (deadline, connection) with lazy removal.
//!
//! A connection remembers the earliest deadline it has in the heap. A later deadline (an idle
//! timer pushed back by traffic) is not re-inserted: the earlier entry fires, the connection
//! finds nothing due and schedules again. An earlier one is pushed and the old entry goes stale.
//! So the heap holds about one entry per connection and no entry is ever searched for.
//!
//! Deadlines are kept as nanoseconds since the loop's epoch, not as `Instant`s: an entry is 16
//! bytes instead of 32 and a connection's record of its entry 8 instead of 16, for every idle
//! connection. Nanoseconds are the clock's own resolution, so the conversion is exact and a
//! timer never fires early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::ConnId;

/// A deadline in nanoseconds since the loop's epoch. Never zero, so that an `Option` of it
/// (a connection's record of its entry) is 8 bytes: a deadline at the epoch itself counts as
/// one nanosecond later, which is late, never early.
pub(crate) type Tick = NonZeroU64;

/// One loop's timer heap.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The instant tick 0 stands for: no deadline the loop sets is earlier (one that is counts
    /// as the epoch itself, and was due anyway).
    epoch: Instant,
    heap: BinaryHeap<Reverse<(Tick, ConnId)>>,
}

impl Timers {
    /// Room for `n` entries; ticks count from `epoch`.
    pub(crate) fn with_capacity(n: usize, epoch: Instant) -> Timers {
        Timers {
            epoch,
            heap: BinaryHeap::with_capacity(n),
        }
    }

    /// `at` as a tick: exact (saturating some 584 years past the epoch), never before `at`.
    pub(crate) fn tick(&self, at: Instant) -> Tick {
        NonZeroU64::new(self.nanos(at)).unwrap_or(NonZeroU64::MIN)
    }

    /// Nanoseconds from the epoch to `at` (0 before it, saturating).
    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Makes sure `id` is woken at `deadline` or later, as soon as the loop can. `scheduled`
    /// is the connection's own record of its earliest entry; it is updated.
    pub(crate) fn schedule(&mut self, scheduled: &mut Option<Tick>, deadline: Instant, id: ConnId) {
        let at = self.tick(deadline);
        if scheduled.is_some_and(|s| s <= at) {
            return;
        }
        *scheduled = Some(at);
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest entry's instant, stale or not (`None` also for one too far away to tell).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let Reverse((at, _)) = self.heap.peek()?;
        self.epoch.checked_add(Duration::from_nanos(at.get()))
    }

    /// Removes and returns an entry due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Tick, ConnId)> {
        // Not a `Tick`: the epoch itself must stay 0 here, or a deadline 1 ns after it would
        // be due a nanosecond early.
        let now = self.nanos(now);
        match self.heap.peek() {
            Some(Reverse((at, _))) if at.get() <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: usize) -> ConnId {
        ConnId::new(0, 1, slot)
    }

    #[test]
    fn later_deadlines_are_not_reinserted() {
        let t0 = Instant::now();
        let mut timers = Timers::with_capacity(0, t0);
        let mut sched = None;
        timers.schedule(&mut sched, t0 + Duration::from_secs(1), id(5));
        timers.schedule(&mut sched, t0 + Duration::from_secs(2), id(5));
        assert_eq!(timers.len(), 1);
        assert_eq!(sched, Some(timers.tick(t0 + Duration::from_secs(1))));
    }

    #[test]
    fn earlier_deadline_fires_first() {
        let t0 = Instant::now();
        let mut timers = Timers::with_capacity(0, t0);
        let mut a = None;
        let mut b = None;
        timers.schedule(&mut a, t0 + Duration::from_secs(3), id(1));
        timers.schedule(&mut b, t0 + Duration::from_secs(1), id(2));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(timers.pop_due(t0).is_none());
        let due = timers.pop_due(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(due.1, id(2));
        assert!(timers.pop_due(t0 + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn a_deadline_never_fires_before_its_instant() {
        let t0 = Instant::now();
        let mut timers = Timers::with_capacity(0, t0);
        let at = t0 + Duration::from_nanos(1_234_567_891);
        let mut sched = None;
        timers.schedule(&mut sched, at, id(1));
        assert!(timers.next_deadline().is_some_and(|d| d >= at));
        assert!(timers.pop_due(at - Duration::from_nanos(1)).is_none());
        assert!(timers.pop_due(at).is_some());
        // At or before the epoch: due at once (one nanosecond after the epoch).
        timers.schedule(&mut None, t0, id(2));
        assert!(timers.pop_due(t0).is_none());
        assert!(timers.pop_due(t0 + Duration::from_nanos(1)).is_some());
    }

    #[test]
    fn an_entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Reverse<(Tick, ConnId)>>(), 16);
        assert_eq!(std::mem::size_of::<Option<Tick>>(), 8);
    }
}
