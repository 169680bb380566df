//! The queue of events waiting for `poll_event`.
//!
//! An idle connection has no event waiting, so the queue is one null pointer then: its
//! storage (a boxed `VecDeque`) is lent from the caller's [`Scratch`] when the first event is
//! pushed and given back as soon as the last one is taken. Events that the caller leaves
//! queued (a consumer that is behind stops taking them) keep their box for as long as they
//! wait. The ring keeps its capacity in the scratch, so the usual push-then-pop costs no
//! allocation.

use std::collections::VecDeque;

use super::{Event, Scratch};

/// Rings a scratch keeps for the next connection that queues an event. Sized for a turn in
/// which many connections each got a burst; a kept ring holds no event.
const POOL_MAX: usize = 64;

/// A kept ring keeps up to this many slots (about 2.5 KiB); a larger one (a long burst) is
/// freed instead, so the scratch stays small.
const POOL_KEEP_SLOTS: usize = 64;

// The box is the point: a queue costs one pointer, and lending a ring moves a pointer.
type Ring = Box<VecDeque<Event>>;

/// The empty rings a [`Scratch`] lends to event queues.
#[derive(Debug, Default)]
pub(crate) struct Rings {
    #[allow(clippy::vec_box)]
    rings: Vec<Ring>,
}

impl Rings {
    /// An empty ring: a kept one, or a new one.
    fn lend(&mut self) -> Ring {
        self.rings.pop().unwrap_or_default()
    }

    /// Empties `ring` (dropping what it held) and keeps it, unless it is large or the pool is
    /// full: then it is freed.
    fn give_back(&mut self, mut ring: Ring) {
        if ring.capacity() > POOL_KEEP_SLOTS || self.rings.len() >= POOL_MAX {
            return;
        }
        if !ring.is_empty() {
            ring.clear();
        }
        self.rings.push(ring);
    }

    /// Rings kept.
    pub(crate) fn len(&self) -> usize {
        self.rings.len()
    }
}

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    /// Oldest first; present exactly while an event waits.
    #[allow(clippy::box_collection)]
    ring: Option<Ring>,
}

impl EventQueue {
    #[inline]
    pub(crate) fn push(&mut self, scratch: &mut Scratch, event: Event) {
        self.ring
            .get_or_insert_with(|| scratch.rings.lend())
            .push_back(event);
    }

    /// As [`push`](Self::push) where no scratch is at hand (a timeout, which is rare): a ring
    /// is allocated when none is lent, and goes to the scratch that takes the last event.
    #[cold]
    pub(crate) fn push_unlent(&mut self, event: Event) {
        self.ring.get_or_insert_with(Ring::default).push_back(event);
    }

    #[inline]
    pub(crate) fn pop(&mut self, scratch: &mut Scratch) -> Option<Event> {
        let ring = self.ring.as_mut()?;
        let event = ring.pop_front();
        if ring.is_empty() {
            if let Some(ring) = self.ring.take() {
                scratch.rings.give_back(ring);
            }
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Timeout;

    fn ev(n: u8) -> Event {
        Event::Ping(vec![n])
    }

    #[test]
    fn events_come_out_in_the_order_they_went_in() {
        let mut s = Scratch::default();
        let mut q = EventQueue::default();
        q.push(&mut s, ev(1));
        q.push(&mut s, ev(2));
        assert_eq!(q.pop(&mut s), Some(ev(1)));
        q.push(&mut s, ev(3));
        assert_eq!(q.pop(&mut s), Some(ev(2)));
        q.push(&mut s, ev(4));
        assert_eq!(q.pop(&mut s), Some(ev(3)));
        assert_eq!(q.pop(&mut s), Some(ev(4)));
        assert_eq!(q.pop(&mut s), None);
        q.push(&mut s, Event::TimedOut(Timeout::Idle));
        assert_eq!(q.pop(&mut s), Some(Event::TimedOut(Timeout::Idle)));
        assert_eq!(q.pop(&mut s), None);
    }

    #[test]
    fn a_drained_queue_holds_no_ring() {
        let mut s = Scratch::default();
        let mut q = EventQueue::default();
        for n in 0..100 {
            q.push(&mut s, ev(n));
        }
        assert!(q.ring.as_ref().is_some_and(|r| r.len() == 100));
        for n in 0..100 {
            assert_eq!(q.pop(&mut s), Some(ev(n)));
        }
        assert!(q.ring.is_none());
    }

    #[test]
    fn events_left_waiting_survive_other_queues_using_the_pool() {
        let mut s = Scratch::default();
        let mut waiting = EventQueue::default();
        waiting.push(&mut s, ev(1));
        waiting.push(&mut s, ev(2));
        // Other connections on this thread queue, drain and drop their queues meanwhile.
        for round in 0..10 {
            let mut other = EventQueue::default();
            other.push(&mut s, ev(100 + round));
            assert_eq!(other.pop(&mut s), Some(ev(100 + round)));
            let mut dropped = EventQueue::default();
            dropped.push(&mut s, ev(200));
            drop(dropped);
        }
        assert_eq!(waiting.pop(&mut s), Some(ev(1)));
        assert_eq!(waiting.pop(&mut s), Some(ev(2)));
        assert_eq!(waiting.pop(&mut s), None);
    }

    #[test]
    fn a_lent_ring_carries_no_event_from_a_dropped_queue() {
        let mut s = Scratch::default();
        let mut dropped = EventQueue::default();
        dropped.push(&mut s, ev(1));
        dropped.push(&mut s, ev(2));
        drop(dropped);
        let mut next = EventQueue::default();
        next.push(&mut s, ev(3));
        assert_eq!(next.pop(&mut s), Some(ev(3)));
        assert_eq!(next.pop(&mut s), None);
    }

    #[test]
    fn a_drained_ring_is_reused() {
        let mut s = Scratch::default();
        let mut q = EventQueue::default();
        q.push(&mut s, ev(1));
        let first: *const VecDeque<Event> = q.ring.as_deref().map_or(std::ptr::null(), |r| r);
        assert_eq!(q.pop(&mut s), Some(ev(1)));
        q.push(&mut s, ev(2));
        let second: *const VecDeque<Event> = q.ring.as_deref().map_or(std::ptr::null(), |r| r);
        assert_eq!(first, second, "the same ring came back from the scratch");
    }

    #[test]
    fn a_ring_allocated_for_a_timeout_goes_to_the_scratch_that_drains_it() {
        let mut s = Scratch::default();
        let mut q = EventQueue::default();
        q.push_unlent(Event::TimedOut(Timeout::Close));
        assert_eq!(s.rings.len(), 0);
        assert_eq!(q.pop(&mut s), Some(Event::TimedOut(Timeout::Close)));
        assert_eq!(s.rings.len(), 1);
        assert!(q.ring.is_none());
    }
}
