//! Per-loop deadlines: a min-heap of (instant, slot, generation) with lazy removal.
//!
//! A connection remembers the earliest deadline it has in the heap. A later deadline (an idle
//! timer pushed back by traffic) is not re-inserted: the earlier entry fires, the connection
//! finds nothing due and schedules again. An earlier one is pushed and the old entry goes stale.
//! So the heap holds about one entry per connection and no entry is ever searched for.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One loop's timer heap.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u32)>>,
}

impl Timers {
    pub(crate) fn with_capacity(n: usize) -> Timers {
        Timers {
            heap: BinaryHeap::with_capacity(n),
        }
    }

    /// Makes sure `slot`/`generation` is woken at `deadline` or earlier. `scheduled` is the
    /// connection's own record of its earliest entry; it is updated.
    pub(crate) fn schedule(
        &mut self,
        scheduled: &mut Option<Instant>,
        deadline: Instant,
        slot: usize,
        generation: u32,
    ) {
        if scheduled.is_some_and(|s| s <= deadline) {
            return;
        }
        *scheduled = Some(deadline);
        self.heap.push(Reverse((deadline, slot, generation)));
    }

    /// The earliest entry, stale or not.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns an entry due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
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
    use std::time::Duration;

    #[test]
    fn later_deadlines_are_not_reinserted() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut sched = None;
        timers.schedule(&mut sched, t0 + Duration::from_secs(1), 5, 1);
        timers.schedule(&mut sched, t0 + Duration::from_secs(2), 5, 1);
        assert_eq!(timers.len(), 1);
        assert_eq!(sched, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn earlier_deadline_fires_first() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut a = None;
        let mut b = None;
        timers.schedule(&mut a, t0 + Duration::from_secs(3), 1, 0);
        timers.schedule(&mut b, t0 + Duration::from_secs(1), 2, 0);
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(timers.pop_due(t0).is_none());
        let due = timers.pop_due(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(due.1, 2);
        assert!(timers.pop_due(t0 + Duration::from_secs(2)).is_none());
    }
}
